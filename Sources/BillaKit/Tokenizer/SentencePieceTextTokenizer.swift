/// The SentencePiece tokenizer seen through `TextTokenizer`.
extension Tokenizer: TextTokenizer {
    public var kind: TokenizerKind { .sentencepiece }
    public var vocabularySize: Int { pieceCount }
    public var unknownID: Int? { unkID }

    public func segment(_ text: String) -> Segmentation {
        var scratch = Scratch(), tokens = [Token]()
        var t = text
        t.withUTF8 { encode(utf8: $0, scratch: &scratch, into: &tokens) }
        return Segmentation(normalized: scratch.normalized, tokens: tokens, byteFallback: tokens.map { isByte(Int($0.id)) })
    }

    public func holdsAsOnePiece(_ text: String) -> Bool {
        id(of: text) != unkID || id(of: "\u{2581}" + text) != unkID
    }
}
