import Foundation

/// How llama-perplexity cuts a text into chunks (tools/perplexity/perplexity.cpp, `perplexity()`), so billa's numbers
/// are comparable with its: the whole text is tokenized once (BOS first), cut into ⌊tokens / n_ctx⌋ chunks of n_ctx
/// tokens (the tail is dropped), each chunk runs on an empty cache with its first token replaced by BOS, and only the
/// second half is scored: the logits at positions n_ctx/2 ..< n_ctx−1 predict the tokens after them, so every scored
/// token has at least n_ctx/2 tokens of context.
public struct PerplexityPlan: Sendable, Equatable {
    public let nCtx: Int
    /// llama.cpp's logical batch as it ends up after its own adjustment: a multiple of n_ctx when at least n_ctx
    /// (`min(n_batch, n_seq · n_ctx)`), else the tokens of one decode call. billa runs one chunk at a time in calls
    /// of at most min(n_batch, n_ctx) tokens; the scores do not depend on it.
    public let nBatch: Int
    public let nChunk: Int

    /// llama-perplexity's default context (it sets 512 before parsing its options) and common's default batch.
    public static let defaultContext = 512
    public static let defaultBatch = 2048

    /// Positions before this only give context.
    public var first: Int { nCtx / 2 }
    /// Tokens scored in each chunk.
    public var scoredPerChunk: Int { nCtx - 1 - first }
    /// Chunks llama.cpp decodes together in one batch (parallel sequences); shown in the header line.
    public var nSeq: Int { max(1, nBatch / nCtx) }
    /// Tokens per forward call.
    public var step: Int { min(nBatch, nCtx) }

    /// The plan for a text of `tokens` ids. Refused as llama-perplexity refuses: fewer than 2 · n_ctx tokens.
    public init(tokens: Int, nCtx: Int, nBatch: Int = defaultBatch, maxChunks: Int? = nil, text: String? = nil) throws {
        try Self.check(nCtx: nCtx, nBatch: nBatch)
        guard tokens >= 2 * nCtx else {
            throw BillaError(.invalidArgument, file: text,
                             "the text tokenizes to only \(tokens) tokens; a context of \(nCtx) needs at least \(2 * nCtx)",
                             remedy: "use a longer text or a smaller context (-c)")
        }
        self.nCtx = nCtx
        self.nBatch = Self.adjustedBatch(nCtx: nCtx, nBatch: nBatch)
        nChunk = min(tokens / nCtx, maxChunks ?? .max)
    }

    /// The plan of a base file: its n_ctx and n_chunk.
    public init(base: KLDBaseLayout, nBatch: Int = defaultBatch) throws {
        try Self.check(nCtx: base.nCtx, nBatch: nBatch)
        nCtx = base.nCtx
        self.nBatch = Self.adjustedBatch(nCtx: base.nCtx, nBatch: nBatch)
        nChunk = base.nChunk
    }

    static func check(nCtx: Int, nBatch: Int) throws {
        guard nCtx >= 3 else {
            throw BillaError(.invalidArgument, "a context of \(nCtx) scores no token (each chunk scores n_ctx − 1 − n_ctx/2)", remedy: "pass -c 3 or more (llama-perplexity's default is 512)")
        }
        guard nBatch >= 1 else { throw BillaError(.invalidArgument, "the batch size must be at least 1", remedy: "pass -b 1 or more (default 2048)") }
    }

    /// llama-perplexity: n_parallel = max(1, n_batch / n_ctx), the context becomes n_parallel · n_ctx and n_batch is
    /// capped at it.
    static func adjustedBatch(nCtx: Int, nBatch: Int) -> Int { min(nBatch, max(1, nBatch / nCtx) * nCtx) }
}

