/// Renaming into llama.cpp's GGUF names, over the one name table (`TensorName.table`, convert_hf_to_gguf's
/// MODEL_TENSOR mapping).
enum GGUFNames {
    static func gguf(fromMeta name: String) -> String? { TensorName.convert(name, from: .meta, to: .gguf)?.name }
    static func gguf(fromHF name: String) -> String? { TensorName.convert(name, from: .hf, to: .gguf)?.name }
}

/// The metadata keys billa writes, as gguf-py's Keys spell them.
enum GGUFKeys {
    static let architecture = "general.architecture"
    static let name = "general.name"
    static let fileType = "general.file_type"
    static let quantizationVersion = "general.quantization_version"
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

/// The keys a GGUF model spells with its architecture's name ("llama.context_length", "qwen2.context_length").
struct GGUFArchKeys {
    let arch: String
    init(_ arch: String) { self.arch = arch }
    var contextLength: String { "\(arch).context_length" }
    var embeddingLength: String { "\(arch).embedding_length" }
    var blockCount: String { "\(arch).block_count" }
    var feedForwardLength: String { "\(arch).feed_forward_length" }
    var ropeDimensionCount: String { "\(arch).rope.dimension_count" }
    var headCount: String { "\(arch).attention.head_count" }
    var headCountKV: String { "\(arch).attention.head_count_kv" }
    var rmsEpsilon: String { "\(arch).attention.layer_norm_rms_epsilon" }
    var ropeFreqBase: String { "\(arch).rope.freq_base" }
    var vocabSize: String { "\(arch).vocab_size" }
}
