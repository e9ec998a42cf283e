import CKernels
import Foundation
import Testing
@testable import BillaKit

/// llama.cpp's grid types against ggml itself: ggml_quantize_chunk and dequantize_row_* of libggml-base.so of llama.cpp
/// as vendored by llama-cpp-python 0.3.36 (scripts/fixtures/make_grid_quant_fixtures.py), and the grid tables against
/// the hashes make_grid_tables.py recorded from the llama.cpp source (and checked against gguf-py's copy).
enum GridFixtures {
    static func path(_ name: String) -> String { QuantFixtures.path("grid/" + name) }

    struct Golden: Decodable {
        let types: [String]
        let unweighted: [String]
        let edge: Edge
        let wide: ImportanceFixtures.Wide
    }
    struct Edge: Decodable {
        let rows: Int, cols: Int
        let importance: [String]
        let dequantized_rows: Int
        let dequantized_sha256: [String: String]
    }
    struct Tables: Decodable { let tables: [String: Table] }
    struct Table: Decodable { let type: String; let count: Int; let sha256: String }

    static let golden: Result<Golden, Error> = Result {
        try JSONDecoder().decode(Golden.self, from: Data(contentsOf: URL(fileURLWithPath: path("golden.json"))))
    }

    /// The wide case's rows and importance (the same formulas as the importance goldens').
    static let wide: Result<(values: [Float], importance: [Float]), Error> = Result {
        let w = try golden.get().wide
        let seed = try #require(UInt64(w.seed)), iseed = try #require(UInt64(w.importance_seed))
        return (TinyGGUF.values(seed: seed, rows: w.rows, cols: w.cols, kind: "weight"),
                ImportanceFixtures.wideImportance(seed: iseed, cols: w.cols, zeroEvery: w.zero_every))
    }

    static let types = ["iq2_xxs", "iq2_xs", "iq2_s", "iq3_xxs", "iq3_s", "iq1_s", "iq1_m", "tq1_0", "tq2_0"]
}

@Suite("Grid and ternary types (IQ1/IQ2/IQ3, TQ) match ggml_quantize_chunk and ggml's dequantization")
struct GridQuantTests {
    @Test("the 64 edge rows with lognormal and sparse importance", arguments: GridFixtures.types, ["lognormal", "sparse"])
    func edgeRows(_ name: String, _ importance: String) throws {
        let type = try #require(QuantType(name: name))
        let g = try GridFixtures.golden.get()
        try #require(g.types.contains(name), "the golden has no \(name)")
        let rows = Array(try QuantFixtures.edge().prefix(g.edge.rows * g.edge.cols))
        let w = try ImportanceFixtures.edgeImportance(importance)
        let got = Quantizer.quantize(rows, cols: g.edge.cols, to: type, importance: w)
        let want = try QuantFixtures.bytes("grid/edge-\(importance).\(name).bin")
        let diff = ImportanceFixtures.firstDifferingBlock(got, want, type, cols: g.edge.cols)
        #expect(diff == nil, "edge rows, \(importance) importance: \(diff ?? "")")
    }

    @Test("without importance, the types ggml quantizes without one", arguments: ["iq2_s", "iq3_xxs", "iq3_s", "iq1_m", "tq1_0", "tq2_0"])
    func unweighted(_ name: String) throws {
        let type = try #require(QuantType(name: name))
        let g = try GridFixtures.golden.get()
        try #require(g.unweighted.contains(name))
        #expect(!type.requiresImportance)
        let rows = Array(try QuantFixtures.edge().prefix(g.edge.rows * g.edge.cols))
        let got = Quantizer.quantize(rows, cols: g.edge.cols, to: type)
        let diff = ImportanceFixtures.firstDifferingBlock(got, try QuantFixtures.bytes("grid/edge-none.\(name).bin"), type, cols: g.edge.cols)
        #expect(diff == nil, "edge rows, no importance: \(diff ?? "")")
    }

    @Test("IQ2_XXS, IQ2_XS and IQ1_S need importance weights, as ggml asserts; the kernel writes nothing without them")
    func requiresImportance() {
        for t in QuantType.allCases {
            #expect(t.requiresImportance == [.iq2_xxs, .iq2_xs, .iq1_s].contains(t), "\(t.rawValue)")
        }
        for k in [BK_IQ2_XXS, BK_IQ2_XS, BK_IQ1_S] {
            var x = [Float](repeating: 1, count: 256), y = [UInt8](repeating: 0xAB, count: 74)
            #expect(bk_quantize_grid(Int32(k), &x, &y, 256, nil) == 0)
            #expect(y.allSatisfy { $0 == 0xAB })
        }
    }

