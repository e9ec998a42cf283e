/// One tensor as a GGUF file describes it. `dims` are ggml's ne order (innermost first); `shape` is billa's
/// row-major order (outermost first).
public struct GGUFTensorInfo: Sendable, Equatable {
    public let name: String
    public let dims: [Int]
    public let dtype: DType
    /// Offset from the start of the data section.
    public let offset: Int
    public let byteCount: Int

    public var shape: [Int] { dims.reversed() }
}

/// A GGUF file, opened and validated: header, metadata and tensor infos are parsed and checked against the file
/// size on open (counts, string lengths, dims, types, alignment and bounds), so later code trusts them.
public struct GGUFFile: Sendable {
    public let path: String
    public let version: UInt32
    public let metadata: GGUFMetadata
    public let tensors: [GGUFTensorInfo]
    public let alignment: Int
    /// Absolute offset of the data section.
    public let dataOffset: Int
    public let file: MappedFile

    public var architecture: String? { metadata["general.architecture"]?.stringValue }

    /// The tensors as billa `Tensor`s (dense, zero-copy).
    public var tensorFile: TensorFile {
        var strings = [String: String]()
        for e in metadata.entries { if let s = e.value.stringValue { strings[e.key] = s } }
        let ts = tensors.map {
            Tensor(name: $0.name, dtype: $0.dtype, shape: $0.shape, file: file, layout: .dense(byteOffset: dataOffset + $0.offset))
        }
        return TensorFile(path: path, format: .gguf, tensors: ts, metadata: strings)
    }

    public func tensor(named name: String) -> GGUFTensorInfo? { tensors.first { $0.name == name } }
}

public enum GGUFReader {
    public static func open(_ path: String) throws -> GGUFFile { try open(MappedFile(path: path)) }

