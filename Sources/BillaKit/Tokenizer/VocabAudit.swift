import Foundation

/// The scripts a vocabulary audit reports on. One table of what counts as what, shared with the fixture
/// generator (scripts/fixtures/make_tokenizer_fixtures.py, `category`), so the numbers can be checked against an
/// independent implementation.
public enum Script: String, CaseIterable, Codable, Sendable {
    case han, latin, digits, punctuation, other

    /// CJK ideograph ranges: radicals, 々〆〇, Hangzhou numerals, extension A, the unified block, compatibility
    /// ideographs, extensions B onwards.
    static let hanRanges: [ClosedRange<UInt32>] = [
        0x2E80...0x2FDF, 0x3005...0x3007, 0x3021...0x3029, 0x3038...0x303B,
        0x3400...0x4DBF, 0x4E00...0x9FFF, 0xF900...0xFAFF, 0x20000...0x323AF,
    ]

    static func of(_ s: Unicode.Scalar) -> Script {
        let v = s.value
        if hanRanges.contains(where: { $0.contains(v) }) { return .han }
        if isSpace(s) || v == 0x2581 { return .other }
        if (0x41...0x5A).contains(v) || (0x61...0x7A).contains(v) { return .latin }
        let cat = s.properties.generalCategory
        if (0xC0...0x24F).contains(v), isLetter(cat) { return .latin }
        if cat == .decimalNumber { return .digits }
        switch cat {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation,
             .finalPunctuation, .otherPunctuation, .mathSymbol, .currencySymbol, .modifierSymbol, .otherSymbol:
            return .punctuation
        default: return .other
        }
    }

    /// Python's str.isspace(): White_Space plus the information separators U+001C-U+001F.
    static func isSpace(_ s: Unicode.Scalar) -> Bool { s.properties.isWhitespace || (0x1C...0x1F).contains(s.value) }

    private static func isLetter(_ c: Unicode.GeneralCategory) -> Bool {
        switch c {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }
}

/// Counts per script plus "overall", the shape of every coverage number.
public struct ScriptCounts<T: Codable & Sendable>: Codable, Sendable {
    public var values: [String: T]
    subscript(_ s: Script) -> T? { values[s.rawValue] }
    public init(_ values: [String: T]) { self.values = values }
    public init(from decoder: Decoder) throws { values = try [String: T](from: decoder) }
    public func encode(to encoder: Encoder) throws { try values.encode(to: encoder) }
}

/// Tokenization cost of one corpus under one tokenizer.
public struct Coverage: Codable, Sendable {
    public var corpus: String
    public var texts: Int
    public var chars: ScriptCounts<Int>
    public var tokens: ScriptCounts<Int>
    public var byteTokens: ScriptCounts<Int>
    public var unkTokens: ScriptCounts<Int>
    public var tokensPerChar: ScriptCounts<Double?>
    public var byteFallbackRate: ScriptCounts<Double?>
    public var unkRate: ScriptCounts<Double?>
    /// The Han characters spelled with byte tokens most often: (character, occurrences), most frequent first.
    public var hanByteFallbackTop: [HanFallback]
    /// Distinct Han characters of the corpus, and how many of them the vocabulary holds as one piece.
    public var hanDistinct: Int
    public var hanDistinctCovered: Int

    public struct HanFallback: Codable, Sendable, Equatable { public var char: String; public var count: Int }

    enum CodingKeys: String, CodingKey {
        case corpus, texts, chars, tokens, byteTokens = "byte_tokens", unkTokens = "unk_tokens", tokensPerChar = "tokens_per_char"
        case byteFallbackRate = "byte_fallback_rate", unkRate = "unk_rate", hanByteFallbackTop = "han_byte_fallback_top"
        case hanDistinct = "han_distinct", hanDistinctCovered = "han_distinct_covered"
    }
}

/// Everything `billa vocab audit` says about one tokenizer (and the model around it, when there is one).
public struct VocabAuditReport: Codable, Sendable {
    public struct Special: Codable, Sendable { public var name: String; public var id: Int?; public var config: Int?; public var ok: Bool }
    public struct CJK: Codable, Sendable {
        /// Han characters that are a piece by themselves (with or without the leading '▁').
        public var hanPieces: Int
        /// Of the 20,992 characters of the CJK Unified Ideographs block (U+4E00-U+9FFF), how many are pieces.
        public var unifiedBlockCovered: Int
        public var unifiedBlockSize: Int
        enum CodingKeys: String, CodingKey { case hanPieces = "han_pieces", unifiedBlockCovered = "unified_block_covered", unifiedBlockSize = "unified_block_size" }
    }

    public var tokenizer: String
    public var pieces: Int
    public var algorithm: String
    public var byteFallback: Bool
    public var vocab: VocabCheck?
    public var special: [Special]
    public var duplicatePieces: [String]
    public var unreachablePieces: Int
    public var unreachableExamples: [String]
    public var consistent: Bool
    public var problems: [String]
    public var cjk: CJK
    public var coverage: [Coverage]

