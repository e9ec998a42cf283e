import Foundation

/// What `billa convert` should produce.
public struct ConvertOptions: Sendable {
    public enum Target: String, Sendable, CaseIterable { case hf, meta }
    public enum WeightFormat: String, Sendable, CaseIterable { case safetensors, pth }

    public var target: Target
    /// HF output only; Meta's layout is always consolidated.NN.pth.
    public var format: WeightFormat = .safetensors
    public var dtype: DType? = nil
    /// HF shard limit in bytes (huggingface_hub's rule). Default 5 GB, what transformers 4 used.
    public var maxShardSize: Int = 5_000_000_000
    /// Meta model-parallel shard count.
    public var shards: Int = 1
    /// Meta -> HF's max_position_embeddings: params.json does not say (LLaMA 1 used 2048, LLaMA 2 4096) unless billa
    /// wrote it there; nil: that value, else 2048.
    public var maxPositionEmbeddings: Int? = nil
    /// How an explicit narrowing (--dtype f16 from bf16/f32) treats values beyond the target's range.
    public var narrowing = Narrowing()
    /// Which source tensors no rule consumes may be dropped (each is then listed on stderr).
    public var drops = DropPolicy()

    public init(target: Target) { self.target = target }
}

/// Plans Meta <-> Hugging Face conversions as views over the source (merge, rename, rotary permutation, cast,
/// split), so executing the plan streams each output tensor once, a chunk at a time.
public enum Converter {
    public static func plan(source: String, destination: String, options: ConvertOptions) throws -> OutputPlan {
        let release = try Release.open(source)
        switch (release.layout, options.target) {
        case (.meta, .hf): return try metaToHF(release, destination, options)
        case (.huggingFace, .meta): return try hfToMeta(release, destination, options)
        case (.huggingFace, .hf) where options.dtype != nil:
            // A dtype change within the layout: the resharder's plan, cast on the way, in --format and --max-shard-size.
            return try Resharder.plan(source: source, destination: destination, mode: .maxShardSize(options.maxShardSize),
                                      dtype: options.dtype, narrowing: options.narrowing, format: options.format)
        case (.meta, .meta) where options.dtype != nil:
            return try Resharder.plan(source: source, destination: destination, mode: .shards(options.shards),
                                      dtype: options.dtype, narrowing: options.narrowing)
        case (.meta, .meta), (.huggingFace, .hf):
            throw BillaError(.invalidArgument, file: source, "the source is already in the \(options.target.rawValue) layout",
                             remedy: "use billa reshard to change the shard count or size, or pass --dtype to change the type")
        case (.file, _):
            throw BillaError(.invalidArgument, file: source, "convert works on model directories (a Meta release or an HF directory)",
                             remedy: "pass the directory holding params.json or config.json")
        }
    }

    /// Meta's Llama-3 tiktoken tokenizer, when that is what the release has.
    static func tiktoken(_ release: Release) throws -> BPETokenizer? {
        guard let tok = release.tokenizerPath, try ModelTokenizer.kind(of: tok) == .tiktoken else { return nil }
        return try BPETokenizer(tiktoken: tok)
    }

    /// The source's tokenizer.model for the output: linked from a directory, copied out of a pack's blob.
    static func tokenizerFile(_ release: Release) throws -> PlannedFile? {
        if let tok = release.tokenizerPath {
            return tok.hasSuffix("tokenizer.model") ? PlannedFile(name: "tokenizer.model", content: .link(from: tok)) : nil
        }
        let side = release.sideFiles
        guard let bytes = try side.bytes("tokenizer.model") else { return nil }
        return PlannedFile(name: "tokenizer.model", content: .bytes(bytes, source: side.location("tokenizer.model")))
    }

    static func requireParameters(_ release: Release) throws -> ModelParameters {
        guard let p = release.parameters, p.nHeads > 0, p.nKVHeads > 0, p.dim % p.nHeads == 0, (p.dim / p.nHeads) % 2 == 0 else {
            throw BillaError(.invalidHeader, file: release.path, "the architecture (dim, heads) is missing or inconsistent",
                             remedy: "restore params.json / config.json from the original release")
        }
        try ModelCheck.validate(release)
        return p
    }

