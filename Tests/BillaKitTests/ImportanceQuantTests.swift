import CKernels
import Foundation
import Testing
@testable import BillaKit

/// Importance-weighted quantization against ggml itself: ggml_quantize_chunk with an imatrix, from libggml-base.so of
/// llama.cpp as vendored by llama-cpp-python 0.3.36 (scripts/fixtures/make_importance_quant_fixtures.py).
enum ImportanceFixtures {
    /// The wide-rows check both quantizer suites run: the head's first differing block, then the first row whose
    /// SHA-256 (prefix) differs from ggml's, then the whole output's SHA-256.
    static func checkWide(_ got: [UInt8], _ type: QuantType, rows: Int, cols: Int, head: [UInt8], rowHashes: String, sha256: String,
                          label: String) throws {
        let rowBytes = try #require(type.rowBytes(cols))
        try #require(got.count == rows * rowBytes)
        let diff = firstDifferingBlock(Array(got.prefix(head.count)), head, type, cols: cols)
        #expect(diff == nil, "wide rows: \(diff ?? "")")
        let hashes = rowHashes.split(separator: " ").map(String.init)
        try #require(hashes.count == rows)
        let firstBadRow = got.withUnsafeBytes { raw in
            (0..<rows).first { r in
                !sha256Hex(UnsafeRawBufferPointer(rebasing: raw[(r * rowBytes)..<((r + 1) * rowBytes)])).hasPrefix(hashes[r])
            }
        }
        #expect(firstBadRow == nil, "wide rows, \(label): row \(firstBadRow ?? -1) is the first whose sha256 differs from ggml's")
        #expect(got.withUnsafeBytes { sha256Hex($0) } == sha256)
    }

    static func path(_ name: String) -> String { QuantFixtures.path("importance/" + name) }

    struct Golden: Decodable {
        let edge: Edge
        let narrow: Narrow
        let wide: Wide
        let llama_quantize: [String: LlamaQuantize]
    }
    /// llama-quantize --imatrix wide-imatrix.gguf of make_lowbit_fixtures.py's wide model, per file type.
    struct LlamaQuantize: Decodable {
        let sha256: String
        let tensors: [LQTensor]
    }
    struct LQTensor: Decodable { let name: String; let type: String; let sha256: String; let imatrix: Bool }
    struct Edge: Decodable { let rows: Int; let cols: Int; let importance: [String] }
    struct Narrow: Decodable { let rows: Int; let cols: Int; let types: [String] }
    struct Wide: Decodable {
        let rows: Int, cols: Int, head_rows: Int
        let seed: String, importance_seed: String
        let zero_every: Int
        let types: [String: WideType]
    }
    struct WideType: Decodable { let sha256: String; let rows: String }

    static let golden: Result<Golden, Error> = Result {
        try JSONDecoder().decode(Golden.self, from: Data(contentsOf: URL(fileURLWithPath: path("golden.json"))))
    }

    static func floats(_ bytes: [UInt8]) -> [Float] { bytes.withUnsafeBytes { floats($0) } }

