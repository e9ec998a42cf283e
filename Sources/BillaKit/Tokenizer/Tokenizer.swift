import Foundation

/// A SentencePiece tokenizer built from a `tokenizer.model`, giving sentencepiece's ids exactly. It implements what
/// the LLaMA family ships: BPE (LLaMA, Chinese-LLaMA) and unigram (chinese_sp) models, the identity and precompiled
/// character-map normalizers, user-defined pieces, byte fallback and unk. Checks on construction mirror
/// `ModelInterface::InitializePieces`, so a model sentencepiece refuses to load is refused here too.
public final class Tokenizer: Sendable {
    public enum Algorithm: String, Sendable, Codable { case bpe, unigram }

    public let model: SentencePieceModel
    public let algorithm: Algorithm
    public let unkID: Int
    public let bosID: Int?
    public let eosID: Int?
    public let padID: Int?
    public let byteFallback: Bool

    /// NORMAL, USER_DEFINED and UNUSED pieces: what segmentation can produce (`pieces_` in the reference).
    let normal: PieceIndex
    /// Unigram: every piece a lattice node can be (UNUSED ones are only paths), walked character by character
    /// from each position. BPE: the single-character segmentable pieces, which give the starting symbols their ids.
    let trie: PieceTrie
    /// Unigram: a node's score per piece id; a user-defined piece gets `chars * max_score - 0.1`.
    let latticeScores: [Float]
    /// BPE: the whitespace symbol before which words may be merged one by one (nil: whole texts).
    let bpeWordSeparator: [UInt8]?
    /// Some CONTROL/UNKNOWN/BYTE piece has the same text as a segmentable one, so PieceToId of a segment is not
    /// simply the id segmentation found.
    let reservedShadowsNormal: Bool
    /// CONTROL, UNKNOWN and BYTE pieces, looked up first by PieceToId (`reserved_id_map_`).
    let reserved: PieceIndex
    let types: [PieceType]
    let scores: [Float]
    let pieceBytes: [[UInt8]]
    let byteIDs: [Int32]
    let normalizer: Normalizer
    let userDefined: PrefixMatcher?
    let hasUnused: Bool
    let minScore: Float
    let maxScore: Float

    public var pieceCount: Int { types.count }

    public convenience init(path: String) throws {
        try self.init(model: SentencePieceModel.load(path))
    }

