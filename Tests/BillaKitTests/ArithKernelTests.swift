import CKernels
import Testing

@Suite("arithmetic kernels")
struct ArithKernelTests {
    /// Swift's own Float16(Float) rounds to nearest even and is an independent implementation; NaN payloads are the
    /// one place torch's rule (sign | 0x7E00) differs from it.
    @Test("f32 -> f16: both bodies equal Swift's Float16 conversion on a sweep of bit patterns, NaN as torch writes it")
    func narrow() {
        var bits: [UInt32] = [0, 0x8000_0000, 0x7F80_0000, 0xFF80_0000, 0x7FC0_0000, 0xFFC0_0001, 0x7F80_0001,
                              0x3380_0000, 0x3380_0001, 0x337F_FFFF, 0x4780_0000, 0x477F_F000, 0x477F_EFFF]
        var u: UInt32 = 0
        while true { bits.append(u); let (next, overflow) = u.addingReportingOverflow(4099); if overflow { break }; u = next }
        let floats = bits.map { Float(bitPattern: $0) }
        for portable: Int32 in [0, 1] {
            var out = [UInt16](repeating: 0, count: floats.count)
            floats.withUnsafeBufferPointer { src in
                out.withUnsafeMutableBufferPointer { bk_f32_to_f16_using(portable, src.baseAddress, $0.baseAddress, Int64(src.count)) }
            }
            var first: String? = nil
            for (i, f) in floats.enumerated() where first == nil {
                let want: UInt16 = f.isNaN ? UInt16((f.bitPattern >> 16) & 0x8000) | 0x7E00 : Float16(f).bitPattern
                if out[i] != want { first = "element \(i): f32 0x\(String(f.bitPattern, radix: 16)) gave 0x\(String(out[i], radix: 16)), want 0x\(String(want, radix: 16))" }
            }
            #expect(first == nil, "portable \(portable): \(first ?? "")")
        }
    }

    @Test("the double sum equals a sequential double sum to rounding")
    func sum() {
        var rng = SystemRandomNumberGenerator()
        for n in [0, 1, 7, 8, 9, 1000, 100_003] {
            let a = (0..<n).map { _ in Float.random(in: -1...1, using: &rng) }
            let want = a.reduce(0.0) { $0 + Double($1) }
            let got = a.withUnsafeBufferPointer { bk_sum_f64($0.baseAddress, Int64(n)) }
            #expect(abs(got - want) <= 1e-12 * Double(max(n, 1)), "n \(n): \(got) vs \(want)")
        }
    }
}
