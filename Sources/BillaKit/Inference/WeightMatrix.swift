import CKernels
import Dispatch
import Foundation

/// The kernels' numbering of the element types a weight can have.
enum KernelType {
    static func of(_ dtype: DType) -> Int32? {
        switch dtype {
        case .f32: return Int32(BK_F32)
        case .f16: return Int32(BK_F16)
        case .bf16: return Int32(BK_BF16)
        case .q4_0: return Int32(BK_Q4_0)
        case .q4_1: return Int32(BK_Q4_1)
        case .q5_0: return Int32(BK_Q5_0)
        case .q5_1: return Int32(BK_Q5_1)
        case .q8_0: return Int32(BK_Q8_0)
        case .q4_K: return Int32(BK_Q4_K)
        case .q5_K: return Int32(BK_Q5_K)
        case .q6_K: return Int32(BK_Q6_K)
        case .q2_K: return Int32(BK_Q2_K)
        case .q3_K: return Int32(BK_Q3_K)
        case .iq4_nl: return Int32(BK_IQ4_NL)
        case .iq4_xs: return Int32(BK_IQ4_XS)
        case .iq2_xxs: return Int32(BK_IQ2_XXS)
        case .iq2_xs: return Int32(BK_IQ2_XS)
        case .iq3_xxs: return Int32(BK_IQ3_XXS)
        case .iq3_s: return Int32(BK_IQ3_S)
        case .iq2_s: return Int32(BK_IQ2_S)
        case .iq1_s: return Int32(BK_IQ1_S)
        case .iq1_m: return Int32(BK_IQ1_M)
        case .tq1_0: return Int32(BK_TQ1_0)
        case .tq2_0: return Int32(BK_TQ2_0)
        default: return nil
        }
    }
}

/// Memory the verifier had to allocate for a weight: a strided view gathered, a compressed pack tensor decoded.
/// Dense tensors are never copied; their bytes stay in the file's mapping.
final class OwnedBytes: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    let count: Int
    init(copying bytes: UnsafeRawBufferPointer) {
        count = bytes.count
        pointer = .allocate(byteCount: max(count, 1), alignment: 64)
        if let base = bytes.baseAddress, count > 0 { pointer.copyMemory(from: base, byteCount: count) }
    }
    deinit { pointer.deallocate() }
}

/// A 2-D weight `[rows, cols]` as one or more rectangular pieces that sit where they are: a whole tensor in a
/// mapped file, or Meta's model-parallel pieces (row blocks for column-parallel layers, column blocks for
/// row-parallel ones), so a multi-shard release is evaluated without merging it first.
public struct WeightMatrix: @unchecked Sendable {
    struct Piece {
        let rowStart: Int, colStart: Int, rows: Int, cols: Int
        let kernel: Int32
        let base: UnsafeRawPointer
        let rowBytes: Int
    }

    public let name: String
    public let rows: Int
    public let cols: Int
    /// The widest-loss element type among the pieces (they share one in practice).
    public let dtype: DType
    let pieces: [Piece]
    /// Keeps mappings and decoded copies alive as long as the matrix.
    let owners: [AnyObject]

    /// y[t][r] = Σ_c W[r][c] · x[t][c] for `tokens` rows of x (`ldx` apart) into y (`ldy` apart), rows split across
    /// the cores.
    func multiply(_ x: UnsafePointer<Float>, ldx: Int, tokens: Int, into y: UnsafeMutablePointer<Float>, ldy: Int) {
        if pieces.allSatisfy({ $0.colStart == 0 && $0.cols == cols }) {
            // Row blocks (one whole tensor, or Meta's column-parallel pieces) each fill their own rows of y.
            for p in pieces { run(p, x, ldx: ldx, tokens: tokens, y, ldy: ldy) }
            return
        }
        // Column blocks (Meta's row-parallel pieces) add up: each partial product goes to a scratch, then into y.
        for t in 0..<tokens { (y + t * ldy).update(repeating: 0, count: rows) }
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: max(1, tokens * rows))
        defer { scratch.deallocate() }
        for p in pieces {
            run(p, x + p.colStart, ldx: ldx, tokens: tokens, scratch, ldy: rows)
            for t in 0..<tokens {
                let dst = y + t * ldy + p.rowStart, src = scratch + t * rows + p.rowStart
                for r in 0..<p.rows { dst[r] += src[r] }
            }
        }
    }

    private func run(_ p: Piece, _ x: UnsafePointer<Float>, ldx: Int, tokens: Int, _ y: UnsafeMutablePointer<Float>, ldy: Int) {
        let y = y + p.rowStart
        let threads = p.rows * p.cols * max(tokens, 1) >= 1 << 16 ? Parallel.cores : 1
        let per = (p.rows + threads - 1) / threads
        nonisolated(unsafe) let yy = y
        Parallel.forEachHot(threads) { k in
            let lo = k * per, hi = min(p.rows, lo + per)
            guard lo < hi else { return }
            if bk_lowbit_block_bytes(p.kernel) > 0 {
                // Q2_K, Q3_K, IQ4_NL, IQ4_XS and the grid types: rows widened to f32 in lowbit.c / grid.c, then the
                // f32 products (no int8 activation products for these types yet)
                let scratch = UnsafeMutablePointer<Float>.allocate(capacity: max(1, Int(BK_LOWBIT_ROWS + BK_SCRATCH_ROWS) * p.cols))
                defer { scratch.deallocate() }
                _ = bk_lowbit_rows_dot(p.kernel, p.base + lo * p.rowBytes, p.rowBytes, Int64(hi - lo), Int64(p.cols),
                                       x, Int64(ldx), Int64(tokens), yy + lo, Int64(ldy), scratch)
                return
            }
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: max(1, Int(BK_SCRATCH_ROWS) * p.cols))
            defer { scratch.deallocate() }
            bk_rows_dot(p.kernel, p.base + lo * p.rowBytes, p.rowBytes, Int64(hi - lo), Int64(p.cols),
                        x, Int64(ldx), Int64(tokens), yy + lo, Int64(ldy), scratch)
        }
    }

    /// Row `r` widened to f32 (an embedding lookup).
    func row(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        for p in pieces where r >= p.rowStart && r < p.rowStart + p.rows {
            let src = p.base + (r - p.rowStart) * p.rowBytes
            if bk_lowbit_to_f32(p.kernel, src, out + p.colStart, Int64(p.cols)) == 0 {
                bk_to_f32(p.kernel, src, out + p.colStart, Int64(p.cols))
            }
        }
    }

    /// Every element finite (quantized blocks are widened first); the first bad row otherwise.
    func firstNonFiniteRow() -> Int? {
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: max(1, cols))
        defer { scratch.deallocate() }
        for r in 0..<rows {
            row(r, into: scratch)
            for c in 0..<cols where !scratch[c].isFinite { return r }
        }
        return nil
    }
}
