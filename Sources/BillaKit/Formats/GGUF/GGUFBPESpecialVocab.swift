import Foundation

/// gguf-py 0.3.36's `SpecialVocab(dir, load_merges=True)` for a directory with a `tokenizer.json`, as
/// convert_hf_to_gguf's `_set_vocab_gpt2` runs it: special ids, `add_*_token` flags and the chat template, in the
/// order it records them (Python dicts keep insertion order, and the writer writes keys in that order).
///
/// * the post-processor: ByteLevel sets add_bos / add_eos false unless already set; RobertaProcessing sets bos,
///   eos and sep true; TemplateProcessing's single template sets add_bos when it starts with the bos (or cls)
///   token and add_eos when it ends with the eos token (a different trailing token becomes the eos, the old eos
///   the eot or eom), its pair template sets add_sep — the same "crude parsing" gguf-py does;
/// * tokenizer_config.json (only when it is non-empty): `add_<type>_token` where the post-processor said
///   nothing, and `<type>_token` looked up among tokenizer.json's `added_tokens` by content (first match);
/// * config.json's `<type>_token_id` (or `text_config`'s) for types still unset; a list (Llama-3.1 Instruct's eos)
///   is not an int and is skipped, as SpecialVocab skips it;
/// * the chat template: tokenizer_config.json's `chat_template`, else `chat_template.jinja` (with
///   `additional_chat_templates/*.jinja` as named templates), else `chat_template.json`.
///
/// Types gguf-py's writer has no key for (cls, and any `add_<type>_token` but bos/eos/sep) are dropped with a
/// note, as its writer drops them with a warning.
struct GGUFBPESpecialVocab {
    var ids: [(type: String, id: Int)] = []
    var add: [(type: String, value: Bool)] = []
    var chatTemplate: ChatTemplate? = nil
    var notes: [String] = []

    enum ChatTemplate: Equatable {
        case single(String)
        /// named templates; "default" is written as tokenizer.chat_template
        case named([(name: String, template: String)])

        static func == (a: ChatTemplate, b: ChatTemplate) -> Bool {
            switch (a, b) {
            case (.single(let x), .single(let y)): return x == y
            case (.named(let x), .named(let y)): return x.map { [$0.name, $0.template] } == y.map { [$0.name, $0.template] }
            default: return false
            }
        }
    }

    /// gguf's writer keys for the special types it handles (gguf-py's spelling, "seperator" included).
    static let idKeys = ["bos": "tokenizer.ggml.bos_token_id", "eos": "tokenizer.ggml.eos_token_id",
                         "unk": "tokenizer.ggml.unknown_token_id", "sep": "tokenizer.ggml.seperator_token_id",
                         "pad": "tokenizer.ggml.padding_token_id", "mask": "tokenizer.ggml.mask_token_id",
                         "eot": "tokenizer.ggml.eot_token_id", "eom": "tokenizer.ggml.eom_token_id"]
    static let addKeys = ["bos": GGUFKeys.addBOS, "eos": GGUFKeys.addEOS, "sep": "tokenizer.ggml.add_sep_token"]

    mutating func setAdd(_ type: String, _ v: Bool) {
        if let i = add.firstIndex(where: { $0.type == type }) { add[i].value = v } else { add.append((type, v)) }
    }
    mutating func setAddDefault(_ type: String, _ v: Bool) {
        if !add.contains(where: { $0.type == type }) { add.append((type, v)) }
    }
    func addValue(_ type: String) -> Bool? { add.first { $0.type == type }?.value }

    /// SpecialVocab's _set_special_token with n_vocab None (as _set_vocab_gpt2 constructs it): ints only, the
    /// first value per type wins, a negative id is an error.
    mutating func setID(_ type: String, _ value: Any?, file: String) throws {
        guard let id = Self.int(value) else { return }
        guard id >= 0 else {
            throw BillaError(.invalidHeader, file: file, "\(type) token id \(id) is negative; convert_hf_to_gguf refuses it (\"invalid value for special token type\")",
                             remedy: "remove the \(type) token id or set it to a token of the vocabulary")
        }
        if !ids.contains(where: { $0.type == type }) { ids.append((type, id)) }
    }

    /// Python's isinstance(v, int) for a parsed JSON value: an integer or a boolean (Python's bool is an int, so a
    /// config's `"unk_token_id": true` is id 1 to SpecialVocab), not a float ("1.0").
    static func int(_ v: Any?) -> Int? {
        guard let v, !(v is NSNull), let n = v as? NSNumber else { return nil }
        let t = String(cString: n.objCType)
        guard t != "d", t != "f" else { return nil }
        return n.intValue
    }

