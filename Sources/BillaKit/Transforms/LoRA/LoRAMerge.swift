import CKernels
import Foundation

/// `billa recover lora`: merges PEFT LoRA adapters into their base, in the given order, with the arithmetic of
/// PEFT's `merge_and_unload()` and of Chinese-LLaMA-Alpaca's merge_llama_with_chinese_lora_low_mem.py (which agree
/// on it): for each adapter in turn, a modules_to_save table replaces the base's tensor (cast to its dtype, the
/// script's `.half()` for f16 bases), then each LoRA pair does `W += (B.float() @ A.float()) * scaling` on the f16
/// (bf16, f32) weight: B@A in f32 with one fused multiply-add per rank step in rank order (torch's CPU matmul gives
/// exactly these bits), times the scaling rounded to f32, added in f32 and rounded back to W's dtype — after each
/// adapter, as the script's state dict holds f16 between adapters. Everything streams: each output tensor is built
/// a write chunk of rows at a time from the mmap, only the adapter's own factors are held in f32.
public enum LoRAMerge {
    public struct Options: Sendable {
        public var base: String
        public var adapters: [String]
        public var output: String
        public var target: ConvertOptions.Target = .hf
        /// Meta output: model-parallel files; nil = the script's count for the model's width (7B 1, 13B 2, 33B 4, 65B 8).
        public var shards: Int? = nil
        /// How an adapter table wider than the base's dtype (an fp32 modules_to_save over an f16 base) is narrowed:
        /// checked like every other narrowing, refused on overflow unless it clamps.
        public var narrowing = Narrowing()
        public init(base: String, adapters: [String], output: String) {
            self.base = base
            self.adapters = adapters
            self.output = output
        }
    }

    /// merge_llama_with_chinese_lora_low_mem.py's `num_shards_of_models` by hidden size; 1 for any other width.
    public static func scriptShards(dim: Int) -> Int { [4096: 1, 5120: 2, 6656: 4, 8192: 8][dim] ?? 1 }

