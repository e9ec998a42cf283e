import Foundation
import Testing
@testable import BillaKit

/// `billa quantize --imatrix` against `llama-quantize --imatrix` on the same importance matrices, whole files byte
/// for byte (scripts/fixtures/make_imatrix_quant_fixtures.py): every file type, both imatrix formats,
/// --include-weights / --exclude-weights, and the recipes' imatrix-dependent rules on 16 layers.
enum ImatrixQuantFixtures {
    static func path(_ name: String) -> String { Fixtures.path("imatrix/quant/" + name) }

    struct Case: Decodable {
        let args: [String]
        let type: String
        let sha256: String
        let tensors: [LowBitFixtures.WideTensor]
    }
    struct Golden: Decodable {
        let models: [String: [String: Case]]
        let policy: LowBitFixtures.Policy
    }

    static let golden: Result<Golden, Error> = Result {
        try JSONDecoder().decode(Golden.self, from: Data(contentsOf: URL(fileURLWithPath: path("golden.json"))))
    }

    /// The options llama-quantize's arguments ask for; the imatrix is named as llama-quantize was given it.
    static func options(_ c: Case) throws -> GGUFExportOptions {
        var o = GGUFExportOptions(recipe: try #require(QuantRecipe(name: c.type.lowercased())))
        var file = "", include = [String](), exclude = [String]()
        var i = 0
        while i + 1 < c.args.count {
            switch c.args[i] {
            case "--imatrix": file = c.args[i + 1]
            case "--include-weights": include.append(c.args[i + 1])
            case "--exclude-weights": exclude.append(c.args[i + 1])
            default: Issue.record("unknown llama-quantize argument \(c.args[i])")
            }
            i += 2
        }
        o.importance = (try ImportanceMatrix.forQuantize(path(file), include: include, exclude: exclude), file)
        return o
    }

    /// Quantizes `source` as the case says and compares each tensor's type and bytes, then the whole file.
    static func check(_ model: String, _ name: String, source: String) throws {
        let c = try #require(try golden.get().models[model]?[name])
        let plan = try GGUFExport.plan(source: source, options: try options(c))
        let out = TinyGGUF.tempPath("imatrix-\(model)-\(name).gguf")
        defer { try? FileManager.default.removeItem(atPath: out) }
        try plan.write(to: out)
        let g = try GGUFReader.open(out)
        #expect(g.tensors.count == c.tensors.count)
        for (t, w) in zip(g.tensors, c.tensors) {
            #expect(t.name == w.name && t.dtype.rawValue == w.type, "\(model) \(name): \(t.name) is \(t.dtype.rawValue), llama-quantize: \(w.name) \(w.type ?? "")")
            let bytes = try g.file.bytes(at: g.dataOffset + t.offset, count: t.byteCount, what: t.name)
            guard sha256Hex(bytes) != w.sha256 else { continue }
            let slab = LowBitFixtures.firstDifferingSlab(bytes, w).map { ", " + $0 } ?? ""
            Issue.record("\(model) \(name): tensor \(t.name) (\(t.dtype.rawValue)) differs from llama-quantize's\(slab)")
        }
        #expect(try sha256Hex(file: out) == c.sha256, "\(model) \(name): the file differs from llama-quantize's (header, metadata or padding)")
    }
}

@Suite("quantize --imatrix matches llama-quantize --imatrix")
struct ImatrixQuantizeTests {
    static let tinyCases = ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_k", "q2_k_s", "q3_k_s", "q3_k_m", "q3_k_l", "q4_k_s",
                            "q4_k_m", "q5_k_s", "q5_k_m", "q6_k", "iq4_nl", "iq4_xs",
                            "q4_k_m+dat", "iq4_xs+dat", "q4_k_m+include-attn", "q4_k_m+exclude-ffn_down"]

    @Test("every file type, both imatrix formats and the filters, on the tiny model", arguments: tinyCases)
    func tiny(_ name: String) throws {
        try ImatrixQuantFixtures.check("tiny", name, source: try TinyGGUF.path.get())
    }

    /// Real shapes: 4096-wide ffn_down rows and 1 Mi-element tensors; a difference is named by its first 64-row slab.
    /// The types of the issue's benchmark rows (the tiny cases cover every quantizer).
    @Test("the wide model matches slab for slab", arguments: ["q2_k", "q3_k_m", "iq4_xs", "q4_k_m"])
    func wide(_ name: String) throws {
        try ImatrixQuantFixtures.check("wide", name, source: try LowBitFixtures.widePath.get())
    }

