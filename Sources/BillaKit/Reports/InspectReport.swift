/// What `billa inspect` shows, as data: the CLI renders it as a table or as JSON.
public struct InspectReport: Codable, Sendable {
    public struct FileInfo: Codable, Sendable {
        public var path: String
        public var format: ContainerFormat
        public var bytes: Int
        public var tensors: Int
    }

    public struct TensorInfo: Codable, Sendable {
        public var name: String
        public var dtype: DType
        public var shape: [Int]
        public var bytes: Int
        public var shard: String
        /// False for strided views that are gathered when read.
        public var contiguous: Bool
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
    public var tensors: [TensorInfo]
    public var vocab: VocabCheck
    public var tokenizer: String?
    public var warnings: [String]

    enum CodingKeys: String, CodingKey {
        case path, format, parameters, parameterCount = "parameter_count", dtypes, files, tensors, vocab, tokenizer, warnings
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
        files = release.files.map { FileInfo(path: $0.path, format: $0.format, bytes: $0.tensors.first?.file.size ?? 0, tensors: $0.tensors.count) }
        tensors = release.tensors.map { f, t in
            TensorInfo(name: t.name, dtype: t.dtype, shape: t.shape, bytes: t.byteCount,
                       shard: f.path.split(separator: "/").last.map(String.init) ?? f.path, contiguous: t.isDense)
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
}