    /// Rows of wq/wk in HF's rotary order: with grouped-query attention wk has n_kv_heads heads.
    static func rotaryHeads(_ r: LlamaNames.Rotary, _ p: ModelParameters) -> Int? {
        switch r {
        case .none: return nil
        case .queries: return p.nHeads
        case .keys: return p.nKVHeads
        }
    }

    static func checkRotary(_ source: RowSource, heads: Int, name: String, file: String) throws {
        guard source.shape.count == 2, heads > 0, source.rows % heads == 0, (source.rows / heads) % 2 == 0 else {
            throw BillaError(.shapeMismatch, file: file, tensor: name,
                             "\(Shape.describe(source.shape)) cannot be split into \(heads) rotary heads of even size",
                             remedy: "n_heads / n_kv_heads in the config does not match the weights; fix the config")
        }
    }

    // MARK: Meta -> HF

    static func metaToHF(_ release: Release, _ destination: String, _ o: ConvertOptions) throws -> OutputPlan {
        var p = try requireParameters(release)
        var notes = [String]()
        let llama3 = try tiktoken(release)
        if let t = llama3 {
            // convert_llama_weights_to_hf.py --llama_version 3.x: Meta's bos/eos, context 131072 for 3.1/3.2 (scaled
            // rope), 8192 for 3.0.
            if p.bosTokenID == nil { p.bosTokenID = t.bosID }
            if p.eosTokenIDs == nil { p.eosTokenIDs = t.eosID.map { [$0] } }
            if p.contextLength == nil, o.maxPositionEmbeddings == nil {
                p.contextLength = p.ropeScaling?.type == .llama3 ? 131072 : 8192
                notes.append("max_position_embeddings is \(p.contextLength!), as convert_llama_weights_to_hf.py writes for Llama \(p.ropeScaling?.type == .llama3 ? "3.1/3.2 (scaled rope)" : "3.0") (pass --max-position-embeddings to change it)")
            }
            notes.append("tokenizer.json is built from the tiktoken tokenizer.model as transformers' TikTokenConverter builds it; an instruct model's eos (<|eot_id|>) and chat template are not in the Meta release: set them in tokenizer_config.json and generation_config.json")
        }
        var planned = [(Int, Int, Int, TensorPlan)]()
        let accounting = try TensorAccounting.account(release, consumed: { LlamaNames.hf(fromMeta: $0) != nil }, policy: o.drops,
                                                      what: "no Hugging Face LLaMA name for it",
                                                      bufferNote: "transformers recomputes it from the config")
        var casts = [(from: DType, to: DType, bytes: Int)]()
        // A tied model's Meta files carry the head as a copy of the embedding (Meta's code has no tying).
        let tied = p.tieWordEmbeddings == true
        for (name, whole) in try MetaMerge.merged(release, skipping: accounting.skipped) {
            guard let (hfName, rotary) = LlamaNames.hf(fromMeta: name) else { continue }
            if tied, hfName == "lm_head.weight" { continue }
            var src = whole
            if let heads = rotaryHeads(rotary, p) {
                try checkRotary(src, heads: heads, name: name, file: release.path)
                src = src.permutingRows(LlamaNames.metaToHFRows(heads: heads, rows: src.rows), note: "rotary-hf")
            }
            if let d = o.dtype {
                casts.append((src.dtype, d, src.byteCount))
                src = src.casting(to: d, named: name, file: release.path, narrowing: o.narrowing)
            }
            let key = LlamaNames.hfOrder(hfName)
            planned.append((key.0, key.1, key.2, src.plan(named: hfName)))
        }
        planned.sort { ($0.0, $0.1, $0.2) < ($1.0, $1.1, $1.2) }
        let tensors = planned.map(\.3)
        var files = HFLayout.weightFiles(tensors, format: o.format, maxShardSize: o.maxShardSize)
        let dtype = o.dtype ?? tensors.first(where: { $0.dtype.isFloatingPoint })?.dtype ?? .f16
        let embeddingRows = tensors.first { $0.name == "model.embed_tokens.weight" }?.shape.first ?? p.vocabSize ?? 0
        let ffn = tensors.first { $0.name == "model.layers.0.mlp.gate_proj.weight" }?.shape.first ?? p.ffnDim ?? 0
        let maxPositions = o.maxPositionEmbeddings ?? p.contextLength ?? 2048
        files.append(PlannedFile(name: "config.json", content: .text(HFLayout.config(p, vocab: embeddingRows, ffn: ffn, dtype: dtype,
                                                                                     maxPositions: maxPositions))))
        files.append(PlannedFile(name: "generation_config.json", content: .text(HFLayout.generationConfig(p))))
        if let t = llama3 {
            files.append(PlannedFile(name: "tokenizer.json", content: .bytes(TokenizerJSONWriter.llama3(from: t), source: t.path)))
            files.append(PlannedFile(name: "tokenizer_config.json", content: .text(TokenizerJSONWriter.llama3Config(maxLength: maxPositions, eos: "<|end_of_text|>"))))
        } else if let tok = try tokenizerFile(release) {
            files.append(tok)
            files.append(PlannedFile(name: "tokenizer_config.json", content: .text(HFLayout.tokenizerConfig(maxLength: maxPositions))))
            files.append(PlannedFile(name: "special_tokens_map.json", content: .text(HFLayout.specialTokensMap)))
        }
        notes = accounting.notes + notes
        if let s = p.ropeScaling, s.type == .dynamic, let c = s.originalContextLength, c != maxPositions {
            notes.append("max_position_embeddings is \(c), not \(maxPositions): dynamic NTK scaling grows the rotary base past it, so it is the model's own")
        } else if o.maxPositionEmbeddings == nil, p.contextLength == nil {
            notes.append("max_position_embeddings is 2048: params.json does not record a context length (pass --max-position-embeddings 4096 for LLaMA 2, 8192 for Llama 3)")
        }
        if tied { notes.append("tie_word_embeddings (from params.json): lm_head.weight is not written, transformers ties it to the embedding") }
        if p.ropeScaling?.type == .freqFactors {
            notes.append("config.json cannot hold GGUF's rope_freqs.weight factors: the output runs unscaled")
        }
        if !files.contains(where: { $0.name == "tokenizer.model" || $0.name == "tokenizer.json" }) { notes.append("the source has no tokenizer.model; copy one into the output before loading it") }
        var plan = OutputPlan(destination: destination, files: files, notes: notes)
        plan.losses = accounting.dropped + Narrowing.statement(casts)
        return plan
    }

