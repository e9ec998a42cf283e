import CKernels
import Testing

@Suite("arithmetic kernels")
struct ArithKernelTests {
    /// Swift's own Float16(Float) rounds to nearest even and is an independent implementation; NaN payloads are the
    /// one place torch's rule (sign | 0x7E00) differs from it.
    static func checkNarrow(body: Int32, name: String) {
        var bits: [UInt32] = [0, 0x8000_0000, 0x7F80_0000, 0xFF80_0000, 0x7FC0_0000, 0xFFC0_0001, 0x7F80_0001,
                              0x3380_0000, 0x3380_0001, 0x337F_FFFF, 0x4780_0000, 0x477F_F000, 0x477F_EFFF]
        var u: UInt32 = 0
        while true { bits.append(u); let (next, overflow) = u.addingReportingOverflow(4099); if overflow { break }; u = next }
        let floats = bits.map { Float(bitPattern: $0) }
        var out = [UInt16](repeating: 0, count: floats.count)
        let ran = floats.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { bk_f32_to_f16_using(body, src.baseAddress, $0.baseAddress, Int64(src.count)) }
        }
        #expect(ran == 1, "the \(name) body did not run")
        var first: String? = nil
        for (i, f) in floats.enumerated() where first == nil {
            let want: UInt16 = f.isNaN ? UInt16((f.bitPattern >> 16) & 0x8000) | 0x7E00 : Float16(f).bitPattern
            if out[i] != want { first = "element \(i): f32 0x\(String(f.bitPattern, radix: 16)) gave 0x\(String(out[i], radix: 16)), want 0x\(String(want, radix: 16))" }
        }
        #expect(first == nil, "\(name): \(first ?? "")")
    }

    @Test("f32 -> f16, portable body: equals Swift's Float16 conversion on a sweep of bit patterns, NaN as torch writes it")
    func narrowPortable() { Self.checkNarrow(body: KernelBodies.portable, name: "portable") }

    @Test("f32 -> f16, F16C body: equals Swift's Float16 conversion on a sweep of bit patterns, NaN as torch writes it",
          .enabled(if: KernelBodies.hasAVX2, KernelBodies.noAVX2))
    func narrowF16C() { Self.checkNarrow(body: KernelBodies.avx2, name: "AVX2/F16C") }

    @Test("the double sum equals a sequential double sum to rounding")
    func sum() {
        var rng = SplitMix64(seed: 1)
        for n in [0, 1, 7, 8, 9, 1000, 100_003] {
            let a = (0..<n).map { _ in Float.random(in: -1...1, using: &rng) }
            let want = a.reduce(0.0) { $0 + Double($1) }
            let got = a.withUnsafeBufferPointer { bk_sum_f64($0.baseAddress, Int64(n)) }
            #expect(abs(got - want) <= 1e-12 * Double(max(n, 1)), "n \(n): \(got) vs \(want)")
        }
    }
}

@Suite("Q6_K scale search")
struct MakeQXKernelTests {
    /// The Q6_K goldens in QuantTests hold the whole quantizer to llama.cpp; this holds the two bodies of its
    /// scale search to each other on awkward groups: all zero, tiny, one spike, ties, negative maxima.
    @Test("the AVX-512 lanes give the scalar body's scales and levels bit for bit",
          .enabled(if: KernelBodies.hasAVX512, KernelBodies.noAVX512))
    func lanesAgree() {
        var rng = SplitMix64(seed: 2)
        for trial in 0..<200 {
            var x = (0..<256).map { _ in Float.random(in: -1...1, using: &rng) * Float(trial % 7 + 1) * 0.01 }
            for g in 0..<16 {
                switch (trial + g) % 6 {
                case 0: for i in 0..<16 { x[16 * g + i] = 0 }
                case 1: for i in 0..<16 { x[16 * g + i] *= 1e-17 }
                case 2: x[16 * g + 3] = -5
                case 3: for i in 0..<16 { x[16 * g + i] = Float(i % 3) - 1 }
                default: break
                }
            }
            var l0 = [Int8](repeating: 0, count: 256), l1 = l0
            var s0 = [Float](repeating: 0, count: 16), s1 = s0
            #expect(bk_make_qx_16x16_using(KernelBodies.avx512, 32, x, &l0, &s0) == 1, "the AVX-512 body did not run")
            #expect(bk_make_qx_16x16_using(KernelBodies.portable, 32, x, &l1, &s1) == 1)
            if let g = (0..<16).first(where: { s0[$0].bitPattern != s1[$0].bitPattern }) {
                Issue.record("trial \(trial) group \(g): scale \(s0[g]) vs \(s1[g])")
            }
            if let i = (0..<256).first(where: { l0[$0] != l1[$0] }) {
                Issue.record("trial \(trial) element \(i) (group \(i / 16)): level \(l0[i]) vs \(l1[i])")
            }
        }
    }
}

