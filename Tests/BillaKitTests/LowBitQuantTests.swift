import CKernels
import Foundation
import Testing
@testable import BillaKit

/// Q2_K, Q3_K_S/M/L, IQ4_NL and IQ4_XS against llama-quantize itself (llama.cpp as vendored by
/// llama-cpp-python 0.3.36), and gguf-py's dequantizers: scripts/fixtures/make_lowbit_fixtures.py.
enum LowBitFixtures {
    /// The verifier's products of quantized rows (lowbit.c widens them, then f32 products), for one token and for a
    /// prompt, against dot products of the dequantized rows `w`.
    static func checkProducts(_ bytes: [UInt8], _ w: [Float], kernel: Int32, rows: Int, cols: Int, label: String) {
        for ntok in [1, 7] {
            let x = (0..<(ntok * cols)).map { Float(($0 * 7) % 17) / 17 - 0.5 }
            var y = [Float](repeating: 0, count: ntok * rows)
            var scratch = [Float](repeating: 0, count: Int(BK_LOWBIT_ROWS + BK_SCRATCH_ROWS) * cols)
            let ran = bytes.withUnsafeBytes { b in
                bk_lowbit_rows_dot(kernel, b.baseAddress!, bytes.count / rows, Int64(rows), Int64(cols), x, Int64(cols), Int64(ntok), &y, Int64(rows), &scratch)
            }
            #expect(ran == 1)
            for t in 0..<ntok {
                for r in 0..<rows {
                    var s = 0.0
                    for c in 0..<cols { s += Double(w[r * cols + c]) * Double(x[t * cols + c]) }
                    #expect(abs(Double(y[t * rows + r]) - s) <= 1e-4 * max(1, abs(s)), "\(label) \(ntok) tokens: row \(r) token \(t): \(y[t * rows + r]) vs \(s)")
                }
            }
        }
    }

    static func path(_ name: String) -> String { QuantFixtures.path("lowbit/" + name) }

    struct Golden: Decodable {
        let tiny: [String: QuantFixtures.Model]
        let wide: [String: Wide]
        let policy: [String: Policy]
        let refused: [String: Refusal]
        let dequantized: [String: String]
    }
    struct Wide: Decodable {
        let sha256: String
        let data_offset: Int?
        let tensors: [WideTensor]
    }
    struct WideTensor: Decodable {
        let name: String
        let type: String?
        let sha256: String?
        let shape: [Int]?
        let kind: String?
        let seed: String?
        let rows: Int?
        let slab_rows: Int?
        let slabs: String?
    }
    struct Policy: Decodable {
        let layers: Int, heads: Int, kv_heads: Int, dim: Int, ffn: Int
        let matrices: String
        let cases: [String: String]

        /// The shape of a 2-D tensor of the zero-valued policy model (vocab 32), from its name.
        func shape(_ n: String) -> [Int] {
            let hd = dim / heads
            if n == "token_embd.weight" || n == "output.weight" { return [32, dim] }
            if n.hasSuffix("attn_k.weight") || n.hasSuffix("attn_v.weight") { return [kv_heads * hd, dim] }
            if n.hasSuffix("ffn_gate.weight") || n.hasSuffix("ffn_up.weight") { return [ffn, dim] }
            if n.hasSuffix("ffn_down.weight") { return [dim, ffn] }
            return [dim, dim]
        }
    }

    /// "first in rows a..<b": the first 64-row slab of `bytes` whose sha256 prefix is not the golden's, so a
    /// whole-tensor mismatch names where it starts.
    static func firstDifferingSlab(_ bytes: UnsafeRawBufferPointer, _ w: WideTensor) -> String? {
        guard let rows = w.rows, let slab = w.slab_rows, let slabs = w.slabs?.split(separator: " ").map(String.init), rows > 0 else { return nil }
        let rowBytes = bytes.count / rows
        let first = slabs.indices.first { i in
            let lo = i * slab * rowBytes, hi = min(bytes.count, (i + 1) * slab * rowBytes)
            return !sha256Hex(UnsafeRawBufferPointer(rebasing: bytes[lo..<hi])).hasPrefix(slabs[i])
        } ?? 0
        return "first in rows \(first * slab)..<\(min(rows, (first + 1) * slab))"
    }
    struct Refusal: Decodable { let tensor: String; let reason: String }

    static let golden: Result<Golden, Error> = Result {
        try JSONDecoder().decode(Golden.self, from: Data(contentsOf: URL(fileURLWithPath: path("golden.json"))))
    }

