import Foundation

/// A chunked (compressed) tensor of a pack: decodes the whole tensor for `Tensor.withBytes`, or just the chunks a
/// byte or row range touches. The chunk index is validated on first use, so opening a pack reads only its table.
public final class PackedTensor: @unchecked Sendable, Equatable {
    let file: MappedFile
    let entry: PackTensorEntry
    private let lock = NSLock()
    private var records: [ChunkRecord]?
    private var decoded = 0

    init(file: MappedFile, entry: PackTensorEntry) {
        self.file = file
        self.entry = entry
    }

    public static func == (a: PackedTensor, b: PackedTensor) -> Bool { a === b }

    public var name: String { entry.name }
    public var transform: PlaneTransform { entry.transform }
    public var chunkBytes: Int { entry.chunkBytes }
    public var chunkCount: Int { entry.chunkCount }
    /// Bytes the tensor occupies in the file: chunks plus index.
    public var storedBytes: Int { entry.extent.end - entry.extent.start }
    /// Chunks decoded so far through this object: tests use it to prove a range read touched only its chunks.
    public var chunksDecoded: Int { lock.lock(); defer { lock.unlock() }; return decoded }

    func error(_ code: BillaError.Code, _ message: String) -> BillaError {
        BillaError(code, file: file.path, tensor: entry.name, message,
                   remedy: "the pack is damaged; run `billa verify --checksums \(file.path)` and re-create it with `billa pack` from the source")
    }

    /// The validated chunk index (formats/pack.md 5.1): hash, then exact tiling of the data range, then plane sizes.
    func index() throws -> [ChunkRecord] {
        lock.lock()
        defer { lock.unlock() }
        if let records { return records }
        let e = entry
        let raw = try file.bytes(at: e.indexOffset, count: e.chunkCount * PackLayout.chunkRecordSize, what: "chunk index of '\(e.name)'")
        let h = XXH64.hash(raw)
        guard h == e.indexXXH64 else {
            throw error(.checksumMismatch, "the chunk index hashes to \(String(h, radix: 16)), the table says \(String(e.indexXXH64, radix: 16))")
        }
        var r = ByteReader(raw, file: file.path)
        var out = [ChunkRecord]()
        out.reserveCapacity(e.chunkCount)
        var next = e.dataOffset
        for i in 0..<e.chunkCount {
            let offset = try r.readLE(UInt64.self, "chunk offset")
            let hash = try r.readLE(UInt64.self, "chunk hash")
            var lengths = [Int]()
            for _ in 0..<PackLayout.maxPlanes { lengths.append(Int(try r.readLE(UInt32.self, "plane length"))) }
            guard offset == UInt64(next) else {
                throw error(.corruptContainer, "chunk \(i) starts at \(offset), but chunks must be back to back from \(next)")
            }
            let size = chunkSize(i)
            let planeSize = e.transform.planeSize(chunkBytes: size, elementSize: e.dtype.size)
            for p in 0..<PackLayout.maxPlanes {
                let inUse = p < e.transform.planeCount
                guard inUse ? (lengths[p] > 0 && lengths[p] <= planeSize) : lengths[p] == 0 else {
                    throw error(.corruptContainer, "chunk \(i) plane \(p) has stored length \(lengths[p]); it must be \(inUse ? "1...\(planeSize)" : "0")")
                }
            }
            next += lengths.reduce(0, +)   // at most 4 x 2^32 per chunk: no overflow
            out.append(ChunkRecord(offset: Int(offset), xxh64: hash, planeLengths: lengths))
        }
        guard next == e.dataOffset + e.dataLength else {
            throw error(.corruptContainer, "the chunks end at \(next), the table says the data ends at \(e.dataOffset + e.dataLength)")
        }
        records = out
        return out
    }

    func chunkSize(_ i: Int) -> Int { min(entry.chunkBytes, entry.byteCount - i * entry.chunkBytes) }

    /// Decodes chunk `i` into `dst` (chunkSize(i) bytes) and checks its XXH64. Compressed planes decode into the
    /// pooled zstd context's scratch, raw ones are read from the map; the merge hashes as it writes.
    func decodeChunk(_ i: Int, _ records: [ChunkRecord], into dst: UnsafeMutableRawPointer) throws {
        let rec = records[i]
        let size = chunkSize(i)
        let t = entry.transform
        let planeSize = t.planeSize(chunkBytes: size, elementSize: entry.dtype.size)
        let storedLength = rec.storedLength
        let all = file.all
        guard rec.offset >= 0, storedLength >= 0, rec.offset <= all.count, storedLength <= all.count - rec.offset, let base = all.baseAddress else {
            _ = try file.bytes(at: rec.offset, count: storedLength, what: "chunk \(i) of '\(entry.name)'")   // its error
            throw error(.corruptContainer, "chunk \(i) lies outside the file")
        }
        let stored = base + rec.offset
        var p0: UnsafeRawPointer?, p1: UnsafeRawPointer?, p2: UnsafeRawPointer?, p3: UnsafeRawPointer?
        var at = 0
        var dctx: ZstdDecompressor?
        defer { if let dctx { dctx.trim(); PackZstd.decompressors.give(dctx) } }
        for p in 0..<t.planeCount {
            let len = rec.planeLengths[p]
            let src = stored + at
            at += len
            var plane = src
            if len != planeSize {
                if dctx == nil { dctx = PackZstd.decompressors.take() }
                guard let dctx else { throw error(.io, "cannot create a zstd context (out of memory)") }
                let target = t == .none ? dst : dctx.scratch(t.planeCount * planeSize) + p * planeSize
                if let why = dctx.decompress(UnsafeRawBufferPointer(start: src, count: len), into: target, size: planeSize) {
                    throw error(.checksumMismatch, "chunk \(i) of \(entry.chunkCount), plane \(p): \(why)")
                }
                plane = UnsafeRawPointer(target)
            }
            switch p {
            case 0: p0 = plane
            case 1: p1 = plane
            case 2: p2 = plane
            default: p3 = plane
            }
        }
        let h = PlaneCodec.merge(t, p0, p1, p2, p3, into: dst, count: size)
        lock.lock(); decoded += 1; lock.unlock()
        guard h == rec.xxh64 else {
            throw error(.checksumMismatch,
                        "chunk \(i) of \(entry.chunkCount) (tensor bytes \(i * entry.chunkBytes)..<\(i * entry.chunkBytes + size)) decodes to xxh64 \(String(h, radix: 16)), the index says \(String(rec.xxh64, radix: 16))")
        }
    }

