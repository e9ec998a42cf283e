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
}