    public static func open(_ file: MappedFile) throws -> GGUFFile {
        let path = file.path
        var r = ByteReader(file.all, file: path)
        func bad(_ what: String, tensor: String? = nil) -> BillaError {
            BillaError(.invalidHeader, file: path, tensor: tensor, "invalid GGUF: \(what)",
                       remedy: "the file is corrupt or was written by a broken converter; download or convert it again")
        }
        guard try r.readLE(UInt32.self, "the GGUF magic") == GGUFLayout.magic else { throw bad("the file does not start with 'GGUF'") }
        let version = try r.readLE(UInt32.self, "the GGUF version")
        guard GGUFLayout.readableVersions.contains(version) else {
            throw BillaError(.unsupported, file: path, "GGUF version \(version); billa reads versions 2 and 3",
                             remedy: version == 1 ? "re-convert the model with a current llama.cpp" : "update billa")
        }
        let nTensors = try r.readLE(UInt64.self, "the tensor count")
        let nKV = try r.readLE(UInt64.self, "the metadata count")
        // Every key-value pair takes at least 12 bytes and every tensor info at least 24: bound counts by the file.
        guard nKV <= UInt64(r.remaining / 12), nTensors <= UInt64(r.remaining / 24) else {
            throw bad("it declares \(nKV) metadata entries and \(nTensors) tensors, more than its \(file.size) bytes can hold")
        }
        var metadata = GGUFMetadata()
        var seenKeys = Set<String>()
        for _ in 0..<Int(nKV) {
            let key = try readString(&r, "a metadata key", path: path)
            let keyText = String(decoding: key, as: UTF8.self)
            guard seenKeys.insert(keyText).inserted else { throw bad("metadata key '\(keyText)' appears twice") }
            let rawType = try r.readLE(UInt32.self, "the type of '\(keyText)'")
            guard let type = GGUFValueType(rawValue: rawType) else { throw bad("metadata '\(keyText)' has unknown type \(rawType)") }
            metadata.entries.append((key: keyText, value: try readValue(&r, type, key: keyText, path: path, depth: 0)))
        }
        var alignment = GGUFLayout.defaultAlignment
        if let a = metadata[GGUFLayout.alignmentKey] {
            guard case .u32(let v) = a, v > 0, v & (v - 1) == 0 else { throw bad("general.alignment must be a power of two u32") }
            alignment = Int(v)
        }
        var infos = [GGUFTensorInfo]()
        var names = Set<String>()
        for _ in 0..<Int(nTensors) {
            let nameBytes = try readString(&r, "a tensor name", path: path)
            let name = String(decoding: nameBytes, as: UTF8.self)
            guard !nameBytes.isEmpty, nameBytes.count <= GGUFLayout.maxNameBytes else {
                throw bad("tensor name of \(nameBytes.count) bytes (ggml allows 1...\(GGUFLayout.maxNameBytes))", tensor: name)
            }
            guard names.insert(name).inserted else { throw bad("two tensors are named '\(name)'", tensor: name) }
            let nDims = try r.readLE(UInt32.self, "the dimension count of '\(name)'")
            guard nDims >= 1, nDims <= GGUFLayout.maxDims else { throw bad("\(nDims) dimensions (ggml allows 1...4)", tensor: name) }
            var dims = [Int]()
            for _ in 0..<Int(nDims) {
                let d = try r.readLE(UInt64.self, "a dimension of '\(name)'")
                guard d <= UInt64(Int32.max) * 64 else { throw bad("dimension \(d) is out of range", tensor: name) }
                dims.append(Int(d))
            }
            let rawType = try r.readLE(UInt32.self, "the type of '\(name)'")
            guard let dtype = GGUFLayout.dtype(ggmlType: rawType) else {
                let known = GGUFLayout.otherTypeNames[rawType].map { "ggml type \($0)" } ?? "unknown ggml type \(rawType)"
                throw BillaError(.unsupported, file: path, tensor: name, "\(known) is not one billa reads",
                                 remedy: "billa reads F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K and Q6_K; convert from the original weights instead")
            }
            let offset = try r.readLE(UInt64.self, "the data offset of '\(name)'")
            guard offset % UInt64(alignment) == 0 else {
                throw bad("data offset \(offset) is not a multiple of the alignment \(alignment)", tensor: name)
            }
            guard offset <= UInt64(file.size) else {
                throw BillaError(.outOfBounds, file: path, tensor: name, "data offset \(offset) lies past the end of the file",
                                 remedy: "the file is truncated; download it again and compare its checksum")
            }
            if dtype.isQuantized, dims[0] % dtype.blockSize != 0 {
                throw bad("rows of \(dims[0]) elements are not whole \(dtype.rawValue) blocks of \(dtype.blockSize)", tensor: name)
            }
            guard let bytes = Shape.byteCount(dims.reversed(), dtype) else { throw bad("its size overflows", tensor: name) }
            infos.append(GGUFTensorInfo(name: name, dims: dims, dtype: dtype, offset: Int(offset), byteCount: bytes))
        }
        let dataOffset = (r.position + alignment - 1) / alignment * alignment
        for t in infos {
            let (end, o) = (dataOffset + t.offset).addingReportingOverflow(t.byteCount)
            guard !o, end <= file.size else {
                throw BillaError(.outOfBounds, file: path, tensor: t.name,
                                 "tensor data spans bytes \(dataOffset + t.offset)..<\(end) but the file has \(file.size) bytes",
                                 remedy: "the file is truncated; download it again and compare its checksum")
            }
        }
        let sorted = infos.sorted { $0.offset < $1.offset }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.offset + a.byteCount > b.offset {
            throw bad("the data of '\(a.name)' overlaps '\(b.name)'", tensor: b.name)
        }
        return GGUFFile(path: path, version: version, metadata: metadata, tensors: infos, alignment: alignment,
                        dataOffset: dataOffset, file: file)
    }

    static func readString(_ r: inout ByteReader, _ what: String, path: String) throws -> [UInt8] {
        let n = try r.readLE(UInt64.self, "the length of \(what)")
        guard n <= UInt64(r.remaining) else { throw BillaError.truncated(what, file: path) }
        return Array(try r.readBytes(Int(n), what))
    }

