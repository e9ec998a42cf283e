import CKernels
/// ggml's 256-element "K" block quantizers (reference, no importance matrix) and dequantizers. The scale search
/// (make_qkx2_quants for Q4_K/Q5_K, make_qx_quants for Q6_K) is followed operation for operation, in the same
/// order, because its comparisons of float error sums decide which bytes come out.
enum KQuants {
    static let qk = 256

    /// The 6-bit scale/min pairs of Q4_K and Q5_K: 8 pairs packed into 12 bytes.
    @inline(__always) static func scaleMin(_ j: Int, _ q: UnsafeRawPointer) -> (UInt8, UInt8) {
        func b(_ i: Int) -> UInt8 { q.load(fromByteOffset: i, as: UInt8.self) }
        if j < 4 { return (b(j) & 63, b(j + 4) & 63) }
        return ((b(j + 4) & 0xF) | ((b(j - 4) >> 6) << 4), (b(j + 4) >> 4) | ((b(j) >> 6) << 4))
    }

    /// Shared front half of Q4_K and Q5_K: per-32 scales and mins, packed 6-bit, then the final levels.
    /// Writes d, dmin and scales at `y` and the 256 levels into `L`.
    private static func quantizeScaleMinBlock(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, _ nmax: Int32,
                                              rmin: Float, rdelta: Float, nstep: Int, _ L: UnsafeMutablePointer<UInt8>) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 8 + 8) { f in
            do {
                let mins = f.baseAddress!, scales = mins + 8
                var maxScale: Float = 0, maxMin: Float = 0
                // make_qkx2_quants with the rms + |x| weights for the 8 groups, in parallel lanes
                bk_make_qkx2_8x32(nmax, x, rmin, rdelta, Int32(nstep), L, scales, mins)
                for j in 0..<8 {
                    if scales[j] > maxScale { maxScale = scales[j] }
                    if mins[j] > maxMin { maxMin = mins[j] }
                }
                let invScale: Float = maxScale > 0 ? 63 / maxScale : 0
                let invMin: Float = maxMin > 0 ? 63 / maxMin : 0
                let sc = y + 4
                for j in 0..<12 { sc.storeBytes(of: 0, toByteOffset: j, as: UInt8.self) }
                for j in 0..<8 {
                    let ls = Swift.min(63, UInt8(truncatingIfNeeded: CRound.nearestInt(invScale * scales[j])))
                    let lm = Swift.min(63, UInt8(truncatingIfNeeded: CRound.nearestInt(invMin * mins[j])))
                    func or(_ i: Int, _ v: UInt8) {
                        sc.storeBytes(of: sc.load(fromByteOffset: i, as: UInt8.self) | v, toByteOffset: i, as: UInt8.self)
                    }
                    if j < 4 {
                        sc.storeBytes(of: ls, toByteOffset: j, as: UInt8.self)
                        sc.storeBytes(of: lm, toByteOffset: j + 4, as: UInt8.self)
                    } else {
                        sc.storeBytes(of: (ls & 0xF) | ((lm & 0xF) << 4), toByteOffset: j + 4, as: UInt8.self)
                        or(j - 4, (ls >> 4) << 6)
                        or(j, (lm >> 4) << 6)
                    }
                }
                LegacyQuants.storeHalf(y, 0, maxScale / 63)
                LegacyQuants.storeHalf(y, 2, maxMin / 63)
                let dAll = LegacyQuants.loadHalf(y, 0), dminAll = LegacyQuants.loadHalf(y, 2)
                for j in 0..<8 {
                    let (s, m) = scaleMin(j, sc)
                    let d = dAll * Float(s)
                    if d == 0 { continue }
                    let dm = dminAll * Float(m)
                    for ii in 0..<32 {
                        let l = CRound.nearestInt((x[32 * j + ii] + dm) / d)
                        L[32 * j + ii] = UInt8(truncatingIfNeeded: Swift.max(0, Swift.min(nmax, l)))
                    }
                }
            }
        }
    }

    static func quantizeQ4_K(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, _ k: Int) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: qk) { buf in
            let L = buf.baseAddress!
            for i in 0..<(k / qk) {
                let xb = x + i * qk, yb = y + i * 144
                quantizeScaleMinBlock(xb, yb, 15, rmin: -1, rdelta: 0.1, nstep: 20, L)
                for (n, j) in stride(from: 0, to: qk, by: 64).enumerated() {
                    for l in 0..<32 {
                        yb.storeBytes(of: L[j + l] | (L[j + l + 32] << 4), toByteOffset: 16 + n * 32 + l, as: UInt8.self)
                    }
                }
            }
        }
    }

    static func quantizeQ5_K(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, _ k: Int) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: qk) { buf in
            let L = buf.baseAddress!
            for i in 0..<(k / qk) {
                let xb = x + i * qk, yb = y + i * 176
                quantizeScaleMinBlock(xb, yb, 31, rmin: -0.5, rdelta: 0.1, nstep: 15, L)
                let qh = yb + 16, ql = yb + 48
                for j in 0..<32 { qh.storeBytes(of: 0, toByteOffset: j, as: UInt8.self) }
                var m1: UInt8 = 1, m2: UInt8 = 2
                for (n, base) in stride(from: 0, to: qk, by: 64).enumerated() {
                    for j in 0..<32 {
                        var l1 = L[base + j], l2 = L[base + j + 32]
                        var h = qh.load(fromByteOffset: j, as: UInt8.self)
                        if l1 > 15 { l1 -= 16; h |= m1 }
                        if l2 > 15 { l2 -= 16; h |= m2 }
                        qh.storeBytes(of: h, toByteOffset: j, as: UInt8.self)
                        ql.storeBytes(of: l1 | (l2 << 4), toByteOffset: n * 32 + j, as: UInt8.self)
                    }
                    m1 <<= 2
                    m2 <<= 2
                }
            }
        }
    }

    static func quantizeQ6_K(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer, _ k: Int) {
        withUnsafeTemporaryAllocation(of: Int8.self, capacity: qk) { lbuf in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 16) { sbuf in
                let L = lbuf.baseAddress!, scales = sbuf.baseAddress!
                for i in 0..<(k / qk) {
                    let xb = x + i * qk, yb = y + i * 210
                    var maxScale: Float = 0, maxAbsScale: Float = 0
                    bk_make_qx_16x16(32, xb, L, scales)   // makeQX for the 16 groups, in parallel lanes
                    for ib in 0..<16 {
                        let s = scales[ib]
                        if abs(s) > maxAbsScale { maxAbsScale = abs(s); maxScale = s }
                    }
                    if maxAbsScale < 1e-15 {
                        for b in 0..<210 { yb.storeBytes(of: 0, toByteOffset: b, as: UInt8.self) }
                        continue
                    }
                    let iscale: Float = -128 / maxScale
                    LegacyQuants.storeHalf(yb, 208, 1 / iscale)
                    for ib in 0..<16 {
                        let s = Swift.min(127, CRound.nearestInt(iscale * scales[ib]))
                        yb.storeBytes(of: Int8(truncatingIfNeeded: s), toByteOffset: 192 + ib, as: Int8.self)
                    }
                    let dAll = LegacyQuants.loadHalf(yb, 208)
                    for j in 0..<16 {
                        let d = dAll * Float(yb.load(fromByteOffset: 192 + j, as: Int8.self))
                        if d == 0 { continue }
                        for ii in 0..<16 {
                            let l = Swift.max(-32, Swift.min(31, CRound.nearestInt(xb[16 * j + ii] / d)))
                            L[16 * j + ii] = Int8(truncatingIfNeeded: l + 32)
                        }
                    }
                    for (n, j) in stride(from: 0, to: qk, by: 128).enumerated() {
                        let ql = yb + n * 64, qh = yb + 128 + n * 32
                        for l in 0..<32 {
                            let a = UInt8(bitPattern: L[j + l]), b = UInt8(bitPattern: L[j + l + 32])
                            let c = UInt8(bitPattern: L[j + l + 64]), e = UInt8(bitPattern: L[j + l + 96])
                            ql.storeBytes(of: (a & 0xF) | ((c & 0xF) << 4), toByteOffset: l, as: UInt8.self)
                            ql.storeBytes(of: (b & 0xF) | ((e & 0xF) << 4), toByteOffset: l + 32, as: UInt8.self)
                            let h = (a >> 4) | ((b >> 4) << 2) | ((c >> 4) << 4) | ((e >> 4) << 6)
                            qh.storeBytes(of: h, toByteOffset: l, as: UInt8.self)
                        }
                    }
                }
            }
        }
    }

    // MARK: dequantize

    static func dequantizeQ4_K(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ k: Int) {
        var out = y
        for i in 0..<(k / qk) {
            let xb = x + i * 144
            let d = LegacyQuants.loadHalf(xb, 0), min = LegacyQuants.loadHalf(xb, 2)
            var q = xb + 16
            var s = 0
            for _ in stride(from: 0, to: qk, by: 64) {
                let (s1, m1) = scaleMin(s, xb + 4), (s2, m2) = scaleMin(s + 1, xb + 4)
                let d1 = d * Float(s1), mm1 = min * Float(m1), d2 = d * Float(s2), mm2 = min * Float(m2)
                for l in 0..<32 { out[l] = d1 * Float(q.load(fromByteOffset: l, as: UInt8.self) & 0xF) - mm1 }
                for l in 0..<32 { out[32 + l] = d2 * Float(q.load(fromByteOffset: l, as: UInt8.self) >> 4) - mm2 }
                out += 64
                q += 32
                s += 2
            }
        }
    }

    static func dequantizeQ5_K(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ k: Int) {
        var out = y
        for i in 0..<(k / qk) {
            let xb = x + i * 176
            let d = LegacyQuants.loadHalf(xb, 0), min = LegacyQuants.loadHalf(xb, 2)
            let qh = xb + 16
            var ql = xb + 48
            var s = 0
            var u1: UInt8 = 1, u2: UInt8 = 2
            for _ in stride(from: 0, to: qk, by: 64) {
                let (s1, m1) = scaleMin(s, xb + 4), (s2, m2) = scaleMin(s + 1, xb + 4)
                let d1 = d * Float(s1), mm1 = min * Float(m1), d2 = d * Float(s2), mm2 = min * Float(m2)
                for l in 0..<32 {
                    let lo = ql.load(fromByteOffset: l, as: UInt8.self), h = qh.load(fromByteOffset: l, as: UInt8.self)
                    out[l] = d1 * Float(Int(lo & 0xF) + (h & u1 != 0 ? 16 : 0)) - mm1
                    out[32 + l] = d2 * Float(Int(lo >> 4) + (h & u2 != 0 ? 16 : 0)) - mm2
                }
                out += 64
                ql += 32
                s += 2
                u1 <<= 2
                u2 <<= 2
            }
        }
    }

    static func dequantizeQ6_K(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ k: Int) {
        var out = y
        for i in 0..<(k / qk) {
            let xb = x + i * 210
            let d = LegacyQuants.loadHalf(xb, 208)
            for n in 0..<2 {
                let ql = xb + n * 64, qh = xb + 128 + n * 32, sc = xb + 192 + n * 8
                func s(_ i: Int) -> Float { Float(sc.load(fromByteOffset: i, as: Int8.self)) }
                for l in 0..<32 {
                    let is_ = l / 16
                    let a = ql.load(fromByteOffset: l, as: UInt8.self), b = ql.load(fromByteOffset: l + 32, as: UInt8.self)
                    let h = qh.load(fromByteOffset: l, as: UInt8.self)
                    let q1 = Int(a & 0xF | ((h >> 0) & 3) << 4) - 32
                    let q2 = Int(b & 0xF | ((h >> 2) & 3) << 4) - 32
                    let q3 = Int(a >> 4 | ((h >> 4) & 3) << 4) - 32
                    let q4 = Int(b >> 4 | ((h >> 6) & 3) << 4) - 32
                    out[l] = d * s(is_) * Float(q1)
                    out[l + 32] = d * s(is_ + 2) * Float(q2)
                    out[l + 64] = d * s(is_ + 4) * Float(q3)
                    out[l + 96] = d * s(is_ + 6) * Float(q4)
                }
                out += 128
            }
        }
    }
}
