import CZstd
import Crypto
import Foundation

/// How `billa pack` stores tensors. The defaults are what formats/pack.md 5.2 calls the writer policy.
public struct PackOptions: Sendable {
    public var level: Int32 = 3
    public var raw = false
    public var chunkBytes = PackLayout.defaultChunkBytes
    public var alignment = PackLayout.defaultAlignment
    /// Chunks compressed per parallel batch: bounds memory at about 2 x this x chunkBytes.
    public var window = 8
    /// Split the pack into a shard set (formats/pack.md 7) whose files hold at most this many tensor bytes each
    /// (a larger tensor gets a file of its own); nil writes one file.
    public var maxShardBytes: Int? = nil
    /// This file's place in a shard set, written into its header; nil for a single file. Set by PackSet.write.
    var shard: (index: Int, count: Int, setID: [UInt8])? = nil

    public init(level: Int32 = 3, raw: Bool = false, chunkBytes: Int = PackLayout.defaultChunkBytes, alignment: Int = PackLayout.defaultAlignment) {
        self.level = level
        self.raw = raw
        self.chunkBytes = chunkBytes
        self.alignment = alignment
    }
}

/// A tensor to pack and the source file (metadata group) it came from.
public struct PackInput: Sendable {
    public var plan: TensorPlan
    public var group: Int
    public init(plan: TensorPlan, group: Int) { self.plan = plan; self.group = group }
}

public struct PackBlobInput: Sendable {
    public var name: String
    public var bytes: [UInt8]
    public init(name: String, bytes: [UInt8]) { self.name = name; self.bytes = bytes }
}

/// Writes a pack front to back (data, then table, then footer), so it streams through `AtomicFileWriter` and
/// holds at most one window of chunks, compressed on all cores.
public enum PackWriter {
    final class Box<T>: @unchecked Sendable { var value: T; init(_ v: T) { value = v } }

    struct CompressedChunk {
        var buffer: ChunkBuffer
        var count: Int
        var planeLengths: SIMD4<UInt32>
        var hash: UInt64