    public init(model: SentencePieceModel) throws {
        let proto = model.proto
        let file = model.path
        func bad(_ why: String, _ remedy: String = "the tokenizer.model is corrupt or was edited by hand; use the release's file") -> BillaError {
            BillaError(.invalidHeader, file: file, why, remedy: remedy)
        }
        self.model = model
        switch proto.trainerSpec.modelType {
        case .bpe: algorithm = .bpe
        case .unigram: algorithm = .unigram
        case let other:
            throw BillaError(.unsupported, file: file, "model_type \(other) is not supported (billa encodes BPE and unigram models)",
                             remedy: "LLaMA-family tokenizers are BPE; use sentencepiece itself for word/char models")
        }
        let n = proto.pieces.count
        var normal = PieceIndex(capacity: n)
        var reserved = PieceIndex(capacity: n)
        var types = [PieceType](), scores = [Float](), bytes = [[UInt8]]()
        types.reserveCapacity(n); scores.reserveCapacity(n); bytes.reserveCapacity(n)
        var unk: Int?
        var byteIDs = [Int32](repeating: -1, count: 256)
        var userDefinedPieces = [[UInt8]]()
        var hasUnused = false
        var minScore = Float.greatestFiniteMagnitude, maxScore = Float.leastNormalMagnitude
        for (i, p) in proto.pieces.enumerated() {
            let b = Array(p.piece.utf8)
            guard !b.isEmpty else { throw bad("piece #\(i) is empty; sentencepiece refuses such a model") }
            let isNormal = p.type == .normal || p.type == .userDefined || p.type == .unused
            let inserted = isNormal ? normal.insert(b, id: Int32(i)) : reserved.insert(b, id: Int32(i))
            guard inserted else {
                throw bad("piece #\(i) '\(p.piece)' is already defined; sentencepiece refuses a model with duplicate pieces",
                          "remove the duplicate (billa vocab audit lists them)")
            }
            switch p.type {
            case .userDefined: userDefinedPieces.append(b)
            case .unused: hasUnused = true
            case .unknown:
                guard unk == nil else { throw bad("two UNKNOWN pieces (#\(unk ?? 0) and #\(i))") }
                unk = i
            case .byte:
                guard proto.trainerSpec.byteFallback else {
                    throw bad("byte piece \(p.piece) is present although trainer_spec.byte_fallback is false")
                }
                guard let v = Tokenizer.byteValue(p.piece) else { throw bad("byte piece #\(i) '\(p.piece)' is not of the form <0xNN>") }
                byteIDs[v] = Int32(i)
            case .normal:
                minScore = min(minScore, p.score)
                maxScore = max(maxScore, p.score)
            default: break
            }
            types.append(p.type); scores.append(p.score); bytes.append(b)
        }
        guard let unk else { throw bad("no UNKNOWN piece; sentencepiece requires one") }
        if proto.trainerSpec.byteFallback, byteIDs.contains(-1) {
            throw bad("byte_fallback is on but not all 256 <0xNN> pieces are present")
        }
        self.normal = normal
        self.reserved = reserved
        let segmentable = bytes.indices.filter { types[$0] == .normal || types[$0] == .userDefined || types[$0] == .unused }
            .map { (bytes: bytes[$0], id: Int32($0)) }
        if proto.trainerSpec.modelType == .unigram {
            self.trie = PieceTrie(segmentable.map { (bytes: $0.bytes, id: types[Int($0.id)] == .unused ? -1 : $0.id) })
            self.latticeScores = types.indices.map { id in
                guard types[id] == .userDefined else { return scores[id] }
                var chars = 0, i = 0
                while i < bytes[id].count { i += UTF8Length.of(bytes[id][i]); chars += 1 }
                return Float(Double(Float(chars) * maxScore) - 0.1)
            }
            self.bpeWordSeparator = nil
        } else {
            self.latticeScores = []
            self.trie = PieceTrie(segmentable.filter { UTF8Length.of($0.bytes[0]) >= $0.bytes.count })
            self.bpeWordSeparator = Tokenizer.bpeWordSeparator(segmentable, escapeWhitespaces: proto.normalizerSpec.escapeWhitespaces,
                                                               hasUnused: hasUnused)
        }
        self.reservedShadowsNormal = segmentable.contains { reserved.lookup($0.bytes) != nil }
        self.types = types
        self.scores = scores
        self.pieceBytes = bytes
        self.byteIDs = byteIDs
        self.unkID = unk
        self.byteFallback = proto.trainerSpec.byteFallback
        self.hasUnused = hasUnused
        self.minScore = minScore
        self.maxScore = maxScore
        let matcher = PrefixMatcher(userDefinedPieces)
        self.userDefined = matcher
        let spec = proto.normalizerSpec
        var charsMap: CharsMap?
        if !spec.precompiledCharsmap.isEmpty {
            charsMap = try CharsMap(Array(spec.precompiledCharsmap), file: file)
        } else if spec.hasNormalizationRuleTsv, !spec.normalizationRuleTsv.isEmpty {
            throw BillaError(.unsupported, file: file, "the normalizer is given as a rule TSV without a precompiled charsmap",
                             remedy: "compile the model with sentencepiece (spm_train) so it carries precompiled_charsmap")
        }
        normalizer = Normalizer(addDummyPrefix: spec.addDummyPrefix, removeExtraWhitespaces: spec.removeExtraWhitespaces,
                                escapeWhitespaces: spec.escapeWhitespaces,
                                treatWhitespaceAsSuffix: proto.trainerSpec.treatWhitespaceAsSuffix,
                                charsMap: charsMap, userDefined: matcher)
        // sentencepiece resolves special ids by piece name (trainer_spec.*_piece) and keeps them only when the
        // piece is CONTROL (bos_id(): IsControl(id) ? id : -1); -1 means absent.
        func special(_ name: String) -> Int? {
            guard let id = reserved.lookup(Array(name.utf8)) ?? normal.lookup(Array(name.utf8)) else { return nil }
            return types[Int(id)] == .control ? Int(id) : nil
        }
        let ts = proto.trainerSpec
        bosID = special(ts.bosPiece.isEmpty ? "<s>" : ts.bosPiece)
        eosID = special(ts.eosPiece.isEmpty ? "</s>" : ts.eosPiece)
        padID = special(ts.padPiece.isEmpty ? "<pad>" : ts.padPiece)
    }

