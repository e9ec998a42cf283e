import Foundation
import Testing
@testable import BillaKit

@Suite("model directories")
struct ReleaseTests {
    @Test("architecture, parameter count and vocabulary match the generator's model", arguments: ["tiny-meta", "tiny-hf-st", "tiny-hf-bin", "mismatch"])
    func parameters(_ dir: String) throws {
        let release = try Release.open(Fixtures.path(dir))
        let m = try #require(Fixtures.manifest.models[dir])
        #expect(release.layout.rawValue == m.format)
        let p = try #require(release.parameters)
        #expect(p.dim == m.dim && p.nLayers == m.n_layers && p.nHeads == m.n_heads && p.nKVHeads == m.n_kv_heads)
        #expect(p.ffnDim == m.ffn_dim)
        #expect(p.normEps == m.norm_eps && p.ropeTheta == m.rope_theta)
        #expect(p.vocabSize == m.vocab.embedding)
        #expect(release.parameterCount == m.parameters)
        #expect(release.vocab.embedding == m.vocab.embedding)
        #expect(release.vocab.lmHead == m.vocab.lm_head)
        #expect(release.vocab.config == m.vocab.config)
        #expect(release.vocab.tokenizer == m.vocab.tokenizer)
    }

    @Test("a vocabulary mismatch is reported with a warning that names every count")
    func mismatchWarns() throws {
        let release = try Release.open(Fixtures.path("mismatch"))
        #expect(!release.vocab.consistent)
        let warning = try #require(release.warnings.first { $0.contains("vocabulary sizes disagree") })
        #expect(warning.contains("config 520") && warning.contains("embedding 512"))
        #expect(try Release.open(Fixtures.path("tiny-hf-st")).vocab.consistent)
    }

    @Test("the real tokenizers' piece counts", arguments: [
        ("tokenizers/llama-tokenizer.model", 32000), ("tokenizers/chinese_sp.model", 20000),
        ("tokenizers/chinese-llama-2-tokenizer.model", 55296),
    ])
    func pieceCounts(_ c: (String, Int)) throws {
        #expect(try TokenizerPieceCount.count(at: Fixtures.path(c.0)) == c.1)
    }

    @Test("Meta shards, .bin shards and safetensors shards hold the same weights")
    func layoutsAgree() throws {
        // Meta names differ and wq/wk are permuted, so compare the tensors both layouts store unchanged.
        let st = try Release.open(Fixtures.path("tiny-hf-st"))
        let bin = try Release.open(Fixtures.path("tiny-hf-bin"))
        let a = try Checksummer.hashTensors(st, algorithm: .sha256).map { "\($0.name) \($0.digest)" }.sorted()
        let b = try Checksummer.hashTensors(bin, algorithm: .sha256).map { "\($0.name) \($0.digest)" }.sorted()
        #expect(a == b)
    }

    @Test("a missing shard named by the index is a clear error")
    func missingShard() throws {
        let dir = try TemporaryDirectory()
        for name in try FileManager.default.contentsOfDirectory(atPath: Fixtures.path("tiny-hf-st")) where !name.hasPrefix("model-00002") {
            try FileManager.default.copyItem(atPath: Fixtures.path("tiny-hf-st/\(name)"), toPath: dir.path + "/" + name)
        }
        let e = try #require(throws: BillaError.self) { try Release.open(dir.path) }
        #expect(e.code == .notFound)
        #expect(e.file?.hasSuffix("model-00002-of-00002.safetensors") == true)
    }

    @Test("format is detected from content, not from the file name")
    func sniffing() throws {
        let dir = try TemporaryDirectory()
        try FileManager.default.copyItem(atPath: Fixtures.path("dtypes/tiny-f16.safetensors"), toPath: dir.path + "/weights.bin")
        try FileManager.default.copyItem(atPath: Fixtures.path("dtypes/tiny-f16.pth"), toPath: dir.path + "/weights.safetensors")
        #expect(try FormatSniffer.openTensorFile(dir.path + "/weights.bin").format == .safetensors)
        #expect(try FormatSniffer.openTensorFile(dir.path + "/weights.safetensors").format == .torchZip)
    }
}