    // MARK: HF -> Meta

    static func hfToMeta(_ release: Release, _ destination: String, _ o: ConvertOptions) throws -> OutputPlan {
        let p = try requireParameters(release)
        guard p.modelFamily.hasMetaLayout else {
            throw BillaError(.unsupported, file: release.path, "\(p.modelFamily.rawValue) models have no Meta original layout (their q/k/v biases have no Meta name)",
                             remedy: "keep the Hugging Face directory, or convert it to GGUF with billa convert --to gguf")
        }
        guard o.shards >= 1 else {
            throw BillaError(.invalidArgument, "--shards must be at least 1", remedy: "pass --shards 1 for a single consolidated.00.pth")
        }
        try ModelCheck.validateSplit(p, shards: o.shards, file: release.path)
        var wholes = [(String, RowSource, String)]()
        let accounting = try TensorAccounting.account(release, consumed: { LlamaNames.meta(fromHF: $0) != nil }, policy: o.drops,
                                                      what: "no Meta LLaMA name for it", bufferNote: "Meta's code recomputes it")
        var casts = [(from: DType, to: DType, bytes: Int)]()
        for (file, t) in release.tensors {
            guard let (metaName, rotary) = LlamaNames.meta(fromHF: t.name) else { continue }
            var src = RowSource(t)
            if let heads = rotaryHeads(rotary, p) {
                try checkRotary(src, heads: heads, name: t.name, file: file.path)
                src = src.permutingRows(LlamaNames.hfToMetaRows(heads: heads, rows: src.rows), note: "rotary-meta")
            }
            if let d = o.dtype, d != src.dtype { casts.append((src.dtype, d, src.byteCount)) }
            wholes.append((metaName, src, file.path))
        }
        // LLaMA 1's buffer of plain frequencies; a scaled model's would be wrong, and Llama 3.1 originals carry none.
        // A tied HF model has no lm_head; Meta's code needs output.weight: the embedding's rows, split as output's.
        let tiedHead = !wholes.contains { $0.0 == "output.weight" }
        if tiedHead, let emb = wholes.first(where: { $0.0 == "tok_embeddings.weight" }) {
            wholes.append(("output.weight", emb.1, emb.2))
        }
        var carried = p
        if tiedHead { carried.tieWordEmbeddings = true }
        // Mistral's originals carry none either.
        let ropeBuffer = p.ropeScaling == nil && p.modelFamily == .llama
        if ropeBuffer { wholes.append(("rope.freqs", MetaLayout.ropeFreqs(p), release.path)) }
        wholes.sort { LlamaNames.metaOrder($0.0) < LlamaNames.metaOrder($1.0) }
        var files = [PlannedFile]()
        for k in 0..<o.shards {
            let name = String(format: "consolidated.%02d.pth", k)
            // The cast comes after the split, so each piece's values are checked (and counted) once.
            let plans = try wholes.map { n, whole, file in
                var piece = try MetaMerge.piece(n, whole, k, of: o.shards, file: release.path)
                if let d = o.dtype, n != "rope.freqs" { piece = piece.casting(to: d, named: n, file: file, narrowing: o.narrowing) }
                return piece.plan(named: n)
            }
            files.append(PlannedFile(name: name, content: .torch(plans)))
        }
        files.append(PlannedFile(name: "params.json", content: .text(MetaLayout.params(carried, ffn: release.parameters?.ffnDim))))
        var tokenizerNote: String? = nil
        if let tok = try tokenizerFile(release) {
            files.append(tok)
        } else if let json = release.tokenizerPath, json.hasSuffix("tokenizer.json") {
            // A Llama-3 tokenizer.json goes back to Meta's tiktoken file; any other has no Meta form.
            if let model = TiktokenWriter.llama3(from: try BPETokenizer(tokenizerJSON: json)) {
                files.append(PlannedFile(name: "tokenizer.model", content: .bytes(model, source: json)))
            } else {
                tokenizerNote = "the source's tokenizer.json is not Llama-3's TikToken layout, which is the only one Meta's tokenizer.model can hold: no tokenizer.model is written (keep the HF directory's tokenizer.json)"
            }
        }
        var notes = accounting.notes
        if ropeBuffer {
            notes.append("rope.freqs is computed from params.json (theta \(p.ropeTheta)) as LLaMA 1's checkpoints carry it")
        } else if p.ropeScaling != nil {
            notes.append("no rope.freqs: the model's rope is scaled (\(p.ropeScaling?.summary ?? "")), and Meta's code computes the frequencies from params.json")
        }
        notes += MetaLayout.ropeNotes(p)
        if let tokenizerNote { notes.append(tokenizerNote) }
        if tiedHead { notes.append("the embeddings are tied: output.weight is written as a copy of the embedding (Meta's code has no tying), and params.json says tie_word_embeddings so billa converts it back tied") }
        let extra = MetaLayout.carriedKeys(carried).map(\.0).filter { $0 != "tie_word_embeddings" }
        if !extra.isEmpty {
            notes.append("params.json carries \(extra.joined(separator: ", ")) as extra keys in config.json's spelling, which billa reads back and Meta's reference code ignores")
        }
        var plan = OutputPlan(destination: destination, files: files, notes: notes)
        plan.losses = accounting.dropped + Narrowing.statement(casts)
        return plan
    }
}
