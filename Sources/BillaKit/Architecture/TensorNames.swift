/// What a tensor is in a LLaMA-family model, whatever a layout calls it.
public enum TensorRole: String, Sendable, CaseIterable {
    case tokenEmbedding, outputNorm, output
    case attnNorm, attnQ, attnQBias, attnK, attnKBias, attnV, attnVBias, attnOutput
    case ffnNorm, ffnGate, ffnUp, ffnDown
}

/// The one table of tensor names: every tensor a supported family can hold, with its name in Meta's original
/// layout, in Hugging Face's and in GGUF's (gguf-py's TENSOR_NAMES for LLM_ARCH_LLAMA / LLM_ARCH_QWEN2), and which
/// rotary projection it is (its rows are permuted between Meta's interleaved and HF's half-split rotary layout, as
/// transformers' convert_llama_weights_to_hf.py and convert_hf_to_gguf.py's LlamaModel.permute do). Which roles a
/// family has is `ModelFamily`'s business; the names are the same in every family that has them.
public struct TensorName: Sendable {
    public let role: TensorRole
    /// Per-layer names are suffixes after "layers.N." / "model.layers.N." / "blk.N."; nil: Meta's layout has none.
    public let meta: String?
    public let hf: String
    public let gguf: String
    public let rotary: LlamaNames.Rotary
    public let perLayer: Bool

    /// In transformers' module order (the order save_pretrained writes): a projection's bias follows its weight.
    public static let table: [TensorName] = [
        .init(role: .tokenEmbedding, meta: "tok_embeddings.weight", hf: "model.embed_tokens.weight", gguf: "token_embd.weight", rotary: .none, perLayer: false),
        .init(role: .attnQ, meta: "attention.wq.weight", hf: "self_attn.q_proj.weight", gguf: "attn_q.weight", rotary: .queries, perLayer: true),
        .init(role: .attnQBias, meta: nil, hf: "self_attn.q_proj.bias", gguf: "attn_q.bias", rotary: .none, perLayer: true),
        .init(role: .attnK, meta: "attention.wk.weight", hf: "self_attn.k_proj.weight", gguf: "attn_k.weight", rotary: .keys, perLayer: true),
        .init(role: .attnKBias, meta: nil, hf: "self_attn.k_proj.bias", gguf: "attn_k.bias", rotary: .none, perLayer: true),
        .init(role: .attnV, meta: "attention.wv.weight", hf: "self_attn.v_proj.weight", gguf: "attn_v.weight", rotary: .none, perLayer: true),
        .init(role: .attnVBias, meta: nil, hf: "self_attn.v_proj.bias", gguf: "attn_v.bias", rotary: .none, perLayer: true),
        .init(role: .attnOutput, meta: "attention.wo.weight", hf: "self_attn.o_proj.weight", gguf: "attn_output.weight", rotary: .none, perLayer: true),
        .init(role: .ffnGate, meta: "feed_forward.w1.weight", hf: "mlp.gate_proj.weight", gguf: "ffn_gate.weight", rotary: .none, perLayer: true),
        .init(role: .ffnUp, meta: "feed_forward.w3.weight", hf: "mlp.up_proj.weight", gguf: "ffn_up.weight", rotary: .none, perLayer: true),
        .init(role: .ffnDown, meta: "feed_forward.w2.weight", hf: "mlp.down_proj.weight", gguf: "ffn_down.weight", rotary: .none, perLayer: true),
        .init(role: .attnNorm, meta: "attention_norm.weight", hf: "input_layernorm.weight", gguf: "attn_norm.weight", rotary: .none, perLayer: true),
        .init(role: .ffnNorm, meta: "ffn_norm.weight", hf: "post_attention_layernorm.weight", gguf: "ffn_norm.weight", rotary: .none, perLayer: true),
        .init(role: .outputNorm, meta: "norm.weight", hf: "model.norm.weight", gguf: "output_norm.weight", rotary: .none, perLayer: false),
        .init(role: .output, meta: "output.weight", hf: "lm_head.weight", gguf: "output.weight", rotary: .none, perLayer: false),
    ]

    /// Meta's consolidated files order a layer's tensors like this (not transformers' module order).
    static let metaLayerOrder: [TensorRole] = [.attnQ, .attnK, .attnV, .attnOutput, .ffnGate, .ffnDown, .ffnUp, .attnNorm, .ffnNorm]

    static let byRole: [TensorRole: TensorName] = Dictionary(uniqueKeysWithValues: table.map { ($0.role, $0) })

    public static func of(_ role: TensorRole) -> TensorName { byRole[role]! }

    /// The three layouts' prefixes of a layer's tensors.
    static func layerPrefix(_ layout: WeightNaming, _ i: Int) -> String {
        switch layout {
        case .meta: return "layers.\(i)."
        case .hf: return "model.layers.\(i)."
        case .gguf: return "blk.\(i)."
        }
    }

    /// The name in `layout` (layer `i` for per-layer roles); nil when the layout has no such tensor.
    public func name(in layout: WeightNaming, layer i: Int = 0) -> String? {
        let base: String?
        switch layout {
        case .meta: base = meta
        case .hf: base = hf
        case .gguf: base = gguf
        }
        guard let base else { return nil }
        return perLayer ? Self.layerPrefix(layout, i) + base : base
    }

    /// The role and layer of a full tensor name in `layout`.
    public static func parse(_ name: String, in layout: WeightNaming) -> (entry: TensorName, layer: Int?)? {
        for e in table where !e.perLayer {
            if e.name(in: layout) == name { return (e, nil) }
        }
        let prefix = layerPrefix(layout, 0).dropLast(2)   // "layers." / "model.layers." / "blk."
        guard let (layer, rest) = LlamaNames.split(name, prefix: String(prefix)) else { return nil }
        for e in table where e.perLayer {
            let suffix: String? = layout == .meta ? e.meta : layout == .hf ? e.hf : e.gguf
            if suffix == rest { return (e, layer) }
        }
        return nil
    }

    /// Renames between layouts: nil when the target layout has no name for it or the source name is unknown.
    public static func convert(_ name: String, from a: WeightNaming, to b: WeightNaming) -> (name: String, entry: TensorName)? {
        guard let (e, layer) = parse(name, in: a), let n = e.name(in: b, layer: layer ?? 0) else { return nil }
        return (n, e)
    }
}
