/// Vocabulary extension the way Chinese-LLaMA-Alpaca's scripts/merge_tokenizer/merge_tokenizers.py does it: keep the
/// base ModelProto as it is (specs, unknown fields and all) and append, in the extra model's order, every extra piece
/// whose text the base does not have, as a SentencePiece with only `piece` and `score = 0` set. Because the base's
/// pieces are BPE scores (negative) and the new ones score 0, the new pieces win every merge they take part in.
public enum VocabMerge {
    /// The pad piece `--add-pad` appends: "[PAD]", the pad token Chinese-Alpaca's training scripts add
    /// (run_clm_sft_with_peft.py, DEFAULT_PAD_TOKEN), as a CONTROL piece so text never encodes to it.
    public static let padPiece = "[PAD]"

    public struct Result: Sendable {
        public let model: SentencePieceModel
        public let basePieces: Int
        public let added: Int
        public let skipped: Int
        public let padID: Int?
    }

    public static func merge(base: SentencePieceModel, extra: SentencePieceModel, addPad: Bool) throws -> Result {
        var proto = base.proto
        // The reference builds this set once from the base and never adds to it. Python compares code points, so
        // the set holds bytes: Swift's String equality would merge canonically equivalent pieces.
        let present = Set(base.proto.pieces.map { Array($0.piece.utf8) })
        var added = 0
        for p in extra.proto.pieces where !present.contains(Array(p.piece.utf8)) {
            var n = Sentencepiece_ModelProto.SentencePiece()
            n.piece = p.piece
            n.score = 0
            proto.pieces.append(n)
            added += 1
        }
        var padID: Int?
        if addPad {
            if let existing = proto.pieces.firstIndex(where: { Array($0.piece.utf8) == Array(padPiece.utf8) }) {
                throw BillaError(.invalidArgument, file: base.path,
                                 "the merged vocabulary already has \(padPiece) (id \(existing))",
                                 remedy: "drop --add-pad")
            }
            var n = Sentencepiece_ModelProto.SentencePiece()
            n.piece = padPiece
            n.score = 0
            n.type = .control
            padID = proto.pieces.count
            proto.pieces.append(n)
        }
        return Result(model: SentencePieceModel(proto: proto), basePieces: base.pieceCount, added: added,
                      skipped: extra.pieceCount - added, padID: padID)
    }
}
