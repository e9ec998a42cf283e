import Foundation

/// A Hugging Face directory's tokens beyond tokenizer.model and its special-token ids, read as llama.cpp's
/// convert_hf_to_gguf reads them for a SentencePiece ("llama") vocabulary, so a fine-tune that added `[PAD]` or
/// chat markers (Alpaca, Chinese-Alpaca, ...) gets the same GGUF from billa as from llama.cpp:
///
/// * `added_tokens.json` (the slow tokenizer's file): each token at its id, USER_DEFINED, score -1000;
/// * `added_tokens_decoder` in tokenizer_config.json (transformers >= 4.34), applied after it: CONTROL when
///   `special` or when the text looks special (`<pad>`, `<mask>`, `<|...|>`), else USER_DEFINED with '▁' written
///   as a space; score -1000. This also retypes tokenizer.model's own `<unk>`, `<s>`, `</s>` as CONTROL.
/// * special ids as gguf-py's SpecialVocab: `{bos,eos,unk,sep,pad,cls,mask}_token` of tokenizer_config.json
///   looked up among tokenizer.json's `added_tokens` (only when tokenizer.json exists), then config.json's
///   `*_token_id`; the first found wins, ids past the vocabulary are skipped. special_tokens_map.json is not read
///   (SpecialVocab does not read it either).
///
/// Ids at or past the embedding's rows are skipped with a note, as the converter does with a warning.
struct HFAddedVocabulary {
    struct Token { let id: Int; let text: String; let type: GGUFVocabulary.TokenType }

    /// In the order the converter applies them: added_tokens.json, then added_tokens_decoder.
    var tokens: [Token] = []
    /// SpecialVocab's type name ("bos", "pad", ...) -> id.
    var specialIDs: [String: Int] = [:]
    var addBOS: Bool? = nil
    var addEOS: Bool? = nil
    var notes: [String] = []

    static let specialTypes = ["bos", "eos", "unk", "sep", "pad", "cls", "mask"]

    /// llama.cpp 0.3.36's does_token_look_special: tokens some models forget to mark special (deepseek-coder's
    /// full-width bars, gemma's <unusedN> included).
    static func looksSpecial(_ t: String) -> Bool {
        ["<pad>", "<mask>", "<2mass>", "[@BOS@]"].contains(t) || (t.hasPrefix("<|") && t.hasSuffix("|>"))
            || (t.hasPrefix("<\u{FF5C}") && t.hasSuffix("\u{FF5C}>")) || (t.hasPrefix("<unused") && t.hasSuffix(">"))
    }

    static func load(directory dir: String, rows: Int) throws -> HFAddedVocabulary {
        try load(.directory(dir), rows: rows)
    }

    /// From a directory's files or, for a packed HF model, the pack's blobs.
    static func load(_ files: SideFiles, rows: Int) throws -> HFAddedVocabulary {
        var v = HFAddedVocabulary()
        let addedPath = files.location("added_tokens.json")
        if let json = try files.json("added_tokens.json") {
            var entries = [(String, Int)]()
            for (text, value) in json {
                guard let id = value as? Int else {
                    throw BillaError(.invalidHeader, file: addedPath, "token '\(text)' has no integer id",
                                     remedy: "fix added_tokens.json ({\"[PAD]\": 32000}), or save the tokenizer again with transformers")
                }
                entries.append((text, id))
            }
            // JSON objects have no order once parsed; by id then text is the converter's result for distinct ids.
            for (text, id) in entries.sorted(by: { ($0.1, $0.0) < ($1.1, $1.0) }) {
                guard v.inRange(id, rows, "added_tokens.json token '\(text)'") else { continue }
                v.tokens.append(Token(id: id, text: text, type: .userDefined))
            }
        }
        let configPath = files.location("tokenizer_config.json")
        let tokenizerConfig = try files.json("tokenizer_config.json")
        if let decoder = tokenizerConfig?["added_tokens_decoder"] as? [String: Any] {
            var entries = [(Int, String, Bool)]()
            for (key, value) in decoder {
                guard let id = Int(key), let d = value as? [String: Any], let text = d["content"] as? String else {
                    throw BillaError(.invalidHeader, file: configPath, "added_tokens_decoder entry '\(key)' is not {id: {content, special}}",
                                     remedy: "save the tokenizer again with transformers")
                }
                entries.append((id, text, (d["special"] as? Bool) ?? false))
            }
            for (id, text, special) in entries.sorted(by: { $0.0 < $1.0 }) {
                guard v.inRange(id, rows, "added_tokens_decoder token '\(text)'") else { continue }
                if special || looksSpecial(text) {
                    v.tokens.append(Token(id: id, text: text, type: .control))
                } else {
                    v.tokens.append(Token(id: id, text: text.replacingOccurrences(of: "\u{2581}", with: " "), type: .userDefined))
                }
            }
        }
        try v.loadSpecialIDs(files, tokenizerConfig: tokenizerConfig, rows: rows)
        return v
    }

    mutating func inRange(_ id: Int, _ rows: Int, _ what: String) -> Bool {
        if id >= 0 && id < rows { return true }
        notes.append("\(what): id \(id) is outside the \(rows)-row embedding; skipped, as convert_hf_to_gguf does")
        return false
    }

    mutating func loadSpecialIDs(_ files: SideFiles, tokenizerConfig: [String: Any]?, rows: Int) throws {
        func set(_ type: String, _ value: Any?, _ source: String) {
            guard let id = value as? Int, specialIDs[type] == nil else { return }
            if id < 0 {
                // SpecialVocab raises on a negative id; old LLaMA configs carry pad_token_id -1 meaning "none".
                notes.append("\(source): \(type) id \(id) means none; not written")
            } else if id < rows {
                specialIDs[type] = id
            } else {
                notes.append("\(source): \(type) id \(id) is outside the \(rows)-row embedding; not written")
            }
        }
        if let cfg = tokenizerConfig {
            addBOS = cfg["add_bos_token"] as? Bool
            addEOS = cfg["add_eos_token"] as? Bool
        }
        if let cfg = tokenizerConfig, let tokenizerJSON = try files.json("tokenizer.json") {
            let added = (tokenizerJSON["added_tokens"] as? [[String: Any]]) ?? []
            for type in Self.specialTypes {
                let entry = cfg["\(type)_token"]
                guard let content = (entry as? String) ?? ((entry as? [String: Any])?["content"] as? String) else { continue }
                set(type, added.first { ($0["content"] as? String) == content }?["id"], "tokenizer_config.json \(type)_token")
            }
        }
        if let config = try files.json("config.json") {
            for type in Self.specialTypes { set(type, config["\(type)_token_id"], "config.json") }
        }
    }
}
