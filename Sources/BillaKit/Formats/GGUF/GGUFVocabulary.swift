/// A SentencePiece vocabulary as llama.cpp's "llama" tokenizer reads it from GGUF: pieces, scores and token types,
/// with a Hugging Face directory's added tokens (HFAddedVocabulary) and padded to the embedding's rows the way
/// convert_hf_to_gguf's _create_vocab_sentencepiece does ("[PAD<id>]", UNUSED, score -10000).
struct GGUFVocabulary {
    /// llama.cpp's token types (gguf-py TokenType).
    enum TokenType: Int32 { case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6 }

    var tokens: [[UInt8]] = []
    var scores: [Float] = []
    var types: [Int32] = []
    var bos: Int32 = 1, eos: Int32 = 2, unk: Int32 = 0
    var pad: Int32? = nil
    /// SpecialVocab's other ids (sep, cls, mask), from an HF directory.
    var otherSpecial: [(key: String, id: Int32)] = []
    var addBOS: Bool? = nil
    var addEOS: Bool? = nil
    var notes: [String] = []

    /// gguf-py's keys for SpecialVocab's types ("seperator" is gguf's spelling).
    static let specialKeys = ["sep": "tokenizer.ggml.seperator_token_id", "cls": "tokenizer.ggml.cls_token_id",
                              "mask": "tokenizer.ggml.mask_token_id"]

    /// `hfFiles`: the Hugging Face side files whose added tokens and special ids apply (nil for Meta releases).
    static func load(_ model: SentencePieceModel, rows: Int, hfFiles: SideFiles? = nil) throws -> GGUFVocabulary {
        let path = model.path
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
            v.scores.append(-10000)
            v.types.append(TokenType.unused.rawValue)
        }
        let spec = model.proto.trainerSpec
        v.bos = spec.bosID
        v.eos = spec.eosID
        v.unk = spec.unkID
        v.pad = spec.padID >= 0 ? spec.padID : nil
        if let hf = hfFiles {
            // gguf-py's SpecialVocab writes an unknown id only when the directory names one (tokenizer_config's
            // unk_token found in tokenizer.json, or config.json's unk_token_id), never from tokenizer.model.
            v.unk = -1
            try v.apply(HFAddedVocabulary.load(hf, rows: rows))
        }
        return v
    }

    /// Added tokens replace what is at their id; special ids found in the directory replace the trainer spec's.
    mutating func apply(_ added: HFAddedVocabulary) {
        for t in added.tokens {
            tokens[t.id] = Array(t.text.utf8)
            scores[t.id] = -1000
            types[t.id] = t.type.rawValue
        }
        let ids = added.specialIDs.mapValues { Int32($0) }
        if let id = ids["bos"] { bos = id }
        if let id = ids["eos"] { eos = id }
        if let id = ids["unk"] { unk = id }
        if let id = ids["pad"] { pad = id }
        otherSpecial = ["sep", "cls", "mask"].compactMap { t in ids[t].map { (key: Self.specialKeys[t]!, id: $0) } }
        addBOS = added.addBOS
        addEOS = added.addEOS
        notes += added.notes
    }

    /// Rows no piece or added token fills.
    var paddingCount: Int { zip(tokens, types).filter { $1 == TokenType.unused.rawValue && $0.starts(with: Array("[PAD".utf8)) }.count }

    /// add_bos/add_eos default to what llama.cpp assumes for a "llama" vocabulary when the keys are absent.
    /// `tokenizer.ggml.pre` is "default", as _set_vocab_sentencepiece writes it.
    func write(into m: inout GGUFMetadata) {
        m[GGUFKeys.tokenizerModel] = .text("llama")
        m[GGUFBPEKeys.pre] = .text("default")
        m[GGUFKeys.tokens] = .array(.string, tokens.map { .string($0) })
        m[GGUFKeys.scores] = .array(.f32, scores.map { .f32($0) })
        m[GGUFKeys.tokenTypes] = .array(.i32, types.map { .i32($0) })
        if bos >= 0 { m[GGUFKeys.bos] = .u32(UInt32(bos)) }
        if eos >= 0 { m[GGUFKeys.eos] = .u32(UInt32(eos)) }
        if unk >= 0 { m[GGUFKeys.unk] = .u32(UInt32(unk)) }
        if let pad { m[GGUFKeys.pad] = .u32(UInt32(pad)) }
        for (key, id) in otherSpecial { m[key] = .u32(UInt32(id)) }
        m[GGUFKeys.addBOS] = .bool(addBOS ?? true)
        m[GGUFKeys.addEOS] = .bool(addEOS ?? false)
    }
}
