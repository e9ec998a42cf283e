import Foundation

/// `billa verify REF CAND --trace`: where, block by block, the candidate's residual stream leaves the reference's,
/// and which tensor of that block is to blame.
public struct TraceReport: Encodable, Sendable {
    /// Relative error of one block's residual stream, ‖cand − ref‖ / ‖ref‖ over every value of every token.
    public struct Block: Encodable, Sendable, Equatable {
        public var layer: Int
        public var afterAttention: Double
        public var afterMLP: Double
        enum CodingKeys: String, CodingKey { case layer, afterAttention = "after_attention", afterMLP = "after_mlp" }
        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(layer, forKey: .layer)
            try c.encodeError(afterAttention, forKey: .afterAttention)
            try c.encodeError(afterMLP, forKey: .afterMLP)
        }
    }
    /// A point of the residual stream: block `layer` after its attention or its MLP was added.
    public struct Point: Encodable, Sendable, Equatable {
        public var layer: Int
        public var stage: BlockStage
        public var error: Double
        enum CodingKeys: String, CodingKey { case layer, stage, error }
        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(layer, forKey: .layer)
            try c.encode(stage, forKey: .stage)
            try c.encodeError(error, forKey: .error)
        }
    }
    /// The error at the first diverging point once one reference tensor replaces the candidate's.
    public struct Swap: Encodable, Sendable, Equatable {
        public var tensor: SwapTensor
        public var error: Double
        public var withinTolerance: Bool
        enum CodingKeys: String, CodingKey { case tensor, error, withinTolerance = "within_tolerance" }
        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(tensor, forKey: .tensor)
            try c.encodeError(error, forKey: .error)
            try c.encode(withinTolerance, forKey: .withinTolerance)
        }
    }
    /// The tensor found responsible and the layers in which it is wrong.
    public struct Culprit: Encodable, Sendable, Equatable {
        public var tensor: SwapTensor
        /// Empty for token_embd, output_norm and output, which belong to no layer.
        public var layers: [Int]
        public var everyLayer: Bool
        /// Swapping it brings the first diverging point back within tolerance (else it only reduces the error most).
        public var fixes: Bool
        /// With the responsible tensor swapped where it is wrong, the first point still past tolerance, if any.
        public var remaining: Point?
        enum CodingKeys: String, CodingKey { case tensor, layers, everyLayer = "every_layer", fixes, remaining }
    }
    public struct PromptTrace: Encodable, Sendable {
        /// 1-based, as in the verify table.
        public var prompt: Int
        public var text: String
        public var tokens: Int
        public var blocks: [Block]
        public var firstDivergence: Point?
        /// ‖logits_cand − logits_ref‖ / ‖logits_ref‖ over every position, measured when no block diverged but the
        /// prompt fails: then the fault lies after the last block, and output_norm and output are swapped.
        public var logitsError: Double?
        public var swaps: [Swap]
        public var responsible: Culprit?
        public var verdict: String
        enum CodingKeys: String, CodingKey {
            case prompt, text, tokens, blocks, firstDivergence = "first_divergence", logitsError = "logits_error", swaps, responsible, verdict
        }
        /// nil values are written as null: a trace that found nothing says so in every field.
        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(prompt, forKey: .prompt)
            try c.encode(text, forKey: .text)
            try c.encode(tokens, forKey: .tokens)
            try c.encode(blocks, forKey: .blocks)
            try c.encode(firstDivergence, forKey: .firstDivergence)
            if let logitsError { try c.encodeError(logitsError, forKey: .logitsError) } else { try c.encodeNil(forKey: .logitsError) }
            try c.encode(swaps, forKey: .swaps)
            try c.encode(responsible, forKey: .responsible)
            try c.encode(verdict, forKey: .verdict)
        }
    }

    public var tolerance: Double
    public var toleranceRule: String
    public var prompts: [PromptTrace]

    enum CodingKeys: String, CodingKey { case tolerance, toleranceRule = "tolerance_rule", prompts }
}

