import Foundation

/// Stanford Alpaca's weight diff (tatsu-lab/stanford_alpaca weight_diff.py, `recover`): both models in fp32; the raw
/// LLaMA gets a [PAD] token first (its embedding and head grow one row, set to the mean of the existing rows, as
/// `smart_tokenizer_and_embedding_resize` does); then recovered = diff + raw, kept in fp32. The published check is
/// the sum of every recovered tensor, 50637.1836 for Alpaca-7B (atol 1e-2).
public enum WeightDiffRecovery {
    public static let alpaca7BSum = 50637.1836
    static let resizable: Set<String> = ["model.embed_tokens.weight", "lm_head.weight"]

    public struct Job: Sendable {
        public let plan: OutputPlan
        public let sum: BillaRecovery.SumBox
        public let padRows: [String]
        /// Each tensor's own sum, in the diff's state-dict order.
        let tensorSums: [BillaRecovery.SumBox]

        /// The sum as weight_diff.py computes it: `sum(t.sum() for t in state_dict.values())`, i.e. every tensor summed
        /// (torch's fp32 reduction, near exact: here exact in double, then rounded) and the 0-d fp32 results added
        /// one after another in fp32. At Alpaca-7B's 5e4 an fp32 step is 0.004, so a double sum alone can drift
        /// past the script's atol 1e-2 over 291 tensors; this reproduces its rounding instead.
        public var torchStyleSum: Float {
            var total: Float = 0
            for box in tensorSums { total += Float(box.value) }
            return total
        }
    }

    public static func plan(raw: String, diff: String, output: String) throws -> Job {
        let r = try Release.open(raw)
        let d = try Release.open(diff)
        guard r.layout == .huggingFace, d.layout == .huggingFace else {
            throw BillaError(.invalidArgument, file: r.layout == .huggingFace ? diff : raw, "weight_diff works on Hugging Face directories",
                             remedy: "convert Meta's LLaMA first: billa convert LLAMA -o LLAMA-hf --to hf")
        }
        var rawTensors = [String: Tensor]()
        for (_, t) in r.tensors { rawTensors[t.name] = t }
        let sum = BillaRecovery.SumBox()
        var tensorSums = [BillaRecovery.SumBox]()
        var padded = [String]()
        var files = [PlannedFile]()
        for f in d.files {
            let plans = try f.tensors.map { t -> TensorPlan in
                guard let rt = rawTensors[t.name] else {
                    throw BillaError(.notFound, file: raw, tensor: t.name, "the diff has this tensor but the raw LLaMA does not",
                                     remedy: "pass LLaMA-7B in Hugging Face format as --raw")
                }
                let base = RowSource(rt), delta = RowSource(t)
                var pad = false
                if delta.rows == base.rows + 1, resizable.contains(t.name) { pad = true; padded.append(t.name) }
                guard Array(base.shape.dropFirst()) == Array(delta.shape.dropFirst()), delta.rows == base.rows || pad,
                      DTypeCast.supports(base.dtype), DTypeCast.supports(delta.dtype) else {
                    throw BillaError(.shapeMismatch, file: f.path, tensor: t.name,
                                     "the diff is \(Shape.describe(delta.shape)) but the raw model's is \(Shape.describe(base.shape))",
                                     remedy: "use the raw LLaMA the diff was made from (LLaMA-7B for Alpaca-7B)")
                }
                let own = BillaRecovery.SumBox()
                tensorSums.append(own)
                return recovered(base: base, diff: delta, pad: pad, sums: [sum, own]).plan(named: t.name)
            }
            let name = (f.path as NSString).lastPathComponent
            files.append(PlannedFile(name: name, content: f.format == .safetensors ? .safetensors(plans, metadata: f.metadata) : .torch(plans)))
        }
        let weights = Set(d.files.map { ($0.path as NSString).lastPathComponent })
        files += Resharder.companions(d, skip: { weights.contains($0) })
        let notes = ["recovered = fp32(diff) + fp32(raw)"] + padded.map { "\($0): the [PAD] row of the raw model is the mean of its rows" }
        return Job(plan: OutputPlan(destination: output, files: files, notes: notes), sum: sum, padRows: padded, tensorSums: tensorSums)
    }

