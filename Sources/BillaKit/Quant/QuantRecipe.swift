import Foundation

/// A llama-quantize file type ("q4_k_m"): the default tensor type and the per-tensor policy llama.cpp's
/// llama_tensor_get_type applies for the LLaMA architecture (with or without an importance matrix).
public enum QuantRecipe: String, Sendable, CaseIterable, Codable {
    case f32, f16, bf16
    case q4_0, q4_1, q5_0, q5_1, q8_0
    case q2_k, q2_k_s, q3_k_s, q3_k_m, q3_k_l
    case q4_k_s, q4_k_m, q5_k_s, q5_k_m, q6_k
    case iq4_nl, iq4_xs
    case iq2_xxs, iq2_xs, iq2_s, iq2_m, iq3_xxs, iq3_xs, iq3_s, iq3_m
    case iq1_s, iq1_m, tq1_0, tq2_0

    /// (llama_ftype: the number written as general.file_type, the default tensor type), from llama.h and
    /// llama_ftype_get_default_type.
    private static let table: [QuantRecipe: (fileType: UInt32, type: DType)] = [
        .f32: (0, .f32), .f16: (1, .f16), .q4_0: (2, .q4_0), .q4_1: (3, .q4_1), .q8_0: (7, .q8_0), .q5_0: (8, .q5_0),
        .q5_1: (9, .q5_1), .q2_k: (10, .q2_K), .q3_k_s: (11, .q3_K), .q3_k_m: (12, .q3_K), .q3_k_l: (13, .q3_K),
        .q4_k_s: (14, .q4_K), .q4_k_m: (15, .q4_K), .q5_k_s: (16, .q5_K), .q5_k_m: (17, .q5_K), .q6_k: (18, .q6_K),
        .q2_k_s: (21, .q2_K), .iq4_nl: (25, .iq4_nl), .iq4_xs: (30, .iq4_xs), .bf16: (32, .bf16),
        .iq2_xxs: (19, .iq2_xxs), .iq2_xs: (20, .iq2_xs), .iq3_xs: (22, .iq3_s), .iq3_xxs: (23, .iq3_xxs),
        .iq3_s: (26, .iq3_s), .iq3_m: (27, .iq3_s), .iq2_s: (28, .iq2_xs), .iq2_m: (29, .iq2_s),
        .iq1_s: (24, .iq1_s), .iq1_m: (31, .iq1_m), .tq1_0: (36, .tq1_0), .tq2_0: (37, .tq2_0),
    ]

    /// The recipes llama_tensor_get_type_impl treats as one family for most tensors.
    var isVeryLowBit: Bool { [.iq2_xxs, .iq2_xs, .iq2_s, .iq2_m, .iq1_s, .iq1_m].contains(self) }

    public var fileType: UInt32 { Self.table[self]?.fileType ?? 0 }
    public var defaultType: DType { Self.table[self]?.type ?? .f32 }

    /// Accepts llama-quantize's spellings: "Q4_K_M", "q4_k_m", "q4_k" (= q4_k_m), "q5_k" (= q5_k_m), "q3_k"
    /// (= q3_k_m), "Q8_0".
    public init?(name: String) {
        let n = name.lowercased()
        if n == "q4_k" { self = .q4_k_m; return }
        if n == "q5_k" { self = .q5_k_m; return }
        if n == "q3_k" { self = .q3_k_m; return }
        guard let r = QuantRecipe(rawValue: n) else { return nil }
        self = r
    }

    public static var names: String { allCases.map(\.rawValue).joined(separator: ", ") }
}

/// Parses a type name for --tensor-type and --dtype: f32, f16, bf16 or a block type ("q6_k").
public func parseTensorType(_ name: String) -> DType? {
    switch name.lowercased() {
    case "f32": return .f32
    case "f16": return .f16
    case "bf16": return .bf16
    default: return QuantType(name: name)?.dtype
    }
}

