import Foundation
import Testing
@testable import BillaKit

/// bos/eos/pad ids, context length, rope scaling and the tie flag through HF -> Meta -> HF (issue #13 item 5).
@Suite("metadata survives round trips")
struct MetadataRoundTripTests {
    /// tiny-hf-st's weights without lm_head, under a Llama-3.1-like config: ids other than LLaMA's, several eos ids, a
    /// pad id, context 8192, llama3 rope scaling, tied embeddings.
    static func tiedLlama3(in tmp: String) throws -> String {
        let d = tmp + "/src"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        let base = try Release.open(Fixtures.path("tiny-hf-st"))
        let plans = base.tensors.filter { $0.1.name != "lm_head.weight" }.map { RowSource($0.1).plan(named: $0.1.name) }
        try SafetensorsWriter.write(plans, metadata: ["format": "pt"], to: d + "/model.safetensors")
        for f in ["tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"] {
            try FileManager.default.copyItem(atPath: Fixtures.path("tiny-hf-st/" + f), toPath: d + "/" + f)
        }
        var config = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Fixtures.path("rope/llama3.config.json")))) as? [String: Any])
        config["bos_token_id"] = 500
        config["eos_token_id"] = [501, 502]
        config["pad_token_id"] = 503
        config["max_position_embeddings"] = 8192
        config["tie_word_embeddings"] = true
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: d + "/config.json"))
        return d
    }

    static func json(_ path: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
    }

    @Test("HF -> Meta -> HF keeps bos/eos/pad, the context length, the rope scaling and the tie; each is noted")
    func hfMetaHF() throws {
        let tmp = try Fixtures.tempDir("meta-roundtrip")
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let src = try Self.tiedLlama3(in: tmp)
        let toMeta = try Converter.plan(source: src, destination: tmp + "/meta", options: ConvertOptions(target: .meta))
        #expect(toMeta.notes.contains { $0.contains("output.weight is written as a copy of the embedding") }, "\(toMeta.notes)")
        #expect(toMeta.notes.contains { $0.contains("max_position_embeddings, bos_token_id, eos_token_id, pad_token_id as extra keys") }, "\(toMeta.notes)")
        try toMeta.execute()
        let params = try Self.json(tmp + "/meta/params.json")
        #expect(params["max_position_embeddings"] as? Int == 8192 && params["bos_token_id"] as? Int == 500)
        #expect(params["eos_token_id"] as? [Int] == [501, 502] && params["pad_token_id"] as? Int == 503)
        #expect(params["tie_word_embeddings"] as? Bool == true && params["use_scaled_rope"] as? Bool == true)
        let meta = try Release.open(tmp + "/meta")
        let out = try #require(meta.tensors.first { $0.1.name == "output.weight" }?.1)
        let emb = try #require(meta.tensors.first { $0.1.name == "tok_embeddings.weight" }?.1)
        #expect(try out.withBytes { Array($0) } == emb.withBytes { Array($0) }, "Meta's output.weight is not the embedding")

        let toHF = try Converter.plan(source: tmp + "/meta", destination: tmp + "/hf", options: ConvertOptions(target: .hf))
        #expect(toHF.notes.contains { $0.contains("lm_head.weight is not written") }, "\(toHF.notes)")
        try toHF.execute()
        let a = try Self.json(src + "/config.json"), b = try Self.json(tmp + "/hf/config.json")
        for key in ["bos_token_id", "pad_token_id", "max_position_embeddings", "tie_word_embeddings"] {
            #expect("\(a[key] ?? "absent")" == "\(b[key] ?? "absent")", "\(key): source \(a[key] ?? "absent"), after HF -> Meta -> HF \(b[key] ?? "absent")")
        }
        #expect(b["eos_token_id"] as? [Int] == [501, 502])
        #expect(try Release.open(tmp + "/hf").parameters?.ropeScaling == Release.open(src).parameters?.ropeScaling)
        let gen = try Self.json(tmp + "/hf/generation_config.json")
        #expect(gen["bos_token_id"] as? Int == 500 && gen["eos_token_id"] as? [Int] == [501, 502])
        #expect(try !Release.open(tmp + "/hf").tensors.contains { $0.1.name == "lm_head.weight" })
        // The same model throughout: the round trip's logits are the source's, bit for bit.
        let r = try Verifier.compare(Verifier.Loaded(src), Verifier.Loaded(tmp + "/hf"), prompts: ["The capital of France is"])
        #expect(r.pass && r.maxAbsDiff == 0, "\(r.failures)")
        // GGUF holds the context and the tie (no output.weight).
        let g = try GGUFExport.plan(source: tmp + "/hf", options: GGUFExportOptions(recipe: .f32))
        #expect(g.metadata["llama.context_length"] == .u32(8192) && !g.choices.contains { $0.name == "output.weight" })
    }

    @Test("LLaMA's own values add no key: HF -> Meta of tiny-hf-st writes Meta's params.json keys only")
    func llamaDefaultsAddNothing() throws {
        let tmp = try Fixtures.tempDir("meta-defaults")
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        try Converter.plan(source: Fixtures.path("tiny-hf-st"), destination: tmp + "/meta", options: ConvertOptions(target: .meta)).execute()
        let keys = Set(try Self.json(tmp + "/meta/params.json").keys)
        #expect(keys.isSubset(of: ["dim", "multiple_of", "ffn_dim_multiplier", "n_heads", "n_kv_heads", "n_layers", "norm_eps", "rope_theta", "vocab_size"]), "\(keys)")
    }
}
