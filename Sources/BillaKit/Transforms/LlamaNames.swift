/// The one table between Meta's and Hugging Face's LLaMA tensor names, in the order each layout writes them, and
/// which projections carry rotary embeddings (and so are permuted between Meta's interleaved and HF's half-split
/// rotary layout, as transformers' convert_llama_weights_to_hf.py does).
public enum LlamaNames {
    public enum Rotary: Sendable { case none, queries, keys }

    /// (Meta suffix, HF suffix, rotary) for per-layer tensors, in transformers' module order.
    static let layerTable: [(meta: String, hf: String, rotary: Rotary)] = [
        ("attention.wq.weight", "self_attn.q_proj.weight", .queries),
        ("attention.wk.weight", "self_attn.k_proj.weight", .keys),
        ("attention.wv.weight", "self_attn.v_proj.weight", .none),
        ("attention.wo.weight", "self_attn.o_proj.weight", .none),
        ("feed_forward.w1.weight", "mlp.gate_proj.weight", .none),
        ("feed_forward.w3.weight", "mlp.up_proj.weight", .none),
        ("feed_forward.w2.weight", "mlp.down_proj.weight", .none),
        ("attention_norm.weight", "input_layernorm.weight", .none),
        ("ffn_norm.weight", "post_attention_layernorm.weight", .none),
    ]
    /// Meta's consolidated files order a layer's tensors like this.
    static let metaLayerOrder = ["attention.wq.weight", "attention.wk.weight", "attention.wv.weight", "attention.wo.weight",
                                 "feed_forward.w1.weight", "feed_forward.w2.weight", "feed_forward.w3.weight",
                                 "attention_norm.weight", "ffn_norm.weight"]
    static let globals: [(meta: String, hf: String)] = [
        ("tok_embeddings.weight", "model.embed_tokens.weight"),
        ("norm.weight", "model.norm.weight"),
        ("output.weight", "lm_head.weight"),
    ]
    /// Buffers recomputed from the config, never converted.
    static let metaBuffers: Set<String> = ["rope.freqs"]
    static let hfBufferSuffix = "rotary_emb.inv_freq"

    public static func hf(fromMeta name: String) -> (name: String, rotary: Rotary)? {
        if let g = globals.first(where: { $0.meta == name }) { return (g.hf, .none) }
        guard let (layer, rest) = split(name, prefix: "layers.") else { return nil }
        guard let e = layerTable.first(where: { $0.meta == rest }) else { return nil }
        return ("model.layers.\(layer).\(e.hf)", e.rotary)
    }

    public static func meta(fromHF name: String) -> (name: String, rotary: Rotary)? {
        if let g = globals.first(where: { $0.hf == name }) { return (g.meta, .none) }
        guard let (layer, rest) = split(name, prefix: "model.layers.") else { return nil }
        guard let e = layerTable.first(where: { $0.hf == rest }) else { return nil }
        return ("layers.\(layer).\(e.meta)", e.rotary)
    }

    /// Sort key putting names in the writing order of a layout: embeddings, layers in order, final norm, head.
    static func hfOrder(_ name: String) -> (Int, Int, Int) {
        if name == "model.embed_tokens.weight" { return (0, 0, 0) }
        if name == "model.norm.weight" { return (2, 0, 0) }
        if name == "lm_head.weight" { return (3, 0, 0) }
        if let (layer, rest) = split(name, prefix: "model.layers."), let i = layerTable.firstIndex(where: { $0.hf == rest }) {
            return (1, layer, i)
        }
        return (4, 0, 0)
    }

    static func metaOrder(_ name: String) -> (Int, Int, Int) {
        switch name {
        case "tok_embeddings.weight": return (0, 0, 0)
        case "norm.weight": return (0, 0, 1)
        case "output.weight": return (0, 0, 2)
        case "rope.freqs": return (2, 0, 0)
        default:
            if let (layer, rest) = split(name, prefix: "layers."), let i = metaLayerOrder.firstIndex(of: rest) { return (1, layer, i) }
            return (3, 0, 0)
        }
    }

    static func split(_ name: String, prefix: String) -> (Int, String)? {
        guard name.hasPrefix(prefix) else { return nil }
        let tail = name.dropFirst(prefix.count)
        guard let dot = tail.firstIndex(of: "."), let layer = Int(tail[..<dot]) else { return nil }
        return (layer, String(tail[tail.index(after: dot)...]))
    }

    /// Row order turning Meta's interleaved rotary rows into HF's: within each head, HF row j*(hd/2)+i is Meta row
    /// 2i+j (transformers' `w.view(heads, hd/2, 2, dim).transpose(1, 2)`).
    public static func metaToHFRows(heads: Int, rows: Int) -> [Int] {
        let hd = rows / heads, half = hd / 2
        var order = [Int](repeating: 0, count: rows)
        for h in 0..<heads { for j in 0..<2 { for i in 0..<half { order[h * hd + j * half + i] = h * hd + 2 * i + j } } }
        return order
    }

    /// The inverse of `metaToHFRows`.
    public static func hfToMetaRows(heads: Int, rows: Int) -> [Int] {
        let forward = metaToHFRows(heads: heads, rows: rows)
        var inverse = [Int](repeating: 0, count: rows)
        for (o, i) in forward.enumerated() { inverse[i] = o }
        return inverse
    }
}