        /// The planes as stored, back to back.
        var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: buffer.base, count: count) }

        /// Hands the buffer back for the next chunk; `bytes` must not be used afterwards.
        func release() { PackZstd.outputs.give(buffer) }
    }

    /// Splits, compresses (or keeps raw) each plane of one chunk. Planes are split into the pooled zstd context's
    /// scratch and compressed straight into a pooled output buffer, so a chunk allocates nothing once the pools are
    /// warm.
    static func compressChunk(_ src: UnsafeRawBufferPointer, transform t: PlaneTransform, elementSize: Int, level: Int32) throws -> CompressedChunk {
        guard let cctx = PackZstd.compressors.take() else {
            throw BillaError(.io, "cannot create a zstd compression context", remedy: "free some memory and try again")
        }
        defer { cctx.trim(); PackZstd.compressors.give(cctx) }
        let planeSize = t.planeSize(chunkBytes: src.count, elementSize: elementSize)
        let planes = cctx.scratch(src.count)
        let hash = PlaneCodec.split(t, src, into: planes, planeSize: planeSize)
        // Every plane before p took at most planeSize, so zstd always has compressBound(planeSize) bytes to use.
        let capacity = src.count + ZSTD_compressBound(planeSize) - planeSize
        let out = PackZstd.outputs.take(capacity: capacity)
        var lengths = SIMD4<UInt32>(repeating: 0)
        var at = 0
        for p in 0..<t.planeCount {
            let plane = UnsafeRawBufferPointer(start: planes + p * planeSize, count: planeSize)
            let exponent = p == 0 && t != .none
            var n: Int?
            // The exponent plane always shrinks; the others are tested first, since noise costs a full match search.
            if exponent || PlaneCodec.entropy(plane) < 7.9 {
                n = cctx.compress(plane, exponent: exponent, level: level, into: out.base + at, capacity: capacity - at)
            }
            if n == nil { (out.base + at).copyMemory(from: plane.baseAddress!, byteCount: planeSize) }
            let len = n ?? planeSize
            lengths[p] = UInt32(len)
            at += len
        }
        return CompressedChunk(buffer: out, count: at, planeLengths: lengths, hash: hash)
    }

    /// set_id (formats/pack.md 7): the first 16 bytes of the SHA-256 of the tensor plan (names, dtypes, shapes in
    /// order), so packing the same source twice gives identical files.
    static func setID(of inputs: [PackInput]) -> [UInt8] {
        var h = SHA256()
        for i in inputs { h.update(data: Array("\(i.plan.name)\u{0}\(i.plan.dtype.rawValue)\u{0}\(i.plan.shape)\u{0}".utf8)) }
        return Array(h.finalize().prefix(16))
    }

    static func tooMany(_ plan: TensorPlan, _ path: String, _ expected: Int) -> BillaError {
        BillaError(.shapeMismatch, file: path, tensor: plan.name,
                   "the source gave more than the \(expected) bytes \(Shape.describe(plan.shape)) \(plan.dtype.rawValue) holds",
                   remedy: "this is a bug in billa; please report it with the command you ran")
    }

    static func tooFew(_ plan: TensorPlan, _ path: String, _ got: Int, _ expected: Int) -> BillaError {
        BillaError(.shapeMismatch, file: path, tensor: plan.name, "the source gave \(got) bytes, expected \(expected)",
                   remedy: "this is a bug in billa; please report it with the command you ran")
    }

    public static func write(_ inputs: [PackInput], blobs: [PackBlobInput], metadata: PackMetadata, options: PackOptions = PackOptions(),
                             to path: String, progress: ((Int) -> Void)? = nil) throws {
        try sealed(inputs, blobs: blobs, metadata: metadata, options: options, to: path, progress: progress).commit()
    }

    /// Writes the whole pack under its temporary name and seals it without renaming it: a shard set renames its
    /// files only once the last is written (`Temporaries.installSet`).
    static func sealed(_ inputs: [PackInput], blobs: [PackBlobInput], metadata: PackMetadata, options: PackOptions,
                       to path: String, progress: ((Int) -> Void)?) throws -> AtomicFileWriter {
        var seen = Set<String>()
        for i in inputs where !seen.insert("\(i.group)/\(i.plan.name)").inserted {
            throw BillaError(.invalidArgument, file: path, tensor: i.plan.name, "two tensors of one source file share this name",
                             remedy: "rename one of them")
        }
        guard options.chunkBytes > 0, options.chunkBytes <= PackLayout.maxChunkBytes, options.chunkBytes % 8 == 0,
              options.alignment >= 64, options.alignment <= 1 << 20, options.alignment & (options.alignment - 1) == 0 else {
            throw BillaError(.invalidArgument, file: path, "chunk size \(options.chunkBytes) or alignment \(options.alignment) is outside the format's limits",
                             remedy: "use a chunk size that is a multiple of 8 up to 256 MiB and a power-of-two alignment 64...1 MiB")
        }
        let out = try AtomicFileWriter(path: path)

        var header = PackLayout.headerMagic
        header.appendLE(PackLayout.major); header.appendLE(PackLayout.minor)
        header.appendLE(UInt32(options.alignment))
        if let shard = options.shard {
            header.appendLE(UInt32(shard.index)); header.appendLE(UInt32(shard.count))
            header += shard.setID.prefix(16)
        } else {
            header.appendLE(UInt32(0)); header.appendLE(UInt32(1))
            header += setID(of: inputs)
        }
        header.appendZeros(PackLayout.headerSize - header.count)
        try out.write(header)

        func pad(to a: Int) throws {
            let n = (a - out.bytesWritten % a) % a
            if n > 0 { try out.write([UInt8](repeating: 0, count: n)) }
        }

        var strings = [UInt8]()
        func addString(_ s: String) -> (UInt32, UInt32) {
            let at = strings.count
            strings += Array(s.utf8)
            return (UInt32(at), UInt32(s.utf8.count))
        }

        var blobEntries = [UInt8]()
        for b in blobs {
            try pad(to: 8)
            let (o, l) = addString(b.name)
            blobEntries.appendLE(o); blobEntries.appendLE(l)
            blobEntries.appendLE(UInt64(out.bytesWritten)); blobEntries.appendLE(UInt64(b.bytes.count))
            blobEntries += Array(SHA256.hash(data: b.bytes))
            blobEntries.appendZeros(8)
            try out.write(b.bytes)
        }

        var entries = [UInt8]()
        var dims = [UInt8]()
        var dimsCount = 0
        for input in inputs {
            let plan = input.plan
            StatusLine.item(plan.name)
            guard let byteCount = Shape.byteCount(plan.shape, plan.dtype), plan.shape.count <= PackLayout.maxNDim else {
                throw BillaError(.invalidArgument, file: path, tensor: plan.name, "shape \(Shape.describe(plan.shape)) cannot be stored",
                                 remedy: "the source tensor is malformed")
            }
            guard let dtypeCode = PackLayout.dtypeCodes[plan.dtype] else {
                throw BillaError(.unsupported, file: path, tensor: plan.name, "dtype \(plan.dtype.rawValue) has no pack code", remedy: "")
            }
            let chunked = !options.raw && byteCount > 0 && !plan.dtype.isQuantized   // blocks shrink ~4%: raw (5.2)
            let transform = chunked ? PlaneTransform.preferred(for: plan.dtype) : .none
            // Chunks hold whole elements so no element straddles two chunks.
            let chunkBytes = options.chunkBytes / plan.dtype.size * plan.dtype.size
            var sha = [UInt8]()
            var dataOffset = 0, dataLength = 0, chunkCount = 0, indexOffset = 0
            var indexHash: UInt64 = 0
            if !chunked {
                try pad(to: options.alignment)
                dataOffset = out.bytesWritten
                var h = SHA256()
                var got = 0
                try plan.bytes { src in
                    guard src.count <= byteCount - got else { throw tooMany(plan, path, byteCount) }
                    var at = 0
                    while at < src.count {
                        let end = min(src.count, at + (8 << 20))
                        let piece = UnsafeRawBufferPointer(rebasing: src[at..<end])
                        h.update(bufferPointer: piece)
                        try out.write(piece)
                        progress?(end - at)
                        at = end
                    }
                    got += src.count
                }
                guard got == byteCount else { throw tooFew(plan, path, got, byteCount) }
                sha = Array(h.finalize())
                dataLength = byteCount
            } else {
                dataOffset = out.bytesWritten
                let stream = ChunkStream(out: out, byteCount: byteCount, chunkBytes: chunkBytes, window: max(1, options.window),
                                         transform: transform, elementSize: plan.dtype.size, level: options.level, progress: progress)
                defer { stream.discard() }
                try plan.bytes { src in
                    guard src.count <= byteCount - stream.received else { throw tooMany(plan, path, byteCount) }
                    try stream.add(src)
                }
                guard stream.received == byteCount else { throw tooFew(plan, path, stream.received, byteCount) }
                try stream.finish()
                chunkCount = stream.chunkCount
                let index = stream.index
                sha = stream.sha256
                dataLength = out.bytesWritten - dataOffset
                try pad(to: 8)
                indexOffset = out.bytesWritten
                indexHash = index.withUnsafeBytes { XXH64.hash($0) }
                try out.write(index)
            }
            let (o, l) = addString(plan.name)
            entries.appendLE(o); entries.appendLE(l)
            entries.appendLE(UInt32(dimsCount)); entries.appendLE(UInt16(plan.shape.count)); entries.appendLE(dtypeCode)
            entries.append(chunked ? 1 : 0); entries.append(transform.rawValue); entries.appendLE(UInt16(0))
            entries.appendLE(UInt32(input.group))
            entries.appendLE(UInt64(dataOffset)); entries.appendLE(UInt64(dataLength))
            entries.appendLE(UInt64(chunked ? chunkBytes : 0)); entries.appendLE(UInt64(chunkCount))
            entries.appendLE(UInt64(indexOffset)); entries.appendLE(indexHash)
            entries += sha
            entries.appendZeros(24)
            for d in plan.shape { dims.appendLE(UInt64(d)) }
            dimsCount += plan.shape.count
        }

        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let meta = Array(try encoder.encode(metadata))
        var table = [UInt8]()
        table.appendLE(UInt32(inputs.count)); table.appendLE(UInt32(blobs.count)); table.appendLE(UInt32(dimsCount))
        table.appendLE(UInt32(strings.count)); table.appendLE(UInt32(meta.count)); table.appendZeros(12)
        table += entries + blobEntries + dims + strings + meta
        let tableOffset = out.bytesWritten
        try out.write(table)
        var footer = [UInt8]()
        footer.appendLE(UInt64(tableOffset)); footer.appendLE(UInt64(table.count))
        footer += Array(SHA256.hash(data: table))
        footer.appendLE(PackLayout.major); footer.appendLE(PackLayout.minor); footer.appendZeros(4)
        footer += PackLayout.footerMagic
        try out.write(footer)
        try out.seal()
        return out
    }
}