    static func byteValue(_ piece: String) -> Int? {
        let u = Array(piece.utf8)
        guard u.count == 6, u[0] == 0x3C, u[1] == 0x30, u[2] == 0x78, u[5] == 0x3E else { return nil }
        func hex(_ c: UInt8) -> Int? {
            switch c {
            case 0x30...0x39: return Int(c - 0x30)
            case 0x41...0x46: return Int(c - 0x41 + 10)
            default: return nil  // ByteToPiece prints upper case only
            }
        }
        guard let hi = hex(u[3]), let lo = hex(u[4]) else { return nil }
        return hi * 16 + lo
    }

    public func type(of id: Int) -> PieceType { types[id] }
    public func piece(_ id: Int) -> String { model.proto.pieces[id].piece }
    public func score(_ id: Int) -> Float { scores[id] }
    public func isByte(_ id: Int) -> Bool { types[id] == .byte }

    /// The id sentencepiece's PieceToId gives: reserved pieces first, then the rest, else unk.
    public func id(of piece: String) -> Int {
        let b = Array(piece.utf8)
        if let r = reserved.lookup(b) { return Int(r) }
        if let v = normal.lookup(b) { return Int(v) }
        return unkID
    }

    // MARK: encoding

    /// One output token: its id and the span of normalized bytes it covers (for byte-fallback tokens, the span of the
    /// whole character they spell).
    public struct Token: Sendable, Equatable {
        public var id: Int32
        public var start: Int32
        public var end: Int32
        public init(id: Int32, start: Int32, end: Int32) { self.id = id; self.start = start; self.end = end }
    }

    /// Buffers reused across calls, so encoding a corpus line by line allocates almost nothing.
    public struct Scratch {
        public internal(set) var normalized: [UInt8] = []
        var pieces: [(start: Int32, end: Int32, id: Int32)] = []
        private var work = SegmentBuffers()
        public init() {}

        /// The segmenters' buffers, not shared with a copy of this scratch.
        mutating func buffers() -> SegmentBuffers {
            if !isKnownUniquelyReferenced(&work) { work = SegmentBuffers() }
            return work
        }
    }

    public func encode(_ text: String) -> [Int] {
        var scratch = Scratch()
        var tokens = [Token]()
        var t = text
        t.withUTF8 { encode(utf8: $0, scratch: &scratch, into: &tokens) }
        return tokens.map { Int($0.id) }
    }

    /// Encodes raw bytes, refusing malformed UTF-8 (sentencepiece would silently turn each bad byte into U+FFFD).
    public func encode(bytes: [UInt8], source: String? = nil) throws -> [Int] {
        try UTF8Check.validate(bytes, source: source)
        var scratch = Scratch()
        var tokens = [Token]()
        bytes.withUnsafeBufferPointer { encode(utf8: $0, scratch: &scratch, into: &tokens) }
        return tokens.map { Int($0.id) }
    }

    /// Pieces as sentencepiece's EncodeAsPieces gives them: an unknown span shows its normalized surface text,
    /// not "<unk>", so a reader sees what the vocabulary is missing.
    public func encodePieces(_ text: String) -> [String] {
        var scratch = Scratch()
        var tokens = [Token]()
        var t = text
        t.withUTF8 { encode(utf8: $0, scratch: &scratch, into: &tokens) }
        return tokens.map { tok in
            guard Int(tok.id) == unkID else { return piece(Int(tok.id)) }
            return String(decoding: scratch.normalized[Int(tok.start)..<Int(tok.end)], as: UTF8.self)
        }
    }

