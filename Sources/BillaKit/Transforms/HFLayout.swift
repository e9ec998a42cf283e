import Foundation

/// The files of a Hugging Face LLaMA directory as transformers writes them: weight shards split by
/// huggingface_hub's rule, the index json, config.json, generation_config.json and the tokenizer's json files.
public enum HFLayout {
    /// huggingface_hub's `split_state_dict_into_shards`: in state-dict order, a tensor larger than the limit gets
    /// a shard of its own, otherwise a new shard starts when the next tensor would cross the limit.
    public static func split(_ tensors: [TensorPlan], maxShardSize: Int) -> [[TensorPlan]] {
        var shards = [[TensorPlan]]()
        var current = [TensorPlan]()
        var size = 0
        for t in tensors {
            if t.byteCount > maxShardSize { shards.append([t]); continue }
            if size + t.byteCount > maxShardSize, !current.isEmpty {
                shards.append(current)
                current = []
                size = 0
            }
            current.append(t)
            size += t.byteCount
        }
        if !current.isEmpty { shards.append(current) }
        return shards
    }

    /// Shard files plus, when there is more than one, the index.
    public static func weightFiles(_ tensors: [TensorPlan], format: ConvertOptions.WeightFormat, maxShardSize: Int) -> [PlannedFile] {
        let shards = split(tensors, maxShardSize: maxShardSize)
        let (stem, ext) = format == .safetensors ? ("model", "safetensors") : ("pytorch_model", "bin")
        func content(_ t: [TensorPlan]) -> PlannedFile.Content {
            format == .safetensors ? .safetensors(t, metadata: ["format": "pt"]) : .torch(t)
        }
        if shards.count <= 1 { return [PlannedFile(name: "\(stem).\(ext)", content: content(shards.first ?? []))] }
        var files = [PlannedFile]()
        var map = [(String, Any?)]()
        for (i, s) in shards.enumerated() {
            let name = String(format: "%@-%05d-of-%05d.%@", stem, i + 1, shards.count, ext)
            files.append(PlannedFile(name: name, content: content(s)))
            for t in s { map.append((t.name, name)) }
        }
        files.append(PlannedFile(name: "\(stem).\(ext).index.json", content: .text(index(tensors, map: map, format: format))))
        return files
    }

    public static func index(_ tensors: [TensorPlan], map: [(String, Any?)], format: ConvertOptions.WeightFormat) -> String {
        var metadata: [(String, Any?)] = [("total_size", tensors.reduce(0) { $0 + $1.byteCount })]
        if format == .safetensors { metadata.append(("total_parameters", tensors.reduce(0) { $0 + $1.shape.reduce(1, *) })) }
        let root = PythonJSON.Object([("metadata", PythonJSON.Object(metadata)), ("weight_map", PythonJSON.Object(map))])
        return PythonJSON.indented(root) + "\n"
    }

    static func torchDTypeName(_ d: DType) -> String {
        switch d {
        case .f32: return "float32"
        case .bf16: return "bfloat16"
        default: return "float16"
        }
    }

