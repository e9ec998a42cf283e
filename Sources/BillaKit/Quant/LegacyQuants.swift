import CKernels
/// ggml's 32-element block quantizers (the "reference" ones llama-quantize runs without an importance matrix) and
/// their dequantizers. The arithmetic follows ggml-quants.c operation for operation: separate f32 multiplies and
/// adds (Swift does not contract them into FMAs), C truncating conversions, and round-half-away for Q8_0.
enum LegacyQuants {
    @inline(__always) static func storeHalf(_ y: UnsafeMutableRawPointer, _ offset: Int, _ f: Float) {
        y.storeBytes(of: HalfFloat.fromFloat(f).littleEndian, toByteOffset: offset, as: UInt16.self)
    }

    @inline(__always) static func loadHalf(_ y: UnsafeRawPointer, _ offset: Int) -> Float {
        HalfFloat.toFloat(UInt16(littleEndian: y.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
    }

    /// `(int8_t)f` in C on x86-64.
    @inline(__always) static func cInt8(_ f: Float) -> Int8 { Int8(truncatingIfNeeded: CRound.truncToInt32(f)) }

    /// The signed absolute maximum: the first element with the largest magnitude, sign kept.
    @inline(__always) static func signedMax(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var amax: Float = 0
        var max: Float = 0
        for j in 0..<n {
            let v = x[j]
            if amax < abs(v) { amax = abs(v); max = v }
        }
        return max
    }

    @inline(__always) static func minMax(_ x: UnsafePointer<Float>, _ n: Int) -> (Float, Float) {
        var min = Float.greatestFiniteMagnitude
        var max = -Float.greatestFiniteMagnitude
        for j in 0..<n {
            let v = x[j]
            if v < min { min = v }
            if v > max { max = v }
        }
        return (min, max)
    }

    // MARK: quantize (k elements, k a multiple of 32)

    /// In CKernels: the same reference algorithm, a block per AVX-512 step where the CPU has it.
    static func quantizeQ8_0(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, _ k: Int) {
        bk_quantize_q8_0(x, y, Int64(k))
    }

    static func quantizeQ4_0(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, _ k: Int) {
        for i in 0..<(k / 32) {
            let xb = x + i * 32, yb = y + i * 18
            let max = signedMax(xb, 32)
            let d = max / -8
            let id: Float = d != 0 ? 1 / d : 0
            storeHalf(yb, 0, d)
            for j in 0..<16 {
                let x0 = xb[j] * id
                let x1 = xb[16 + j] * id
                let xi0 = UInt8(truncatingIfNeeded: Swift.min(15, Int(cInt8(x0 + 8.5))))
                let xi1 = UInt8(truncatingIfNeeded: Swift.min(15, Int(cInt8(x1 + 8.5))))
                yb.storeBytes(of: xi0 | (xi1 << 4), toByteOffset: 2 + j, as: UInt8.self)
            }
        }
    }

    static func quantizeQ4_1(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, _ k: Int) {
        for i in 0..<(k / 32) {
            let xb = x + i * 32, yb = y + i * 20
            let (min, max) = minMax(xb, 32)
            let d = (max - min) / 15
            let id: Float = d != 0 ? 1 / d : 0
            storeHalf(yb, 0, d)
            storeHalf(yb, 2, min)
            for j in 0..<16 {
                let x0 = (xb[j] - min) * id
                let x1 = (xb[16 + j] - min) * id
                let xi0 = UInt8(truncatingIfNeeded: Swift.min(15, Int(cInt8(x0 + 0.5))))
                let xi1 = UInt8(truncatingIfNeeded: Swift.min(15, Int(cInt8(x1 + 0.5))))
                yb.storeBytes(of: xi0 | (xi1 << 4), toByteOffset: 4 + j, as: UInt8.self)
            }
        }
    }

    static func quantizeQ5_0(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, _ k: Int) {
        for i in 0..<(k / 32) {
            let xb = x + i * 32, yb = y + i * 22
            let max = signedMax(xb, 32)
            let d = max / -16
            let id: Float = d != 0 ? 1 / d : 0
            storeHalf(yb, 0, d)
            var qh: UInt32 = 0
            for j in 0..<16 {
                let x0 = xb[j] * id
                let x1 = xb[16 + j] * id
                let xi0 = UInt8(truncatingIfNeeded: Swift.min(31, Int(cInt8(x0 + 16.5))))
                let xi1 = UInt8(truncatingIfNeeded: Swift.min(31, Int(cInt8(x1 + 16.5))))
                yb.storeBytes(of: (xi0 & 0x0F) | ((xi1 & 0x0F) << 4), toByteOffset: 6 + j, as: UInt8.self)
                qh |= UInt32((xi0 & 0x10) >> 4) << UInt32(j)
                qh |= UInt32((xi1 & 0x10) >> 4) << UInt32(j + 16)
            }
            yb.storeBytes(of: qh.littleEndian, toByteOffset: 2, as: UInt32.self)
        }
    }

    static func quantizeQ5_1(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, _ k: Int) {
        for i in 0..<(k / 32) {
            let xb = x + i * 32, yb = y + i * 24
            let (min, max) = minMax(xb, 32)
            let d = (max - min) / 31
            let id: Float = d != 0 ? 1 / d : 0
            storeHalf(yb, 0, d)
            storeHalf(yb, 2, min)
            var qh: UInt32 = 0
            for j in 0..<16 {
                let x0 = (xb[j] - min) * id
                let x1 = (xb[16 + j] - min) * id
                let xi0 = UInt8(truncatingIfNeeded: CRound.truncToInt32(x0 + 0.5))
                let xi1 = UInt8(truncatingIfNeeded: CRound.truncToInt32(x1 + 0.5))
                yb.storeBytes(of: (xi0 & 0x0F) | ((xi1 & 0x0F) << 4), toByteOffset: 8 + j, as: UInt8.self)
                qh |= UInt32((xi0 & 0x10) >> 4) << UInt32(j)
                qh |= UInt32((xi1 & 0x10) >> 4) << UInt32(j + 16)
            }
            yb.storeBytes(of: qh.littleEndian, toByteOffset: 4, as: UInt32.self)
        }
    }

    // MARK: dequantize

    static func dequantizeQ8_0(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ k: Int) {
        for i in 0..<(k / 32) {
            let xb = x + i * 34
            let d = loadHalf(xb, 0)
            for j in 0..<32 { y[i * 32 + j] = Float(xb.load(fromByteOffset: 2 + j, as: Int8.self)) * d }
        }
    }

    static func dequantizeQ4_0(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ k: Int) {
        for i in 0..<(k / 32) {
            let xb = x + i * 18
            let d = loadHalf(xb, 0)
            for j in 0..<16 {
                let q = xb.load(fromByteOffset: 2 + j, as: UInt8.self)
                y[i * 32 + j] = Float(Int(q & 0x0F) - 8) * d
                y[i * 32 + j + 16] = Float(Int(q >> 4) - 8) * d
            }
        }
    }

    static func dequantizeQ4_1(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ k: Int) {
        for i in 0..<(k / 32) {
            let xb = x + i * 20
            let d = loadHalf(xb, 0), m = loadHalf(xb, 2)
            for j in 0..<16 {
                let q = xb.load(fromByteOffset: 4 + j, as: UInt8.self)
                y[i * 32 + j] = Float(q & 0x0F) * d + m
                y[i * 32 + j + 16] = Float(q >> 4) * d + m
            }
        }
    }

    static func dequantizeQ5_0(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ k: Int) {
        for i in 0..<(k / 32) {
            let xb = x + i * 22
            let d = loadHalf(xb, 0)
            let qh = UInt32(littleEndian: xb.loadUnaligned(fromByteOffset: 2, as: UInt32.self))
            for j in 0..<16 {
                let q = xb.load(fromByteOffset: 6 + j, as: UInt8.self)
                let h0 = Int((qh >> UInt32(j)) & 1) << 4, h1 = Int((qh >> UInt32(j + 16)) & 1) << 4
                y[i * 32 + j] = Float((Int(q & 0x0F) | h0) - 16) * d
                y[i * 32 + j + 16] = Float((Int(q >> 4) | h1) - 16) * d
            }
        }
    }

    static func dequantizeQ5_1(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ k: Int) {
        for i in 0..<(k / 32) {
            let xb = x + i * 24
            let d = loadHalf(xb, 0), m = loadHalf(xb, 2)
            let qh = UInt32(littleEndian: xb.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
            for j in 0..<16 {
                let q = xb.load(fromByteOffset: 8 + j, as: UInt8.self)
                let h0 = Int((qh >> UInt32(j)) & 1) << 4, h1 = Int((qh >> UInt32(j + 16)) & 1) << 4
                y[i * 32 + j] = Float(Int(q & 0x0F) | h0) * d + m
                y[i * 32 + j + 16] = Float(Int(q >> 4) | h1) * d + m
            }
        }
    }
}
