import Foundation

/// Turning a release into a pack and a pack back into a release, so every command that takes a model takes a pack.
public enum Packer {
    /// Side files a pack carries as blobs, in the order they are stored.
    static let blobNames = ["config.json", "generation_config.json", "params.json", "tokenizer.model", "tokenizer.json",
                            "tokenizer_config.json", "special_tokens_map.json", "model.safetensors.index.json"]

    /// Packs `release` into `path` (or the shard set `options.maxShardBytes` asks for); returns the files written.
    /// The source files are hashed on all cores first, for the provenance record.
    @discardableResult
    public static func pack(_ release: Release, options: PackOptions, to path: String, quiet: Bool = true) throws -> [String] {
        var inputs = [PackInput]()
        for (g, f) in release.files.enumerated() {
            for t in f.tensors { inputs.append(PackInput(plan: TensorPlan(copying: t), group: g)) }
        }
        var groups = release.files.map { f in
            PackMetadata.Group(name: base(f.path), format: f.format.rawValue, safetensorsMetadata: f.format == .safetensors ? f.metadata : nil)
        }
        // Re-packing a pack keeps its groups (the original source files' names and formats), not "PACK#group".
        if release.isPack, let source = try? PackReader.open(release.path), source.metadata.groups.count == groups.count {
            groups = source.metadata.groups
        }
        // A GGUF file's metadata travels as a blob, so the pack converts back to the same GGUF (PackGGUF).
        var extra = [PackBlobInput]()
        if release.files.count == 1, release.files[0].format == .gguf {
            extra.append(PackBlobInput(name: PackGGUF.blobName, bytes: PackGGUF.encode(try GGUFReader.open(release.files[0].path).metadata)))
        }
        return try write(release, inputs: inputs, groups: groups, layout: release.layout, quantization: nil, options: options, to: path,
                         quiet: quiet, extraBlobs: extra)
    }

    /// Packs what `billa quantize` would write to a GGUF: llama.cpp's tensor names and Meta's rotary row order, each
    /// tensor in the type llama-quantize chooses for the recipe, stored raw (block types barely compress). Readers
    /// see an ordinary pack whose tensors have block dtypes; `metadata.quantization` says how they were made.
    public static func packQuantized(source: String, export: GGUFExportOptions, options: PackOptions, to path: String,
                                     quiet: Bool = true) throws {
        let release = try Release.open(source)
        guard release.layout != .file || release.files.first?.format == .billaPack else {
            throw BillaError(.invalidArgument, file: source, "a quantized pack needs the model's architecture and tokenizer",
                             remedy: "pass the model directory (params.json or config.json beside the weights)")
        }
        let plan = try GGUFExport.plan(source: source, options: export)
        let inputs = plan.tensors.map { PackInput(plan: $0, group: 0) }
        let groups = [PackMetadata.Group(name: base(source), format: "gguf-layout", safetensorsMetadata: nil)]
        let note = "\(export.recipe.rawValue): llama-quantize's per-tensor types; GGUF tensor names, Meta rotary layout"
        // The GGUF's metadata as `billa quantize` would write it, so the pack converts to that GGUF byte for byte.
        let extra = [PackBlobInput(name: PackGGUF.blobName, bytes: PackGGUF.encode(plan.metadata))]
        _ = try write(release, inputs: inputs, groups: groups, layout: .file, quantization: note, options: options, to: path, quiet: quiet,
                      extraBlobs: extra)
    }

    /// `extraBlobs` are added to the side files (replacing one of the same name).
    private static func write(_ release: Release, inputs: [PackInput], groups: [PackMetadata.Group], layout: ReleaseLayout,
                              quantization: String?, options: PackOptions, to path: String, quiet: Bool,
                              extraBlobs: [PackBlobInput]) throws -> [String] {
        func with(_ blobs: [PackBlobInput]) -> [PackBlobInput] {
            blobs.filter { b in !extraBlobs.contains { $0.name == b.name } } + extraBlobs
        }
        // A pack's side files are its blobs, carried over as they are; its provenance is the pack's files themselves,
        // each once: the single file, or every shard of a set (its groups are not files: `PACK#group` names only
        // where a tensor came from).
        if release.isPack {
            let set = try PackSet.open(release.path)
            let source = set[0]
            let blobs = with(try source.blobs.map { b in
                PackBlobInput(name: b.name, bytes: Array(try source.file.bytes(at: b.offset, count: b.length, what: "blob '\(b.name)'")))
            })
            return try write(release, inputs: inputs, groups: groups, layout: layout, quantization: quantization, options: options, to: path,
                             quiet: quiet, sourcePaths: set.map(\.path), blobs: blobs)
        }
        var blobPaths = [String]()
        if release.layout != .file {
            for name in blobNames where FileManager.default.fileExists(atPath: release.path + "/" + name) {
                blobPaths.append(release.path + "/" + name)
            }
            if let t = release.tokenizerPath, !blobPaths.contains(where: { $0.hasSuffix("/" + (t.split(separator: "/").last.map(String.init) ?? t)) }) {
                blobPaths.append(t)
            }
        }
        var blobs = [PackBlobInput]()
        for p in blobPaths {
            guard let data = FileManager.default.contents(atPath: p) else {
                throw BillaError(.io, file: p, "cannot read", remedy: "check the file's permissions")
            }
            blobs.append(PackBlobInput(name: base(p), bytes: Array(data)))
        }
        return try write(release, inputs: inputs, groups: groups, layout: layout, quantization: quantization, options: options, to: path,
                         quiet: quiet, sourcePaths: release.files.map(\.path) + blobPaths, blobs: with(blobs))
    }

