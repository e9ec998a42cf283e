/// Renaming between Meta's and Hugging Face's layouts, over the one name table (`TensorName.table`), and the
/// rotary row permutation between Meta's interleaved and HF's half-split layout (transformers'
/// convert_llama_weights_to_hf.py).
public enum LlamaNames {
    public enum Rotary: Sendable { case none, queries, keys }

    /// Buffers recomputed from the config, never converted.
    static let metaBuffers: Set<String> = ["rope.freqs"]
    static let hfBufferSuffix = "rotary_emb.inv_freq"

    public static func hf(fromMeta name: String) -> (name: String, rotary: Rotary)? {
        TensorName.convert(name, from: .meta, to: .hf).map { ($0.name, $0.entry.rotary) }
    }

    public static func meta(fromHF name: String) -> (name: String, rotary: Rotary)? {
        TensorName.convert(name, from: .hf, to: .meta).map { ($0.name, $0.entry.rotary) }
    }

    /// Sort key putting names in the writing order of a layout: embeddings, layers in order (transformers' module
    /// order), final norm, head.
    static func hfOrder(_ name: String) -> (Int, Int, Int) {
        guard let (e, layer) = TensorName.parse(name, in: .hf) else { return (4, 0, 0) }
        switch e.role {
        case .tokenEmbedding: return (0, 0, 0)
        case .outputNorm: return (2, 0, 0)
        case .output: return (3, 0, 0)
        default: return (1, layer ?? 0, TensorName.table.firstIndex { $0.role == e.role } ?? 0)
        }
    }

    static func metaOrder(_ name: String) -> (Int, Int, Int) {
        if name == "rope.freqs" { return (2, 0, 0) }
        guard let (e, layer) = TensorName.parse(name, in: .meta) else { return (3, 0, 0) }
        switch e.role {
        case .tokenEmbedding: return (0, 0, 0)
        case .outputNorm: return (0, 0, 1)
        case .output: return (0, 0, 2)
        default: return (1, layer ?? 0, TensorName.metaLayerOrder.firstIndex(of: e.role) ?? 99)
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