    static func recovered(base: RowSource, diff: RowSource, pad: Bool, sums: [BillaRecovery.SumBox]) -> RowSource {
        let width = diff.rowElements
        let n = base.rows
        let mean = MeanRow(base, width: width)
        return RowSource(dtype: .f32, shape: diff.shape, provenance: "f32(\(diff.provenance)) + f32(\(base.provenance)\(pad ? " + [PAD] mean row" : ""))",
                         fill: { r, dst in
            let count = r.count * width
            guard count > 0 else { return }
            let raw = UnsafeMutableRawPointer.allocate(byteCount: r.count * diff.rowBytes, alignment: 64)
            defer { raw.deallocate() }
            let out = dst.assumingMemoryBound(to: Float.self)
            try diff.fill(r, raw)
            DTypeCast.widen(raw, diff.dtype, count: count, into: out)
            let hi = min(r.upperBound, n)
            if r.lowerBound < hi {
                let c = (hi - r.lowerBound) * width
                let rb = UnsafeMutableRawPointer.allocate(byteCount: (hi - r.lowerBound) * base.rowBytes, alignment: 64)
                defer { rb.deallocate() }
                let b = UnsafeMutablePointer<Float>.allocate(capacity: c)
                defer { b.deallocate() }
                try base.fill(r.lowerBound..<hi, rb)
                DTypeCast.widen(rb, base.dtype, count: c, into: b)
                for i in 0..<c { out[i] += b[i] }
            }
            if r.upperBound > n {
                let m = try mean.value()
                for row in max(r.lowerBound, n)..<r.upperBound {
                    let o = (row - r.lowerBound) * width
                    for c in 0..<width { out[o + c] += m[c] }
                }
            }
            var total = 0.0
            for i in 0..<count { total += Double(out[i]) }
            for box in sums { box.add(total, count) }
        }, release: { r in
            diff.release(r)
            let hi = min(r.upperBound, n)
            if r.lowerBound < hi { base.release(r.lowerBound..<hi) }
        })
    }

    /// torch's `mean(dim=0)` of an fp32 matrix, computed once when first needed: torch sums the rows with its
    /// cascade (four levels of partial sums, 2^max(4, ceil(log2 n)/4) rows per level step) and divides in fp32.
    /// Equal to torch bit for bit for widths that are multiples of 64 (checked in make_convert_fixtures.py).
    final class MeanRow: @unchecked Sendable {
        private let source: RowSource
        private let width: Int
        private var cached: [Float]?
        private let lock = NSLock()

        init(_ source: RowSource, width: Int) { self.source = source; self.width = width }

        func value() throws -> [Float] {
            lock.lock(); defer { lock.unlock() }
            if let cached { return cached }
            let n = source.rows, levels = 4
            let ceilLog2 = n <= 1 ? 0 : Int((Double(n)).log2().rounded(.up))
            let power = max(4, ceilLog2 / levels)
            let step = 1 << power, mask = step - 1
            var acc = [[Float]](repeating: [Float](repeating: 0, count: width), count: levels)
            let raw = UnsafeMutableRawPointer.allocate(byteCount: max(1, source.rowBytes), alignment: 64)
            defer { raw.deallocate() }
            var row = [Float](repeating: 0, count: width)
            func addRow(_ i: Int) throws {
                try source.fill(i..<(i + 1), raw)
                row.withUnsafeMutableBufferPointer { if let p = $0.baseAddress { DTypeCast.widen(raw, source.dtype, count: width, into: p) } }
                for c in 0..<width { acc[0][c] += row[c] }
            }
            var i = 0
            while i + step <= n {
                for _ in 0..<step { try addRow(i); i += 1 }
                for j in 1..<levels {
                    for c in 0..<width { acc[j][c] += acc[j - 1][c]; acc[j - 1][c] = 0 }
                    if (i & (mask << (j * power))) != 0 { break }
                }
            }
            while i < n { try addRow(i); i += 1 }
            for j in 1..<levels { for c in 0..<width { acc[0][c] += acc[j][c] } }
            let mean = acc[0].map { $0 / Float(n) }
            source.release(0..<n)
            cached = mean
            return mean
        }
    }
}

private extension Double {
    func log2() -> Double { Foundation.log2(self) }
}
