import Foundation

/// What `billa quantize` and `billa convert --to gguf` ask for.
public struct GGUFExportOptions: Sendable {
    public var recipe: QuantRecipe
    /// --tensor-type PATTERN=TYPE, as (regex source, type); first match wins, as in llama-quantize.
    public var overrides: [(pattern: String, type: DType)] = []
    /// Quantize tensors that are already quantized (dequantize first), like llama-quantize --allow-requantize.
    public var allowRequantize = false
    public var threads = 2
    /// llama.context_length. Meta releases do not record it, so without this it is 2048 (LLaMA 1's); HF sources
    /// default to max_position_embeddings, GGUF sources to their own value.
    public var contextLength: Int? = nil
    /// general.name; defaults to the source directory's name (GGUF sources keep theirs).
    public var name: String? = nil
    /// `convert --to gguf` without --dtype: every matrix keeps its source float type (bf16 stays BF16, f32 stays
    /// F32) and 1-D tensors and norms are F32, as convert_hf_to_gguf.py --outtype auto writes a uniform f16 or bf16
    /// checkpoint; general.file_type follows the first 2-D tensor's type, as its guess does. The recipe is ignored.
    public var sourceTypes = false
    /// How explicit narrowings (to f16/bf16, and the f16 fallback) treat values beyond the target's range.
    public var narrowing = Narrowing()
    /// Which source tensors no rule maps may be dropped (each is then listed on stderr).
    public var drops = DropPolicy()
    /// Write a gguf-split set instead of one file.
    public var split: GGUFSplitRule? = nil
    /// --pure, --leave-output-tensor, --output-tensor-type, --token-embedding-type (llama-quantize's).
    public var typeChoices = QuantPolicy.TypeChoices()
    /// --tokenizer-pre NAME: tokenizer.ggml.pre for a byte-level BPE tokenizer whose check-text hash
    /// convert_hf_to_gguf.py does not know (a trimmed or retrained vocabulary); see GGUFBPEVocabulary.
    public var tokenizerPre: String? = nil
    /// --imatrix FILE, already filtered by --include-weights / --exclude-weights; `file` is the path as given,
    /// which the output records (quantize.imatrix.file) as llama-quantize does.
    public var importance: (matrix: ImportanceMatrix, file: String)? = nil

    public init(recipe: QuantRecipe) { self.recipe = recipe }
}

/// One output tensor: where it comes from and what it becomes.
public struct GGUFTensorChoice: Codable, Sendable {
    public var name: String
    public var shape: [Int]
    public var source: DType
    public var target: DType
    public var provenance: String
}

/// A planned GGUF file: nothing is read or written until `write`.
public struct GGUFExportPlan {
    public let source: String
    public let metadata: GGUFMetadata
    public let tensors: [TensorPlan]
    public let choices: [GGUFTensorChoice]
    public let notes: [String]
    /// Lossy steps stated on stderr before writing: dropped tensors with their sizes, narrowings.
    public let losses: [String]
    /// nil for one file, else how the output is cut into a gguf-split set.
    public let split: GGUFSplitRule?
    /// Bytes of tensor data the writer will read from the source.
    public let inputBytes: Int

    public var outputDataBytes: Int { tensors.reduce(0) { $0 + (Shape.byteCount($1.shape, $1.dtype) ?? 0) } }

    /// Writes the file, or the gguf-split set `PREFIX-0000K-of-0000N.gguf` when a split rule is set; returns the
    /// paths written.
    @discardableResult
    public func write(to path: String, progress: ((Int) -> Void)? = nil) throws -> [String] {
        if let split {
            return try GGUFSplit.write(metadata: metadata, tensors: tensors, rule: split, output: path, progress: progress)
        }
        try GGUFWriter.write(metadata: metadata, tensors: tensors, to: path, progress: progress)
        return [path]
    }
}

/// Turns any source billa reads — a GGUF file, a Meta release, a Hugging Face directory — into a LLaMA GGUF file:
/// llama.cpp's tensor names and row layout, its metadata and SentencePiece vocabulary, and each tensor in the type
/// llama-quantize would choose for the recipe.
public enum GGUFExport {
    /// A source tensor in GGUF naming and layout, readable as f32 rows (the last dimension is the row).
    struct Source: @unchecked Sendable {
        let name: String
        let shape: [Int]
        let dtype: DType
        let provenance: String
        /// Reads rows [r, r+n) as little-endian bytes of `dtype` into the destination.
        let rawRows: (_ r: Int, _ n: Int, _ dst: UnsafeMutableRawPointer) throws -> Void