    /// config.json for LlamaForCausalLM with the keys transformers 5 writes (rope theta nested in rope_parameters).
    /// A theta other than 10000 is also written at the top level, where transformers 4 reads it (5 accepts and
    /// folds it): without it transformers 4 would silently run a long-context model with LLaMA 1's rotary base.
    /// A rope scaling is written as transformers 5 writes it (`rope_parameters` with its type and every parameter)
    /// and again as transformers 4's `rope_scaling`, which 5 reads first; dynamic NTK's `max_position_embeddings`
    /// is the scaling's own, since it decides where the base starts to grow.
    /// bos/eos/pad ids and tie_word_embeddings are the source's when it recorded them (LLaMA's 1 and 2 otherwise).
    public static func config(_ p: ModelParameters, vocab: Int, ffn: Int, dtype: DType, maxPositions: Int) -> String {
        let scaled = p.ropeScaling?.hfPairs(theta: p.ropeTheta)
        let maxPositions = p.ropeScaling?.type == .dynamic ? p.ropeScaling?.originalContextLength ?? maxPositions : maxPositions
        let family = p.modelFamily
        var o = PythonJSON.Object([
            ("architectures", [family.hfArchitecture] as [Any?]),
            ("attention_bias", false), ("attention_dropout", 0.0), ("bos_token_id", p.bosTokenID ?? 1),
            ("dtype", torchDTypeName(dtype)), ("eos_token_id", eos(p)), ("head_dim", p.headDim), ("hidden_act", "silu"),
            ("hidden_size", p.dim), ("initializer_range", 0.02), ("intermediate_size", ffn),
            ("max_position_embeddings", maxPositions), ("mlp_bias", false), ("model_type", family.modelType),
            ("num_attention_heads", p.nHeads), ("num_hidden_layers", p.nLayers), ("num_key_value_heads", p.nKVHeads),
            ("pad_token_id", p.padTokenID), ("pretraining_tp", 1), ("rms_norm_eps", p.normEps),
            ("rope_parameters", PythonJSON.Object(scaled ?? [("rope_theta", p.ropeTheta), ("rope_type", "default")])),
            ("tie_word_embeddings", p.tieWordEmbeddings ?? false), ("use_cache", true), ("vocab_size", vocab),
        ])
        if family != .llama {
            // LlamaConfig's own keys; MistralConfig has none of them.
            o.pairs.removeAll { ["attention_bias", "mlp_bias", "pretraining_tp"].contains($0.0) }
            // MistralConfig's window (null: none); Qwen2's needs use_sliding_window too, but Qwen2 has no Meta
            // layout to come from.
            if family == .mistral { o.pairs.append(("sliding_window", p.slidingWindow)) }   // indented() sorts the keys
        }
        if let scaled { o.pairs.append(("rope_scaling", PythonJSON.Object(scaled.filter { $0.0 != "rope_theta" }))) }
        if p.ropeTheta != 10000 { o.pairs.append(("rope_theta", p.ropeTheta)) }
        return PythonJSON.indented(o) + "\n"
    }

    /// One eos id as a number, several as a list (transformers writes both forms).
    static func eos(_ p: ModelParameters) -> Any? {
        guard let e = p.eosTokenIDs, !e.isEmpty else { return 2 }
        return e.count == 1 ? e[0] : e as [Any?]
    }

    static func generationConfig(_ p: ModelParameters) -> String {
        PythonJSON.indented(PythonJSON.Object([
            ("_from_model_config", true), ("bos_token_id", p.bosTokenID ?? 1), ("eos_token_id", eos(p)), ("use_cache", true),
        ])) + "\n"
    }

    static func tokenizerConfig(maxLength: Int) -> String {
        PythonJSON.indented(PythonJSON.Object([
            ("add_bos_token", true), ("add_eos_token", false), ("bos_token", "<s>"), ("clean_up_tokenization_spaces", false),
            ("eos_token", "</s>"), ("legacy", true), ("model_max_length", maxLength), ("pad_token", nil),
            ("sp_model_kwargs", PythonJSON.Object([])), ("tokenizer_class", "LlamaTokenizer"), ("unk_token", "<unk>"),
        ])) + "\n"
    }

    static let specialTokensMap = PythonJSON.indented(PythonJSON.Object([
        ("bos_token", "<s>"), ("eos_token", "</s>"), ("unk_token", "<unk>"),
    ])) + "\n"
}

/// Meta's layout: params.json and the rope.freqs buffer LLaMA 1's consolidated files carry.
public enum MetaLayout {
    /// Meta's ffn rule is multiple_of * ceil(int(8 * dim / 3) / multiple_of); the largest power of two up to 256
    /// that reproduces the weights' ffn size is written (LLaMA 1 and 2 used 256).
    static func multipleOf(dim: Int, ffn: Int) -> Int? {
        let base = 8 * dim / 3
        for m in [256, 128, 64, 32, 16, 8, 4, 2, 1] where (base + m - 1) / m * m == ffn { return m }
        return nil
    }