    enum CodingKeys: String, CodingKey {
        case tokenizer, pieces, algorithm, byteFallback = "byte_fallback", vocab, special, duplicatePieces = "duplicate_pieces"
        case unreachablePieces = "unreachable_pieces", unreachableExamples = "unreachable_examples", consistent, problems, cjk, coverage
    }
}

public enum VocabAudit {
    /// Reads a corpus: jsonl with a "text" field per line, or plain text (one text per line).
    public static func readCorpus(_ path: String, quiet: Bool = true) throws -> [String] {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw BillaError(.io, file: path, "cannot read the corpus: \(error.localizedDescription)", remedy: "check the path")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw BillaError(.invalidArgument, file: path, "the corpus is not valid UTF-8", remedy: "convert it first (iconv -f GB18030 -t UTF-8)")
        }
        // Lines end in \n or \r\n (Swift's Character treats \r\n as one newline). The file is jsonl when its first
        // line is a JSON object with a "text" string; then every line must be.
        let lines = text.split(omittingEmptySubsequences: true, whereSeparator: \.isNewline)
        func jsonText(_ line: Substring) -> String? {
            guard line.first == "{", let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return nil }
            return obj["text"] as? String
        }
        guard let first = lines.first, jsonText(first) != nil else { return lines.map(String.init) }
        let meter = ProgressMeter(label: "reading corpus", total: data.count, quiet: quiet)   // JSON, line by line: the slow part
        meter.item((path as NSString).lastPathComponent)
        defer { meter.finish() }
        var out = [String]()
        for (i, line) in lines.enumerated() {
            meter.add(line.utf8.count + 1)
            guard let t = jsonText(line) else {
                throw BillaError(.invalidArgument, file: path, "line \(i + 1) is not a JSON object with a string \"text\" field, though line 1 is",
                                 remedy: "give jsonl with {\"text\": ...} on every line, or plain text")
            }
            out.append(t)
        }
        return out
    }

    /// Tokens per character, byte-fallback and unk rates per script. A token belongs to the script of the first
    /// non-space character of its text; byte tokens belong to the character they spell.
    public static func coverage(_ tok: any TextTokenizer, texts: [String], corpus: String, progress: ProgressMeter? = nil) -> Coverage {
        var chars = [Script: Int](), tokens = [Script: Int](), bytes = [Script: Int](), unks = [Script: Int]()
        var fallback = [String: Int]()
        var distinct = Set<String>()
        progress?.item(corpus)
        for text in texts {
            defer { progress?.add(text.utf8.count) }
            for s in text.unicodeScalars {
                let script = Script.of(s)
                chars[script, default: 0] += 1
                if script == .han { distinct.insert(String(s)) }
            }
            let seg = tok.segment(text)
            var lastRun: (Int32, Int32)? = nil
            for (k, token) in seg.tokens.enumerated() {
                let span = seg.normalized[Int(token.start)..<Int(token.end)]
                let surface = String(decoding: span, as: UTF8.self)
                let first = surface.unicodeScalars.first { !Script.isSpace($0) && $0.value != 0x2581 }
                let script = first.map(Script.of) ?? .other
                tokens[script, default: 0] += 1
                let id = Int(token.id)
                if seg.byteFallback[k] {
                    bytes[script, default: 0] += 1
                    if script == .han, lastRun.map({ $0 != (token.start, token.end) }) ?? true, let c = first {
                        fallback[String(c), default: 0] += 1
                    }
                    lastRun = (token.start, token.end)
                } else {
                    lastRun = nil
                }
                if id == tok.unknownID { unks[script, default: 0] += 1 }
            }
        }
        func counts(_ d: [Script: Int]) -> ScriptCounts<Int> {
            var v = Dictionary(uniqueKeysWithValues: Script.allCases.map { ($0.rawValue, d[$0] ?? 0) })
            v["overall"] = d.values.reduce(0, +)
            return ScriptCounts(v)
        }
        func rate(_ num: ScriptCounts<Int>, _ den: ScriptCounts<Int>) -> ScriptCounts<Double?> {
            ScriptCounts(num.values.reduce(into: [String: Double?]()) { r, kv in
                let d = den.values[kv.key] ?? 0
                r[kv.key] = d == 0 ? .some(nil) : .some(Double(kv.value) / Double(d))
            })
        }
        let c = counts(chars), tk = counts(tokens), b = counts(bytes), u = counts(unks)
        let top = fallback.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key.unicodeScalars.map(\.value).lexicographicallyPrecedes($1.key.unicodeScalars.map(\.value)) }
            .prefix(20).map { Coverage.HanFallback(char: $0.key, count: $0.value) }
        let covered = distinct.filter { tok.holdsAsOnePiece($0) }.count
        return Coverage(corpus: corpus, texts: texts.count, chars: c, tokens: tk, byteTokens: b, unkTokens: u,
                        tokensPerChar: rate(tk, c), byteFallbackRate: rate(b, tk), unkRate: rate(u, tk),
                        hanByteFallbackTop: Array(top), hanDistinct: distinct.count, hanDistinctCovered: covered)
    }

    /// The audit of a tokenizer, optionally with the model it belongs to (vocabulary sizes and special ids).
    public static func audit(_ tok: any TextTokenizer, path: String, release: Release? = nil, config: [String: Any]? = nil,
                             corpora: [(name: String, texts: [String])], progress: ProgressMeter? = nil) -> VocabAuditReport {
        var problems = [String]()
        // duplicates: sentencepiece refuses to load them, so a model that loads has none; checked anyway for
        // files written by other tools that are read without sentencepiece's checks.
        // compared as bytes, as sentencepiece does: Swift's String equality would call canonically equivalent
        // pieces (U+1F77 and U+03AF, both 'ί') the same
        var seen = [[UInt8]: Int](), dups = [String]()
        var hanPieces = Set<UInt32>()
        let sp = tok as? Tokenizer, bpe = tok as? BPETokenizer
        let texts: [String?] = sp?.model.proto.pieces.map(\.piece) ?? bpe?.tokenTexts() ?? []
        for (i, text) in texts.enumerated() {
            guard let text else { continue }
            if sp != nil {
                let key = Array(text.utf8)
                seen[key, default: 0] += 1
                if seen[key] == 2 { dups.append(text) }
            }
            // a Han character as one piece, alone or after the word-start marker ('▁', or a space in byte-level BPE)
            var s = text.unicodeScalars[...]
            if s.first?.value == 0x2581 || (bpe != nil && s.first == " ") { s = s.dropFirst() }
            if s.count == 1, let c = s.first, Script.of(c) == .han, bpe?.literalPieces[Int32(i)] == nil { hanPieces.insert(c.value) }
        }
        if !dups.isEmpty { problems.append("\(dups.count) duplicate pieces (first: '\(dups[0])')") }
        let unreachable = sp?.unreachablePieces() ?? bpe?.unreachableTokens() ?? []
        var special = [VocabAuditReport.Special]()
        let rows = release?.vocab.embedding
        for (name, id, key) in [("bos", tok.bosID, "bos_token_id"), ("eos", tok.eosID, "eos_token_id"),
                                ("pad", tok.padID, "pad_token_id"), ("unk", tok.unknownID, "unk_token_id")] {
            let cfg = config?[key] as? Int
            var ok = true
            if let id, id >= tok.vocabularySize { ok = false }
            if let cfg, let id, cfg != id { ok = false; problems.append("\(key) is \(cfg) in config.json but the tokenizer's \(name) is \(id)") }
            if let cfg, let rows, cfg >= rows { ok = false; problems.append("\(key) \(cfg) is past the embedding's \(rows) rows") }
            special.append(.init(name: name, id: id, config: cfg, ok: ok))
        }
        var vocab = release?.vocab
        if vocab != nil { vocab?.tokenizer = tok.vocabularySize }
        if let v = vocab, let w = v.warning { problems.append(w) }
        let unified = hanPieces.filter { (0x4E00...0x9FFF).contains($0) }.count
        return VocabAuditReport(
            tokenizer: path, pieces: tok.vocabularySize, algorithm: sp?.algorithm.rawValue ?? "byte-level BPE, \(tok.kind.rawValue)",
            byteFallback: sp?.byteFallback ?? true,
            vocab: vocab, special: special, duplicatePieces: dups, unreachablePieces: unreachable.count,
            unreachableExamples: unreachable.prefix(10).map { sp?.piece($0) ?? bpe?.piece($0) ?? "" },
            consistent: problems.isEmpty, problems: problems,
            cjk: .init(hanPieces: hanPieces.count, unifiedBlockCovered: unified, unifiedBlockSize: 0x9FFF - 0x4E00 + 1),
            coverage: corpora.map { coverage(tok, texts: $0.texts, corpus: $0.name, progress: progress) })
    }
}

extension Tokenizer {
    /// NORMAL pieces that encoding can never produce: segmenting the piece's own text does not give the piece back
    /// (BPE merged them in from another vocabulary without the pieces they are built from, say). Unigram models
    /// reach every piece, so only BPE is checked.
    public func unreachablePieces() -> [Int] {
        guard algorithm == .bpe else { return [] }
        var out = [Int]()
        var scratch = Scratch()
        var pieces = [(start: Int32, end: Int32, id: Int32)]()
        for id in 0..<pieceCount where type(of: id) == .normal {
            let bytes = pieceBytes[id]
            guard bytes.count > 1 else { continue }
            bytes.withUnsafeBufferPointer { b in
                pieces.removeAll(keepingCapacity: true)
                bpeSegment(b, scratch.buffers(), &pieces)
            }
            if !(pieces.count == 1 && Int(pieces[0].id) == id) { out.append(id) }
        }
        return out
    }
}
