import Foundation

/// Packs that hold a GGUF file's tensors — `billa quantize --format pack` / `billa pack --quantize`, and `billa pack
/// model.gguf` — carry the GGUF's key-value metadata as the blob `gguf-metadata.bin` (formats/pack.md 6.1), so they
/// convert back to the very GGUF: `billa convert PACK --to gguf` and `billa unpack PACK --to gguf` write the
/// metadata as stored and the tensors in pack order, the bytes `billa quantize` writes straight to GGUF.
public enum PackGGUF {
    public static let blobName = "gguf-metadata.bin"

    /// The blob: the entry count (u64) then every key-value pair exactly as GGUF v3 stores it, in order.
    static func encode(_ metadata: GGUFMetadata) -> [UInt8] {
        var b = Bytes()
        b.u64(UInt64(metadata.entries.count))
        for e in metadata.entries {
            b.string(Array(e.key.utf8))
            b.u32(e.value.type.rawValue)
            b.value(e.value)
        }
        return b.bytes
    }

    static func decode(_ bytes: UnsafeRawBufferPointer, file: String) throws -> GGUFMetadata {
        func bad(_ what: String) -> BillaError {
            BillaError(.corruptContainer, file: file, "blob \(blobName): \(what)",
                       remedy: "the pack is damaged; run `billa verify --checksums \(file)` and re-create it")
        }
        var r = ByteReader(bytes, file: file)
        let n = try r.readLE(UInt64.self, "the metadata count")
        guard n <= UInt64(bytes.count / 12) else { throw bad("\(n) entries cannot fit in \(bytes.count) bytes") }
        var m = GGUFMetadata()
        var seen = Set<String>()
        for _ in 0..<Int(n) {
            let key = String(decoding: try GGUFReader.readString(&r, "a metadata key", path: file), as: UTF8.self)
            guard seen.insert(key).inserted else { throw bad("key '\(key)' appears twice") }
            let raw = try r.readLE(UInt32.self, "the type of '\(key)'")
            guard let type = GGUFValueType(rawValue: raw) else { throw bad("'\(key)' has unknown type \(raw)") }
            m.entries.append((key: key, value: try GGUFReader.readValue(&r, type, key: key, path: file, depth: 0)))
        }
        guard r.remaining == 0 else { throw bad("\(r.remaining) bytes after the last entry") }
        return m
    }

    /// The stored GGUF metadata of a pack, or nil for a pack (or any other file) that has none.
    static func metadata(of pack: PackFile) throws -> GGUFMetadata? {
        guard let blob = try pack.blob(named: blobName) else { return nil }
        return try decode(blob, file: pack.path)
    }

    /// The recipe a GGUF-layout pack was made with (its stored general.file_type), or nil when `path` is not such a
    /// pack: `convert PACK --to gguf` without --dtype keeps the pack's types.
    public static func recordedRecipe(_ path: String) -> QuantRecipe? {
        guard let f = try? MappedFile(path: path, orDirectory: true), FormatSniffer.detect(f) == .billaPack,
              let pack = try? PackReader.open(f), let m = try? metadata(of: pack), let ft = m[GGUFKeys.fileType]?.intValue else { return nil }
        return QuantRecipe.allCases.first { Int($0.fileType) == ft }
    }

    /// GGUFExport's plan for a pack that stores GGUF metadata; nil for any other source. With the recipe the pack
    /// records (general.file_type) and no --tensor-type, every tensor keeps its stored type and bytes: the output is
    /// the GGUF the pack was made from. Any other recipe treats the pack as that GGUF file would be treated (the
    /// same type policy, and the same refusal to requantize without --allow-requantize).
    static func exportPlan(source path: String, options: GGUFExportOptions) throws -> GGUFExportPlan? {
        guard let f = try MappedFile(path: path, orDirectory: true), FormatSniffer.detect(f) == .billaPack else { return nil }
        let set = try PackSet.open(path)
        guard let stored = try metadata(of: set[0]) else { return nil }
        let tensors = set.flatMap(\.tensors)
        var m = stored
        let arch = m[GGUFKeys.architecture]?.stringValue ?? "llama"
        if let c = options.contextLength { m["\(arch).context_length"] = .u32(UInt32(c)) }
        if let n = options.name { m[GGUFKeys.name] = .text(n) }
        let input = tensors.reduce(0) { $0 + $1.byteCount }
        if options.overrides.isEmpty, let ft = m[GGUFKeys.fileType]?.intValue, ft == Int(options.recipe.fileType) {
            let choices = tensors.map { GGUFTensorChoice(name: $0.name, shape: $0.shape, source: $0.dtype, target: $0.dtype, provenance: "\(Packer.base(path)):\($0.name)") }
            return GGUFExportPlan(source: path, metadata: m, tensors: tensors.map { TensorPlan(copying: $0) }, choices: choices,
                                  notes: [], losses: [], split: options.split, inputBytes: input)
        }
        m[GGUFKeys.quantizationVersion] = nil
        m[GGUFKeys.fileType] = nil
        let sources = tensors.map { t in
            GGUFExport.Source(name: t.name, shape: t.shape, dtype: t.dtype, provenance: t.name) { r, n, dst in
                let rowBytes = t.dtype.byteCount(elements: t.shape.last ?? 1) ?? 0
                try t.readBytes((r * rowBytes)..<((r + n) * rowBytes), into: dst)
            }
        }
        return try GGUFExport.finish(source: path, sources: sources, metadata: m, layers: m[GGUFArchKeys(arch).blockCount]?.intValue ?? 0,
                                     heads: m[GGUFArchKeys(arch).headCount]?.intValue ?? 0,
                                     kvHeads: m[GGUFArchKeys(arch).headCountKV]?.intValue ?? m[GGUFArchKeys(arch).headCount]?.intValue ?? 0,
                                     keepUnquantized: true, options: options, notes: [], losses: [])
    }
}

extension Tensor {
    /// Bytes `range` of the dense form into `dst`, for dense and pack tensors (a GGUF row of a 1-D tensor is the
    /// whole tensor, not a row of dimension 0); strided views read whole rows through `readRows`.
    func readBytes(_ range: Range<Int>, into dst: UnsafeMutableRawPointer) throws {
        guard range.lowerBound >= 0, range.upperBound <= byteCount else {
            throw BillaError(.outOfBounds, file: file.path, tensor: name, "bytes \(range) are outside the tensor's \(byteCount) bytes",
                             remedy: "this is a bug in billa; please report it")
        }
        if range.isEmpty { return }
        switch layout {
        case .dense(let offset):
            let src = try file.bytes(at: offset + range.lowerBound, count: range.count, what: "tensor '\(name)'")
            if let base = src.baseAddress { dst.copyMemory(from: base, byteCount: src.count) }
        case .packed(let p):
            try p.read(bytes: range, into: dst)
        case .strided, .unreadable:
            let rb = rowBytes
            guard rb > 0, range.lowerBound % rb == 0, range.count % rb == 0 else {
                throw BillaError(.unsupported, file: file.path, tensor: name, "a strided view is read by whole rows",
                                 remedy: "this is a bug in billa; please report it")
            }
            try readRows((range.lowerBound / rb)..<(range.upperBound / rb), into: dst)
        }
    }
}
