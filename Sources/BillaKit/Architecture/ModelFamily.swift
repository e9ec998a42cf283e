import Foundation

/// The model families billa runs and converts, and what distinguishes each (mlx-swift-lm's `model_type` registry,
/// gguf-py's MODEL_ARCH): adding one is a case here, its rules below, and its tests. Everything else (the tensor
/// names, conversions, GGUF export, quantization recipes, the forward pass) reads these answers.
public enum ModelFamily: String, Sendable, Codable, CaseIterable {
    /// LLaMA 1/2/3.x and their derivatives (BiLLa, Vicuna, Chinese-LLaMA), tied embeddings in Llama 3.2's small sizes.
    case llama
    /// Mistral: LLaMA's blocks with a sliding attention window (Mistral-7B-v0.1: 4096).
    case mistral
    /// Qwen2 / Qwen2.5: biases on q, k and v, rope theta 1e6, tied embeddings in the small sizes.
    case qwen2

    /// config.json's `model_type`.
    public var modelType: String { rawValue }

    /// config.json's `architectures`.
    public var hfArchitecture: String {
        switch self {
        case .llama: return "LlamaForCausalLM"
        case .mistral: return "MistralForCausalLM"
        case .qwen2: return "Qwen2ForCausalLM"
        }
    }

    /// general.architecture, and the prefix of the model's GGUF keys: convert_hf_to_gguf.py writes Mistral as
    /// "llama" (its LlamaModel handles MistralForCausalLM), Qwen2 as "qwen2".
    public var ggufArchitecture: String { self == .qwen2 ? "qwen2" : "llama" }

    /// How the family's GGUF files order wq/wk rows: llama.cpp runs LLM_ARCH_LLAMA with interleaved (normal) rope,
    /// so convert_hf_to_gguf permutes HF's halves back; LLM_ARCH_QWEN2 runs NEOX rope, so its rows stay as HF has them.
    public var ggufRope: RopeLayout { self == .qwen2 ? .halves : .interleaved }

    /// Whether the family ships an original (non-HF) checkpoint in Meta's names: LLaMA's consolidated.NN.pth,
    /// Mistral's consolidated files with params.json. Qwen2 is published in Hugging Face's layout only.
    public var hasMetaLayout: Bool { self != .qwen2 }

    /// The tensors every layer and model of the family holds; `output` may be absent (tied embeddings).
    public var roles: [TensorRole] {
        let base: [TensorRole] = [.tokenEmbedding, .attnNorm, .attnQ, .attnK, .attnV, .attnOutput, .ffnNorm, .ffnGate, .ffnUp, .ffnDown,
                                  .outputNorm, .output]
        return self == .qwen2 ? base + [.attnQBias, .attnKBias, .attnVBias] : base
    }

    public func has(_ role: TensorRole) -> Bool { roles.contains(role) }

    /// The family of a GGUF's general.architecture; nil for one billa does not run.
    public static func fromGGUF(architecture: String) -> ModelFamily? {
        switch architecture {
        case "llama": return .llama
        case "qwen2": return .qwen2
        default: return nil
        }
    }

    static var supportedModelTypes: String { allCases.map(\.rawValue).joined(separator: ", ") }
}

/// The architecture settings a family reads from config.json / params.json beyond LLaMA's numbers, checked so that
/// a setting billa would not honour is refused by name instead of silently giving other outputs.
struct FamilyConfig {
    var family: ModelFamily = .llama
    var slidingWindow: Int? = nil
    var slidingWindowFirstLayer: Int? = nil