/// The per-tensor type choice of one llama-quantize run. It is stateful, like llama.cpp's quantize_state_impl:
/// attn_v and ffn_down choices depend on how many were seen before, so tensors must be presented in
/// llama-quantize's order (`QuantPolicy.order`).
public struct QuantPolicy {
    public let recipe: QuantRecipe
    public let layers: Int
    public let heads: Int
    public let kvHeads: Int
    /// (regex, type) from --tensor-type, first match wins.
    public let overrides: [(NSRegularExpression, DType)]
    /// llama-quantize's --pure, --leave-output-tensor, --output-tensor-type and --token-embedding-type.
    public let choices: TypeChoices
    var nAttentionV = 0
    var iAttentionV = 0
    var iFFNDown = 0
    var iFFNGate = 0
    var iFFNUp = 0
    var hasTiedEmbeddings = true
    /// llama-quantize's qs.has_imatrix: an importance matrix with at least one entry was given, which changes
    /// ffn_down's type in two recipes (IQ4_NL/IQ4_XS keep theirs; Q4_0/Q5_0 guard the first layers with Q4_1/Q5_1).
    public var hasImportanceMatrix = false
    public private(set) var fallbacks: [String] = []

    /// The per-tensor options of llama-quantize that change its type choice.
    public struct TypeChoices: Sendable {
        /// --pure: every quantized tensor gets the recipe's default type (overrides and fallbacks still apply).
        public var pure = false
        /// --leave-output-tensor: output.weight is not quantized.
        public var leaveOutputTensor = false
        /// --output-tensor-type: output.weight's type (and a tied token_embd's).
        public var outputTensorType: DType? = nil
        /// --token-embedding-type: token_embd.weight's type.
        public var tokenEmbeddingType: DType? = nil
        public init() {}
    }

    public init(recipe: QuantRecipe, tensorNames: [String], layers: Int, heads: Int, kvHeads: Int,
                overrides: [(NSRegularExpression, DType)] = [], choices: TypeChoices = TypeChoices()) {
        self.recipe = recipe
        self.layers = layers
        self.heads = heads
        self.kvHeads = kvHeads
        self.overrides = overrides
        self.choices = choices
        for n in tensorNames {
            if Self.category(n) == .attentionV { nAttentionV += 1 }
            if Self.category(n) == .output { hasTiedEmbeddings = false }
        }
    }

    /// llama.cpp's hparams.n_gqa(): query heads per key/value head.
    var gqa: Int { kvHeads > 0 ? heads / kvHeads : 0 }

    /// llama_model_loader's weight order: tensors outside blocks first, then by block number, each group by name.
    public static func order(_ a: String, _ b: String) -> Bool {
        func layer(_ s: String) -> Int {
            guard s.hasPrefix("blk.") else { return -1 }
            let digits = s.dropFirst(4).prefix { $0.isNumber }
            return Int(digits) ?? -1
        }
        let (la, lb) = (layer(a), layer(b))
        if la != lb { return la < lb }
        return Array(a.utf8).lexicographicallyPrecedes(Array(b.utf8))
    }

    enum Category { case output, tokenEmbedding, attentionV, attentionK, attentionQ, attentionOutput, ffnUp, ffnGate, ffnDown, other }

    static func category(_ name: String) -> Category {
        if name == "output.weight" { return .output }
        if name == "token_embd.weight" { return .tokenEmbedding }
        // attn_qkv counts as attn_v, as in llama.cpp's category_is_attn_v.
        if name.contains("attn_qkv.weight") || name.contains("attn_v.weight") { return .attentionV }
        if name.contains("attn_k.weight") { return .attentionK }
        if name.contains("attn_q.weight") { return .attentionQ }
        if name.contains("attn_output.weight") { return .attentionOutput }
        if name.contains("ffn_up") { return .ffnUp }
        if name.contains("ffn_gate") { return .ffnGate }
        if name.contains("ffn_down") { return .ffnDown }
        return .other
    }

    /// Whether llama-quantize would quantize this tensor at all (2-D or more, a weight, not a norm).
    public static func allowsQuantization(_ name: String, shape: [Int]) -> Bool {
        // ggml_n_dims >= 2: some dimension other than the innermost (ne[0], billa's last) exceeds 1.
        shape.dropLast().contains { $0 > 1 } && name.hasSuffix("weight") && !name.contains("_norm.weight")
            && !name.contains("ffn_gate_inp.weight")
    }

    static func useMoreBits(_ i: Int, _ n: Int) -> Bool { i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2 }

