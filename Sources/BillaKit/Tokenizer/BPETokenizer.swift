import Foundation

/// A byte-level BPE tokenizer: Hugging Face `tokenizer.json` (model BPE, the Llama-3 or Qwen2 split regex then
/// ByteLevel without its own regex, added tokens, NFC or no normalizer, `ignore_merges`, TemplateProcessing bos)
/// or Meta's tiktoken `tokenizer.model`. Vocabulary and merges are kept as raw bytes (the byte-level alphabet is
/// undone on load), so a word is merged straight from the text's UTF-8.
public final class BPETokenizer: TextTokenizer {
    public let kind: TokenizerKind
    public let path: String
    public let vocabularySize: Int
    public let bosID: Int?
    public let eosID: Int?
    public let padID: Int?
    public var unknownID: Int? { nil }

    let pattern: SplitPattern
    let merges: MergeTable
    /// raw bytes → id of the model's own tokens (not added tokens)
    let index: PieceIndex
    let byteIDs: [Int32]
    /// The whole pre-token is looked up before merging (tokenizer.json's `ignore_merges`; tiktoken always does it).
    let ignoreMerges: Bool
    let nfc: Bool
    let addedRaw: AddedTokenMatcher
    let addedNormalized: AddedTokenMatcher
    /// What each id decodes to: the raw bytes for byte-level tokens, the UTF-8 of an added token (empty: no such id).
    let decodeBytes: [[UInt8]]
    /// Tokens spelled outside the byte-level alphabet (added tokens, tiktoken's specials), shown as they are.
    let literalPieces: [Int32: String]
    /// Meta's llama-models encode(): texts cut at 400,000 characters and runs of more than 25,000 whitespace or
    /// non-whitespace characters, each part encoded on its own.
    let metaChunking: Bool

    struct Parts {
        var kind: TokenizerKind
        var path: String
        var pattern: SplitPattern
        var merges: MergeTable
        var index: PieceIndex
        var byteIDs: [Int32]
        var ignoreMerges: Bool
        var nfc: Bool
        var added: [AddedTokenMatcher.Entry] = []
        var addedNormalized: [AddedTokenMatcher.Entry] = []
        var decodeBytes: [[UInt8]]
        var literalPieces: [Int32: String] = [:]
        var bosID: Int?
        var eosID: Int?
        var padID: Int?
        var metaChunking = false
    }

    init(_ p: Parts) {
        kind = p.kind; path = p.path; pattern = p.pattern; merges = p.merges; index = p.index; byteIDs = p.byteIDs
        ignoreMerges = p.ignoreMerges; nfc = p.nfc
        addedRaw = AddedTokenMatcher(p.added); addedNormalized = AddedTokenMatcher(p.addedNormalized)
        decodeBytes = p.decodeBytes; literalPieces = p.literalPieces
        vocabularySize = p.decodeBytes.indices.filter { !p.decodeBytes[$0].isEmpty || p.literalPieces[Int32($0)] != nil }.count
        bosID = p.bosID; eosID = p.eosID; padID = p.padID; metaChunking = p.metaChunking
    }

    /// Buffers reused from text to text.
    public struct Scratch {
        public internal(set) var normalized: [UInt8] = []
        var merge = MergeBuffers()
        public init() {}
    }

    // MARK: encoding

    public func encode(_ text: String) -> [Int] {
        var scratch = Scratch(), tokens = [Tokenizer.Token]()
        var t = text
        t.withUTF8 { encode(utf8: $0, scratch: &scratch, into: &tokens) }
        return tokens.map { Int($0.id) }
    }

    public func encode(bytes: [UInt8], source: String?) throws -> [Int] {
        try UTF8Check.validate(bytes, source: source)
        var scratch = Scratch(), tokens = [Tokenizer.Token]()
        bytes.withUnsafeBufferPointer { encode(utf8: $0, scratch: &scratch, into: &tokens) }
        return tokens.map { Int($0.id) }
    }

    /// The core: `utf8` must be valid UTF-8. Spans are over `scratch.normalized`.
    public func encode(utf8: UnsafeBufferPointer<UInt8>, scratch: inout Scratch, into tokens: inout [Tokenizer.Token]) {
        tokens.removeAll(keepingCapacity: true)
        scratch.normalized.removeAll(keepingCapacity: true)
        if metaChunking, utf8.count > MetaChunks.limit {
            for (s, e) in MetaChunks.parts(utf8) {
                encodePart(UnsafeBufferPointer(rebasing: utf8[s..<e]), &scratch, &tokens)
            }
        } else {
            encodePart(utf8, &scratch, &tokens)
        }
    }

