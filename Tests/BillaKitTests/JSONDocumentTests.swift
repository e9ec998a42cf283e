import Foundation
import Testing
@testable import BillaKit

/// billa's JSON parser against Foundation's `JSONSerialization` (an independent parser) on real files, and the
/// inputs serde_json (tokenizers' parser) refuses.
@Suite("JSON document parser")
struct JSONDocumentTests {
    /// Deep equality over the shapes both parsers give; returns the path of the first difference.
    static func firstDifference(_ a: Any, _ b: Any, _ path: String = "$") -> String? {
        switch (a, b) {
        case let (x as [String: Any], y as [String: Any]):
            if x.count != y.count { return "\(path): \(x.count) keys vs \(y.count)" }
            for k in x.keys.sorted() {
                guard let yv = y[k] else { return "\(path).\(k): missing" }
                if let d = firstDifference(x[k]!, yv, "\(path).\(k)") { return d }
            }
            return nil
        case let (x as [Any], y as [Any]):
            if x.count != y.count { return "\(path): \(x.count) elements vs \(y.count)" }
            for i in x.indices { if let d = firstDifference(x[i], y[i], "\(path)[\(i)]") { return d } }
            return nil
        case let (x as String, y as String): return x == y ? nil : "\(path): \(x.debugDescription) vs \(y.debugDescription)"
        case (is NSNull, is NSNull): return nil
        case let (x as Bool, y as NSNumber): return x == y.boolValue ? nil : "\(path): bool"
        case let (x as Int, y as NSNumber): return Int(exactly: y.doubleValue) == x || y.intValue == x ? nil : "\(path): \(x) vs \(y)"
        case let (x as Double, y as NSNumber): return x == y.doubleValue ? nil : "\(path): \(x) vs \(y)"
        default: return "\(path): \(type(of: a)) vs \(type(of: b))"
        }
    }

    @Test("gives JSONSerialization's values on the tokenizer.json fixtures (Llama-3: 128,000 keys, 280,147 merges)",
          arguments: ["bpe/llama3/tokenizer.json", "bpe/qwen2/tokenizer.json", "bpe/edge-cases.json"])
    func matchesFoundation(_ file: String) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path(file)))
        let ours = try JSONDocument.parse(data)
        let theirs = try JSONSerialization.jsonObject(with: data)
        let d = Self.firstDifference(ours, theirs)
        #expect(d == nil, "first difference: \(d ?? "")")
    }

    @Test("compact members: the vocabulary's keys and the merges as JSONSerialization reads them", arguments: ["llama3", "qwen2"])
    func compact(_ name: String) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("bpe/\(name)/tokenizer.json")))
        let ours = try JSONDocument.parse(data, compact: ["vocab", "merges"]) as? [String: Any]
        let theirs = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        let model = ours?["model"] as? [String: Any], ref = theirs?["model"] as? [String: Any]
        let vocab = try #require(model?["vocab"] as? JSONDocument.StringList)
        let refVocab = try #require(ref?["vocab"] as? [String: Any])
        #expect(vocab.count == refVocab.count && vocab.values.count == vocab.count)
        var first: String?
        for k in 0..<vocab.count where first == nil {
            let key = vocab.string(k)
            if (refVocab[key] as? NSNumber)?.intValue != vocab.values[k] as? Int { first = "vocab key \(key.debugDescription)" }
        }
        let merges = try #require(model?["merges"] as? JSONDocument.StringList)
        let refMerges = try #require(ref?["merges"] as? [Any])
        #expect(merges.count == (merges.pairs ? 2 : 1) * refMerges.count)
        for (i, m) in refMerges.enumerated() where first == nil {
            let want = (m as? [String]) ?? [m as? String ?? ""]
            let got = merges.pairs ? [merges.string(2 * i), merges.string(2 * i + 1)] : [merges.string(i)]
            if got != want { first = "merge #\(i): \(got) vs \(want)" }
        }
        #expect(first == nil, "first difference: \(first ?? "")")
    }

    @Test("a compact member that is not a string array stays a plain value")
    func compactFallback() throws {
        let v = try JSONDocument.parse(Data(#"{"merges":["a b",["c","d"],3],"vocab":5}"#.utf8), compact: ["vocab", "merges"]) as? [String: Any]
        #expect((v?["merges"] as? [Any])?.count == 3)
        #expect(v?["vocab"] as? Int == 5)
    }

    @Test("escapes, surrogate pairs and numbers")
    func values() throws {
        let text = #"{"a":"x\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00","n":[0,-1,12.5,1e3,-0.0,9223372036854775807,9223372036854775808],"t":true,"f":false,"z":null}"#
        let v = try JSONDocument.parse(Data(text.utf8)) as? [String: Any]
        #expect(v?["a"] as? String == "x\"\\/\u{08}\u{0C}\n\r\té😀")
        let n = v?["n"] as? [Any] ?? []
        #expect(n.count == 7)
        #expect(n.first as? Int == 0 && n[1] as? Int == -1 && n[2] as? Double == 12.5 && n[3] as? Double == 1000)
        #expect(n[5] as? Int == Int.max && n[6] as? Double == 9223372036854775808.0)
        #expect(v?["t"] as? Bool == true && v?["f"] as? Bool == false && v?["z"] is NSNull)
    }

    @Test("refuses what serde_json refuses", arguments: [
        #"{"a":1} x"#, #"{"a":"\ud800"}"#, #"{"a":"\udc00"}"#, #"{"a":"\x"}"#, "{\"a\":\"\u{01}\"}", "[01]", "[1.]",
        "[-]", "[1e]", "{\"a\" 1}", "[1,]", "{,}", "tru", "\"open", "",
        String(repeating: "[", count: 600) + String(repeating: "]", count: 600),
    ])
    func refuses(_ text: String) {
        #expect(throws: JSONDocument.Failure.self) { try JSONDocument.parse(Data(text.utf8)) }
    }

    @Test("refuses a string that is not UTF-8")
    func notUTF8() {
        #expect(throws: JSONDocument.Failure.self) { try JSONDocument.parse(Data([0x22, 0xFF, 0x22])) }
    }
}
