/// safetensors format facts (https://github.com/huggingface/safetensors, "Format").
enum SafetensorsLayout {
    /// The reference implementation refuses headers above 100 MB; so does billa.
    static let maxHeaderSize = 100_000_000
    static let metadataKey = "__metadata__"
    /// Writers pad the JSON header with spaces so the data starts 8-byte aligned.
    static let headerAlignment = 8

    /// The writer's tensor order is by this rank, descending, then by name: the reference implementation sorts by
    /// its `Dtype` enum order reversed, so matching it makes billa's files byte-identical to `save_file`'s.
    static func writeRank(_ d: DType) -> Int {
        switch d {
        case .bool: return 0
        case .u8: return 1
        case .i8: return 2
        case .f8e5m2: return 3
        case .f8e4m3: return 4
        case .i16: return 5
        case .u16: return 6
        case .f16: return 7
        case .bf16: return 8
        case .i32: return 9
        case .u32: return 10
        case .f32: return 11
        case .f64: return 12
        case .i64: return 13
        case .u64: return 14
        // safetensors has no block-quantized dtypes; the reader rejects them, so these never reach the writer.
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q5_K, .q6_K, .q2_K, .q3_K, .iq4_nl, .iq4_xs,
             .iq2_xxs, .iq2_xs, .iq3_xxs, .iq3_s, .iq2_s, .iq1_s, .iq1_m, .tq1_0, .tq2_0: return -1
        }
    }
}