    private func encodePart(_ b: UnsafeBufferPointer<UInt8>, _ scratch: inout Scratch, _ tokens: inout [Tokenizer.Token]) {
        var gaps = [(Int, Int, Int32?)]()
        addedRaw.split(b, 0, b.count) { gaps.append(($0, $1, $2)) }
        for (s, e, id) in gaps {
            let base = scratch.normalized.count
            if let id {
                scratch.normalized.append(contentsOf: UnsafeBufferPointer(rebasing: b[s..<e]))
                tokens.append(Tokenizer.Token(id: id, start: Int32(base), end: Int32(scratch.normalized.count)))
                continue
            }
            if nfc { NFC.append(UnsafeBufferPointer(rebasing: b[s..<e]), to: &scratch.normalized) } else {
                scratch.normalized.append(contentsOf: UnsafeBufferPointer(rebasing: b[s..<e]))
            }
            let end = scratch.normalized.count
            var merge = scratch.merge
            scratch.normalized.withUnsafeBufferPointer { norm in
                if addedNormalized.isEmpty {
                    encodeWords(norm, base, end, &merge, &tokens)
                } else {
                    var inner = [(Int, Int, Int32?)]()
                    addedNormalized.split(norm, base, end) { inner.append(($0, $1, $2)) }
                    for (s2, e2, id2) in inner {
                        if let id2 { tokens.append(Tokenizer.Token(id: id2, start: Int32(s2), end: Int32(e2))) } else {
                            encodeWords(norm, s2, e2, &merge, &tokens)
                        }
                    }
                }
            }
            scratch.merge = merge
        }
    }

    /// Pre-tokenizes `b[from..<to]` with the split pattern and merges each word.
    @inline(__always)
    private func encodeWords(_ b: UnsafeBufferPointer<UInt8>, _ from: Int, _ to: Int, _ merge: inout MergeBuffers,
                             _ tokens: inout [Tokenizer.Token]) {
        guard let base = b.baseAddress else { return }
        var i = from
        let part = UnsafeBufferPointer(start: base, count: to)
        while i < to {
            let e = pattern.matchEnd(part, i)
            let n = e - i
            if n == 1 {
                tokens.append(Tokenizer.Token(id: byteIDs[Int(b[i])], start: Int32(i), end: Int32(e)))
            } else if ignoreMerges, let id = index.lookup(base + i, n) {
                tokens.append(Tokenizer.Token(id: id, start: Int32(i), end: Int32(e)))
            } else {
                var at = i
                merge.merge(merges, count: n, initial: { byteIDs[Int(b[i + $0])] }) { id, len in
                    tokens.append(Tokenizer.Token(id: id, start: Int32(at), end: Int32(at + len)))
                    at += len
                }
            }
            i = e
        }
    }

    public func encodePieces(_ text: String) -> [String] {
        encode(text).map { piece($0) }
    }

    /// An id's text as the vocabulary spells it: byte-level characters ("Ġthe"), or an added token's content.
    public func piece(_ id: Int) -> String {
        if let s = literalPieces[Int32(id)] { return s }
        guard id >= 0, id < decodeBytes.count else { return "" }
        return ByteLevelAlphabet.encode(decodeBytes[id])
    }

    // MARK: decoding

    /// The ByteLevel decoder: the tokens' bytes joined, read as UTF-8 with each malformed sequence as U+FFFD (Rust's
    /// from_utf8_lossy, Python's errors="replace"). Special tokens are kept (skip_special_tokens=False).
    public func decode(_ ids: [Int]) throws -> String {
        var out = [UInt8]()
        for id in ids {
            guard id >= 0, id < decodeBytes.count, !decodeBytes[id].isEmpty || literalPieces[Int32(id)] != nil else {
                throw BillaError(.invalidArgument, file: path, "id \(id) is not in the vocabulary (\(vocabularySize) ids)",
                                 remedy: "pass ids produced by this tokenizer")
            }
            out.append(contentsOf: decodeBytes[id])
        }
        return String(decoding: out, as: UTF8.self)
    }

