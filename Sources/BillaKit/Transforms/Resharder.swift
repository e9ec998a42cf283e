import Foundation

/// Re-splits a model without changing a byte of any tensor unless asked: a Meta release into another model-parallel
/// count, an HF directory by shard size or one file per layer (BiLLa's 33-file layout: one per decoder layer, then
/// the rest). With `dtype` every floating-point tensor is cast on the way (round to nearest even; a narrowing that
/// overflows is refused by `narrowing`'s rule), and an HF config.json's dtype (transformers 5) or torch_dtype follows.
public enum Resharder {
    public enum Mode: Sendable {
        case shards(Int)
        case maxShardSize(Int)
        case perLayer
    }

    public static func plan(source: String, destination: String, mode: Mode, dtype: DType? = nil, narrowing: Narrowing = Narrowing(),
                            format: ConvertOptions.WeightFormat? = nil) throws -> OutputPlan {
        let release = try Release.open(source)
        var casts = [(from: DType, to: DType, bytes: Int)]()
        /// The tensor as written: cast when --dtype asks (rope.freqs, a buffer of Meta's, keeps its f32).
        func cast(_ s: RowSource, _ name: String) -> RowSource {
            guard let dtype, s.dtype.isFloatingPoint, s.dtype != dtype, name != "rope.freqs" else { return s }
            casts.append((s.dtype, dtype, s.byteCount))
            return s.casting(to: dtype, named: name, file: release.path, narrowing: narrowing)
        }
        switch release.layout {
        case .meta:
            guard case .shards(let n) = mode, n >= 1 else {
                throw BillaError(.invalidArgument, file: source, "a Meta release is resharded by model-parallel count",
                                 remedy: "pass --shards N (1 for 7B-style single files)")
            }
            try ModelCheck.validate(release)
            if let p = release.parameters { try ModelCheck.validateSplit(p, shards: n, file: release.path) }
            let wholes = try MetaMerge.merged(release).map { (name: $0.name, source: cast($0.source, $0.name)) }
            var files = [PlannedFile]()
            for k in 0..<n {
                let plans = try wholes.map { try MetaMerge.piece($0.name, $0.source, k, of: n, file: release.path).plan(named: $0.name) }
                files.append(PlannedFile(name: String(format: "consolidated.%02d.pth", k), content: .torch(plans)))
            }
            files += companions(release, skip: { $0.hasPrefix("consolidated.") || $0 == "checklist.chk" })
            var plan = OutputPlan(destination: destination, files: files,
                                  notes: ["checklist.chk is not copied: the shards' checksums change"])
            plan.losses = Narrowing.statement(casts)
            return plan
        case .huggingFace:
            let tensors = release.tensors.map { cast(RowSource($0.tensor), $0.tensor.name).plan(named: $0.tensor.name) }
            let format = format ?? (release.files.first?.format == .safetensors ? .safetensors : .pth)
            var files: [PlannedFile]
            switch mode {
            case .maxShardSize(let limit): files = HFLayout.weightFiles(tensors, format: format, maxShardSize: limit)
            case .perLayer: files = perLayerFiles(tensors, format: format)
            case .shards:
                throw BillaError(.invalidArgument, file: source, "an HF directory is resharded by size or per layer",
                                 remedy: "pass --max-shard-size SIZE or --per-layer")
            }
            let weightNames = Set(release.files.map { ($0.path as NSString).lastPathComponent })
            let retyped = dtype != nil && !casts.isEmpty
            files += companions(release, skip: { weightNames.contains($0) || $0.hasSuffix(".index.json") || (retyped && $0 == "config.json") })
            if retyped, let dtype { files.append(try retypedConfig(release, dtype)) }
            var plan = OutputPlan(destination: destination, files: files)
            plan.losses = Narrowing.statement(casts)
            return plan
        case .file:
            throw BillaError(.invalidArgument, file: source, "reshard works on model directories",
                             remedy: "pass a Meta release or an HF directory")
        }
    }

    /// One shard per decoder layer, then one with everything else (embedding, final norm, head), as BiLLa ships.
    static func perLayerFiles(_ tensors: [TensorPlan], format: ConvertOptions.WeightFormat) -> [PlannedFile] {
        var groups = [Int: [TensorPlan]]()
        var rest = [TensorPlan]()
        for t in tensors {
            if let (layer, _) = LlamaNames.split(t.name, prefix: "model.layers.") { groups[layer, default: []].append(t) } else { rest.append(t) }
        }
        var ordered = groups.keys.sorted().map { groups[$0] ?? [] }
        if !rest.isEmpty { ordered.append(rest) }
        let n = ordered.count
        let (stem, ext) = format == .safetensors ? ("model", "safetensors") : ("pytorch_model", "bin")
        var files = [PlannedFile]()
        var map = [(String, Any?)]()
        for (i, g) in ordered.enumerated() {
            let name = "\(stem)-\(i + 1)-of-\(n).\(ext)"
            files.append(PlannedFile(name: name, content: format == .safetensors ? .safetensors(g, metadata: ["format": "pt"]) : .torch(g)))
            for t in g { map.append((t.name, name)) }
        }
        files.append(PlannedFile(name: "\(stem).\(ext).index.json", content: .text(HFLayout.index(tensors, map: map, format: format))))
        return files
    }

    /// The source's config.json with dtype / torch_dtype naming the new type; every other byte as it was.
    static func retypedConfig(_ release: Release, _ dtype: DType) throws -> PlannedFile {
        let path = release.path + "/config.json"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw BillaError(.io, file: path, "cannot read config.json to record the new dtype", remedy: "check the file's permissions")
        }
        let name = dtype == .bf16 ? "bfloat16" : (dtype == .f16 ? "float16" : "float32")
        let pattern = try NSRegularExpression(pattern: #""(torch_dtype|dtype)"(\s*):(\s*)"[A-Za-z0-9_]*""#)
        let range = NSRange(text.startIndex..., in: text)
        let out = pattern.stringByReplacingMatches(in: text, range: range, withTemplate: "\"$1\"$2:$3\"\(name)\"")
        return PlannedFile(name: "config.json", content: .text(out))
    }

    /// Every other regular file of the source directory (config, tokenizer, params.json), linked.
    static func companions(_ release: Release, skip: (String) -> Bool) -> [PlannedFile] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: release.path)) ?? []
        return names.sorted().compactMap { name in
            var isDir: ObjCBool = false
            let p = release.path + "/" + name
            guard !name.hasPrefix("."), !skip(name), FileManager.default.fileExists(atPath: p, isDirectory: &isDir), !isDir.boolValue else { return nil }
            return PlannedFile(name: name, content: .link(from: p))
        }
    }
}
