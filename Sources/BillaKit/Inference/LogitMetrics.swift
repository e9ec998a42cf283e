import Foundation

/// Per-position comparisons of two models' next-token distributions, in double precision so that the differences
/// between near-identical models are not lost in the arithmetic.
enum LogitMetrics {
    /// log softmax of one row.
    static func logSoftmax(_ row: ArraySlice<Float>) -> [Double] {
        var mx = -Double.infinity
        for v in row { mx = max(mx, Double(v)) }
        var sum = 0.0
        for v in row { sum += Foundation.exp(Double(v) - mx) }
        let lse = mx + Foundation.log(sum)
        return row.map { Double($0) - lse }
    }

    /// KL(reference ‖ candidate) of one position, from log-probabilities.
    static func kl(_ ref: [Double], _ cand: [Double]) -> Double {
        var s = 0.0
        for i in 0..<ref.count { s += Foundation.exp(ref[i]) * (ref[i] - cand[i]) }
        return max(0, s)
    }

    static func argmax(_ row: ArraySlice<Float>) -> Int {
        var best = row.startIndex
        for i in row.indices where row[i] > row[best] { best = i }
        return best - row.startIndex
    }

    /// The q-quantile (0...1) of sorted values, by linear interpolation as numpy's default.
    static func quantile(_ sorted: [Double], _ q: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        let x = q * Double(sorted.count - 1)
        let lo = Int(x.rounded(.down)), hi = min(sorted.count - 1, lo + 1)
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (x - Double(lo))
    }
}

/// One model's answers on a prompt: its logits for every position.
struct PromptRun {
    let tokens: [Int]
    let logits: [Float]
    let vocab: Int

    func row(_ t: Int) -> ArraySlice<Float> { logits[(t * vocab)..<((t + 1) * vocab)] }

    /// Summed negative log-likelihood of each next token, and how many were scored.
    func nll() -> (sum: Double, count: Int) {
        var s = 0.0
        for t in 0..<(tokens.count - 1) { s -= LogitMetrics.logSoftmax(row(t))[tokens[t + 1]] }
        return (s, max(0, tokens.count - 1))
    }
}
