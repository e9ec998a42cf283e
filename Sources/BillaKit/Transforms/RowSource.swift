/// A tensor seen as rows (dimension 0), produced on demand: a slice of a mapped file, or a view built from others
/// (concatenation, row permutation, slicing, dtype cast). Conversions compose these instead of materialising
/// tensors, so merging eight 7B shards or re-splitting them holds only one write chunk in memory.
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

    public var rows: Int { shape.isEmpty ? 1 : shape[0] }
    public var rowElements: Int { shape.count <= 1 ? 1 : shape.dropFirst().reduce(1, *) }
    public var rowBytes: Int { rowElements * dtype.size }
    public var byteCount: Int { rows * rowBytes }

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

    /// The rows of a tensor in a mapped file. Dense tensors are zero-copy; strided views are gathered.
    public init(_ t: Tensor) {
        let file = t.file.path.split(separator: "/").last.map(String.init) ?? t.file.path
        let rowBytes = (t.shape.count <= 1 ? 1 : t.shape.dropFirst().reduce(1, *)) * t.dtype.size
        let name = t.name
        if case .dense(let offset) = t.layout {
            let direct: (Range<Int>) throws -> UnsafeRawBufferPointer? = { r in
                try t.file.bytes(at: offset + r.lowerBound * rowBytes, count: r.count * rowBytes, what: "tensor '\(name)'")
            }
            self.init(dtype: t.dtype, shape: t.shape, provenance: "\(file):\(name)", fill: { r, dst in
                if let src = try direct(r), let base = src.baseAddress { dst.copyMemory(from: base, byteCount: src.count) }
            }, direct: direct, release: { r in
                if let src = try? direct(r) { MappedPages.drop(src) }
            })
        } else {
            self.init(dtype: t.dtype, shape: t.shape, provenance: "\(file):\(name) (strided)", fill: { r, dst in
                try t.withBytes { all in
                    if let base = all.baseAddress, r.count > 0 {
                        dst.copyMemory(from: base + r.lowerBound * rowBytes, byteCount: r.count * rowBytes)
                    }
                }
            })
        }
    }

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
        let total = widths.reduce(0, +)
        return RowSource(dtype: first.dtype, shape: [first.rows, parts.reduce(0) { $0 + $1.shape[1] }],
                         provenance: parts.map(\.provenance).joined(separator: " || "),
                         fill: { r, dst in
                             for row in r {
                                 var o = (row - r.lowerBound) * total
                                 for (i, p) in parts.enumerated() {
                                     try p.fill(row..<(row + 1), dst + o)
                                     o += widths[i]
                                 }
                             }
                         },
                         release: { r in for p in parts { p.release(r) } })
    }

    /// Output row i is source row `order[i]`.
    public func permutingRows(_ order: [Int], note: String) -> RowSource {
        let src = self
        let rowBytes = self.rowBytes
        return RowSource(dtype: dtype, shape: shape, provenance: "\(note)(\(provenance))", fill: { r, dst in
            for i in r { try src.fill(order[i]..<(order[i] + 1), dst + (i - r.lowerBound) * rowBytes) }
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

    /// Columns [lo, lo + count) of a 2-D tensor.
    public func columnSlice(_ lo: Int, _ count: Int) -> RowSource {
        if lo == 0 && shape.count == 2 && count == shape[1] { return self }
        let src = self
        let es = dtype.size
        let srcRow = rowBytes
        return RowSource(dtype: dtype, shape: [rows, count], provenance: "\(provenance)[:, \(lo)..<\(lo + count)]",
                         fill: { r, dst in
                             let scratch = UnsafeMutableRawPointer.allocate(byteCount: max(srcRow, 1), alignment: 64)
                             defer { scratch.deallocate() }
                             for row in r {
                                 try src.fill(row..<(row + 1), scratch)
                                 (dst + (row - r.lowerBound) * count * es).copyMemory(from: scratch + lo * es, byteCount: count * es)
                             }
                         },
                         release: { r in src.release(r) })
    }

    /// A plan that streams this source's bytes to a writer in chunks of about `chunkBytes`.
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
