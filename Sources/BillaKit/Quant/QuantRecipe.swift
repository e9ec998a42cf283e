import Foundation

/// A llama-quantize file type ("q4_k_m"): the default tensor type and the per-tensor policy llama.cpp's
/// llama_tensor_get_type applies for the LLaMA architecture without an importance matrix.
public enum QuantRecipe: String, Sendable, CaseIterable, Codable {
    case f32, f16, bf16
    case q4_0, q4_1, q5_0, q5_1, q8_0
    case q4_k_s, q4_k_m, q5_k_s, q5_k_m, q6_k

    /// llama_ftype: the number written as general.file_type.
    public var fileType: UInt32 {
        switch self {
        case .f32: return 0
        case .f16: return 1
        case .q4_0: return 2
        case .q4_1: return 3
        case .q8_0: return 7
        case .q5_0: return 8
        case .q5_1: return 9
        case .q4_k_s: return 14
        case .q4_k_m: return 15
        case .q5_k_s: return 16
        case .q5_k_m: return 17
        case .q6_k: return 18
        case .bf16: return 32
        }
    }

    public var defaultType: DType {
        switch self {
        case .f32: return .f32
        case .f16: return .f16
        case .bf16: return .bf16
        case .q4_0: return .q4_0
        case .q4_1: return .q4_1
        case .q5_0: return .q5_0
        case .q5_1: return .q5_1
        case .q8_0: return .q8_0
        case .q4_k_s, .q4_k_m: return .q4_K
        case .q5_k_s, .q5_k_m: return .q5_K
        case .q6_k: return .q6_K
        }
    }

    /// Accepts llama-quantize's spellings: "Q4_K_M", "q4_k_m", "q4_k" (= q4_k_m), "q5_k" (= q5_k_m), "Q8_0".
    public init?(name: String) {
        let n = name.lowercased()
        if n == "q4_k" { self = .q4_k_m; return }
        if n == "q5_k" { self = .q5_k_m; return }
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
    var nAttentionV = 0
    var iAttentionV = 0
    var iFFNDown = 0
    var hasTiedEmbeddings = true
    public private(set) var fallbacks: [String] = []

    public init(recipe: QuantRecipe, tensorNames: [String], layers: Int, heads: Int, kvHeads: Int,
                overrides: [(NSRegularExpression, DType)] = []) {
        self.recipe = recipe
        self.layers = layers
        self.heads = heads
        self.kvHeads = kvHeads
        self.overrides = overrides
        for n in tensorNames {
            if Self.category(n) == .attentionV { nAttentionV += 1 }
            if Self.category(n) == .output { hasTiedEmbeddings = false }
        }
    }

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

    /// The type for the next tensor in `order`; `current` is the tensor's type in the source.
    public mutating func type(for name: String, shape: [Int], current: DType) -> DType {
        guard Self.allowsQuantization(name, shape: shape) else { return current }
        var t = recipe.defaultType
        guard t.isQuantized else { return t }
        let cols = shape.last ?? 0
        var manual = false
        for (re, type) in overrides where re.firstMatch(in: name, range: NSRange(name.startIndex..., in: name)) != nil {
            t = type
            manual = true
            break
        }
        if !manual { t = policy(name, cols: cols, t) }
        return fallback(name, cols: cols, t)
    }

    mutating func policy(_ name: String, cols: Int, _ start: DType) -> DType {
        var t = start
        let cat = Self.category(name)
        if cat == .output || (hasTiedEmbeddings && cat == .tokenEmbedding) {
            if cols % t.blockSize != 0 { t = .q8_0 } else if t != .q8_0 { t = .q6_K }
        } else if cat == .attentionV {
            if (recipe == .q4_k_m || recipe == .q5_k_m) && Self.useMoreBits(iAttentionV, nAttentionV) {
                t = .q6_K
            } else if recipe == .q4_k_s && iAttentionV < 4 {
                t = .q5_K
            }
            // llama.cpp's LLM_TYPE_70B: 80 layers with grouped-query attention.
            if layers == 80 && heads != kvHeads && t == .q4_K { t = .q5_K }
            iAttentionV += 1
        } else if cat == .ffnDown {
            let i = iFFNDown, n = layers
            if recipe == .q4_k_m {
                if Self.useMoreBits(i, n) { t = .q6_K }
            } else if recipe == .q5_k_m && Self.useMoreBits(i, n) {
                t = .q6_K
            } else if recipe == .q4_k_s && i < n / 8 {
                t = .q5_K
            }
            iFFNDown += 1
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
        default: break
        }
        if cols % r.blockSize != 0 { r = .f16 }
        fallbacks.append("\(name): \(cols) columns are not whole \(t.rawValue) blocks; using \(r.rawValue)")
        return r
    }
}