    static let embedding = "model.embed_tokens.weight", head = "lm_head.weight"
    static let tokenizerFiles = ["tokenizer.model", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"]

    /// The plan, and for --dry-run each tensor an adapter touches with those adapters in merge order.
    public struct Job: Sendable {
        public let plan: OutputPlan
        public let touched: [(tensor: String, adapters: [String])]
    }

    public static func plan(_ o: Options) throws -> Job {
        let base = try Release.open(o.base)
        var isDir: ObjCBool = false
        guard base.layout == .huggingFace, FileManager.default.fileExists(atPath: base.path, isDirectory: &isDir), isDir.boolValue else {
            throw BillaError(.invalidArgument, file: o.base, "the base must be a Hugging Face directory (config.json + weights), as PEFT and the merge script load it",
                             remedy: "convert a Meta release first: billa convert LLAMA -o LLAMA-hf --to hf")
        }
        guard !o.adapters.isEmpty else {
            throw BillaError(.invalidArgument, "no adapter given", remedy: "pass one or more adapter directories, in the order to merge them")
        }
        let adapters = try o.adapters.map(LoRAAdapter.open)
        var baseTensors = [String: Tensor]()
        for (_, t) in base.tensors { baseTensors[t.name] = t }
        let modules = base.tensors.map(\.tensor.name).filter { $0.hasSuffix(".weight") }.map { String($0.dropLast(".weight".count)) }
        let linear = Set(base.tensors.filter { $0.tensor.shape.count == 2 && $0.tensor.name != embedding }.map { String($0.tensor.name.dropLast(".weight".count)) })
        var notes = [String]()

        // the merged tensors, as views over the base and the adapters
        var merged = [String: RowSource]()
        for (_, t) in base.tensors { merged[t.name] = RowSource(t) }
        var touched = [String: [String]]()
        var vocabulary = baseTensors[embedding]?.shape.first
        var vocabularySource = "the base's \(embedding)"
        for ad in adapters {
            let configFile = ad.path + "/adapter_config.json"
            let targets = try LoRAMatch.targets(of: ad.config, modules: modules, linear: linear, file: configFile)
            for m in targets.sorted() where ad.pairs[m] == nil {
                throw BillaError(.notFound, file: ad.weightsFile.path, tensor: LoRAAdapter.prefix + m + ".lora_A.weight",
                                 "target_modules selects \(m) but the adapter has no LoRA weights for it",
                                 remedy: "adapter_config.json does not belong to these weights; download the adapter again")
            }
            for m in ad.pairs.keys.sorted() {
                guard baseTensors[m + ".weight"] != nil else {
                    throw BillaError(.notFound, file: ad.weightsFile.path, tensor: LoRAAdapter.prefix + m + ".lora_A.weight",
                                     "the adapter has LoRA weights for \(m), which the base model does not have",
                                     remedy: "use the base model the adapter was trained on")
                }
                guard targets.contains(m) else {
                    throw BillaError(.invalidHeader, file: ad.weightsFile.path, tensor: LoRAAdapter.prefix + m + ".lora_A.weight",
                                     "the adapter has LoRA weights for \(m) but its target_modules does not select it (PEFT would not load them)",
                                     remedy: "adapter_config.json does not belong to these weights; download the adapter again")
                }
            }
            for entry in ad.config.modulesToSave {
                let covered = try ad.replacements.keys.contains { try LoRAMatch.fullMatch("(^|.*\\.)\(entry)\\.weight", $0) }
                guard covered else {
                    throw BillaError(.notFound, file: ad.weightsFile.path, tensor: entry,
                                     "modules_to_save lists \(entry) but the adapter has no weights for it",
                                     remedy: "download the adapter again (adapter_model.bin / .safetensors is incomplete)")
                }
            }
            if ad.config.fanInFanOut, !ad.pairs.isEmpty {
                notes.append("\(ad.name): fan_in_fan_out is true, but LLaMA's projections are nn.Linear, for which PEFT sets it to false and trains without the transpose; merged without it, as PEFT does")
            }
            // the vocabulary grows in order (the script's check, with the base's rows first)
            if let v = ad.vocabulary {
                if let prev = vocabulary, v < prev {
                    throw BillaError(.shapeMismatch, file: ad.path, "this adapter's vocabulary has \(v) tokens, fewer than the \(prev) of \(vocabularySource) before it",
                                     remedy: "merge adapters in the order they were trained on growing vocabularies (e.g. Chinese-LLaMA-Plus, then Chinese-Alpaca-Plus)")
                }
                vocabulary = v
                vocabularySource = "adapter \(ad.name)"
            }
            if let rows = ad.replacements[embedding]?.shape.first, let tok = ad.tokenizerSize, tok != rows {
                throw BillaError(.shapeMismatch, file: ad.tokenizer, tensor: LoRAAdapter.prefix + embedding,
                                 "the adapter's tokenizer has \(tok) tokens but its embedding \(rows) rows",
                                 remedy: "use each adapter with its own tokenizer (LLaMA-LoRA with the LLaMA tokenizer, Alpaca-LoRA with the Alpaca tokenizer)")
            }
            // the script's order for each tensor: the adapter's table first, then its LoRA
            for (name, t) in ad.replacements.sorted(by: { $0.key < $1.key }) {
                guard let current = merged[name] else {
                    throw BillaError(.notFound, file: ad.weightsFile.path, tensor: t.name, "the adapter replaces \(name), which the base model does not have",
                                     remedy: "use the base model the adapter was trained on")
                }
                guard DTypeCast.supports(t.dtype), DTypeCast.supports(current.dtype), t.shape.count == current.shape.count,
                      Array(t.shape.dropFirst()) == Array(current.shape.dropFirst()) else {
                    throw BillaError(.shapeMismatch, file: ad.weightsFile.path, tensor: t.name,
                                     "is \(t.dtype.rawValue) \(Shape.describe(t.shape)); the base's \(name) is \(current.dtype.rawValue) \(Shape.describe(current.shape))",
                                     remedy: "use the base model the adapter was trained on")
                }
                var src = renamed(RowSource(t), "\(ad.name)/\((ad.weightsFile.path as NSString).lastPathComponent):\(t.name)")
                if t.dtype != current.dtype {
                    src = src.casting(to: current.dtype, named: name, file: ad.weightsFile.path, narrowing: o.narrowing)
                    if t.dtype.size > current.dtype.size || (t.dtype == .f16) != (current.dtype == .f16) {
                        notes.append("\(name): \(ad.name)'s \(t.dtype.rawValue) table rounded to \(current.dtype.rawValue) (\(ByteFormat.human(t.byteCount)) -> \(ByteFormat.human(t.elementCount * current.dtype.size))), the base's dtype; the script's .half() does the same to f16")
                    }
                }
                merged[name] = src
                touched[name, default: []].append("\(ad.name) (modules_to_save)")
            }
            for (m, pair) in ad.pairs.sorted(by: { $0.key < $1.key }) {
                let name = m + ".weight"
                guard let current = merged[name] else { continue }
                guard current.shape.count == 2, pair.b.shape[0] == current.shape[0], pair.a.shape[1] == current.shape[1], DTypeCast.supports(current.dtype) else {
                    throw BillaError(.shapeMismatch, file: ad.weightsFile.path, tensor: LoRAAdapter.prefix + m,
                                     "B \(Shape.describe(pair.b.shape)) @ A \(Shape.describe(pair.a.shape)) does not fit \(name) \(current.dtype.rawValue) \(Shape.describe(current.shape))",
                                     remedy: "use the base model the adapter was trained on (same size)")
                }
                if pair.a.shape[1] < fmaOrderMinimumColumns {
                    notes.append("\(name): only \(pair.a.shape[1]) input columns; torch's matmul sums such narrow products in another order, so this tensor may differ from PEFT's and the script's in the last bit of some elements")
                }
                merged[name] = loraAdded(current, pair, adapter: ad.name)
                touched[name, default: []].append("\(ad.name) (lora r \(pair.rank), scaling \(pair.scaling))")
            }
            notes += ad.notes.map { "\(ad.name): \($0)" }
        }
        if let e = merged[embedding], let h = merged[head], e.rows != h.rows {
            throw BillaError(.shapeMismatch, file: adapters.last?.path, tensor: head,
                             "the merged embedding has \(e.rows) rows but lm_head \(h.rows)",
                             remedy: "an adapter that changes the vocabulary must carry both embed_tokens and lm_head in modules_to_save")
        }
        let rows = merged[embedding]?.rows
        // the output takes the last adapter's tokenizer, else the base's
        let tokenizerAdapter = adapters.last { $0.tokenizer != nil }
        if let ad = tokenizerAdapter, let size = ad.tokenizerSize, let rows, size > rows {
            throw BillaError(.shapeMismatch, file: ad.tokenizer, "the tokenizer has \(size) tokens but the merged embedding only \(rows) rows",
                             remedy: "the last adapter's tokenizer must match its vocabulary; check the adapter order")
        }
        notes.insert("\(touched.count) tensors merged from \(adapters.count) adapter\(adapters.count == 1 ? "" : "s"); each merged tensor is rounded to its dtype after each adapter, as PEFT and the merge script do", at: 0)
        let plan: OutputPlan
        switch o.target {
        case .hf: plan = try hfOutput(base, merged, rows: rows, tokenizerFrom: tokenizerAdapter, destination: o.output, notes: notes)
        case .meta: plan = try metaOutput(base, merged, shards: o.shards, tokenizerFrom: tokenizerAdapter, destination: o.output, notes: notes)
        }
        let order = base.tensors.map(\.tensor.name)
        return Job(plan: plan, touched: order.compactMap { n in touched[n].map { (n, $0) } })
    }

    static func fileName(_ p: String) -> String { (p as NSString).lastPathComponent }

    /// The file a path names, through symlinks: a hard link to a relative symlink (the Hugging Face cache is made
    /// of them) would dangle in the output directory.
    static func resolved(_ p: String) -> String { URL(fileURLWithPath: p).resolvingSymlinksInPath().path }

    /// torch's MKL sums B @ A in rank order with fused multiply-adds when A has at least this many columns (every
    /// LLaMA projection); narrower ones go through other kernels whose order billa does not reproduce.
    static let fmaOrderMinimumColumns = 12

    static func renamed(_ s: RowSource, _ provenance: String) -> RowSource {
        RowSource(dtype: s.dtype, shape: s.shape, provenance: provenance, fill: s.fill, direct: s.direct, release: s.release)
    }

    /// `src` with `pair`'s delta added in f32 and rounded back to src's dtype, a block of rows at a time.
    static func loraAdded(_ src: RowSource, _ pair: LoRAAdapter.Pair, adapter: String) -> RowSource {
        let factors = LoRAFactors(pair)
        let cols = src.shape[1], rows = src.rows, rank = pair.rank, scaling = pair.scaling, dtype = src.dtype
        return RowSource(dtype: dtype, shape: src.shape,
                         provenance: "\(src.provenance) + lora \(adapter) (r \(rank), scaling \(scaling))", fill: { r, dst in
            let n = r.count * cols
            guard n > 0 else { return }
            let raw = UnsafeMutableRawPointer.allocate(byteCount: r.count * src.rowBytes, alignment: 64)
            defer { raw.deallocate() }
            let w = UnsafeMutablePointer<Float>.allocate(capacity: n)
            defer { w.deallocate() }
            try src.fill(r, raw)
            DTypeCast.widen(raw, dtype, count: n, into: w)
            try factors.use { a, b in bk_lora_add(b + r.lowerBound * rank, a, w, Int64(r.count), Int64(rank), Int64(cols), scaling) }
            if dtype == .f16 {
                bk_f32_to_f16(w, dst.assumingMemoryBound(to: UInt16.self), Int64(n))
            } else {
                DTypeCast.convert(w, from: .f32, to: dst, dtype, count: n)
            }
        }, release: { r in
            src.release(r)
            if r.upperBound >= rows { factors.drop() }
        })
    }

    // MARK: outputs

    /// The base's own files, shard for shard (names, formats, tensor order), as the script writes them; config.json's
    /// vocab_size and the index's total_size follow the merged tensors; the tokenizer is the last adapter's.
    static func hfOutput(_ base: Release, _ merged: [String: RowSource], rows: Int?, tokenizerFrom: LoRAAdapter?,
                         destination: String, notes: [String]) throws -> OutputPlan {
        var notes = notes
        var files = [PlannedFile]()
        var total = 0
        for f in base.files {
            let plans = f.tensors.compactMap { t in merged[t.name]?.plan(named: t.name) }
            total += plans.reduce(0) { $0 + $1.byteCount }
            files.append(PlannedFile(name: fileName(f.path), content: f.format == .safetensors ? .safetensors(plans, metadata: f.metadata) : .torch(plans)))
        }
        let weights = Set(base.files.map { fileName($0.path) })
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: base.path)) ?? []).sorted()
        for name in names where !weights.contains(name) && !name.hasPrefix(".") {
            let p = base.path + "/" + name
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: p, isDirectory: &isDir), !isDir.boolValue else { continue }
            if name == "config.json", let rows {
                files.append(PlannedFile(name: name, content: .text(try VocabResize.replacingInteger("vocab_size", in: p, with: { _ in rows }))))
            } else if name.hasSuffix(".index.json") {
                files.append(PlannedFile(name: name, content: .text(try VocabResize.replacingInteger("total_size", in: p, with: { _ in total }))))
            } else if tokenizerFrom != nil && (tokenizerFiles.contains(name) || name == "tokenizer.json") {
                if name == "tokenizer.json" { notes.append("tokenizer.json of the base left out: it describes the base's vocabulary, and the tokenizer is now \(tokenizerFrom?.name ?? "")'s") }
                continue
            } else {
                files.append(PlannedFile(name: name, content: .link(from: resolved(p))))
            }
        }
        if let ad = tokenizerFrom {
            for name in tokenizerFiles where FileManager.default.fileExists(atPath: ad.path + "/" + name) {
                files.append(PlannedFile(name: name, content: .link(from: resolved(ad.path + "/" + name))))
            }
        }
        return OutputPlan(destination: destination, files: files, notes: notes)
    }

    /// consolidated.NN.pth + params.json + tokenizer.model the way the script's `--output_type pth` writes them: q/k
    /// back in Meta's rotary order, split like Meta's model parallelism, output.weight's last piece taking the rows
    /// that do not divide (13B's 49953 rows: 24976 + 24977), no rope.freqs.
    static func metaOutput(_ base: Release, _ merged: [String: RowSource], shards: Int?, tokenizerFrom: LoRAAdapter?,
                           destination: String, notes: [String]) throws -> OutputPlan {
        var notes = notes
        let p = try Converter.requireParameters(base)
        let n = shards ?? scriptShards(dim: p.dim)
        guard n >= 1 else { throw BillaError(.invalidArgument, "--shards must be at least 1", remedy: "pass --shards 1 for a single consolidated.00.pth") }
        try ModelCheck.validateSplit(p, shards: n, file: base.path)
        var wholes = [(String, RowSource)]()
        for (file, t) in base.tensors {
            if t.name.hasSuffix(LlamaNames.hfBufferSuffix) { continue }
            guard let src = merged[t.name] else { continue }
            guard let (metaName, rotary) = LlamaNames.meta(fromHF: t.name) else {
                throw BillaError(.unsupported, file: file.path, tensor: t.name, "no Meta LLaMA name for this tensor",
                                 remedy: "write Hugging Face output (--to hf) instead")
            }
            var s = src
            if let heads = Converter.rotaryHeads(rotary, p) {
                try Converter.checkRotary(s, heads: heads, name: t.name, file: file.path)
                s = s.permutingRows(LlamaNames.hfToMetaRows(heads: heads, rows: s.rows), note: "rotary-meta")
            }
            wholes.append((metaName, s))
        }
        wholes.sort { LlamaNames.metaOrder($0.0) < LlamaNames.metaOrder($1.0) }
        var files = [PlannedFile]()
        for k in 0..<n {
            let plans = try wholes.map { name, whole in try piece(name, whole, k, of: n, file: base.path).plan(named: name) }
            files.append(PlannedFile(name: String(format: "consolidated.%02d.pth", k), content: .torch(plans)))
        }
        files.append(PlannedFile(name: "params.json", content: .text(MetaLayout.params(p, ffn: base.parameters?.ffnDim))))
        if let tok = tokenizerFrom?.tokenizer ?? base.tokenizerPath.flatMap({ $0.hasSuffix("tokenizer.model") ? $0 : nil }) {
            files.append(PlannedFile(name: "tokenizer.model", content: .link(from: resolved(tok))))
        } else {
            notes.append("no tokenizer.model in the base or the adapters; copy one into the output before using it")
        }
        notes.append("\(n) model-parallel file\(n == 1 ? "" : "s")\(shards == nil ? " (the merge script's count for dim \(p.dim))" : ""); no rope.freqs, as the merge script writes none (Meta's code recomputes it)")
        return OutputPlan(destination: destination, files: files, notes: notes)
    }

    /// Piece k of n under the script's `save_shards`: Meta's split rules, except that output.weight splits into
    /// n - 1 pieces of rows / n and a last one with the remainder.
    static func piece(_ name: String, _ whole: RowSource, _ k: Int, of n: Int, file: String) throws -> RowSource {
        if name == "output.weight", n > 1, whole.rows % n != 0 {
            let size = whole.rows / n
            return whole.rowSlice(k * size, k == n - 1 ? whole.rows - k * size : size)
        }
        return try MetaMerge.piece(name, whole, k, of: n, file: file)
    }
}

