import Foundation

/// What a candidate model may lose against its reference, judged from the element types of its matrices: nothing
/// (same or wider types), float rounding (f32 → f16/bf16), or a quant type's error.
public struct VerifyThresholds: Codable, Sendable, Equatable {
    /// "lossless", "cast", or the quant type that loses most ("q4_0", ...).
    public var kind: String
    /// Bound on max |Δlogit|, relative to the reference's largest |logit| (lossless only).
    public var maxRelativeLogitDiff: Double?
    public var maxKLD: Double
    public var minTop1: Double

    enum CodingKeys: String, CodingKey {
        case kind, maxRelativeLogitDiff = "max_relative_logit_diff", maxKLD = "max_kld", minTop1 = "min_top1"
    }

    /// Defaults from the mean KL divergence and top-1 agreement llama.cpp's `llama-perplexity --kl-divergence`
    /// reports for LLaMA-7B (Q8_0 ≈ 0.0004 / 99 %, Q6_K ≈ 0.002 / 98 %, Q5 ≈ 0.006 / 96 %, Q4_K ≈ 0.02 / 94 %,
    /// Q4_0 ≈ 0.05 / 91 %), with a margin of about 2-5x so that a correct file passes and a broken one (KL of 1
    /// or more) cannot.
    static let table: [String: (kld: Double, top1: Double)] = [
        "cast": (0.002, 0.97),
        "q8_0": (0.01, 0.95),
        "q6_K": (0.02, 0.93),
        "q5_K": (0.04, 0.90), "q5_1": (0.04, 0.90), "q5_0": (0.05, 0.90),
        "q4_K": (0.08, 0.88), "q4_1": (0.12, 0.85), "q4_0": (0.12, 0.85),
        // the low-bit types: llama-perplexity --kl-divergence on LLaMA-class 7-8B models gives about IQ4_XS/IQ4_NL
        // 0.02-0.03 / 93 %, Q3_K 0.05-0.15 / 86-91 %, Q2_K 0.2-0.4 / 78-83 % (the Q3_K_S..L and Q2_K mixtures);
        // the same 2-5x margin, below the KL of 1 that a broken file shows
        "iq4_xs": (0.08, 0.88), "iq4_nl": (0.08, 0.88), "q3_K": (0.35, 0.75), "q2_K": (0.8, 0.6),
        // the grid types: llama.cpp's tools/perplexity/README.md table (LLaMA 3 8B, imatrix from 10M tokens of
        // wikitext) gives mean KLD IQ3_S 0.11 (IQ3_M 0.10), IQ3_XXS 0.18 (IQ3_XS 0.14), IQ2_S 0.44 (IQ2_M 0.33), IQ2_XS 0.55, IQ2_XXS 0.81, IQ1_M 1.39,
        // IQ1_S 2.25;
        // about 2x of it, and top-1 floors continuing the rows above (that table has no top-1 column). A broken
        // file is not told apart from these by KL below 1 any more, but still by its top-1 rate.
        "iq3_s": (0.25, 0.72), "iq3_xxs": (0.4, 0.68), "iq2_s": (0.9, 0.55), "iq2_xs": (1.1, 0.5), "iq2_xxs": (1.6, 0.42),
        "iq1_m": (2.8, 0.3), "iq1_s": (4.5, 0.22),
        // TQ1_0 / TQ2_0 store ternary weights (BitNet-style models trained to -1/0/1 per 256-block scale), where only
        // the f16 scale is rounded; an ordinary model quantized to them is broken, and these thresholds say so
        "tq1_0": (0.1, 0.85), "tq2_0": (0.1, 0.85),
    ]
    /// Most lossy first.
    static let lossOrder: [DType] = [.tq1_0, .tq2_0, .iq1_s, .iq1_m, .iq2_xxs, .iq2_xs, .iq2_s, .q2_K, .iq3_xxs, .iq3_s, .q3_K, .q4_0, .q4_1, .iq4_nl, .iq4_xs, .q4_K, .q5_0, .q5_1, .q5_K, .q6_K, .q8_0]

    static func defaults(reference: Set<DType>, candidate: Set<DType>) -> VerifyThresholds {
        func bits(_ d: DType) -> Int { d == .f32 ? 32 : d == .f16 || d == .bf16 ? 16 : 8 }
        let lossless = candidate.allSatisfy { c in reference.allSatisfy { r in c == r || bits(c) > bits(r) } }
        if lossless { return VerifyThresholds(kind: "lossless", maxRelativeLogitDiff: 1e-4, maxKLD: 1e-5, minTop1: 0.99) }
        if let q = lossOrder.first(where: { candidate.contains($0) && !reference.contains($0) }) {
            let key = q.rawValue.lowercased().replacingOccurrences(of: "_k", with: "_K")
            let t = table[key] ?? (0.12, 0.85)
            return VerifyThresholds(kind: key, maxRelativeLogitDiff: nil, maxKLD: t.kld, minTop1: t.top1)
        }
        let t = table["cast"]!
        return VerifyThresholds(kind: "cast", maxRelativeLogitDiff: nil, maxKLD: t.kld, minTop1: t.top1)
    }
}

