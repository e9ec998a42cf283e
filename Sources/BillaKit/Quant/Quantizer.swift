import CKernels
import Foundation

/// Entry points for quantizing and dequantizing rows of f32 values, and for the plain float element types a GGUF
/// tensor can also be stored in. Rows are split across threads; the bytes do not depend on the split, because
/// every block is quantized on its own.
public enum Quantizer {
    typealias RowQuantizer = (UnsafePointer<Float>, UnsafeMutableRawPointer, Int) -> Void
    typealias RowDequantizer = (UnsafeRawPointer, UnsafeMutablePointer<Float>, Int) -> Void

    static func quantizer(_ t: QuantType) -> RowQuantizer {
        switch t {
        case .q4_0: return LegacyQuants.quantizeQ4_0
        case .q4_1: return LegacyQuants.quantizeQ4_1
        case .q5_0: return LegacyQuants.quantizeQ5_0
        case .q5_1: return LegacyQuants.quantizeQ5_1
        case .q8_0: return LegacyQuants.quantizeQ8_0
        case .q4_K: return KQuants.quantizeQ4_K
        case .q5_K: return KQuants.quantizeQ5_K
        case .q6_K: return KQuants.quantizeQ6_K
        case .q2_K: return { bk_quantize_q2_K($0, $1, Int64($2)) }
        case .q3_K: return { bk_quantize_q3_K($0, $1, Int64($2)) }
        case .iq4_nl: return { bk_quantize_iq4_nl($0, $1, Int64($2)) }
        case .iq4_xs: return { bk_quantize_iq4_xs($0, $1, Int64($2)) }
        case .iq3_xxs, .iq3_s, .iq2_s, .iq1_m, .tq1_0, .tq2_0:
            // ggml's unweighted search (IQ: weights from x^2), what ggml_quantize_chunk runs with a NULL imatrix
            let k = KernelType.of(t.dtype) ?? 0
            return { _ = bk_quantize_grid(k, $0, $1, Int64($2), nil) }
        case .iq2_xxs, .iq2_xs, .iq1_s:
            return { _, _, _ in
                preconditionFailure("\(t.rawValue) needs importance weights (ggml asserts them); check QuantType.requiresImportance first")
            }
        }
    }

    static func dequantizer(_ t: QuantType) -> RowDequantizer {
        switch t {
        case .q4_0: return LegacyQuants.dequantizeQ4_0
        case .q4_1: return LegacyQuants.dequantizeQ4_1
        case .q5_0: return LegacyQuants.dequantizeQ5_0
        case .q5_1: return LegacyQuants.dequantizeQ5_1
        case .q8_0: return LegacyQuants.dequantizeQ8_0
        case .q4_K: return KQuants.dequantizeQ4_K
        case .q5_K: return KQuants.dequantizeQ5_K
        case .q6_K: return KQuants.dequantizeQ6_K
        case .q2_K, .q3_K, .iq4_nl, .iq4_xs, .iq2_xxs, .iq2_xs, .iq3_xxs, .iq3_s, .iq2_s, .iq1_s, .iq1_m, .tq1_0, .tq2_0:
            let k = KernelType.of(t.dtype) ?? 0
            return { _ = bk_lowbit_to_f32(k, $0, $1, Int64($2)) }
        }
    }

    /// ggml's quantizers with an importance matrix (CKernels' importance.c): `w` holds one weight per column.
    static func weightedQuantizer(_ t: QuantType, _ w: UnsafePointer<Float>) -> RowQuantizer {
        let k = KernelType.of(t.dtype) ?? 0
        if bk_grid_block_bytes(k) > 0 { return { _ = bk_quantize_grid(k, $0, $1, Int64($2), w) } }   // grid.c
        return { _ = bk_quantize_row_importance(k, $0, $1, Int64($2), w) }
    }

    /// Quantizes `rows` rows of `cols` values (cols a multiple of the block size) into `dst`, which must hold
    /// rows × rowBytes(cols) bytes.
    ///
    /// Without `importance` the bytes are ggml's reference quantizers', what llama-quantize writes without
    /// `--imatrix`. With it — `cols` weights, one per column, as llama-quantize passes a tensor's imatrix entry to
    /// every row — they are `ggml_quantize_chunk(type, src, dst, 0, rows, cols, importance)`'s, a different
    /// (weighted) search for every type except Q8_0, which ggml quantizes the same either way. Check the weights
    /// first with `checkImportance`. Types with `requiresImportance` (IQ2_XXS, IQ2_XS, IQ1_S) must be given weights; TQ1_0 and
    /// TQ2_0 ignore them, as ggml does.
    public static func quantize(_ src: UnsafePointer<Float>, rows: Int, cols: Int, to type: QuantType,
                                into dst: UnsafeMutableRawPointer, threads: Int = 1,
                                importance: UnsafePointer<Float>? = nil) {
        let rowBytes = type.rowBytes(cols) ?? 0
        let q = importance.map { weightedQuantizer(type, $0) } ?? quantizer(type)
        parallelRows(rows, threads: threads) { r0, r1 in
            for r in r0..<r1 { q(src + r * cols, dst + r * rowBytes, cols) }
        }
    }

