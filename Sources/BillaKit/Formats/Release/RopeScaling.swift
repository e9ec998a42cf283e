import Foundation

/// How a model stretches its rotary embedding past the context it was trained at: the `rope_scaling` /
/// `rope_parameters` of config.json (transformers' `linear`, `dynamic`, `yarn`, `llama3`), Meta's `use_scaled_rope`,
/// or, read from a GGUF, llama.cpp's per-frequency divisors (`rope_freqs.weight`, what convert_hf_to_gguf.py writes
/// for `llama3`). Every field changes the model's outputs, so every one is carried through conversions and compared
/// by `billa verify`.
public struct RopeScaling: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        case linear, dynamic, yarn, llama3
        /// GGUF's `rope_freqs.weight`: frequency i is divided by `freqFactors[i]` (llama.cpp's rope with factors).
        case freqFactors = "rope_freqs"
    }

    public var type: Kind
    public var factor: Double?
    /// yarn and llama3: `original_max_position_embeddings`; dynamic: `max_position_embeddings`, past which the base
    /// grows (transformers' `_compute_dynamic_ntk_parameters` reads it from the config).
    public var originalContextLength: Int?
    public var lowFreqFactor: Double?
    public var highFreqFactor: Double?
    /// yarn: the explicit cos/sin multiplier; nil means transformers' default 0.1·ln(factor) + 1 (or the mscale ratio).
    public var attentionFactor: Double?
    public var betaFast: Double?
    public var betaSlow: Double?
    public var mscale: Double?
    public var mscaleAllDim: Double?
    /// yarn: round the correction range outward (transformers' default true).
    public var truncate: Bool?
    public var freqFactors: [Float]?

    enum CodingKeys: String, CodingKey {
        case type, factor, originalContextLength = "original_context_length", lowFreqFactor = "low_freq_factor"
        case highFreqFactor = "high_freq_factor", attentionFactor = "attention_factor", betaFast = "beta_fast"
        case betaSlow = "beta_slow", mscale, mscaleAllDim = "mscale_all_dim", truncate, freqFactors = "freq_factors"
    }

    public init(type: Kind, factor: Double? = nil, originalContextLength: Int? = nil) {
        self.type = type
        self.factor = factor
        self.originalContextLength = originalContextLength
    }

    /// Meta's reference code for Llama 3.1 (`apply_scaling` with `use_scaled_rope`): factor 8, low 1, high 4, 8192.
    public static let metaLlama31 = {
        var s = RopeScaling(type: .llama3, factor: 8, originalContextLength: 8192)
        s.lowFreqFactor = 1
        s.highFreqFactor = 4
        return s
    }()

    /// Every field as (name, value), for messages and the verifier's comparison; absent fields are left out.
    public var fields: [(String, String)] {
        var out: [(String, String)] = [("type", type == .freqFactors ? "rope_freqs.weight" : type.rawValue)]
        func add(_ name: String, _ v: Double?) { if let v { out.append((name, RopeScaling.show(v))) } }
        add("factor", factor)
        if let c = originalContextLength { out.append((type == .dynamic ? "max_position_embeddings" : "original_max_position_embeddings", String(c))) }
        add("low_freq_factor", lowFreqFactor)
        add("high_freq_factor", highFreqFactor)
        add("attention_factor", attentionFactor)
        add("beta_fast", betaFast)
        add("beta_slow", betaSlow)
        add("mscale", mscale)
        add("mscale_all_dim", mscaleAllDim)
        if let t = truncate { out.append(("truncate", String(t))) }
        if let f = freqFactors { out.append(("rope_freqs", "[" + f.map { RopeScaling.show(Double($0)) }.joined(separator: ", ") + "]")) }
        return out
    }

    public var summary: String { fields.map { "\($0.0) \($0.1)" }.joined(separator: ", ") }

    /// A number as config.json writers print it: integers without ".0".
    public static func show(_ v: Double) -> String { v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : String(v) }

    /// The config.json object transformers 5 writes (`rope_parameters`, theta inside). nil for GGUF's factors,
    /// which have no transformers spelling.
    func hfPairs(theta: Double) -> [(String, Any?)]? {
        guard type != .freqFactors else { return nil }
        var p: [(String, Any?)] = [("rope_theta", theta), ("rope_type", type.rawValue)]
        if let f = factor { p.append(("factor", f)) }
        if let c = originalContextLength, type != .dynamic { p.append(("original_max_position_embeddings", c)) }
        if let v = lowFreqFactor { p.append(("low_freq_factor", v)) }
        if let v = highFreqFactor { p.append(("high_freq_factor", v)) }
        if let v = attentionFactor { p.append(("attention_factor", v)) }
        if let v = betaFast { p.append(("beta_fast", v)) }
        if let v = betaSlow { p.append(("beta_slow", v)) }
        if let v = mscale { p.append(("mscale", v)) }
        if let v = mscaleAllDim { p.append(("mscale_all_dim", v)) }
        if let v = truncate { p.append(("truncate", v)) }
        return p
    }
}

// MARK: reading config.json and params.json

extension RopeScaling {
    /// Keys of a rope dict that billa reads; any other is refused by name, since it may change the outputs.
    static let knownKeys: Set<String> = [
        "rope_type", "type", "rope_theta", "factor", "original_max_position_embeddings", "low_freq_factor",
        "high_freq_factor", "attention_factor", "beta_fast", "beta_slow", "mscale", "mscale_all_dim", "truncate",
        "partial_rotary_factor",
    ]