        var cols: Int { shape.last ?? 1 }
        var rows: Int { cols == 0 ? 0 : shape.reduce(1, *) / cols }
        var rowBytes: Int { dtype.byteCount(elements: cols) ?? 0 }
    }

    public static func plan(source path: String, options: GGUFExportOptions) throws -> GGUFExportPlan {
        if let p = try PackGGUF.exportPlan(source: path, options: options) { return p }   // a pack of GGUF tensors
        let mapped = try MappedFile(path: path, orDirectory: true)
        if let f = mapped, FormatSniffer.detect(f) == .gguf {
            return try planFromGGUF(GGUFSplit.open(GGUFReader.open(f)), options: options)
        }
        return try planFromRelease(Release.open(path), options: options)
    }

    // MARK: sources

    /// A GGUF file or a whole gguf-split set (the metadata is the first file's, without the split keys).
    static func planFromGGUF(_ set: [GGUFFile], options: GGUFExportOptions) throws -> GGUFExportPlan {
        let g = set[0]
        // Quantizing what is not a LLaMA model (an imatrix passed as the source, another architecture) would
        // write a file of the right name and no use.
        if g.metadata[ImatrixKeys.type]?.stringValue == ImatrixKeys.typeValue {
            throw BillaError(.invalidArgument, file: g.path, "this is an importance matrix, not a model",
                             remedy: "pass the model as SRC and the imatrix with --imatrix \(g.path)")
        }
        guard let arch = g.architecture else {
            throw BillaError(.invalidArgument, file: g.path, "the GGUF has no general.architecture: it is not a model",
                             remedy: "pass a LLaMA model GGUF (llama-quantize reads the same key)")
        }
        guard ModelFamily.fromGGUF(architecture: arch) != nil else {
            throw BillaError(.unsupported, file: g.path, "general.architecture is '\(arch)'; billa quantizes and converts \(Set(ModelFamily.allCases.map(\.ggufArchitecture)).sorted().joined(separator: " and ")) models",
                             remedy: "use llama-quantize for \(arch) models, or convert a model of a family billa supports")
        }
        let keys = GGUFArchKeys(arch)
        let sources = set.flatMap { g in g.tensors.map { t in
            let base = g.dataOffset + t.offset
            let rowBytes = t.dtype.byteCount(elements: t.dims[0]) ?? 0
            return Source(name: t.name, shape: t.shape, dtype: t.dtype, provenance: t.name) { r, n, dst in
                let b = try g.file.bytes(at: base + r * rowBytes, count: n * rowBytes, what: "tensor '\(t.name)'")
                if let p = b.baseAddress, n > 0 { dst.copyMemory(from: p, byteCount: b.count) }
            }
        } }
        var metadata = g.metadata
        metadata.entries.removeAll { GGUFSplit.splitKeys.contains($0.key) }
        metadata[GGUFKeys.quantizationVersion] = nil
        metadata[GGUFKeys.fileType] = nil
        if let c = options.contextLength { metadata[keys.contextLength] = .u32(UInt32(c)) }
        if let n = options.name { metadata[GGUFKeys.name] = .text(n) }
        let layers = metadata[keys.blockCount]?.intValue ?? 0
        let heads = metadata[keys.headCount]?.intValue ?? 0
        let kvHeads = metadata[keys.headCountKV]?.intValue ?? heads
        let notes = set.count > 1 ? ["read the \(set.count)-file gguf-split set of \(g.path) (\(sources.count) tensors)"] : []
        return try finish(source: g.path, sources: sources, metadata: metadata, layers: layers, heads: heads, kvHeads: kvHeads,
                          keepUnquantized: true, options: options, notes: notes, losses: [])
    }