    /// The array form; `importance`, when given, must hold `cols` weights.
    public static func quantize(_ values: [Float], cols: Int, to type: QuantType, threads: Int = 1,
                                importance: [Float]? = nil) -> [UInt8] {
        precondition(importance == nil || importance?.count == cols, "importance needs one weight per column (\(cols))")
        let rows = cols > 0 ? values.count / cols : 0
        var out = [UInt8](repeating: 0, count: rows * (type.rowBytes(cols) ?? 0))
        values.withUnsafeBufferPointer { s in
            out.withUnsafeMutableBytes { d in
                guard let sp = s.baseAddress, let dp = d.baseAddress else { return }
                guard let importance else {
                    quantize(sp, rows: rows, cols: cols, to: type, into: dp, threads: threads)
                    return
                }
                importance.withUnsafeBufferPointer { w in
                    quantize(sp, rows: rows, cols: cols, to: type, into: dp, threads: threads, importance: w.baseAddress)
                }
            }
        }
        return out
    }

    /// Refuses importance weights ggml could not use as given: not one per column, not finite (llama-quantize
    /// refuses an imatrix with those too), or negative (an imatrix entry is a mean of squared activations, so a
    /// negative one means the file is damaged; llama-quantize would use it).
    public static func checkImportance(_ w: [Float], cols: Int, tensor: String) throws(BillaError) {
        guard w.count == cols else {
            throw BillaError(.shapeMismatch, tensor: tensor, "the importance matrix has \(w.count) weights for rows of \(cols)",
                             remedy: "use the imatrix computed for this model (llama-imatrix run on these weights): its entry for this tensor has one weight per column")
        }
        let bad = w.withUnsafeBufferPointer { p in p.indices.first { !(p[$0] >= 0 && p[$0].isFinite) } }
        if let i = bad {
            throw BillaError(.invalidArgument, tensor: tensor, "the importance matrix's weight for column \(i) is \(w[i])",
                             remedy: "recompute the imatrix; a finite, non-negative weight per column is needed")
        }
    }

    /// Dequantizes `count` values (whole blocks).
    public static func dequantize(_ src: UnsafeRawPointer, count: Int, from type: QuantType, into dst: UnsafeMutablePointer<Float>) {
        dequantizer(type)(src, dst, count)
    }

    public static func dequantize(_ bytes: [UInt8], from type: QuantType) -> [Float] {
        let count = bytes.count / type.bytesPerBlock * type.blockSize
        var out = [Float](repeating: 0, count: count)
        bytes.withUnsafeBytes { s in
            out.withUnsafeMutableBufferPointer { d in
                guard let sp = s.baseAddress, let dp = d.baseAddress else { return }
                dequantize(sp, count: count, from: type, into: dp)
            }
        }
        return out
    }

    /// Runs `body(firstRow, endRow)` over `threads` contiguous row ranges.
    static func parallelRows(_ rows: Int, threads: Int, _ body: (Int, Int) -> Void) {
        let n = Swift.max(1, Swift.min(threads, rows))
        if n == 1 { body(0, rows); return }
        Parallel.forEach(n) { t in body(rows * t / n, rows * (t + 1) / n) }
    }
}

/// Plain float element conversions to and from f32, with the rounding GGUF converters use.
public enum FloatRows {
    /// Reads `count` elements of a plain float dtype as f32; nil for dtypes that are not f32/f16/bf16.
    public static func toF32(_ src: UnsafeRawPointer, _ dtype: DType, count: Int, into dst: UnsafeMutablePointer<Float>) -> Bool {
        switch dtype {
        case .f32, .f16, .bf16:
            // exact widening in the C kernels (F16C when the CPU has it: Swift's Float16 is converted in software
            // without -target-cpu, which made this the slowest step of quantizing an f16 model)
            bk_to_f32(KernelType.of(dtype) ?? Int32(BK_F32), src, dst, Int64(count))
        default:
            if let q = dtype.quantType {
                Quantizer.dequantize(src, count: count, from: q, into: dst)
            } else {
                return false
            }
        }
        return true
    }

    /// The index of the first NaN or infinity among `count` values, or nil. A plain loop over the pointer: the
    /// quantizer checks every value it reads, and a generic `first(where:)` over a range costs more than the
    /// quantization itself in an unoptimised (debug/test) build.
    public static func firstNonFinite(_ p: UnsafePointer<Float>, count: Int) -> Int? {
        var i = 0
        while i < count {
            if !p[i].isFinite { return i }
            i &+= 1
        }
        return nil
    }

    /// f32 → bf16 as gguf-py and ggml do it: round to nearest even, NaN kept quiet.
    @inline(__always) public static func bf16(_ f: Float) -> UInt16 {
        var n = f.bitPattern
        if n & 0x7FFF_FFFF > 0x7F80_0000 { n = (n & 0xFFFF_0000) | (64 << 16) }
        return UInt16(truncatingIfNeeded: (UInt64(n) + UInt64(0x7FFF + ((n >> 16) & 1))) >> 16)
    }

    /// Writes f32 values as f32, f16 or bf16 little-endian bytes.
    public static func fromF32(_ src: UnsafePointer<Float>, count: Int, to dtype: DType, into dst: UnsafeMutableRawPointer) {
        switch dtype {
        case .f16:
            for i in 0..<count { dst.storeBytes(of: HalfFloat.fromFloat(src[i]).littleEndian, toByteOffset: i * 2, as: UInt16.self) }
        case .bf16:
            for i in 0..<count { dst.storeBytes(of: bf16(src[i]).littleEndian, toByteOffset: i * 2, as: UInt16.self) }
        default:
            for i in 0..<count { dst.storeBytes(of: src[i].bitPattern.littleEndian, toByteOffset: i * 4, as: UInt32.self) }
        }
    }
}