    /// A JSON true/false (Foundation's parser hands them back as NSNumber, objCType "c").
    static func isBool(_ v: Any?) -> Bool {
        guard let v, !(v is NSNull) else { return false }
        if let n = v as? NSNumber { return String(cString: n.objCType) == "c" }
        return false
    }

    /// Python truthiness of a JSON value.
    static func truthy(_ v: Any?) -> Bool {
        switch v {
        case nil, is NSNull: return false
        case let s as String: return !s.isEmpty
        case let d as [String: Any]: return !d.isEmpty
        case let a as [Any]: return !a.isEmpty
        case let n as NSNumber: return n.doubleValue != 0
        default: return true
        }
    }

    /// `a in (b, c)` / `a == b` for the special-token values, which may be strings, {content} objects or null.
    static func same(_ a: Any?, _ b: Any?) -> Bool {
        switch (a, b) {
        case (nil, nil), (nil, is NSNull), (is NSNull, nil), (is NSNull, is NSNull): return true
        case (let x as String, let y as String): return x == y
        case (let x as NSDictionary, let y as NSDictionary): return x == y
        default: return false
        }
    }

    static func load(_ files: SideFiles, tokenizerJSON root: [String: Any]) throws -> GGUFBPESpecialVocab {
        var v = GGUFBPESpecialVocab()
        var types = ["bos", "eos", "unk", "sep", "pad", "cls", "mask"]
        let added = root["added_tokens"] as? [[String: Any]] ?? []
        var cfg = try files.json("tokenizer_config.json")
        let hasConfig = truthy(cfg)
        var bos = cfg?["bos_token"], cls = cfg?["cls_token"], eos = cfg?["eos_token"], sep = cfg?["sep_token"]
        if !truthy(bos), truthy(cls), hasConfig { cfg?["bos_token"] = cls; bos = cls }
        if !truthy(eos), truthy(sep), hasConfig { cfg?["eos_token"] = sep; eos = sep }
        if let post = root["post_processor"] as? [String: Any], !post.isEmpty {
            let processors = post["processors"] as? [[String: Any]] ?? [post]
            for p in processors {
                switch p["type"] as? String {
                case "ByteLevel":
                    v.setAddDefault("bos", false); v.setAddDefault("eos", false)
                case "RobertaProcessing":
                    v.setAdd("bos", true); v.setAdd("eos", true); v.setAdd("sep", true)
                    if !truthy(cls), hasConfig { cls = (p["cls"] as? [Any])?.first ?? bos; cfg?["cls_token"] = cls }
                    if !truthy(sep), hasConfig { sep = (p["sep"] as? [Any])?.first ?? eos; cfg?["sep_token"] = sep }
                case "TemplateProcessing":
                    let single = p["single"] as? [[String: Any]] ?? []
                    var pair = p["pair"] as? [[String: Any]] ?? []
                    func specialID(_ item: [String: Any]?) -> String? {
                        ((item?["SpecialToken"] as? [String: Any])?["id"] as? String).flatMap { $0.isEmpty ? nil : $0 }
                    }
                    var first: String? = nil, last: String? = nil
                    if single.count > 1 {
                        if let f = specialID(single.first) {
                            first = f
                            if !hasConfig {
                                bos = f
                            } else if !same(f, bos) && !same(f, cls) {
                                if !truthy(bos) { cfg?["bos_token"] = f; bos = f }
                                if !truthy(cls) { cfg?["cls_token"] = f; cls = f }
                            }
                            v.setAdd("bos", same(f, bos) || same(f, cls))
                            if !(same(f, bos) || same(f, cls)) { v.notes.append("tokenizer.json: unknown leading special token \(f) in the post-processor's single template (as gguf-py warns)") }
                        }
                        if let l = specialID(single.last) {
                            last = l
                            if !hasConfig {
                                eos = l
                            } else if !same(l, eos) {
                                if !types.contains("eot") { types.append("eot"); cfg?["eot_token"] = eos }
                                else if !types.contains("eom") { types.append("eom"); cfg?["eom_token"] = eos }
                                cfg?["eos_token"] = l; eos = l
                            }
                            v.setAdd("eos", same(l, eos))
                        }
                    }
                    if !pair.isEmpty {
                        let start = first != nil && specialID(pair.first) == first ? 1 : 0
                        let stop = last != nil && specialID(pair.last) == last ? pair.count - 1 : pair.count
                        pair = start <= stop ? Array(pair[start..<stop]) : []
                        if !pair.isEmpty {
                            let a = (pair.first?["Sequence"] as? [String: Any])?["id"] as? String
                            let b = (pair.last?["Sequence"] as? [String: Any])?["id"] as? String
                            let middle = pair.count > 2 ? Array(pair[1..<(pair.count - 1)]) : []
                            if a == "A", b == "B", !middle.isEmpty {
                                var addSep = false
                                if let e = specialID(middle[0]), same(e, sep) || same(e, eos), last == nil { addSep = true }
                                if middle.count == 2, let e = specialID(middle[1]), same(e, sep) || same(e, eos) { addSep = true }
                                v.setAdd("sep", addSep)
                                if addSep, !truthy(sep), hasConfig { cfg?["sep_token"] = eos }
                            }
                        }
                    }
                default:
                    continue
                }
            }
        }
        if hasConfig, let cfg {
            v.chatTemplate = try chatTemplate(files, config: cfg)
            for type in types {
                if isBool(cfg["add_\(type)_token"]), let a = cfg["add_\(type)_token"] as? Bool {
                    if v.addValue(type) == nil {
                        v.add.append((type, a))
                    } else if v.addValue(type) != a {
                        v.notes.append("tokenizer_config.json add_\(type)_token is \(a) but the post-processor says \(v.addValue(type)!); the post-processor's is written, as convert_hf_to_gguf does")
                    }
                }
                let entry = cfg["\(type)_token"]
                guard let content = (entry as? String) ?? ((entry as? [String: Any])?["content"] as? String) else { continue }
                try v.setID(type, added.first { ($0["content"] as? String) == content }?["id"], file: files.location("tokenizer_config.json"))
            }
        }
        if let config = try files.json("config.json") {
            for type in types {
                var value = config["\(type)_token_id"]
                if value == nil || value is NSNull, let text = config["text_config"] as? [String: Any] { value = text["\(type)_token_id"] }
                try v.setID(type, value, file: files.location("config.json"))
            }
        }
        for (type, id) in v.ids where idKeys[type] == nil {
            v.notes.append("the \(type) token id \(id) has no GGUF key in gguf-py; not written (convert_hf_to_gguf skips it too)")
        }
        for (type, value) in v.add where addKeys[type] == nil {
            v.notes.append("add_\(type)_token = \(value) has no GGUF key in gguf-py; not written (convert_hf_to_gguf skips it too)")
        }
        return v
    }