    static func readValue(_ r: inout ByteReader, _ type: GGUFValueType, key: String, path: String, depth: Int) throws -> GGUFValue {
        let what = "the value of '\(key)'"
        switch type {
        case .u8: return .u8(try r.readLE(UInt8.self, what))
        case .i8: return .i8(try r.readLE(Int8.self, what))
        case .u16: return .u16(try r.readLE(UInt16.self, what))
        case .i16: return .i16(try r.readLE(Int16.self, what))
        case .u32: return .u32(try r.readLE(UInt32.self, what))
        case .i32: return .i32(try r.readLE(Int32.self, what))
        case .u64: return .u64(try r.readLE(UInt64.self, what))
        case .i64: return .i64(try r.readLE(Int64.self, what))
        case .f32: return .f32(Float(bitPattern: try r.readLE(UInt32.self, what)))
        case .f64: return .f64(Double(bitPattern: try r.readLE(UInt64.self, what)))
        case .bool:
            let b = try r.readU8(what)
            guard b <= 1 else {
                throw BillaError(.invalidHeader, file: path, "invalid GGUF: boolean '\(key)' holds \(b)", remedy: "convert the model again")
            }
            return .bool(b == 1)
        case .string: return .string(try readString(&r, what, path: path))
        case .array:
            guard depth == 0 else {
                throw BillaError(.unsupported, file: path, "metadata '\(key)' nests arrays, which llama.cpp does not read either",
                                 remedy: "convert the model again with a current converter")
            }
            let rawType = try r.readLE(UInt32.self, "the element type of '\(key)'")
            guard let elementType = GGUFValueType(rawValue: rawType) else {
                throw BillaError(.invalidHeader, file: path, "invalid GGUF: array '\(key)' has unknown element type \(rawType)",
                                 remedy: "convert the model again")
            }
            let n = try r.readLE(UInt64.self, "the length of '\(key)'")
            let minSize = UInt64(elementType.scalarSize ?? 8)
            guard n <= UInt64(r.remaining) / minSize else { throw BillaError.truncated("array '\(key)'", file: path) }
            var values = [GGUFValue]()
            values.reserveCapacity(Int(n))
            for _ in 0..<Int(n) { values.append(try readValue(&r, elementType, key: key, path: path, depth: depth + 1)) }
            return .array(elementType, values)
        }
    }
}

extension GGUFFile {
    /// The file as a `Release`: architecture from the llama.* keys, vocabulary sizes cross-checked against the
    /// token list, so `inspect` and `checksum --per-tensor` treat GGUF like any other source.
    public func release() throws -> Release { try GGUFFile.release([self]) }

    /// A gguf-split set (`GGUFSplit.open`) as one `Release`: the metadata of the first file, the tensors of all.
    public static func release(_ set: [GGUFFile]) throws -> Release {
        let first = set[0]
        let metadata = first.metadata
        let architecture = first.architecture
        let tfs = set.map(\.tensorFile)
        func tensor(_ n: String) -> Tensor? { tfs.lazy.compactMap { $0.tensor(named: n) }.first }
        func int(_ k: String) -> Int? { metadata[k]?.intValue }
        var params: ModelParameters? = nil
        var warnings = [String]()
        let family = architecture.flatMap { ModelFamily.fromGGUF(architecture: $0) }
        if let arch = architecture, family == nil {
            warnings.append("general.architecture is '\(arch)', which billa does not run or convert (it runs \(Set(ModelFamily.allCases.map(\.ggufArchitecture)).sorted().joined(separator: ", ")))")
        }
        if let arch = architecture, family != nil, let dim = int("\(arch).embedding_length"), let layers = int("\(arch).block_count"),
           let heads = int("\(arch).attention.head_count") {
            params = ModelParameters(dim: dim, nLayers: layers, nHeads: heads, nKVHeads: int("\(arch).attention.head_count_kv") ?? heads,
                                     ffnDim: int("\(arch).feed_forward_length"),
                                     vocabSize: tensor("token_embd.weight")?.shape.first,
                                     normEps: metadata["\(arch).attention.layer_norm_rms_epsilon"]?.doubleValue ?? 1e-5,
                                     ropeTheta: metadata["\(arch).rope.freq_base"]?.doubleValue ?? 10000,
                                     ropeScaling: try GGUFRope.scaling(metadata, arch: arch, freqs: tensor(GGUFRope.freqsTensor),
                                                                       headDim: heads > 0 ? dim / heads : 0, file: first.path))
            params?.family = family == .llama ? nil : family
            params?.contextLength = int("\(arch).context_length")
            params?.bosTokenID = int(GGUFKeys.bos)
            params?.eosTokenIDs = int(GGUFKeys.eos).map { [$0] }
            params?.padTokenID = int(GGUFKeys.pad)
            params?.tieWordEmbeddings = tensor("output.weight") == nil
        }
        let vocab = VocabCheck(embedding: tensor("token_embd.weight")?.shape.first,
                               lmHead: tensor("output.weight")?.shape.first,
                               config: int("\(architecture ?? "llama").vocab_size"),
                               tokenizer: metadata["tokenizer.ggml.tokens"]?.arrayCount)
        return Release(path: first.path, layout: .file, files: tfs, parameters: params, tokenizerPath: nil, vocab: vocab,
                       warnings: warnings + (vocab.warning.map { [$0] } ?? []))
    }
}
