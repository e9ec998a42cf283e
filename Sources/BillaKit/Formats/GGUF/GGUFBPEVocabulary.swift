import Crypto
import Foundation

/// A byte-level BPE vocabulary as llama.cpp's "gpt2" tokenizer reads it from GGUF, written as llama.cpp 0.3.36's
/// convert_hf_to_gguf.py writes it (`_set_vocab_gpt2`: `get_vocab_base`, `get_vocab_base_pre`, then gguf-py's
/// SpecialVocab with merges):
///
/// * `tokenizer.ggml.pre`: the name the converter finds for the SHA-256 of `str(ids)` of its check text,
///   encoded as transformers does by default (bos included when the post-processor adds it). billa knows the
///   names whose llama.cpp pre-tokenizer uses a split regex it implements (GGUFPreTokenizerTable, generated from
///   the converter); any other hash is refused, as the converter refuses it.
/// * `tokenizer.ggml.tokens`, one per embedding row: the model's tokens in their byte-level spelling ("Ġthe"),
///   added tokens as their content (a non-normalized one as transformers decodes it; a user-defined one with '▁'
///   written as a space), "[PAD<id>]" for ids nothing fills.
/// * `tokenizer.ggml.token_type`: NORMAL for the model's tokens, CONTROL for special added tokens (and ones that
///   look special), USER_DEFINED for the other added tokens, UNUSED for the padding.
/// * `tokenizer.ggml.merges`: tokenizer.json's merges as "left right" (a [left, right] pair joined with a space,
///   spaces inside written as 'Ġ', as gguf-py does).
/// * special ids, add_bos/add_eos/add_sep and the chat template: GGUFBPESpecialVocab.
/// * `tokenizer.ggml.add_space_prefix` when tokenizer_config.json has `add_prefix_space` (LlamaModel.set_vocab).
struct GGUFBPEVocabulary {
    var pre = ""
    var tokens: [String] = []
    var types: [Int32] = []
    var merges: [String] = []
    var special = GGUFBPESpecialVocab()
    var addSpacePrefix: Bool? = nil
    var notes: [String] = []
    var paddingCount = 0

    typealias TokenType = GGUFVocabulary.TokenType

    // MARK: pre-tokenizer