    /// The goldens test the body this CPU runs; this holds the other one to the same bytes.
    @Test("the neighbour searches' portable and AVX2 bodies write ggml's bytes", arguments: GridFixtures.types)
    func bodies(_ name: String) throws {
        let type = try #require(QuantType(name: name))
        let kernel = try #require(KernelType.of(type.dtype))
        let g = try GridFixtures.golden.get().edge
        let rows = Array(try QuantFixtures.edge().prefix(g.rows * g.cols))
        let w = try ImportanceFixtures.edgeImportance("sparse")
        let want = try QuantFixtures.bytes("grid/edge-sparse.\(name).bin")
        let rowBytes = try #require(type.rowBytes(g.cols))
        for body in [BK_BODY_PORTABLE, BK_BODY_AVX2] {
            guard bk_cpu_has_body(Int32(body)) == 1 else {
                print("skipping the AVX2 body of \(name): this CPU lacks AVX2")
                continue
            }
            var got = [UInt8](repeating: 0, count: g.rows * rowBytes)
            for r in 0..<g.rows {
                let ran = rows.withUnsafeBufferPointer { x in
                    got.withUnsafeMutableBytes { y in
                        bk_quantize_grid_using(Int32(body), kernel, x.baseAddress! + r * g.cols, y.baseAddress! + r * rowBytes, Int64(g.cols), w)
                    }
                }
                #expect(ran == 1)
            }
            let diff = ImportanceFixtures.firstDifferingBlock(got, want, type, cols: g.cols)
            #expect(diff == nil, "body \(body): \(diff ?? "")")
        }
    }

    @Test("TQ1_0 and TQ2_0 ignore importance weights, as ggml does", arguments: ["tq1_0", "tq2_0"])
    func ternaryIgnoresWeights(_ name: String) throws {
        let type = try #require(QuantType(name: name))
        let rows = Array(try QuantFixtures.edge().prefix(64 * 256))
        let w = try ImportanceFixtures.edgeImportance("sparse")
        #expect(Quantizer.quantize(rows, cols: 256, to: type, importance: w) == Quantizer.quantize(rows, cols: 256, to: type))
    }

    @Test("256 rows of 4096 (1 Mi values) with importance, two threads", arguments: GridFixtures.types)
    func wideRows(_ name: String) throws {
        let type = try #require(QuantType(name: name))
        let g = try GridFixtures.golden.get().wide
        let want = try #require(g.types[name])
        let (x, w) = try GridFixtures.wide.get()
        let got = Quantizer.quantize(x, cols: g.cols, to: type, threads: 2, importance: w)
        try ImportanceFixtures.checkWide(got, type, rows: g.rows, cols: g.cols, head: try QuantFixtures.bytes("grid/wide-head.\(name).bin"),
                                         rowHashes: want.rows, sha256: want.sha256, label: name)
    }

    @Test("dequantization equals ggml's dequantize_row_* exactly", arguments: GridFixtures.types)
    func dequantize(_ name: String) throws {
        let type = try #require(QuantType(name: name))
        let g = try GridFixtures.golden.get().edge
        let bytes = try QuantFixtures.bytes("grid/edge-lognormal.\(name).bin")
        let got = Quantizer.dequantize(bytes, from: type)
        try #require(got.count == g.rows * g.cols)
        let want = ImportanceFixtures.floats(try QuantFixtures.bytes("grid/edge-lognormal.\(name).f32"))
        try #require(want.count == g.dequantized_rows * g.cols)
        let first = want.indices.first { got[$0].bitPattern != want[$0].bitPattern }
        #expect(first == nil, "\(name): value \(first ?? -1) (row \((first ?? 0) / g.cols)) is \(first.map { got[$0] } ?? 0), ggml's \(first.map { want[$0] } ?? 0)")
        #expect(got.withUnsafeBytes { sha256Hex($0) } == g.dequantized_sha256[name], "\(name): all 64 dequantized rows")
    }

    @Test("the compiled grid tables hash as make_grid_tables.py recorded them from llama.cpp's source")
    func tables() throws {
        let t = try JSONDecoder().decode(GridFixtures.Tables.self,
                                         from: Data(contentsOf: URL(fileURLWithPath: GridFixtures.path("tables.json"))))
        #expect(t.tables.count == 14)
        let sizes = ["uint8_t": 1, "uint16_t": 2, "uint32_t": 4, "uint64_t": 8]
        for (name, want) in t.tables.sorted(by: { $0.key < $1.key }) {
            var bytes = 0
            let p = try #require(bk_grid_table(name, &bytes), "billa has no table \(name)")
            #expect(bytes == want.count * (sizes[want.type] ?? 0), "\(name): \(bytes) bytes")
            #expect(sha256Hex(UnsafeRawBufferPointer(start: p, count: bytes)) == want.sha256, "\(name)")
        }
        var none = 1
        #expect(bk_grid_table("kgrid_nope", &none) == nil && none == 0)
    }

    /// The verifier's products: rows widened by grid.c, then the f32 products, against dot products of the
    /// dequantized rows.
    @Test("the verifier multiplies the grid types as their dequantized rows", arguments: GridFixtures.types)
    func verifierProducts(_ name: String) throws {
        let q = try #require(QuantType(name: name))
        let rows = 19, cols = 512
        let values = QuantTests.noise(rows: rows, cols: cols, seed: 11)
        let imp = (0..<cols).map { Float(1 + $0 % 5) }
        let bytes = Quantizer.quantize(values, cols: cols, to: q, importance: imp)
        let w = Quantizer.dequantize(bytes, from: q)
        let kernel = try #require(KernelType.of(q.dtype))
        #expect(bk_lowbit_block_bytes(kernel) == Int32(q.bytesPerBlock))
        LowBitFixtures.checkProducts(bytes, w, kernel: kernel, rows: rows, cols: cols, label: name)
    }
}
