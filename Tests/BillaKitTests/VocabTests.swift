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

    /// LLaMA has pieces that are canonically equivalent but different code points ('ί' U+1F77 and U+03AF):
    /// sentencepiece compares bytes, so they are not duplicates, and the audit must agree.
    @Test func canonicallyEquivalentPiecesAreNotDuplicates() throws {
        let llama = try TokenizerFixtures.tokenizer("llama")
        let r = VocabAudit.audit(llama, path: "llama", corpora: [])
        #expect(r.duplicatePieces.isEmpty, "\(r.duplicatePieces)")
        #expect(r.consistent)
        #expect(llama.id(of: "\u{1F77}") != llama.id(of: "\u{03AF}"))
    }

    @Test func chartIsAnSVGWithOneBarPerScriptAndTokenizer() throws {
        let texts = try TokenizerFixtures.texts("corpus-zh.jsonl")
        let a = VocabAudit.audit(try TokenizerFixtures.tokenizer("llama"), path: "llama", corpora: [("zh", texts)])
        let b = VocabAudit.audit(try TokenizerFixtures.tokenizer("chinese_llama_2"), path: "chinese_llama_2", corpora: [("zh", texts)])
        let svg = AuditChart.svg(a, b)
        #expect(svg.hasPrefix("<svg"))
        // han, latin, digits, punctuation, other: 5 scripts x 2 tokenizers with a value, plus the legend and background
        let bars = svg.components(separatedBy: "<rect").count - 1
        #expect(bars >= 10 + 2 + 1)
        #expect(svg.contains(">1.48<"), "LLaMA's Han tokens per character is labelled")
    }

    /// CRLF line ends, and plain text whose lines happen to start with '{'.
    @Test func corporaWithCRLFAndBracesAreRead() throws {
        let dir = NSTemporaryDirectory() + "billa-corpus-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try Data("{\"text\": \"一\"}\r\n{\"text\": \"二\"}\r\n".utf8).write(to: URL(fileURLWithPath: dir + "/a.jsonl"))
        try Data("line one\r\n{braces} in plain text\r\nthree\r\n".utf8).write(to: URL(fileURLWithPath: dir + "/b.txt"))
        #expect(try VocabAudit.readCorpus(dir + "/a.jsonl") == ["一", "二"])
        #expect(try VocabAudit.readCorpus(dir + "/b.txt") == ["line one", "{braces} in plain text", "three"])
    }

    /// sentencepiece keeps a special id only when its piece is CONTROL: <s> made USER_DEFINED is no BOS.
    @Test func specialIDsMustBeControlPieces() throws {
        var model = try SentencePieceModel.load(Fixtures.path("tiny-hf-st/tokenizer.model"))
        #expect(try Tokenizer(model: model).bosID == 1)
        model.proto.pieces[1].type = .userDefined
        #expect(try Tokenizer(model: model).bosID == nil)
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

@Suite struct VocabResizeTests {
    /// The tiny model's 512 rows grown to a merged tokenizer: old rows bit for bit, new rows the f16 mean, config
    /// and index updated, the other files linked.
    @Test func resizeKeepsRowsAndAppendsTheMean() throws {
        let dir = NSTemporaryDirectory() + "billa-resize-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let merged = try VocabMerge.merge(base: SentencePieceModel.load(Fixtures.path("tiny-hf-st/tokenizer.model")),
                                          extra: SentencePieceModel.load(TokenizerFixtures.modelPath("chinese_sp")), addPad: false)
        try merged.model.write(to: dir + "/merged.model")
        let n = merged.model.pieceCount
        let plan = try VocabResize.plan(.init(model: Fixtures.path("tiny-hf-st"), tokenizer: dir + "/merged.model", output: dir + "/out", initialisation: .mean))
        try plan.execute()
        let out = try Release.open(dir + "/out")
        #expect(out.vocab.consistent, "\(out.vocab)")
        #expect(out.vocab.embedding == n && out.vocab.config == n && out.vocab.tokenizer == n)
        let src = try Release.open(Fixtures.path("tiny-hf-st"))
        for name in ["model.embed_tokens.weight", "lm_head.weight"] {
            let a = try #require(src.tensors.first { $0.tensor.name == name }?.tensor)
            let b = try #require(out.tensors.first { $0.tensor.name == name }?.tensor)
            let old = try a.withBytes { Array($0.bindMemory(to: Float16.self)) }
            let new = try b.withBytes { Array($0.bindMemory(to: Float16.self)) }
            let w = a.shape[1]
            #expect(Array(new[0..<old.count]) == old, "\(name): existing rows changed")
            var mean = [Double](repeating: 0, count: w)
            for i in 0..<old.count { mean[i % w] += Double(old[i]) }
            let want = mean.map { Float16(Float($0 / Double(a.shape[0]))) }
            for r in [a.shape[0], n - 1] {
                #expect(Array(new[(r * w)..<((r + 1) * w)]) == want, "\(name) row \(r) is not the mean row")
            }
        }
        // every tensor that was not resized is untouched
        #expect(try Checksummer.hashTensors(out, algorithm: .sha256).filter { !$0.name.contains("embed") && !$0.name.contains("lm_head") }.map(\.digest)
                == Checksummer.hashTensors(src, algorithm: .sha256).filter { !$0.name.contains("embed") && !$0.name.contains("lm_head") }.map(\.digest))
    }
}