public enum DivergenceTrace {
    /// How far a block's residual may drift, from what the comparison allows at the logits (`VerifyThresholds`):
    /// a lossless candidate its logits' bound (1e-4, float rounding); a lossy one √(2·max KL), the relative error
    /// at which a perturbation of the final residual, carried to logits of unit spread, would alone spend the
    /// mean-KL budget (KL ≈ ½·Var(Δlogit)). So q8_0 allows 0.14, q4_0 0.49, and --max-kld moves it too.
    public static func tolerance(_ t: VerifyThresholds) -> (value: Double, rule: String) {
        if let rel = t.maxRelativeLogitDiff {
            return (rel, "\(t.kind): the logits' own bound, float rounding")
        }
        let v = (2 * t.maxKLD).squareRoot()
        return (v, String(format: "%@: sqrt(2 x max KL %g)", t.kind, t.maxKLD))
    }

    /// The prompts to trace: every one (`all`), else the first that fails, else the first.
    public static func promptsToTrace(_ r: VerifyReport, all: Bool) -> [Int] {
        if all || r.prompts.isEmpty { return Array(r.prompts.indices) }
        return [r.prompts.indices.first { fails(r.prompts[$0], r) } ?? 0]
    }

    /// The comparison's thresholds applied to one prompt alone (the logit scale is the whole comparison's).
    static func fails(_ p: VerifyReport.Prompt, _ r: VerifyReport) -> Bool {
        let t = r.thresholds
        return !(p.kldMean <= t.maxKLD) || !(p.top1Agreement >= t.minTop1)
            || t.maxRelativeLogitDiff.map { !(p.maxAbsDiff <= $0 * max(r.maxAbsLogit, 1e-30)) } ?? false
    }

    /// The most forward passes a trace of `prompts` prompts through `layers` blocks runs, for a progress meter:
    /// per prompt the reference, the candidate, ten swaps, the swap in every layer, one leaving out each layer,
    /// and the fixed candidate (or, when every block agrees, four passes for the logits).
    public static func maxPasses(prompts: Int, layers: Int) -> Int { prompts * (layers + 14) }

    /// Traces `report`'s prompts chosen by `promptsToTrace`. `progress` is told each forward pass run.
    public static func run(_ ref: Verifier.Loaded, _ cand: Verifier.Loaded, report: VerifyReport, all: Bool,
                           progress: (() -> Void)? = nil) throws -> TraceReport {
        let tol = tolerance(report.thresholds)
        var traces = [TraceReport.PromptTrace]()
        for i in promptsToTrace(report, all: all) {
            let text = report.prompts[i].text
            var t = try trace(ref.model.weights, cand.model.weights, tokens: try ref.tokenize(text), tolerance: tol.value,
                              logitsDiffer: fails(report.prompts[i], report), progress: progress)
            t.prompt = i + 1
            t.text = text
            traces.append(t)
        }
        return TraceReport(tolerance: tol.value, toleranceRule: tol.rule, prompts: traces)
    }

