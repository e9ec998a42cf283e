import Foundation
import Testing
@testable import BillaKit

/// Meta's Llama-3 tokenizer between its two forms: the tiktoken tokenizer.model and the tokenizer.json transformers'
/// TikTokenConverter builds from it (Tests/Fixtures/bpe, scripts/fixtures/make_bpe_tokenizer_fixtures.py).
@Suite("Llama-3 originals <-> Hugging Face: tokenizer.json and back")
struct Llama3ConvertTests {
    static func firstDifference(_ a: [UInt8], _ b: [UInt8]) -> String? {
        guard let i = zip(a, b).enumerated().first(where: { $0.element.0 != $0.element.1 })?.offset ?? (a.count == b.count ? nil : min(a.count, b.count)) else { return nil }
        func around(_ x: [UInt8]) -> String { String(decoding: x[max(0, i - 60)..<min(x.count, i + 60)], as: UTF8.self).debugDescription }
        return "first difference at byte \(i) of \(a.count) / \(b.count): billa …\(around(a))… transformers …\(around(b))…"
    }

    @Test("tokenizer.json from Meta's tiktoken file is transformers' TikTokenConverter's, byte for byte")
    func tokenizerJSONFromTiktoken() throws {
        let t = try BPETokenizer(tiktoken: Fixtures.path("bpe/llama3-tokenizer.model"))
        let got = TokenizerJSONWriter.llama3(from: t)
        let want = try Array(Data(contentsOf: URL(fileURLWithPath: Fixtures.path("bpe/llama3/tokenizer.json"))))
        let d = Self.firstDifference(got, want)
        #expect(d == nil, "\(d ?? "")")
    }

    @Test("Meta's tiktoken file from that tokenizer.json is Meta's own, byte for byte; other tokenizer.json files have none")
    func tiktokenFromTokenizerJSON() throws {
        let t = try BPETokenizer(tokenizerJSON: Fixtures.path("bpe/llama3/tokenizer.json"))
        let got = try #require(TiktokenWriter.llama3(from: t))
        let want = try Array(Data(contentsOf: URL(fileURLWithPath: Fixtures.path("bpe/llama3-tokenizer.model"))))
        let d = Self.firstDifference(got, want)
        #expect(d == nil, "\(d ?? "")")
        #expect(TiktokenWriter.llama3(from: try BPETokenizer(tokenizerJSON: Fixtures.path("bpe/qwen2/tokenizer.json"))) == nil)
    }

    @Test("a Llama-3.1 HF model -> Meta -> HF: Meta's tokenizer.model, then transformers' tokenizer.json, the ids, context, rope and tie; same logits")
    func roundTrip() throws {
        let tmp = try Fixtures.tempDir("llama3-roundtrip")
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let src = Fixtures.path("gguf-bpe/llama3")
        try Converter.plan(source: src, destination: tmp + "/meta", options: ConvertOptions(target: .meta)).execute()
        let model = try Array(Data(contentsOf: URL(fileURLWithPath: tmp + "/meta/tokenizer.model")))
        let meta = try Array(Data(contentsOf: URL(fileURLWithPath: Fixtures.path("bpe/llama3-tokenizer.model"))))
        #expect(Self.firstDifference(model, meta) == nil, "\(Self.firstDifference(model, meta) ?? "")")
        // Every tensor is the Meta original the generator computed on its own (interleaved q/k, the tied head copied).
        let metaSHA = try #require((FamilyGolden.json["llama3_meta"] as? [String: Any])?["meta_tensor_sha256"] as? [String: String])
        let written = try Release.open(tmp + "/meta").tensors
        #expect(Set(written.map(\.1.name)) == Set(metaSHA.keys), "Meta tensors: \(written.map(\.1.name).sorted())")
        for (_, t) in written {
            #expect(try t.withBytes { sha256Hex($0) } == metaSHA[t.name], "\(t.name) differs from the Meta original make_family_fixtures.py computed")
        }
        let params = try MetadataRoundTripTests.json(tmp + "/meta/params.json")
        #expect(params["use_scaled_rope"] as? Bool == true && params["rope_theta"] as? Double == 500000)
        let back = try Converter.plan(source: tmp + "/meta", destination: tmp + "/hf", options: ConvertOptions(target: .hf))
        try back.execute()
        let json = try Array(Data(contentsOf: URL(fileURLWithPath: tmp + "/hf/tokenizer.json")))
        let want = try Array(Data(contentsOf: URL(fileURLWithPath: Fixtures.path("bpe/llama3/tokenizer.json"))))
        #expect(Self.firstDifference(json, want) == nil, "\(Self.firstDifference(json, want) ?? "")")
        #expect(!FileManager.default.fileExists(atPath: tmp + "/hf/tokenizer.model"))
        let a = try MetadataRoundTripTests.json(src + "/config.json"), b = try MetadataRoundTripTests.json(tmp + "/hf/config.json")
        for key in ["bos_token_id", "eos_token_id", "max_position_embeddings", "tie_word_embeddings", "vocab_size", "num_key_value_heads"] {
            #expect("\(a[key] ?? "absent")" == "\(b[key] ?? "absent")", "\(key): source \(a[key] ?? "absent"), after the round trip \(b[key] ?? "absent")")
        }
        #expect(try Release.open(tmp + "/hf").parameters?.ropeScaling == Release.open(src).parameters?.ropeScaling)
        let cfg = try MetadataRoundTripTests.json(tmp + "/hf/tokenizer_config.json")
        #expect(cfg["bos_token"] as? String == "<|begin_of_text|>" && cfg["tokenizer_class"] as? String == "TokenizersBackend")
        let r = try Verifier.compare(Verifier.Loaded(src), Verifier.Loaded(tmp + "/hf"), prompts: ["我爱北京 hello"])
        #expect(r.pass && r.maxAbsDiff == 0, "\(r.failures)")
    }
}