/// `billa verify REFERENCE CANDIDATE`: both models on the same tokens, position by position.
public struct VerifyReport: Encodable, Sendable {
    public struct Prompt: Codable, Sendable {
        public var text: String
        public var tokens: Int
        public var maxAbsDiff: Double
        public var kldMean: Double
        public var kldP99: Double
        public var kldMax: Double
        public var top1Agreement: Double
        public var ppl: PPL

        enum CodingKeys: String, CodingKey {
            case text, tokens, maxAbsDiff = "max_abs_diff", kldMean = "kld_mean", kldP99 = "kld_p99", kldMax = "kld_max"
            case top1Agreement = "top1_agreement", ppl
        }
    }
    public struct PPL: Codable, Sendable { public var reference: Double; public var candidate: Double }
    public struct Percentiles: Codable, Sendable { public var p50: Double; public var p90: Double; public var p99: Double; public var max: Double }

    public var reference: String
    public var candidate: String
    public var pass: Bool
    public var thresholds: VerifyThresholds
    public var failures: [String]
    public var positions: Int
    public var maxAbsDiff: Double
    public var maxAbsLogit: Double
    public var kldMean: Double
    public var kldPercentiles: Percentiles
    public var top1Agreement: Double
    public var ppl: PPL
    public var prompts: [Prompt]

    /// `pass` is the report's `ok` (formats/json.md), written by the command's envelope.
    enum CodingKeys: String, CodingKey {
        case reference, candidate, thresholds, failures, positions, maxAbsDiff = "max_abs_diff"
        case maxAbsLogit = "max_abs_logit", kldMean = "kld_mean", kldPercentiles = "kld_percentiles"
        case top1Agreement = "top1_agreement", ppl, prompts
    }
}

/// `billa verify MODEL`: is one model sane on its own?
public struct SanityReport: Encodable, Sendable {
    public struct Check: Codable, Sendable { public var name: String; public var ok: Bool; public var detail: String }
    public var model: String
    public var pass: Bool
    public var checks: [Check]
    public var ppl: Double
    public var vocab: Int

    /// `pass` is the report's `ok`, written by the command's envelope.
    enum CodingKeys: String, CodingKey { case model, checks, ppl, vocab }
}

