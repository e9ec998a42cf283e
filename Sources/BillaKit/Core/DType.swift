/// Element types billa reads and writes. The raw values are safetensors' dtype names, which are also what billa
/// prints; the torch storage class names live in `TorchStorageTypes.swift`.
public enum DType: String, Sendable, CaseIterable, Codable {
    case f64 = "F64"
    case f32 = "F32"
    case f16 = "F16"
    case bf16 = "BF16"
    case f8e4m3 = "F8_E4M3"
    case f8e5m2 = "F8_E5M2"
    case i64 = "I64"
    case i32 = "I32"
    case i16 = "I16"
    case i8 = "I8"
    case u64 = "U64"
    case u32 = "U32"
    case u16 = "U16"
    case u8 = "U8"
    case bool = "BOOL"
    /// llama.cpp's block-quantized types (GGUF and pack). Their facts live in `QuantType` (Quant/QuantType.swift).
    case q4_0 = "Q4_0"
    case q4_1 = "Q4_1"
    case q5_0 = "Q5_0"
    case q5_1 = "Q5_1"
    case q8_0 = "Q8_0"
    case q4_K = "Q4_K"
    case q5_K = "Q5_K"
    case q6_K = "Q6_K"
    case q2_K = "Q2_K"
    case q3_K = "Q3_K"
    case iq4_nl = "IQ4_NL"
    case iq4_xs = "IQ4_XS"
    case iq2_xxs = "IQ2_XXS"
    case iq2_xs = "IQ2_XS"
    case iq3_xxs = "IQ3_XXS"
    case iq3_s = "IQ3_S"
    case iq2_s = "IQ2_S"
    case iq1_s = "IQ1_S"
    case iq1_m = "IQ1_M"
    case tq1_0 = "TQ1_0"
    case tq2_0 = "TQ2_0"

    /// Bytes per element; for block-quantized types, bytes per block of `blockSize` elements. Sizes of whole tensors
    /// should come from `byteCount(elements:)`, which is right for both.
    public var size: Int {
        switch self {
        case .f64, .i64, .u64: return 8
        case .f32, .i32, .u32: return 4
        case .f16, .bf16, .i16, .u16: return 2
        case .f8e4m3, .f8e5m2, .i8, .u8, .bool: return 1
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q5_K, .q6_K, .q2_K, .q3_K, .iq4_nl, .iq4_xs,
             .iq2_xxs, .iq2_xs, .iq3_xxs, .iq3_s, .iq2_s, .iq1_s, .iq1_m,
             .tq1_0, .tq2_0: return quantType?.bytesPerBlock ?? 0
        }
    }

    /// The block-quantization facts, or nil for plain element types.
    public var quantType: QuantType? { QuantType(dtype: self) }
    public var isQuantized: Bool { quantType != nil }
    /// Elements per block: 1 for plain types.
    public var blockSize: Int { quantType?.blockSize ?? 1 }

    /// Bytes of `elements` values, or nil when a block type's count is not whole blocks or the product overflows.
    public func byteCount(elements: Int) -> Int? {
        guard elements >= 0, elements % blockSize == 0 else { return nil }
        let (b, o) = (elements / blockSize).multipliedReportingOverflow(by: size)
        return o ? nil : b
    }

    public var isFloatingPoint: Bool {
        switch self {
        case .f64, .f32, .f16, .bf16, .f8e4m3, .f8e5m2: return true
        default: return false
        }
    }
}