    /// One prompt: both models block by block; at the first point past `tolerance`, each tensor of that block
    /// swapped for the reference's; for the one that fixes it, whether it is wrong in every layer. When no block
    /// diverges but the prompt's logits fail the comparison (`logitsDiffer`), the logits are compared and
    /// output_norm and output swapped instead.
    public static func trace(_ ref: LlamaWeights, _ cand: LlamaWeights, tokens: [Int], tolerance: Double, logitsDiffer: Bool = false,
                             progress: (() -> Void)? = nil) throws -> TraceReport.PromptTrace {
        let n = cand.parameters.nLayers
        guard ref.parameters.nLayers == n, ref.parameters.dim == cand.parameters.dim, ref.vocabSize == cand.vocabSize, !tokens.isEmpty else {
            throw BillaError(.shapeMismatch, "the two models differ in layers, width or vocabulary (or the prompt has no tokens), so their blocks cannot be compared",
                             remedy: "trace a candidate of the reference's architecture (billa verify compares the architectures first)")
        }
        let recorder = ResidualRecorder()
        try forward(ref, tokens, recorder)
        progress?()
        func errors(_ swaps: [WeightSwap], layers: Int? = nil) throws -> [Double] {
            let meter = ResidualError(reference: recorder.blocks)
            try forward(try cand.swapping(swaps, from: ref, keepLayers: layers), tokens, meter)
            progress?()
            return meter.errors
        }
        func past(_ e: Double) -> Bool { !(e <= tolerance) }   // NaN is past
        func point(_ i: Int, _ e: [Double]) -> TraceReport.Point {
            TraceReport.Point(layer: i / 2, stage: i % 2 == 0 ? .attention : .mlp, error: e[i])
        }
        let base = try errors([])
        let blocks = (0..<n).map { TraceReport.Block(layer: $0, afterAttention: base[2 * $0], afterMLP: base[2 * $0 + 1]) }
        var out = TraceReport.PromptTrace(prompt: 0, text: "", tokens: tokens.count, blocks: blocks, firstDivergence: nil, swaps: [],
                                          responsible: nil, verdict: "no block diverged past tolerance")
        guard let first = base.firstIndex(where: past) else {
            return logitsDiffer ? try afterTheLastBlock(ref, cand, tokens: tokens, tolerance: tolerance, out, progress: progress) : out
        }
        let at = point(first, base)
        out.firstDivergence = at
        // Each candidate tensor of the diverging block (and the embedding, when it is block 0) swapped alone.
        let tensors = (at.layer == 0 ? [SwapTensor.tokenEmbd] : []) + SwapTensor.ofBlock(upTo: at.stage)
        for t in tensors {
            let swap = WeightSwap(layer: t == .tokenEmbd ? nil : at.layer, t)
            let e = try errors([swap], layers: at.layer + 1)[first]
            out.swaps.append(TraceReport.Swap(tensor: t, error: e, withinTolerance: !past(e)))
        }
        let best = bestSwap(out.swaps)
        func swaps(_ t: SwapTensor, _ layers: some Sequence<Int>) -> [WeightSwap] {
            t.perLayer ? layers.map { WeightSwap(layer: $0, t) } : [WeightSwap(layer: nil, t)]
        }
        var culprit = TraceReport.Culprit(tensor: best.tensor, layers: best.tensor.perLayer ? [at.layer] : [], everyLayer: false,
                                          fixes: best.withinTolerance, remaining: nil)
        if best.withinTolerance, best.tensor.perLayer, n > 1 {
            // Wrong in other layers too? Swapped in every layer it must bring every block within tolerance; then
            // each layer keeps its own copy in turn. A correct copy adds only its own rounding (nothing, lossless),
            // a small part of what all the model's tensors together leave (the everywhere-swapped run's largest
            // error); a wrong one makes its block diverge, or adds more than all of them together and more than a
            // tenth of the tolerance (a quantized file's tolerance is loose enough to hide a single layer's fault).
            let everywhere = try errors(swaps(best.tensor, 0..<n))
            if !everywhere.contains(where: past) {
                let noise = max(everywhere.max() ?? 0, tolerance / 10)
                var wrong = [Int]()
                for l in 0..<n {
                    let e = try errors(swaps(best.tensor, (0..<n).filter { $0 != l }), layers: l + 1)
                    let excess = max(e[2 * l] - everywhere[2 * l], e[2 * l + 1] - everywhere[2 * l + 1])
                    if past(e[2 * l]) || past(e[2 * l + 1]) || excess > noise { wrong.append(l) }
                }
                culprit.layers = Set(wrong + [at.layer]).sorted()
                culprit.everyLayer = culprit.layers.count == n
            }
        }
        if culprit.fixes, !culprit.everyLayer {   // swapped in every layer it was seen to fix every block
            let fixed = try errors(swaps(best.tensor, culprit.layers))
            culprit.remaining = fixed.firstIndex(where: past).map { point($0, fixed) }
        }
        out.responsible = culprit
        out.verdict = verdict(culprit, at: "layer \(at.layer) after \(at.stage.label)", tolerance: tolerance)
        return out
    }

    /// The swap that brings the point within tolerance with the least error, else the one that reduces it most.
    static func bestSwap(_ swaps: [TraceReport.Swap]) -> TraceReport.Swap {
        let within = swaps.filter(\.withinTolerance)
        return (within.isEmpty ? swaps : within).min { !($0.error >= $1.error) }!   // a NaN error never wins
    }

