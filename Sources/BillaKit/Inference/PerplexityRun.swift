import Dispatch
import Foundation

/// `billa perplexity`'s two runs over a model: the perplexity of a text (optionally saving the base file), and a
/// candidate against a base file (`--kl-divergence`). The command prints; this computes.
public enum PerplexityRun {
    /// The text as llama.cpp's `-f` reads it (llama-perplexity, llama-imatrix): the file's bytes as UTF-8, a
    /// byte-order mark kept (llama tokenizes it), one trailing newline removed.
    public static func readText(_ path: String) throws -> String {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw BillaError(.notFound, file: path, "no such file", remedy: "check the path of the text (-f)")
        }
        guard !isDir.boolValue, let data = FileManager.default.contents(atPath: path) else {
            throw BillaError(.io, file: path, isDir.boolValue ? "is a directory, not a text file" : "cannot read the text",
                             remedy: "pass a UTF-8 text file with -f")
        }
        guard var text = String(validating: data, as: UTF8.self) else {
            throw BillaError(.invalidArgument, file: path, "the text is not valid UTF-8", remedy: "convert it to UTF-8 (iconv -t UTF-8)")
        }
        if text.utf8.last == 0x0A { text = String(decoding: text.utf8.dropLast(), as: UTF8.self) }
        return text
    }

    /// The text's perplexity with llama-perplexity's procedure (`PerplexityPlan`); with `base`, the log-probs of every
    /// scored position are written there too (`KLDBaseWriter`). `chunkDone` sees each chunk's running sums.
    public static func perplexity(_ m: Verifier.Loaded, tokens: [Int], plan: PerplexityPlan, text: String, base: String? = nil,
                                  chunkDone: (Int, PerplexitySums) -> Void = { _, _ in }) throws -> PerplexityReport {
        let vocab = m.model.vocabSize
        let layout = KLDBaseLayout(nCtx: plan.nCtx, nVocab: vocab, nChunk: plan.nChunk)
        let writer = try base.map { try KLDBaseWriter(path: $0, layout: layout, tokens: tokens.prefix(plan.nChunk * plan.nCtx)) }
        let cache = KVCache(for: m.model.weights, capacity: plan.nCtx)
        var sums = PerplexitySums()
        var running = [Double]()
        var rows = [UInt16](repeating: 0, count: writer == nil ? 0 : layout.rowsPerChunk * layout.rowWidth)
        let t0 = DispatchTime.now().uptimeNanoseconds
        for c in 0..<plan.nChunk {
            let start = c * plan.nCtx
            let logits = try m.model.perplexityLogits(tokens[start..<(start + plan.nCtx)], bos: m.bos, plan: plan, cache: cache)
            let next = tokens[(start + plan.first + 1)..<(start + plan.nCtx)]
            let nll = writer == nil ? PerplexityScoring.nll(logits, vocab: vocab, next: next)
                                    : PerplexityScoring.encode(logits, vocab: vocab, next: next, layout: layout, into: &rows)
            try writer?.append(rows)
            for v in nll { sums.add(v) }
            running.append(sums.ppl)
            chunkDone(c + 1, sums)
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        try writer?.commit()
        return PerplexityReport(model: m.path, text: text, nCtx: plan.nCtx, nBatch: plan.nBatch, tokens: tokens.count, chunks: plan.nChunk,
                                scored: sums.count, ppl: sums.ppl, pplUncertainty: sums.uncertainty, runningPPL: running,
                                timing: .init(tokens: plan.nChunk * plan.nCtx, seconds: seconds))
    }

    /// The model against a base file: its tokens, chunk by chunk, llama-perplexity's KLD statistics.
    public static func klDivergence(_ m: Verifier.Loaded, base: KLDBaseReader, plan: PerplexityPlan,
                                    chunkDone: (Int, KLDSums) -> Void = { _, _ in }) throws -> KLDReport {
        let vocab = m.model.vocabSize
        guard base.layout.nVocab == vocab else {
            throw BillaError(.shapeMismatch, file: base.path,
                             "the base was computed over \(base.layout.nVocab) vocabulary entries, \(m.path) has \(vocab)",
                             remedy: "compare a model with the base of a model with the same vocabulary (a quantization or conversion of it)")
        }
        let tokens = base.tokens()
        if let bad = tokens.first(where: { $0 < 0 || $0 >= vocab }) {
            throw BillaError(.invalidHeader, file: base.path, "token id \(bad) is outside the vocabulary of \(vocab)",
                             remedy: "the base file is corrupt or belongs to another model; write it again")
        }
        // Each chunk's first token is replaced by the model's BOS, as the base was made: a model without a
        // tokenizer cannot say whether it has one, and a BOS other than the base's first token means another vocabulary.
        guard m.tokenizer != nil else {
            throw BillaError(.notFound, file: m.path, "the model carries no tokenizer, which says whether each chunk starts with BOS",
                             remedy: "pass --tokenizer path/to/tokenizer.model")
        }
        if let bos = m.bos, tokens[0] != bos {
            throw BillaError(.shapeMismatch, file: base.path, "the base's first token is \(tokens[0]), but \(m.path)'s BOS is \(bos)",
                             remedy: "compare a model with a base written with the same tokenizer")
        }
        let cache = KVCache(for: m.model.weights, capacity: plan.nCtx)
        var sums = KLDSums()
        let t0 = DispatchTime.now().uptimeNanoseconds
        for c in 0..<plan.nChunk {
            let start = c * plan.nCtx
            let logits = try m.model.perplexityLogits(tokens[start..<(start + plan.nCtx)], bos: m.bos, plan: plan, cache: cache)
            sums.add(logits, vocab: vocab, next: tokens[(start + plan.first + 1)..<(start + plan.nCtx)], base: base, chunk: c)
            chunkDone(c + 1, sums)
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        return KLDReport(model: m.path, base: base.path, nCtx: plan.nCtx, nBatch: plan.nBatch, chunks: plan.nChunk,
                         statistics: sums.statistics, timing: .init(tokens: plan.nChunk * plan.nCtx, seconds: seconds))
    }
}

/// How long the chunks took: the tokens run through the model (every chunk's n_ctx) over the wall time of the
/// forward passes and the scoring, model loading and tokenizing excluded (what llama.cpp's prompt-eval rate counts).
public struct PerplexityTiming: Encodable, Sendable {
    public var tokens: Int
    public var seconds: Double
    public var tokensPerSecond: Double { seconds > 0 ? Double(tokens) / seconds : 0 }

    enum CodingKeys: String, CodingKey { case tokens, seconds, tokensPerSecond = "tokens_per_second" }

    public init(tokens: Int, seconds: Double) { self.tokens = tokens; self.seconds = seconds }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(tokens, forKey: .tokens)
        try c.encode(seconds, forKey: .seconds)
        try c.encode(tokensPerSecond, forKey: .tokensPerSecond)
    }
}

