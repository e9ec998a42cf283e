import CZstd
import Foundation

/// A growable 64-byte-aligned buffer that a pooled context keeps between chunks.
final class ScratchBuffer {
    private var pointer: UnsafeMutableRawPointer?
    private var size = 0

    deinit { pointer?.deallocate() }

    func at(least n: Int) -> UnsafeMutableRawPointer {
        if let pointer, size >= n { return pointer }
        pointer?.deallocate()
        size = max(n, 64)
        let p = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
        pointer = p
        return p
    }

    /// Frees the buffer if it is larger than pooled contexts should hold on to (huge --chunk-size).
    func trim() {
        if size > PackZstd.keepBytes { pointer?.deallocate(); pointer = nil; size = 0 }
    }
}

/// zstd contexts for pack chunks. A context is reused across chunks (creating one per chunk would cost more than
/// compressing a 1 MiB exponent plane), and each worker takes its own from a pool, with the buffers a chunk needs
/// (planes, frames), so encoding a chunk allocates only its result.
final class ZstdCompressor {
    private let cctx: OpaquePointer
    private let buffer = ScratchBuffer()

    init?() {
        guard let c = ZSTD_createCCtx() else { return nil }
        cctx = c
    }

    deinit {
        ZSTD_freeCCtx(cctx)
    }

    /// Scratch of at least `size` bytes owned by this context (planes, frames), kept for the next chunk.
    func scratch(_ size: Int) -> UnsafeMutableRawPointer { buffer.at(least: size) }

    func trim() { buffer.trim() }

    /// Compresses into `dst` (capacity `capacity`); returns the frame size, or nil when it would not be smaller
    /// than the input (the caller then stores the plane raw).
    ///
    /// The exponent planes are nearly order-0 noise over a few symbols: the win is Huffman coding of literals, and
    /// any match search only costs. They are written as literals alone (ZSTD_compressSequences with no sequences),
    /// whatever --level says: measured on N(0, 0.02) bf16 exponents 0.325 of the plane at ~850 MB/s, against 0.326
    /// at ~620 MB/s for the best tuned fast strategy, 0.359 at level 1 and 0.37 at level 3.
    func compress(_ src: UnsafeRawBufferPointer, exponent: Bool, level: Int32,
                  into dst: UnsafeMutableRawPointer, capacity: Int) -> Int? {
        let n: Int
        if exponent {
            n = billa_zstd_literals_only(cctx, dst, capacity, src.baseAddress, src.count)
        } else {
            ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters)
            ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level)
            ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1)
            ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 0)
            n = ZSTD_compress2(cctx, dst, capacity, src.baseAddress, src.count)
        }
        if ZSTD_isError(n) != 0 || n >= src.count { return nil }
        return n
    }
}

final class ZstdDecompressor {
    private let dctx: OpaquePointer
    private let buffer = ScratchBuffer()

    init?() {
        guard let d = ZSTD_createDCtx() else { return nil }
        dctx = d
    }

    deinit {
        ZSTD_freeDCtx(dctx)
    }

    /// Scratch of at least `size` bytes for decoded planes, kept for the next chunk.
    func scratch(_ size: Int) -> UnsafeMutableRawPointer { buffer.at(least: size) }

    func trim() { buffer.trim() }

    /// Decodes one frame that must fill `size` bytes exactly; returns nil with the reason otherwise.
    func decompress(_ frame: UnsafeRawBufferPointer, into dst: UnsafeMutableRawPointer, size: Int) -> String? {
        guard Zstd.frameContentSize(frame) == size else { return "the zstd frame does not declare the plane's size \(size)" }
        let n = ZSTD_decompressDCtx(dctx, dst, size, frame.baseAddress, frame.count)
        if ZSTD_isError(n) != 0 { return "zstd: \(String(cString: ZSTD_getErrorName(n)))" }
        return n == size ? nil : "the zstd frame decoded to \(n) bytes, expected \(size)"
    }
}

/// A lock-protected free list, so both cores reuse contexts without sharing one.
final class Pool<T>: @unchecked Sendable {
    private var free: [T] = []
    private let lock = NSLock()
    private let make: () -> T?

    init(_ make: @escaping () -> T?) { self.make = make }

    func take() -> T? {
        lock.lock()
        if let t = free.popLast() { lock.unlock(); return t }
        lock.unlock()
        return make()
    }

    func give(_ t: T) {
        lock.lock(); free.append(t); lock.unlock()
    }
}

/// The stored bytes of one compressed chunk. The buffers come from `PackZstd.outputs` and go back there once the
/// writer has written them, so a pack's chunks reuse a few buffers instead of faulting in fresh pages every chunk.
final class ChunkBuffer: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let capacity: Int

    init(capacity: Int) {
        self.capacity = max(capacity, 64)
        base = UnsafeMutableRawPointer.allocate(byteCount: self.capacity, alignment: 64)
    }

    deinit { base.deallocate() }
}

/// Free chunk buffers, at most `limitBytes` of them in all: enough for the writer's two windows of default chunks,
/// and a bound on what a process keeps once its packs are written.
final class ChunkBufferPool: @unchecked Sendable {
    private var free: [ChunkBuffer] = []
    private var freeBytes = 0
    private let lock = NSLock()
    private let limitBytes = 32 << 20

    func take(capacity: Int) -> ChunkBuffer {
        lock.lock()
        if let i = free.lastIndex(where: { $0.capacity >= capacity }) {
            let b = free.remove(at: i)
            freeBytes -= b.capacity
            lock.unlock()
            return b
        }
        lock.unlock()
        return ChunkBuffer(capacity: capacity)
    }

    func give(_ b: ChunkBuffer) {
        lock.lock()
        if freeBytes + b.capacity <= limitBytes { free.append(b); freeBytes += b.capacity }
        lock.unlock()
    }
}

enum PackZstd {
    static let outputs = ChunkBufferPool()
    /// Scratch a pooled context keeps between chunks: enough for the default 1 MiB chunks of every transform.
    static let keepBytes = 16 << 20
    static let compressors = Pool { ZstdCompressor() }
    static let decompressors = Pool { ZstdDecompressor() }
}
