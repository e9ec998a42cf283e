import Foundation
import Testing
@testable import BillaKit

/// `billa quantize --imatrix --type iq2_xxs ...` against `llama-quantize --imatrix` for the grid file types, whole
/// files byte for byte (scripts/fixtures/make_imatrix_quant_fixtures.py's GRID_TYPES): the tiny model (288-wide
/// ffn_down rows: the IQ4_NL fallback), the wide model (4096-wide rows, 1 Mi-element tensors), and the recipes on 16
/// layers; without an imatrix the recipes that need one are refused as llama-quantize refuses them.
@Suite("grid file types: quantize --imatrix matches llama-quantize --imatrix")
struct GridImatrixQuantizeTests {
    static let types = ["iq2_xxs", "iq2_xs", "iq2_s", "iq2_m", "iq3_xxs", "iq3_xs", "iq3_s", "iq3_m", "iq1_s", "iq1_m",
                        "tq1_0", "tq2_0"]

    struct GridPolicy: Decodable { let grid_policy: LowBitFixtures.Policy }

    @Test("every grid file type on the tiny model", arguments: types)
    func tiny(_ name: String) throws {
        try ImatrixQuantFixtures.check("tiny", name, source: try TinyGGUF.path.get())
    }

    /// Real shapes: a difference is named by its first 64-row slab (three recipes that between them use every grid
    /// type but IQ2_XS, IQ1_S and the TQ types, which the tiny cases and the 4096-wide kernel tests cover).
    @Test("the wide model matches slab for slab", arguments: ["iq2_xxs", "iq3_xxs", "iq1_m"])
    func wide(_ name: String) throws {
        try ImatrixQuantFixtures.check("wide", name, source: try LowBitFixtures.widePath.get())
    }

    /// The recipes that need no imatrix, quantized without one: llama-quantize's whole file (the "+none" cases).
    @Test("iq3_s, iq3_m, tq1_0 and tq2_0 without an imatrix match llama-quantize's file", arguments: ["iq3_s", "iq3_m", "tq1_0", "tq2_0"])
    func withoutImatrix(_ name: String) throws {
        let c = try #require(try ImatrixQuantFixtures.golden.get().models["tiny"]?[name + "+none"])
        try #require(c.args.isEmpty)
        let plan = try GGUFExport.plan(source: try TinyGGUF.path.get(), options: GGUFExportOptions(recipe: try #require(QuantRecipe(name: name))))
        let out = TinyGGUF.tempPath("grid-none-\(name).gguf")
        defer { try? FileManager.default.removeItem(atPath: out) }
        try plan.write(to: out)
        let g = try GGUFReader.open(out)
        #expect(g.tensors.count == c.tensors.count)
        for (t, w) in zip(g.tensors, c.tensors) {
            #expect(t.name == w.name && t.dtype.rawValue == w.type, "\(name): \(t.name) is \(t.dtype.rawValue), llama-quantize: \(w.name) \(w.type ?? "")")
            let bytes = try g.file.bytes(at: g.dataOffset + t.offset, count: t.byteCount, what: t.name)
            #expect(sha256Hex(bytes) == w.sha256, "\(name): tensor \(t.name) (\(t.dtype.rawValue)) differs from llama-quantize's")
        }
        #expect(try sha256Hex(file: out) == c.sha256, "\(name): the file differs from llama-quantize's")
    }

    struct GridPolicy80: Decodable { let grid_policy_l80: LowBitFixtures.Policy }

    @Test("per-tensor types follow llama-quantize's grid recipes with an imatrix (16 layers; 80 layers with gqa 4)", arguments: [16, 80])
    func policy(_ layers: Int) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: ImatrixQuantFixtures.path("golden.json")))
        let p = layers == 16 ? try JSONDecoder().decode(GridPolicy.self, from: data).grid_policy
                             : try JSONDecoder().decode(GridPolicy80.self, from: data).grid_policy_l80
        try #require(p.layers == layers)
        let names = p.matrices.split(separator: " ").map(String.init)
        let ordered = names.sorted(by: QuantPolicy.order)
        #expect(Set(p.cases.keys) == Set(Self.types))
        for (name, types) in p.cases.sorted(by: { $0.key < $1.key }) {
            let want = Dictionary(uniqueKeysWithValues: zip(names, types.split(separator: " ").map(String.init)))
            var policy = QuantPolicy(recipe: try #require(QuantRecipe(name: name)), tensorNames: ordered, layers: p.layers,
                                     heads: p.heads, kvHeads: p.kv_heads)
            policy.hasImportanceMatrix = true
            var bad = [String]()
            for n in ordered {
                let got = policy.type(for: n, shape: p.shape(n), current: .f16)
                if got.rawValue != want[n] { bad.append("\(n): \(got.rawValue), llama-quantize \(want[n] ?? "?")") }
            }
            #expect(bad.isEmpty, "\(name): \(bad.count) tensors differ, first \(bad.prefix(3))")
        }
    }

    /// llama-quantize refuses before writing ("this quantization requires an imatrix!") when a tensor other than
    /// token_embd/output gets IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S or IQ3_XXS; IQ3_S, IQ3_M, TQ1_0, TQ2_0 need none.
    @Test("without an imatrix the recipes that need one are refused, naming the tensor", arguments: types)
    func refusedWithout(_ name: String) throws {
        let recipe = try #require(QuantRecipe(name: name))
        let needs = !["iq3_s", "iq3_m", "tq1_0", "tq2_0"].contains(name)
        let out = TinyGGUF.tempPath("grid-noimatrix-\(name).gguf")
        defer { try? FileManager.default.removeItem(atPath: out) }
        do {
            let plan = try GGUFExport.plan(source: try TinyGGUF.path.get(), options: GGUFExportOptions(recipe: recipe))
            try plan.write(to: out)
            #expect(!needs, "\(name) was written without an importance matrix")
        } catch let e as BillaError {
            #expect(needs, "\(name): \(e.description)")
            #expect(e.tensor?.hasPrefix("blk.") == true && e.message.contains("importance matrix") && !e.remedy.isEmpty, "\(e.description)")
        }
    }
}

