import Foundation

/// A PEFT LoRA adapter directory as `PeftModel.from_pretrained` and merge_llama_with_chinese_lora_low_mem.py read
/// it: `adapter_config.json` plus `adapter_model.safetensors` or `adapter_model.bin`, and, in the Chinese-LLaMA-Alpaca
/// releases, the tokenizer the merged model must use. Only headers are read here.
public struct LoRAAdapter: Sendable {
    /// One LoRA pair on one base module: delta = (B @ A) * scaling, B [out, r], A [r, in].
    public struct Pair: Sendable {
        public let module: String
        public let a: Tensor
        public let b: Tensor
        public let rank: Int
        public let alpha: Double
        /// As torch multiplies by it: the Python float alpha / r (alpha / sqrt(r) with use_rslora) rounded to f32.
        public let scaling: Float
    }

    public let path: String
    /// The directory's last path component, for messages and --dry-run.
    public let name: String
    public let config: LoRAConfig
    public let weightsFile: TensorFile
    /// Keyed by base module name ("model.layers.0.self_attn.q_proj").
    public let pairs: [String: Pair]
    /// Whole base tensors the adapter replaces (modules_to_save), keyed by base tensor name ("model.embed_tokens.weight").
    public let replacements: [String: Tensor]
    /// tokenizer.model beside the adapter, if it ships one.
    public let tokenizer: String?
    /// What transformers' `len(tokenizer)` is for it: the pieces, or more when added_tokens.json adds ids past them.
    public let tokenizerSize: Int?
    public let notes: [String]

    static let prefix = "base_model.model."

    /// The adapter's vocabulary: its embedding table's rows when it replaces one, else its tokenizer's size.
    public var vocabulary: Int? { replacements["model.embed_tokens.weight"]?.shape.first ?? tokenizerSize }

