/// # One streaming contract for every tensor source
///
/// billa never needs a whole tensor in memory, whatever the source, and every source and writer keeps to two ways
/// of moving tensor bytes. Sources: a dense tensor in a mapped file, a strided view (`torch.save` of a transposed
/// or sliced tensor), a chunked compressed pack tensor, rows of quantized blocks, and the views built from them
/// here (concatenation, row permutation, slices, casts). Writers: safetensors, torch `.pth`/`.bin`, GGUF, pack, and
/// the quantizer (GGUFExport), which consume nothing else.
///
/// 1. **Rows into the caller's buffer** (`RowSource.fill`, `Tensor.readRows(_:into:)`; `PackedTensor.read(bytes:into:)`
///    for a byte range). Rows `r` of dimension 0 land in `dst`: exactly `r.count * rowBytes` bytes, a row of a
///    block type being whole blocks (`DType.byteCount(elements:)`). The cost is that of the rows asked for, never
///    of the whole tensor: a strided view gathers only those rows; a pack decodes only the chunks the range
///    overlaps (on all cores when there are several) and keeps the partly read chunks it decoded last
///    (`PackChunkCache`), so reading a tensor row by row or in ranges that start and end mid-chunk, in order,
///    decodes each chunk once. `direct` may hand out the mapped bytes instead of a copy; `release` tells the source
///    that rows will not be read again (mapped pages and cached chunks can go), a hint that never changes a result.
/// 2. **A chunked stream of exact total length** (`TensorPlan.bytes`). The producer calls its body zero or more
///    times with consecutive pieces of any sizes (not row, element or chunk aligned), each valid only during the
///    call, whose lengths add up to exactly `TensorPlan.byteCount`. A writer accepts any number of pieces, keeps
///    none after the call returns (it copies what it must batch, as the pack writer does for its chunks), and
///    refuses a stream whose total is not `byteCount`.
///
/// A `RowSource` is the first form; `plan(named:)` turns it into the second, ~8 MiB at a time.
public struct RowSource: @unchecked Sendable {
    public let dtype: DType
    public let shape: [Int]
    /// Where the rows come from, for --dry-run ("consolidated.00.pth:tok_embeddings.weight + ...").
    public let provenance: String
    /// Copies rows `range` into `dst` (range.count * rowBytes bytes).
    let fill: (Range<Int>, UnsafeMutableRawPointer) throws -> Void
    /// The rows' bytes as they already sit in a mapped file, when they do.
    let direct: ((Range<Int>) throws -> UnsafeRawBufferPointer?)
    /// Tells the source that rows will not be read again, so their mapped pages can leave this process's resident
    /// set: without it, streaming a 13 GB checkpoint through mmap would leave 13 GB resident.
    let release: (Range<Int>) -> Void

    /// Rows of dimension 0; a scalar, and a 1-D tensor of quantized blocks (whose elements are not whole blocks
    /// each), are one row.
    public var rows: Int { Self.rows(dtype, shape) }
    public var rowElements: Int { shape.count <= 1 ? (rows == 1 ? (shape.first ?? 1) : 1) : shape.dropFirst().reduce(1, *) }
    /// Bytes of one row: whole blocks for a quantized dtype.
    public var rowBytes: Int { dtype.byteCount(elements: rowElements) ?? 0 }
    public var byteCount: Int { rows * rowBytes }

    static func rows(_ dtype: DType, _ shape: [Int]) -> Int {
        shape.isEmpty || (dtype.isQuantized && shape.count == 1) ? 1 : shape[0]
    }

    init(dtype: DType, shape: [Int], provenance: String,
         fill: @escaping (Range<Int>, UnsafeMutableRawPointer) throws -> Void,
         direct: @escaping (Range<Int>) throws -> UnsafeRawBufferPointer? = { _ in nil },
         release: @escaping (Range<Int>) -> Void = { _ in }) {
        self.dtype = dtype
        self.shape = shape
        self.provenance = provenance
        self.fill = fill
        self.direct = direct
        self.release = release
    }