/// The verifier reads grid-type GGUFs (WeightMatrix widens their rows) and judges them by their type's thresholds.
@Suite("the verifier on grid-type GGUFs")
struct GridVerifyTests {
    /// The wide model (4096-wide rows, so nothing falls back) quantized to iq3_xxs with its imatrix: every matrix is
    /// a grid type (IQ3_XXS, IQ2_S, IQ3_S) or Q4_K/Q5_K, and verify compares it with the f32 source. (The wide
    /// model's weights are splitmix noise, so the KL is not held to the thresholds, only required finite.)
    @Test("an iq3_xxs GGUF of the wide model is read, multiplied and judged by its most lossy type's (IQ2_S) thresholds")
    func verifyIQ3XXS() throws {
        let dir = try VerifierTests.scratch("gguf-iq3_xxs")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var o = GGUFExportOptions(recipe: .iq3_xxs)
        o.importance = (try ImportanceMatrix.forQuantize(ImatrixQuantFixtures.path("wide.imatrix.gguf")), "wide.imatrix.gguf")
        let src = try LowBitFixtures.widePath.get()
        try GGUFExport.plan(source: src, options: o).write(to: dir + "/model.gguf")
        let g = try GGUFReader.open(dir + "/model.gguf")
        #expect(Set(g.tensors.map(\.dtype)).isSuperset(of: [.iq3_xxs, .iq2_s, .iq3_s]))
        let r = try Verifier.compare(Verifier.Loaded(src), Verifier.Loaded(dir + "/model.gguf"), prompts: Array(Verifier.defaultPrompts.prefix(2)))
        #expect(r.thresholds.kind == "iq2_s")
        #expect(r.kldMean > 0 && r.kldMean.isFinite, "KL \(r.kldMean)")
    }
}
