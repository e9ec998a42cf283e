import Foundation
import Testing
@testable import BillaKit

/// Goldens from scripts/fixtures/make_bpe_tokenizer_fixtures.py (tokenizers 0.23.3, tiktoken 0.14.0), never from
/// billa. Texts: every corpus text, then the edge cases; ids-<name>.txt holds one line of ids per text.
enum BPEFixtures {
    static func path(_ f: String) -> String { Fixtures.path("bpe/" + f) }

    static let texts: [String] = {
        var out = [String]()
        for c in ["corpus-en.jsonl", "corpus-zh.jsonl"] {
            out += (try? TokenizerFixtures.texts(c)) ?? []
        }
        return out + edgeCases.map(\.text)
    }()

    static let edgeCases: [(name: String, text: String)] = {
        guard let d = try? Data(contentsOf: URL(fileURLWithPath: path("edge-cases.json"))),
              let o = (try? JSONSerialization.jsonObject(with: d)) as? [String: Any],
              let cases = o["cases"] as? [[String: String]] else { return [] }
        return cases.map { ($0["name"] ?? "", $0["text"] ?? "") }
    }()

    static func ids(_ name: String) throws -> [[Int]] {
        let s = try String(contentsOfFile: path("ids-\(name).txt"), encoding: .utf8)
        var lines = s.split(separator: "\n", omittingEmptySubsequences: false)
        if lines.last == "" { lines.removeLast() }
        return lines.map { $0.split(separator: " ").compactMap { Int($0) } }
    }

    static func decoded(_ name: String) throws -> (withBOS: (text: String, ids: [Int]), decoded: [String]) {
        let d = try Data(contentsOf: URL(fileURLWithPath: path("decoded-\(name).json")))
        let o = try JSONSerialization.jsonObject(with: d) as? [String: Any] ?? [:]
        let wb = o["with_bos"] as? [String: Any] ?? [:]
        return ((wb["text"] as? String ?? "", wb["ids"] as? [Int] ?? []), o["decoded"] as? [String] ?? [])
    }

    nonisolated(unsafe) static var cache: [String: BPETokenizer] = [:]
    static let lock = NSLock()
    static func tokenizer(_ name: String) throws -> BPETokenizer {
        lock.lock(); defer { lock.unlock() }
        if let t = cache[name] { return t }
        let t: BPETokenizer
        switch name {
        case "llama3-tiktoken": t = try BPETokenizer(tiktoken: path("llama3-tokenizer.model"))
        default: t = try BPETokenizer(tokenizerJSON: path("\(name)/tokenizer.json"))
        }
        cache[name] = t
        return t
    }

    static func name(ofText i: Int) -> String {
        let edgeStart = texts.count - edgeCases.count
        return i >= edgeStart ? "edge case '\(edgeCases[i - edgeStart].name)'" : "corpus text \(i + 1)"
    }
}

@Suite struct BPETokenizerTests {
    static let names = ["llama3", "qwen2", "llama3-tiktoken"]

    @Test(arguments: names)
    func idsMatchReferenceOnEveryText(name: String) throws {
        let tok = try BPEFixtures.tokenizer(name)
        let want = try BPEFixtures.ids(name)
        let texts = BPEFixtures.texts
        try #require(texts.count == want.count && texts.count > 1100, "\(texts.count) texts vs \(want.count) reference lines")
        var failures = 0
        for (i, text) in texts.enumerated() {
            let got = tok.encode(text)
            if let d = TokenizerFixtures.firstDifference(got, want[i]) {
                failures += 1
                if failures <= 3 {
                    Issue.record("\(name), \(BPEFixtures.name(ofText: i)) \(String(reflecting: String(text.prefix(60)))): \(d) (reference \(name == "llama3-tiktoken" ? "tiktoken" : "tokenizers"))")
                }
            }
        }
        #expect(failures == 0, "\(name): \(failures) of \(texts.count) texts differ")
    }

    @Test(arguments: names)
    func decodeAndBOSMatchReference(name: String) throws {
        let tok = try BPEFixtures.tokenizer(name)
        let (withBOS, decoded) = try BPEFixtures.decoded(name)
        #expect(tok.encodeWithSpecials(withBOS.text) == withBOS.ids, "\(name): bos handling differs")
        let want = try BPEFixtures.ids(name)
        let edgeStart = BPEFixtures.texts.count - BPEFixtures.edgeCases.count
        for (k, d) in decoded.enumerated() {
            let got = try tok.decode(want[edgeStart + k])
            #expect(got == d, "\(name), edge case '\(BPEFixtures.edgeCases[k].name)': decode gives \(String(reflecting: got)), reference \(String(reflecting: d))")
        }
    }

    @Test func vocabularySizesCountAddedTokens() throws {
        #expect(try BPEFixtures.tokenizer("llama3").vocabularySize == 128256)
        #expect(try BPEFixtures.tokenizer("llama3-tiktoken").vocabularySize == 128256)
        #expect(try BPEFixtures.tokenizer("qwen2").vocabularySize == 8007)
        #expect(try TokenizerPieceCount.count(at: BPEFixtures.path("llama3-tokenizer.model")) == 128256)
        #expect(try TokenizerPieceCount.count(at: BPEFixtures.path("qwen2/tokenizer.json")) == 8007)
    }