/// `billa perplexity MODEL -f TEXT`.
public struct PerplexityReport: Encodable, Sendable {
    public var model: String
    public var text: String
    public var nCtx: Int
    public var nBatch: Int
    /// Tokens of the whole text, BOS included.
    public var tokens: Int
    public var chunks: Int
    public var scored: Int
    public var ppl: Double
    public var pplUncertainty: Double?
    /// The estimate after each chunk: llama-perplexity's `[i]X` line.
    public var runningPPL: [Double]
    public var timing: PerplexityTiming

    enum CodingKeys: String, CodingKey {
        case model, text, nCtx = "n_ctx", nBatch = "n_batch", tokens, chunks, scored, ppl, pplUncertainty = "ppl_uncertainty"
        case runningPPL = "running_ppl", timing
    }
}

/// `billa perplexity MODEL --kl-divergence-base FILE --kl-divergence`.
public struct KLDReport: Encodable, Sendable {
    public var model: String
    public var base: String
    public var nCtx: Int
    public var nBatch: Int
    public var chunks: Int
    public var statistics: KLDStatistics
    public var timing: PerplexityTiming

    enum CodingKeys: String, CodingKey { case model, base, nCtx = "n_ctx", nBatch = "n_batch", chunks, timing }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(model, forKey: .model)
        try c.encode(base, forKey: .base)
        try c.encode(nCtx, forKey: .nCtx)
        try c.encode(nBatch, forKey: .nBatch)
        try c.encode(chunks, forKey: .chunks)
        try c.encode(timing, forKey: .timing)
        try statistics.encode(to: encoder)   // its keys join the report's
    }
}