    @Test("an importance matrix changes the recipes where llama-quantize's change (16 layers)")
    func policy() throws {
        let p = try ImatrixQuantFixtures.golden.get().policy
        let names = p.matrices.split(separator: " ").map(String.init)
        let shape = p.shape
        let ordered = names.sorted(by: QuantPolicy.order)
        #expect(p.cases.count == 17)
        var changed = 0
        for (name, types) in p.cases.sorted(by: { $0.key < $1.key }) {
            let want = Dictionary(uniqueKeysWithValues: zip(names, types.split(separator: " ").map(String.init)))
            let recipe = try #require(QuantRecipe(name: name))
            var with = QuantPolicy(recipe: recipe, tensorNames: ordered, layers: p.layers, heads: p.heads, kvHeads: p.kv_heads)
            with.hasImportanceMatrix = true
            var without = QuantPolicy(recipe: recipe, tensorNames: ordered, layers: p.layers, heads: p.heads, kvHeads: p.kv_heads)
            var bad = [String]()
            for n in ordered {
                let got = with.type(for: n, shape: shape(n), current: .f16)
                if got.rawValue != want[n] { bad.append("\(n): \(got.rawValue), llama-quantize \(want[n] ?? "?")") }
                if without.type(for: n, shape: shape(n), current: .f16) != got { changed += 1 }
            }
            #expect(bad.isEmpty, "\(name): \(bad.count) tensors differ, first \(bad.prefix(3))")
        }
        // Q4_0 and Q5_0 guard ffn_down in layers 0-1, IQ4_NL and IQ4_XS keep it: 8 tensors in all.
        #expect(changed == 8)
    }

    @Test("a missing or wrong-sized entry is refused as llama-quantize refuses it")
    func refusals() throws {
        let full = try ImportanceMatrix.forQuantize(ImatrixQuantFixtures.path("tiny.imatrix.gguf"))
        var o = GGUFExportOptions(recipe: .q2_k_s)
        o.importance = (full.filtered(include: [], exclude: ["blk.2.ffn_up"]), "tiny.imatrix.gguf")
        #expect {
            _ = try GGUFExport.plan(source: try TinyGGUF.path.get(), options: o)
        } throws: { e in
            guard let b = e as? BillaError else { return false }
            return b.tensor == "blk.2.ffn_up.weight" && b.message.contains("no entry")
        }
        // The imatrix given as the model (the arguments swapped) is refused, not quantized into a useless file.
        #expect {
            _ = try GGUFExport.plan(source: ImatrixQuantFixtures.path("tiny.imatrix.gguf"), options: GGUFExportOptions(recipe: .q4_0))
        } throws: { e in (e as? BillaError)?.message.contains("importance matrix, not a model") ?? false }
        // A GGUF imatrix without imatrix.chunk_size is refused naming that key (llama-quantize: "missing imatrix metadata").
        let g = try GGUFReader.open(ImatrixQuantFixtures.path("tiny.imatrix.gguf"))
        var m = g.metadata
        m[ImatrixKeys.chunkSize] = nil
        let plans = try g.tensors.map { t in
            PackTestSupport.plan(t.name, t.dtype, t.shape, Array(try g.file.bytes(at: g.dataOffset + t.offset, count: t.byteCount, what: t.name)))
        }
        let tmp = try Fixtures.tempDir("imatrix-nometa")
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        try GGUFWriter.write(metadata: m, tensors: plans, to: tmp + "/x.imatrix.gguf")
        #expect {
            _ = try ImportanceMatrix.forQuantize(tmp + "/x.imatrix.gguf")
        } throws: { e in
            guard let b = e as? BillaError else { return false }
            return b.message.contains("lacks imatrix.chunk_size (") && !b.message.contains("imatrix.datasets")
        }
        var wrong = full
        wrong.entries["blk.0.attn_q.weight"]?.sums.removeLast(32)
        o = GGUFExportOptions(recipe: .q4_k_m)
        o.importance = (wrong, "tiny.imatrix.gguf")
        #expect {
            _ = try GGUFExport.plan(source: try TinyGGUF.path.get(), options: o)
        } throws: { e in
            guard let b = e as? BillaError else { return false }
            return b.code == .shapeMismatch && b.tensor == "blk.0.attn_q.weight"
        }
    }
}
