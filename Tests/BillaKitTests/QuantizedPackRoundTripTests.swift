import Foundation
import Testing
@testable import BillaKit

/// Quantized packs end to end at a real width: a one-layer LLaMA of TinyLlama's width (dim 2048, 16 heads of 128, so
/// wq and wo are 2048x2048; 8 kv heads, so wk and wv are 1024x2048; 768-wide ffn; 512-row vocabulary), f16
/// N(0, 0.02) weights in an HF directory. The matrices are over 1M elements (the embedding and head exactly 1M),
/// so GGUFExport streams them in several pieces and every one crosses pack chunks.
///
/// The expected bytes are `billa quantize` straight to GGUF, whose output QuantTests / GGUFConvertTests hold to
/// llama.cpp's (quantizer goldens) and gguf-py's (metadata): these tests prove the pack routes reach the same file.
@Suite("quantized packs at real shapes", .serialized)
struct QuantizedPackRoundTripTests {
    static let dim = 2048, heads = 16, kvHeads = 8, ffn = 768, vocab = 512

    /// The model directory, made once per test process.
    static let model: String = {
        let dir = NSTemporaryDirectory() + "billa-qpack-real-\(getpid())/hf"
        try? FileManager.default.removeItem(atPath: dir)
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let kv = dim / heads * kvHeads
        let shapes: [(String, [Int])] = [
            ("model.embed_tokens.weight", [vocab, dim]),
            ("model.layers.0.self_attn.q_proj.weight", [dim, dim]),
            ("model.layers.0.self_attn.k_proj.weight", [kv, dim]),
            ("model.layers.0.self_attn.v_proj.weight", [kv, dim]),
            ("model.layers.0.self_attn.o_proj.weight", [dim, dim]),
            ("model.layers.0.mlp.gate_proj.weight", [ffn, dim]),
            ("model.layers.0.mlp.up_proj.weight", [ffn, dim]),
            ("model.layers.0.mlp.down_proj.weight", [dim, ffn]),
            ("model.layers.0.input_layernorm.weight", [dim]),
            ("model.layers.0.post_attention_layernorm.weight", [dim]),
            ("model.norm.weight", [dim]),
            ("lm_head.weight", [vocab, dim]),
        ]
        var plans = [TensorPlan]()
        for (i, (name, shape)) in shapes.enumerated() {
            var values = StreamingSupport.normals(shape.reduce(1, *), seed: UInt64(100 + i))
            if shape.count == 1 { values = values.map { 1 + $0 } }
            plans.append(PackTestSupport.plan(name, .f16, shape, StreamingSupport.f16(values)))
        }
        do {
            try SafetensorsWriter.write(plans, metadata: ["format": "pt"], to: dir + "/model.safetensors")
            let config = """
                {"architectures": ["LlamaForCausalLM"], "hidden_size": \(dim), "intermediate_size": \(ffn), "max_position_embeddings": 2048,
                 "num_attention_heads": \(heads), "num_hidden_layers": 1, "num_key_value_heads": \(kvHeads), "rms_norm_eps": 1e-05,
                 "torch_dtype": "float16", "vocab_size": \(vocab)}
                """
            try config.write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
            try FileManager.default.copyItem(atPath: Fixtures.path("tiny-meta/tokenizer.model"), toPath: dir + "/tokenizer.model")
        } catch { Issue.record("cannot make the model: \(error)") }
        return dir
    }()

    static var work: String { (model as NSString).deletingLastPathComponent }

    /// Q8_0 (output and embedding Q8_0 too, norms f32): the k-quant searches cost minutes unoptimised in a debug
    /// build; scripts/bench/pack runs q4_k_m through the same paths at full size.
    static func quantizeOptions() -> GGUFExportOptions { GGUFExportOptions(recipe: .q8_0) }

    /// `billa quantize DIR --type q8_0`, the reference bytes.
    static let direct: [UInt8] = {
        let path = work + "/direct.gguf"
        if !FileManager.default.fileExists(atPath: path) {
            do { try GGUFExport.plan(source: model, options: quantizeOptions()).write(to: path) } catch { Issue.record("quantize: \(error)") }
        }
        return StreamingSupport.fileBytes(path)
    }()

    static func expectSameFile(_ path: String, _ label: String) {
        #expect(!direct.isEmpty)
        StreamingSupport.expectSame(StreamingSupport.fileBytes(path), direct, label)
    }