    /// Whether this run quantizes the tensor: `allowsQuantization`, and not output.weight under --leave-output-tensor.
    public func quantizes(_ name: String, shape: [Int]) -> Bool {
        Self.allowsQuantization(name, shape: shape) && !(choices.leaveOutputTensor && name == "output.weight")
    }

    /// llama.cpp's tensor_requires_imatrix: IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS tensors and Q2_K tensors
    /// of a Q2_K_S file, other than token_embd and output; and, for any tensor, a type ggml cannot quantize without
    /// weights (`QuantType.requiresImportance`: ggml asserts them, so llama-quantize would abort where billa refuses).
    public func requiresImportanceMatrix(_ name: String, _ type: DType) -> Bool {
        type.quantType?.requiresImportance == true || requiresImportanceMatrixByRecipe(name, type)
    }

    /// llama-quantize's own check (the tensors other than token_embd/output of the very low-bit types).
    func requiresImportanceMatrixByRecipe(_ name: String, _ type: DType) -> Bool {
        let cat = Self.category(name)
        guard cat != .tokenEmbedding && cat != .output else { return false }
        switch type {
        case .iq3_xxs, .iq2_xxs, .iq2_xs, .iq2_s, .iq1_s, .iq1_m: return true
        case .q2_K: return recipe == .q2_k_s
        default: return false
        }
    }

    /// The type for the next tensor in `order`; `current` is the tensor's type in the source. llama.cpp's
    /// llama_tensor_get_type: --token-embedding-type and --output-tensor-type are taken as given (no fallback), then
    /// --tensor-type overrides or the recipe's rules (skipped by --pure), then the fallback for partial blocks.
    public mutating func type(for name: String, shape: [Int], current: DType) -> DType {
        guard quantizes(name, shape: shape) else { return current }
        let cat = Self.category(name)
        if let t = choices.tokenEmbeddingType, cat == .tokenEmbedding { return t }
        if let t = choices.outputTensorType, cat == .output { return t }
        var t = recipe.defaultType
        guard t.isQuantized else { return t }
        let cols = shape.last ?? 0
        var manual = false
        for (re, type) in overrides where re.firstMatch(in: name, range: NSRange(name.startIndex..., in: name)) != nil {
            t = type
            manual = true
            break
        }
        if !manual && !choices.pure { t = policy(name, cols: cols, t) }
        return fallback(name, cols: cols, t)
    }