    /// The rows of a tensor: dense tensors zero-copy from the map, strided views gathered row by row, pack chunks
    /// decoded per range (see the contract above).
    public init(_ t: Tensor) {
        let file = t.file.path.split(separator: "/").last.map(String.init) ?? t.file.path
        let name = t.name
        let rowBytes = t.rowBytes
        let shape = t.shape
        switch t.layout {
        case .dense(let offset):
            let direct: (Range<Int>) throws -> UnsafeRawBufferPointer? = { r in
                try t.file.bytes(at: offset + r.lowerBound * rowBytes, count: r.count * rowBytes, what: "tensor '\(name)'")
            }
            self.init(dtype: t.dtype, shape: shape, provenance: "\(file):\(name)", fill: { r, dst in
                if let src = try direct(r), let base = src.baseAddress { dst.copyMemory(from: base, byteCount: src.count) }
            }, direct: direct, release: { r in
                if let src = try? direct(r) { MappedPages.drop(src) }
            })
        case .packed(let packed):
            self.init(dtype: t.dtype, shape: shape, provenance: "\(file):\(name)", fill: { r, dst in
                try packed.read(bytes: (r.lowerBound * rowBytes)..<(r.upperBound * rowBytes), into: dst)
            }, release: { r in
                packed.release(bytes: (r.lowerBound * rowBytes)..<(r.upperBound * rowBytes))
            })
        case .strided, .unreadable:
            self.init(dtype: t.dtype, shape: shape, provenance: "\(file):\(name) (strided)", fill: { r, dst in
                try t.readRows(r, into: dst)
            })
        }
    }

    /// Scratch a view may use per call (column joins and slices, permutations): bounds memory whatever the tensor.
    static let scratchBytes = 8 << 20

    /// Concatenation along dimension 0 (Meta's column-parallel pieces, or HF rows).
    public static func concatRows(_ parts: [RowSource]) throws -> RowSource {
        guard let first = parts.first else {
            throw BillaError(.invalidArgument, "nothing to concatenate", remedy: "this is a bug in billa; please report it")
        }
        for p in parts where p.dtype != first.dtype || Array(p.shape.dropFirst()) != Array(first.shape.dropFirst()) {
            throw BillaError(.shapeMismatch, "cannot join \(p.provenance) \(Shape.describe(p.shape)) \(p.dtype.rawValue) to \(first.provenance) \(Shape.describe(first.shape)) \(first.dtype.rawValue) along rows",
                             remedy: "the shards are from different models or releases; download them again from one release")
        }
        if parts.count == 1 { return first }
        var starts = [Int]()
        var total = 0
        for p in parts { starts.append(total); total += p.rows }
        let rowBytes = first.rowBytes
        func locate(_ r: Range<Int>) -> [(part: Int, range: Range<Int>)] {
            var out = [(Int, Range<Int>)]()
            for (i, p) in parts.enumerated() {
                let lo = max(r.lowerBound, starts[i]), hi = min(r.upperBound, starts[i] + p.rows)
                if lo < hi { out.append((i, (lo - starts[i])..<(hi - starts[i]))) }
            }
            return out
        }
        return RowSource(dtype: first.dtype, shape: [total] + first.shape.dropFirst(),
                         provenance: parts.map(\.provenance).joined(separator: " ++ "),
                         fill: { r, dst in
                             var o = 0
                             for (i, sub) in locate(r) {
                                 try parts[i].fill(sub, dst + o)
                                 o += sub.count * rowBytes
                             }
                         },
                         direct: { r in
                             let pieces = locate(r)
                             return pieces.count == 1 ? try parts[pieces[0].part].direct(pieces[0].range) : nil
                         },
                         release: { r in for (i, sub) in locate(r) { parts[i].release(sub) } })
    }