    /// config.json: `model_type` picks the family (absent: LLaMA, as the first LLaMA conversions wrote none).
    /// transformers' defaults apply to absent keys: MistralConfig's sliding_window is 4096, Qwen2Config's
    /// use_sliding_window false (then no layer slides), max_window_layers 28.
    static func fromHF(_ config: [String: Any], file: String) throws -> FamilyConfig {
        var c = FamilyConfig()
        if let type = config["model_type"] {
            guard let name = type as? String, let f = ModelFamily(rawValue: name) else {
                throw BillaError(.unsupported, file: file, "model_type '\(type)' is not supported (billa runs and converts \(ModelFamily.supportedModelTypes))",
                                 remedy: "use a checkpoint of a supported family; loading another architecture as LLaMA would give wrong outputs")
            }
            c.family = f
        }
        let file = file
        func refuse(_ key: String, _ value: Any, _ why: String) -> BillaError {
            BillaError(.unsupported, file: file, "\(key) = \(value) is not supported for model_type \(c.family.rawValue): \(why)",
                       remedy: "billa would compute other outputs than transformers; use a checkpoint without it")
        }
        if let act = config["hidden_act"] as? String, act != "silu" {
            throw refuse("hidden_act", act, "the MLP is SwiGLU with SiLU")
        }
        if c.family == .llama || c.family == .mistral {
            if (config["attention_bias"] as? Bool) == true { throw refuse("attention_bias", true, "attention projections without biases only") }
        }
        if (config["mlp_bias"] as? Bool) == true { throw refuse("mlp_bias", true, "MLP projections without biases only") }
        if let hd = config.int("head_dim"), let dim = config.int("hidden_size"), let heads = config.int("num_attention_heads"),
           heads > 0, hd != dim / heads {
            throw refuse("head_dim", hd, "head_dim must be hidden_size / num_attention_heads (\(dim / heads))")
        }
        switch c.family {
        case .llama:
            break
        case .mistral:
            if config.keys.contains("sliding_window") {
                c.slidingWindow = try window(config["sliding_window"], file: file)
            } else {
                c.slidingWindow = 4096
            }
        case .qwen2:
            // Qwen2Config: the window applies only with use_sliding_window, and then to the layers layer_types marks
            // "sliding_attention" (transformers 5 writes the list; without it, the layers from max_window_layers on).
            if (config["use_sliding_window"] as? Bool) == true,
               let w = config.keys.contains("sliding_window") ? try window(config["sliding_window"], file: file) : 4096 {
                c.slidingWindow = w
                if let types = config["layer_types"] as? [String] {
                    let first = types.firstIndex(of: "sliding_attention") ?? types.count
                    guard types[first...].allSatisfy({ $0 == "sliding_attention" }),
                          types[..<first].allSatisfy({ $0 == "full_attention" }) else {
                        throw refuse("layer_types", types, "billa runs full-attention layers followed by sliding ones only")
                    }
                    c.slidingWindowFirstLayer = first
                } else {
                    c.slidingWindowFirstLayer = config.int("max_window_layers") ?? 28
                }
            }
        }
        return c
    }

    /// Meta's params.json: Mistral's originals carry `sliding_window` (LLaMA's never do, and billa writes it for
    /// Mistral only, null when there is no window).
    static func fromMeta(_ params: [String: Any], file: String) throws -> FamilyConfig {
        var c = FamilyConfig()
        if params.keys.contains("sliding_window") {
            c.family = .mistral
            c.slidingWindow = try window(params["sliding_window"], file: file)
        }
        if let hd = params.int("head_dim"), let dim = params.int("dim"), let heads = params.int("n_heads"), heads > 0, hd != dim / heads {
            throw BillaError(.unsupported, file: file, "head_dim = \(hd) is not dim / n_heads (\(dim / heads))",
                             remedy: "billa runs models whose head size is dim / n_heads")
        }
        return c
    }

    private static func window(_ v: Any?, file: String) throws -> Int? {
        if v == nil || v is NSNull { return nil }
        guard let n = v as? Int, n > 0 else {
            throw BillaError(.invalidHeader, file: file, "sliding_window is \(v!), not a positive integer or null",
                             remedy: "restore the config from the release")
        }
        return n
    }
}
