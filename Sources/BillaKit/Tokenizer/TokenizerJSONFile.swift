import Foundation

/// Reads a Hugging Face `tokenizer.json` into a `BPETokenizer`. What real byte-level BPE files use is read; any
/// other component is refused by name (billa never encodes with a part it does not implement).
extension BPETokenizer {
    public convenience init(tokenizerJSON path: String, eosToken: String? = nil) throws {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) } catch {
            throw BillaError(.io, file: path, "cannot read: \(error.localizedDescription)", remedy: "check the path")
        }
        guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw BillaError(.invalidHeader, file: path, "not a JSON object", remedy: "download tokenizer.json again")
        }
        try self.init(Self.parts(root, path: path, eosToken: eosToken))
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
        if let d = model["dropout"] as? Double, d > 0 { throw refuse("BPE dropout \(d) makes encoding random") }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let s = model[key] as? String, !s.isEmpty { throw refuse("BPE \(key) \"\(s)\" is not supported (byte-level files have none)") }
        }
        let ignoreMerges = model["ignore_merges"] as? Bool ?? false
        guard let vocab = model["vocab"] as? [String: Any] else { throw bad("model.vocab is not an object") }

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

        // vocabulary: byte-level strings → raw bytes
        var maxID = -1
        var entries = [(String, Int)]()
        entries.reserveCapacity(vocab.count)
        for (k, v) in vocab {
            guard let id = v as? Int, id >= 0 else { throw bad("vocab entry \"\(k)\" has no non-negative integer id") }
            entries.append((k, id)); maxID = max(maxID, id)
        }
        let added = root["added_tokens"] as? [[String: Any]] ?? []
        for t in added { if let id = t["id"] as? Int { maxID = max(maxID, id) } }
        var decodeBytes = [[UInt8]](repeating: [], count: maxID + 1)
        var literal = [Int32: String]()
        var index = PieceIndex(capacity: entries.count)
        var idOf = [String: Int32]()
        idOf.reserveCapacity(entries.count)
        for (k, id) in entries {
            idOf[k] = Int32(id)
            if let raw = ByteLevelAlphabet.decode(k), !raw.isEmpty {
                guard decodeBytes[id].isEmpty else { throw bad("id \(id) is given to two vocab entries") }
                decodeBytes[id] = raw
                _ = index.insert(raw, id: Int32(id))
            } else {
                decodeBytes[id] = Array(k.utf8); literal[Int32(id)] = k   // not byte-level: decoded as its UTF-8
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
        guard let mergeList = model["merges"] as? [Any] else { throw bad("model.merges is not an array") }
        var table = MergeTable(capacity: mergeList.count)
        for (rank, m) in mergeList.enumerated() {
            let pair: [String]
            if let s = m as? String {
                pair = s.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
            } else if let a = m as? [String] {
                pair = a
            } else { throw bad("merge #\(rank) is neither a string nor a pair") }
            guard pair.count == 2, let l = idOf[pair[0]], let r = idOf[pair[1]], let merged = idOf[pair[0] + pair[1]] else {
                throw bad("merge #\(rank) \(pair) names tokens that are not in the vocabulary")
            }
            table.insert(left: l, right: r, rank: Int32(rank), merged: merged)
        }
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
        parts.eosID = eosToken.flatMap { addedIDs[$0] ?? idOf[$0].map(Int.init) }
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
