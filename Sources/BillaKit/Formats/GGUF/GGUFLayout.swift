/// GGUF format facts (ggml/docs/gguf.md and gguf-py's constants): magic, versions, the value type codes and the
/// ggml tensor type codes billa reads and writes. One table each; the reader and writer refer only to these.
public enum GGUFLayout {
    public static let magic: UInt32 = 0x4655_4747          // "GGUF" little-endian
    public static let version: UInt32 = 3
    public static let readableVersions: ClosedRange<UInt32> = 2...3
    public static let defaultAlignment = 32
    public static let alignmentKey = "general.alignment"
    /// ggml's GGML_MAX_DIMS and GGML_MAX_NAME (names include the terminating NUL there).
    public static let maxDims = 4
    public static let maxNameBytes = 63
    /// GGML_QNT_VERSION, written as general.quantization_version.
    public static let quantizationVersion: UInt32 = 2

    /// ggml type id of each plain dtype GGUF can hold; block types take theirs from `QuantType`.
    static let plainTypes: [(DType, UInt32)] = [
        (.f32, 0), (.f16, 1), (.i8, 24), (.i16, 25), (.i32, 26), (.i64, 27), (.f64, 28), (.bf16, 30),
    ]

    public static func ggmlType(_ d: DType) -> UInt32? {
        if let q = d.quantType { return q.ggmlType }
        return plainTypes.first { $0.0 == d }?.1
    }

    public static func dtype(ggmlType t: UInt32) -> DType? {
        if let q = QuantType(ggmlType: t) { return q.dtype }
        return plainTypes.first { $0.1 == t }?.0
    }

    /// ggml's names for the type ids billa does not read, so errors can say what the file holds.
    static let otherTypeNames: [UInt32: String] = [
        9: "Q8_1", 15: "Q8_K", 39: "MXFP4",
    ]
}

/// The value type codes of GGUF metadata.
public enum GGUFValueType: UInt32, Sendable, Codable {
    case u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, bool = 7, string = 8, array = 9
    case u64 = 10, i64 = 11, f64 = 12

    /// Encoded size of a scalar; nil for strings and arrays.
    var scalarSize: Int? {
        switch self {
        case .u8, .i8, .bool: return 1
        case .u16, .i16: return 2
        case .u32, .i32, .f32: return 4
        case .u64, .i64, .f64: return 8
        case .string, .array: return nil
        }
    }
}
