import Foundation

/// Counts a tokenizer's pieces without a full parse: `tokenizer.model` is a SentencePiece ModelProto whose field 1
/// repeats once per piece; `tokenizer.json` lists its vocabulary and added tokens; Meta's tiktoken
/// `tokenizer.model` has one line per token, and 256 special tokens follow by rule. Distinct ids are counted.
public enum TokenizerPieceCount {
    /// transformers' `len(tokenizer)` for a model or adapter directory, nil when it has no tokenizer: AutoTokenizer
    /// loads tokenizer.json when there is one (its distinct vocabulary and added-token ids, a `<pad>` at 32000 the
    /// common case), else the slow tokenizer.model with added_tokens.json's ids beyond its pieces. It can differ from
    /// the pieces of the tokenizer.model billa encodes with; the vocabulary cross-checks compare embeddings with this.
    public static func transformersLength(directory dir: String) throws -> Int? {
        let fm = FileManager.default
        if fm.fileExists(atPath: dir + "/tokenizer.json") { return try countJSON(dir + "/tokenizer.json") }
        guard fm.fileExists(atPath: dir + "/tokenizer.model") else { return nil }
        var n = try count(at: dir + "/tokenizer.model")
        let added = dir + "/added_tokens.json"
        if fm.fileExists(atPath: added) {
            for case let id as Int in try Release.readJSON(added).values { n = max(n, id + 1) }
        }
        return n
    }

    public static func count(at path: String) throws -> Int {
        if path.hasSuffix(".json") { return try countJSON(path) }
        let file = try MappedFile(path: path)
        if BPETokenizer.isTiktoken(Array(file.all.prefix(512))) {
            var lines = 0
            for b in file.all where b == 0x0A { lines += 1 }
            if let last = file.all.last, last != 0x0A { lines += 1 }
            return lines + BPETokenizer.llama3SpecialTokens.count
        }
        var r = ByteReader(file.all, file: path)
        var pieces = 0
        func bad() -> BillaError {
            BillaError(.invalidHeader, file: path, "not a SentencePiece model (bad protobuf)",
                       remedy: "download tokenizer.model again")
        }
        while !r.isAtEnd {
            let key = try varint(&r)
            let field = key >> 3
            switch key & 7 {
            case 0: _ = try varint(&r)
            case 1: try r.skip(8, "a fixed64 field")
            case 2:
                let n = try varint(&r)
                guard n <= UInt64(r.remaining) else { throw bad() }
                try r.skip(Int(n), "a length-delimited field")
                if field == 1 { pieces += 1 }
            case 5: try r.skip(4, "a fixed32 field")
            default: throw bad()
            }
        }
        return pieces
    }

    static func varint(_ r: inout ByteReader) throws -> UInt64 {
        var v: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let b = try r.readU8("a varint")
            v |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 { return v }
            shift += 7
            if shift >= 64 {
                throw BillaError(.invalidHeader, file: r.file, "a protobuf varint is too long", remedy: "the file is corrupt")
            }
        }
    }

    /// Distinct ids of the vocabulary and the added tokens. The vocabulary is read as raw key bytes: as Swift String
    /// dictionary keys, canonically equivalent pieces (LLaMA's vocabulary has six such pairs) collapse into one, and
    /// LLaMA's converted tokenizer.json counted 31994 instead of 32000.
    private static func countJSON(_ path: String) throws -> Int {
        let data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        guard let root = (try? JSONDocument.parse(data, compact: ["vocab", "merges"])) as? [String: Any],
              let model = root["model"] as? [String: Any] else {
            throw BillaError(.invalidHeader, file: path, "not a tokenizers JSON file", remedy: "download tokenizer.json again")
        }
        var ids = Set<Int>()
        if let vocab = model["vocab"] as? JSONDocument.StringList {
            if vocab.values.isEmpty { ids.formUnion(0..<vocab.count) } else { for v in vocab.values { if let i = v as? Int { ids.insert(i) } } }
        } else if let vocab = model["vocab"] as? [Any] {   // Unigram's [piece, score] pairs
            ids.formUnion(0..<vocab.count)
        }
        for t in (root["added_tokens"] as? [[String: Any]]) ?? [] { if let i = t["id"] as? Int { ids.insert(i) } }
        return ids.count
    }
}
