import Foundation

/// The layout of llama-perplexity's KL-divergence base file (`--kl-divergence-base FILE`, formats/kld-base.md), so a
/// base written by either tool can be compared against by the other. All integers and floats little-endian:
///
///     "_logits_"                 8 bytes
///     n_ctx, n_vocab, n_chunk    int32 each
///     tokens                     n_chunk · n_ctx int32: the text's ids as tokenized (BOS first), before the BOS
///                                that replaces each chunk's first token while it runs
///     per chunk, per scored row  n_ctx − 1 − n_ctx/2 rows of `rowWidth` uint16: the row's scale and smallest log-prob
///                                as two float32 (4 uint16), then one uint16 per vocabulary entry, then one uint16
///                                of padding when n_vocab is odd (`KLDBaseRow`)
public struct KLDBaseLayout: Sendable, Equatable {
    public static let magic = Array("_logits_".utf8)
    public static let headerBytes = 8 + 3 * 4

    public let nCtx: Int
    public let nVocab: Int
    public let nChunk: Int

    public init(nCtx: Int, nVocab: Int, nChunk: Int) {
        self.nCtx = nCtx
        self.nVocab = nVocab
        self.nChunk = nChunk
    }

    /// uint16 per row: llama-perplexity's `nv = 2*((n_vocab + 1)/2) + 4`.
    public var rowWidth: Int { 2 * ((nVocab + 1) / 2) + 4 }
    /// Rows per chunk: the logits at positions n_ctx/2 ..< n_ctx−1, each predicting the token after it.
    public var rowsPerChunk: Int { nCtx - 1 - nCtx / 2 }
    public var tokensOffset: Int { Self.headerBytes }
    public var rowsOffset: Int { Self.headerBytes + nChunk * nCtx * 4 }
    public var chunkBytes: Int { rowsPerChunk * rowWidth * 2 }
    public var fileSize: Int { rowsOffset + nChunk * chunkBytes }
}

/// One row of a base file: llama-perplexity's uint16 packing of a position's log-probabilities. The logits are cut
/// 16 below their maximum (a smaller logit is stored as 0, i.e. as the cut), and the range is spread over 0...65535:
/// log p(i) = scale · q(i) + minLogProb. Encoding repeats llama-perplexity's float arithmetic step for step (expf
/// summed in double, the log in float, rounding to nearest even), so the same logits give the same bytes.
public enum KLDBaseRow {
    /// Encodes `logits` (n_vocab floats) into `out` (`rowWidth` uint16; the padding entry is left as it is) and
    /// returns the negative log-likelihood of `token` as llama-perplexity computes it there (in float).
    public static func encode(_ logits: UnsafePointer<Float>, count n: Int, token: Int, into out: UnsafeMutablePointer<UInt16>) -> Double {
        var maxLogit = logits[0], minLogit = logits[0]
        for i in 1..<n {
            maxLogit = max(maxLogit, logits[i])
            minLogit = min(minLogit, logits[i])
        }
        minLogit = max(minLogit, maxLogit - 16)
        var sumExp = 0.0
        for i in 0..<n { sumExp += Double(Foundation.exp(logits[i] - maxLogit)) }
        let logSumExp = Float(Foundation.log(sumExp))
        let minLogProb = minLogit - maxLogit - logSumExp
        let scale = (maxLogit - minLogit) / 65535
        putFloat(scale, out)
        putFloat(minLogProb, out + 2)
        let q = out + 4
        if scale != 0 {
            let inv = 1 / scale
            for i in 0..<n {
                q[i] = (logits[i] > minLogit ? UInt16(truncatingIfNeeded: Int((inv * (logits[i] - minLogit)).rounded(.toNearestOrEven))) : 0).littleEndian
            }
        } else {
            q.update(repeating: 0, count: n)
        }
        return Double(maxLogit + logSumExp - logits[token])
    }

    /// The stored scale and smallest log-probability of a row.
    public static func header(_ row: UnsafeRawPointer) -> (scale: Float, minLogProb: Float) {
        (Float(bitPattern: UInt32(littleEndian: row.loadUnaligned(as: UInt32.self))),
         Float(bitPattern: UInt32(littleEndian: row.loadUnaligned(fromByteOffset: 4, as: UInt32.self))))
    }

    /// Entry `i` of a row's packed values.
    @inline(__always)
    public static func value(_ row: UnsafeRawPointer, _ i: Int) -> UInt16 {
        UInt16(littleEndian: row.loadUnaligned(fromByteOffset: 8 + 2 * i, as: UInt16.self))
    }

