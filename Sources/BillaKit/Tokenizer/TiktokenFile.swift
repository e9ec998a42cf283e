import Foundation

/// Meta's Llama-3 `tokenizer.model`: one "base64(token bytes) rank" line per token, read as llama-models 0.3.0's
/// `load_bpe_file` does, with the 256 special tokens its tokenizer.py adds by rule after the base tokens and
/// Llama-3's split regex. Encoding is tiktoken's: a pre-token in the vocabulary is one token, otherwise byte pairs
/// merge by the rank of the token they form. Special-token text is encoded as plain text, as Meta's encode()
/// does by default (allowed_special empty, disallowed_special=()).
extension BPETokenizer {
    public static let llama3SpecialTokens: [String] = {
        var s = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
                 "<|finetune_right_pad_id|>", "<|step_id|>", "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>",
                 "<|eot_id|>", "<|python_tag|>", "<|image|>"]
        s += (0..<(256 - s.count)).map { "<|reserved_special_token_\(2 + $0)|>" }
        return s
    }()

    /// Whether the file's first line looks like tiktoken's "base64 rank" (a SentencePiece model is protobuf).
    public static func isTiktoken(_ head: [UInt8]) -> Bool {
        guard let nl = head.firstIndex(of: 0x0A) else { return false }
        let line = head[..<nl]
        guard let sp = line.firstIndex(of: 0x20), sp > line.startIndex, sp + 1 < nl else { return false }
        let b64 = line[..<sp].allSatisfy { (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x2B || $0 == 0x2F || $0 == 0x3D }
        let digits = line[(sp + 1)...].allSatisfy { (0x30...0x39).contains($0) }
        return b64 && digits
    }

    public convenience init(tiktoken path: String) throws {
        let file = try MappedFile(path: path)
        let parts = try withExtendedLifetime(file) { try Self.tiktokenParts(file.all, path: path) }
        self.init(parts)
    }

    /// The same from the file's bytes (a pack's tokenizer.model blob); `path` names it in errors.
    convenience init(tiktokenBytes bytes: [UInt8], path: String) throws {
        let parts = try bytes.withUnsafeBytes { try Self.tiktokenParts($0, path: path) }
        self.init(parts)
    }

    static func tiktokenParts(_ raw: UnsafeRawBufferPointer, path: String) throws -> Parts {
        func bad(_ what: String) -> BillaError {
            BillaError(.invalidHeader, file: path, what, remedy: "the tokenizer.model is corrupt; download it again")
        }
        var tokens = [[UInt8]]()
        var index = PieceIndex(capacity: raw.count / 16 + 16)
        var lineNo = 0
        do {
            var i = 0
            let n = raw.count
            var bytes = [UInt8]()
            while i < n {
                var e = i
                while e < n, raw[e] != 0x0A { e += 1 }
                lineNo += 1
                defer { i = e + 1 }
                var s = i, t = e
                while s < t, raw[s] == 0x20 || raw[s] == 0x09 || raw[s] == 0x0D { s += 1 }
                while t > s, raw[t - 1] == 0x20 || raw[t - 1] == 0x09 || raw[t - 1] == 0x0D { t -= 1 }
                if s == t { continue }   // load_bpe_file skips blank lines
                var sp = s
                while sp < t, raw[sp] != 0x20 { sp += 1 }
                var r = sp
                while r < t, raw[r] == 0x20 { r += 1 }
                guard sp < t, r < t, Base64.decode(UnsafeRawBufferPointer(rebasing: raw[s..<sp]), into: &bytes) else {
                    throw bad("line \(lineNo) is not \"base64 rank\"")
                }
                var rank = 0
                for k in r..<t {
                    guard (0x30...0x39).contains(raw[k]), rank < Int(Int32.max) / 10 else { throw bad("line \(lineNo): the rank is not a number") }
                    rank = rank * 10 + Int(raw[k] - 0x30)
                }
                guard rank == tokens.count else { throw bad("line \(lineNo) has rank \(rank); ranks must run 0, 1, 2, ... (expected \(tokens.count))") }
                guard !bytes.isEmpty, index.insert(bytes, id: Int32(rank)) else { throw bad("line \(lineNo): token is empty or repeated") }
                tokens.append(bytes)
            }
        }
        var byteIDs = [Int32](repeating: -1, count: 256)
        for b in 0..<256 {
            guard let id = index.lookup([UInt8(b)]) else { throw bad("no token for the single byte 0x\(String(b, radix: 16))") }
            byteIDs[b] = id
        }
        // tiktoken merges a pair when their concatenation is a token, at that token's rank
        var table = MergeTable(capacity: tokens.count * 4)
        for (rank, t) in tokens.enumerated() where t.count > 1 {
            t.withUnsafeBufferPointer { p in
                guard let base = p.baseAddress else { return }
                for k in 1..<t.count {
                    if let l = index.lookup(base, k), let r = index.lookup(base + k, t.count - k) {
                        table.insert(left: l, right: r, rank: Int32(rank), merged: Int32(rank))
                    }
                }
            }
        }
        let specials = Self.llama3SpecialTokens
        var literal = [Int32: String]()
        var decodeBytes = tokens
        for (i, s) in specials.enumerated() {
            decodeBytes.append(Array(s.utf8)); literal[Int32(tokens.count + i)] = s
        }
        func special(_ name: String) -> Int? { specials.firstIndex(of: name).map { tokens.count + $0 } }
        var parts = Parts(kind: .tiktoken, path: path, pattern: .llama3, merges: table, index: index, byteIDs: byteIDs,
                          ignoreMerges: true, nfc: false, decodeBytes: decodeBytes)
        parts.literalPieces = literal
        parts.bosID = special("<|begin_of_text|>")
        parts.eosID = special("<|end_of_text|>")
        parts.padID = special("<|finetune_right_pad_id|>")
        parts.metaChunking = true
        return parts
    }
}

