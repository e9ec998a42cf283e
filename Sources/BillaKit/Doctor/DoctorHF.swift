import Foundation

/// A Hugging Face directory, and which of the releases shaped like one it is: a Vicuna delta or an Alpaca weight
/// diff (norm weights centred on zero: differences, not a model), a BiLLa release (embedding rows [0, n) about twice
/// the norm of the rows past n) or one already recovered, or a plain model.
enum DoctorHF {
    /// Beyond this fraction of negative norm-weight values, all small, the directory holds differences: trained
    /// RMSNorm weights are positive and of order 0.1-1 (LLaMA's have no negative value), a difference of two models
    /// has about half below zero and magnitudes of a fine-tuning step. A randomly initialised test model has
    /// signed norms too, but of order one.
    static let differenceNegativeFraction = 0.2
    static let differenceMeanMagnitude = 0.1
    /// Embedding rows [0, n) this many times the norm of the rest: BiLLa's encrypted release (trained + LLaMA).
    static let releaseStepRatio = 1.5

    static func diagnose(_ dir: String, names: [String], given: String, _ ctx: ModelDoctor.Context) throws -> DoctorReport {
        var r = DoctorReport(path: dir, kind: .hfModel, title: "Hugging Face model")
        let release = try Release.open(dir)
        let q = ModelDoctor.shellQuoted(given)
        let p = release.parameters
        let size = p.flatMap { LlamaSize.match(dim: $0.dim, layers: $0.nLayers, kvHeads: $0.nKVHeads, normEps: $0.normEps) }
        let tag = size?.tag ?? "SAME-SIZE"
        let weightFiles = release.files.map { ($0.path as NSString).lastPathComponent }
        r.fact("weights", "\(release.files.first?.format.rawValue ?? "?"), \(weightFiles.count) file(s): \(ModelDoctor.list(weightFiles, limit: 4))")
        if let p {
            r.fact("architecture", "dim \(p.dim), layers \(p.nLayers), heads \(p.nHeads), kv heads \(p.nKVHeads), ffn \(p.ffnDim.map(String.init) ?? "?"), vocab \(p.vocabSize.map(String.init) ?? "?")")
        }
        r.fact("size", size.map { "\($0.name) shape" } ?? "not a published LLaMA size")
        let tensors = release.tensors.map(\.tensor)
        let floatWeights = tensors.filter { $0.shape.count == 2 }
        r.fact("dtypes", ModelDoctor.dtypeMix(tensors.map(\.dtype)))
        for w in release.warnings { r.warn(w) }

        // Differences (delta / diff) first: their embedding is a difference too, so the BiLLa probe means nothing.
        let norms = tensors.filter { $0.shape.count == 1 && ($0.name == "model.norm.weight" || $0.name.hasSuffix("layernorm.weight")) }
        let probe = Array(norms.prefix(2)) + Array(norms.suffix(2))
        let (negative, magnitude, probed) = try WeightProbe.normStatistics(probe)
        if probed > 0 {
            r.fact("norm weights", String(format: "%.0f%% of %d values below zero, mean |w| %.4g", negative * 100, probed, magnitude)
                   + " (" + probe.map(\.name).joined(separator: ", ") + ")")
        }
        let nameHint = hint(given)
        if probed > 0, negative > differenceNegativeFraction, magnitude >= differenceMeanMagnitude {
            r.warn("norm weights of order one with many below zero: a randomly initialised (test) model, not a trained one")
        }
        if probed > 0, negative > differenceNegativeFraction, magnitude < differenceMeanMagnitude {
            let f32 = floatWeights.allSatisfy { $0.dtype == .f32 }
            let isDiff = nameHint == .diff || (nameHint != .delta && f32)
            if isDiff {
                r.kind = .alpacaWeightDiff
                r.title = "Stanford Alpaca-style weight diff (fp32 differences to LLaMA\(size.map { "-" + $0.tag } ?? ""))"
                r.note("weight_diff.py publishes fp32 differences, with one more ([PAD]) row in the embedding and lm_head than LLaMA")
                var cmd = "billa recover weight-diff --raw LLAMA-\(tag)-HF --diff \(q) -o \(ModelDoctor.outputName(given, "-recovered"))"
                if size?.tag == "7B" { cmd += " --expect-sum \(WeightDiffRecovery.alpaca7BSum)" }
                r.next.append("billa convert LLAMA-\(tag) -o LLAMA-\(tag)-HF --to hf    # Meta's original \(size?.name ?? "LLaMA"), if you have it as consolidated.NN.pth")
                r.next.append(cmd)
            } else {
                r.kind = .vicunaDelta
                r.title = "FastChat/Vicuna-style delta (differences to LLaMA\(size.map { "-" + $0.tag } ?? ""))"
                r.note("apply_delta adds the delta to the base in fp16; rows beyond the base's vocabulary are kept from the delta")
                r.next.append("billa convert LLAMA-\(tag) -o LLAMA-\(tag)-HF --to hf    # Meta's original \(size?.name ?? "LLaMA"), if you have it as consolidated.NN.pth")
                r.next.append("billa recover delta --base LLAMA-\(tag)-HF --delta \(q) -o \(ModelDoctor.outputName(given, "-recovered"))")
            }
            if nameHint != nil, (nameHint == .diff) != isDiff { r.warn("the name says \(nameHint == .diff ? "diff" : "delta"), the dtypes say otherwise") }
            try hashWeights(dir, release, into: &r, ctx)
            return r
        }

        let embedding = tensors.first { $0.name == BillaRecovery.embeddingName }
        if let e = embedding, let step = try WeightProbe.largestStep(e) {
            r.fact("embedding rows", String(format: "rows [0, %d) have %.2fx the mean norm of rows [%d, %d) (%d rows sampled)",
                                            step.boundary, step.ratio, step.boundary, e.shape[0], step.sampled))
            if step.ratio >= releaseStepRatio {
                r.kind = .billaRelease
                r.title = "BiLLa release (embedding still encrypted: rows [0, \(step.boundary)) hold trained + LLaMA)"
                if e.dtype == .f32, floatWeights.contains(where: { $0.dtype == .f16 }) {
                    r.note("the embedding is fp32 beside fp16 weights, as embedding_convert.py --encrypt leaves it")
                }
                if step.boundary != 32000 { r.note("LLaMA's vocabulary is 32000 rows; the step here is at row \(step.boundary)") }
                r.next.append("billa recover billa --release \(q) --llama LLAMA-7B/consolidated.00.pth -o \(ModelDoctor.outputName(given, "-recovered"))")
                try hashWeights(dir, release, into: &r, ctx)
                return r
            }
        }
        if let e = embedding, isBilla(given, e) {
            r.kind = .billaRecovered
            r.title = "BiLLa, recovered (the embedding is no longer LLaMA + trained)"
            try billaSum(e, into: &r, ctx)
        }
        if let rows = embedding?.shape.first {
            switch rows {
            case 49953, 49954: r.note("\(rows)-row vocabulary: Chinese-LLaMA / Chinese-Alpaca's merged tokenizer")
            case 46943: r.note("46943-row vocabulary: BiLLa's")
            case 32001: r.note("32001 rows: LLaMA plus one added token ([PAD], as Alpaca)")
            default: break
            }
        }
        try hashWeights(dir, release, into: &r, ctx)
        if r.kind == .hfModel, let k = r.knownFiles.first { r.title = "Hugging Face model: \(k.model)" }
        let ok = release.vocab.consistent
        if !ok { r.error("the vocabulary sizes disagree (see the warning): fix that before converting") }
        r.next.append("billa verify \(q)")
        r.next.append("billa quantize \(q) -o \(ModelDoctor.outputName(given, "-q4_k_m.gguf")) --type q4_k_m")
        r.next.append("billa convert \(q) -o \(ModelDoctor.outputName(given, "-meta")) --to meta")
        return r
    }

