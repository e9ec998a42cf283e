import CKernels
import Foundation
import Testing
@testable import BillaKit

/// The C chunk codec (CKernels/planes.c): every dispatch level against a scalar Swift reference written from
/// formats/pack.md 5.2, and XXH64 against the xxHash reference vectors.
@Suite("pack: codec kernels")
struct PackCodecKernelTests {
    /// xxHash's sanity buffer (xsum_sanity_check.c: byteGen starts at PRIME32 and is multiplied by PRIME64).
    static func sanityBuffer(_ n: Int) -> [UInt8] {
        var gen: UInt64 = 2_654_435_761
        return (0..<n).map { _ in
            let b = UInt8(gen >> 56)
            gen = gen &* 11_400_714_785_074_694_797
            return b
        }
    }

    @Test("XXH64 matches xxHash's sanity vectors (xsum_sanity_check.c), through the Swift API and bk_xxh64")
    func xxh64SanityVectors() {
        let prime32: UInt64 = 2_654_435_761
        // (length, seed, XXH64) from xxHash's xsum_sanity_check.c; the seed-0 lengths 2...4160 are its longer table.
        let vectors: [(Int, UInt64, UInt64)] = [
            (0, 0, 0xEF46_DB37_51D8_E999), (0, prime32, 0xAC75_FDA2_929B_17EF),
            (1, 0, 0xE934_A84A_DB05_2768), (1, prime32, 0x5014_6076_43A9_B4C3),
            (4, 0, 0x9136_A0DC_A574_57EE), (14, 0, 0x8282_DCC4_994E_35C8), (14, prime32, 0xC3BD_6BF6_3DEB_6DF0),
            (222, 0, 0xB641_AE8C_B691_C174), (222, prime32, 0x20CB_8AB7_AE10_C14A),
            (2, 0, 0x5D48_CD60_A77E_23FF), (3, 0, 0xFF7E_1959_CB50_794A), (8, 0, 0xCDBC_F538_E71D_1348),
            (9, 0, 0x554B_1AE9_91ED_A6B6), (16, 0, 0x98C9_0B57_FDFC_B55C), (17, 0, 0x0D39_A2D0_51A3_0C2C),
            (64, 0, 0xEF55_8F8A_CAC2_B5CD), (128, 0, 0x90CA_0214_57D9_6DC5), (129, 0, 0x41C2_8013_2D69_7ABA),
            (240, 0, 0xB818_38D4_83BA_EE53), (241, 0, 0x95D7_6C8B_4D8F_C4D6), (403, 0, 0xD998_58FE_E822_83DF),
            (512, 0, 0x4358_D2FD_D62B_58A7), (2048, 0, 0x5940_F275_2BC0_4387), (4160, 0, 0xEEE6_A4E2_AC95_2A5E),
        ]
        let buf = Self.sanityBuffer(4160)
        buf.withUnsafeBytes { all in
            for (n, seed, want) in vectors {
                let piece = UnsafeRawBufferPointer(rebasing: all[0..<n])
                #expect(XXH64.hash(piece, seed: seed) == want, "length \(n) seed \(seed)")
                #expect(bk_xxh64(piece.baseAddress, n, seed) == want, "bk_xxh64 length \(n) seed \(seed)")
            }
        }
    }

    // MARK: split / merge

    /// The spec's formulas, element by element.
    static func referenceSplit(_ t: PlaneTransform, _ src: [UInt8]) -> [[UInt8]] {
        switch t {
        case .none:
            return [src]
        case .bytes16, .bf16Exponent:
            let n = src.count / 2
            var p0 = [UInt8](repeating: 0, count: n), p1 = p0
            for k in 0..<n {
                let v = UInt16(src[2 * k]) | UInt16(src[2 * k + 1]) << 8
                if t == .bytes16 {
                    p0[k] = UInt8(v >> 8); p1[k] = UInt8(v & 0xFF)
                } else {
                    p0[k] = UInt8((v >> 7) & 0xFF); p1[k] = UInt8(((v >> 8) & 0x80) | (v & 0x7F))
                }
            }
            return [p0, p1]
        case .f32Exponent:
            let n = src.count / 4
            var p = [[UInt8]](repeating: [UInt8](repeating: 0, count: n), count: 4)
            for k in 0..<n {
                let v = (0..<4).reduce(UInt32(0)) { $0 | UInt32(src[4 * k + $1]) << (8 * $1) }
                p[0][k] = UInt8((v >> 23) & 0xFF)
                p[1][k] = UInt8(((v >> 24) & 0x80) | ((v >> 16) & 0x7F))
                p[2][k] = UInt8((v >> 8) & 0xFF)
                p[3][k] = UInt8(v & 0xFF)
            }
            return p
        }
    }

    /// Random bytes with the values whose bits sit at the edges (signs, all-ones exponents, zero) mixed in, or
    /// plain noise.
    static func testBytes(_ count: Int, seed: UInt64, edges: Bool = true) -> [UInt8] {
        var state = seed
        var out = [UInt8](repeating: 0, count: count)
        for i in 0..<count {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let r = UInt8(truncatingIfNeeded: state >> 56)
            out[i] = !edges ? r : i % 37 == 0 ? 0xFF : i % 41 == 0 ? 0x80 : i % 43 == 0 ? 0x7F : i % 47 == 0 ? 0 : r
        }
        return out
    }

