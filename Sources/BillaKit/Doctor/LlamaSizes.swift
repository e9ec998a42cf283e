/// The published LLaMA shapes, to name a model's size from its params.json / config.json: Meta's params.json of each
/// release and the model-parallel counts of its download.sh (github.com/meta-llama/llama, v1 and v2 branches:
/// 7B 1, 13B 2, 30B 4, 65B 8 files; Llama-2 7B 1, 13B 2, 70B 8). norm_eps tells the generations apart (1e-6 vs 1e-5).
struct LlamaSize: Sendable {
    let name: String
    /// "7B": the placeholder size in next-step commands (LLAMA-7B-HF).
    let tag: String
    let dim: Int
    let layers: Int
    let kvHeads: Int
    let normEps: Double
    let shards: Int

    static let all: [LlamaSize] = [
        LlamaSize(name: "LLaMA-7B", tag: "7B", dim: 4096, layers: 32, kvHeads: 32, normEps: 1e-6, shards: 1),
        LlamaSize(name: "LLaMA-13B", tag: "13B", dim: 5120, layers: 40, kvHeads: 40, normEps: 1e-6, shards: 2),
        LlamaSize(name: "LLaMA-33B (30B)", tag: "33B", dim: 6656, layers: 60, kvHeads: 52, normEps: 1e-6, shards: 4),
        LlamaSize(name: "LLaMA-65B", tag: "65B", dim: 8192, layers: 80, kvHeads: 64, normEps: 1e-6, shards: 8),
        LlamaSize(name: "Llama-2-7B", tag: "2-7B", dim: 4096, layers: 32, kvHeads: 32, normEps: 1e-5, shards: 1),
        LlamaSize(name: "Llama-2-13B", tag: "2-13B", dim: 5120, layers: 40, kvHeads: 40, normEps: 1e-5, shards: 2),
        LlamaSize(name: "Llama-2-70B", tag: "2-70B", dim: 8192, layers: 80, kvHeads: 8, normEps: 1e-5, shards: 8),
    ]

    /// The size with this shape; with `normEps` the generation too, else the first (LLaMA-1) of the same shape.
    static func match(dim: Int, layers: Int?, kvHeads: Int?, normEps: Double?) -> LlamaSize? {
        let shaped = all.filter { $0.dim == dim && (layers == nil || $0.layers == layers) && (kvHeads == nil || $0.kvHeads == kvHeads) }
        if let eps = normEps, let exact = shaped.first(where: { abs($0.normEps - eps) < $0.normEps / 10 }) { return exact }
        return shaped.first
    }

    /// The smallest size with this hidden width, for adapters and files that show only one dimension.
    static func byWidth(_ dim: Int) -> LlamaSize? { all.first { $0.dim == dim } }
}