@Suite("Q4_K/Q5_K scale search")
struct MakeQKX2KernelTests {
    @Test("the AVX-512 lanes give the scalar body's scales, minima and levels bit for bit (Q4_K and Q5_K settings)",
          .enabled(if: KernelBodies.hasAVX512, KernelBodies.noAVX512))
    func lanesAgree() {
        var rng = SplitMix64(seed: 3)
        for trial in 0..<200 {
            var x = (0..<256).map { _ in Float.random(in: -1...1, using: &rng) * Float(trial % 5 + 1) * 0.02 }
            for g in 0..<8 {
                switch (trial + g) % 7 {
                case 0: for i in 0..<32 { x[32 * g + i] = 0.25 }                   // flat: max == min after the clamp
                case 1: for i in 0..<32 { x[32 * g + i] = abs(x[32 * g + i]) + 0.1 } // all positive: min clamps to 0
                case 2: x[32 * g + 5] = 3                                           // one spike
                case 3: for i in 0..<32 { x[32 * g + i] = Float(i % 4) * 0.01 }     // ties
                default: break
                }
            }
            for (nmax, rmin, rdelta, nstep): (Int32, Float, Float, Int32) in [(15, -1, 0.1, 20), (31, -0.5, 0.1, 15)] {
                var l0 = [UInt8](repeating: 0, count: 256), l1 = l0
                var s0 = [Float](repeating: 0, count: 8), s1 = s0, m0 = s0, m1 = s0
                #expect(bk_make_qkx2_8x32_using(KernelBodies.avx512, nmax, x, rmin, rdelta, nstep, &l0, &s0, &m0) == 1, "the AVX-512 body did not run")
                #expect(bk_make_qkx2_8x32_using(KernelBodies.portable, nmax, x, rmin, rdelta, nstep, &l1, &s1, &m1) == 1)
                if let g = (0..<8).first(where: { s0[$0].bitPattern != s1[$0].bitPattern || m0[$0].bitPattern != m1[$0].bitPattern }) {
                    Issue.record("nmax \(nmax) trial \(trial) group \(g): scale \(s0[g]) vs \(s1[g]), min \(m0[g]) vs \(m1[g])")
                }
                if let i = (0..<256).first(where: { l0[$0] != l1[$0] }) {
                    Issue.record("nmax \(nmax) trial \(trial) element \(i) (group \(i / 32)): level \(l0[i]) vs \(l1[i])")
                }
            }
        }
    }
}

@Suite("Q8_0 quantizer")
struct Q8KernelTests {
    /// Halfway values (x * id = k + 0.5 exactly: amax 127 makes id 1) must round away from zero in both bodies.
    @Test("the AVX-512 body writes the scalar body's blocks, halfway cases included",
          .enabled(if: KernelBodies.hasAVX512, KernelBodies.noAVX512))
    func bodiesAgree() {
        var rng = SplitMix64(seed: 4)
        var x = (0..<(32 * 64)).map { _ in Float.random(in: -2...2, using: &rng) }
        for j in 0..<32 { x[j] = j == 0 ? 127 : Float(j) - 16.5 }                  // block 0: amax 127, halves
        for j in 32..<64 { x[j] = 0 }                                                // block 1: all zero
        var a = [UInt8](repeating: 0, count: 64 * 34), b = a
        #expect(bk_quantize_q8_0_using(KernelBodies.avx512, x, &a, Int64(x.count)) == 1, "the AVX-512 body did not run")
        #expect(bk_quantize_q8_0_using(KernelBodies.portable, x, &b, Int64(x.count)) == 1)
        let first = (0..<a.count).first { a[$0] != b[$0] }
        #expect(first == nil, "block \((first ?? 0) / 34) byte \((first ?? 0) % 34): \(a[first ?? 0]) vs \(b[first ?? 0])")
        #expect(Int8(bitPattern: a[2 + 1]) == -16 && Int8(bitPattern: a[2 + 31]) == 15, "14.5 -> 15, -15.5 -> -16")
    }
}
