import Foundation

extension ImportanceMatrix {
    /// Writes the statistics in `format`, byte for byte as llama-imatrix's save_imatrix / save_imatrix_legacy
    /// write the same sums (entries in bytewise name order), through a temporary file renamed when complete.
    /// Only raw sums (computed here, or read from a GGUF imatrix) can be written: a legacy file has lost them.
    public func write(to path: String, as format: Format) throws {
        guard self.format == .gguf else {
            throw BillaError(.unsupported, file: path, "a legacy .dat importance matrix stores means, not the raw sums either file is written from",
                             remedy: "pass the .dat file to billa quantize --imatrix directly, or recompute the matrix with billa imatrix")
        }
        switch format {
        case .gguf: try writeGGUF(to: path)
        case .dat: try AtomicFileWriter.write(legacyBytes(), to: path)
        }
    }

    /// general.type, the datasets, chunk count and chunk size, then per entry `NAME.in_sum2` ([cols] per stacked
    /// matrix) and `NAME.counts` ([1] per matrix), f32. ggml drops trailing unit dimensions, so a dense matrix's
    /// tensors are one-dimensional.
    private func writeGGUF(to path: String) throws {
        let meta = GGUFMetadata([
            (ImatrixKeys.type, .text(ImatrixKeys.typeValue)),
            (ImatrixKeys.datasets, .strings(datasets)),
            (ImatrixKeys.chunkCount, .u32(UInt32(clamping: chunkCount))),
            (ImatrixKeys.chunkSize, .u32(UInt32(clamping: chunkSize))),
        ])
        var plans: [TensorPlan] = []
        for name in sortedNames {
            let e = entries[name]!
            guard !e.sums.isEmpty, !e.counts.isEmpty else { continue }
            let nmat = e.counts.count
            let sums = e.sums, counts = e.counts.map(Float.init)
            plans.append(floatPlan(name + ImatrixKeys.sumsSuffix, nmat == 1 ? [sums.count] : [nmat, sums.count / nmat], sums))
            plans.append(floatPlan(name + ImatrixKeys.countsSuffix, nmat == 1 ? [1] : [nmat, 1], counts))
        }
        try GGUFWriter.write(metadata: meta, tensors: plans, to: path)
    }

    private func floatPlan(_ name: String, _ shape: [Int], _ values: [Float]) -> TensorPlan {
        TensorPlan(name: name, dtype: .f32, shape: shape, provenance: "imatrix") { sink in
            try values.map { $0.bitPattern.littleEndian }.withUnsafeBytes { try sink($0) }
        }
    }

    /// The legacy file: per entry its mean scaled by the call count ceil(max tokens / chunk size), as llama-imatrix
    /// stores it (a matrix that saw no tokens stores 1 × calls); then the chunk count and the first dataset.
    func legacyBytes() -> [UInt8] {
        var b = Bytes()
        let names = sortedNames.filter { n in entries[n].map { !$0.counts.isEmpty && $0.counts.contains { $0 != 0 } } ?? false }
        let chunk = Int64(max(1, chunkSize))
        b.raw(Int32(names.count))
        for name in names {
            let e = entries[name]!
            let utf8 = Array(name.utf8)
            b.raw(Int32(utf8.count)); b.bytes.append(contentsOf: utf8)
            let ncall = (e.counts.max()! + chunk - 1) / chunk
            b.raw(Int32(ncall))
            b.raw(Int32(e.sums.count))
            let per = e.sums.count / e.counts.count
            for (i, v) in e.sums.enumerated() {
                var count = Float(e.counts[i / per]), value = v
                if count == 0 { value = 1; count = 1 }
                b.raw(((value / count) * Float(ncall)).bitPattern)
            }
        }
        b.raw(Int32(chunkCount))
        let dataset = Array((datasets.last ?? "").utf8)
        b.raw(Int32(dataset.count)); b.bytes.append(contentsOf: dataset)
        return b.bytes
    }
}
