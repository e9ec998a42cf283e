/// What `billa inspect` shows, as data: the CLI renders it as a table or as JSON.
public struct InspectReport: Codable, Sendable {
    public struct FileInfo: Codable, Sendable {
        public var path: String
        public var format: ContainerFormat
        /// The file's size; for a group of a multi-group pack (`PACK#group`), the bytes its tensors occupy in the
        /// pack, so the groups add up to the tensor data instead of counting the pack once per group.
        public var bytes: Int
        public var tensors: Int
    }

    public struct TensorInfo: Codable, Sendable {
        public var name: String
        public var dtype: DType
        public var shape: [Int]
        public var bytes: Int
        public var shard: String
        /// False for strided views that are gathered when read, and for compressed pack tensors.
        public var contiguous: Bool
        /// How the bytes are stored: "dense", "strided" (a view gathered when read), "raw" (a pack's uncompressed,
        /// aligned tensor) or "zstd planes" (a pack's chunked tensor, decoded when read).
        public var storage: String

    }

    public struct DTypeShare: Codable, Sendable {
        public var tensors: Int
        public var parameters: Int
    }

    public var path: String
    public var format: String
    public var parameters: ModelParameters?
    public var parameterCount: Int
    public var dtypes: [String: DTypeShare]
    public var files: [FileInfo]
    /// The size of the distinct files on disk (a pack counts once, whatever its groups).
    public var totalBytes: Int
    public var tensors: [TensorInfo]
    public var vocab: VocabCheck
    public var tokenizer: String?
    public var warnings: [String]

    enum CodingKeys: String, CodingKey {
        case path, format, parameters, parameterCount = "parameter_count", dtypes, files, totalBytes = "total_bytes", tensors, vocab, tokenizer, warnings
    }

    public init(_ release: Release) {
        path = release.path
        format = release.layout == .file ? (release.files.first?.format.rawValue ?? "file") : release.layout.rawValue
        parameters = release.parameters
        parameterCount = release.parameterCount
        var mix = [String: DTypeShare]()
        for (_, t) in release.tensors {
            var share = mix[t.dtype.rawValue] ?? DTypeShare(tensors: 0, parameters: 0)
            share.tensors += 1
            share.parameters += t.elementCount
            mix[t.dtype.rawValue] = share
        }
        dtypes = mix
        let grouped = release.isPack && release.files.count > 1
        files = release.files.map { f in
            let bytes = grouped ? f.tensors.reduce(0) { $0 + Self.storedBytes($1) } : f.tensors.first?.file.size ?? 0
            return FileInfo(path: f.path, format: f.format, bytes: bytes, tensors: f.tensors.count)
        }
        var sizes = [String: Int]()
        for f in release.files { for t in f.tensors { sizes[t.file.path] = t.file.size } }
        totalBytes = sizes.values.reduce(0, +)
        let packStorage = release.isPack
        tensors = release.tensors.map { f, t in
            TensorInfo(name: t.name, dtype: t.dtype, shape: t.shape, bytes: t.byteCount,
                       shard: f.path.split(separator: "/").last.map(String.init) ?? f.path, contiguous: t.isDense,
                       storage: Self.storage(t, inPack: packStorage))
        }
        vocab = release.vocab
        // A pack's tokenizer is a blob: reported as PACK:tokenizer.model.
        if let t = release.tokenizerPath {
            tokenizer = t
        } else if release.isPack, ((try? release.sideFiles.bytes("tokenizer.model")) ?? nil) != nil {
            tokenizer = release.sideFiles.location("tokenizer.model")
        }
        warnings = release.warnings
    }

    static func storage(_ t: Tensor, inPack: Bool) -> String {
        switch t.layout {
        case .strided: return "strided"
        case .packed: return "zstd planes"
        case .unreadable: return "unreadable (newer billa)"
        case .dense: return inPack ? "raw" : "dense"
        }
    }

    /// Bytes the tensor occupies in its pack: its chunks and chunk index, or its raw bytes.
    static func storedBytes(_ t: Tensor) -> Int {
        if case .packed(let p) = t.layout { let x = p.entry.extent; return x.end - x.start }
        return t.byteCount
    }
}