/// Standard base64 (RFC 4648, with padding), as Python's base64.b64decode reads tiktoken files.
enum Base64 {
    static let values: [Int8] = {
        var v = [Int8](repeating: -1, count: 256)
        for (i, c) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8.enumerated() { v[Int(c)] = Int8(i) }
        return v
    }()

    /// Decodes into `out` (replacing it); false when the text is not whole, padded base64.
    static func decode(_ s: UnsafeRawBufferPointer, into out: inout [UInt8]) -> Bool {
        out.removeAll(keepingCapacity: true)
        guard s.count % 4 == 0 else { return false }
        var i = 0
        while i < s.count {
            let a = values[Int(s[i])], b = values[Int(s[i + 1])]
            guard a >= 0, b >= 0 else { return false }
            out.append(UInt8(a) << 2 | UInt8(b) >> 4)
            let last = i + 4 == s.count
            if s[i + 2] == 0x3D {
                guard last, s[i + 3] == 0x3D else { return false }
                break
            }
            let c = values[Int(s[i + 2])]
            guard c >= 0 else { return false }
            out.append(UInt8(b & 0x0F) << 4 | UInt8(c) >> 2)
            if s[i + 3] == 0x3D {
                guard last else { return false }
                break
            }
            let d = values[Int(s[i + 3])]
            guard d >= 0 else { return false }
            out.append(UInt8(c & 0x03) << 6 | UInt8(d))
            i += 4
        }
        return true
    }
}

extension BPETokenizer {
    /// TikTokenConverter's merges for Meta's file, in its order: for each base token in rank order, every split into
    /// two tokens, ordered by (left rank, right rank), as "left right" in the byte-level alphabet. What both the
    /// HF tokenizer.json and the GGUF gpt2 vocabulary of a Meta release carry.
    func tiktokenMergeStrings() -> [String] {
        let base = decodeBytes.count - BPETokenizer.llama3SpecialTokens.count
        var out = [String]()
        var local = [(Int32, Int32, Int)]()
        for id in 0..<base {
            let t = decodeBytes[id]
            guard t.count > 1 else { continue }
            local.removeAll(keepingCapacity: true)
            t.withUnsafeBufferPointer { p in
                let q = p.baseAddress!
                for k in 1..<t.count {
                    if let l = index.lookup(q, k), let r = index.lookup(q + k, t.count - k) { local.append((l, r, k)) }
                }
            }
            local.sort { ($0.0, $0.1) < ($1.0, $1.1) }
            for (_, _, k) in local { out.append(ByteLevelAlphabet.encode(t[..<k]) + " " + ByteLevelAlphabet.encode(t[k...])) }
        }
        return out
    }
}
