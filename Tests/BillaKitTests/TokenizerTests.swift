import Foundation
import Testing
@testable import BillaKit

/// Goldens from scripts/fixtures/make_tokenizer_fixtures.py (sentencepiece 0.2.3), never from billa.
enum TokenizerFixtures {
    static let names = ["llama": "llama-tokenizer.model", "chinese_sp": "chinese_sp.model",
                        "chinese_llama_2": "chinese-llama-2-tokenizer.model"]
    static let corpora = ["corpus-zh.jsonl", "corpus-en.jsonl"]

    static func modelPath(_ name: String) -> String { Fixtures.path("tokenizers/" + (names[name] ?? name)) }
    static func path(_ file: String) -> String { Fixtures.path("tokenizer/" + file) }

    static func json(_ file: String) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path(file))))
    }

    static func texts(_ corpus: String) throws -> [String] {
        let data = try String(contentsOfFile: path(corpus), encoding: .utf8)
        return try data.split(separator: "\n").map { line in
            let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            return (o?["text"] as? String) ?? ""
        }
    }

    /// "line L: token T differs (billa X, sentencepiece Y)" or nil when equal.
    static func firstDifference(_ got: [Int], _ want: [Int]) -> String? {
        for i in 0..<min(got.count, want.count) where got[i] != want[i] {
            return "token \(i) differs: billa \(got[i]), sentencepiece \(want[i])"
        }
        if got.count != want.count { return "lengths differ: billa \(got.count), sentencepiece \(want.count) tokens" }
        return nil
    }

    nonisolated(unsafe) static var cache: [String: Tokenizer] = [:]
    static let lock = NSLock()
    static func tokenizer(_ name: String) throws -> Tokenizer {
        lock.lock(); defer { lock.unlock() }
        if let t = cache[name] { return t }
        let t = try Tokenizer(path: modelPath(name))
        cache[name] = t
        return t
    }
}

@Suite struct TokenizerTests {
    @Test(arguments: ["llama", "chinese_sp", "chinese_llama_2"])
    func modelRoundTripIsByteIdentical(name: String) throws {
        let path = TokenizerFixtures.modelPath(name)
        let original = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        let again = try SentencePieceModel(bytes: original, path: path).serialized()
        let diff = original.withUnsafeBytes { a in again.withUnsafeBytes { b in firstDifference(a, b, elementSize: 1) } }
        #expect(diff == nil, "\(name): \(diff ?? "")")
    }

    @Test(arguments: ["llama", "chinese_sp", "chinese_llama_2"])
    func corpusIDsMatchSentencepiece(name: String) throws {
        let tok = try TokenizerFixtures.tokenizer(name)
        guard let golden = try TokenizerFixtures.json("ids-\(name).json") as? [String: [[Int]]] else {
            Issue.record("ids-\(name).json is malformed"); return
        }
        for corpus in TokenizerFixtures.corpora {
            let texts = try TokenizerFixtures.texts(corpus)
            let want = try #require(golden[corpus])
            #expect(texts.count == want.count)
            var failures = 0
            for (i, text) in texts.enumerated() where i < want.count {
                if let d = TokenizerFixtures.firstDifference(tok.encode(text), want[i]) {
                    failures += 1
                    if failures <= 3 { Issue.record("\(name) \(corpus) line \(i + 1): \(d)") }
                }
            }
            #expect(failures == 0, "\(name) \(corpus): \(failures) of \(texts.count) lines differ")
        }
    }

    @Test(arguments: ["llama", "chinese_sp", "chinese_llama_2"])
    func edgeCasesMatchSentencepiece(name: String) throws {
        let tok = try TokenizerFixtures.tokenizer(name)
        let root = try #require(try TokenizerFixtures.json("edge-cases.json") as? [String: Any])
        let cases = try #require(root["cases"] as? [[String: Any]])
        #expect(cases.count >= 20)
        for c in cases {
            let label = c["name"] as? String ?? "?"
            let text = try #require(c["text"] as? String)
            let ids = try #require((c["ids"] as? [String: [Int]])?[name])
            let pieces = try #require((c["pieces"] as? [String: [String]])?[name])
            let decoded = try #require((c["decoded"] as? [String: String])?[name])
            let got = tok.encode(text)
            if let d = TokenizerFixtures.firstDifference(got, ids) { Issue.record("\(name) '\(label)': \(d)") }
            #expect(tok.encodePieces(text) == pieces, "\(name) '\(label)' pieces")
            #expect(try tok.decode(ids) == decoded, "\(name) '\(label)' decode")
            // byte-level entry point agrees with the String one
            #expect(try tok.encode(bytes: Array(text.utf8)) == got)
        }
    }

    @Test func invalidUTF8IsAClearError() throws {
        let tok = try TokenizerFixtures.tokenizer("llama")
        for bad: [UInt8] in [[0x61, 0xFF, 0x62], [0xE4, 0xB8], [0xC0, 0x80], [0xED, 0xA0, 0x80], [0x61, 0x62, 0xF8]] {
            do {
                _ = try tok.encode(bytes: bad, source: "stdin")
                Issue.record("\(bad) was accepted")
            } catch let e as BillaError {
                #expect(e.code == .invalidArgument)
                #expect(e.description.contains("not valid UTF-8"))
                #expect(e.description.contains("remedy"))
            }
        }
    }

    @Test func specialIDs() throws {
        let tok = try TokenizerFixtures.tokenizer("llama")
        #expect(tok.unkID == 0 && tok.bosID == 1 && tok.eosID == 2 && tok.padID == nil)
        #expect(tok.pieceCount == 32000)
        #expect(tok.algorithm == .bpe)
        #expect(try TokenizerFixtures.tokenizer("chinese_sp").algorithm == .unigram)
    }

    @Test func decodeRejectsOutOfRangeIDs() throws {
        let tok = try TokenizerFixtures.tokenizer("llama")
        #expect(throws: BillaError.self) { try tok.decode([1, 32000]) }
    }

    @Test func notAModelIsRefused() throws {
        #expect(throws: BillaError.self) { try SentencePieceModel(bytes: Array("{\"model\": 1}".utf8), path: "x.json") }
        #expect(throws: BillaError.self) { try SentencePieceModel(bytes: [], path: "empty") }
    }
}
