import Foundation

/// Reads a Hugging Face `tokenizer.json` into a `BPETokenizer`. What real byte-level BPE files use is read; any
/// other component is refused by name (billa never encodes with a part it does not implement).
extension BPETokenizer {
    public convenience init(tokenizerJSON path: String, eosToken: String? = nil) throws {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) } catch {
            throw BillaError(.io, file: path, "cannot read: \(error.localizedDescription)", remedy: "check the path")
        }
        try self.init(Self.parts(Self.parseTokenizerJSON(data, path: path), path: path, eosToken: eosToken))
    }

    /// From an already parsed file (`parseTokenizerJSON`), which GGUF export also reads its vocabulary from.
    convenience init(tokenizerJSONRoot root: [String: Any], path: String, eosToken: String? = nil) throws {
        try self.init(Self.parts(root, path: path, eosToken: eosToken))
    }

    /// tokenizer.json parsed with model.vocab and model.merges as compact `JSONDocument.StringList`s (in file order).
    static func parseTokenizerJSON(_ data: Data, path: String) throws -> [String: Any] {
        let parsed: Any
        do { parsed = try JSONDocument.parse(data, compact: ["vocab", "merges"]) } catch {
            throw BillaError(.invalidHeader, file: path, "not valid JSON: \(error)", remedy: "download tokenizer.json again")
        }
        guard let root = parsed as? [String: Any] else {
            throw BillaError(.invalidHeader, file: path, "not a JSON object", remedy: "download tokenizer.json again")
        }
        return root
    }

    static func parts(_ root: [String: Any], path: String, eosToken: String?) throws -> Parts {
        func refuse(_ what: String, _ remedy: String = "billa encodes byte-level BPE tokenizer.json files (Llama-3, Qwen2); use transformers for this one") -> BillaError {
            BillaError(.unsupported, file: path, what, remedy: remedy)
        }
        func bad(_ what: String) -> BillaError {
            BillaError(.invalidHeader, file: path, what, remedy: "the tokenizer.json is corrupt or was edited by hand; download it again")
        }
        func type(_ o: Any?) -> String? { (o as? [String: Any])?["type"] as? String }
        guard let model = root["model"] as? [String: Any] else { throw bad("no \"model\" object") }
        guard type(model) == "BPE" else { throw refuse("model type \(type(model) ?? "(none)") is not supported (only BPE)") }
        if let d = (model["dropout"] as? Double) ?? (model["dropout"] as? Int).map(Double.init), d > 0 { throw refuse("BPE dropout \(d) makes encoding random") }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let s = model[key] as? String, !s.isEmpty { throw refuse("BPE \(key) \"\(s)\" is not supported (byte-level files have none)") }
        }
        let ignoreMerges = model["ignore_merges"] as? Bool ?? false
        let vocab: JSONDocument.StringList
        if let v = model["vocab"] as? JSONDocument.StringList, v.pairs == false, v.values.count == v.count {
            vocab = v
        } else if let d = model["vocab"] as? [String: Any] {
            var v = JSONDocument.StringList()
            for (k, id) in d { v.bytes.append(contentsOf: k.utf8); v.ends.append(v.bytes.count); v.values.append(id) }
            vocab = v
        } else { throw bad("model.vocab is not an object") }

        // normalizer: none or NFC
        var nfc = false
        if let n = root["normalizer"], !(n is NSNull) {
            let steps: [Any] = type(n) == "Sequence" ? ((n as? [String: Any])?["normalizers"] as? [Any] ?? []) : [n]
            for s in steps {
                guard type(s) == "NFC" else { throw refuse("normalizer \(type(s) ?? "?") is not supported (only NFC or none)") }
                nfc = true
            }
        }
        // pre-tokenizer: Split(one of the two regexes, Isolated) then ByteLevel(use_regex=false, no prefix space)
        guard let pre = root["pre_tokenizer"] as? [String: Any] else { throw refuse("no pre_tokenizer (byte-level BPE needs one)") }
        let steps = type(pre) == "Sequence" ? (pre["pretokenizers"] as? [[String: Any]] ?? []) : [pre]
        var pattern: SplitPattern?
        var byteLevel = false
        for s in steps {
            switch type(s) {
            case "Split":
                guard let p = s["pattern"] as? [String: Any], let regex = p["Regex"] as? String else {
                    throw refuse("a Split pre-tokenizer with a String pattern is not supported")
                }
                guard let m = SplitPattern.forRegex(regex) else { throw refuse("the split regex \(regex) is neither Llama-3's nor Qwen2's") }
                guard (s["behavior"] as? String) == "Isolated", (s["invert"] as? Bool) != true else {
                    throw refuse("Split behavior \(s["behavior"] as? String ?? "?") is not supported (only Isolated)")
                }
                guard pattern == nil, !byteLevel else { throw refuse("the pre-tokenizer sequence is not Split then ByteLevel") }
                pattern = m
            case "ByteLevel":
                guard (s["use_regex"] as? Bool) == false else {
                    throw refuse("ByteLevel with use_regex (GPT-2's own split) is not supported; only after a Split")
                }
                guard (s["add_prefix_space"] as? Bool) != true else { throw refuse("ByteLevel add_prefix_space is not supported") }
                byteLevel = true
            default:
                throw refuse("pre-tokenizer \(type(s) ?? "?") is not supported")
            }
        }
        guard let pattern, byteLevel else { throw refuse("the pre-tokenizer is not Split(regex) then ByteLevel") }
        if let d = root["decoder"], !(d is NSNull), type(d) != "ByteLevel" {
            throw refuse("decoder \(type(d) ?? "?") is not supported (only ByteLevel)")
        }

        // vocabulary: byte-level strings → raw bytes, straight from the keys' UTF-8
        var maxID = -1
        var ids = [Int]()
        ids.reserveCapacity(vocab.count)
        for k in 0..<vocab.count {
            guard let id = vocab.values[k] as? Int, id >= 0 else { throw bad("vocab entry \"\(vocab.string(k))\" has no non-negative integer id") }
            ids.append(id); maxID = max(maxID, id)
        }
        let added = root["added_tokens"] as? [[String: Any]] ?? []
        for t in added { if let id = t["id"] as? Int { maxID = max(maxID, id) } }
        var decodeBytes = [[UInt8]](repeating: [], count: maxID + 1)
        var literal = [Int32: String]()
        var index = PieceIndex(capacity: vocab.count)
        var rawKey = [UInt8]()
        for (k, id) in ids.enumerated() {
            guard decodeBytes[id].isEmpty else { throw bad("id \(id) is given to two vocab entries") }
            if vocab.withString(k, { ByteLevelAlphabet.decode(utf8: $0, into: &rawKey) }), !rawKey.isEmpty {
                guard index.insert(rawKey, id: Int32(id)) else { throw bad("vocab entry \"\(vocab.string(k))\" is repeated") }
                decodeBytes[id] = rawKey
            } else {
                let key = vocab.string(k)
                decodeBytes[id] = Array(key.utf8); literal[Int32(id)] = key   // not byte-level: decoded as its UTF-8
            }
        }
        var byteIDs = [Int32](repeating: -1, count: 256)
        for b in 0..<256 {
            guard let id = index.lookup([UInt8(b)]) else {
                throw refuse("the vocabulary lacks the byte-level token for byte 0x\(String(b, radix: 16)) (\(ByteLevelAlphabet.encode([UInt8(b)])))",
                             "a byte-level BPE needs all 256; this file would drop such bytes")
            }
            byteIDs[b] = id
        }
        // merges: "left right" strings or [left, right] pairs; rank = position
        // Merges are looked up by their raw bytes in the piece index: hashing 280,000 pairs of byte-level Strings
        // (non-ASCII, so Swift hashes them normalized) took most of the load. A merge naming a token outside the
        // byte-level alphabet falls back to a String table of the whole vocabulary, built only then.
        var idOf: [String: Int32]? = nil
        func stringID(_ key: String) -> Int32? {
            if idOf == nil {
                var d = [String: Int32](minimumCapacity: vocab.count)
                for (k, id) in ids.enumerated() { d[vocab.string(k)] = Int32(id) }
                idOf = d
            }
            return idOf?[key]
        }
        var left = [UInt8](), right = [UInt8](), both = [UInt8]()
        func add(_ table: inout MergeTable, rank: Int, _ pair: () -> [String], decoded: Bool) throws {
            var found: (Int32, Int32, Int32)?
            if decoded {
                both.removeAll(keepingCapacity: true); both.append(contentsOf: left); both.append(contentsOf: right)
                if let l = index.lookup(left), let r = index.lookup(right), let merged = index.lookup(both) { found = (l, r, merged) }
            } else {
                let p = pair()
                guard p.count == 2 else { throw bad("merge #\(rank) \(p) is not two tokens") }
                if let l = stringID(p[0]), let r = stringID(p[1]), let merged = stringID(p[0] + p[1]) { found = (l, r, merged) }
            }
            guard let (l, r, merged) = found else { throw bad("merge #\(rank) \(pair()) names tokens that are not in the vocabulary") }
            table.insert(left: l, right: r, rank: Int32(rank), merged: merged)
        }
        var table: MergeTable
        if let list = model["merges"] as? JSONDocument.StringList {
            let n = list.pairs ? list.count / 2 : list.count
            table = MergeTable(capacity: n)
            for rank in 0..<n {
                let decoded: Bool
                if list.pairs {
                    decoded = list.withString(2 * rank) { ByteLevelAlphabet.decode(utf8: $0, into: &left) }
                        && list.withString(2 * rank + 1) { ByteLevelAlphabet.decode(utf8: $0, into: &right) }
                } else {
                    // "left right": exactly one space, which the byte-level alphabet never holds (it spells it Ġ)
                    decoded = list.withString(rank) { u in
                        guard let sp = u.firstIndex(of: 0x20), u[(sp + 1)...].firstIndex(of: 0x20) == nil else { return false }
                        return ByteLevelAlphabet.decode(utf8: UnsafeBufferPointer(rebasing: u[..<sp]), into: &left)
                            && ByteLevelAlphabet.decode(utf8: UnsafeBufferPointer(rebasing: u[(sp + 1)...]), into: &right)
                    }
                }
                try add(&table, rank: rank, {
                    list.pairs ? [list.string(2 * rank), list.string(2 * rank + 1)]
                        : list.string(rank).split(separator: " ", omittingEmptySubsequences: false).map(String.init)
                }, decoded: decoded)
            }
        } else if let mergeList = model["merges"] as? [Any] {
            // a mix of the two spellings, which the compact parse leaves as a plain array
            table = MergeTable(capacity: mergeList.count)
            for (rank, m) in mergeList.enumerated() {
                let pair: [String]
                if let s = m as? String {
                    pair = s.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
                } else if let a = m as? [String] {
                    pair = a
                } else { throw bad("merge #\(rank) is neither a string nor a pair") }
                try add(&table, rank: rank, { pair }, decoded: false)
            }
        } else { throw bad("model.merges is not an array") }
        // added tokens
        var raw = [AddedTokenMatcher.Entry](), normalized = [AddedTokenMatcher.Entry]()
        var addedIDs = [String: Int]()
        for t in added {
            guard let id = t["id"] as? Int, let content = t["content"] as? String else { throw bad("an added token lacks id or content") }
            if t["single_word"] as? Bool == true { throw refuse("added token \(content) has single_word, which billa does not implement") }
            let e = AddedTokenMatcher.Entry(bytes: Array(content.utf8), id: Int32(id), lstrip: t["lstrip"] as? Bool ?? false,
                                            rstrip: t["rstrip"] as? Bool ?? false)
            if t["normalized"] as? Bool ?? !(t["special"] as? Bool ?? false) { normalized.append(e) } else { raw.append(e) }
            // the ByteLevel decoder maps a token's characters back to bytes when all are in the alphabet
            decodeBytes[id] = ByteLevelAlphabet.decode(content) ?? Array(content.utf8)
            literal[Int32(id)] = content
            addedIDs[content] = id
        }
        // post-processor: TemplateProcessing's single template gives the bos (ByteLevel only moves offsets)
        var bos: Int?
        if let p = root["post_processor"], !(p is NSNull) {
            let procs: [Any] = type(p) == "Sequence" ? ((p as? [String: Any])?["processors"] as? [Any] ?? []) : [p]
            for q in procs {
                switch type(q) {
                case "ByteLevel": continue
                case "TemplateProcessing":
                    bos = try templateBOS(q as? [String: Any] ?? [:], refuse: refuse)
                default: throw refuse("post-processor \(type(q) ?? "?") is not supported")
                }
            }
        }
        var parts = Parts(kind: .tokenizerJSON, path: path, pattern: pattern, merges: table, index: index, byteIDs: byteIDs,
                          ignoreMerges: ignoreMerges, nfc: nfc, decodeBytes: decodeBytes)
        parts.added = raw; parts.addedNormalized = normalized; parts.literalPieces = literal
        parts.bosID = bos
        parts.eosID = eosToken.flatMap { addedIDs[$0] ?? stringID($0).map(Int.init) }
        return parts
    }

    /// The template for one sequence must be [special tokens] $A: its single special token is the bos.
    static func templateBOS(_ t: [String: Any], refuse: (String, String) -> BillaError) throws -> Int? {
        let single = t["single"] as? [[String: Any]] ?? []
        let specials = t["special_tokens"] as? [String: Any] ?? [:]
        var before = [Int](), seenA = false
        for item in single {
            if let s = item["SpecialToken"] as? [String: Any], let name = s["id"] as? String {
                guard !seenA else { throw refuse("a TemplateProcessing that appends tokens after $A is not supported", "use transformers") }
                guard let ids = (specials[name] as? [String: Any])?["ids"] as? [Int] else {
                    throw refuse("TemplateProcessing names \(name), which its special_tokens lack", "download tokenizer.json again")
                }
                before += ids
            } else if item["Sequence"] != nil {
                seenA = true
            }
        }
        guard before.count <= 1 else { throw refuse("a TemplateProcessing with \(before.count) leading tokens is not supported", "use transformers") }
        return before.first
    }
}
