import Foundation
import Testing
@testable import BillaKit

/// transformers' LlamaForCausalLM logits on the tiny model (scripts/fixtures/make_verify_fixtures.py).
enum VerifyGolden {
    struct Prompt: Decodable {
        let text: String
        let tokens: [Int]
        let logits: String
        let shape: [Int]
        let max_abs_logit: Double
        let greedy: [Int]
    }
    struct Golden: Decodable { let prompts: [Prompt] }

    static let golden: Golden = {
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("verify/golden.json")))
            return try JSONDecoder().decode(Golden.self, from: data)
        } catch {
            preconditionFailure("Tests/Fixtures/verify/golden.json is unreadable (\(error)); regenerate with scripts/fixtures/make_verify_fixtures.py")
        }
    }()

    static func logits(_ p: Prompt) throws -> [Float] {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("verify/" + p.logits)))
        return data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    /// The first element off by more than `tol`, as "token t, id v: got x, transformers y", or nil.
    static func firstDifference(_ got: [Float], _ want: [Float], vocab: Int, tol: Float) -> String? {
        guard got.count == want.count else { return "got \(got.count) logits, transformers has \(want.count)" }
        for i in 0..<got.count where !(abs(got[i] - want[i]) <= tol) {
            return "token \(i / vocab), id \(i % vocab): got \(got[i]), transformers \(want[i]) (|Δ| \(abs(got[i] - want[i])) > \(tol))"
        }
        return nil
    }
}

@Suite("forward pass against transformers")
struct ForwardTests {
    /// Within 1e-4 of the logit scale (the issue's bound), on every model layout the tiny weights come in.
    @Test(arguments: ["tiny-hf-st", "tiny-hf-bin", "tiny-meta"])
    func logitsMatchTransformers(model: String) throws {
        let weights = try LlamaWeights(Release.open(Fixtures.path(model)))
        #expect(weights.rope == (model == "tiny-meta" ? .interleaved : .halves))
        let lm = LlamaModel(weights)
        for p in VerifyGolden.golden.prompts {
            let want = try VerifyGolden.logits(p)
            let cache = KVCache(for: weights, capacity: p.tokens.count)
            let got = try lm.forward(p.tokens, cache: cache)
            let tol = Float(1e-4 * p.max_abs_logit)
            if let d = VerifyGolden.firstDifference(got, want, vocab: p.shape[1], tol: tol) {
                Issue.record("\(model), prompt '\(p.text)': \(d)")
            }
        }
    }

    /// Token by token through the KV cache gives the same logits as the whole prompt at once.
    @Test func kvCacheStepsMatchTheBatch() throws {
        let weights = try LlamaWeights(Release.open(Fixtures.path("tiny-meta")))
        let lm = LlamaModel(weights)
        let p = VerifyGolden.golden.prompts[0]
        let want = try VerifyGolden.logits(p)
        let cache = KVCache(for: weights, capacity: p.tokens.count)
        var got = [Float]()
        for t in p.tokens { got += try lm.forward([t], cache: cache) }
        if let d = VerifyGolden.firstDifference(got, want, vocab: p.shape[1], tol: Float(1e-4 * p.max_abs_logit)) {
            Issue.record("stepwise: \(d)")
        }
    }

    /// billa's tokenizer gives the ids sentencepiece gave the generator.
    @Test func promptTokensMatchSentencepiece() throws {
        let tok = try Tokenizer(path: Fixtures.path("tiny-hf-st/tokenizer.model"))
        for p in VerifyGolden.golden.prompts {
            #expect([tok.bosID ?? -1] + tok.encode(p.text) == p.tokens, "prompt '\(p.text)'")
        }
    }
}
