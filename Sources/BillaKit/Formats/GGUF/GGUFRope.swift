import Foundation

/// RoPE scaling in GGUF, as convert_hf_to_gguf.py writes it for LLaMA (TextModel.set_gguf_parameters and
/// LlamaModel.generate_extra_tensors) and llama.cpp reads it: `llama.rope.scaling.type` `linear` / `yarn` with
/// `.factor` (and yarn's `.original_context_length`, `.yarn_attn_factor`, `.yarn_beta_fast`, `.yarn_beta_slow`),
/// and for `llama3` no key but the F32 tensor `rope_freqs.weight`, the divisor of each rotary frequency.
/// Dynamic NTK has no GGUF spelling (the converter writes nothing for it).
enum GGUFRope {
    static let freqsTensor = "rope_freqs.weight"
    static let scalingPrefix = "rope.scaling."
    /// Keys under `{arch}.rope.scaling.` that billa reads; any other is refused by name.
    static let knownKeys: Set<String> = ["type", "factor", "original_context_length", "yarn_attn_factor", "yarn_beta_fast",
                                         "yarn_beta_slow", "yarn_ext_factor", "finetuned"]

    // MARK: reading

    static func scaling(_ m: GGUFMetadata, arch: String, freqs: Tensor?, headDim: Int, file: String) throws -> RopeScaling? {
        let prefix = "\(arch).\(scalingPrefix)"
        for e in m.entries where e.key.hasPrefix(prefix) && !knownKeys.contains(String(e.key.dropFirst(prefix.count))) {
            throw BillaError(.unsupported, file: file, "GGUF key \(e.key) is unknown to billa, so it cannot run the model as llama.cpp would",
                             remedy: "billa reads linear and yarn scaling keys and rope_freqs.weight; convert from the Hugging Face release instead")
        }
        func double(_ k: String) -> Double? { m[prefix + k]?.doubleValue }
        let legacyLinear = m["\(arch).rope.scale_linear"]?.doubleValue   // older converters' key for linear scaling
        let type = m[prefix + "type"]?.stringValue ?? (legacyLinear != nil ? "linear" : "none")
        var s: RopeScaling?
        switch type {
        case "none": s = nil
        case "linear":
            guard let f = double("factor") ?? legacyLinear else {
                throw BillaError(.invalidHeader, file: file, "\(prefix)type is linear but \(prefix)factor is missing", remedy: "convert the model again")
            }
            s = RopeScaling(type: .linear, factor: f)
        case "yarn":
            guard let f = double("factor"), let ctx = m[prefix + "original_context_length"]?.intValue else {
                throw BillaError(.invalidHeader, file: file, "\(prefix)type is yarn but its factor or original_context_length is missing",
                                 remedy: "convert the model again")
            }
            if let ext = double("yarn_ext_factor"), ext != 1 {
                throw BillaError(.unsupported, file: file, "\(prefix)yarn_ext_factor is \(ext); transformers' yarn (which billa follows) has no extrapolation factor",
                                 remedy: "remove the key if the model was trained with the default of 1")
            }
            var y = RopeScaling(type: .yarn, factor: f, originalContextLength: ctx)
            y.attentionFactor = double("yarn_attn_factor")
            y.betaFast = double("yarn_beta_fast")
            y.betaSlow = double("yarn_beta_slow")
            s = y
        default:
            throw BillaError(.unsupported, file: file, "\(prefix)type '\(type)' is refused: billa runs none, linear and yarn (and llama3 through rope_freqs.weight)",
                             remedy: type == "longrope" ? "longrope is not implemented" : "check the file's origin")
        }
        guard let freqs else { return s }
        guard s == nil else {
            throw BillaError(.unsupported, file: file, tensor: freqsTensor, "the file has both \(prefix)type \(type) and rope_freqs.weight; llama.cpp would apply both, billa does not",
                             remedy: "convert the model again from its Hugging Face release")
        }
        guard freqs.dtype == .f32, freqs.elementCount == headDim / 2 else {
            throw BillaError(.shapeMismatch, file: file, tensor: freqsTensor,
                             "\(freqs.dtype.rawValue) \(Shape.describe(freqs.shape)) where one F32 factor per rotary pair (\(headDim / 2)) is needed",
                             remedy: "convert the model again with convert_hf_to_gguf.py or billa convert --to gguf")
        }
        var out = RopeScaling(type: .freqFactors)
        out.freqFactors = try freqs.withBytes { b in (0..<(headDim / 2)).map { b.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) } }
        return out
    }

    // MARK: writing

    /// The metadata keys convert_hf_to_gguf.py writes for the scaling, the rope_freqs.weight values (llama3), and
    /// a note for each field GGUF cannot hold.
    static func export(_ p: ModelParameters, arch: String, into m: inout GGUFMetadata) -> (freqs: [Float]?, notes: [String]) {
        guard let s = p.ropeScaling else { return (nil, []) }
        var notes = [String]()
        let prefix = "\(arch).\(scalingPrefix)"
        switch s.type {
        case .linear:
            m[prefix + "type"] = .text("linear")
            m[prefix + "factor"] = .f32(Float(s.factor ?? 1))
        case .yarn:
            m[prefix + "type"] = .text("yarn")
            m[prefix + "factor"] = .f32(Float(s.factor ?? 1))
            if let c = s.originalContextLength { m[prefix + "original_context_length"] = .u32(UInt32(clamping: c)) }
            if let a = s.attentionFactor { m[prefix + "yarn_attn_factor"] = .f32(Float(a)) }
            if let b = s.betaFast { m[prefix + "yarn_beta_fast"] = .f32(Float(b)) }
            if let b = s.betaSlow { m[prefix + "yarn_beta_slow"] = .f32(Float(b)) }
            var lost = [String]()
            if let v = s.mscale { lost.append("mscale \(RopeScaling.show(v))") }
            if let v = s.mscaleAllDim { lost.append("mscale_all_dim \(RopeScaling.show(v))") }
            if let v = s.truncate { lost.append("truncate \(v)") }
            if !lost.isEmpty {
                notes.append("GGUF has no key for yarn's \(lost.joined(separator: ", ")) (convert_hf_to_gguf.py writes none): llama.cpp runs yarn without them")
            }
        case .dynamic:
            notes.append("GGUF cannot hold dynamic NTK rope scaling (factor \(RopeScaling.show(s.factor ?? 1)) past \(s.originalContextLength ?? 0) positions; convert_hf_to_gguf.py writes nothing for it): llama.cpp and billa run the GGUF unscaled, so outputs differ past \(s.originalContextLength ?? 0) positions")
        case .llama3:
            return (RopeFrequencies.llama3Factors(theta: p.ropeTheta, headDim: p.headDim, s), [])
        case .freqFactors:
            return (s.freqFactors, [])
        }
        return (nil, notes)
    }
}