    /// The decoded log-probability of entry `i`, as llama-perplexity decodes it.
    @inline(__always)
    public static func logProb(_ row: UnsafeRawPointer, _ i: Int, scale: Float, minLogProb: Float) -> Float {
        scale * Float(value(row, i)) + minLogProb
    }

    private static func putFloat(_ f: Float, _ p: UnsafeMutablePointer<UInt16>) {
        let bits = f.bitPattern
        p[0] = UInt16(truncatingIfNeeded: bits).littleEndian
        p[1] = UInt16(truncatingIfNeeded: bits >> 16).littleEndian
    }
}

/// A base file opened through mmap: header checked against the file's size, rows handed out in place.
public final class KLDBaseReader: @unchecked Sendable {
    public let path: String
    public let layout: KLDBaseLayout
    private let file: MappedFile

    public init(path: String) throws {
        self.path = path
        let file = try MappedFile(path: path)
        self.file = file
        let remedy = "pass a file written by `billa perplexity --kl-divergence-base` or `llama-perplexity --kl-divergence-base`"
        guard file.size >= KLDBaseLayout.headerBytes, Array(file.all.prefix(8)) == KLDBaseLayout.magic else {
            throw BillaError(.unknownFormat, file: path, "not a KL-divergence base file (it does not start with \"_logits_\")", remedy: remedy)
        }
        let head = file.all
        let nCtx = Int(Int32(littleEndian: head.loadUnaligned(fromByteOffset: 8, as: Int32.self)))
        let nVocab = Int(Int32(littleEndian: head.loadUnaligned(fromByteOffset: 12, as: Int32.self)))
        let nChunk = Int(Int32(littleEndian: head.loadUnaligned(fromByteOffset: 16, as: Int32.self)))
        guard nCtx >= 3, nVocab >= 1, nChunk >= 1 else {
            throw BillaError(.invalidHeader, file: path, "the header says n_ctx \(nCtx), n_vocab \(nVocab), n_chunk \(nChunk)",
                             remedy: "the file is corrupt; write the base again (n_ctx must be at least 3, the others at least 1)")
        }
        let l = KLDBaseLayout(nCtx: nCtx, nVocab: nVocab, nChunk: nChunk)
        guard file.size == l.fileSize else {
            throw BillaError(file.size < l.fileSize ? .corruptContainer : .invalidHeader, file: path,
                             "n_ctx \(nCtx), n_vocab \(nVocab) and n_chunk \(nChunk) make a file of \(l.fileSize) bytes, but it has \(file.size)",
                             remedy: file.size < l.fileSize ? "the file is truncated (an interrupted llama-perplexity run?); write the base again"
                                                            : "the file has bytes after its last chunk; write the base again")
        }
        layout = l
    }

    /// The evaluation tokens: n_chunk · n_ctx ids.
    public func tokens() -> [Int] {
        let base = file.all.baseAddress! + layout.tokensOffset
        return (0..<(layout.nChunk * layout.nCtx)).map { Int(Int32(littleEndian: base.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self))) }
    }

    /// Row `r` of chunk `c` (its `rowWidth` uint16, header included), in place in the map.
    public func row(chunk c: Int, _ r: Int) -> UnsafeRawPointer {
        file.all.baseAddress! + layout.rowsOffset + c * layout.chunkBytes + r * layout.rowWidth * 2
    }
}

/// Writes a base file chunk by chunk under a temporary name (`AtomicFileWriter`): it appears only when every chunk
/// was written.
public final class KLDBaseWriter {
    public let layout: KLDBaseLayout
    private let writer: AtomicFileWriter
    private var chunksWritten = 0

    /// Writes the header and the tokens (`layout.nChunk · layout.nCtx` of them).
    public init(path: String, layout: KLDBaseLayout, tokens: ArraySlice<Int>) throws {
        precondition(tokens.count == layout.nChunk * layout.nCtx)
        self.layout = layout
        writer = try AtomicFileWriter(path: path)
        var head = KLDBaseLayout.magic
        for v in [layout.nCtx, layout.nVocab, layout.nChunk] + tokens {
            withUnsafeBytes(of: Int32(truncatingIfNeeded: v).littleEndian) { head += $0 }
        }
        try writer.write(head)
    }

    /// Appends the next chunk's rows: `rowsPerChunk · rowWidth` uint16 from `KLDBaseRow.encode`.
    public func append(_ rows: [UInt16]) throws {
        precondition(rows.count == layout.rowsPerChunk * layout.rowWidth)
        try rows.withUnsafeBytes { try writer.write($0) }
        chunksWritten += 1
    }

    /// Renames the file into place; every chunk must have been appended.
    public func commit() throws {
        precondition(chunksWritten == layout.nChunk)
        try writer.commit()
    }
}