    /// Every block agrees but the logits fail: the logits' relative error, and output_norm and output swapped.
    static func afterTheLastBlock(_ ref: LlamaWeights, _ cand: LlamaWeights, tokens: [Int], tolerance: Double,
                                  _ trace: TraceReport.PromptTrace, progress: (() -> Void)?) throws -> TraceReport.PromptTrace {
        var out = trace
        func logits(_ w: LlamaWeights) throws -> [Float] {
            defer { progress?() }
            return try LlamaModel(w).forward(tokens, cache: KVCache(for: w, capacity: tokens.count))
        }
        let want = try logits(ref)
        func error(_ swaps: [WeightSwap]) throws -> Double { relativeError(try logits(cand.swapping(swaps, from: ref)), want) }
        let e = try error([])
        out.logitsError = e
        guard !(e <= tolerance) else {
            out.verdict += String(format: "; the logits differ by %.3g of their norm, within it too", e)
            return out
        }
        for t in [SwapTensor.outputNorm, .output] {
            let s = try error([WeightSwap(layer: nil, t)])
            out.swaps.append(TraceReport.Swap(tensor: t, error: s, withinTolerance: s <= tolerance))
        }
        let best = bestSwap(out.swaps)
        let culprit = TraceReport.Culprit(tensor: best.tensor, layers: [], everyLayer: false, fixes: best.withinTolerance, remaining: nil)
        out.responsible = culprit
        out.verdict = verdict(culprit, at: "the logits", tolerance: tolerance)
        return out
    }

    /// ‖a − b‖ / ‖b‖ in f64 (0 when both are 0, infinite when only b is).
    static func relativeError(_ a: UnsafeBufferPointer<Float>, _ b: UnsafeBufferPointer<Float>) -> Double {
        var diff = 0.0, norm = 0.0
        for i in 0..<b.count {
            let d = Double(a[i]) - Double(b[i])
            diff += d * d
            norm += Double(b[i]) * Double(b[i])
        }
        return norm > 0 ? (diff / norm).squareRoot() : diff == 0 ? 0 : .infinity
    }

    static func relativeError(_ a: [Float], _ b: [Float]) -> Double {
        a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { relativeError(ap, $0) } }
    }

    /// "layer 3, attn_k", "attn_q of every layer", "attn_k of layers 3, 5", "output", or the best swap when none
    /// fixes the point `at` ("layer 3 after attention", "the logits").
    static func verdict(_ c: TraceReport.Culprit, at: String, tolerance: Double) -> String {
        let name = c.tensor.rawValue
        var s: String
        if !c.tensor.perLayer { s = name }
        else if c.everyLayer { s = "\(name) of every layer" }
        else if c.layers.count == 1 { s = "layer \(c.layers[0]), \(name)" }
        else { s = "\(name) of layers " + c.layers.map(String.init).joined(separator: ", ") }
        if !c.fixes {
            s += String(format: " (its swap reduces the error most, but no single swap brings %@ within %.3g)", at, tolerance)
        }
        if let r = c.remaining {
            s += String(format: "; with it swapped, layer %d after %@ still diverges (%.3g)", r.layer, r.stage.label, r.error)
        }
        return s
    }

    static func forward(_ w: LlamaWeights, _ tokens: [Int], _ observer: ForwardObserver) throws {
        _ = try LlamaModel(w).forward(tokens, cache: KVCache(for: w, capacity: tokens.count), allLogits: false, observer: observer)
    }
}

extension KeyedEncodingContainer {
    /// A relative error as a number, or null when it is not finite: JSON has no NaN or Infinity.
    mutating func encodeError(_ v: Double, forKey key: Key) throws {
        if v.isFinite { try encode(v, forKey: key) } else { try encodeNil(forKey: key) }
    }
}

extension BlockStage {
    /// "attention" / "MLP", as the tables print it.
    public var label: String { self == .attention ? "attention" : "MLP" }
}

/// Keeps the reference's residual stream after every block's attention and MLP (index 2·layer + stage): 2 · layers
/// · tokens · dim floats, 21 MB for a 20-token prompt through LLaMA-7B.
final class ResidualRecorder: ForwardObserver {
    var blocks = [[Float]]()
    func residual(layer: Int, after stage: BlockStage, _ x: UnsafePointer<Float>, tokens: Int, dim: Int) {
        blocks.append(Array(UnsafeBufferPointer(start: x, count: tokens * dim)))
    }
}

/// The candidate's relative error against recorded reference blocks, computed as the pass goes (nothing kept).
final class ResidualError: ForwardObserver {
    let reference: [[Float]]
    var errors = [Double]()
    init(reference: [[Float]]) { self.reference = reference }

    func residual(layer: Int, after stage: BlockStage, _ x: UnsafePointer<Float>, tokens: Int, dim: Int) {
        reference[errors.count].withUnsafeBufferPointer { r in
            errors.append(DivergenceTrace.relativeError(UnsafeBufferPointer(start: x, count: tokens * dim), r))
        }
    }
}
