/// A tensor to be written: its description and a way to produce its dense bytes when the writer reaches it, so a
/// writer holds one tensor at a time, never a checkpoint.
///
/// `bytes` is the streaming contract's second form (documented in full on `RowSource`): it calls its body zero or
/// more times with consecutive pieces of any sizes, each valid only during that call, whose lengths add up to
/// exactly `byteCount`. A producer never promises one call, or pieces aligned to rows, elements or chunks; a writer
/// (safetensors, torch, GGUF, pack) accepts any number of pieces, copies what it must keep, and refuses a stream
/// whose total is not `byteCount`.
public struct TensorPlan: Sendable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    /// Human-readable origin, for --dry-run and error messages ("consolidated.00.pth:tok_embeddings.weight").
    public let provenance: String
    /// The tensor's dense bytes as a stream of pieces (see above).
    public let bytes: @Sendable ((UnsafeRawBufferPointer) throws -> Void) throws -> Void

    public init(name: String, dtype: DType, shape: [Int], provenance: String,
                bytes: @escaping @Sendable ((UnsafeRawBufferPointer) throws -> Void) throws -> Void) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.provenance = provenance
        self.bytes = bytes
    }

    /// Plans the copy of an existing tensor, streamed ~8 MiB at a time: a dense tensor straight from the map (its
    /// pages released behind the writer), a pack tensor decoded a window of chunks at a time, a strided view
    /// gathered by rows; never the whole tensor in memory.
    public init(copying t: Tensor, as name: String? = nil) {
        let plan = RowSource(t).plan(named: name ?? t.name)
        self.init(name: plan.name, dtype: t.dtype, shape: t.shape,
                  provenance: "\(t.file.path.split(separator: "/").last ?? ""):\(t.name)", bytes: plan.bytes)
    }

    public var byteCount: Int { shape.reduce(1, *) * dtype.size }
}

/// Writes safetensors the way the reference `save_file` does: tensors ordered by dtype rank then name, the JSON
/// header compact with `__metadata__` first, padded with spaces to 8 bytes. With the same tensors and at most one
/// metadata key the output is byte-identical to the reference (it orders several metadata keys by hash; billa
/// sorts them).
public enum SafetensorsWriter {
    public static func ordered(_ tensors: [TensorPlan]) -> [TensorPlan] {
        tensors.sorted {
            let (a, b) = (SafetensorsLayout.writeRank($0.dtype), SafetensorsLayout.writeRank($1.dtype))
            return a != b ? a > b : Array($0.name.utf8).lexicographicallyPrecedes(Array($1.name.utf8))
        }
    }

    /// The header bytes (length prefix included) for tensors already in write order.
    public static func header(for ordered: [TensorPlan], metadata: [String: String]) -> [UInt8] {
        var json = "{"
        var first = true
        if !metadata.isEmpty {
            json += "\"__metadata__\":{"
            json += metadata.keys.sorted().map { "\(JSONText.quote($0)):\(JSONText.quote(metadata[$0]!))" }.joined(separator: ",")
            json += "}"
            first = false
        }
        var offset = 0
        for t in ordered {
            if !first { json += "," }
            first = false
            let end = offset + t.byteCount
            json += "\(JSONText.quote(t.name)):{\"dtype\":\"\(t.dtype.rawValue)\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(end)]}"
            offset = end
        }
        json += "}"
        var bytes = Array(json.utf8)
        let pad = (SafetensorsLayout.headerAlignment - bytes.count % SafetensorsLayout.headerAlignment) % SafetensorsLayout.headerAlignment
        bytes += [UInt8](repeating: 0x20, count: pad)
        var out = [UInt8]()
        withUnsafeBytes(of: UInt64(bytes.count).littleEndian) { out.append(contentsOf: $0) }
        return out + bytes
    }

    /// Writes atomically to `path`, streaming one tensor at a time. `progress` receives bytes written.
    public static func write(_ tensors: [TensorPlan], metadata: [String: String] = [:], to path: String,
                             progress: ((Int) -> Void)? = nil) throws {
        let names = Set(tensors.map(\.name))
        guard names.count == tensors.count else {
            throw BillaError(.invalidArgument, file: path, "two tensors share a name", remedy: "rename one of them")
        }
        let order = ordered(tensors)
        let out = try AtomicFileWriter(path: path)
        try out.write(header(for: order, metadata: metadata))
        for t in order {
            StatusLine.item(t.name)
            var wrote = 0
            try t.bytes { bytes in
                try out.write(bytes)
                wrote += bytes.count
                progress?(bytes.count)
            }
            guard wrote == t.byteCount else {
                throw BillaError(.shapeMismatch, file: path, tensor: t.name,
                                 "its source produced \(wrote) bytes where \(Shape.describe(t.shape)) \(t.dtype.rawValue) needs \(t.byteCount)",
                                 remedy: "this is a bug in billa; please report it with the command you ran")
            }
        }
        try out.commit()
    }
}
