import Foundation

/// Finds the tokenizer that belongs to a model, wherever the model keeps it: `tokenizer.model` beside the weights
/// (Meta and Hugging Face directories), the `tokenizer.model` blob of a billa pack, or the vocabulary inside a GGUF
/// (which llama.cpp's "llama" tokenizer reads as a byte-fallback BPE SentencePiece model).
public enum ModelTokenizer {
    /// The tokenizer, or nil when the model carries none.
    public static func load(for release: Release) throws -> Tokenizer? {
        if let path = release.tokenizerPath { return try Tokenizer(path: path) }
        guard release.layout == .file || release.files.count == 1, let file = release.files.first else { return nil }
        switch file.format {
        case .billaPack:
            let pack = try PackReader.open(file.path)
            guard let blob = try pack.blob(named: "tokenizer.model") else { return nil }
            return try Tokenizer(model: SentencePieceModel(bytes: Array(blob), path: file.path + ":tokenizer.model"))
        case .gguf:
            return try fromGGUF(GGUFReader.open(file.path))
        default:
            return nil
        }
    }

    /// A SentencePiece model rebuilt from GGUF's tokenizer.ggml.* keys: llama.cpp's SPM vocabulary is BPE over
    /// these pieces and scores, with byte fallback, a dummy prefix and '▁' for spaces.
    static func fromGGUF(_ g: GGUFFile) throws -> Tokenizer? {
        guard g.metadata[GGUFKeys.tokenizerModel]?.stringValue == "llama",
              case .array(_, let tokens)? = g.metadata[GGUFKeys.tokens] else { return nil }
        var scores = [GGUFValue]()
        if case .array(_, let s)? = g.metadata[GGUFKeys.scores] { scores = s }
        var types = [GGUFValue]()
        if case .array(_, let t)? = g.metadata[GGUFKeys.tokenTypes] { types = t }
        var proto = Sentencepiece_ModelProto()
        for (i, t) in tokens.enumerated() {
            var piece = Sentencepiece_ModelProto.SentencePiece()
            piece.piece = t.stringValue ?? ""
            if i < scores.count, case .f32(let s) = scores[i] { piece.score = s }
            switch i < types.count ? types[i].intValue ?? 1 : 1 {
            case 2: piece.type = .unknown
            case 3: piece.type = .control
            case 4: piece.type = .userDefined
            case 5: piece.type = .unused
            case 6: piece.type = .byte
            default: piece.type = .normal
            }
            proto.pieces.append(piece)
        }
        proto.trainerSpec.modelType = .bpe
        proto.trainerSpec.byteFallback = true
        proto.trainerSpec.unkID = Int32(g.metadata[GGUFKeys.unk]?.intValue ?? 0)
        proto.trainerSpec.bosID = Int32(g.metadata[GGUFKeys.bos]?.intValue ?? 1)
        proto.trainerSpec.eosID = Int32(g.metadata[GGUFKeys.eos]?.intValue ?? 2)
        proto.trainerSpec.padID = Int32(g.metadata[GGUFKeys.pad]?.intValue ?? -1)
        proto.normalizerSpec.name = "identity"
        proto.normalizerSpec.addDummyPrefix = true
        proto.normalizerSpec.removeExtraWhitespaces = false
        proto.normalizerSpec.escapeWhitespaces = true
        return try Tokenizer(model: SentencePieceModel(proto: proto, path: g.path))
    }
}