extension LlamaModel {
    /// The logits of chunk `tokens` (n_ctx ids) at positions `first ..< n_ctx − 1`, one row of `vocabSize` floats per
    /// scored token, with the chunk's first token replaced by `bos` as llama-perplexity does. The chunk runs on
    /// `cache` from empty in calls of at most `plan.step` tokens, split at `first` as well so that the context half
    /// costs no output-head products.
    public func perplexityLogits(_ tokens: ArraySlice<Int>, bos: Int?, plan: PerplexityPlan, cache: KVCache) throws -> [Float] {
        precondition(tokens.count == plan.nCtx && cache.capacity >= plan.nCtx)
        var ids = Array(tokens)
        if let bos { ids[0] = bos }
        cache.reset()
        var out = [Float]()
        out.reserveCapacity((plan.nCtx - plan.first) * vocabSize)
        var start = 0
        while start < plan.nCtx {
            let end = min(start + plan.step, start < plan.first ? plan.first : plan.nCtx)
            let logits = try forward(Array(ids[start..<end]), cache: cache, allLogits: start >= plan.first)
            if start >= plan.first { out += logits }
            start = end
        }
        return Array(out.prefix(plan.scoredPerChunk * vocabSize))
    }
}

/// llama-perplexity's running sums of the scored tokens' negative log-likelihood, and the estimate it prints.
public struct PerplexitySums: Sendable, Equatable {
    public var nll = 0.0
    public var nll2 = 0.0
    public var count = 0

    public init() {}

    public mutating func add(_ v: Double) {
        nll += v
        nll2 += v * v
        count += 1
    }

    /// exp(mean NLL): the `[i]X` running estimate.
    public var ppl: Double { Foundation.exp(nll / Double(count)) }

    /// `PPL = X +/- Y`'s Y: the standard error of the mean NLL (sample variance over count − 1), times PPL; nil
    /// when the variance is not positive (llama-perplexity then prints an error instead).
    public var uncertainty: Double? {
        let mean = nll / Double(count)
        let variance = nll2 / Double(count) - mean * mean
        guard variance > 0, count > 1 else { return nil }
        return (variance / Double(count - 1)).squareRoot() * ppl
    }
}

/// Per-row scoring as llama-perplexity does it, rows spread over the cores. Each row's result lands in its own slot
/// and the sums are taken in row order, so a run gives the same digits every time.
public enum PerplexityScoring {
    /// body(r) for every row r of 0..<n, dealt round-robin to the cores; each call writes only row r's slots.
    static func eachRow(_ n: Int, _ body: (Int) -> Void) {
        let threads = min(Parallel.cores, n)
        Parallel.forEach(threads) { th in
            for r in stride(from: th, to: n, by: threads) { body(r) }
        }
    }

    /// -log p(next token) of each row: the max in float, Σ expf(logit − max) in double, as `log_softmax`.
    public static func nll(_ logits: [Float], vocab: Int, next: ArraySlice<Int>) -> [Double] {
        let rows = next.count
        var out = [Double](repeating: 0, count: rows)
        let next = Array(next)
        logits.withUnsafeBufferPointer { lp in
            out.withUnsafeMutableBufferPointer { op in
                nonisolated(unsafe) let l = lp.baseAddress!, o = op.baseAddress!
                eachRow(rows) { r in
                    let row = l + r * vocab
                    var mx = row[0]
                    for i in 1..<vocab { mx = max(mx, row[i]) }
                    var sum = 0.0
                    for i in 0..<vocab { sum += Double(Foundation.exp(row[i] - mx)) }
                    o[r] = -(Double(row[next[r]] - mx) - Foundation.log(sum))
                }
            }
        }
        return out
    }

    /// Encodes each row for a base file (`KLDBaseRow`) into `rows` (rowWidth uint16 each) and returns each row's
    /// NLL as llama-perplexity's base-writing path computes it.
    public static func encode(_ logits: [Float], vocab: Int, next: ArraySlice<Int>, layout: KLDBaseLayout, into rows: inout [UInt16]) -> [Double] {
        let n = next.count
        var out = [Double](repeating: 0, count: n)
        let next = Array(next), width = layout.rowWidth
        logits.withUnsafeBufferPointer { lp in
            rows.withUnsafeMutableBufferPointer { rp in
                out.withUnsafeMutableBufferPointer { op in
                    nonisolated(unsafe) let l = lp.baseAddress!, q = rp.baseAddress!, o = op.baseAddress!
                    eachRow(n) { r in o[r] = KLDBaseRow.encode(l + r * vocab, count: vocab, token: next[r], into: q + r * width) }
                }
            }
        }
        return out
    }
}
