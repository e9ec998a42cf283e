/// What every conversion checks before it plans a single output: that the weights are the model the config
/// describes. Without it a wrong n_heads permutes wq/wk into garbage, a shard from another model is concatenated
/// into tensors of impossible shapes, and a config or tokenizer of another vocabulary is written beside the
/// weights, all with exit status 0, to be found only after deployment.
public enum ModelCheck {
    /// Every LLaMA tensor has the shape params.json / config.json implies (Meta shards as pieces of it), and the
    /// vocabulary sizes cannot break loading: config vocab_size equals the embedding rows, and the tokenizer has no
    /// more pieces than the embedding has rows.
    public static func validate(_ release: Release) throws {
        try LlamaWeights.validateShapes(release)   // every matrix and norm against the architecture; reads no matrix
        let v = release.vocab
        if let c = v.config, let e = v.embedding, c != e {
            throw BillaError(.shapeMismatch, file: release.path, tensor: "embedding",
                             "config vocab_size is \(c) but the embedding has \(e) rows",
                             remedy: "the config belongs to another vocabulary; set vocab_size to \(e), or resize the model (billa vocab resize)")
        }
        if let t = v.tokenizer, let e = v.embedding, t > e {
            throw BillaError(.shapeMismatch, file: release.tokenizerPath ?? release.path, tensor: "embedding",
                             "the tokenizer has \(t) pieces but the embedding only \(e) rows: ids past \(e - 1) have no vector",
                             remedy: "pair the weights with their own tokenizer.model, or resize the model to this one (billa vocab resize)")
        }
    }

    /// Meta's model parallelism gives each shard whole heads: n_heads and n_kv_heads must both divide by the count.
    public static func validateSplit(_ p: ModelParameters, shards n: Int, file: String) throws {
        guard n >= 1, p.nHeads % n == 0, p.nKVHeads % n == 0 else {
            throw BillaError(.invalidArgument, file: file,
                             "\(n) model-parallel shards would split heads (n_heads \(p.nHeads), n_kv_heads \(p.nKVHeads)); each shard needs whole heads",
                             remedy: "choose a shard count that divides n_kv_heads (\(p.nKVHeads)), e.g. 1")
        }
    }
}