    /// Odd element counts around every SIMD step (32, 64 elements) and the 8 KiB hashing block, plus a 1 MiB-ish one.
    static let elementCounts = [0, 1, 3, 7, 31, 33, 63, 65, 127, 129, 1023, 2047, 2049, 4095, 4097, 8193, 100_003, 262_147]

    /// One test per body and transform: a body this CPU lacks is skipped, saying so, never replaced by another one
    /// (the `_using` entry points return 0 for a level above bk_planes_best_level()).
    static let transforms = [PlaneTransform.bytes16, .bf16Exponent, .f32Exponent, .none]
    static let hasAVX2Planes = bk_planes_best_level() >= 2
    static let hasAVX512Planes = bk_planes_best_level() >= 3

    @Test("split, portable body: equals the spec's reference and returns XXH64 of the source, at odd lengths", arguments: transforms)
    func splitPortable(_ t: PlaneTransform) { Self.checkSplit(t, level: 1, name: "portable") }

    @Test("split, AVX2 body: equals the spec's reference and returns XXH64 of the source, at odd lengths",
          .enabled(if: hasAVX2Planes, "this CPU has no AVX2: the AVX2 planes body is not tested here"), arguments: transforms)
    func splitAVX2(_ t: PlaneTransform) { Self.checkSplit(t, level: 2, name: "AVX2") }

    @Test("split, AVX-512BW body: equals the spec's reference and returns XXH64 of the source, at odd lengths",
          .enabled(if: hasAVX512Planes, "this CPU has no AVX-512 F/BW: the AVX-512BW planes body is not tested here"), arguments: transforms)
    func splitAVX512(_ t: PlaneTransform) { Self.checkSplit(t, level: 3, name: "AVX-512BW") }

    @Test("merge, portable body: inverts the reference split and returns XXH64 of the output, at odd lengths", arguments: transforms)
    func mergePortable(_ t: PlaneTransform) { Self.checkMerge(t, level: 1, name: "portable") }

    @Test("merge, AVX2 body: inverts the reference split and returns XXH64 of the output, at odd lengths",
          .enabled(if: hasAVX2Planes, "this CPU has no AVX2: the AVX2 planes body is not tested here"), arguments: transforms)
    func mergeAVX2(_ t: PlaneTransform) { Self.checkMerge(t, level: 2, name: "AVX2") }

    @Test("merge, AVX-512BW body: inverts the reference split and returns XXH64 of the output, at odd lengths",
          .enabled(if: hasAVX512Planes, "this CPU has no AVX-512 F/BW: the AVX-512BW planes body is not tested here"), arguments: transforms)
    func mergeAVX512(_ t: PlaneTransform) { Self.checkMerge(t, level: 3, name: "AVX-512BW") }

    @Test("a planes body this CPU lacks is refused (returns 0, writes nothing), never run as another body")
    func missingBodyRefused() {
        let src = Self.testBytes(256, seed: 5)
        var planes = [UInt8](repeating: 0xA5, count: 256)
        let above = bk_planes_best_level() + 1
        let ran = src.withUnsafeBytes { s in
            planes.withUnsafeMutableBufferPointer { p in
                bk_planes_split_using(above, Int32(PlaneTransform.bytes16.rawValue), s.baseAddress, s.count, p.baseAddress, p.baseAddress! + 128, nil, nil, nil)
            }
        }
        #expect(ran == 0 && planes.allSatisfy { $0 == 0xA5 }, "level \(above) (above this CPU's best) ran")
    }

