/// Writes GGUF v3 as a small state machine — header → metadata → tensor infos → aligned data — so the sections
/// can only come in the order the format has, and tensor data streams one tensor at a time. The bytes equal what
/// gguf-py's GGUFWriter and ggml's gguf writer produce for the same keys and tensors in the same order: counts,
/// then keys in order, infos with offsets of padded sizes, zero padding to the alignment after the infos and
/// after every tensor.
public final class GGUFWriter {
    enum State: Equatable { case header, metadata(remaining: Int), tensorInfos(remaining: Int), data(next: Int), finished }

    private let out: AtomicFileWriter
    private var state: State = .header
    private let alignment: Int
    private var infos: [(name: String, byteCount: Int)] = []
    private var nextOffset = 0
    private var tensorCount = 0
    public var path: String { out.finalPath }

    public init(path: String, alignment: Int = GGUFLayout.defaultAlignment) throws {
        out = try AtomicFileWriter(path: path)
        self.alignment = alignment
    }

    private func misuse(_ what: String) -> BillaError {
        BillaError(.invalidArgument, file: out.finalPath, "GGUF writer: \(what) in state \(state)",
                   remedy: "this is a bug in billa; please report it with the command you ran")
    }

    public func writeHeader(tensorCount: Int, metadataCount: Int) throws {
        guard state == .header else { throw misuse("header written twice") }
        var b = Bytes()
        b.u32(GGUFLayout.magic); b.u32(GGUFLayout.version); b.u64(UInt64(tensorCount)); b.u64(UInt64(metadataCount))
        try out.write(b.bytes)
        self.tensorCount = tensorCount
        state = metadataCount > 0 ? .metadata(remaining: metadataCount) : (tensorCount > 0 ? .tensorInfos(remaining: tensorCount) : .data(next: 0))
    }

    public func writeMetadata(_ key: String, _ value: GGUFValue) throws {
        guard case .metadata(let n) = state else { throw misuse("metadata '\(key)' out of place") }
        var b = Bytes()
        b.string(Array(key.utf8))
        b.u32(value.type.rawValue)
        b.value(value)
        try out.write(b.bytes)
        state = n > 1 ? .metadata(remaining: n - 1) : (tensorCount > 0 ? .tensorInfos(remaining: tensorCount) : .data(next: 0))
        if tensorCount == 0, case .data = state { try padTo(alignment) }
    }

    /// Declares the next tensor; offsets are assigned in declaration order.
    public func writeTensorInfo(name: String, shape: [Int], dtype: DType) throws {
        guard case .tensorInfos(let n) = state else { throw misuse("tensor info '\(name)' out of place") }
        guard let type = GGUFLayout.ggmlType(dtype) else {
            throw BillaError(.unsupported, file: out.finalPath, tensor: name, "GGUF has no \(dtype.rawValue) tensors",
                             remedy: "convert the tensor to f32, f16, bf16 or a quantized type first")
        }
        guard let bytes = Shape.byteCount(shape, dtype) else {
            throw BillaError(.shapeMismatch, file: out.finalPath, tensor: name,
                             "\(Shape.describe(shape)) is not whole \(dtype.rawValue) blocks of \(dtype.blockSize) per row",
                             remedy: "keep this tensor in f16 or f32 (--tensor-type NAME=f16)")
        }
        let dims = shape.isEmpty ? [1] : Array(shape.reversed())
        var b = Bytes()
        b.string(Array(name.utf8))
        b.u32(UInt32(dims.count))
        for d in dims { b.u64(UInt64(d)) }
        b.u32(type)
        b.u64(UInt64(nextOffset))
        try out.write(b.bytes)
        infos.append((name, bytes))
        nextOffset += (bytes + alignment - 1) / alignment * alignment
        if n > 1 {
            state = .tensorInfos(remaining: n - 1)
        } else {
            try padTo(alignment)
            state = .data(next: 0)
        }
    }

