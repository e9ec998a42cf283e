import Foundation

/// The architecture settings that change a model's outputs, compared before `billa verify` runs a prompt: two
/// models that differ in one of them are different models, however close their logits come on short prompts (a
/// rope scaling changes nothing at position 0 and little on a 20-token prompt, so the logits alone would PASS).
public enum ArchitectureCheck {
    /// One line per differing field: "field: reference X, candidate Y". Values stored as f32 by GGUF (theta, eps,
    /// factors) are compared at f32 precision, so a GGUF agrees with the config it was written from.
    /// `positions`: the longest sequence that will be run; a sliding window no sequence reaches changes nothing
    /// (a Mistral GGUF, which llama.cpp runs without its window, agrees with its source up to the window).
    public static func differences(_ a: ModelParameters, _ b: ModelParameters, positions: Int = .max) -> [String] {
        var out = [String]()
        func int(_ name: String, _ x: Int, _ y: Int) { if x != y { out.append("\(name): reference \(x), candidate \(y)") } }
        func real(_ name: String, _ x: Double, _ y: Double) {
            if Float(x) != Float(y) { out.append("\(name): reference \(x), candidate \(y)") }
        }
        int("dim", a.dim, b.dim)
        int("n_layers", a.nLayers, b.nLayers)
        int("n_heads", a.nHeads, b.nHeads)
        int("n_kv_heads", a.nKVHeads, b.nKVHeads)
        real("norm_eps", a.normEps, b.normEps)
        real("rope_theta", a.ropeTheta, b.ropeTheta)
        out += scalingDifferences(a, b)
        let fa = a.modelFamily, fb = b.modelFamily
        if fa.has(.attnQBias) != fb.has(.attnQBias) {
            out.append("attention biases: reference \(fa.has(.attnQBias) ? "q/k/v" : "none") (\(fa.rawValue)), candidate \(fb.has(.attnQBias) ? "q/k/v" : "none") (\(fb.rawValue))")
        }
        func show(_ w: Int?) -> String { w.map(String.init) ?? "none" }
        if let l = (0..<max(a.nLayers, b.nLayers)).first(where: { l in
            let wa = a.window(layer: l), wb = b.window(layer: l)
            return wa != wb && positions > min(wa ?? .max, wb ?? .max)
        }) {
            out.append("sliding_window (layer \(l)): reference \(show(a.window(layer: l))), candidate \(show(b.window(layer: l))), and a prompt has \(positions) tokens")
        }
        return out
    }

    static func scalingDifferences(_ a: ModelParameters, _ b: ModelParameters) -> [String] {
        let x = a.ropeScaling, y = b.ropeScaling
        if x == nil, y == nil { return [] }
        func describe(_ s: RopeScaling?) -> String { s.map { $0.summary } ?? "none" }
        if let x, let y, x.type == y.type, x.type != .freqFactors {
            // Same kind: every parameter by name (absent ones read as transformers' defaults would differ, so absent
            // on one side only is a difference too).
            let fx = Dictionary(x.fields, uniquingKeysWith: { a, _ in a }), fy = Dictionary(y.fields, uniquingKeysWith: { a, _ in a })
            var out = [String]()
            for key in (x.fields.map(\.0) + y.fields.map(\.0).filter { fx[$0] == nil }) {
                let u = fx[key], v = fy[key]
                func f32(_ t: String?) -> Float? { t.flatMap { Double($0) }.map { Float($0) } }
                let same = u == v || (f32(u) != nil && f32(u) == f32(v))
                if !same { out.append("rope_scaling.\(key): reference \(u ?? "absent"), candidate \(v ?? "absent")") }
            }
            return out
        }
        // Different spellings of a fixed scaling (a llama3 config and the GGUF factors written from it; none and
        // factors of 1) agree when every frequency's divisor does.
        if let dx = RopeFrequencies.divisors(a), let dy = RopeFrequencies.divisors(b), dx.count == dy.count {
            if let i = dx.indices.first(where: { abs(dx[$0] - dy[$0]) > 1e-6 * max(abs(dx[$0]), abs(dy[$0])) }) {
                return ["rope_scaling: reference \(describe(x)), candidate \(describe(y)) (frequency \(i) is divided by \(dx[i]) against \(dy[i]))"]
            }
            return []
        }
        return ["rope_scaling.type: reference \(describe(x)), candidate \(describe(y))"]
    }
}