    /// Concatenation along dimension 1 of 2-D tensors (Meta's row-parallel pieces and the sharded embedding).
    public static func concatColumns(_ parts: [RowSource]) throws -> RowSource {
        guard let first = parts.first else {
            throw BillaError(.invalidArgument, "nothing to concatenate", remedy: "this is a bug in billa; please report it")
        }
        for p in parts where p.dtype != first.dtype || p.shape.count != 2 || p.rows != first.rows {
            throw BillaError(.shapeMismatch, "cannot join \(p.provenance) \(Shape.describe(p.shape)) \(p.dtype.rawValue) to \(first.provenance) \(Shape.describe(first.shape)) \(first.dtype.rawValue) along columns",
                             remedy: "the shards are from different models or releases; download them again from one release")
        }
        if parts.count == 1 { return first }
        let widths = parts.map(\.rowBytes)
        var offsets = [Int]()
        var total = 0
        for w in widths { offsets.append(total); total += w }
        let block = max(1, scratchBytes / max(total, 1))
        return RowSource(dtype: first.dtype, shape: [first.rows, parts.reduce(0) { $0 + $1.shape[1] }],
                         provenance: parts.map(\.provenance).joined(separator: " || "),
                         fill: { r, dst in
                             // Each part is read a block of rows at a time (all parts' block: at most ~scratchBytes),
                             // then interleaved, so a source is read in ranges rather than a row per call.
                             let scratch = UnsafeMutableRawPointer.allocate(byteCount: max(min(block, r.count) * widths.max()!, 1), alignment: 64)
                             defer { scratch.deallocate() }
                             var lo = r.lowerBound
                             while lo < r.upperBound {
                                 let sub = lo..<min(r.upperBound, lo + block)
                                 let out = dst + (sub.lowerBound - r.lowerBound) * total
                                 for (i, p) in parts.enumerated() {
                                     try p.fill(sub, scratch)
                                     for k in 0..<sub.count {
                                         (out + k * total + offsets[i]).copyMemory(from: scratch + k * widths[i], byteCount: widths[i])
                                     }
                                 }
                                 lo = sub.upperBound
                             }
                         },
                         release: { r in for p in parts { p.release(r) } })
    }

    /// Output row i is source row `order[i]`. A range is read as the span of source rows it needs, when that span is
    /// at most a few times the range (as for the rotary permutations, which stay inside a head), then scattered;
    /// otherwise row by row. Either way a pack decodes each chunk about once.
    public func permutingRows(_ order: [Int], note: String) -> RowSource {
        let src = self
        let rowBytes = self.rowBytes
        return RowSource(dtype: dtype, shape: shape, provenance: "\(note)(\(provenance))", fill: { r, dst in
            guard !r.isEmpty else { return }
            let rows = order[r]
            let lo = rows.min()!, hi = rows.max()! + 1
            if hi - lo <= 4 * r.count + 256, (hi - lo) * rowBytes <= 4 * Self.scratchBytes {
                let span = UnsafeMutableRawPointer.allocate(byteCount: max((hi - lo) * rowBytes, 1), alignment: 64)
                defer { span.deallocate() }
                try src.fill(lo..<hi, span)
                for i in r { (dst + (i - r.lowerBound) * rowBytes).copyMemory(from: span + (order[i] - lo) * rowBytes, byteCount: rowBytes) }
            } else {
                for i in r { try src.fill(order[i]..<(order[i] + 1), dst + (i - r.lowerBound) * rowBytes) }
            }
        }, release: { r in
            guard !r.isEmpty else { return }
            let rows = order[r]
            if let lo = rows.min(), let hi = rows.max() { src.release(lo..<(hi + 1)) }
        })
    }

    /// Rows [lo, lo + count).
    public func rowSlice(_ lo: Int, _ count: Int) -> RowSource {
        let src = self
        return RowSource(dtype: dtype, shape: [count] + shape.dropFirst(), provenance: "\(provenance)[\(lo)..<\(lo + count)]",
                         fill: { r, dst in try src.fill((r.lowerBound + lo)..<(r.upperBound + lo), dst) },
                         direct: { r in try src.direct((r.lowerBound + lo)..<(r.upperBound + lo)) },
                         release: { r in src.release((r.lowerBound + lo)..<(r.upperBound + lo)) })
    }