    public static func open(_ path: String) throws -> LoRAAdapter {
        let dir = path.hasSuffix("/") && path.count > 1 ? String(path.dropLast()) : path
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
            throw BillaError(.notFound, file: dir, "not a directory", remedy: "pass the adapter's directory (adapter_config.json + adapter_model.bin or .safetensors)")
        }
        let configPath = dir + "/adapter_config.json"
        guard fm.fileExists(atPath: configPath) else {
            throw BillaError(.notFound, file: configPath, "no adapter_config.json: this is not a PEFT adapter",
                             remedy: "pass the directory holding adapter_config.json and adapter_model.bin / adapter_model.safetensors")
        }
        let config = try LoRAConfig.parse(try Release.readJSON(configPath), file: configPath)
        let st = dir + "/adapter_model.safetensors", bin = dir + "/adapter_model.bin"
        // PEFT prefers safetensors when both exist; so does billa
        let weightsPath = fm.fileExists(atPath: st) ? st : bin
        guard fm.fileExists(atPath: weightsPath) else {
            throw BillaError(.notFound, file: dir, "neither adapter_model.safetensors nor adapter_model.bin",
                             remedy: "download the adapter's weights file into the directory")
        }
        let weights = try FormatSniffer.openTensorFile(weightsPath)
        var notes = [String]()
        var aTensors = [String: Tensor](), bTensors = [String: Tensor](), replacements = [String: Tensor]()
        var replacementForm = [String: String]()
        for t in weights.tensors {
            guard t.name.hasPrefix(prefix) else {
                throw BillaError(.unsupported, file: weightsPath, tensor: t.name, "not a PEFT LoRA tensor name (base_model.model.…)",
                                 remedy: "only PEFT LoRA adapters of causal LMs are merged; this file is something else")
            }
            let key = String(t.name.dropFirst(prefix.count))
            if let (module, which) = loraPart(key) {
                switch which {
                case "lora_A": aTensors[module] = t
                case "lora_B": bTensors[module] = t
                case "lora_embedding_A", "lora_embedding_B":
                    throw BillaError(.unsupported, file: weightsPath, tensor: t.name, "LoRA on an embedding layer (lora_embedding_A/B) is not implemented",
                                     remedy: "merge this adapter with PEFT (merge_and_unload), then use billa on the result")
                case "lora_magnitude_vector":
                    throw BillaError(.unsupported, file: weightsPath, tensor: t.name, "DoRA (use_dora, lora_magnitude_vector) is not implemented",
                                     remedy: "merge this adapter with PEFT (merge_and_unload), then use billa on the result")
                default:
                    throw BillaError(.unsupported, file: weightsPath, tensor: t.name, "\(which) tensors are not implemented (only lora_A/lora_B weights)",
                                     remedy: "merge this adapter with PEFT (merge_and_unload), then use billa on the result")
                }
                continue
            }
            if key.contains(".original_module.") {
                // PEFT 0.13+ also saves the base's own copy of a modules_to_save layer; the merge never uses it
                notes.append("\(t.name) ignored: the base's own copy of a modules_to_save layer")
                continue
            }
            // modules_to_save: "model.embed_tokens.weight" (what get_peft_model_state_dict writes, and the
            // Chinese-LLaMA-Alpaca adapters), or the wrapper's "model.embed_tokens.modules_to_save[.default].weight"
            var target = key, form = "plain"
            for infix in [".modules_to_save.default.", ".modules_to_save."] where key.contains(infix) {
                target = key.replacingOccurrences(of: infix, with: ".")
                form = "wrapper"
                break
            }
            if let other = replacementForm[target] {
                if other == "plain" { continue }   // the plain form wins, as PEFT loads it
            }
            replacements[target] = t
            replacementForm[target] = form
        }
        var pairs = [String: Pair]()
        for (module, a) in aTensors {
            guard let b = bTensors[module] else {
                throw BillaError(.corruptContainer, file: weightsPath, tensor: prefix + module + ".lora_B.weight", "lora_A has no lora_B",
                                 remedy: "download the adapter again")
            }
            guard a.shape.count == 2, b.shape.count == 2, a.shape[0] == b.shape[1], a.shape[0] > 0,
                  DTypeCast.supports(a.dtype), DTypeCast.supports(b.dtype) else {
                throw BillaError(.shapeMismatch, file: weightsPath, tensor: prefix + module,
                                 "lora_A is \(a.dtype.rawValue) \(Shape.describe(a.shape)) and lora_B \(b.dtype.rawValue) \(Shape.describe(b.shape)): not B [out, r] @ A [r, in] in f32/f16/bf16",
                                 remedy: "download the adapter again")
            }
            let (rank, alpha) = try config.rankAndAlpha(for: module, file: configPath)
            guard rank == a.shape[0] else {
                throw BillaError(.shapeMismatch, file: weightsPath, tensor: a.name,
                                 "adapter_config.json gives r = \(rank) for \(module) but lora_A has \(a.shape[0]) rows",
                                 remedy: "the config does not belong to these weights; download the adapter again")
            }
            let scaling = config.useRSLoRA ? alpha / Double(rank).squareRoot() : alpha / Double(rank)
            pairs[module] = Pair(module: module, a: a, b: b, rank: rank, alpha: alpha, scaling: Float(scaling))
        }
        for (module, b) in bTensors where aTensors[module] == nil {
            throw BillaError(.corruptContainer, file: weightsPath, tensor: b.name, "lora_B has no lora_A", remedy: "download the adapter again")
        }
        var tokenizer: String? = nil, size: Int? = nil
        if fm.fileExists(atPath: dir + "/tokenizer.model") {
            tokenizer = dir + "/tokenizer.model"
            size = try TokenizerPieceCount.transformersLength(directory: dir)
        }
        return LoRAAdapter(path: dir, name: (dir as NSString).lastPathComponent, config: config, weightsFile: weights, pairs: pairs,
                           replacements: replacements, tokenizer: tokenizer, tokenizerSize: size, notes: notes)
    }

    /// "model.layers.0.self_attn.q_proj.lora_A.weight" -> ("model.layers.0.self_attn.q_proj", "lora_A"); also with
    /// the adapter name PEFT keeps in memory (".lora_A.default.weight").
    static func loraPart(_ key: String) -> (String, String)? {
        let parts = key.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard let i = parts.lastIndex(where: { $0.hasPrefix("lora_") }), i > 0 else { return nil }
        return (parts[..<i].joined(separator: "."), parts[i])
    }
}

/// The fields of adapter_config.json the merge depends on. Anything else that would change the merged weights is
/// refused by name; fields that only matter for training (dropout, init) are ignored.
public struct LoRAConfig: Sendable {
    public enum Targets: Sendable {
        case list([String])
        case regex(String)
        case allLinear
    }
    public var r: Int
    public var alpha: Double
    public var targets: Targets
    public var exclude: Targets?
    public var modulesToSave: [String]
    public var useRSLoRA: Bool
    public var fanInFanOut: Bool
    public var rankPattern: [String: Int]
    public var alphaPattern: [String: Double]

    /// Keys billa implements.
    static let implemented: Set<String> = ["peft_type", "r", "lora_alpha", "target_modules", "exclude_modules", "fan_in_fan_out",
                                           "use_rslora", "modules_to_save", "rank_pattern", "alpha_pattern", "bias", "use_dora",
                                           "lora_bias", "init_lora_weights"]
    /// Keys that do not change the merged weights.
    static let inert: Set<String> = ["base_model_name_or_path", "revision", "task_type", "inference_mode", "lora_dropout",
                                     "peft_version", "auto_mapping", "megatron_core", "qalora_group_size", "enable_lora",
                                     "loftq_config", "runtime_config", "layers_pattern"]

