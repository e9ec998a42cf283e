import Crypto
import Foundation
import Testing
@testable import BillaKit

/// `billa vocab merge` and `billa vocab audit` against scripts/fixtures/make_tokenizer_fixtures.py: the merge by
/// Chinese-LLaMA-Alpaca's procedure (python protobuf), the coverage numbers from sentencepiece's own encoding.
@Suite struct VocabTests {
    static func sha256(_ bytes: [UInt8]) -> String { SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined() }

    @Test(arguments: [false, true])
    func mergeIsByteIdenticalToTheReference(addPad: Bool) throws {
        let base = try SentencePieceModel.load(TokenizerFixtures.modelPath("llama"))
        let extra = try SentencePieceModel.load(TokenizerFixtures.modelPath("chinese_sp"))
        let r = try VocabMerge.merge(base: base, extra: extra, addPad: addPad)
        let got = try r.model.serialized()
        let manifest = try #require(try TokenizerFixtures.json("manifest.json") as? [String: Any])
        let merged = try #require(manifest["merged"] as? [String: [String: Any]])
        let key = addPad ? "merged-llama-chinese_sp-pad.model" : "merged-llama-chinese_sp.model"
        let want = try #require(merged[key])
        #expect(r.model.pieceCount == want["pieces"] as? Int)
        if !addPad {
            let reference = try [UInt8](Data(contentsOf: URL(fileURLWithPath: TokenizerFixtures.path(key))))
            if let i = zip(got, reference).enumerated().first(where: { $0.element.0 != $0.element.1 })?.offset {
                Issue.record("first differing byte at offset \(i): billa \(got[i]), reference \(reference[i])")
            }
            #expect(got.count == reference.count)
        }
        #expect(Self.sha256(got) == want["sha256"] as? String)
    }

    /// Every count of coverage.json, per tokenizer, corpus and script.
    @Test(arguments: ["llama", "chinese_sp", "chinese_llama_2"])
    func coverageMatchesSentencepiece(name: String) throws {
        let tok = try TokenizerFixtures.tokenizer(name)
        let all = try #require(try TokenizerFixtures.json("coverage.json") as? [String: [String: [String: Any]]])
        for corpus in TokenizerFixtures.corpora {
            let want = try #require(all[name]?[corpus])
            let got = VocabAudit.coverage(tok, texts: try TokenizerFixtures.texts(corpus), corpus: corpus)
            for (key, counts) in [("chars", got.chars), ("tokens", got.tokens), ("byte_tokens", got.byteTokens), ("unk_tokens", got.unkTokens)] {
                let w = try #require(want[key] as? [String: Int])
                for (script, value) in w where counts.values[script] != value {
                    Issue.record("\(name) \(corpus) \(key)[\(script)]: billa \(counts.values[script] ?? -1), reference \(value)")
                }
            }
            let top = try #require(want["han_byte_fallback_top"] as? [[Any]])
            let wantTop = top.map { "\($0[0])×\($0[1])" }
            let gotTop = got.hanByteFallbackTop.map { "\($0.char)×\($0.count)" }
            #expect(gotTop == wantTop, "\(name) \(corpus) top byte-fallback Han characters")
        }
    }

    /// LLaMA spells most Han characters with bytes; the extended vocabularies do not: the table the audit exists for.
    @Test func extensionCutsChineseTokens() throws {
        let texts = try TokenizerFixtures.texts("corpus-zh.jsonl")
        let llama = VocabAudit.coverage(try TokenizerFixtures.tokenizer("llama"), texts: texts, corpus: "zh")
        let ext = VocabAudit.coverage(try TokenizerFixtures.tokenizer("chinese_llama_2"), texts: texts, corpus: "zh")
        let a = try #require(llama.tokensPerChar.values["han"] ?? nil), b = try #require(ext.tokensPerChar.values["han"] ?? nil)
        #expect(a > 1 && b < 0.7, "Han tokens per character: LLaMA \(a), Chinese-LLaMA-2 \(b)")
        #expect(llama.hanDistinctCovered < ext.hanDistinctCovered)
    }

    /// A merged BPE vocabulary has pieces its merges can never build; the original LLaMA has few.
    @Test func unreachablePiecesOfAMergedVocabulary() throws {
        let merged = try Tokenizer(path: TokenizerFixtures.path("merged-llama-chinese_sp.model"))
        let llama = try TokenizerFixtures.tokenizer("llama")
        let m = merged.unreachablePieces().count, l = llama.unreachablePieces().count
        #expect(m > l, "merged \(m) unreachable, LLaMA \(l)")
        // every unreachable piece really does not come back when its text is encoded
        for id in merged.unreachablePieces().prefix(50) {
            let text = merged.piece(id).replacingOccurrences(of: "▁", with: " ")
            #expect(merged.encode(text) != [id])
        }
    }

    @Test func auditOfAModelDirectoryChecksSpecialIDs() throws {
        let release = try Release.open(Fixtures.path("mismatch"))
        let tok = try Tokenizer(path: try #require(release.tokenizerPath))
        let config = try Release.readJSON(Fixtures.path("mismatch/config.json"))
        let r = VocabAudit.audit(tok, path: Fixtures.path("mismatch"), release: release, config: config, corpora: [])
        #expect(!r.consistent, "the mismatch fixture's vocabulary sizes disagree")
        #expect(r.special.count == 4)
    }
}