    static func floats(_ raw: UnsafeRawBufferPointer) -> [Float] {
        (0..<(raw.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
    }

    /// A tensor's importance from llama-imatrix's GGUF output, as llama-quantize's load_imatrix computes it: each
    /// `<tensor>.in_sum2` value divided by the `<tensor>.counts` value (1 where the count is 0).
    static func imatrixEntry(_ file: GGUFFile, _ tensor: String) throws -> [Float] {
        func read(_ name: String) throws -> [Float] {
            let t = try #require(file.tensor(named: name), "\(name) is not in wide-imatrix.gguf")
            return floats(try file.file.bytes(at: file.dataOffset + t.offset, count: t.byteCount, what: name))
        }
        let sums = try read(tensor + ".in_sum2"), counts = try read(tensor + ".counts")
        try #require(counts.count == 1, "\(tensor): one count (no experts)")
        return counts[0] > 0 ? sums.map { $0 / counts[0] } : sums.map { _ in 1 }
    }

    /// The edge importance vector `name` (importance-edge.f32 holds them in golden.json's order).
    static func edgeImportance(_ name: String) throws -> [Float] {
        let g = try golden.get()
        let i = try #require(g.edge.importance.firstIndex(of: name))
        let all = floats(Array(try Data(contentsOf: URL(fileURLWithPath: path("importance-edge.f32")))))
        return Array(all[(i * g.edge.cols)..<((i + 1) * g.edge.cols)])
    }

    /// The generator's wide_importance(): (v*v + 2^-8) * 2^k per column, v the splitmix uniform in [-1, 1), k in
    /// [-8, 7], and 0 every `zeroEvery` columns. Exact f32 operations, so both sides get the same bits.
    static func wideImportance(seed: UInt64, cols: Int, zeroEvery: Int) -> [Float] {
        (0..<cols).map { c in
            if c % zeroEvery == 0 { return 0 }
            let u = Float(TinyGGUF.splitmix(seed, c) >> 40) * Float(sign: .plus, exponent: -24, significand: 1)
            let v = 2 * u - 1
            let k = Int(TinyGGUF.splitmix(seed ^ 0x5EED, c) % 16) - 8
            return (v * v + Float(sign: .plus, exponent: -8, significand: 1)) * Float(sign: .plus, exponent: k, significand: 1)
        }
    }

    /// The wide case's values and importance, built once.
    static let wide: Result<(values: [Float], importance: [Float]), Error> = Result {
        let w = try golden.get().wide
        let seed = try #require(UInt64(w.seed)), iseed = try #require(UInt64(w.importance_seed))
        return (TinyGGUF.values(seed: seed, rows: w.rows, cols: w.cols, kind: "weight"),
                wideImportance(seed: iseed, cols: w.cols, zeroEvery: w.zero_every))
    }

    /// Where two quantized tensors of `cols`-wide rows first differ: type, row, block in the row, and both blocks'
    /// bytes. nil when equal.
    static func firstDifferingBlock(_ got: [UInt8], _ want: [UInt8], _ type: QuantType, cols: Int) -> String? {
        if got.count != want.count { return "\(type.rawValue): \(got.count) bytes vs ggml's \(want.count)" }
        let b = type.bytesPerBlock, perRow = cols / type.blockSize
        for i in 0..<got.count where got[i] != want[i] {
            let block = i / b
            let hex = { (a: [UInt8]) in a[(block * b)..<((block + 1) * b)].map { String(format: "%02x", $0) }.joined() }
            return "\(type.rawValue): row \(block / perRow), block \(block % perRow) (byte \(i - block * b) of \(b)) differs:\n"
                + "  billa \(hex(got))\n  ggml  \(hex(want))"
        }
        return nil
    }
}

@Suite("Importance-weighted quantizers match ggml_quantize_chunk")
struct ImportanceQuantTests {
    static let types = ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "iq4_nl", "iq4_xs"]

    @Test("the 64 edge rows with lognormal and sparse importance", arguments: types, ["lognormal", "sparse"])
    func edgeRows(_ name: String, _ importance: String) throws {
        let type = try #require(QuantType(name: name))
        let g = try ImportanceFixtures.golden.get()
        let rows = Array(try QuantFixtures.edge().prefix(g.edge.rows * g.edge.cols))
        let w = try ImportanceFixtures.edgeImportance(importance)
        let got = Quantizer.quantize(rows, cols: g.edge.cols, to: type, importance: w)
        let want = try QuantFixtures.bytes("importance/edge-\(importance).\(name).bin")
        let diff = ImportanceFixtures.firstDifferingBlock(got, want, type, cols: g.edge.cols)
        #expect(diff == nil, "edge rows, \(importance) importance: \(diff ?? "")")
    }

    @Test("16 rows of 544 (17 32-blocks: one after the lanes' 16- and 8-block groups)", arguments: ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "iq4_nl"])
    func narrowRows(_ name: String) throws {
        let type = try #require(QuantType(name: name))
        let g = try ImportanceFixtures.golden.get().narrow
        try #require(g.types.contains(name))
        let x = ImportanceFixtures.floats(try QuantFixtures.bytes("importance/narrow.f32"))
        let w = ImportanceFixtures.floats(try QuantFixtures.bytes("importance/narrow-importance.f32"))
        try #require(x.count == g.rows * g.cols && w.count == g.cols)
        let got = Quantizer.quantize(x, cols: g.cols, to: type, importance: w)
        let diff = ImportanceFixtures.firstDifferingBlock(got, try QuantFixtures.bytes("importance/narrow.\(name).bin"), type, cols: g.cols)
        #expect(diff == nil, "narrow rows: \(diff ?? "")")
    }

    @Test("256 rows of 4096 (1 Mi values), two threads", arguments: types)
    func wideRows(_ name: String) throws {
        let type = try #require(QuantType(name: name))
        let g = try ImportanceFixtures.golden.get().wide
        let want = try #require(g.types[name])
        let (x, w) = try ImportanceFixtures.wide.get()
        let got = Quantizer.quantize(x, cols: g.cols, to: type, threads: 2, importance: w)
        try ImportanceFixtures.checkWide(got, type, rows: g.rows, cols: g.cols, head: try QuantFixtures.bytes("importance/wide-head.\(name).bin"),
                                         rowHashes: want.rows, sha256: want.sha256, label: name)
    }