    static func parse(_ json: [String: Any], file: String) throws -> LoRAConfig {
        func refuse(_ what: String, _ remedy: String = "merge this adapter with PEFT (PeftModel.merge_and_unload), then use billa on the result") -> BillaError {
            BillaError(.unsupported, file: file, what, remedy: remedy)
        }
        let type = json["peft_type"] as? String ?? "LORA"
        guard type == "LORA" else { throw refuse("peft_type \(type) is not implemented: only LORA adapters merge") }
        if json["use_dora"] as? Bool == true { throw refuse("DoRA (use_dora) is not implemented") }
        if let bias = json["bias"] as? String, bias != "none" { throw refuse("bias-training adapters (bias = \"\(bias)\") are not implemented") }
        if json["lora_bias"] as? Bool == true { throw refuse("lora_bias (a trained bias on lora_B) is not implemented") }
        if let initial = json["init_lora_weights"] as? String, !["gaussian"].contains(initial.lowercased()) {
            throw refuse("init_lora_weights = \"\(initial)\" is not implemented: such adapters change the base weights they apply to")
        }
        for (key, value) in json where !implemented.contains(key) && !inert.contains(key) && !isNeutral(value) {
            throw refuse("\(key) = \(describe(value)) is not implemented")
        }
        if let layers = json["layers_to_transform"], !isNeutral(layers) {
            throw refuse("layers_to_transform = \(describe(layers)) is not implemented")
        }
        guard let r = json["r"] as? Int, r > 0 else {
            throw BillaError(.invalidHeader, file: file, "no positive integer r", remedy: "download adapter_config.json again")
        }
        guard let alpha = number(json["lora_alpha"]) else {
            throw BillaError(.invalidHeader, file: file, "no lora_alpha", remedy: "download adapter_config.json again")
        }
        func targets(_ v: Any?, key: String) throws -> Targets? {
            if v == nil || v is NSNull { return nil }
            if let s = v as? String { return s == "all-linear" ? .allLinear : .regex(s) }
            if let l = v as? [String] { return .list(l) }
            throw BillaError(.invalidHeader, file: file, "\(key) is neither a list of names nor a regex string", remedy: "fix adapter_config.json")
        }
        guard let t = try targets(json["target_modules"], key: "target_modules") else {
            throw refuse("target_modules is missing (target_parameters and the other ways to select layers are not implemented)")
        }
        var rankPattern = [String: Int](), alphaPattern = [String: Double]()
        for (k, v) in json["rank_pattern"] as? [String: Any] ?? [:] {
            guard let n = v as? Int, n > 0 else { throw BillaError(.invalidHeader, file: file, "rank_pattern[\(k)] is not a positive integer", remedy: "fix adapter_config.json") }
            rankPattern[k] = n
        }
        for (k, v) in json["alpha_pattern"] as? [String: Any] ?? [:] {
            guard let n = number(v) else { throw BillaError(.invalidHeader, file: file, "alpha_pattern[\(k)] is not a number", remedy: "fix adapter_config.json") }
            alphaPattern[k] = n
        }
        return LoRAConfig(r: r, alpha: alpha, targets: t, exclude: try targets(json["exclude_modules"], key: "exclude_modules"),
                          modulesToSave: json["modules_to_save"] as? [String] ?? [], useRSLoRA: json["use_rslora"] as? Bool ?? false,
                          fanInFanOut: json["fan_in_fan_out"] as? Bool ?? false, rankPattern: rankPattern, alphaPattern: alphaPattern)
    }

    static func number(_ v: Any?) -> Double? {
        if let i = v as? Int { return Double(i) }
        return v as? Double
    }

    static func isNeutral(_ v: Any) -> Bool {
        if v is NSNull { return true }
        if let n = v as? NSNumber, !(v is String) { return n.doubleValue == 0 }   // false or 0: off
        if let d = v as? [String: Any] { return d.isEmpty }
        if let a = v as? [Any] { return a.isEmpty }
        return false
    }

    static func describe(_ v: Any) -> String {
        if let data = try? JSONSerialization.data(withJSONObject: v, options: [.fragmentsAllowed, .sortedKeys]),
           let s = String(data: data, encoding: .utf8) { return s }
        return "\(v)"
    }

    /// PEFT's `get_pattern_key`: the first key of rank_pattern / alpha_pattern with `re.match(rf"(.*\.)?({key})$")`.
    /// JSON objects lose their order here, so two matching keys with different values are refused instead.
    func rankAndAlpha(for module: String, file: String) throws -> (Int, Double) {
        func pick<V: Equatable>(_ table: [String: V], _ what: String) throws -> V? {
            let hits = try table.filter { try LoRAMatch.patternKey($0.key, matches: module) }
            guard let first = hits.first else { return nil }
            if hits.contains(where: { $0.value != first.value }) {
                throw BillaError(.unsupported, file: file, "\(what) keys \(hits.keys.sorted()) all match \(module) with different values; PEFT takes the first in the file's order",
                                 remedy: "keep one of them in adapter_config.json (the one listed first)")
            }
            return first.value
        }
        return (try pick(rankPattern, "rank_pattern") ?? r, try pick(alphaPattern, "alpha_pattern") ?? alpha)
    }
}