    // MARK: audit support

    public func segment(_ text: String) -> Segmentation {
        var scratch = Scratch(), tokens = [Tokenizer.Token]()
        var t = text
        t.withUTF8 { encode(utf8: $0, scratch: &scratch, into: &tokens) }
        let b = scratch.normalized
        var fallback = [Bool](repeating: false, count: tokens.count)
        func cont(_ i: Int) -> Bool { i < b.count && b[i] & 0xC0 == 0x80 }
        for (k, tok) in tokens.enumerated() {
            let s = Int(tok.start), e = Int(tok.end)
            guard cont(s) || cont(e) else { continue }
            fallback[k] = true
            // the span becomes the character the token cuts: the one it starts inside, else the one it ends inside
            var c = cont(s) ? s : e
            while c > 0, cont(c) { c -= 1 }
            var d = c + 1
            while cont(d) { d += 1 }
            tokens[k].start = Int32(c); tokens[k].end = Int32(d)
        }
        return Segmentation(normalized: b, tokens: tokens, byteFallback: fallback)
    }

    /// Each id's text as UTF-8 (nil when its bytes are not whole characters), for the vocabulary audit.
    public func tokenTexts() -> [String?] {
        decodeBytes.map { b in
            guard !b.isEmpty, (try? UTF8Check.validate(b, source: nil)) != nil else { return nil }
            return String(decoding: b, as: UTF8.self)
        }
    }

    public func holdsAsOnePiece(_ text: String) -> Bool {
        index.lookup(Array(text.utf8)) != nil || index.lookup(Array((" " + text).utf8)) != nil
    }

    /// Model tokens that encoding can never produce, ignoring context: one whose bytes (when whole characters)
    /// the split pattern cuts into several pre-tokens, or, without `ignore_merges`, one the merges do not build
    /// from its own bytes. Added tokens are always reachable.
    public func unreachableTokens() -> [Int] {
        var out = [Int]()
        var merge = MergeBuffers()
        for id in decodeBytes.indices where literalPieces[Int32(id)] == nil {
            let bytes = decodeBytes[id]
            guard bytes.count > 1, index.lookup(bytes) == Int32(id) else { continue }
            var reachable = true
            if (try? UTF8Check.validate(bytes, source: nil)) != nil {
                reachable = bytes.withUnsafeBufferPointer { pattern.matchEnd($0, 0) == bytes.count }
            }
            if reachable, !ignoreMerges {
                var got = [Int32]()
                merge.merge(merges, count: bytes.count, initial: { byteIDs[Int(bytes[$0])] }) { i, _ in got.append(i) }
                reachable = got == [Int32(id)]
            }
            if !reachable { out.append(id) }
        }
        return out
    }
}

/// Meta's `_split_whitespaces_or_nonwhitespaces` and 400,000-character slices (llama-models 0.3.0
/// llama3/tokenizer.py), on UTF-8: character counts, Python's str.isspace().
enum MetaChunks {
    static let maxChars = 400_000
    static let maxRun = 25_000
    /// Texts no longer than this (in bytes) cannot reach either limit.
    static let limit = maxRun

    static func parts(_ b: UnsafeBufferPointer<UInt8>) -> [(Int, Int)] {
        var out = [(Int, Int)]()
        var chars = 0
        var i = 0
        var runLen = 0, runSpace = false, partStart = 0
        func isSpace(_ i: Int) -> (Bool, Int) {
            let (c, l) = UnicodeClass.at(b, i)
            if c == .space || c == .newline { return (true, l) }
            return ((0x1C...0x1F).contains(b[i]), l)
        }
        if b.count > 0 { runSpace = isSpace(0).0 }
        while i < b.count {
            if chars == maxChars {   // a new 400k slice: the run state starts again
                out.append((partStart, i)); partStart = i; chars = 0
                runLen = 0; runSpace = isSpace(i).0
            }
            let (sp, l) = isSpace(i)
            if sp != runSpace {
                runLen = 1; runSpace = sp
            } else {
                runLen += 1
                if runLen > maxRun {
                    out.append((partStart, i)); partStart = i; runLen = 1
                }
            }
            i += l; chars += 1
        }
        out.append((partStart, b.count))
        return out
    }
}