    /// llama_tensor_get_type_impl for the LLaMA architecture (no experts, not Falcon), for the recipes billa writes.
    mutating func policy(_ name: String, cols: Int, _ start: DType) -> DType {
        var t = start
        let cat = Self.category(name)
        let r = recipe
        if cat == .output || (hasTiedEmbeddings && cat == .tokenEmbedding) {
            if let o = choices.outputTensorType {
                t = o
            } else if cols % t.blockSize != 0 {
                t = .q8_0
            } else if r.isVeryLowBit || r == .iq3_xxs {
                t = .q5_K
            } else if t != .q8_0 {
                t = .q6_K
            }
        } else if cat == .tokenEmbedding {
            if r == .iq2_xxs || r == .iq2_xs || r == .iq1_s || r == .iq1_m {
                t = .q2_K
            } else if r == .iq2_s || r == .iq2_m || r == .iq3_xxs {
                t = .iq3_s
            } else if r == .tq1_0 || r == .tq2_0 {
                t = .q4_K
            }
        } else if r.isVeryLowBit {
            // llama.cpp's branch for IQ2_XXS, IQ2_XS, IQ2_S, IQ2_M, IQ1_S, IQ1_M: no 70B rule here
            let wider: DType = r == .iq2_s || r == .iq2_m ? .iq3_s : .q2_K
            if cat == .attentionV {
                t = gqa >= 4 ? .q4_K : wider
                iAttentionV += 1
            } else if cat == .ffnDown {
                if iFFNDown < layers / 8 { t = wider }
                iFFNDown += 1
            } else if cat == .attentionOutput {
                if r == .iq1_s || r == .iq1_m { t = .iq2_xxs } else if r == .iq2_s || r == .iq2_m { t = .iq3_s }
            }
        } else if cat == .attentionV {
            if r == .q2_k {
                t = gqa >= 4 ? .q4_K : .q3_K
            } else if r == .q2_k_s && gqa >= 4 {
                t = .q4_K
            } else if r == .iq3_xxs {
                t = gqa >= 4 ? .q4_K : !hasImportanceMatrix ? .iq3_s : .iq3_xxs
            } else if (r == .iq3_xs || r == .iq3_s) && gqa >= 4 {
                t = .q4_K
            } else if r == .iq3_m {
                t = .q4_K
            } else if r == .q3_k_m {
                t = iAttentionV < 2 ? .q5_K : .q4_K
            } else if r == .q3_k_l {
                t = .q5_K
            } else if (r == .iq4_nl || r == .iq4_xs) && gqa >= 4 {
                t = .q5_K
            } else if (r == .q4_k_m || r == .q5_k_m) && Self.useMoreBits(iAttentionV, nAttentionV) {
                t = .q6_K
            } else if r == .q4_k_s && iAttentionV < 4 {
                t = .q5_K
            }
            // llama.cpp's LLM_TYPE_70B: 80 layers with grouped-query attention.
            if layers == 80 && heads != kvHeads && (t == .q3_K || t == .q4_K) { t = .q5_K }
            iAttentionV += 1
        } else if cat == .attentionK || cat == .attentionQ {
            if r == .iq3_xs { t = .iq3_xxs } else if r == .iq3_xxs { t = .iq2_s }
        } else if cat == .ffnDown {
            let i = iFFNDown, n = layers
            if r == .q2_k {
                t = .q3_K
            } else if r == .q2_k_s {
                if i < n / 8 { t = .q4_K }
            } else if r == .iq3_xxs && !hasImportanceMatrix {
                t = i < n / 8 ? .q4_K : .q3_K
            } else if r == .q3_k_m {
                t = i < n / 16 ? .q5_K : .q4_K
            } else if r == .iq3_m && i < n / 8 {
                t = .q4_K
            } else if r == .q3_k_l {
                t = .q5_K
            } else if r == .q4_k_m {
                if Self.useMoreBits(i, n) { t = .q6_K }
            } else if i < n / 8 && (r == .iq4_nl || r == .iq4_xs) && !hasImportanceMatrix {
                t = .q5_K
            } else if r == .q5_k_m && Self.useMoreBits(i, n) {
                t = .q6_K
            } else if r == .q4_k_s && i < n / 8 {
                t = .q5_K
            } else if (r == .q4_0 || r == .q5_0) && hasImportanceMatrix && i < n / 8 {
                t = r == .q4_0 ? .q4_1 : .q5_1
            }
            iFFNDown += 1
        } else if cat == .attentionOutput {
            if r == .q2_k { t = .q3_K } else if r == .iq3_xxs { t = .iq3_s } else if r == .q3_k_m { t = .q4_K }
            else if r == .q3_k_l { t = .q5_K } else if r == .iq3_m { t = .q4_K }
        } else if cat == .ffnGate || cat == .ffnUp {
            let i = cat == .ffnGate ? iFFNGate : iFFNUp, n = layers
            if r == .iq3_xs && i >= n / 8 && i < 7 * n / 8 { t = .iq3_xxs }
            if cat == .ffnGate { iFFNGate += 1 } else { iFFNUp += 1 }
        }
        return t
    }

    /// llama.cpp's tensor_type_fallback: rows that are not whole blocks take a 32-element type, or f16.
    mutating func fallback(_ name: String, cols: Int, _ t: DType) -> DType {
        guard cols % t.blockSize != 0 else { return t }
        var r = t
        switch t {
        case .q4_K: r = .q5_0
        case .q5_K: r = .q5_1
        case .q6_K: r = .q8_0
        case .q2_K, .q3_K: r = .q4_0
        case .iq4_xs, .iq2_xxs, .iq2_xs, .iq2_s, .iq3_xxs, .iq3_s, .iq1_s, .iq1_m: r = .iq4_nl
        case .tq1_0, .tq2_0: r = .q4_0
        default: break   // a 32-element type already: f16 below
        }
        if cols % r.blockSize != 0 { r = .f16 }
        fallbacks.append("\(name): \(cols) columns are not whole \(t.rawValue) blocks; using \(r.rawValue)")
        return r
    }
}
