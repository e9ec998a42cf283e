/// The two pre-tokenizer regexes byte-level BPE models use, matched by hand instead of by a regex engine (as
/// llama.cpp's unicode.cpp does for them), with the semantics of the backtracking engines the references use
/// (Oniguruma in `tokenizers`, fancy-regex in tiktoken: leftmost-first alternation, greedy quantifiers):
///
///     Llama-3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
///     Qwen2:   the same with \p{N} instead of \p{N}{1,3}
///
/// \p{L} is general category L*, \p{N} is N*, \s is the White_Space property (Oniguruma's \s, checked against
/// it over every code point by UnicodeClassTests). `(?i:'s)` also matches "'ſ": U+017F case-folds to s.
public struct SplitPattern: Sendable, Equatable {
    /// How many \p{N} characters one digit group takes: 3 (Llama-3) or 1 (Qwen2).
    public let maxDigits: Int

    public static let llama3Regex = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    public static let qwen2Regex = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    public static let llama3 = SplitPattern(maxDigits: 3)
    public static let qwen2 = SplitPattern(maxDigits: 1)

    /// The matcher for a regex given in a tokenizer file, or nil when it is neither of the two.
    public static func forRegex(_ regex: String) -> SplitPattern? {
        switch regex {
        case llama3Regex: return .llama3
        case qwen2Regex: return .qwen2
        default: return nil
        }
    }

    /// Calls `piece(start, end)` for each consecutive piece of valid UTF-8 `b` (the pieces cover `b`).
    @inline(__always)
    func split(_ b: UnsafeBufferPointer<UInt8>, _ piece: (Int, Int) -> Void) {
        var i = 0
        while i < b.count {
            let e = matchEnd(b, i)
            piece(i, e)
            i = e
        }
    }

    /// The end of the match starting at `i` (every position starts one: the last alternatives take any character).
    func matchEnd(_ b: UnsafeBufferPointer<UInt8>, _ i: Int) -> Int {
        let n = b.count
        let (c, l) = UnicodeClass.at(b, i)
        // (?i:'s|'t|'re|'ve|'m|'ll|'d)
        if b[i] == 0x27, i + 1 < n {
            let x = b[i + 1] | 0x20
            if x == 0x73 || x == 0x74 || x == 0x6D || x == 0x64 { return i + 2 }   // s t m d
            if i + 2 < n {
                let y = b[i + 2] | 0x20
                if (x == 0x72 || x == 0x76) && y == 0x65 { return i + 3 }        // re ve
                if x == 0x6C && y == 0x6C { return i + 3 }                         // ll
                if b[i + 1] == 0xC5 && b[i + 2] == 0xBF { return i + 3 }           // 'ſ
            }
        }
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if c == .letter { return letters(b, i + l) }
        if c != .newline && c != .number && i + l < n, UnicodeClass.at(b, i + l).0 == .letter {
            return letters(b, i + l)
        }
        // \p{N}{1,maxDigits}
        if c == .number {
            var j = i + l, k = 1
            while k < maxDigits, j < n {
                let (c2, l2) = UnicodeClass.at(b, j)
                guard c2 == .number else { break }
                j += l2; k += 1
            }
            return j
        }
        // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
        var p = -1
        if c == .other { p = i } else if b[i] == 0x20, i + 1 < n, UnicodeClass.at(b, i + 1).0 == .other { p = i + 1 }
        if p >= 0 {
            while p < n {
                let (c2, l2) = UnicodeClass.at(b, p)
                guard c2 == .other else { break }
                p += l2
            }
            while p < n, b[p] == 0x0D || b[p] == 0x0A { p += 1 }
            return p
        }
        // c is whitespace here: find the run and its last newline and last character
        var j = i, lastNewline = -1, lastStart = i, chars = 0
        while j < n {
            let (c2, l2) = UnicodeClass.at(b, j)
            guard c2 == .space || c2 == .newline else { break }
            if c2 == .newline { lastNewline = j }
            lastStart = j
            j += l2; chars += 1
        }
        if lastNewline >= 0 { return lastNewline + 1 }    // \s*[\r\n]+
        if j == n { return j }                             // \s+(?!\S) at the end
        if chars >= 2 { return lastStart }                 // \s+(?!\S): leave the last space to the next word
        return j                                           // \s+
    }

    @inline(__always)
    private func letters(_ b: UnsafeBufferPointer<UInt8>, _ from: Int) -> Int {
        var j = from
        while j < b.count {
            let (c, l) = UnicodeClass.at(b, j)
            guard c == .letter else { break }
            j += l
        }
        return j
    }
}

/// The character classes the split regexes ask about, for a scalar. From Swift's Unicode tables
/// (`Unicode.Scalar.Properties`), which are Unicode 17 in Swift 6.3, cut back to the Unicode 16.0 that both
/// references use (Oniguruma in tokenizers 0.23.3 and regex-syntax in tiktoken 0.14.0 agree on every code point):
/// a letter or number assigned after 16.0 is "other" to them, so it is here. UnicodeClassTests compares the
/// result with Oniguruma's on every code point.
enum UnicodeClass: UInt8, Sendable {
    case other = 0, letter, number, space, newline

    /// The Unicode version of the references' tables.
    static let referenceVersion = (major: 16, minor: 0)

    static func of(_ v: UInt32) -> UnicodeClass {
        if v == 0x0A || v == 0x0D { return .newline }
        guard let s = Unicode.Scalar(v) else { return .other }
        let p = s.properties
        if p.isWhitespace { return .space }
        if let age = p.age, (age.major, age.minor) > referenceVersion { return .other }
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .number
        default: return .other
        }
    }

    /// Classes of U+0000-U+FFFF, built once; astral scalars are looked up each time.
    static let bmp: [UnicodeClass] = (0..<0x10000).map { of(UInt32($0)) }

    /// The class of the character at `i` of valid UTF-8 and its length in bytes.
    @inline(__always)
    static func at(_ b: UnsafeBufferPointer<UInt8>, _ i: Int) -> (UnicodeClass, Int) {
        let c0 = UInt32(b[i])
        if c0 < 0x80 { return (ascii[Int(c0)], 1) }
        if c0 < 0xE0 { return (bmp[Int((c0 & 0x1F) << 6 | UInt32(b[i + 1] & 0x3F))], 2) }
        if c0 < 0xF0 {
            return (bmp[Int((c0 & 0x0F) << 12 | UInt32(b[i + 1] & 0x3F) << 6 | UInt32(b[i + 2] & 0x3F))], 3)
        }
        let v = (c0 & 0x07) << 18 | UInt32(b[i + 1] & 0x3F) << 12 | UInt32(b[i + 2] & 0x3F) << 6 | UInt32(b[i + 3] & 0x3F)
        return (of(v), 4)
    }

    static let ascii: [UnicodeClass] = (0..<128).map { of(UInt32($0)) }
}