    /// The whole tensor, decoded on all cores, checked chunk by chunk.
    public func decodeAll() throws -> [UInt8] {
        let records = try index()
        var out = [UInt8](repeating: 0, count: entry.byteCount)
        let errors = FirstError()
        out.withUnsafeMutableBytes { buf in
            guard let base = buf.baseAddress else { return }
            let shared = SharedMutableBytes(base: base)
            let step = entry.chunkBytes
            DispatchQueue.concurrentPerform(iterations: records.count) { i in
                if errors.isSet { return }
                do { try decodeChunk(i, records, into: shared.base + i * step) } catch { errors.set(error) }
            }
        }
        if let e = errors.value { throw e }
        return out
    }

    /// Bytes `range` of the dense tensor, decoding only the chunks the range overlaps.
    public func read(bytes range: Range<Int>) throws -> [UInt8] {
        try checkRange(range)
        var out = [UInt8](repeating: 0, count: range.count)
        try out.withUnsafeMutableBytes { b in if let p = b.baseAddress { try read(bytes: range, into: p) } }
        return out
    }

    private func checkRange(_ range: Range<Int>) throws {
        guard range.lowerBound >= 0, range.upperBound <= entry.byteCount else {
            throw BillaError(.outOfBounds, file: file.path, tensor: entry.name,
                             "bytes \(range) are outside the tensor's \(entry.byteCount) bytes", remedy: "ask for a range inside the tensor")
        }
    }

    /// Bytes `range` of the dense tensor into `dst` (range.count bytes), the contract's first form (RowSource.swift):
    /// only the chunks the range overlaps are decoded, several on all cores, those it covers whole straight into
    /// `dst`; one it covers in part is decoded once into `PackChunkCache` and copied from there, so the neighbouring
    /// range, or the next row, finds it decoded.
    public func read(bytes range: Range<Int>, into dst: UnsafeMutableRawPointer) throws {
        try checkRange(range)
        if range.isEmpty { return }
        let records = try index()
        let cb = entry.chunkBytes
        let first = range.lowerBound / cb, last = (range.upperBound - 1) / cb
        let out = SharedMutableBytes(base: dst)
        let errors = FirstError()
        let me = ObjectIdentifier(self)
        let work: @Sendable (Int) -> Void = { k in
            let i = first + k
            let start = i * cb, size = self.chunkSize(i)
            let lo = max(range.lowerBound, start), hi = min(range.upperBound, start + size)
            let target = out.base + (lo - range.lowerBound)
            do {
                if lo == start && hi == start + size {
                    try self.decodeChunk(i, records, into: target)
                    return
                }
                let copy = { (chunk: UnsafeRawBufferPointer) in target.copyMemory(from: chunk.baseAddress! + (lo - start), byteCount: hi - lo) }
                if PackChunkCache.shared.with(me, chunk: i, copy) { return }
                let buffer = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
                do { try self.decodeChunk(i, records, into: buffer) } catch { buffer.deallocate(); throw error }
                copy(UnsafeRawBufferPointer(start: buffer, count: size))
                PackChunkCache.shared.insert(me, chunk: i, bytes: buffer, count: size)
            } catch { errors.set(error) }
        }
        if first == last { work(0) } else { DispatchQueue.concurrentPerform(iterations: last - first + 1, execute: work) }
        if let e = errors.value { throw e }
    }

    /// The reader is done with bytes `range` and, reading in order, with everything before it: cached chunks that
    /// end by `range.upperBound` are dropped, and the mapped pages of their stored bytes leave the resident set (the
    /// page cache keeps them), so streaming a pack holds one window of chunks, not the file.
    public func release(bytes range: Range<Int>) {
        guard !range.isEmpty, let records = try? index() else { return }
        let cb = entry.chunkBytes
        let end = min(range.upperBound, entry.byteCount)
        PackChunkCache.shared.drop(ObjectIdentifier(self)) { $0 * cb + self.chunkSize($0) <= end }
        let first = range.lowerBound / cb
        var last = end / cb   // chunks first..<last end by `end`
        if last < records.count, last * cb + chunkSize(last) <= end { last += 1 }
        guard first < last, last <= records.count else { return }
        let lo = records[first].offset, hi = records[last - 1].offset + records[last - 1].storedLength
        if let bytes = try? file.bytes(at: lo, count: hi - lo, what: "chunks of '\(entry.name)'") { MappedPages.drop(bytes) }
    }

    deinit { PackChunkCache.shared.drop(ObjectIdentifier(self)) }
}

/// The first error any worker of a parallel loop hit.
final class FirstError: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Error?
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return stored != nil }
    var value: Error? { lock.lock(); defer { lock.unlock() }; return stored }
    func set(_ e: Error) { lock.lock(); if stored == nil { stored = e }; lock.unlock() }
}