public enum Verifier {
    /// BiLLa's chat format and plain text, in Chinese and English: the default prompts.
    public static let defaultPrompts = [
        "Human: 请用三句话介绍一下北京。\nAssistant: ",
        "Human: Write a short poem about the sea.\nAssistant: ",
        "The capital of France is Paris. The capital of Japan is",
        "人工智能正在改变我们的生活方式，尤其是在医疗和教育领域。",
        "Human: 如何提高时间管理能力？\nAssistant: ",
        "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    ]

    /// A model ready to run: weights, forward pass and the tokenizer it was trained with.
    public struct Loaded: Sendable {
        public let path: String
        public let release: Release
        public let model: LlamaModel
        public let tokenizer: (any TextTokenizer)?
        /// The id llama.cpp puts first (and at the start of every perplexity and imatrix chunk): the tokenizer's
        /// BOS, unless a GGUF model says `tokenizer.ggml.add_bos_token = false`, which llama.cpp follows.
        public let bos: Int?

        /// `unused` says which tensors the forward pass does not read may be ignored; by default none may.
        public init(_ path: String, tokenizer: String? = nil, unused: DropPolicy = DropPolicy()) throws {
            self.path = path
            release = try Release.open(path)
            model = LlamaModel(try LlamaWeights(release, unused: unused))
            let t = try tokenizer.map { try ModelTokenizer.open($0) } ?? ModelTokenizer.load(for: release)
            self.tokenizer = t
            bos = Self.addsBOS(release) ? t?.bosID : nil
        }

        static func addsBOS(_ release: Release) -> Bool {
            guard release.layout == .file || release.files.count == 1, let f = release.files.first, f.format == .gguf,
                  let g = try? GGUFReader.open(f.path) else { return true }
            if case .bool(false)? = g.metadata[GGUFKeys.addBOS] { return false }
            return true
        }

        /// BOS (when the model adds one) and the text's ids.
        public func tokenize(_ text: String) throws -> [Int] {
            guard let tokenizer else {
                throw BillaError(.notFound, file: path, "the model carries no tokenizer",
                                 remedy: "pass --tokenizer path/to/tokenizer.model")
            }
            return (bos.map { [$0] } ?? []) + tokenizer.encode(text)
        }

        func run(_ tokens: [Int]) throws -> PromptRun {
            let cache = KVCache(for: model.weights, capacity: tokens.count)
            return PromptRun(tokens: tokens, logits: try model.forward(tokens, cache: cache), vocab: model.vocabSize)
        }
    }

    public static func compare(_ ref: Loaded, _ cand: Loaded, prompts: [String], overrides: (kld: Double?, top1: Double?) = (nil, nil),
                               progress: ((Int) -> Void)? = nil) throws -> VerifyReport {
        guard ref.model.vocabSize == cand.model.vocabSize else {
            throw BillaError(.shapeMismatch, file: cand.path,
                             "the candidate has \(cand.model.vocabSize) vocabulary rows, the reference \(ref.model.vocabSize)",
                             remedy: "compare models with the same vocabulary; a recovered or converted model keeps its source's")
        }
        var t = VerifyThresholds.defaults(reference: ref.model.weights.matrixDTypes, candidate: cand.model.weights.matrixDTypes)
        if let k = overrides.kld { t.maxKLD = k; t.maxRelativeLogitDiff = nil }
        if let m = overrides.top1 { t.minTop1 = m; t.maxRelativeLogitDiff = nil }
        // Settings that change outputs are compared first: no prompt runs when they differ.
        // A sliding window matters only when a prompt is longer than it.
        let promptTokens = try prompts.map { try ref.tokenize($0) }
        let longest = promptTokens.map(\.count).max() ?? 0
        let architecture = ArchitectureCheck.differences(ref.model.weights.parameters, cand.model.weights.parameters, positions: longest)
        if !architecture.isEmpty {
            return VerifyReport(reference: ref.path, candidate: cand.path, pass: false, thresholds: t,
                                failures: architecture.map { "architecture differs, \($0) (no prompt was run)" },
                                positions: 0, maxAbsDiff: 0, maxAbsLogit: 0, kldMean: 0,
                                kldPercentiles: .init(p50: 0, p90: 0, p99: 0, max: 0), top1Agreement: 0,
                                ppl: .init(reference: .nan, candidate: .nan), prompts: [])
        }
        var out = [VerifyReport.Prompt]()
        var allKL = [Double]()
        var agree = 0, positions = 0
        var maxDiff = 0.0, maxLogit = 0.0
        var nllRef = (0.0, 0), nllCand = (0.0, 0)
        var failures = [String]()
        for (i, text) in prompts.enumerated() {
            let tokens = promptTokens[i]
            if let candTok = cand.tokenizer, (cand.bos.map { [$0] } ?? []) + candTok.encode(text) != tokens {
                failures.append("prompt \(i + 1): the candidate's tokenizer gives other ids than the reference's")
            }
            let a = try ref.run(tokens), b = try cand.run(tokens)
            var kls = [Double](), top1 = 0, diff = 0.0
            for p in 0..<tokens.count {
                let ra = a.row(p), rb = b.row(p)
                for (x, y) in zip(ra, rb) {
                    let d = abs(Double(x) - Double(y))
                    diff = d.isNaN ? .infinity : max(diff, d)
                    maxLogit = max(maxLogit, abs(Double(x)))
                }
                kls.append(LogitMetrics.kl(LogitMetrics.logSoftmax(ra), LogitMetrics.logSoftmax(rb)))
                if LogitMetrics.argmax(ra) == LogitMetrics.argmax(rb) { top1 += 1 }
            }
            let na = a.nll(), nb = b.nll()
            nllRef = (nllRef.0 + na.sum, nllRef.1 + na.count)
            nllCand = (nllCand.0 + nb.sum, nllCand.1 + nb.count)
            let sorted = kls.sorted()
            out.append(VerifyReport.Prompt(text: text, tokens: tokens.count, maxAbsDiff: diff,
                                           kldMean: kls.reduce(0, +) / Double(max(1, kls.count)),
                                           kldP99: LogitMetrics.quantile(sorted, 0.99), kldMax: sorted.last ?? 0,
                                           top1Agreement: Double(top1) / Double(max(1, tokens.count)),
                                           ppl: .init(reference: ppl(na), candidate: ppl(nb))))
            allKL += kls
            agree += top1
            positions += tokens.count
            maxDiff = max(maxDiff, diff)
            progress?(i + 1)
        }
        let sorted = allKL.sorted()
        let kldMean = allKL.reduce(0, +) / Double(max(1, allKL.count))
        let top1 = Double(agree) / Double(max(1, positions))
        if let rel = t.maxRelativeLogitDiff, !(maxDiff <= rel * max(maxLogit, 1e-30)) {
            failures.append(String(format: "max |Δlogit| %.3g exceeds %.0e of the logit scale %.3g (a lossless conversion agrees to float rounding)", maxDiff, rel, maxLogit))
        }
        if !(kldMean <= t.maxKLD) { failures.append(String(format: "mean KL divergence %.4g exceeds %.4g", kldMean, t.maxKLD)) }
        if !(top1 >= t.minTop1) { failures.append(String(format: "top-1 agreement %.2f%% is below %.2f%%", 100 * top1, 100 * t.minTop1)) }
        return VerifyReport(reference: ref.path, candidate: cand.path, pass: failures.isEmpty, thresholds: t, failures: failures,
                            positions: positions, maxAbsDiff: maxDiff, maxAbsLogit: maxLogit, kldMean: kldMean,
                            kldPercentiles: .init(p50: LogitMetrics.quantile(sorted, 0.5), p90: LogitMetrics.quantile(sorted, 0.9),
                                                  p99: LogitMetrics.quantile(sorted, 0.99), max: sorted.last ?? 0),
                            top1Agreement: top1, ppl: .init(reference: ppl(nllRef), candidate: ppl(nllCand)), prompts: out)
    }

    static func ppl(_ nll: (Double, Int)) -> Double { nll.1 > 0 ? Foundation.exp(nll.0 / Double(nll.1)) : .nan }

    /// Finite weights, finite logits, perplexity better than guessing uniformly, and the checksums the files carry.
    public static func sanity(_ m: Loaded, prompts: [String], quiet: Bool = true) throws -> SanityReport {
        var checks = [SanityReport.Check]()
        let w = m.model.weights
        var bad = [String]()
        let scan = ProgressMeter(label: "checking weights", total: w.matrices.count, unit: .items("matrices"), quiet: quiet)
        for matrix in w.matrices {
            scan.item(matrix.name)
            if let r = matrix.firstNonFiniteRow() { bad.append("\(matrix.name) row \(r)") }
            scan.add(1)
        }
        scan.finish()
        for (i, l) in w.layers.enumerated() where !(l.attnNorm + l.ffnNorm).allSatisfy(\.isFinite) { bad.append("layer \(i) norms") }
        if !w.finalNorm.allSatisfy(\.isFinite) { bad.append("final norm") }
        checks.append(.init(name: "weights finite", ok: bad.isEmpty,
                            detail: bad.isEmpty ? "\(w.matrices.count) matrices and every norm" : "NaN or Inf in " + bad.prefix(5).joined(separator: ", ")))
        var nll = (0.0, 0)
        var finite = true
        let meter = ProgressMeter(label: "verify", total: prompts.count, unit: .items("prompts"), quiet: quiet)
        for text in prompts {
            let run = try m.run(try m.tokenize(text))
            if !run.logits.allSatisfy(\.isFinite) { finite = false }
            let n = run.nll()
            nll = (nll.0 + n.sum, nll.1 + n.count)
            meter.add(1)
        }
        meter.finish()
        checks.append(.init(name: "logits finite", ok: finite, detail: "\(prompts.count) \(prompts == defaultPrompts ? "built-in prompts" : "prompts given")"))
        let p = ppl(nll)
        checks.append(.init(name: "perplexity", ok: p.isFinite && p < Double(w.vocabSize),
                            detail: String(format: "%.2f on %d tokens; guessing uniformly scores %d", p, nll.1, w.vocabSize)))
        if m.release.files.count == 1, m.release.files[0].format == .billaPack {
            let packs = try PackSet.open(m.release.files[0].path)
            let check = ProgressMeter(label: "checking pack", total: packs.reduce(0) { $0 + $1.tensors.reduce(0) { $0 + $1.byteCount } }, quiet: quiet)
            let reports = packs.map { PackVerifier.verify($0, progress: check) }   // every file of a set
            check.finish()
            let items = reports.flatMap(\.items)
            let badItems = items.filter { !$0.ok }
            checks.append(.init(name: "pack checksums", ok: badItems.isEmpty,
                                detail: badItems.isEmpty ? "\(items.count) tensors and blobs" : "corrupt: " + badItems.prefix(3).map(\.name).joined(separator: ", ")))
        }
        return SanityReport(model: m.path, pass: checks.allSatisfy(\.ok), checks: checks, ppl: p, vocab: w.vocabSize)
    }
}