    static func chatTemplate(_ files: SideFiles, config: [String: Any]) throws -> ChatTemplate? {
        if let t = config["chat_template"] {
            if let s = t as? String { return .single(s) }
            if let list = t as? [[String: Any]] {
                return .named(list.compactMap { d in (d["template"] as? String).map { (name: d["name"] as? String ?? "", template: $0) } })
            }
            if t is NSNull { return nil }
            return nil   // gguf-py: "Bad type for chat_template field" - ignored
        }
        if let jinja = try files.bytes("chat_template.jinja") {
            let main = String(decoding: jinja, as: UTF8.self)
            if case .directory(let dir) = files.store {
                let extra = dir + "/additional_chat_templates"
                let names = ((try? FileManager.default.contentsOfDirectory(atPath: extra)) ?? []).filter { $0.hasSuffix(".jinja") }.sorted()
                if !names.isEmpty {
                    var out = [(name: "default", template: main)]
                    for n in names {
                        let text = try String(contentsOfFile: extra + "/" + n, encoding: .utf8)
                        out.append((name: String(n.dropLast(6)), template: text))
                    }
                    return .named(out)
                }
            }
            return .single(main)
        }
        if let json = try files.json("chat_template.json") {
            return (json["chat_template"] as? String).map { .single($0) }
        }
        return nil
    }

    /// Writes what SpecialVocab.add_to_gguf writes after the merges, in its order: ids, add flags, chat template.
    func write(into m: inout GGUFMetadata) {
        for (type, id) in ids { if let key = Self.idKeys[type] { m[key] = .u32(UInt32(id)) } }
        for (type, value) in add { if let key = Self.addKeys[type] { m[key] = .bool(value) } }
        switch chatTemplate {
        case .single(let s)?:
            m[GGUFBPEKeys.chatTemplate] = .text(s)
        case .named(let list)?:
            // gguf-py writes the non-default names from a Python set (no fixed order); billa sorts them.
            var names = [String]()
            for (name, template) in list {
                let clean = String(name.map { $0.isASCII && ($0.isLetter || $0.isNumber) ? $0 : "_" })
                guard !clean.isEmpty, clean != "default" else { continue }
                names.append(clean)
                m["tokenizer.chat_template.\(clean)"] = .text(template)
            }
            if !names.isEmpty { m["tokenizer.chat_templates"] = .strings(Array(Set(names)).sorted()) }
            if let d = list.first(where: { $0.name == "default" }) { m[GGUFBPEKeys.chatTemplate] = .text(d.template) }
        case nil:
            break
        }
    }
}