    private static func write(_ release: Release, inputs: [PackInput], groups: [PackMetadata.Group], layout: ReleaseLayout,
                              quantization: String?, options: PackOptions, to path: String, quiet: Bool,
                              sourcePaths: [String], blobs: [PackBlobInput]) throws -> [String] {
        let sizes = sourcePaths.map { (try? FileManager.default.attributesOfItem(atPath: $0)[.size] as? Int) ?? 0 }
        let hashMeter = ProgressMeter(label: "hashing source", total: sizes.reduce(0, +), quiet: quiet)
        var files = [PackMetadata.SourceFile]()
        for r in Checksummer.hashFiles(sourcePaths, algorithm: .sha256, progress: hashMeter) {
            let d = try r.get()
            files.append(.init(name: base(d.path), bytes: d.bytes, sha256: d.digest))
        }
        hashMeter.finish()

        var transforms = [String: String]()
        for dtype in Set(inputs.map(\.plan.dtype)) where !dtype.isQuantized { transforms[dtype.rawValue] = PlaneTransform.preferred(for: dtype).name }
        let compression = options.raw
            ? PackMetadata.Compression(raw: true)
            : PackMetadata.Compression(zstd: Zstd.versionString, level: Int(options.level), chunkBytes: options.chunkBytes, transforms: transforms)
        var metadata = PackMetadata(billaVersion: BillaVersion.string,
                                    source: .init(layout: layout.rawValue, name: base(release.path), files: files),
                                    groups: groups, model: release.parameters, vocab: release.vocab, compression: compression)
        metadata.quantization = quantization
        let total = inputs.reduce(0) { $0 + $1.plan.byteCount }
        let meter = ProgressMeter(label: "packing", total: total, quiet: quiet)
        let written = try PackSet.write(inputs, blobs: blobs, metadata: metadata, options: options, to: path) { meter.add($0) }
        meter.finish()
        return written
    }

    static func base(_ path: String) -> String {
        let trimmed = path.hasSuffix("/") ? String(path.dropLast()) : path
        return trimmed.split(separator: "/").last.map(String.init) ?? trimmed
    }
}

extension Release {
    /// Read from a billa pack (its tensor files are the pack's groups).
    var isPack: Bool { files.first?.format == .billaPack }

    /// The model's name where an output records one (GGUF general.name): the source directory's, or for a pack the
    /// directory's it was packed from, so quantizing a pack writes the bytes quantizing that directory does.
    var modelName: String {
        if isPack, let p = try? PackReader.open(path) { return p.metadata.source.name }
        return Packer.base(path)
    }
}

extension PackFile {
    /// The tensors grouped by the source file they came from, as `TensorFile`s. With one group the file's path is
    /// the pack's; with several it is `PACK#group` so shard columns and errors still say which source file.
    public var tensorFiles: [TensorFile] {
        let groups = metadata.groups
        if groups.count <= 1 {
            return [TensorFile(path: path, format: .billaPack, tensors: tensors, metadata: groups.first?.safetensorsMetadata ?? [:])]
        }
        return groups.enumerated().map { g, group in
            TensorFile(path: path + "#" + group.name, format: .billaPack,
                       tensors: zip(entries, tensors).filter { $0.0.group == g }.map(\.1),
                       metadata: group.safetensorsMetadata ?? [:])
        }
    }

    /// The pack as the release it was made from: same layout, files (one per group), parameters and vocabulary
    /// check. There is no tokenizer path: the tokenizer and configs are blobs, which consumers read through
    /// `Release.sideFiles` exactly as they read a directory's files.
    public func release() -> Release {
        let files = tensorFiles
        // The source release's check (it knew the config, the tokenizer and how Meta shards split the head); a pack
        // of a bare tensor file has none, so it is recomputed from the tensors the way `Release.openFile` does.
        var vocab = metadata.vocab ?? VocabCheck()
        if metadata.vocab == nil {
            let all = files.flatMap(\.tensors)
            vocab.embedding = all.first { $0.name == "model.embed_tokens.weight" || $0.name == "tok_embeddings.weight" }?.shape.first
            vocab.lmHead = all.first { $0.name == "lm_head.weight" || $0.name == "output.weight" }?.shape.first
        }
        let layout = ReleaseLayout(rawValue: metadata.source.layout) ?? .file
        return Release(path: path, layout: layout, files: files, parameters: metadata.model, tokenizerPath: nil, vocab: vocab,
                       warnings: vocab.warning.map { [$0] } ?? [])
    }
}
