/// How Meta's model-parallel shards split each tensor (fairscale's Column/RowParallelLinear and
/// ParallelEmbedding): one table, used to merge, to count parameters and later to reshard.
public enum MetaShardRule: Equatable, Sendable {
    /// Split along this axis; the whole tensor is the concatenation of the shards' pieces.
    case concat(axis: Int)
    /// The same in every shard.
    case replicated
}

public enum MetaShardRules {
    static let table: [(suffix: String, rule: MetaShardRule)] = [
        ("tok_embeddings.weight", .concat(axis: 1)),   // ParallelEmbedding splits the embedding dim
        ("output.weight", .concat(axis: 0)),           // ColumnParallelLinear
        ("attention.wq.weight", .concat(axis: 0)),
        ("attention.wk.weight", .concat(axis: 0)),
        ("attention.wv.weight", .concat(axis: 0)),
        ("attention.wo.weight", .concat(axis: 1)),     // RowParallelLinear
        ("feed_forward.w1.weight", .concat(axis: 0)),
        ("feed_forward.w3.weight", .concat(axis: 0)),
        ("feed_forward.w2.weight", .concat(axis: 1)),
        ("norm.weight", .replicated),                  // norm, attention_norm, ffn_norm
        ("rope.freqs", .replicated),
    ]

    public static func rule(for name: String) -> MetaShardRule? {
        table.first { name == $0.suffix || name.hasSuffix("." + $0.suffix) || name.hasSuffix("_" + $0.suffix) }?.rule
    }

    /// Buffers that are not model parameters (recomputed from params.json by the reference code).
    public static func isBuffer(_ name: String) -> Bool { name == "rope.freqs" }
}
