/// The JSON metadata of a pack (formats/pack.md 6): where the weights came from, what model they are and how they
/// were stored, so a pack explains itself without its source.
public struct PackMetadata: Codable, Sendable, Equatable {
    public struct SourceFile: Codable, Sendable, Equatable {
        public var name: String
        public var bytes: Int
        public var sha256: String
    }

    public struct Source: Codable, Sendable, Equatable {
        public var layout: String
        public var name: String
        public var files: [SourceFile]
    }

    /// One source tensor file; tensor entries point here so a Meta release's model-parallel shards (which repeat
    /// tensor names) survive packing.
    public struct Group: Codable, Sendable, Equatable {
        public var name: String
        public var format: String
        public var safetensorsMetadata: [String: String]?

        enum CodingKeys: String, CodingKey { case name, format, safetensorsMetadata = "safetensors_metadata" }
    }

    public struct Compression: Codable, Sendable, Equatable {
        public var raw: Bool?
        public var zstd: String?
        public var level: Int?
        public var chunkBytes: Int?
        public var transforms: [String: String]?

        enum CodingKeys: String, CodingKey { case raw, zstd, level, chunkBytes = "chunk_bytes", transforms }
    }

    public var billaVersion: String
    public var source: Source
    public var groups: [Group]
    public var model: ModelParameters?
    public var vocab: VocabCheck?
    public var compression: Compression
    /// How block-quantized tensors were made (recipe and layout), when the pack holds them; absent otherwise.
    public var quantization: String? = nil

    enum CodingKeys: String, CodingKey {
        case billaVersion = "billa_version", source, groups, model, vocab, compression, quantization
    }
}
