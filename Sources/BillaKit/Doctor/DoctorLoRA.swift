import Foundation

/// A PEFT adapter directory: its rank, alpha, targets and base, whether billa can merge it (LoRAAdapter's own
/// checks, whose refusal is reported rather than thrown), and the Chinese-LLaMA-Alpaca shape (modules_to_save
/// tables on an extended vocabulary).
enum DoctorLoRA {
    static func diagnose(_ dir: String, _ ctx: ModelDoctor.Context) throws -> DoctorReport {
        var r = DoctorReport(path: dir, kind: .loraAdapter, title: "PEFT LoRA adapter")
        let config = try Release.readJSON(dir + "/adapter_config.json")
        let type = config["peft_type"] as? String ?? "LORA"
        let base = config["base_model_name_or_path"] as? String
        r.fact("peft_type", type)
        if let rank = config["r"] as? Int { r.fact("rank", "r \(rank), lora_alpha \(LoRAConfig.number(config["lora_alpha"]).map { "\($0)" } ?? "?")" + (config["use_rslora"] as? Bool == true ? ", rsLoRA" : "")) }
        if let targets = config["target_modules"] { r.fact("target_modules", LoRAConfig.describe(targets)) }
        if let m = config["modules_to_save"] as? [String], !m.isEmpty { r.fact("modules_to_save", m.joined(separator: ", ")) }
        r.fact("base_model_name_or_path", base ?? "absent")
        guard type == "LORA" else {
            r.title = "PEFT \(type) adapter"
            r.error("only LoRA adapters merge in billa; this is \(type)")
            r.next.append("merge it with PEFT (PeftModel.from_pretrained(base, ADAPTER).merge_and_unload()), then: billa doctor MERGED")
            return r
        }
        let adapter: LoRAAdapter
        do { adapter = try LoRAAdapter.open(dir) } catch let e as BillaError {
            r.error("billa cannot merge it: \(e.message) (\(e.remedy))")
            return r
        }
        let ranks = Set(adapter.pairs.values.map(\.rank)).sorted()
        r.fact("pairs", "\(adapter.pairs.count) LoRA pairs, rank \(ranks.map(String.init).joined(separator: "/")), scaling \(Set(adapter.pairs.values.map(\.scaling)).sorted().map { "\($0)" }.joined(separator: "/"))")
        // lora_A's columns are the module's input: the hidden size for every projection that reads the residual stream
        let readers = ["q_proj", "k_proj", "v_proj", "gate_proj", "up_proj"]
        let width = readers.lazy.compactMap { m in adapter.pairs.values.first { $0.module.hasSuffix(m) }?.a.shape.last }.first
        let layers = Set(adapter.pairs.keys.compactMap { key -> Int? in
            let parts = key.split(separator: ".")
            guard let i = parts.firstIndex(of: "layers"), i + 1 < parts.count else { return nil }
            return Int(parts[i + 1])
        })
        let size = width.flatMap { w in LlamaSize.match(dim: w, layers: layers.max().map { $0 + 1 }, kvHeads: nil, normEps: nil) ?? LlamaSize.byWidth(w) }
        if let w = width {
            r.fact("base shape", "hidden \(w), adapts layers \(layers.sorted().map(String.init).joined(separator: ", "))" + (size.map { ": \($0.name)" } ?? ": not a published LLaMA size"))
        }
        if let v = adapter.vocabulary {
            r.fact("vocabulary", "\(v) rows" + (adapter.replacements.isEmpty ? " (its tokenizer)" : " (modules_to_save embed_tokens/lm_head)"))
            if v == 49953 || v == 49954 { r.note("a \(v)-row vocabulary with modules_to_save: the Chinese-LLaMA-Alpaca release shape (merge the LLaMA adapter first, then the Alpaca one, for the Plus/Pro models)") }
        }
        for n in adapter.notes { r.note(n) }
        r.title = "PEFT LoRA adapter, rank \(ranks.map(String.init).joined(separator: "/"))" + (size.map { ", for \($0.name)" } ?? "")
        try ModelDoctor.hashAndLookUp(adapter.weightsFile.path, [.sha256], into: &r, ctx)
        if let t = adapter.tokenizer { try ModelDoctor.hashAndLookUp(t, [.md5, .sha256], into: &r, ctx) }
        if let k = r.knownFiles.first(where: { $0.model.hasSuffix("LoRA") }) { r.title += ": \(k.model)" }
        let baseArg: String
        if let base, FileManager.default.fileExists(atPath: base + "/config.json") { baseArg = ModelDoctor.shellQuoted(base) } else { baseArg = "LLAMA-\(size?.tag ?? "SAME-SIZE")-HF" }
        r.next.append("billa recover lora --base \(baseArg) \(ModelDoctor.shellQuoted(dir)) -o \(ModelDoctor.outputName(dir, "-merged")) --dry-run")
        r.next.append("billa recover lora --base \(baseArg) \(ModelDoctor.shellQuoted(dir)) -o \(ModelDoctor.outputName(dir, "-merged"))")
        return r
    }
}
