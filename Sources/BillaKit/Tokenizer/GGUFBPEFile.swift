/// Reads a GGUF's "gpt2" vocabulary (tokenizer.ggml.tokens / token_type / merges / pre) into a `BPETokenizer`
/// that encodes as llama.cpp's BPE tokenizer (llama-vocab.cpp) does for that vocabulary:
///
/// * the split regex is the one llama.cpp's pre-tokenizer type for `tokenizer.ggml.pre` uses (Llama-3's or
///   Qwen2's, GGUFPreTokenizerTable); any other name, or none (llama.cpp's GPT-2 "default"), is refused by name;
/// * `ignore_merges` as llama.cpp sets it: on for the Llama-3 type, off otherwise;
/// * no normalizer: llama.cpp applies none (a Qwen2 tokenizer.json's NFC is not in the GGUF);
/// * NORMAL tokens are byte-level strings; CONTROL and USER_DEFINED tokens are matched in the text as they are
///   spelled (llama-tokenize parses special tokens by default), without lstrip/rstrip; UNUSED ("[PAD<id>]")
///   tokens are never produced and decode to nothing;
/// * merges "left right" split at the first space after the first character, ranked by position;
/// * bos is the one llama.cpp adds: tokenizer.ggml.bos_token_id when tokenizer.ggml.add_bos_token is true, or
///   absent for a Llama-3 type (which llama.cpp makes add it); none otherwise.
extension BPETokenizer {
    convenience init(gguf g: GGUFFile) throws {
        let path = g.path
        func bad(_ what: String) -> BillaError {
            BillaError(.invalidHeader, file: path, what, remedy: "the GGUF's tokenizer metadata is damaged; convert the model again")
        }
        guard case .array(_, let tokens)? = g.metadata[GGUFKeys.tokens] else { throw bad("no tokenizer.ggml.tokens") }
        var types = [GGUFValue]()
        if case .array(_, let t)? = g.metadata[GGUFKeys.tokenTypes] { types = t }
        guard let pre = g.metadata[GGUFBPEKeys.pre]?.stringValue else {
            throw BillaError(.unsupported, file: path, "the gpt2 vocabulary has no tokenizer.ggml.pre, so llama.cpp splits it with GPT-2's default regex, which billa does not implement",
                             remedy: "convert the model again with a current convert_hf_to_gguf.py (or billa convert --to gguf)")
        }
        guard let pattern = GGUFPreTokenizerTable.patterns[pre] else {
            throw BillaError(.unsupported, file: path, "tokenizer.ggml.pre '\(pre)' is not a pre-tokenizer billa implements (\(GGUFPreTokenizerTable.patterns.keys.sorted().joined(separator: ", ")))",
                             remedy: "use llama.cpp's llama-tokenize for this model")
        }
        var decodeBytes = [[UInt8]](repeating: [], count: tokens.count)
        var literal = [Int32: String]()
        var index = PieceIndex(capacity: tokens.count)
        var added = [AddedTokenMatcher.Entry]()
        var raw = [UInt8]()
        for (id, t) in tokens.enumerated() {
            guard case .string(let s) = t else { throw bad("token \(id) is not a string") }
            let type = id < types.count ? types[id].intValue ?? 1 : 1
            switch type {
            case Int(GGUFVocabulary.TokenType.control.rawValue), Int(GGUFVocabulary.TokenType.userDefined.rawValue):
                decodeBytes[id] = s
                literal[Int32(id)] = String(decoding: s, as: UTF8.self)
                added.append(AddedTokenMatcher.Entry(bytes: s, id: Int32(id), lstrip: false, rstrip: false))
            case Int(GGUFVocabulary.TokenType.unused.rawValue):
                literal[Int32(id)] = String(decoding: s, as: UTF8.self)
            default:
                let ok = s.withUnsafeBufferPointer { ByteLevelAlphabet.decode(utf8: $0, into: &raw) }
                guard ok, !raw.isEmpty else { throw bad("token \(id) \"\(String(decoding: s, as: UTF8.self))\" is not in the byte-level alphabet") }
                guard index.insert(raw, id: Int32(id)) else { throw bad("token \(id) \"\(String(decoding: s, as: UTF8.self))\" is repeated") }
                decodeBytes[id] = raw
            }
        }
        var byteIDs = [Int32](repeating: -1, count: 256)
        for b in 0..<256 {
            guard let id = index.lookup([UInt8(b)]) else {
                throw BillaError(.unsupported, file: path, "the vocabulary lacks the byte-level token for byte 0x\(String(b, radix: 16))",
                                 remedy: "a byte-level BPE needs all 256; use llama.cpp for this model")
            }
            byteIDs[b] = id
        }
        guard case .array(_, let mergeValues)? = g.metadata[GGUFBPEKeys.merges] else {
            throw bad("no tokenizer.ggml.merges (llama.cpp refuses a gpt2 vocabulary without them)")
        }
        var table = MergeTable(capacity: mergeValues.count)
        var left = [UInt8](), right = [UInt8](), both = [UInt8]()
        for (rank, m) in mergeValues.enumerated() {
            guard case .string(let s) = m, s.count > 1, let sp = s[1...].firstIndex(of: 0x20) else { throw bad("merge \(rank) is not \"left right\"") }
            let ok = s.withUnsafeBufferPointer { u in
                ByteLevelAlphabet.decode(utf8: UnsafeBufferPointer(rebasing: u[..<sp]), into: &left)
                    && ByteLevelAlphabet.decode(utf8: UnsafeBufferPointer(rebasing: u[(sp + 1)...]), into: &right)
            }
            both.removeAll(keepingCapacity: true); both.append(contentsOf: left); both.append(contentsOf: right)
            guard ok, let l = index.lookup(left), let r = index.lookup(right), let merged = index.lookup(both) else {
                throw bad("merge \(rank) \"\(String(decoding: s, as: UTF8.self))\" names tokens that are not in the vocabulary")
            }
            table.insert(left: l, right: r, rank: Int32(rank), merged: merged)
        }
        func id(_ key: String) -> Int? { g.metadata[key]?.intValue.flatMap { $0 >= 0 && $0 < tokens.count ? $0 : nil } }
        let llama3Type = pattern == .llama3
        let addsBOS: Bool
        if case .bool(let b)? = g.metadata[GGUFKeys.addBOS] { addsBOS = b } else { addsBOS = llama3Type }
        var parts = Parts(kind: .gguf, path: path, pattern: pattern, merges: table, index: index, byteIDs: byteIDs,
                          ignoreMerges: llama3Type, nfc: false, decodeBytes: decodeBytes)
        parts.added = added
        parts.literalPieces = literal
        parts.bosID = addsBOS ? id(GGUFKeys.bos) : nil
        parts.eosID = id(GGUFKeys.eos)
        parts.padID = id(GGUFKeys.pad)
        self.init(parts)
    }
}