    /// A case name: the file type, or "<type>+<option>" (the generator's OPTION_CASES).
    static func options(_ name: String) throws -> GGUFExportOptions {
        let parts = name.split(separator: "+", maxSplits: 1).map(String.init)
        var o = GGUFExportOptions(recipe: try #require(QuantRecipe(name: parts[0])))
        guard parts.count == 2 else { return o }
        switch parts[1] {
        case "pure": o.typeChoices.pure = true
        case "leave-output-tensor": o.typeChoices.leaveOutputTensor = true
        case "output-tensor-type-q8_0": o.typeChoices.outputTensorType = .q8_0
        case "token-embedding-type-q3_k": o.typeChoices.tokenEmbeddingType = .q3_K
        default: Issue.record("unknown case \(name)")
        }
        return o
    }

    /// wide-f32.gguf rebuilt: the committed header, then every tensor's splitmix values (as TinyGGUF does).
    static let widePath: Result<String, Error> = Result {
        let f32 = try #require(try golden.get().wide["f32"])
        var file = Array(try Data(contentsOf: URL(fileURLWithPath: path("wide-f32.header.gguf"))))
        for t in f32.tensors {
            let shape = try #require(t.shape)
            let seedText = try #require(t.seed)
            let seed = try #require(UInt64(seedText))
            let v = TinyGGUF.values(seed: seed, rows: shape.count == 2 ? shape[0] : 1, cols: shape.last ?? 0, kind: t.kind ?? "")
            v.withUnsafeBytes { file.append(contentsOf: $0) }
            file += [UInt8](repeating: 0, count: (32 - file.count % 32) % 32)
        }
        let p = TinyGGUF.tempPath("lowbit-wide-f32.gguf")
        try Data(file).write(to: URL(fileURLWithPath: p))
        return p
    }
}

@Suite("Low-bit quant types match llama-quantize")
struct LowBitQuantTests {
    static let types = ["q2_k", "q3_k_s", "q3_k_m", "q3_k_l", "iq4_nl", "iq4_xs"]
    static let cases = types + ["q3_k_m+pure", "q2_k+leave-output-tensor", "iq4_xs+output-tensor-type-q8_0",
                                "q3_k_s+token-embedding-type-q3_k"]

    @Test("the type table agrees with ggml-common.h's block layouts")
    func table() {
        #expect(QuantType.q2_K.bytesPerBlock == 16 + 64 + 2 + 2 && QuantType.q2_K.ggmlType == 10)
        #expect(QuantType.q3_K.bytesPerBlock == 32 + 64 + 12 + 2 && QuantType.q3_K.ggmlType == 11)
        #expect(QuantType.iq4_nl.bytesPerBlock == 2 + 16 && QuantType.iq4_nl.blockSize == 32 && QuantType.iq4_nl.ggmlType == 20)
        #expect(QuantType.iq4_xs.bytesPerBlock == 2 + 2 + 4 + 128 && QuantType.iq4_xs.ggmlType == 23)
        for t in [QuantType.q2_K, .q3_K, .iq4_nl, .iq4_xs] {
            let k = KernelType.of(t.dtype) ?? 0
            #expect(Int(bk_lowbit_block_bytes(k)) == t.bytesPerBlock && Int(bk_lowbit_block_elems(k)) == t.blockSize, "\(t)")
        }
    }

    @Test("the edge rows quantize to llama-quantize's bytes, block for block", arguments: types)
    func edgeRows(_ ftype: String) throws {
        let golden = try LowBitFixtures.golden.get()
        let entry = try #require(golden.tiny[ftype]?.tensors.first { $0.name == "blk.0.attn_q.weight" })
        let typeName = try #require(entry.type)
        let type = try #require(QuantType(name: typeName))
        let rows = Array(try QuantFixtures.edge().prefix(64 * 256))
        let got = Quantizer.quantize(rows, cols: 256, to: type)
        compareBlocks(got, Array(try Data(contentsOf: URL(fileURLWithPath: LowBitFixtures.path("tiny-\(ftype).attn_q.bin")))), type,
                      "edge rows vs llama-quantize \(ftype)")
    }

