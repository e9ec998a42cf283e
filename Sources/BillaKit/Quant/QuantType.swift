/// The block-quantized types billa reads and writes, with ggml's facts about each: one table, so the GGUF reader,
/// the writer, the pack format and the quantizers never disagree about a block's size.
///
/// Layouts (ggml-common.h): Q4_0 {f16 d; u8 qs[16]}, Q4_1 {f16 d, m; u8 qs[16]}, Q5_0 {f16 d; u8 qh[4]; u8 qs[16]},
/// Q5_1 {f16 d, m; u8 qh[4]; u8 qs[16]}, Q8_0 {f16 d; i8 qs[32]}, Q4_K {f16 d, dmin; u8 scales[12]; u8 qs[128]},
/// Q5_K {f16 d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]}, Q6_K {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d},
/// Q2_K {u8 scales[16]; u8 qs[64]; f16 d, dmin}, Q3_K {u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d},
/// IQ4_NL {f16 d; u8 qs[16]}, IQ4_XS {f16 d; u16 scales_h; u8 scales_l[4]; u8 qs[128]}; the grid types IQ2_XXS
/// {f16 d; u16 qs[32]}, IQ2_XS {f16 d; u16 qs[32]; u8 scales[8]}, IQ3_XXS {f16 d; u8 qs[96]}, IQ3_S {f16 d;
/// u8 qs[64]; u8 qh[8]; u8 signs[32]; u8 scales[4]}, IQ2_S {f16 d; u8 qs[64] (indices' low bits, then signs); u8 qh[8];
/// u8 scales[8]}, IQ1_S {f16 d; u8 qs[32]; u16 qh[8]}, IQ1_M {u8 qs[32]; u8 qh[16]; u8 scales[8] (the f16 scale in their
/// top nibbles)}; the ternary TQ1_0 {u8 qs[48]; u8 qh[4]; f16 d} and TQ2_0 {u8 qs[64]; f16 d}.
public enum QuantType: String, Sendable, CaseIterable, Codable {
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

    /// (ggml type id, elements per block, bytes per block).
    private static let table: [QuantType: (ggml: UInt32, block: Int, bytes: Int)] = [
        .q4_0: (2, 32, 18), .q4_1: (3, 32, 20), .q5_0: (6, 32, 22), .q5_1: (7, 32, 24), .q8_0: (8, 32, 34),
        .q4_K: (12, 256, 144), .q5_K: (13, 256, 176), .q6_K: (14, 256, 210),
        .q2_K: (10, 256, 84), .q3_K: (11, 256, 110), .iq4_nl: (20, 32, 18), .iq4_xs: (23, 256, 136),
        .iq2_xxs: (16, 256, 66), .iq2_xs: (17, 256, 74), .iq3_xxs: (18, 256, 98), .iq3_s: (21, 256, 110),
        .iq2_s: (22, 256, 82), .iq1_s: (19, 256, 50), .iq1_m: (29, 256, 56), .tq1_0: (34, 256, 54), .tq2_0: (35, 256, 66),
    ]

    /// Types ggml cannot quantize without importance weights: its quantizers assert them (ggml_quantize_chunk's
    /// ggml_quantize_requires_imatrix), so a tensor of one of these types needs an imatrix entry whatever its name.
    public var requiresImportance: Bool { self == .iq2_xxs || self == .iq2_xs || self == .iq1_s }

    public var ggmlType: UInt32 { Self.table[self]?.ggml ?? 0 }
    public var blockSize: Int { Self.table[self]?.block ?? 1 }
    public var bytesPerBlock: Int { Self.table[self]?.bytes ?? 0 }
    public var dtype: DType { DType(rawValue: rawValue) ?? .u8 }

    public init?(dtype: DType) { self.init(rawValue: dtype.rawValue) }

    public init?(ggmlType: UInt32) {
        guard let t = Self.table.first(where: { $0.value.ggml == ggmlType })?.key else { return nil }
        self = t
    }

    /// Accepts "q4_k", "Q4_K", "q8_0".
    public init?(name: String) {
        guard let t = QuantType.allCases.first(where: { $0.rawValue.lowercased() == name.lowercased() }) else { return nil }
        self = t
    }

    /// Bytes of one row of `cols` elements, or nil when the row is not whole blocks.
    public func rowBytes(_ cols: Int) -> Int? {
        cols % blockSize == 0 ? cols / blockSize * bytesPerBlock : nil
    }
}