    /// SHA-256 hex of Python's `str(ids)`: "[128000, 198, 4815]".
    static func checkHash(_ ids: [Int]) -> String {
        let text = "[" + ids.map(String.init).joined(separator: ", ") + "]"
        return SHA256.hash(data: Array(text.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// get_vocab_base_pre(): the pre-tokenizer name for a tokenizer, found by hashing its ids of the check text.
    /// `given` (--tokenizer-pre) names it instead, for a tokenizer the converter's table does not know: it must be a
    /// name billa reads back whose llama.cpp split regex is the tokenizer's own, and the choice is noted.
    static func preName(_ tokenizer: BPETokenizer, file: String, given: String? = nil, notes: inout [String]) throws -> String {
        let ids = tokenizer.encodeWithSpecials(GGUFPreTokenizerTable.checkText)
        let hash = checkHash(ids)
        let known = GGUFPreTokenizerTable.hashes[hash]?.name
        if let given {
            guard let pattern = GGUFPreTokenizerTable.patterns[given] else {
                throw BillaError(.invalidArgument, file: file, "--tokenizer-pre \(given) is not a pre-tokenizer billa writes and reads (\(GGUFPreTokenizerTable.patterns.keys.sorted().joined(separator: ", ")))",
                                 remedy: "name the one whose regex the tokenizer uses (Llama-3's: llama-bpe; Qwen2's: qwen2)")
            }
            guard pattern == tokenizer.pattern else {
                throw BillaError(.invalidArgument, file: file, "--tokenizer-pre \(given) splits text with \(pattern == .llama3 ? "Llama-3's" : "Qwen2's") regex, but this tokenizer uses \(tokenizer.pattern == .llama3 ? "Llama-3's" : "Qwen2's")",
                                 remedy: "name a pre-tokenizer with the tokenizer's own regex (Llama-3's: llama-bpe; Qwen2's: qwen2)")
            }
            if let known, known != given {
                notes.append("tokenizer.ggml.pre is '\(given)' (--tokenizer-pre); convert_hf_to_gguf.py recognizes this tokenizer as '\(known)'")
            } else if known == nil {
                notes.append("tokenizer.ggml.pre is '\(given)' (--tokenizer-pre): convert_hf_to_gguf.py does not know this tokenizer (check-text hash \(hash)) and would refuse it")
            }
            return given
        }
        guard let known else {
            throw BillaError(.unsupported, file: file,
                             "the BPE pre-tokenizer was not recognized: its check-text hash \(hash) is not one convert_hf_to_gguf.py (llama.cpp 0.3.36) knows for a pre-tokenizer billa can encode (\(Set(GGUFPreTokenizerTable.hashes.values.map(\.name)).sorted().joined(separator: ", ")))",
                             remedy: "the converter refuses it too (\"update get_vocab_base_pre()\"); for a trimmed or retrained vocabulary, name the pre-tokenizer of its regex with --tokenizer-pre (llama-bpe or qwen2)")
        }
        return known
    }

    // MARK: tokenizer.json

    /// From a Hugging Face directory (or a pack of one) with a byte-level BPE tokenizer.json; `rows` is the
    /// embedding's row count (the converter's vocab_size), `pre` --tokenizer-pre.
    static func load(hf files: SideFiles, rows: Int, pre: String? = nil) throws -> GGUFBPEVocabulary {
        let path = files.location("tokenizer.json")
        guard let bytes = try files.bytes("tokenizer.json") else {
            throw BillaError(.notFound, file: path, "no tokenizer.json", remedy: "copy the release's tokenizer.json into the model directory")
        }
        let root = try BPETokenizer.parseTokenizerJSON(Data(bytes), path: path)
        let tokenizer = try BPETokenizer(tokenizerJSONRoot: root, path: path)   // refuses what billa cannot encode
        var v = GGUFBPEVocabulary()
        v.pre = try preName(tokenizer, file: path, given: pre, notes: &v.notes)
        guard let model = root["model"] as? [String: Any] else {
            throw BillaError(.invalidHeader, file: path, "no \"model\" object", remedy: "download tokenizer.json again")
        }
        // the model's vocabulary, then added tokens over it (transformers' get_vocab: added tokens win)
        var byID = [String?](repeating: nil, count: rows)
        var added = [Int: [String: Any]]()
        func place(_ id: Int, _ text: String, _ what: String) throws {
            guard id >= 0, id < rows else {
                throw BillaError(.shapeMismatch, file: path, "\(what) has id \(id) but the embedding has \(rows) rows",
                                 remedy: "pair the weights with the tokenizer they were trained with (convert_hf_to_gguf asserts the same)")
            }
            byID[id] = text
        }
        if let vocab = model["vocab"] as? JSONDocument.StringList, !vocab.pairs, vocab.values.count == vocab.count {
            for k in 0..<vocab.count { try place(vocab.values[k] as? Int ?? -1, vocab.string(k), "token \"\(vocab.string(k))\"") }
        } else if let d = model["vocab"] as? [String: Any] {
            for (text, id) in d { try place(id as? Int ?? -1, text, "token \"\(text)\"") }
        }
        for t in root["added_tokens"] as? [[String: Any]] ?? [] {
            guard let id = t["id"] as? Int, let content = t["content"] as? String else { continue }
            try place(id, content, "added token \"\(content)\"")
            added[id] = t
        }
        // tokenizer_config.json's added_tokens_decoder is what transformers' added_tokens_decoder reports
        let config = try files.json("tokenizer_config.json")
        if let decoder = config?["added_tokens_decoder"] as? [String: Any] {
            for (key, value) in decoder {
                guard let id = Int(key), let d = value as? [String: Any], added[id] != nil else { continue }
                for field in ["special", "normalized"] where d[field] != nil { added[id]?[field] = d[field] }
            }
        }
        for id in 0..<rows {
            guard let text = byID[id] else {
                v.tokens.append("[PAD\(id)]"); v.types.append(TokenType.unused.rawValue); v.paddingCount += 1
                continue
            }
            guard let a = added[id] else { v.tokens.append(text); v.types.append(TokenType.normal.rawValue); continue }
            var token = text
            if (a["normalized"] as? Bool) == false {
                // decode(encode(token)): the token's id, decoded by the ByteLevel decoder (its characters read as
                // bytes when all are in the byte-level alphabet, then UTF-8 with replacement)
                token = String(decoding: ByteLevelAlphabet.decode(text) ?? Array(text.utf8), as: UTF8.self)
                if token != text { v.notes.append("added token \(id) \"\(text)\" is written as \"\(token)\" (transformers encodes and decodes it to that, as convert_hf_to_gguf writes it)") }
            }
            if (a["special"] as? Bool) == true || HFAddedVocabulary.looksSpecial(token) {
                v.types.append(TokenType.control.rawValue)
            } else {
                token = token.replacingOccurrences(of: "\u{2581}", with: " ")
                v.types.append(TokenType.userDefined.rawValue)
            }
            v.tokens.append(token)
        }
        v.notes += lossNotes(tokenizer, root, pre: v.pre, file: path)
        v.merges = try mergeStrings(model["merges"], file: path)
        v.special = try GGUFBPESpecialVocab.load(files, tokenizerJSON: root)
        v.notes += v.special.notes
        if let c = config?["add_prefix_space"] as? Bool { v.addSpacePrefix = c }
        return v
    }

    /// What the GGUF cannot carry of a tokenizer.json, so llama.cpp tokenizes some texts differently from
    /// transformers (the converter drops the same things without saying so).
    static func lossNotes(_ tokenizer: BPETokenizer, _ root: [String: Any], pre: String, file: String) -> [String] {
        var out = [String]()
        if tokenizer.nfc {
            out.append("\(file): the NFC normalizer has no GGUF key; llama.cpp does not normalize, so text that NFC changes (decomposed accents, Hangul jamo) tokenizes differently from transformers")
        }
        let added = root["added_tokens"] as? [[String: Any]] ?? []
        let stripped = added.filter { ($0["lstrip"] as? Bool) == true || ($0["rstrip"] as? Bool) == true }.compactMap { $0["content"] as? String }
        if !stripped.isEmpty {
            out.append("\(file): added tokens \(stripped.joined(separator: " ")) take the whitespace beside them (lstrip/rstrip), which GGUF does not record; llama.cpp leaves that whitespace to the text around them")
        }
        let normalized = added.filter { ($0["normalized"] as? Bool) == true && ($0["special"] as? Bool) != true }.compactMap { $0["content"] as? String }
        if !normalized.isEmpty, tokenizer.nfc {
            out.append("\(file): added tokens \(normalized.joined(separator: " ")) are matched after normalization in transformers; llama.cpp matches them in the raw text")
        }
        if let pattern = GGUFPreTokenizerTable.patterns[pre], (pattern == .llama3) != tokenizer.ignoreMerges {
            out.append("\(file): ignore_merges is \(tokenizer.ignoreMerges) but llama.cpp sets it \(pattern == .llama3) for pre-tokenizer '\(pre)'; words the vocabulary holds whole may tokenize differently")
        }
        return out
    }

    /// gguf-py's merges: strings as they are; [left, right] pairs joined by a space, a space inside a part as 'Ġ'.
    static func mergeStrings(_ merges: Any?, file: String) throws -> [String] {
        func part(_ s: String) -> String { s.replacingOccurrences(of: " ", with: "\u{120}") }
        if let list = merges as? JSONDocument.StringList {
            if list.pairs { return (0..<(list.count / 2)).map { part(list.string(2 * $0)) + " " + part(list.string(2 * $0 + 1)) } }
            return (0..<list.count).map { list.string($0) }
        }
        if let a = merges as? [Any] {
            if let strings = a as? [String] { return strings }
            if let pairs = a as? [[String]], pairs.allSatisfy({ $0.count == 2 }) { return pairs.map { part($0[0]) + " " + part($0[1]) } }
            // gguf-py decides by the first element: a mix is its "Unknown tokenizer merges format" error
            throw BillaError(.invalidHeader, file: file, "model.merges mixes strings and pairs; gguf-py refuses it (\"Unknown tokenizer merges format\")",
                             remedy: "save the tokenizer again with tokenizers")
        }
        throw BillaError(.invalidHeader, file: file, "model.merges is not an array", remedy: "download tokenizer.json again")
    }

    // MARK: Meta's tiktoken tokenizer.model

    /// Meta's Llama-3 original: what transformers' convert_llama_weights_to_hf.py --llama_version 3.1 makes of it
    /// (TikTokenConverter's vocabulary and merges, the 256 special tokens as special added tokens, bos
    /// <|begin_of_text|> added by the post-processor, eos <|end_of_text|>, config.json's bos 128000 / eos 128001),
    /// then convert_hf_to_gguf.py. What the Meta release does not say is stated in `notes`.
    static func load(tiktoken bytes: [UInt8], path: String, rows: Int, pre: String? = nil) throws -> GGUFBPEVocabulary {
        let tokenizer = try BPETokenizer(tiktokenBytes: bytes, path: path)
        var v = GGUFBPEVocabulary()
        v.pre = try preName(tokenizer, file: path, given: pre, notes: &v.notes)
        let all = tokenizer.decodeBytes
        guard all.count <= rows else {
            throw BillaError(.shapeMismatch, file: path, "the tokenizer has \(all.count) tokens but the embedding has only \(rows) rows",
                             remedy: "pair the weights with the tokenizer they were trained with")
        }
        var base = 0
        for (id, b) in all.enumerated() {
            if let literal = tokenizer.literalPieces[Int32(id)] {
                v.tokens.append(literal); v.types.append(TokenType.control.rawValue)
            } else {
                v.tokens.append(ByteLevelAlphabet.encode(b)); v.types.append(TokenType.normal.rawValue); base += 1
            }
        }
        for id in all.count..<rows {
            v.tokens.append("[PAD\(id)]"); v.types.append(TokenType.unused.rawValue); v.paddingCount += 1
        }
        v.merges = tokenizer.tiktokenMergeStrings()
        if let bos = tokenizer.bosID { v.special.ids.append(("bos", bos)) }
        if let eos = tokenizer.eosID { v.special.ids.append(("eos", eos)) }
        // the converted tokenizer.json's post-processor: ByteLevel, then TemplateProcessing "<|begin_of_text|> $A"
        // with the pair "<|begin_of_text|> $A <|begin_of_text|> $B"
        v.special.add = [("bos", true), ("eos", false), ("sep", false)]
        v.notes.append("\(path): Meta's tiktoken tokenizer.model carries no chat template and does not say whether the model is an Instruct one (eos <|eot_id|>); written as convert_llama_weights_to_hf.py --llama_version 3.1 without --instruct would: eos <|end_of_text|> (\(tokenizer.eosID ?? -1)), no tokenizer.chat_template")
        return v
    }

    // MARK: writing

    func write(into m: inout GGUFMetadata) {
        if let p = addSpacePrefix { m[GGUFBPEKeys.addSpacePrefix] = .bool(p) }
        m[GGUFKeys.tokenizerModel] = .text("gpt2")
        m[GGUFBPEKeys.pre] = .text(pre)
        m[GGUFKeys.tokens] = .strings(tokens)
        m[GGUFKeys.tokenTypes] = .array(.i32, types.map { .i32($0) })
        if !merges.isEmpty { m[GGUFBPEKeys.merges] = .strings(merges) }
        special.write(into: &m)
    }
}

/// The tokenizer.ggml.* keys only byte-level BPE vocabularies use (gguf-py's Keys.Tokenizer).
enum GGUFBPEKeys {
    static let pre = "tokenizer.ggml.pre"
    static let merges = "tokenizer.ggml.merges"
    static let addSpacePrefix = "tokenizer.ggml.add_space_prefix"
    static let chatTemplate = "tokenizer.chat_template"
}