    @Test func filesAreSniffed() throws {
        #expect(try ModelTokenizer.kind(of: BPEFixtures.path("llama3-tokenizer.model")) == .tiktoken)
        #expect(try ModelTokenizer.kind(of: BPEFixtures.path("qwen2/tokenizer.json")) == .tokenizerJSON)
        #expect(try ModelTokenizer.kind(of: TokenizerFixtures.modelPath("llama")) == .sentencepiece)
        #expect(try ModelTokenizer.open(BPEFixtures.path("llama3")).kind == .tokenizerJSON)
        let meta = try ModelTokenizer.open(BPEFixtures.path("llama3-tokenizer.model"))
        #expect(meta.bosID == 128000 && meta.eosID == 128001 && meta.padID == 128004)
    }

    /// The audit's "byte fallback" for byte-level BPE (tokens that are not whole characters) against the count the
    /// generator makes from the reference's own ids and token bytes.
    @Test(arguments: names)
    func auditCountsMatchReference(name: String) throws {
        let d = try Data(contentsOf: URL(fileURLWithPath: BPEFixtures.path("audit.json")))
        let want = try #require((try JSONSerialization.jsonObject(with: d) as? [String: [String: [String: Int]]])?[name])
        let tok = try BPEFixtures.tokenizer(name)
        for corpus in ["corpus-en.jsonl", "corpus-zh.jsonl"] {
            let texts = try TokenizerFixtures.texts(corpus)
            let c = VocabAudit.coverage(tok, texts: texts, corpus: corpus)
            #expect(c.texts == want[corpus]?["texts"], "\(name) \(corpus): texts")
            #expect(c.tokens.values["overall"] == want[corpus]?["tokens"], "\(name) \(corpus): tokens \(c.tokens.values["overall"] ?? -1)")
            #expect(c.byteTokens.values["overall"] == want[corpus]?["byte_fallback_tokens"],
                    "\(name) \(corpus): byte-fallback tokens \(c.byteTokens.values["overall"] ?? -1)")
        }
    }

    /// An unknown split regex is refused by name, not encoded with the wrong matcher.
    @Test func unknownComponentsAreRefused() throws {
        let src = try String(contentsOfFile: BPEFixtures.path("qwen2/tokenizer.json"), encoding: .utf8)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("billa-bpe-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for (from, to, says) in [(#"\\p{N}|"#, #"\\p{N}{1,2}|"#, "split regex"), (#"{"type":"NFC"}"#, #"{"type":"NFKC"}"#, "NFKC"),
                                 (#""single_word":false,"lstrip":true"#, #""single_word":true,"lstrip":true"#, "single_word")] {
            let edited = src.replacingOccurrences(of: from, with: to)
            #expect(edited != src, "fixture no longer contains \(from)")
            let f = dir.appendingPathComponent("tokenizer.json").path
            try edited.write(toFile: f, atomically: true, encoding: .utf8)
            #expect { _ = try BPETokenizer(tokenizerJSON: f) } throws: { "\($0)".contains(says) }
        }
    }

    /// Meta's encode() cuts runs of more than 25,000 whitespace or non-whitespace characters; the cut changes ids
    /// (checked on the same rule as llama-models: the run is split after 25,000 characters).
    @Test func metaChunkingSplitsLongRuns() throws {
        let text = String(repeating: "a", count: 25_001)
        let b = Array(text.utf8)
        let parts = b.withUnsafeBufferPointer { MetaChunks.parts($0) }
        #expect(parts.map { $0.1 - $0.0 } == [25_000, 1])
        let mixed = Array((String(repeating: " ", count: 3) + String(repeating: "b", count: 25_002)).utf8)
        #expect(mixed.withUnsafeBufferPointer { MetaChunks.parts($0) }.map { $0.1 - $0.0 } == [25_003, 2])
    }
}

/// Swift's Unicode tables against Oniguruma's (tokenizers' regex engine), over every code point: the split
/// pattern's \p{L}, \p{N} and \s come from them.
@Suite struct UnicodeClassTests {
    @Test func classesAgreeWithOniguruma() throws {
        let text = try String(contentsOfFile: BPEFixtures.path("unicode-onig.txt"), encoding: .utf8)
        var onig = [String: [Bool]]()
        for name in ["L", "N", "S"] { onig[name] = [Bool](repeating: false, count: 0x110000) }
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ")
            guard f.count == 3, let a = Int(f[1], radix: 16), let b = Int(f[2], radix: 16) else { continue }
            for v in a...b { onig[String(f[0])]?[v] = true }
        }
        var differ = [String: [UInt32]]()
        for v in UInt32(0)...0x10FFFF where !(0xD800...0xDFFF).contains(v) {
            let c = UnicodeClass.of(v)
            if (c == .letter) != onig["L"]?[Int(v)] { differ["L", default: []].append(v) }
            if (c == .number) != onig["N"]?[Int(v)] { differ["N", default: []].append(v) }
            if (c == .space || c == .newline) != onig["S"]?[Int(v)] { differ["S", default: []].append(v) }
        }
        let report = differ.sorted { $0.key < $1.key }.map { k, v in
            "\(k): \(v.count) code points, first " + v.prefix(8).map { String(format: "U+%04X", $0) }.joined(separator: " ")
        }.joined(separator: "; ")
        let same = differ.isEmpty
        #expect(same, "Swift and Oniguruma classify differently: \(report)")
    }
}