    static func planFromRelease(_ release: Release, options: GGUFExportOptions) throws -> GGUFExportPlan {
        guard let p = release.parameters else {
            throw BillaError(.invalidArgument, file: release.path, "a single weights file carries no architecture",
                             remedy: "pass the model directory (params.json or config.json next to the weights)")
        }
        let family = p.modelFamily
        let arch = family.ggufArchitecture
        // (GGUF name, source name, rows)
        var wholes: [(String, String, RowSource)]
        var notes = [String]()
        let accounting: TensorAccounting.Outcome
        func ggufName(_ name: String, _ layout: WeightNaming) -> String? {
            guard let (gguf, e) = TensorName.convert(name, from: layout, to: .gguf), family.has(e.role) else { return nil }
            return gguf
        }
        switch release.layout {
        case .meta:
            accounting = try TensorAccounting.account(release, consumed: { ggufName($0, .meta) != nil }, policy: options.drops,
                                                      what: "no llama.cpp name for it", bufferNote: "llama.cpp computes it from the metadata")
            wholes = try MetaMerge.merged(release, skipping: accounting.skipped).compactMap { n, src in ggufName(n, .meta).map { ($0, n, src) } }
        case .huggingFace:
            accounting = try TensorAccounting.account(release, consumed: { ggufName($0, .hf) != nil },
                                                      policy: options.drops, what: "no llama.cpp name for it in the \(arch) architecture",
                                                      bufferNote: "llama.cpp computes it from the metadata")
            wholes = []
            for (file, t) in release.tensors {
                guard !accounting.skipped.contains(t.name), let (gguf, e) = TensorName.convert(t.name, from: .hf, to: .gguf),
                      family.has(e.role) else { continue }
                var src = RowSource(t)
                // LLM_ARCH_LLAMA keeps Meta's interleaved rotary rows: undo HF's permute, as convert_hf_to_gguf does.
                if family.ggufRope == .interleaved, let heads = Converter.rotaryHeads(e.rotary, p) {
                    try Converter.checkRotary(src, heads: heads, name: t.name, file: file.path)
                    src = src.permutingRows(LlamaNames.hfToMetaRows(heads: heads, rows: src.rows), note: "rotary-gguf")
                }
                wholes.append((gguf, t.name, src))
            }
        case .file:
            throw BillaError(.invalidArgument, file: release.path, "a single weights file carries no architecture",
                             remedy: "pass the model directory")
        }
        notes += accounting.notes
        var sources = [Source]()
        for (name, sourceName, src) in wholes {
            guard [.f32, .f16, .bf16].contains(src.dtype) else {
                throw BillaError(.unsupported, file: release.path, tensor: sourceName, "\(src.dtype.rawValue) weights cannot be converted",
                                 remedy: "convert from an f32, f16 or bf16 checkpoint")
            }
            let perRow = src.shape.count <= 1 ? src.rows : 1     // RowSource rows per GGUF row (1-D: one row)
            sources.append(Source(name: name, shape: src.shape, dtype: src.dtype, provenance: src.provenance) { r, n, dst in
                guard n > 0 else { return }
                let rows = (r * perRow)..<((r + n) * perRow)
                try src.fill(rows, dst)
                src.release(rows)   // read in order, once: the mapped pages and pack chunks behind can go
            })
        }
        guard let embedding = sources.first(where: { $0.name == "token_embd.weight" }) else {
            throw BillaError(.notFound, file: release.path, "no token embedding in the checkpoint", remedy: "download the release again")
        }
        let vocabRows = embedding.shape[0]
        let ffn = sources.first(where: { $0.name == "blk.0.ffn_gate.weight" })?.shape[0] ?? p.ffnDim ?? 0
        // A directory's tokenizer files and HF configs, or the blobs of a pack made from one.
        let side = release.sideFiles
        let vocab = try GGUFExportVocabulary.load(release, rows: vocabRows, pre: options.tokenizerPre)
        if vocab.paddingCount > 0 {
            notes.append("the embedding has \(vocabRows) rows; \(vocab.paddingCount) rows that no piece or added token fills are written as [PAD<id>] (unused)")
        }
        notes += vocab.notes
        var hfConfig = [String: Any]()
        if release.layout == .huggingFace { hfConfig = ((try? side.json("config.json")) ?? nil) ?? [:] }
        let context = options.contextLength ?? p.contextLength ?? 2048
        if options.contextLength == nil, release.layout == .meta, p.contextLength == nil {
            notes.append("llama.context_length is 2048: Meta releases do not record it (pass --max-position-embeddings 4096 for LLaMA 2)")
        }
        let name = options.name ?? release.modelName

        var m = GGUFMetadata()
        let keys = GGUFArchKeys(arch)
        m[GGUFKeys.architecture] = .text(arch)
        m[GGUFKeys.name] = .text(name)
        m[keys.contextLength] = .u32(UInt32(context))
        m[keys.embeddingLength] = .u32(UInt32(p.dim))
        m[keys.blockCount] = .u32(UInt32(p.nLayers))
        m[keys.feedForwardLength] = .u32(UInt32(ffn))
        // LlamaModel.set_gguf_parameters adds these two; TextModel's (Qwen2's) does not.
        if arch == "llama" { m[keys.ropeDimensionCount] = .u32(UInt32(p.headDim)) }
        m[keys.headCount] = .u32(UInt32(p.nHeads))
        m[keys.headCountKV] = .u32(UInt32(p.nKVHeads))
        m[keys.rmsEpsilon] = .f32(Float(p.normEps))
        m[keys.ropeFreqBase] = .f32(Float(p.ropeTheta))
        // TextModel writes key/value lengths when config.json names head_dim (transformers 5 always does).
        if let hd = hfConfig.int("head_dim") {
            m[keys.arch + ".attention.key_length"] = .u32(UInt32(hd))
            m[keys.arch + ".attention.value_length"] = .u32(UInt32(hd))
        }
        if arch == "llama" { m[keys.vocabSize] = .u32(UInt32(vocabRows)) }
        vocab.write(into: &m)
        // A config field GGUF cannot hold is a loss, stated on stderr with the other lossy steps.
        var losses = accounting.dropped
        if let w = p.slidingWindow {
            losses.append("GGUF's \(arch) architecture has no sliding attention window (convert_hf_to_gguf.py writes none): llama.cpp attends over every position, so outputs differ from transformers' once a prompt passes \(w) tokens")
        }
        // convert_hf_to_gguf.py: scaling keys for linear / yarn, rope_freqs.weight (F32) for llama3.
        let rope = GGUFRope.export(p, arch: arch, into: &m)
        notes += rope.notes
        if let freqs = rope.freqs {
            sources.append(Source(name: GGUFRope.freqsTensor, shape: [freqs.count], dtype: .f32,
                                  provenance: "computed from the rope scaling (\(p.ropeScaling?.summary ?? ""))") { r, n, dst in
                guard n > 0 else { return }
                freqs.withUnsafeBytes { dst.copyMemory(from: $0.baseAddress!, byteCount: freqs.count * 4) }
            })
        }
        return try finish(source: release.path, sources: sources, metadata: m, layers: p.nLayers, heads: p.nHeads,
                          kvHeads: p.nKVHeads, keepUnquantized: false, options: options, notes: notes, losses: losses)
    }