    enum NameHint { case delta, diff }

    /// What the directory's own name (or its cache repository's) says it is.
    static func hint(_ path: String) -> NameHint? {
        let name = nameText(path)
        if name.contains("delta") { return .delta }
        if name.contains("wdiff") || name.contains("weight-diff") || name.contains("weight_diff") { return .diff }
        return nil
    }

    /// The last two path components, lowercased, a cache entry's `models--ORG--NAME` (and its snapshot) as NAME:
    /// what names say about the model.
    static func nameParts(_ path: String) -> [String] {
        var parts = path.split(separator: "/").map { $0.lowercased() }
        if let i = parts.lastIndex(where: { $0.hasPrefix("models--") }) {
            parts = Array(parts[..<i]) + [parts[i].components(separatedBy: "--").last ?? parts[i]]
        }
        return Array(parts.suffix(2))
    }

    static func nameText(_ path: String) -> String { nameParts(path).joined(separator: "/") }

    /// BiLLa by its embedding's published shape, or by its name: a directory named billa, or BiLLa-7B-... (the
    /// released repositories are BiLLa-7B-LLM and BiLLa-7B-SFT).
    static func isBilla(_ path: String, _ e: Tensor) -> Bool {
        e.shape == BillaRecovery.billa7BSFTShape || nameParts(path).contains { $0 == "billa" || $0.contains("billa-7b") }
    }

    /// With --hash, the recovered embedding's sum against BiLLa-7B-SFT's published one (reads the whole embedding).
    static func billaSum(_ e: Tensor, into r: inout DoctorReport, _ ctx: ModelDoctor.Context) throws {
        let published = ctx.options.published.filter {
            if case .sum = $0.value { return $0.file.hasPrefix(BillaRecovery.embeddingName) } else { return false }
        }
        guard e.shape == BillaRecovery.billa7BSFTShape, let entry = published.first, case .sum(let value, let tol) = entry.value else {
            r.note("BiLLa publishes a sum only for BiLLa-7B-SFT's \(Shape.describe(BillaRecovery.billa7BSFTShape)) embedding; this one is \(Shape.describe(e.shape))")
            return
        }
        guard ctx.options.hash else {
            r.note("pass --hash to compare the embedding's sum with BiLLa-7B-SFT's published \(value) (reads the whole embedding)")
            return
        }
        let s = try WeightProbe.sum(e)
        r.fact("embedding sum", "\(s) (double); published \(value) for \(entry.model)")
        if abs(s - value) <= tol {
            r.note("the sum matches \(entry.model)'s published one (\(entry.source)): recovered with the original LLaMA-7B")
            r.title = "BiLLa-7B-SFT, recovered correctly (the embedding's sum is the published one)"
        } else {
            r.error("the embedding sums to \(s), not the published \(value): it was recovered with a LLaMA copy that is not Meta's original (or is BiLLa-7B-LLM, whose sum is not published)")
        }
    }

    /// The weight and tokenizer files, hashed when small or asked, looked up in the published table.
    static func hashWeights(_ dir: String, _ release: Release, into r: inout DoctorReport, _ ctx: ModelDoctor.Context) throws {
        for f in release.files { try ModelDoctor.hashAndLookUp(f.path, [.sha256], into: &r, ctx) }
        if let t = release.tokenizerPath { try ModelDoctor.hashAndLookUp(t, [.md5, .sha256], into: &r, ctx) }
    }
}