    @Test("dequantizing llama-quantize's edge-row bytes gives gguf-py's values", arguments: ["q2_k", "q3_k_m", "iq4_nl", "iq4_xs"])
    func dequantizeMatchesGGUFPy(_ ftype: String) throws {
        let golden = try LowBitFixtures.golden.get()
        let entry = try #require(golden.tiny[ftype]?.tensors.first { $0.name == "blk.0.attn_q.weight" })
        let typeName = try #require(entry.type)
        let type = try #require(QuantType(name: typeName))
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: LowBitFixtures.path("tiny-\(ftype).attn_q.bin"))))
        let got = Quantizer.dequantize(bytes, from: type)
        let want = try Data(contentsOf: URL(fileURLWithPath: LowBitFixtures.path("dequant-\(ftype).f32"))).withUnsafeBytes { raw in
            (0..<(raw.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
        }
        try #require(want.count <= got.count)
        if let i = want.indices.first(where: { got[$0] != want[$0] }) {
            Issue.record("\(ftype): element \(i) (block \(i / type.blockSize)) dequantizes to \(got[i]), gguf-py gives \(want[i])")
        }
        let all = got.withUnsafeBytes { sha256Hex($0) }
        #expect(all == golden.dequantized[ftype], "\(ftype): the 64 dequantized rows differ from gguf-py's (digest)")
    }

    /// Q2_K's and Q3_K's scale searches run eight groups per AVX2 step: each body on its own against
    /// llama-quantize's edge-row bytes, and against the portable body on 4096-wide noise with zero and constant groups.
    @Test("Q2_K's and Q3_K's portable and AVX2 bodies write llama-quantize's bytes",
          arguments: [("q2_k", KernelBodies.portable), ("q2_k", KernelBodies.avx2), ("q3_k_m", KernelBodies.portable), ("q3_k_m", KernelBodies.avx2)])
    func searchBodies(_ ftype: String, _ body: Int32) throws {
        if body == KernelBodies.avx2 && !KernelBodies.hasAVX2 { return }   // KernelBodies.noAVX2: nothing to test
        let type: QuantType = ftype == "q2_k" ? .q2_K : .q3_K
        func run(_ b: Int32, _ x: [Float]) -> [UInt8] {
            var y = [UInt8](repeating: 0, count: x.count / 256 * type.bytesPerBlock)
            let ran = type == .q2_K ? bk_quantize_q2_K_using(b, x, &y, Int64(x.count)) : bk_quantize_q3_K_using(b, x, &y, Int64(x.count))
            #expect(ran == 1, "\(type) body \(b) did not run")
            return y
        }
        let edge = Array(try QuantFixtures.edge().prefix(64 * 256))
        compareBlocks(run(body, edge), Array(try Data(contentsOf: URL(fileURLWithPath: LowBitFixtures.path("tiny-\(ftype).attn_q.bin")))), type,
                      "\(type) body \(body) on the edge rows vs llama-quantize")
        var x = QuantTests.noise(rows: 16, cols: 4096, seed: 5)
        for i in stride(from: 0, to: x.count, by: 1000) { for k in i..<min(x.count, i + 40) { x[k] = k % 3 == 0 ? 0.25 : 0 } }
        compareBlocks(run(body, x), run(KernelBodies.portable, x), type, "\(type) body \(body) vs the portable body on noise")
    }

    @Test("IQ4_NL's and IQ4_XS's portable and AVX-512 bodies write llama-quantize's bytes",
          arguments: [("iq4_nl", KernelBodies.portable), ("iq4_nl", KernelBodies.avx512), ("iq4_xs", KernelBodies.portable), ("iq4_xs", KernelBodies.avx512)])
    func iq4Bodies(_ ftype: String, _ body: Int32) throws {
        if body == KernelBodies.avx512 && !KernelBodies.hasAVX512 { return }   // KernelBodies.noAVX512: nothing to test
        let type: QuantType = ftype == "iq4_nl" ? .iq4_nl : .iq4_xs
        let k = Int32(type == .iq4_nl ? BK_IQ4_NL : BK_IQ4_XS)
        func run(_ b: Int32, _ x: [Float]) -> [UInt8] {
            var y = [UInt8](repeating: 0, count: x.count / type.blockSize * type.bytesPerBlock)
            #expect(bk_quantize_iq4_using(b, k, x, &y, Int64(x.count), nil) == 1, "\(type) body \(b) did not run")
            return y
        }
        let edge = Array(try QuantFixtures.edge().prefix(64 * 256))
        compareBlocks(run(body, edge), Array(try Data(contentsOf: URL(fileURLWithPath: LowBitFixtures.path("tiny-\(ftype).attn_q.bin")))), type,
                      "\(type) body \(body) on the edge rows vs llama-quantize")
        var x = QuantTests.noise(rows: 16, cols: 4096, seed: 6)
        for i in stride(from: 0, to: x.count, by: 1000) { for k in i..<min(x.count, i + 40) { x[k] = k % 3 == 0 ? 0.25 : 0 } }
        compareBlocks(run(body, x), run(KernelBodies.portable, x), type, "\(type) body \(body) vs the portable body on noise")
    }

    /// The whole file: per-tensor types (the recipe, the options, the fallbacks for ffn_down's 288-wide rows), every
    /// tensor's bytes, then header and padding.
    @Test("billa quantize writes llama-quantize's tiny file byte for byte", arguments: cases)
    func tinyFile(_ name: String) throws {
        let golden = try #require(try LowBitFixtures.golden.get().tiny[name])
        let plan = try GGUFExport.plan(source: try TinyGGUF.path.get(), options: try LowBitFixtures.options(name))
        for (c, want) in zip(plan.choices, golden.tensors) {
            #expect(c.name == want.name && c.target.rawValue == want.type, "\(name): \(c.name) -> \(c.target.rawValue), llama-quantize: \(want.name) -> \(want.type ?? "")")
        }
        #expect(plan.choices.count == golden.tensors.count)
        let out = TinyGGUF.tempPath("lowbit-\(name).gguf")
        defer { try? FileManager.default.removeItem(atPath: out) }
        try plan.write(to: out)
        let g = try GGUFReader.open(out)
        for (t, want) in zip(g.tensors, golden.tensors) {
            let bytes = try g.file.bytes(at: g.dataOffset + t.offset, count: t.byteCount, what: t.name)
            #expect(sha256Hex(bytes) == want.sha256, "\(name): tensor \(t.name) (\(t.dtype.rawValue)) differs from llama-quantize's")
        }
        #expect(try sha256Hex(file: out) == golden.sha256, "\(name): the file differs from llama-quantize's in its header or padding")
    }

    /// Real shapes: ffn_down's rows are 4096 wide and ffn_gate/up/down hold 1 Mi values each; a difference is named
    /// by its tensor and first differing 64-row slab. One file type per quantizer (q2_k's file also holds Q3_K
    /// tensors; q3_k_m/l add Q4_K/Q5_K, whose quantizers the tiny files and QuantTests cover), to keep the suite fast.
    @Test("the wide model (4096-wide rows, 1 Mi-element tensors, gqa 4) matches llama-quantize slab for slab",
          arguments: ["q2_k", "q3_k_s", "iq4_nl", "iq4_xs"])
    func wideFile(_ ftype: String) throws {
        let golden = try LowBitFixtures.golden.get()
        let want = try #require(golden.wide[ftype])
        let src = try LowBitFixtures.widePath.get()
        #expect(try sha256Hex(file: src) == golden.wide["f32"]?.sha256, "the rebuilt wide source is not the generator's")
        let plan = try GGUFExport.plan(source: src, options: GGUFExportOptions(recipe: try #require(QuantRecipe(name: ftype))))
        let out = TinyGGUF.tempPath("lowbit-wide-\(ftype).gguf")
        defer { try? FileManager.default.removeItem(atPath: out) }
        try plan.write(to: out)
        let g = try GGUFReader.open(out)
        #expect(g.tensors.count == want.tensors.count)
        for (t, w) in zip(g.tensors, want.tensors) {
            #expect(t.name == w.name && t.dtype.rawValue == w.type, "\(ftype): \(t.name) is \(t.dtype.rawValue), llama-quantize: \(w.name) \(w.type ?? "")")
            let bytes = try g.file.bytes(at: g.dataOffset + t.offset, count: t.byteCount, what: t.name)
            guard sha256Hex(bytes) != w.sha256 else { continue }
            Issue.record("\(ftype): \(t.name) (\(t.dtype.rawValue)) differs from llama-quantize's, \(LowBitFixtures.firstDifferingSlab(bytes, w) ?? "")")
        }
        #expect(try sha256Hex(file: out) == want.sha256, "\(ftype): the wide file differs from llama-quantize's")
    }

    /// The recipes' layer-dependent rules on 16 layers (ffn 288: fallbacks) and on 80 layers with grouped-query
    /// attention (llama.cpp's 70B rule), for every file type billa writes and the options.
    @Test("per-tensor types follow llama-quantize's recipes on 16- and 80-layer models", arguments: ["l16", "l80"])
    func policy(_ model: String) throws {
        let p = try #require(try LowBitFixtures.golden.get().policy[model])
        let names = p.matrices.split(separator: " ").map(String.init)
        let shape = p.shape
        let ordered = names.sorted(by: QuantPolicy.order)
        #expect(!p.cases.isEmpty)
        for (name, types) in p.cases.sorted(by: { $0.key < $1.key }) {
            let want = Dictionary(uniqueKeysWithValues: zip(names, types.split(separator: " ").map(String.init)))
            let o = try LowBitFixtures.options(name)
            var policy = QuantPolicy(recipe: o.recipe, tensorNames: ordered, layers: p.layers, heads: p.heads, kvHeads: p.kv_heads,
                                     choices: o.typeChoices)
            var bad = [String]()
            for n in ordered {
                let got = policy.type(for: n, shape: shape(n), current: .f16)
                if got.rawValue != want[n] { bad.append("\(n): \(got.rawValue), llama-quantize \(want[n] ?? "?")") }
            }
            #expect(bad.isEmpty, "\(model) \(name): \(bad.count) tensors differ, first \(bad.prefix(3))")
        }
    }

    @Test("q2_k_s without an importance matrix is refused as llama-quantize refuses it")
    func q2KSRefused() throws {
        let want = try #require(try LowBitFixtures.golden.get().refused["q2_k_s"])
        #expect {
            _ = try GGUFExport.plan(source: try TinyGGUF.path.get(), options: GGUFExportOptions(recipe: .q2_k_s))
        } throws: { e in
            guard let b = e as? BillaError else { return false }
            return b.code == .unsupported && b.tensor == want.tensor && b.message.contains("importance matrix")
        }
    }

    @Test("quantize(dequantize) error stays within each type's bound",
          arguments: [("q2_K", 0.5, 0.35), ("q3_K", 0.3, 0.2), ("iq4_nl", 0.2, 0.11), ("iq4_xs", 0.2, 0.11)])
    func errorBounds(_ name: String, _ maxBound: Double, _ rmsBound: Double) throws {
        let type = try #require(QuantType(name: name))
        let x = QuantTests.noise(rows: 48, cols: 512, seed: 42)
        let y = Quantizer.dequantize(Quantizer.quantize(x, cols: 512, to: type), from: type)
        try #require(y.count == x.count)
        var worst = 0.0, se = 0.0, ss = 0.0
        for start in stride(from: 0, to: x.count, by: type.blockSize) {
            let amax = Double(x[start..<(start + type.blockSize)].map { abs($0) }.max() ?? 0)
            for i in start..<(start + type.blockSize) {
                let e = Double(abs(y[i] - x[i]))
                se += e * e
                ss += Double(x[i]) * Double(x[i])
                if amax > 0 { worst = max(worst, e / amax) }
            }
        }
        let rms = (se / ss).squareRoot()
        #expect(worst <= maxBound && rms <= rmsBound && rms > 0, "\(name): worst \(worst) x block amax, relative RMS \(rms)")
    }

    /// The trained tiny model's 64- and 192-wide rows make IQ4_XS fall back to IQ4_NL, as llama-quantize does: the
    /// verifier reads the file, multiplies IQ4_NL and judges it by IQ4_NL's default thresholds.
    @Test("an iq4_xs GGUF of the trained model passes IQ4_NL's verify thresholds")
    func verifyIQ4() throws {
        let dir = try VerifierTests.scratch("gguf-iq4_xs")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let plan = try GGUFExport.plan(source: TrainedGolden.path, options: GGUFExportOptions(recipe: .iq4_xs))
        try plan.write(to: dir + "/model.gguf")
        let r = try Verifier.compare(Verifier.Loaded(TrainedGolden.path), Verifier.Loaded(dir + "/model.gguf"), prompts: Verifier.defaultPrompts)
        #expect(r.thresholds.kind == "iq4_nl")
        #expect(r.pass, "\(r.failures)")
        #expect(r.kldMean > 0, "a quantized model cannot be identical")
    }

    /// The verifier's products over the low-bit types: rows widened by lowbit.c, then f32 products, for one token and
    /// for prompts, against dot products of the dequantized rows.
    @Test("the verifier multiplies the low-bit types as their dequantized rows", arguments: [DType.q2_K, .q3_K, .iq4_nl, .iq4_xs])
    func verifierProducts(_ dtype: DType) throws {
        let q = try #require(dtype.quantType)
        let rows = 37, cols = 512
        let values = QuantTests.noise(rows: rows, cols: cols, seed: 9)
        let bytes = Quantizer.quantize(values, cols: cols, to: q)
        let w = Quantizer.dequantize(bytes, from: q)
        let kernel = try #require(KernelType.of(dtype))
        LowBitFixtures.checkProducts(bytes, w, kernel: kernel, rows: rows, cols: cols, label: "\(dtype)")
    }
}
