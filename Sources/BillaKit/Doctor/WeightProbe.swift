import Foundation

/// The few rows `billa doctor` reads: norm vectors (a trained RMSNorm weight is positive; a delta or a diff of two
/// models is centred on zero) and a sample of embedding rows (BiLLa's release adds LLaMA's embedding to rows
/// [0, n), which roughly doubles their norms against the rows past n).
enum WeightProbe {
    /// The tensor's values as f32 (only for small tensors: norm vectors).
    static func values(_ t: Tensor) throws -> [Float] {
        guard DTypeCast.supports(t.dtype), t.elementCount <= 1 << 20 else { return [] }
        let bytes = try t.readRows(0..<t.rows)
        var out = [Float](repeating: 0, count: t.elementCount)
        bytes.withUnsafeBytes { b in
            out.withUnsafeMutableBufferPointer { o in
                if let src = b.baseAddress, let dst = o.baseAddress { DTypeCast.widen(src, t.dtype, count: t.elementCount, into: dst) }
            }
        }
        return out
    }

    /// Of the norm weights given, the fraction of values below zero and the mean magnitude.
    static func normStatistics(_ norms: [Tensor]) throws -> (negative: Double, meanAbs: Double, values: Int) {
        var negative = 0, total = 0
        var magnitude = 0.0
        for t in norms {
            let v = try values(t)
            negative += v.filter { $0 < 0 }.count
            magnitude += v.reduce(0.0) { $0 + Double(abs($1)) }
            total += v.count
        }
        guard total > 0 else { return (0, 0, 0) }
        return (Double(negative) / Double(total), magnitude / Double(total), total)
    }

    /// The L2 norm of row `i`.
    static func rowNorm(_ t: Tensor, _ i: Int) throws -> Double {
        let width = t.shape.dropFirst().reduce(1, *)
        let bytes = try t.readRows(i..<(i + 1))
        var row = [Float](repeating: 0, count: width)
        bytes.withUnsafeBytes { b in
            row.withUnsafeMutableBufferPointer { o in
                if let src = b.baseAddress, let dst = o.baseAddress { DTypeCast.widen(src, t.dtype, count: width, into: dst) }
            }
        }
        return row.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
    }

    struct Step: Sendable {
        /// The first row of the lower part.
        let boundary: Int
        /// mean norm of rows [0, boundary) / mean norm of rows [boundary, n).
        let ratio: Double
        let sampled: Int
    }

    /// Where the row norms of an embedding drop most: every row of a small table, else 256 spread rows plus the 64
    /// around LLaMA's 32000. Only contiguous splits with at least 4 sampled rows (and 1/64 of the sample) each side.
    static func largestStep(_ t: Tensor, llamaRows: Int = 32000) throws -> Step? {
        guard t.shape.count == 2, DTypeCast.supports(t.dtype) else { return nil }
        let n = t.shape[0]
        var rows: [Int]
        if n <= 4096 {
            rows = Array(0..<n)
        } else {
            rows = (0..<256).map { $0 * (n - 1) / 255 }
            if n > llamaRows { rows += (llamaRows - 32)..<min(n, llamaRows + 32) }
            rows = Array(Set(rows)).sorted()
        }
        let norms = try rows.map { try rowNorm(t, $0) }
        let minSide = max(4, rows.count / 64)
        guard rows.count >= 2 * minSide else { return nil }
        var prefix = [0.0]
        for v in norms { prefix.append(prefix.last! + v) }
        var best: Step? = nil
        for j in minSide...(rows.count - minSide) {
            let left = prefix[j] / Double(j), right = (prefix[rows.count] - prefix[j]) / Double(rows.count - j)
            guard right > 0 else { continue }
            let ratio = left / right
            if best == nil || ratio > best!.ratio { best = Step(boundary: rows[j], ratio: ratio, sampled: rows.count) }
        }
        return best
    }

    /// The sum of every value of `t` in double, a block of rows at a time (for the published sums; reads it all).
    static func sum(_ t: Tensor) throws -> Double {
        let width = max(1, t.shape.dropFirst().reduce(1, *))
        let block = max(1, (4 << 20) / max(1, t.rowBytes))
        var total = 0.0
        var buffer = [Float](repeating: 0, count: block * width)
        var lo = 0
        while lo < t.rows {
            let r = lo..<min(t.rows, lo + block)
            let bytes = try t.readRows(r)
            let count = r.count * width
            bytes.withUnsafeBytes { b in
                buffer.withUnsafeMutableBufferPointer { o in
                    if let src = b.baseAddress, let dst = o.baseAddress { DTypeCast.widen(src, t.dtype, count: count, into: dst) }
                }
            }
            for i in 0..<count { total += Double(buffer[i]) }
            lo = r.upperBound
        }
        return total
    }
}
