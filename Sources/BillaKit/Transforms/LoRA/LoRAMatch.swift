import Foundation

/// PEFT's rules for which modules of the base a LoRA config selects (peft 0.21 `check_target_module_exists`,
/// `get_pattern_key`), over the base's module names ("model.layers.0.self_attn.q_proj": a weight's name without
/// ".weight"). Used to check that the adapter's weights are exactly what its config says they are.
public enum LoRAMatch {
    /// Python's `re.fullmatch(pattern, key)`.
    static func fullMatch(_ pattern: String, _ key: String, file: String? = nil) throws -> Bool {
        guard let re = try? NSRegularExpression(pattern: "^(?:\(pattern))$") else {
            throw BillaError(.invalidHeader, file: file, "\(pattern) is not a regular expression billa can read",
                             remedy: "write target_modules as a list of module names")
        }
        return re.firstMatch(in: key, range: NSRange(key.startIndex..., in: key)) != nil
    }

    /// `re.match(rf"(.*\.)?({key})$", module)`, PEFT's rank_pattern / alpha_pattern lookup.
    static func patternKey(_ key: String, matches module: String) throws -> Bool {
        try fullMatch("(.*\\.)?(\(key))", module)
    }

    /// Whether `targets` names `module`: a regex must match the whole name; a list entry must be the name or its
    /// last dotted components.
    static func selects(_ targets: LoRAConfig.Targets, _ module: String, linear: Set<String>) throws -> Bool {
        switch targets {
        case .regex(let p): return try fullMatch(p, module)
        case .list(let l): return l.contains { module == $0 || module.hasSuffix("." + $0) }
        case .allLinear: return linear.contains(module) && module != "lm_head"   // PEFT leaves the output layer out
        }
    }

    /// The base modules `config` puts LoRA on, PEFT's way: modules_to_save and exclude_modules are never targets.
    /// Throws, naming it, for a target entry that matches nothing in the base and for a selected module that is not
    /// a linear layer (PEFT refuses those too, or would make an embedding LoRA billa does not implement).
    static func targets(of config: LoRAConfig, modules: [String], linear: Set<String>, file: String) throws -> Set<String> {
        var selected = Set<String>()
        for m in modules {
            if try config.modulesToSave.contains(where: { try fullMatch("(^|.*\\.)\($0)($|\\..*)", m) }) { continue }
            if let ex = config.exclude, try selects(ex, m, linear: linear) { continue }
            if try selects(config.targets, m, linear: linear) { selected.insert(m) }
        }
        switch config.targets {
        case .list(let l):
            for entry in l where !modules.contains(where: { $0 == entry || $0.hasSuffix("." + entry) }) {
                throw BillaError(.notFound, file: file, tensor: entry, "target module \(entry) matches no tensor of the base model",
                                 remedy: "the adapter was trained on another architecture or naming; use the base model it was made for (a LLaMA in Hugging Face layout)")
            }
        case .regex(let p):
            guard !selected.isEmpty else {
                throw BillaError(.notFound, file: file, tensor: p, "target_modules \"\(p)\" matches no module of the base model",
                                 remedy: "use the base model the adapter was made for (a LLaMA in Hugging Face layout)")
            }
        case .allLinear: break
        }
        for m in selected.sorted() where !linear.contains(m) {
            throw BillaError(.unsupported, file: file, tensor: m, "target_modules selects \(m), which is not a linear layer (LoRA on embeddings or norms is not implemented)",
                             remedy: "merge this adapter with PEFT (merge_and_unload), then use billa on the result")
        }
        return selected
    }
}