    /// The core: `utf8` must be valid UTF-8. Appends nothing for empty input, like the reference.
    public func encode(utf8: UnsafeBufferPointer<UInt8>, scratch: inout Scratch, into tokens: inout [Token]) {
        tokens.removeAll(keepingCapacity: true)
        normalizer.normalize(utf8, into: &scratch.normalized)
        if scratch.normalized.isEmpty { return }
        var pieces: [(start: Int32, end: Int32, id: Int32)] = []
        swap(&pieces, &scratch.pieces)   // moved out, not copied: the buffer stays unique and is reused
        pieces.removeAll(keepingCapacity: true)
        let work = scratch.buffers()
        scratch.normalized.withUnsafeBufferPointer { norm in
            switch algorithm {
            case .bpe: bpeSegment(norm, work, &pieces)
            case .unigram: unigramSegment(norm, work, &pieces)
            }
            var prevUnk = false
            for p in pieces {
                let isUnk = Int(p.id) == unkID
                if isUnk, byteFallback {
                    for k in p.start..<p.end {
                        tokens.append(Token(id: byteIDs[Int(norm[Int(k)])], start: p.start, end: p.end))
                    }
                } else if isUnk, prevUnk, let last = tokens.last {
                    // consecutive unknowns merge into one unk token (PopulateSentencePieceText)
                    tokens[tokens.count - 1] = Token(id: last.id, start: last.start, end: p.end)
                } else {
                    tokens.append(Token(id: p.id, start: p.start, end: p.end))
                }
                prevUnk = isUnk
            }
        }
        scratch.pieces = pieces
    }

    @inline(__always)
    func pieceID(_ p: UnsafePointer<UInt8>, _ count: Int) -> Int32 {
        if let r = reserved.lookup(p, count) { return r }
        if let v = normal.lookup(p, count) { return v }
        return Int32(unkID)
    }
}

public enum UTF8Check {
    /// The length of the well-formed UTF-8 character at `i`, or nil (overlong forms, surrogates and values past
    /// U+10FFFF are malformed, as in sentencepiece's DecodeUTF8).
    @inline(__always)
    static func charLength<C: RandomAccessCollection>(_ b: C, at i: C.Index) -> Int? where C.Element == UInt8, C.Index == Int {
        let c0 = b[i]
        if c0 < 0x80 { return 1 }
        let n = b.endIndex - i
        func cont(_ k: Int) -> Bool { k < n && b[i + k] & 0xC0 == 0x80 }
        switch c0 {
        case 0xC2...0xDF: return cont(1) ? 2 : nil
        case 0xE0...0xEF:
            guard cont(1), cont(2) else { return nil }
            let c1 = b[i + 1]
            if c0 == 0xE0, c1 < 0xA0 { return nil }
            if c0 == 0xED, c1 >= 0xA0 { return nil }
            return 3
        case 0xF0...0xF4:
            guard cont(1), cont(2), cont(3) else { return nil }
            let c1 = b[i + 1]
            if c0 == 0xF0, c1 < 0x90 { return nil }
            if c0 == 0xF4, c1 >= 0x90 { return nil }
            return 4
        default: return nil
        }
    }

    /// A command-line argument that is not UTF-8 (argument `index` of argv).
    public static func validateArgument(_ bytes: [UInt8], index: Int) throws {
        try validate(bytes, source: "command-line argument \(index)")
    }

    static func validate(_ bytes: [UInt8], source: String?) throws {
        try bytes.withUnsafeBufferPointer { try validate($0, source: source) }
    }

    /// Throws when `bytes` is not well-formed UTF-8; `source` names the text in the error and is only built then.
    public static func validate(_ bytes: UnsafeBufferPointer<UInt8>, source: @autoclosure () -> String?) throws {
        guard let base = bytes.baseAddress else { return }
        let n = bytes.count
        var i = 0
        while i < n {
            // eight ASCII bytes at a time: most text is mostly ASCII
            if i + 8 <= n, UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self) & 0x8080_8080_8080_8080 == 0 {
                i += 8
                continue
            }
            guard let len = charLength(bytes, at: i) else {
                let hex = bytes[i..<min(n, i + 4)].map { String(format: "%02x", $0) }.joined(separator: " ")
                throw BillaError(.invalidArgument, file: source(),
                                 "the text is not valid UTF-8: byte \(i) starts a malformed sequence (\(hex))",
                                 remedy: "convert the text to UTF-8 first (e.g. iconv -f GB18030 -t UTF-8)")
            }
            i += len
        }
    }
}
