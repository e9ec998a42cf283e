/// A SentencePiece vocabulary as llama.cpp's "llama" tokenizer reads it from GGUF: pieces, scores and token types,
/// padded to the embedding's rows the way convert_hf_to_gguf pads extended vocabularies ("[PAD<id>]", UNUSED).
struct GGUFVocabulary {
    /// llama.cpp's token types (gguf-py TokenType).
    enum TokenType: Int32 { case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6 }

    var tokens: [[UInt8]] = []
    var scores: [Float] = []
    var types: [Int32] = []
    var bos: Int32 = 1, eos: Int32 = 2, unk: Int32 = 0
    var pad: Int32? = nil

    static func load(_ path: String, rows: Int) throws -> GGUFVocabulary {
        let model = try SentencePieceModel.load(path)
        var v = GGUFVocabulary()
        guard model.pieceCount <= rows else {
            throw BillaError(.shapeMismatch, file: path,
                             "the tokenizer has \(model.pieceCount) pieces but the embedding has only \(rows) rows",
                             remedy: "pair the weights with the tokenizer they were trained with (extended Chinese vocabularies need their own tokenizer.model)")
        }
        for p in model.proto.pieces {
            v.tokens.append(Array(p.piece.utf8))
            v.scores.append(p.score)
            // convert_hf_to_gguf: unknown, control, unused and byte keep their type; normal and user-defined
            // pieces of the model itself are NORMAL.
            switch p.type {
            case .unknown: v.types.append(TokenType.unknown.rawValue)
            case .control: v.types.append(TokenType.control.rawValue)
            case .unused: v.types.append(TokenType.unused.rawValue)
            case .byte: v.types.append(TokenType.byte.rawValue)
            default: v.types.append(TokenType.normal.rawValue)
            }
        }
        for id in model.pieceCount..<rows {
            v.tokens.append(Array("[PAD\(id)]".utf8))
            v.scores.append(-1000)
            v.types.append(TokenType.unused.rawValue)
        }
        let spec = model.proto.trainerSpec
        v.bos = spec.bosID
        v.eos = spec.eosID
        v.unk = spec.unkID
        v.pad = spec.padID >= 0 ? spec.padID : nil
        return v
    }

    func write(into m: inout GGUFMetadata, addBOS: Bool, addEOS: Bool) {
        m[GGUFKeys.tokenizerModel] = .text("llama")
        m[GGUFKeys.tokens] = .array(.string, tokens.map { .string($0) })
        m[GGUFKeys.scores] = .array(.f32, scores.map { .f32($0) })
        m[GGUFKeys.tokenTypes] = .array(.i32, types.map { .i32($0) })
        if bos >= 0 { m[GGUFKeys.bos] = .u32(UInt32(bos)) }
        if eos >= 0 { m[GGUFKeys.eos] = .u32(UInt32(eos)) }
        if unk >= 0 { m[GGUFKeys.unk] = .u32(UInt32(unk)) }
        if let pad { m[GGUFKeys.pad] = .u32(UInt32(pad)) }
        m[GGUFKeys.addBOS] = .bool(addBOS)
        m[GGUFKeys.addEOS] = .bool(addEOS)
    }
}
