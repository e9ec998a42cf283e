import Foundation
import Testing
@testable import BillaKit

/// The quantizers against ggml's reference bytes: gguf-py's ports for the 32-element types, and llama.cpp itself
/// (llama-cpp-python's bundled build, through llama_model_quantize) for every type, K-quants included. Expected
/// bytes come from scripts/fixtures/make_quant_fixtures.py.
enum QuantFixtures {
    static func path(_ name: String) -> String { Fixtures.path("quant/" + name) }

    static func bytes(_ name: String) throws -> [UInt8] {
        Array(try Data(contentsOf: URL(fileURLWithPath: path(name))))
    }

    /// edge.f32: 66 rows of 256 values (the last 2 overflow f16 scales; llama.cpp saw the first 64).
    static func edge() throws -> [Float] {
        try bytes("edge.f32").withUnsafeBytes { raw in
            (0..<(raw.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
        }
    }

    /// golden.json: per model ("f32" or a llama-quantize file type) the file's sha256 and its tensors.
    struct Golden: Decodable { let edge: [String: String]; let model: [String: Model] }
    struct Model: Decodable {
        let sha256: String
        let data_offset: Int?
        let tensors: [Entry]
    }
    struct Entry: Decodable {
        let name: String
        let shape: [Int]?
        let kind: String?
        let seed: String?
        let type: String?
        let sha256: String?
    }

    static func golden() throws -> Golden {
        try JSONDecoder().decode(Golden.self, from: Data(contentsOf: URL(fileURLWithPath: path("golden.json"))))
    }
}

func compareBlocks(_ got: [UInt8], _ want: [UInt8], _ type: QuantType, _ what: String) {
    let diff = got.withUnsafeBytes { g in want.withUnsafeBytes { w in firstDifference(g, w, elementSize: type.bytesPerBlock) } }
    #expect(diff == nil, "\(what) (\(type.rawValue), block = \(type.bytesPerBlock) bytes): \(diff ?? "")")
}

@Suite("Quantizers match ggml")
struct QuantTests {
    @Test("32-element types match gguf-py byte for byte on the edge cases", arguments: ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1"])
    func legacyMatchesGGUFPy(_ name: String) throws {
        let type = try #require(QuantType(name: name))
        let got = Quantizer.quantize(try QuantFixtures.edge(), cols: 256, to: type)
        compareBlocks(got, try QuantFixtures.bytes("edge.\(name).bin"), type, "edge.f32 vs gguf-py")
    }

    @Test("every type matches llama.cpp's llama_model_quantize on the edge rows",
          arguments: ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q4_k_s", "q4_k_m", "q5_k_s", "q5_k_m", "q6_k"])
    func matchesLlamaCpp(_ ftype: String) throws {
        let golden = try QuantFixtures.golden()
        let entry = try #require(golden.model[ftype]?.tensors.first { $0.name == "blk.0.attn_q.weight" })
        let typeName = try #require(entry.type)
        let type = try #require(QuantType(name: typeName))
        let rows = Array(try QuantFixtures.edge().prefix(64 * 256))   // the rows llama.cpp saw
        let got = Quantizer.quantize(rows, cols: 256, to: type)
        compareBlocks(got, try QuantFixtures.bytes("tiny-\(ftype).attn_q.bin"), type, "edge rows vs llama.cpp \(ftype)")
    }

    @Test("threads do not change the bytes")
    func threadsAgree() throws {
        let edge = try QuantFixtures.edge()
        let w = (0..<256).map { Float(1 + $0 % 7) }
        for t in QuantType.allCases {
            // IQ2_XXS / IQ2_XS have no unweighted form (ggml asserts importance weights)
            let imp = t.requiresImportance ? w : nil
            #expect(Quantizer.quantize(edge, cols: 256, to: t, threads: 1, importance: imp) == Quantizer.quantize(edge, cols: 256, to: t, threads: 3, importance: imp))
        }
    }

    /// Noise with a per-row scale, like weights.
    static func noise(rows: Int, cols: Int, seed: UInt64) -> [Float] {
        var s = seed
        var out = [Float]()
        out.reserveCapacity(rows * cols)
        for r in 0..<rows {
            let scale = Float(1 << (r % 6)) / 64
            for _ in 0..<cols {
                // Box-Muller over splitmix64.
                func next() -> Double {
                    s &+= 0x9E37_79B9_7F4A_7C15
                    var z = s
                    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
                    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
                    return Double((z ^ (z >> 31)) >> 11) / Double(1 << 53)
                }
                let g = (-2 * log(max(next(), 1e-300))).squareRoot() * cos(2 * .pi * next())
                out.append(Float(g) * scale)
            }
        }
        return out
    }

    /// Worst error of dequantize(quantize(x)) relative to each block's largest magnitude, and the relative RMS
    /// error over everything. The max bounds follow from each format (half a step, or a whole step at the clipped
    /// end of the symmetric types, plus f16 rounding of the scale); the RMS bounds are loose ceilings.
    @Test("dequantize(quantize(x)) stays within each type's error bound",
          arguments: [("q8_0", 0.0045, 0.01), ("q4_0", 0.126, 0.12), ("q4_1", 0.068, 0.09), ("q5_0", 0.0632, 0.06),
                      ("q5_1", 0.034, 0.045), ("q4_K", 0.15, 0.09), ("q5_K", 0.08, 0.045), ("q6_K", 0.04, 0.022)])
    func errorBounds(_ name: String, _ maxBound: Double, _ rmsBound: Double) throws {
        let type = try #require(QuantType(name: name))
        let cols = 512
        let x = Self.noise(rows: 48, cols: cols, seed: 42)
        let y = Quantizer.dequantize(Quantizer.quantize(x, cols: cols, to: type), from: type)
        try #require(y.count == x.count)
        var worst = 0.0, worstAt = 0, se = 0.0, ss = 0.0
        let b = type.blockSize
        for start in stride(from: 0, to: x.count, by: b) {
            let amax = Double(x[start..<(start + b)].map { abs($0) }.max() ?? 0)
            for i in start..<(start + b) {
                let e = Double(abs(y[i] - x[i]))
                se += e * e
                ss += Double(x[i]) * Double(x[i])
                if amax > 0, e / amax > worst { worst = e / amax; worstAt = i }
            }
        }
        let rms = (se / ss).squareRoot()
        #expect(worst <= maxBound, "\(name): worst error \(worst) × block amax at element \(worstAt) (x \(x[worstAt]), got \(y[worstAt]))")
        #expect(rms <= rmsBound, "\(name): relative RMS error \(rms)")
        #expect(rms > 0, "\(name): lossy types cannot be exact on noise")
    }

    @Test("zero rows quantize to zero and back")
    func zeros() {
        for t in QuantType.allCases {
            let z = [Float](repeating: 0, count: 512)
            let imp = t.requiresImportance ? [Float](repeating: 1, count: 512) : nil
            #expect(Quantizer.dequantize(Quantizer.quantize(z, cols: 512, to: t, importance: imp), from: t).allSatisfy { $0 == 0 }, "\(t.rawValue)")
        }
    }

    @Test("the type table agrees with ggml's block sizes")
    func table() {
        // 2 bytes per f16 field + packed quants, from ggml-common.h's static_asserts.
        #expect(QuantType.q4_0.bytesPerBlock == 2 + 16)
        #expect(QuantType.q5_1.bytesPerBlock == 4 + 4 + 16)
        #expect(QuantType.q4_K.bytesPerBlock == 4 + 12 + 128)
        #expect(QuantType.q5_K.bytesPerBlock == 4 + 12 + 32 + 128)
        #expect(QuantType.q6_K.bytesPerBlock == 128 + 64 + 16 + 2)
        #expect(DType.q6_K.byteCount(elements: 512) == 420)
        #expect(DType.q8_0.byteCount(elements: 40) == nil)
        #expect(Shape.byteCount([3, 64], .q4_0) == 3 * 2 * 18)
    }
}