    static func checkSplit(_ t: PlaneTransform, level: Int32, name: String) {
        let es = t == .f32Exponent ? 4 : t == .none ? 1 : 2
        for n in Self.elementCounts {
            let src = Self.testBytes(n * es, seed: UInt64(n) &+ UInt64(t.rawValue) << 32)
            let want = Self.referenceSplit(t, src)
            let wantHash = src.withUnsafeBytes { XXH64.hash($0) }
            let planeSize = t == .none ? src.count : n
            for hash in [false, true] {
                var planes = [UInt8](repeating: 0xA5, count: max(planeSize * t.planeCount, 1))
                var h: UInt64 = 0
                let ran = src.withUnsafeBytes { s in
                    planes.withUnsafeMutableBufferPointer { p -> Int32 in
                        let b = p.baseAddress!
                        func at(_ i: Int) -> UnsafeMutablePointer<UInt8>? { i < t.planeCount ? b + i * planeSize : nil }
                        return hash ? bk_planes_split_using(level, Int32(t.rawValue), s.baseAddress, s.count, at(0), at(1), at(2), at(3), &h)
                                    : bk_planes_split_using(level, Int32(t.rawValue), s.baseAddress, s.count, at(0), at(1), at(2), at(3), nil)
                    }
                }
                #expect(ran == 1, "the \(name) body did not run")
                for p in 0..<t.planeCount {
                    let got = Array(planes[(p * planeSize)..<((p + 1) * planeSize)])
                    let same = got == want[p]   // a Bool, so a failure does not print a megabyte of operands
                    #expect(same, "\(t.name) \(name) n \(n) plane \(p)\(Self.firstDifference(got, want[p]))")
                }
                if hash { #expect(h == wantHash, "\(t.name) \(name) n \(n) hash") }
            }
        }
    }

    static func checkMerge(_ t: PlaneTransform, level: Int32, name: String) {
        let es = t == .f32Exponent ? 4 : t == .none ? 1 : 2
        for n in Self.elementCounts {
            let src = Self.testBytes(n * es, seed: UInt64(n) &* 31 &+ UInt64(t.rawValue))
            let planes = Self.referenceSplit(t, src)
            let wantHash = src.withUnsafeBytes { XXH64.hash($0) }
            for hash in [false, true] {
                var dst = [UInt8](repeating: 0x5A, count: src.count)
                var h: UInt64 = 0
                let ran = Self.withPlanes(planes) { p in
                    dst.withUnsafeMutableBytes { d in
                        hash ? bk_planes_merge_using(level, Int32(t.rawValue), p[0], p[1], p[2], p[3], d.baseAddress, d.count, &h)
                             : bk_planes_merge_using(level, Int32(t.rawValue), p[0], p[1], p[2], p[3], d.baseAddress, d.count, nil)
                    }
                }
                #expect(ran == 1, "the \(name) body did not run")
                let same = dst == src
                #expect(same, "\(t.name) \(name) n \(n)\(Self.firstDifference(dst, src))")
                if hash { #expect(h == wantHash, "\(t.name) \(name) n \(n) hash") }
            }
        }
    }

    @Test("merge of .none in place (dst is the decoded plane) only hashes")
    func mergeNoneInPlace() {
        var bytes = Self.testBytes(10_001, seed: 9)
        let want = bytes
        let h = bytes.withUnsafeMutableBytes { b in
            bk_planes_merge(0, b.baseAddress!.assumingMemoryBound(to: UInt8.self), nil, nil, nil, b.baseAddress, b.count, 1)
        }
        #expect(bytes == want)
        #expect(h == want.withUnsafeBytes { XXH64.hash($0) })
    }

    static func withPlanes<R>(_ planes: [[UInt8]], _ body: ([UnsafePointer<UInt8>?]) -> R) -> R {
        var ptrs = [UnsafePointer<UInt8>?](repeating: nil, count: 4)
        // Copies with stable addresses for the duration of the call.
        let copies = planes.map { p -> UnsafeMutableBufferPointer<UInt8> in
            let b = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: max(p.count, 1))
            _ = b.initialize(from: p)
            return b
        }
        defer { copies.forEach { $0.deallocate() } }
        for (i, c) in copies.enumerated() { ptrs[i] = UnsafePointer(c.baseAddress) }
        return body(ptrs)
    }

    static func firstDifference(_ a: [UInt8], _ b: [UInt8]) -> String {
        guard a.count == b.count else { return ": \(a.count) bytes vs \(b.count)" }
        guard let i = a.indices.first(where: { a[$0] != b[$0] }) else { return "" }
        return ": first difference at byte \(i): 0x\(String(a[i], radix: 16)) vs 0x\(String(b[i], radix: 16))"
    }

    // MARK: writer policy

    @Test("exponent planes are literal-only zstd frames that any decoder reads; the entropy test looks at a sample")
    func literalOnlyExponentPlanes() throws {
        let data = PackBenchmark.synthetic(.bf16, count: 1 << 19, seed: 3)   // 1 MiB
        let c = try data.withUnsafeBytes {
            try PackWriter.compressChunk($0, transform: .bf16Exponent, elementSize: 2, level: 3)
        }
        defer { c.release() }
        let planeSize = data.count / 2
        let exp = Int(c.planeLengths[0])
        #expect(exp < planeSize * 35 / 100, "exponent plane stored in \(exp) of \(planeSize) bytes")
        #expect(Int(c.planeLengths[1]) == planeSize)   // sign|mantissa is noise: raw
        // An ordinary frame: the library's one-shot decoder gives the reference exponent plane back.
        let frame = UnsafeRawBufferPointer(rebasing: c.bytes[0..<exp])
        #expect(Zstd.frameContentSize(frame) == planeSize)
        let decoded = try Zstd.decompress(frame, size: planeSize)
        #expect(decoded == Self.referenceSplit(.bf16Exponent, data)[0])
        #expect(c.hash == data.withUnsafeBytes { XXH64.hash($0) })

        // Only the first PlaneCodec.entropySample bytes decide: a constant head passes the test even over noise.
        var plane = Self.testBytes(4 * PlaneCodec.entropySample, seed: 11, edges: false)
        for i in 0..<PlaneCodec.entropySample { plane[i] = 7 }
        #expect(plane.withUnsafeBytes { PlaneCodec.entropy($0) } == 0)
        let noise = Self.testBytes(PlaneCodec.entropySample, seed: 12, edges: false)
        #expect(noise.withUnsafeBytes { PlaneCodec.entropy($0) } > 7.9)
    }
}