    /// Columns [lo, lo + count) of a 2-D tensor of a plain (not block) dtype.
    public func columnSlice(_ lo: Int, _ count: Int) -> RowSource {
        if lo == 0 && shape.count == 2 && count == shape[1] { return self }
        let src = self
        let es = dtype.size
        let srcRow = rowBytes
        let block = max(1, Self.scratchBytes / max(srcRow, 1))
        return RowSource(dtype: dtype, shape: [rows, count], provenance: "\(provenance)[:, \(lo)..<\(lo + count)]",
                         fill: { r, dst in
                             let scratch = UnsafeMutableRawPointer.allocate(byteCount: max(min(block, r.count) * srcRow, 1), alignment: 64)
                             defer { scratch.deallocate() }
                             var first = r.lowerBound
                             while first < r.upperBound {
                                 let sub = first..<min(r.upperBound, first + block)
                                 try src.fill(sub, scratch)
                                 for row in sub {
                                     (dst + (row - r.lowerBound) * count * es).copyMemory(from: scratch + (row - sub.lowerBound) * srcRow + lo * es,
                                                                                          byteCount: count * es)
                                 }
                                 first = sub.upperBound
                             }
                         },
                         release: { r in src.release(r) })
    }

    /// The second form of the contract: a plan that streams this source's bytes to a writer, about `chunkBytes` of
    /// whole rows per piece (one row per piece when a row is larger), released as soon as the writer has them.
    public func plan(named name: String, chunkBytes: Int = 8 << 20) -> TensorPlan {
        let src = self
        return TensorPlan(name: name, dtype: dtype, shape: shape, provenance: provenance) { body in
            let total = src.rows
            guard total > 0, src.rowBytes > 0 else { return }
            let step = max(1, chunkBytes / src.rowBytes)
            var buffer: UnsafeMutableRawPointer? = nil
            defer { buffer?.deallocate() }
            var lo = 0
            while lo < total {
                let r = lo..<min(total, lo + step)
                if let d = try src.direct(r) {
                    try body(d)
                } else {
                    if buffer == nil { buffer = .allocate(byteCount: min(step, total) * src.rowBytes, alignment: 64) }
                    guard let b = buffer else { break }
                    try src.fill(r, b)
                    try body(UnsafeRawBufferPointer(start: b, count: r.count * src.rowBytes))
                }
                src.release(r)
                lo = r.upperBound
            }
        }
    }
}

extension Tensor {
    /// Rows of dimension 0 as `RowSource` counts them (a scalar or a 1-D block tensor is one row).
    public var rows: Int { RowSource.rows(dtype, shape) }
    /// Bytes of one row of the dense form (whole blocks for quantized dtypes).
    public var rowBytes: Int {
        let rows = self.rows
        return rows == 0 ? 0 : byteCount / rows
    }

    /// Rows `rows` into `dst` (rows.count * rowBytes bytes), at the cost of those rows only: the contract's first
    /// form (see `RowSource`). Dense tensors are copied from the map, pack chunks decoded for the range, strided views
    /// gathered element run by element run.
    public func readRows(_ rows: Range<Int>, into dst: UnsafeMutableRawPointer) throws {
        guard rows.lowerBound >= 0, rows.upperBound <= self.rows else {
            throw BillaError(.outOfBounds, file: file.path, tensor: name,
                             "rows \(rows) are outside the tensor's shape \(Shape.describe(shape))", remedy: "ask for rows inside the first dimension")
        }
        if case .unreadable(let error) = layout { throw error }   // even for no rows: the tensor cannot be read
        let rb = rowBytes
        if rows.isEmpty || rb == 0 { return }
        switch layout {
        case .dense(let offset):
            let src = try file.bytes(at: offset + rows.lowerBound * rb, count: rows.count * rb, what: "tensor '\(name)'")
            if let base = src.baseAddress { dst.copyMemory(from: base, byteCount: src.count) }
        case .packed(let p):
            try p.read(bytes: (rows.lowerBound * rb)..<(rows.upperBound * rb), into: dst)
        case .strided(let storageOffset, let elementOffset, let strides):
            try gatherRows(rows, storageOffset: storageOffset, elementOffset: elementOffset, strides: strides, into: dst)
        case .unreadable(let error):
            throw error
        }
    }