    // MARK: type choice and tensor plans

    static func finish(source: String, sources: [Source], metadata: GGUFMetadata, layers: Int, heads: Int, kvHeads: Int,
                       keepUnquantized: Bool, options: GGUFExportOptions, notes: [String], losses: [String]) throws -> GGUFExportPlan {
        var overrides = [(NSRegularExpression, DType)]()
        for (pattern, type) in options.overrides {
            guard let re = try? NSRegularExpression(pattern: pattern) else {
                throw BillaError(.invalidArgument, "--tensor-type pattern '\(pattern)' is not a valid regular expression",
                                 remedy: "pass PATTERN=TYPE, e.g. --tensor-type 'attn_v=q8_0'")
            }
            overrides.append((re, type))
        }
        let ordered = sources.sorted { QuantPolicy.order($0.name, $1.name) }
        // --outtype auto's guess: the first tensor of two or more dimensions, in the source's order, names the file type.
        var recipe = options.recipe
        if options.sourceTypes {
            switch sources.first(where: { $0.shape.count >= 2 })?.dtype {
            case .bf16?: recipe = .bf16
            case .f32?: recipe = .f32
            default: recipe = .f16
            }
        }
        var policy = QuantPolicy(recipe: recipe, tensorNames: ordered.map(\.name), layers: layers, heads: heads,
                                 kvHeads: kvHeads, overrides: overrides, choices: options.typeChoices)
        // llama-quantize passes no imatrix at all when filtering left it empty.
        let imatrix = options.importance.flatMap { $0.matrix.entries.isEmpty ? nil : $0 }
        policy.hasImportanceMatrix = imatrix != nil
        var notes = notes
        var plans = [TensorPlan]()
        var choices = [GGUFTensorChoice]()
        var input = 0
        var casts = [(from: DType, to: DType, bytes: Int)]()
        for s in ordered {
            var target = options.sourceTypes ? s.dtype : policy.type(for: s.name, shape: s.shape, current: s.dtype)
            if !QuantPolicy.allowsQuantization(s.name, shape: s.shape) && !keepUnquantized { target = .f32 }
            let weights = try importanceWeights(imatrix, for: s, target: target, source: source, notes: &notes)
            if policy.requiresImportanceMatrix(s.name, target), weights == nil {
                // Where the recipe chose the type llama-quantize refuses the run; where only ggml's kernel needs the
                // weights (IQ2_XXS/IQ2_XS/IQ1_S given by a type option to token_embd/output) it aborts in ggml.
                let why = target.quantType?.requiresImportance == true && !policy.requiresImportanceMatrixByRecipe(s.name, target)
                    ? "ggml's \(target.rawValue) quantizer needs importance weights and aborts without them (llama-quantize crashes on it)"
                    : "llama-quantize refuses it without one (\"this quantization requires an imatrix!\")"
                throw BillaError(.unsupported, file: source, tensor: s.name,
                                 imatrix == nil
                                    ? "\(recipe.rawValue) quantizes this tensor to \(target.rawValue), which needs an importance matrix; \(why)"
                                    : "the importance matrix has no entry for this tensor, which \(recipe.rawValue) quantizes to \(target.rawValue): llama-quantize refuses it (\"Missing importance matrix for tensor ... in a very low-bit quantization\")",
                                 remedy: imatrix == nil ? (options.importance != nil ? "--include-weights / --exclude-weights left no entry of the importance matrix; filter less" : "pass --imatrix FILE (from billa imatrix or llama-imatrix), or use --type q2_k, which needs none")
                                                        : "use an imatrix computed for this model, and do not --exclude-weights this tensor")
            }
            if target != s.dtype && s.dtype.isQuantized && !options.allowRequantize {
                throw BillaError(.invalidArgument, file: source, tensor: s.name,
                                 "the tensor is already \(s.dtype.rawValue); quantizing it again loses more than quantizing the original",
                                 remedy: "quantize from the f16/f32 model, or pass --allow-requantize")
            }
            if target.isQuantized, s.cols % target.blockSize != 0 {
                throw BillaError(.shapeMismatch, file: source, tensor: s.name,
                                 "rows of \(s.cols) values are not whole \(target.rawValue) blocks of \(target.blockSize)",
                                 remedy: "choose another type for it with --tensor-type '\(s.name)=f16'")
            }
            choices.append(GGUFTensorChoice(name: s.name, shape: s.shape, source: s.dtype, target: target, provenance: s.provenance))
            plans.append(plan(s, to: target, threads: options.threads, file: source, narrowing: options.narrowing, importance: weights))
            casts.append((s.dtype, target, s.rows * s.rowBytes))
            input += s.rows * s.rowBytes
        }
        var m = metadata
        // Both convert_hf_to_gguf.py and llama-quantize write it for every file type, f32/f16 included.
        m[GGUFKeys.quantizationVersion] = .u32(GGUFLayout.quantizationVersion)
        m[GGUFKeys.fileType] = .u32(recipe.fileType)
        if let imatrix { ImatrixKeys.record(imatrix.matrix, file: imatrix.file, into: &m) }
        return GGUFExportPlan(source: source, metadata: m, tensors: plans, choices: choices,
                              notes: notes + policy.fallbacks, losses: losses + Narrowing.statement(casts),
                              split: options.split, inputBytes: input)
    }
}

extension MappedFile {
    /// Maps `path` when it is a regular file; nil for a directory.
    convenience init?(path: String, orDirectory: Bool) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw BillaError(.notFound, file: path, "no such file or directory", remedy: "check the path")
        }
        if isDir.boolValue { return nil }
        try self.init(path: path)
    }
}