    /// The rotary base and scaling of a config.json, read as transformers 5 does: `rope_scaling` (transformers 4's
    /// key, `type` or `rope_type`) or `rope_parameters` (5's, with `rope_theta` inside), theta from inside or from the
    /// top level. `default` is no scaling; `longrope` and anything unknown are refused by name.
    static func fromHFConfig(_ config: [String: Any], file: String) throws -> (theta: Double, scaling: RopeScaling?) {
        let scalingDict = config["rope_scaling"] as? [String: Any]
        let parameters = config["rope_parameters"] as? [String: Any]
        if let s = scalingDict, let p = parameters, !s.isEmpty, !p.isEmpty {
            let a = (s["rope_type"] ?? s["type"]).map { "\($0)" } ?? "default", b = (p["rope_type"] ?? p["type"]).map { "\($0)" } ?? "default"
            if a != b || s.double("factor") != p.double("factor") {
                throw BillaError(.invalidHeader, file: file,
                                 "rope_scaling (\(a), factor \(s.double("factor").map(show) ?? "none")) and rope_parameters (\(b), factor \(p.double("factor").map(show) ?? "none")) disagree; transformers would use rope_scaling, llama.cpp rope_parameters",
                                 remedy: "delete the one that is wrong from config.json")
            }
        }
        // transformers: `self.rope_parameters = rope_scaling or self.rope_parameters`
        let dict = (scalingDict?.isEmpty == false ? scalingDict : parameters) ?? [:]
        let theta = dict.double("rope_theta") ?? config.double("rope_theta") ?? 10000
        if dict.values.contains(where: { $0 is [String: Any] }) {
            throw BillaError(.unsupported, file: file, "rope parameters are given per layer type (\(dict.keys.sorted().joined(separator: ", "))); billa runs one rotary embedding for every layer",
                             remedy: "this is not a LLaMA-family config")
        }
        let typeName = (dict["rope_type"] as? String) ?? (dict["type"] as? String) ?? "default"
        guard ["default", "linear", "dynamic", "yarn", "llama3"].contains(typeName) else {
            let why = typeName == "longrope" || typeName == "su"
                ? "longrope (Phi-3's two factor lists, chosen by the sequence length) is not implemented"
                : "it is not one of linear, dynamic, yarn, llama3"
            throw BillaError(.unsupported, file: file, "rope type '\(typeName)' is refused: \(why)",
                             remedy: "billa runs and converts LLaMA-family models with default, linear, dynamic, yarn or llama3 rotary scaling")
        }
        if let unknown = dict.keys.sorted().first(where: { !knownKeys.contains($0) }) {
            throw BillaError(.unsupported, file: file, "rope parameter '\(unknown)' is unknown to billa, so it cannot run or convert the model as its authors meant",
                             remedy: "remove the key from config.json if it does not change the rotary embedding")
        }
        if let prf = dict.double("partial_rotary_factor") ?? config.double("partial_rotary_factor"), prf != 1 {
            throw BillaError(.unsupported, file: file, "partial_rotary_factor \(prf): billa rotates the whole head",
                             remedy: "this is not a LLaMA-family config")
        }
        let maxPositions = config.int("max_position_embeddings")
        let original = config.int("original_max_position_embeddings") ?? dict.int("original_max_position_embeddings") ?? maxPositions
        func need(_ key: String) throws -> Double {
            guard let v = dict.double(key) else {
                throw BillaError(.invalidHeader, file: file, "rope type '\(typeName)' needs '\(key)', which is missing",
                                 remedy: "restore the rope_scaling / rope_parameters of config.json from the release")
            }
            return v
        }
        func needContext(_ what: String) throws -> Int {
            guard let c = what == "max_position_embeddings" ? maxPositions : original else {
                throw BillaError(.invalidHeader, file: file, "rope type '\(typeName)' needs \(what), which is missing",
                                 remedy: "restore config.json from the release")
            }
            return c
        }
        var s: RopeScaling
        switch typeName {
        case "default": return (theta, nil)
        case "linear":
            s = RopeScaling(type: .linear, factor: try need("factor"))
        case "dynamic":
            s = RopeScaling(type: .dynamic, factor: try need("factor"), originalContextLength: try needContext("max_position_embeddings"))
        case "yarn":
            s = RopeScaling(type: .yarn, factor: try need("factor"), originalContextLength: try needContext("original_max_position_embeddings"))
            s.attentionFactor = dict.double("attention_factor")
            s.betaFast = dict.double("beta_fast")
            s.betaSlow = dict.double("beta_slow")
            s.mscale = dict.double("mscale")
            s.mscaleAllDim = dict.double("mscale_all_dim")
            s.truncate = dict["truncate"] as? Bool
        case "llama3":
            s = RopeScaling(type: .llama3, factor: try need("factor"), originalContextLength: try needContext("original_max_position_embeddings"))
            s.lowFreqFactor = try need("low_freq_factor")
            s.highFreqFactor = try need("high_freq_factor")
        default:
            throw BillaError(.unsupported, file: file, "rope type '\(typeName)' is refused", remedy: "use a LLaMA-family config")
        }
        return (theta, s)
    }

    /// Meta's params.json: `use_scaled_rope` is Llama 3.1's scaling with the reference code's constants (llama-models'
    /// `rope_scaling_factor` replaces the factor when present); billa's own `rope_scaling` key, in config.json's
    /// spelling, carries any other scaling it converted from Hugging Face.
    static func fromMetaParams(_ params: [String: Any], file: String) throws -> RopeScaling? {
        if let dict = params["rope_scaling"] as? [String: Any] {
            var config: [String: Any] = ["rope_scaling": dict]
            if let c = params["max_position_embeddings"] { config["max_position_embeddings"] = c }
            return try fromHFConfig(config, file: file).scaling
        }
        guard (params["use_scaled_rope"] as? Bool) == true else { return nil }
        var s = metaLlama31
        if let f = params.double("rope_scaling_factor") { s.factor = f }
        return s
    }
}