    /// The goldens test the body this CPU runs; this holds the other one to the same bytes.
    @Test("the scalar searches and the AVX-512 / AVX2 lanes write the same weighted bytes",
          .enabled(if: KernelBodies.hasAVX512 && KernelBodies.hasAVX2, KernelBodies.noAVX512))
    func bodiesAgree() throws {
        let cols = 4096, rows = 24
        let (wide, w) = try ImportanceFixtures.wide.get()
        var x = Array(wide.prefix(rows * cols))
        for c in stride(from: 0, to: cols, by: 3) { x[5 * cols + c] = 0 }              // zero groups
        for c in 0..<cols { x[7 * cols + c] = abs(x[7 * cols + c]) + 1e-3 }            // all positive: min clamps to 0
        for c in 0..<cols { x[9 * cols + c] = 0.25 }                                    // flat
        for name in Self.types {
            let type = try #require(QuantType(name: name))
            let k = try #require(KernelType.of(type.dtype))
            let rowBytes = try #require(type.rowBytes(cols))
            var a = [UInt8](repeating: 0, count: rows * rowBytes), b = a
            let ran = x.withUnsafeBufferPointer { xp in
                w.withUnsafeBufferPointer { wp in
                    a.withUnsafeMutableBytes { ap in
                        b.withUnsafeMutableBytes { bp in
                            (0..<rows).allSatisfy { r in
                                let src = xp.baseAddress! + r * cols
                                return bk_quantize_row_importance_using(KernelBodies.portable, k, src, ap.baseAddress! + r * rowBytes, Int64(cols), wp.baseAddress) == 1
                                    && bk_quantize_row_importance_using(KernelBodies.avx512, k, src, bp.baseAddress! + r * rowBytes, Int64(cols), wp.baseAddress) == 1
                            }
                        }
                    }
                }
            }
            try #require(ran, "\(name): a body did not run")
            let diff = ImportanceFixtures.firstDifferingBlock(b, a, type, cols: cols)
            #expect(diff == nil, "lanes vs scalar: \(diff ?? "")")
        }
    }

    /// End to end against the tool: a real imatrix (llama-imatrix's GGUF output, committed) applied by
    /// llama-quantize --imatrix to every tensor it has an entry for; billa quantizes the same tensors of the same
    /// model to the types llama-quantize chose, with the entries as llama-quantize reads them. Three file types
    /// (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS tensors; each costs ~10 s in a debug build): the golden also holds
    /// q4_0, q4_1, q5_0, q5_1, q8_0, q5_k_m, q3_k_m, q6_k and iq4_nl, whose types the tests above cover, for the
    /// command's --imatrix test.
    @Test("llama-quantize --imatrix's tensors, byte for byte (wide model: 4096-wide ffn_down, 1 Mi-element ffn)",
          arguments: ["q4_k_m", "q2_k", "iq4_xs"])
    func llamaQuantize(_ ftype: String) throws {
        let want = try #require(try ImportanceFixtures.golden.get().llama_quantize[ftype])
        let src = try GGUFReader.open(try LowBitFixtures.widePath.get())
        let imatrix = try GGUFReader.open(ImportanceFixtures.path("wide-imatrix.gguf"))
        let weighted = want.tensors.filter(\.imatrix)
        try #require(weighted.count == 7, "the seven matrices of the layer have entries")
        for t in weighted {
            let type = try #require(QuantType(name: t.type), "\(t.name): \(t.type)")
            let info = try #require(src.tensor(named: t.name))
            let cols = try #require(info.shape.last)
            let x = ImportanceFixtures.floats(try src.file.bytes(at: src.dataOffset + info.offset, count: info.byteCount, what: t.name))
            let w = try ImportanceFixtures.imatrixEntry(imatrix, t.name)
            try #require(w.count == cols)
            let got = Quantizer.quantize(x, cols: cols, to: type, threads: 2, importance: w)
            #expect(got.withUnsafeBytes { sha256Hex($0) } == t.sha256, "\(ftype): \(t.name) (\(t.type), \(x.count / cols) x \(cols)) differs from llama-quantize --imatrix's")
        }
    }

    @Test("threads do not change the weighted bytes")
    func threadsAgree() throws {
        let rows = Array(try QuantFixtures.edge().prefix(64 * 256))
        let w = try ImportanceFixtures.edgeImportance("lognormal")
        for t in QuantType.allCases {
            #expect(Quantizer.quantize(rows, cols: 256, to: t, threads: 1, importance: w)
                    == Quantizer.quantize(rows, cols: 256, to: t, threads: 3, importance: w), "\(t.rawValue)")
        }
    }

    @Test("an importance vector of the wrong length, with a NaN or a negative weight is refused, naming the tensor")
    func checked() throws {
        let ok = [Float](repeating: 1, count: 256)
        try Quantizer.checkImportance(ok, cols: 256, tensor: "blk.0.ffn_down.weight")
        let cases: [([Float], String)] = [
            (Array(ok.prefix(128)), "128 weights for rows of 256"),
            (ok.enumerated().map { $0.offset == 7 ? .nan : $0.element }, "column 7"),
            (ok.enumerated().map { $0.offset == 9 ? -1 : $0.element }, "column 9"),
        ]
        for (w, says) in cases {
            let e = try #require(throws: BillaError.self) { try Quantizer.checkImportance(w, cols: 256, tensor: "blk.0.ffn_down.weight") }
            #expect(e.tensor == "blk.0.ffn_down.weight")
            #expect(e.description.contains(says), "\(e.description)")
            #expect(!e.remedy.isEmpty)
        }
    }
}
