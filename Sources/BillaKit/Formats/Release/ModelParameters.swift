/// The architecture numbers of a LLaMA-family model, whichever layout they were read from.
public struct ModelParameters: Codable, Sendable, Equatable {
    public var dim: Int
    public var nLayers: Int
    public var nHeads: Int
    public var nKVHeads: Int
    public var ffnDim: Int?
    /// Rows of the embedding: params.json says -1, so this always comes from the tensor.
    public var vocabSize: Int?
    public var normEps: Double
    public var ropeTheta: Double
    /// nil: the plain rotary embedding. Carried by every conversion and pack, compared by `billa verify`.
    public var ropeScaling: RopeScaling? = nil
    /// nil: LLaMA (and every file written before families existed).
    public var family: ModelFamily? = nil
    /// Attention sees at most this many positions (the query's own included), as transformers' sliding-window
    /// mask has it; nil: all of them.
    public var slidingWindow: Int? = nil
    /// Layers before this one attend to everything (Qwen2's max_window_layers); nil: every layer slides.
    public var slidingWindowFirstLayer: Int? = nil

    // What conversions carry besides the architecture (compared by nothing, kept by everything):
    /// config.json's max_position_embeddings, a GGUF's context_length, billa's extra key in params.json.
    public var contextLength: Int? = nil
    public var bosTokenID: Int? = nil
    /// config.json's eos_token_id: one id, or several (Llama 3.1 instruct: 128001, 128008, 128009).
    public var eosTokenIDs: [Int]? = nil
    public var padTokenID: Int? = nil
    /// config.json's tie_word_embeddings (absent: false, transformers' LlamaConfig default).
    public var tieWordEmbeddings: Bool? = nil

    public var headDim: Int { nHeads > 0 ? dim / nHeads : 0 }
    public var modelFamily: ModelFamily { family ?? .llama }

    /// The window layer `l` attends through, or nil for full attention.
    public func window(layer l: Int) -> Int? {
        guard let w = slidingWindow else { return nil }
        return l >= (slidingWindowFirstLayer ?? 0) ? w : nil
    }

    enum CodingKeys: String, CodingKey {
        case dim, nLayers = "n_layers", nHeads = "n_heads", nKVHeads = "n_kv_heads", ffnDim = "ffn_dim"
        case vocabSize = "vocab_size", normEps = "norm_eps", ropeTheta = "rope_theta"
        case ropeScaling = "rope_scaling", family, slidingWindow = "sliding_window"
        case slidingWindowFirstLayer = "sliding_window_first_layer"
        case contextLength = "context_length", bosTokenID = "bos_token_id", eosTokenIDs = "eos_token_id"
        case padTokenID = "pad_token_id", tieWordEmbeddings = "tie_word_embeddings"
    }

    /// Reads the carried fields from config.json, or from the same keys billa adds to params.json.
    mutating func readCarried(_ c: [String: Any]) {
        contextLength = c.int("max_position_embeddings")
        bosTokenID = c.int("bos_token_id")
        if let e = c.int("eos_token_id") { eosTokenIDs = [e] } else if let e = c["eos_token_id"] as? [Int] { eosTokenIDs = e }
        padTokenID = c.int("pad_token_id")
        tieWordEmbeddings = c["tie_word_embeddings"] as? Bool
    }

    mutating func apply(_ c: FamilyConfig) {
        family = c.family == .llama ? nil : c.family
        slidingWindow = c.slidingWindow
        slidingWindowFirstLayer = c.slidingWindowFirstLayer
    }
}

/// The four vocabulary sizes that must agree before a model can be trusted, and whether they do.
public struct VocabCheck: Codable, Sendable, Equatable {
    public var embedding: Int?
    public var lmHead: Int?
    public var config: Int?
    public var tokenizer: Int?

    public var consistent: Bool {
        let known = [embedding, lmHead, config, tokenizer].compactMap { $0 }
        return Set(known).count <= 1
    }

    enum CodingKeys: String, CodingKey { case embedding, lmHead = "lm_head", config, tokenizer, consistent }

    public init(embedding: Int? = nil, lmHead: Int? = nil, config: Int? = nil, tokenizer: Int? = nil) {
        self.embedding = embedding
        self.lmHead = lmHead
        self.config = config
        self.tokenizer = tokenizer
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        embedding = try c.decodeIfPresent(Int.self, forKey: .embedding)
        lmHead = try c.decodeIfPresent(Int.self, forKey: .lmHead)
        config = try c.decodeIfPresent(Int.self, forKey: .config)
        tokenizer = try c.decodeIfPresent(Int.self, forKey: .tokenizer)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(embedding, forKey: .embedding)
        try c.encode(lmHead, forKey: .lmHead)
        try c.encode(config, forKey: .config)
        try c.encode(tokenizer, forKey: .tokenizer)
        try c.encode(consistent, forKey: .consistent)
    }

    /// A sentence a person can act on, or nil when everything agrees.
    public var warning: String? {
        guard !consistent else { return nil }
        func show(_ v: Int?) -> String { v.map(String.init) ?? "absent" }
        return "vocabulary sizes disagree: embedding \(show(embedding)), lm_head \(show(lmHead)), config \(show(config)), tokenizer \(show(tokenizer)). "
            + "The tokenizer must match the embedding rows (extended Chinese vocabularies have 46943, 49953 or 49954 pieces; LLaMA has 32000): "
            + "pair the weights with the tokenizer they were trained with, or resize the embedding to the tokenizer."
    }
}