/// One LoRA pair's factors in f32 (torch's `.float()`), read on first use and dropped when the tensor is done, so
/// only the tensor being written holds them.
final class LoRAFactors: @unchecked Sendable {
    private let pair: LoRAAdapter.Pair
    private var a: UnsafeMutablePointer<Float>?
    private var b: UnsafeMutablePointer<Float>?
    private let lock = NSLock()

    init(_ pair: LoRAAdapter.Pair) { self.pair = pair }
    deinit { a?.deallocate(); b?.deallocate() }

    func use(_ body: (UnsafePointer<Float>, UnsafePointer<Float>) throws -> Void) throws {
        lock.lock(); defer { lock.unlock() }
        if a == nil { a = try Self.widened(pair.a) }
        if b == nil { b = try Self.widened(pair.b) }
        guard let a, let b else { return }
        try body(a, b)
    }

    func drop() {
        lock.lock(); defer { lock.unlock() }
        a?.deallocate(); a = nil
        b?.deallocate(); b = nil
    }

    static func widened(_ t: Tensor) throws -> UnsafeMutablePointer<Float> {
        let n = t.elementCount
        let out = UnsafeMutablePointer<Float>.allocate(capacity: max(1, n))
        do {
            try t.withBytes { raw in
                if let base = raw.baseAddress { DTypeCast.widen(base, t.dtype, count: n, into: out) }
            }
        } catch {
            out.deallocate()
            throw error
        }
        return out
    }
}
