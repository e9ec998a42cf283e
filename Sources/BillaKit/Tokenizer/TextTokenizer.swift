import Foundation

/// The three tokenizer files LLaMA-family models ship: SentencePiece's protobuf `tokenizer.model` (LLaMA 1/2,
/// Chinese-LLaMA), Hugging Face's `tokenizer.json` (byte-level BPE: Llama-3 HF releases, Qwen2, Mistral's newer
/// ones) and Meta's tiktoken `tokenizer.model` (base64 token + rank lines: Llama-3 originals).
public enum TokenizerKind: String, Sendable, Codable {
    case sentencepiece
    case tokenizerJSON = "tokenizer.json"
    case tiktoken
    /// A GGUF file's own vocabulary (tokenizer.ggml.*), as llama.cpp reads it.
    case gguf
}

/// What every command needs from a tokenizer, whichever file it came from. Ids are the reference library's:
/// sentencepiece's for SentencePiece models, `tokenizers`' for tokenizer.json, tiktoken's (as Meta's
/// llama-models drives it) for Meta's tiktoken file, llama.cpp's for a GGUF's vocabulary.
public protocol TextTokenizer: AnyObject, Sendable {
    var kind: TokenizerKind { get }
    /// The number of distinct ids the tokenizer can produce or decode, added and special tokens included.
    var vocabularySize: Int { get }
    var bosID: Int? { get }
    var eosID: Int? { get }
    var padID: Int? { get }
    /// nil for byte-level BPE, which never needs one.
    var unknownID: Int? { get }
    /// The ids of `text` without bos/eos (add_special_tokens=False).
    func encode(_ text: String) -> [Int]
    /// Encodes raw bytes, refusing malformed UTF-8.
    func encode(bytes: [UInt8], source: String?) throws -> [Int]
    /// Each token's text as the vocabulary spells it (SentencePiece's pieces; tokenizer.json's byte-level strings,
    /// e.g. "Ġthe"; tiktoken's bytes shown the same byte-level way).
    func encodePieces(_ text: String) -> [String]
    func decode(_ ids: [Int]) throws -> String
    /// Tokens with their spans over the normalized text, and which are byte fallback (see `Segmentation`).
    func segment(_ text: String) -> Segmentation
    /// Whether `text` (one character, say) is a single vocabulary entry, alone or after the word-start marker
    /// ('▁' for SentencePiece, a space for byte-level BPE).
    func holdsAsOnePiece(_ text: String) -> Bool
}

/// One text's tokens over the normalized text, for audits. A byte-fallback token is one that is not made of
/// whole characters: SentencePiece's <0xNN> pieces, and byte-level BPE tokens whose span starts or ends inside
/// a character (a Han character written as two tokens, say). Its span is widened to the whole characters.
public struct Segmentation: Sendable {
    public var normalized: [UInt8]
    public var tokens: [Tokenizer.Token]
    public var byteFallback: [Bool]
}

extension TextTokenizer {
    public func encode(bytes: [UInt8]) throws -> [Int] { try encode(bytes: bytes, source: nil) }

    /// The ids a model is fed: the tokenizer's bos, if any, then the text's.
    public func encodeWithSpecials(_ text: String) -> [Int] {
        (bosID.map { [$0] } ?? []) + encode(text)
    }
}