    /// Streams the data of the next declared tensor: `produce` calls its sink with consecutive pieces.
    public func writeTensorData(_ produce: ((UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws {
        guard case .data(let i) = state, i < infos.count else { throw misuse("tensor data with no tensor declared") }
        var wrote = 0
        try produce { piece in
            try out.write(piece)
            wrote += piece.count
        }
        guard wrote == infos[i].byteCount else {
            throw BillaError(.shapeMismatch, file: out.finalPath, tensor: infos[i].name,
                             "its source produced \(wrote) bytes where \(infos[i].byteCount) were declared",
                             remedy: "this is a bug in billa; please report it with the command you ran")
        }
        try padTo(alignment)
        state = .data(next: i + 1)
    }

    /// Renames the finished file into place; fails if any declared tensor has no data.
    public func finish() throws {
        guard case .data(let i) = state, i == infos.count, infos.count == tensorCount else { throw misuse("finish before all tensor data") }
        try out.commit()
        state = .finished
    }

    /// Seals the finished file without renaming it, for a set that renames all its files only once the last is
    /// written (`Temporaries.installSet`); fails if any declared tensor has no data.
    func sealed() throws -> AtomicFileWriter {
        guard case .data(let i) = state, i == infos.count, infos.count == tensorCount else { throw misuse("finish before all tensor data") }
        try out.seal()
        state = .finished
        return out
    }

    private func padTo(_ a: Int) throws {
        let pad = (a - out.bytesWritten % a) % a
        if pad > 0 { try out.write([UInt8](repeating: 0, count: pad)) }
    }

    /// Plans and writes a whole file: metadata in order, then the tensors in order, streaming each.
    public static func write(metadata: GGUFMetadata, tensors: [TensorPlan], to path: String, alignment: Int? = nil,
                             progress: ((Int) -> Void)? = nil) throws {
        var align = alignment ?? GGUFLayout.defaultAlignment
        if alignment == nil, case .u32(let a)? = metadata[GGUFLayout.alignmentKey], a > 0, a & (a - 1) == 0 { align = Int(a) }
        let w = try GGUFWriter(path: path, alignment: align)
        try w.writeAll(metadata: metadata, tensors: tensors, progress: progress)
        try w.finish()
    }

    /// Writes every section of the file but does not rename it into place: a split set renames all its files only
    /// once the last is complete.
    func writeAll(metadata: GGUFMetadata, tensors: [TensorPlan], progress: ((Int) -> Void)?) throws {
        var names = Set<String>()
        for t in tensors where !names.insert(t.name).inserted {
            throw BillaError(.invalidArgument, file: path, tensor: t.name, "two tensors share a name", remedy: "rename one of them")
        }
        try writeHeader(tensorCount: tensors.count, metadataCount: metadata.entries.count)
        for e in metadata.entries { try writeMetadata(e.key, e.value) }
        for t in tensors { try writeTensorInfo(name: t.name, shape: t.shape, dtype: t.dtype) }
        for t in tensors {
            StatusLine.item(t.name)
            try writeTensorData { sink in
                try t.bytes { piece in
                    try sink(piece)
                    progress?(piece.count)
                }
            }
        }
    }
}

/// A little-endian byte builder for GGUF's header sections.
struct Bytes {
    var bytes: [UInt8] = []
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func string(_ s: [UInt8]) { u64(UInt64(s.count)); bytes.append(contentsOf: s) }
    mutating func raw<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }

    mutating func value(_ v: GGUFValue) {
        switch v {
        case .u8(let x): raw(x)
        case .i8(let x): raw(x)
        case .u16(let x): raw(x)
        case .i16(let x): raw(x)
        case .u32(let x): raw(x)
        case .i32(let x): raw(x)
        case .u64(let x): raw(x)
        case .i64(let x): raw(x)
        case .f32(let x): raw(x.bitPattern)
        case .f64(let x): raw(x.bitPattern)
        case .bool(let x): bytes.append(x ? 1 : 0)
        case .string(let s): string(s)
        case .array(let t, let a):
            u32(t.rawValue)
            u64(UInt64(a.count))
            for e in a { value(e) }
        }
    }
}
