/// The one table between Meta's LLaMA tensor names and llama.cpp's GGUF names (convert_hf_to_gguf's
/// MODEL_TENSOR mapping for LLM_ARCH_LLAMA). GGUF keeps Meta's interleaved rotary row order for wq/wk.
enum GGUFNames {
    static let globals: [String: String] = [
        "tok_embeddings.weight": "token_embd.weight",
        "norm.weight": "output_norm.weight",
        "output.weight": "output.weight",
    ]
    static let layer: [String: String] = [
        "attention.wq.weight": "attn_q.weight",
        "attention.wk.weight": "attn_k.weight",
        "attention.wv.weight": "attn_v.weight",
        "attention.wo.weight": "attn_output.weight",
        "feed_forward.w1.weight": "ffn_gate.weight",
        "feed_forward.w2.weight": "ffn_down.weight",
        "feed_forward.w3.weight": "ffn_up.weight",
        "attention_norm.weight": "attn_norm.weight",
        "ffn_norm.weight": "ffn_norm.weight",
    ]

    static func gguf(fromMeta name: String) -> String? {
        if let g = globals[name] { return g }
        guard let (n, rest) = LlamaNames.split(name, prefix: "layers."), let s = layer[rest] else { return nil }
        return "blk.\(n).\(s)"
    }
}

/// The metadata keys billa writes for a LLaMA model, as gguf-py's Keys spell them.
enum GGUFKeys {
    static let architecture = "general.architecture"
    static let name = "general.name"
    static let fileType = "general.file_type"
    static let quantizationVersion = "general.quantization_version"
    static let contextLength = "llama.context_length"
    static let embeddingLength = "llama.embedding_length"
    static let blockCount = "llama.block_count"
    static let feedForwardLength = "llama.feed_forward_length"
    static let ropeDimensionCount = "llama.rope.dimension_count"
    static let headCount = "llama.attention.head_count"
    static let headCountKV = "llama.attention.head_count_kv"
    static let rmsEpsilon = "llama.attention.layer_norm_rms_epsilon"
    static let ropeFreqBase = "llama.rope.freq_base"
    static let vocabSize = "llama.vocab_size"
    static let tokenizerModel = "tokenizer.ggml.model"
    static let tokens = "tokenizer.ggml.tokens"
    static let scores = "tokenizer.ggml.scores"
    static let tokenTypes = "tokenizer.ggml.token_type"
    static let bos = "tokenizer.ggml.bos_token_id"
    static let eos = "tokenizer.ggml.eos_token_id"
    static let unk = "tokenizer.ggml.unknown_token_id"
    static let pad = "tokenizer.ggml.padding_token_id"
    static let addBOS = "tokenizer.ggml.add_bos_token"
    static let addEOS = "tokenizer.ggml.add_eos_token"
}