/// A LLaMA-1/2 download ships tokenizer.json (transformers' SentencePiece conversion: Metaspace over byte-fallback
/// BPE, which billa does not encode) beside tokenizer.model. The directory must still give a tokenizer: the model's,
/// with sentencepiece's ids (scripts/fixtures/make_spm_tokenizer_json.py). transformers' fast tokenizer differs from
/// sentencepiece on leading spaces; the fixture records both, and the test checks that it still does.
@Suite("a SentencePiece tokenizer.json beside tokenizer.model")
struct SentencePieceTokenizerJSONTests {
    @Test("the directory is encoded with tokenizer.model, giving sentencepiece's ids")
    func fallsBackToTheModel() throws {
        let dir = try Fixtures.tempDir("spm-json")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.copyItem(atPath: Fixtures.path("spm-tokenizer-json/tokenizer.json"), toPath: dir + "/tokenizer.json")
        try FileManager.default.copyItem(atPath: Fixtures.path("tokenizers/llama-tokenizer.model"), toPath: dir + "/tokenizer.model")
        let d = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("spm-tokenizer-json/expected.json")))
        let o = try #require(try JSONSerialization.jsonObject(with: d) as? [String: Any])
        let texts = try #require(o["texts"] as? [String]), want = try #require(o["sentencepiece_ids"] as? [[Int]])
        let fast = try #require(o["fast_ids"] as? [[Int]])
        #expect(fast[2] != want[2] && fast[0] == want[0], "the fixture no longer shows the fast tokenizer's leading-space difference")
        let t = try ModelTokenizer.open(dir)
        #expect(t.kind == .sentencepiece)
        for (text, ids) in zip(texts, want) {
            let got = t.encode(text)
            let first = zip(got, ids).enumerated().first { $0.element.0 != $0.element.1 }
            #expect(got == ids, "\(text.debugDescription): first difference at \(first.map { "\($0.offset): \($0.element.0) vs \($0.element.1)" } ?? "length \(got.count) vs \(ids.count)")")
        }
    }

    /// transformers' AutoTokenizer loads the fast tokenizer.json, so `len(tokenizer)` counts its added tokens (a
    /// `<pad>` at 32000 is the common case); inspect's cross-check used to count only tokenizer.model's 32000 pieces.
    @Test("the vocabulary cross-check counts tokenizer.json's ids, added tokens included")
    func countsTheJSONsAddedTokens() throws {
        let dir = try Fixtures.tempDir("spm-json-count")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for f in try FileManager.default.contentsOfDirectory(atPath: Fixtures.path("tiny-hf-st")) where f != "tokenizer.model" {
            try FileManager.default.copyItem(atPath: Fixtures.path("tiny-hf-st/" + f), toPath: dir + "/" + f)
        }
        try FileManager.default.copyItem(atPath: Fixtures.path("tokenizers/llama-tokenizer.model"), toPath: dir + "/tokenizer.model")
        #expect(try Release.open(dir).vocab.tokenizer == 32000)
        // Edited as text: a JSONSerialization round trip would itself merge the vocabulary's six pairs of
        // canonically equivalent keys (Swift String equality), the bug this test also guards against.
        let text = try String(contentsOfFile: Fixtures.path("spm-tokenizer-json/tokenizer.json"), encoding: .utf8)
        let pad = #"{"id": 32000, "content": "<pad>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},"#
        let edited = text.replacingOccurrences(of: "\"added_tokens\": [", with: "\"added_tokens\": [" + pad)
        #expect(edited != text)
        try edited.write(toFile: dir + "/tokenizer.json", atomically: false, encoding: .utf8)
        let r = try Release.open(dir)
        #expect(r.vocab.tokenizer == 32001, "\(r.vocab)")
        #expect(r.tokenizerPath?.hasSuffix("tokenizer.model") == true, "encoding still uses the model")
        // The slow tokenizer's length: 512 pieces, then added_tokens.json's [PAD] 512 and <extra> 513.
        #expect(try Release.open(Fixtures.path("gguf/alpaca")).vocab.tokenizer == 514)
    }

    @Test("without a tokenizer.model beside it, the tokenizer.json is refused by name")
    func refusedAlone() throws {
        let dir = try Fixtures.tempDir("spm-json-alone")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.copyItem(atPath: Fixtures.path("spm-tokenizer-json/tokenizer.json"), toPath: dir + "/tokenizer.json")
        #expect { try ModelTokenizer.open(dir) } throws: { ($0 as? BillaError)?.message.contains("Metaspace") == true }
    }
}
