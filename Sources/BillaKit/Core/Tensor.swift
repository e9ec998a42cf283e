/// Where a tensor's elements are, relative to a mapped file. Dense tensors are handed out as zero-copy slices;
/// strided views (what `torch.save` writes for a transposed or sliced tensor) are gathered on demand.
public enum TensorLayout: Sendable, Equatable {
    /// Dense row-major bytes starting at `byteOffset` in the file.
    case dense(byteOffset: Int)
    /// A view into a storage that starts at `storageByteOffset` in the file; offset and strides count elements.
    case strided(storageByteOffset: Int, elementOffset: Int, strides: [Int])
    /// A chunked, compressed tensor of a billa pack; `withBytes` decodes it (checking every chunk's hash).
    case packed(PackedTensor)
    /// A pack tensor whose dtype or transform code this billa does not know (formats/pack.md 8): listed so commands
    /// see it, but reading it throws this error instead of misreading it.
    case unreadable(BillaError)
}

/// One tensor of one file: what it is, and how to reach its bytes without reading anything else.
public struct Tensor: Sendable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    public let file: MappedFile
    public let layout: TensorLayout

    public init(name: String, dtype: DType, shape: [Int], file: MappedFile, layout: TensorLayout) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.file = file
        self.layout = layout
    }

    /// Elements; readers validated the product on open, so it cannot overflow here.
    public var elementCount: Int { shape.reduce(1, *) }
    /// Bytes of the dense, row-major form: rows × (cols / block) × bytes per block for block-quantized types, whose
    /// readers checked on open that each row is whole blocks.
    public var byteCount: Int { dtype.byteCount(elements: elementCount) ?? 0 }
    public var isDense: Bool { if case .dense = layout { return true } else { return false } }

    /// Calls `body` with the tensor's dense row-major bytes: the mapped bytes themselves when the tensor is dense,
    /// otherwise a gathered copy.
    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        switch layout {
        case .dense(let offset):
            return try body(file.bytes(at: offset, count: byteCount, what: "tensor '\(name)'"))
        case .strided(let storageOffset, let elementOffset, let strides):
            let gathered = try gather(storageOffset: storageOffset, elementOffset: elementOffset, strides: strides)
            return try gathered.withUnsafeBytes(body)
        case .packed(let packed):
            return try packed.decodeAll().withUnsafeBytes(body)
        case .unreadable(let error):
            throw error
        }
    }

    private func gather(storageOffset: Int, elementOffset: Int, strides: [Int]) throws -> [UInt8] {
        let es = dtype.size
        var out = [UInt8](repeating: 0, count: byteCount)
        if elementCount == 0 { return out }
        // The reader checked that every index lies inside the storage, so only the base slice is checked here.
        var maxIndex = elementOffset
        for (d, s) in zip(shape, strides) { maxIndex += (d - 1) * s }
        let src = try file.bytes(at: storageOffset, count: (maxIndex + 1) * es, what: "storage of tensor '\(name)'")
        var index = [Int](repeating: 0, count: shape.count)
        out.withUnsafeMutableBytes { dst in
            var o = 0
            for _ in 0..<elementCount {
                var e = elementOffset
                for i in 0..<shape.count { e += index[i] * strides[i] }
                dst.baseAddress!.advanced(by: o).copyMemory(from: src.baseAddress!.advanced(by: e * es), byteCount: es)
                o += es
                var k = shape.count - 1
                while k >= 0 {
                    index[k] += 1
                    if index[k] < shape[k] { break }
                    index[k] = 0
                    k -= 1
                }
            }
        }
        return out
    }
}

/// The container formats billa recognises by their first bytes.
public enum ContainerFormat: String, Sendable, Codable {
    case torchZip = "pytorch-zip"
    case safetensors = "safetensors"
    case legacyTorch = "pytorch-legacy"
    case gguf = "gguf"
    case sentencePiece = "sentencepiece"
    case billaPack = "billa-pack"
}

/// The tensors of one file, in file order.
public struct TensorFile: Sendable {
    public let path: String
    public let format: ContainerFormat
    public let tensors: [Tensor]
    /// String metadata the container carries (safetensors `__metadata__`).
    public let metadata: [String: String]

    public init(path: String, format: ContainerFormat, tensors: [Tensor], metadata: [String: String] = [:]) {
        self.path = path
        self.format = format
        self.tensors = tensors
        self.metadata = metadata
    }

    public func tensor(named name: String) -> Tensor? { tensors.first { $0.name == name } }
}
