import Foundation

/// The rotary inverse frequencies and cos/sin multiplier of a model, computed as transformers' rope init functions
/// compute them (`_compute_linear_scaling_rope_parameters`, `_compute_dynamic_ntk_parameters`,
/// `_compute_yarn_parameters`, `_compute_llama3_parameters`), in float32 where torch computes in float32, so the
/// forward pass's logits can be held to transformers'.
enum RopeFrequencies {
    /// transformers' default: 1 / base ** (arange(0, hd, 2).float() / hd), all in float32.
    static func plain(theta: Float, headDim hd: Int) -> [Float] {
        (0..<(hd / 2)).map { i in 1 / Foundation.pow(theta, Float(2 * i) / Float(hd)) }
    }

    /// `seqLen`: the largest position of the forward call plus one (only `dynamic` depends on it).
    static func compute(_ p: ModelParameters, seqLen: Int) -> (invFreq: [Float], attention: Float) {
        let hd = p.headDim
        let base = plain(theta: Float(p.ropeTheta), headDim: hd)
        guard let s = p.ropeScaling else { return (base, 1) }
        let factor = Float(s.factor ?? 1)
        switch s.type {
        case .linear:
            return (base.map { $0 / factor }, 1)
        case .dynamic:
            // seq_len = max(seq_len, max_position_embeddings); base * (factor * seq_len / max - (factor - 1)) ** (dim / (dim - 2))
            let maxPos = s.originalContextLength ?? seqLen
            let len = Float(max(seqLen, maxPos))
            let grown = Float(p.ropeTheta) * Foundation.pow(factor * len / Float(maxPos) - (factor - 1), Float(hd) / Float(hd - 2))
            return (plain(theta: grown, headDim: hd), 1)
        case .yarn:
            return yarn(p, s, headDim: hd)
        case .llama3:
            return (llama3(base, s), 1)
        case .freqFactors:
            let f = s.freqFactors ?? []
            return (base.enumerated().map { i, v in i < f.count ? v / f[i] : v }, 1)
        }
    }

    /// transformers' llama3: low frequencies divided by the factor, high ones kept, the band between smoothed.
    static func llama3(_ invFreq: [Float], _ s: RopeScaling) -> [Float] {
        let factor = Float(s.factor ?? 8), low = Float(s.lowFreqFactor ?? 1), high = Float(s.highFreqFactor ?? 4)
        let old = Float(s.originalContextLength ?? 8192)
        let lowWavelen = old / low, highWavelen = old / high
        let twoPi = Float(2 * Double.pi)
        return invFreq.map { f in
            let wavelen = twoPi / f
            let scaled = wavelen > lowWavelen ? f / factor : f
            if wavelen < highWavelen || wavelen > lowWavelen { return scaled }
            let smooth = (old / wavelen - low) / (high - low)
            return (1 - smooth) * scaled / factor + smooth * scaled
        }
    }

    static func yarn(_ p: ModelParameters, _ s: RopeScaling, headDim dim: Int) -> ([Float], Float) {
        let base = p.ropeTheta
        let factor = s.factor ?? 1
        func mscale(_ scale: Double, _ m: Double = 1) -> Double { scale <= 1 ? 1 : 0.1 * m * Foundation.log(scale) + 1 }
        let attention: Double
        if let a = s.attentionFactor {
            attention = a
        } else if let m = s.mscale, let all = s.mscaleAllDim, m != 0, all != 0 {
            attention = mscale(factor, m) / mscale(factor, all)
        } else {
            attention = mscale(factor)
        }
        let betaFast = (s.betaFast).flatMap { $0 == 0 ? nil : $0 } ?? 32
        let betaSlow = (s.betaSlow).flatMap { $0 == 0 ? nil : $0 } ?? 1
        let original = Double(s.originalContextLength ?? 0)
        func correctionDim(_ rotations: Double) -> Double {
            Double(dim) * Foundation.log(original / (rotations * 2 * Double.pi)) / (2 * Foundation.log(base))
        }
        var low = correctionDim(betaFast), high = correctionDim(betaSlow)
        if s.truncate ?? true { low = low.rounded(.down); high = high.rounded(.up) }
        low = max(low, 0)
        high = min(high, Double(dim - 1))
        if low == high { high += 0.001 }
        let posFreqs = (0..<(dim / 2)).map { i in Foundation.pow(Float(base), Float(2 * i) / Float(dim)) }
        let (lo, span) = (Float(low), Float(high - low))
        let inv = posFreqs.enumerated().map { i, pf -> Float in
            let extrapolation = 1 / pf, interpolation = 1 / (Float(factor) * pf)
            let ramp = Swift.min(Swift.max((Float(i) - lo) / span, 0), 1)
            let keep = 1 - ramp   // inv_freq_extrapolation_factor
            return interpolation * (1 - keep) + extrapolation * keep
        }
        return (inv, Float(attention))
    }

    /// convert_hf_to_gguf.py's `rope_freqs.weight` for llama3 (LlamaModel.generate_extra_tensors): the divisor of
    /// each frequency, 1 for the high ones, the factor for the low ones, smoothed between; float32 as torch computes it.
    static func llama3Factors(theta: Double, headDim dim: Int, _ s: RopeScaling) -> [Float] {
        let factor = Float(s.factor ?? 8), low = Float(s.lowFreqFactor ?? 1), high = Float(s.highFreqFactor ?? 4)
        let old = Float(s.originalContextLength ?? 8192)
        let lowWavelen = old / low, highWavelen = old / high
        let twoPi = Float(2 * Double.pi)
        return plain(theta: Float(theta), headDim: dim).map { f in
            let wavelen = twoPi / f
            if wavelen < highWavelen { return 1 }
            if wavelen > lowWavelen { return factor }
            let smooth = (old / wavelen - low) / (high - low)
            return 1 / ((1 - smooth) / factor + smooth)
        }
    }

    /// The divisor of each frequency a scaling amounts to at positions within the original context, when it is a
    /// fixed one (linear, llama3, GGUF's factors); nil for dynamic and yarn. Lets the verifier compare a llama3
    /// config with the GGUF factors written from it.
    static func divisors(_ p: ModelParameters) -> [Float]? {
        guard let s = p.ropeScaling else { return [Float](repeating: 1, count: p.headDim / 2) }
        switch s.type {
        case .linear: return [Float](repeating: Float(s.factor ?? 1), count: p.headDim / 2)
        case .llama3: return llama3Factors(theta: p.ropeTheta, headDim: p.headDim, s)
        case .freqFactors: return s.freqFactors
        case .dynamic, .yarn: return nil
        }
    }
}