    public static func params(_ p: ModelParameters, ffn: Int?) -> String {
        var pairs: [(String, Any?)] = [("dim", p.dim)]
        if let ffn {
            if let m = multipleOf(dim: p.dim, ffn: ffn) {
                pairs.append(("multiple_of", m))
            } else {
                // No multiple_of reproduces it: Meta's ffn_dim_multiplier with multiple_of 1 does.
                pairs.append(("multiple_of", 1))
                pairs.append(("ffn_dim_multiplier", Double(ffn) / Double(8 * p.dim / 3)))
            }
        }
        pairs.append(("n_heads", p.nHeads))
        if p.nKVHeads != p.nHeads { pairs.append(("n_kv_heads", p.nKVHeads)) }
        pairs.append(("n_layers", p.nLayers))
        pairs.append(("norm_eps", p.normEps))
        if p.ropeTheta != 10000 { pairs.append(("rope_theta", p.ropeTheta)) }
        // Mistral's originals carry the key (null when the model has no window), which is how billa reads them back.
        if p.modelFamily == .mistral { pairs.append(("sliding_window", p.slidingWindow)) }
        if let s = p.ropeScaling {
            // Meta's own key for Llama 3.1's scaling; anything else as config.json spells it (see ropeNotes).
            if s.type == .llama3 { pairs.append(("use_scaled_rope", true)) }
            if s != RopeScaling.metaLlama31, s.type != .freqFactors, let hf = s.hfPairs(theta: p.ropeTheta) {
                pairs.append(("rope_scaling", PythonJSON.Object(hf.filter { $0.0 != "rope_theta" })))
                if s.type == .dynamic, let c = s.originalContextLength { pairs.append(("max_position_embeddings", c)) }
            }
        }
        pairs.append(("vocab_size", -1))
        pairs += carriedKeys(p)
        return PythonJSON.compact(PythonJSON.Object(pairs))
    }

    /// config.json's fields Meta's params.json has no key for, as extra keys in config.json's spelling (which
    /// billa's Meta reader takes back), written only where they differ from what billa's Meta -> HF assumes without
    /// them (context 2048, bos 1, eos 2, no pad, untied): LLaMA 1/2 files stay as Meta wrote them.
    static func carriedKeys(_ p: ModelParameters) -> [(String, Any?)] {
        var out = [(String, Any?)]()
        if let c = p.contextLength, c != 2048, !(p.ropeScaling?.type == .dynamic) { out.append(("max_position_embeddings", c)) }
        if let b = p.bosTokenID, b != 1 { out.append(("bos_token_id", b)) }
        if let e = p.eosTokenIDs, e != [2] { out.append(("eos_token_id", e.count == 1 ? e[0] : e as [Any?])) }
        if let pad = p.padTokenID { out.append(("pad_token_id", pad)) }
        if p.tieWordEmbeddings == true { out.append(("tie_word_embeddings", true)) }
        return out
    }

    /// What params.json cannot say as Meta's code reads it: a scaling other than Llama 3.1's (billa's extra
    /// `rope_scaling` key), and GGUF's per-frequency factors (nowhere).
    public static func ropeNotes(_ p: ModelParameters) -> [String] {
        guard let s = p.ropeScaling, s != RopeScaling.metaLlama31 else { return [] }
        if s.type == .freqFactors {
            return ["params.json cannot hold GGUF's rope_freqs.weight factors (\(s.freqFactors?.count ?? 0) values): the output runs unscaled"]
        }
        return ["params.json carries the rope scaling (\(s.summary)) as the extra key rope_scaling, which billa reads back and Meta's reference code ignores"
                + (s.type == .llama3 ? " (with use_scaled_rope it applies factor 8, low 1, high 4, original 8192)" : "")]
    }

    /// 1 / theta^(2i / head_dim) in f32, i < head_dim / 2, computed as torch does in float32.
    static func ropeFreqs(_ p: ModelParameters) -> RowSource {
        let hd = p.headDim
        let theta = Float(p.ropeTheta)
        let values: [Float] = (0..<(hd / 2)).map { i in 1.0 / powf(theta, Float(2 * i) / Float(hd)) }
        return RowSource(dtype: .f32, shape: [hd / 2], provenance: "computed from params.json", fill: { r, dst in
            for i in r { dst.storeBytes(of: values[i], toByteOffset: (i - r.lowerBound) * 4, as: Float.self) }
        })
    }
}
