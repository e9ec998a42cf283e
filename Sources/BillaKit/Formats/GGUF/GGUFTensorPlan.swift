import Foundation

/// The per-tensor half of a GGUF export: each planned tensor streamed from its source in bounded chunks, converted
/// or quantized (with its importance-matrix entry when one is given), and the overflow report of a refused narrowing.
extension GGUFExport {
    /// Rows per chunk: about 4 MiB of f32, so memory stays bounded whatever the tensor.
    static let chunkValues = 1 << 20

    /// The importance weights llama-quantize passes for this tensor: its entry when the target is quantized and
    /// the entry has one weight per column. A missing entry is a note (llama-quantize: "did not find weights for");
    /// a wrong-sized one is refused, except for token_embd, which llama-quantize then quantizes without one.
    static func importanceWeights(_ imatrix: (matrix: ImportanceMatrix, file: String)?, for s: Source, target: DType,
                                  source: String, notes: inout [String]) throws -> [Float]? {
        guard let imatrix, target.quantType != nil else { return nil }
        guard let w = imatrix.matrix.importance(for: s.name) else {
            notes.append("\(s.name): no entry in the importance matrix; quantized without one (as llama-quantize does)")
            return nil
        }
        if w.count != s.cols {
            if QuantPolicy.category(s.name) == .tokenEmbedding {
                notes.append("\(s.name): the importance matrix entry has \(w.count) weights for rows of \(s.cols); quantized without it (as llama-quantize does)")
                return nil
            }
            throw BillaError(.shapeMismatch, file: imatrix.file, tensor: s.name,
                             "the importance matrix has \(w.count) weights for this tensor's rows of \(s.cols) (llama-quantize refuses it too)",
                             remedy: "use the imatrix computed for this model (billa imatrix or llama-imatrix on these weights)")
        }
        do { try Quantizer.checkImportance(w, cols: s.cols, tensor: s.name) } catch { throw error.inFile(imatrix.file) }
        return w
    }

    static func plan(_ s: Source, to target: DType, threads: Int, file: String, narrowing: Narrowing,
                     importance: [Float]? = nil) -> TensorPlan {
        TensorPlan(name: s.name, dtype: target, shape: s.shape, provenance: s.provenance) { sink in
            let cols = s.cols, rows = s.rows
            guard rows > 0, cols > 0 else { return }
            let chunkRows = Swift.max(1, chunkValues / cols)
            var raw = [UInt8](repeating: 0, count: Swift.min(chunkRows, rows) * s.rowBytes)
            if target == s.dtype {
                for r in stride(from: 0, to: rows, by: chunkRows) {
                    let n = Swift.min(chunkRows, rows - r)
                    try raw.withUnsafeMutableBytes { b in
                        try s.rawRows(r, n, b.baseAddress!)
                        try sink(UnsafeRawBufferPointer(rebasing: b[0..<(n * s.rowBytes)]))
                    }
                }
                return
            }
            let outRowBytes = target.byteCount(elements: cols) ?? 0
            var values = [Float](repeating: 0, count: Swift.min(chunkRows, rows) * cols)
            var out = [UInt8](repeating: 0, count: Swift.min(chunkRows, rows) * outRowBytes)
            for r in stride(from: 0, to: rows, by: chunkRows) {
                let n = Swift.min(chunkRows, rows - r)
                try raw.withUnsafeMutableBytes { rb in
                    try values.withUnsafeMutableBufferPointer { vb in
                        try out.withUnsafeMutableBytes { ob in
                            try s.rawRows(r, n, rb.baseAddress!)
                            _ = FloatRows.toF32(rb.baseAddress!, s.dtype, count: n * cols, into: vb.baseAddress!)
                            if let q = target.quantType {
                                if let bad = FloatRows.firstNonFinite(vb.baseAddress!, count: n * cols) {
                                    throw BillaError(.invalidArgument, file: file, tensor: s.name,
                                                     "row \(r + bad / cols) holds \(vb[bad]); llama.cpp refuses non-finite weights",
                                                     remedy: "the source is corrupt; download it again and check its checksum")
                                }
                                if let importance {
                                    importance.withUnsafeBufferPointer { w in
                                        Quantizer.quantize(vb.baseAddress!, rows: n, cols: cols, to: q, into: ob.baseAddress!,
                                                           threads: threads, importance: w.baseAddress)
                                    }
                                } else {
                                    Quantizer.quantize(vb.baseAddress!, rows: n, cols: cols, to: q, into: ob.baseAddress!, threads: threads)
                                }
                            } else {
                                // ggml's NaN rule for bf16, so the bytes stay llama.cpp's; every value checked.
                                let o = DTypeCast.narrowF32(vb.baseAddress!, count: n * cols, to: ob.baseAddress!, target,
                                                            clamp: narrowing.clamp, nan: .ggml)
                                try narrowing.check(o, tensor: s.name, file: "\(file) (\(s.provenance))", from: s.dtype, to: target) {
                                    try overflow(s, rows: (r + n)..<rows, to: target)
                                }
                            }
                            try sink(UnsafeRawBufferPointer(rebasing: ob[0..<(n * outRowBytes)]))
                        }
                    }
                }
            }
        }
    }
}

extension GGUFExport {
    /// What narrowing rows `range` of a source to `target` would find (for the refusal's message).
    static func overflow(_ s: Source, rows range: Range<Int>, to target: DType) throws -> DTypeCast.Overflow {
        var o = DTypeCast.Overflow()
        let cols = s.cols
        guard !range.isEmpty, cols > 0 else { return o }
        let step = Swift.max(1, chunkValues / cols)
        var raw = [UInt8](repeating: 0, count: Swift.min(step, range.count) * s.rowBytes)
        var values = [Float](repeating: 0, count: Swift.min(step, range.count) * cols)
        var out = [UInt8](repeating: 0, count: Swift.min(step, range.count) * cols * target.size)
        var lo = range.lowerBound
        while lo < range.upperBound {
            let n = Swift.min(step, range.upperBound - lo)
            try raw.withUnsafeMutableBytes { rb in
                try s.rawRows(lo, n, rb.baseAddress!)
                values.withUnsafeMutableBufferPointer { vb in
                    _ = FloatRows.toF32(rb.baseAddress!, s.dtype, count: n * cols, into: vb.baseAddress!)
                    out.withUnsafeMutableBytes { ob in
                        o.add(DTypeCast.narrowF32(vb.baseAddress!, count: n * cols, to: ob.baseAddress!, target, clamp: false, nan: .ggml))
                    }
                }
            }
            lo += n
        }
        return o
    }
}