    /// Regression: `quantize --format pack` / `pack --quantize` failed on every tensor over 1M elements ("the source
    /// gave 1113840 bytes, expected 1410048"). Now the quantized pack holds the GGUF's tensors and converts, and
    /// unpacks, to the GGUF `quantize` writes.
    @Test("quantize --format pack, then convert and unpack --to gguf: quantize's bytes")
    func quantizedPack() throws {
        let pack = Self.work + "/q.billa"
        defer { for f in ["q.billa", "q-converted.gguf", "q-unpacked.gguf"] { try? FileManager.default.removeItem(atPath: Self.work + "/" + f) } }
        try? FileManager.default.removeItem(atPath: pack)
        try Packer.packQuantized(source: Self.model, export: Self.quantizeOptions(), options: PackOptions(), to: pack)
        let file = try PackReader.open(pack)
        #expect(PackVerifier.verify(file).ok)
        #expect(file.tensors.filter { $0.dtype == .q8_0 }.count == 9 && file.tensors.filter { $0.dtype == .f32 }.count == 3)
        #expect(PackGGUF.recordedRecipe(pack) == .q8_0)

        let converted = Self.work + "/q-converted.gguf"
        try? FileManager.default.removeItem(atPath: converted)
        try GGUFExport.plan(source: pack, options: Self.quantizeOptions()).write(to: converted)
        Self.expectSameFile(converted, "convert PACK --to gguf")

        let unpacked = Self.work + "/q-unpacked.gguf"
        try? FileManager.default.removeItem(atPath: unpacked)
        try Unpacker.unpack(file, to: .gguf, output: unpacked)
        Self.expectSameFile(unpacked, "unpack --to gguf")
        #expect(throws: BillaError.self) { try Unpacker.unpack(file, to: .safetensors, output: Self.work + "/q.safetensors") }

        // Another recipe treats the pack as the GGUF it holds: quantized tensors are not quantized again silently.
        #expect(throws: BillaError.self) { _ = try GGUFExport.plan(source: pack, options: GGUFExportOptions(recipe: .q4_0)) }
    }

    @Test("a pack of a GGUF converts back to that GGUF")
    func packOfGGUF() throws {
        let gguf = Self.work + "/direct.gguf"
        _ = Self.direct
        let pack = Self.work + "/g.billa"
        defer { for f in ["g.billa", "g-back.gguf", "g-unpacked.gguf"] { try? FileManager.default.removeItem(atPath: Self.work + "/" + f) } }
        try? FileManager.default.removeItem(atPath: pack)
        try Packer.pack(Release.open(gguf), options: PackOptions(), to: pack)
        let out = Self.work + "/g-back.gguf"
        try? FileManager.default.removeItem(atPath: out)
        try GGUFExport.plan(source: pack, options: Self.quantizeOptions()).write(to: out)
        Self.expectSameFile(out, "pack GGUF, convert --to gguf")
        let unpacked = Self.work + "/g-unpacked.gguf"
        try? FileManager.default.removeItem(atPath: unpacked)
        try Unpacker.unpack(PackReader.open(pack), to: .gguf, output: unpacked)
        Self.expectSameFile(unpacked, "pack GGUF, unpack --to gguf")
    }

    /// A plain pack of the directory: quantizing it writes quantize DIR's bytes (general.name is the directory's, as
    /// the pack records it), and HF -> Meta through the pack's permuted rows equals HF -> Meta from the directory.
    @Test("quantize PACK and convert PACK --to meta equal the directory's")
    func plainPack() throws {
        let pack = Self.work + "/p.billa"
        defer { for f in ["p.billa", "p-q.gguf", "meta-dir", "meta-pack"] { try? FileManager.default.removeItem(atPath: Self.work + "/" + f) } }
        try? FileManager.default.removeItem(atPath: pack)
        try Packer.pack(Release.open(Self.model), options: PackOptions(), to: pack)
        let q = Self.work + "/p-q.gguf"
        try? FileManager.default.removeItem(atPath: q)
        try GGUFExport.plan(source: pack, options: Self.quantizeOptions()).write(to: q)
        Self.expectSameFile(q, "quantize PACK")

        let fromDir = Self.work + "/meta-dir", fromPack = Self.work + "/meta-pack"
        for d in [fromDir, fromPack] { try? FileManager.default.removeItem(atPath: d) }
        try Converter.plan(source: Self.model, destination: fromDir, options: ConvertOptions(target: .meta)).execute()
        try Converter.plan(source: pack, destination: fromPack, options: ConvertOptions(target: .meta)).execute()
        let a = try Checksummer.hashTensors(Release.open(fromDir), algorithm: .sha256).map { "\($0.name) \($0.digest)" }
        let b = try Checksummer.hashTensors(Release.open(fromPack), algorithm: .sha256).map { "\($0.name) \($0.digest)" }
        #expect(a == b && a.count >= 12)
    }
}