    /// Rows `rows` as dense bytes.
    public func readRows(_ rows: Range<Int>) throws -> [UInt8] {
        guard rows.lowerBound >= 0, rows.upperBound <= self.rows else {
            throw BillaError(.outOfBounds, file: file.path, tensor: name,
                             "rows \(rows) are outside the tensor's shape \(Shape.describe(shape))", remedy: "ask for rows inside the first dimension")
        }
        if case .unreadable(let error) = layout { throw error }
        var out = [UInt8](repeating: 0, count: rows.count * rowBytes)
        try out.withUnsafeMutableBytes { b in if let p = b.baseAddress { try readRows(rows, into: p) } }
        return out
    }

    /// The strided view's rows: the storage they reach is bounds-checked once, then copied a run of the innermost
    /// dimension at a time (one memcpy per run when that dimension is contiguous).
    private func gatherRows(_ rows: Range<Int>, storageOffset: Int, elementOffset: Int, strides: [Int],
                            into dst: UnsafeMutableRawPointer) throws {
        let es = dtype.size
        guard !dtype.isQuantized, shape.count == strides.count, !shape.isEmpty else {
            // A 0-d view or a block dtype (no reader makes strided ones): gathered whole.
            try withBytes { all in if let b = all.baseAddress { dst.copyMemory(from: b + rows.lowerBound * rowBytes, byteCount: rows.count * rowBytes) } }
            return
        }
        if shape.contains(0) { return }
        func overflow() -> BillaError {
            BillaError(.outOfBounds, file: file.path, tensor: name, "the view's strides reach outside any storage",
                       remedy: "the checkpoint is damaged; download it again")
        }
        // The highest element the rows reach (torch strides are never negative).
        var highest = elementOffset
        for d in 0..<shape.count {
            let extent = d == 0 ? rows.upperBound - 1 : shape[d] - 1
            let (reach, o1) = extent.multipliedReportingOverflow(by: strides[d])
            let (sum, o2) = highest.addingReportingOverflow(reach)
            guard !o1, !o2, strides[d] >= 0 else { throw overflow() }
            highest = sum
        }
        let (span, o) = (highest + 1).multipliedReportingOverflow(by: es)
        guard !o else { throw overflow() }
        let src = try file.bytes(at: storageOffset, count: span, what: "storage of tensor '\(name)'")
        guard let base = src.baseAddress else { return }
        if shape.count == 1 {
            for (k, i) in rows.enumerated() { (dst + k * es).copyMemory(from: base + (elementOffset + i * strides[0]) * es, byteCount: es) }
            return
        }
        let inner = shape.count - 1
        let run = shape[inner], runStride = strides[inner]
        let runsPerRow = shape[1..<inner].reduce(1, *)
        var index = [Int](repeating: 0, count: inner)   // over dimensions 0..<inner
        index[0] = rows.lowerBound
        var o2 = 0
        for _ in 0..<(rows.count * runsPerRow) {
            var e = elementOffset
            for i in 0..<inner { e += index[i] * strides[i] }
            if runStride == 1 {
                (dst + o2).copyMemory(from: base + e * es, byteCount: run * es)
                o2 += run * es
            } else {
                for j in 0..<run {
                    (dst + o2).copyMemory(from: base + (e + j * runStride) * es, byteCount: es)
                    o2 += es
                }
            }
            var k = inner - 1
            while k > 0 {
                index[k] += 1
                if index[k] < shape[k] { break }
                index[k] = 0
                k -= 1
            }
            if k == 0 { index[0] += 1 }
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// Drops mapped pages from the resident set once a writer is done with them (the page cache keeps them).
enum MappedPages {
    static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    static func drop(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        let start = (Int(bitPattern: base) + pageSize - 1) / pageSize * pageSize
        let end = (Int(bitPattern: base) + bytes.count) / pageSize * pageSize
        guard end > start, let p = UnsafeMutableRawPointer(bitPattern: start) else { return }
        _ = madvise(p, end - start, MADV_DONTNEED)
    }
}
