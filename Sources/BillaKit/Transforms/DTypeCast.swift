import CKernels
/// Floating-point conversions between f32, f16 and bf16 with round-to-nearest-even, the rounding torch's `.half()`
/// and `.bfloat16()` use, so a cast by billa equals the same cast in torch bit for bit.
public enum DTypeCast {
    static func supports(_ d: DType) -> Bool { d == .f32 || d == .f16 || d == .bf16 }

    @inline(__always) static func bf16ToF32(_ b: UInt16) -> Float { Float(bitPattern: UInt32(b) << 16) }

    /// torch's c10::BFloat16 rounding: NaN becomes the canonical quiet NaN, everything else rounds to nearest even.
    @inline(__always) static func f32ToBF16(_ f: Float) -> UInt16 {
        if f.isNaN { return 0x7FC0 }
        let u = f.bitPattern
        return UInt16((u &+ 0x7FFF &+ ((u >> 16) & 1)) >> 16)
    }

    /// IEEE binary32 -> binary16, round to nearest even, by c10's (and the FP16 library's) branch-free method: the
    /// float unit does the rounding, so the loop vectorizes. torch's `.half()` computes exactly this. NaN becomes
    /// sign | 0x7E00.
    @inline(__always) static func f32ToF16(_ f: Float) -> UInt16 {
        let scaleToInf = Float(bitPattern: 0x7780_0000)    // 0x1.0p+112
        let scaleToZero = Float(bitPattern: 0x0880_0000)   // 0x1.0p-110
        var base = (abs(f) * scaleToInf) * scaleToZero
        let w = f.bitPattern
        let shl1 = w &+ w
        let sign = w & 0x8000_0000
        var bias = shl1 & 0xFF00_0000
        if bias < 0x7100_0000 { bias = 0x7100_0000 }
        base = Float(bitPattern: (bias >> 1) &+ 0x0780_0000) + base
        let bits = base.bitPattern
        let nonsign = ((bits >> 13) & 0x7C00) &+ (bits & 0x0FFF)
        return UInt16(truncatingIfNeeded: (sign >> 16) | (shl1 > 0xFF00_0000 ? 0x7E00 : nonsign))
    }


    static func convert(_ src: UnsafeRawPointer, from: DType, to dst: UnsafeMutableRawPointer, _ target: DType, count: Int) {
        for i in 0..<count {
            let f: Float
            switch from {
            case .f32: f = src.loadUnaligned(fromByteOffset: i * 4, as: Float.self)
            case .f16: f = Float(Float16(bitPattern: src.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)))
            default: f = bf16ToF32(src.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))
            }
            switch target {
            case .f32: dst.storeBytes(of: f, toByteOffset: i * 4, as: Float.self)
            case .f16: dst.storeBytes(of: f32ToF16(f), toByteOffset: i * 2, as: UInt16.self)
            default: dst.storeBytes(of: f32ToBF16(f), toByteOffset: i * 2, as: UInt16.self)
            }
        }
    }

    /// Widens `count` elements to f32, with the dtype switch outside the loop.
    static func widen(_ src: UnsafeRawPointer, _ dtype: DType, count: Int, into dst: UnsafeMutablePointer<Float>) {
        switch dtype {
        case .f32:
            dst.update(from: src.assumingMemoryBound(to: Float.self), count: count)
        case .f16, .bf16:
            bk_to_f32(KernelType.of(dtype) ?? Int32(BK_F32), src, dst, Int64(count))   // exact; F16C when the CPU has it
        default:
            for i in 0..<count { dst[i] = bf16ToF32(src.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)) }
        }
    }

    /// Reads element i of a float tensor's bytes as f32.
    @inline(__always) static func load(_ p: UnsafeRawPointer, _ dtype: DType, _ i: Int) -> Float {
        switch dtype {
        case .f32: return p.loadUnaligned(fromByteOffset: i * 4, as: Float.self)
        case .f16: return Float(Float16(bitPattern: p.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)))
        case .bf16: return bf16ToF32(p.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))
        default: return .nan
        }
    }
}
