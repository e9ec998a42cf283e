import Crypto
import Foundation

/// The pack writer's side of the streaming contract for a chunked tensor: it takes the tensor's stream (pieces of
/// any size whose total is the tensor's size, see `TensorPlan`) and writes it as chunks, compressed a window of
/// `window` chunks at a time on all cores. Window k is compressed, and hashed into the tensor's SHA-256, while the
/// chunks of window k-1 are written, so the file I/O overlaps the codec. A piece that starts a window and covers it
/// is compressed where it lies (a whole mapped tensor costs no copy); other bytes are gathered into a staging window
/// first. Memory: the staging window plus two windows of compressed chunks.
final class ChunkStream: @unchecked Sendable {
    private let out: AtomicFileWriter
    let byteCount: Int
    let chunkBytes: Int
    let window: Int
    let transform: PlaneTransform
    let elementSize: Int
    let level: Int32
    let progress: ((Int) -> Void)?

    /// Bytes taken from the stream so far.
    private(set) var received = 0
    /// The chunk index records (formats/pack.md 5.1), complete after `finish`.
    private(set) var index = [UInt8]()
    /// SHA-256 of the tensor's bytes, after `finish`.
    private(set) var sha256 = [UInt8]()

    private var staging: UnsafeMutableRawPointer?
    private var staged = 0
    /// First chunk of the window being filled.
    private var nextChunk = 0
    private var pending = [PackWriter.CompressedChunk]()
    private var pendingBytes = 0
    private var hasher = SHA256()

    init(out: AtomicFileWriter, byteCount: Int, chunkBytes: Int, window: Int, transform: PlaneTransform, elementSize: Int,
         level: Int32, progress: ((Int) -> Void)?) {
        self.out = out
        self.byteCount = byteCount
        self.chunkBytes = chunkBytes
        self.window = window
        self.transform = transform
        self.elementSize = elementSize
        self.level = level
        self.progress = progress
    }

    var chunkCount: Int { byteCount == 0 ? 0 : (byteCount - 1) / chunkBytes + 1 }

    /// Bytes of the window being filled: a full window, or the rest of the tensor.
    private var windowTarget: Int { min(window * chunkBytes, byteCount - nextChunk * chunkBytes) }

    /// Takes the next piece of the stream (the caller checked that it does not run past `byteCount`).
    func add(_ piece: UnsafeRawBufferPointer) throws {
        guard var base = piece.baseAddress else { return }
        var left = piece.count
        received += left
        while left > 0 {
            let target = windowTarget
            if staged == 0 && left >= target {
                try compress(UnsafeRawBufferPointer(start: base, count: target))
                base += target
                left -= target
                continue
            }
            if staging == nil { staging = .allocate(byteCount: min(window * chunkBytes, byteCount), alignment: 64) }
            guard let staging else { return }
            let n = min(left, target - staged)
            (staging + staged).copyMemory(from: base, byteCount: n)
            staged += n
            base += n
            left -= n
            if staged == target {
                staged = 0
                try compress(UnsafeRawBufferPointer(start: staging, count: target))
            }
        }
    }

    /// Compresses and hashes one window while the previous window's chunks are written.
    private func compress(_ src: UnsafeRawBufferPointer) throws {
        let n = (src.count + chunkBytes - 1) / chunkBytes
        let results = PackWriter.Box([PackWriter.CompressedChunk?](repeating: nil, count: n))
        let errors = FirstError()
        let lock = NSLock()
        let shared = SharedBytes(base: src), toWrite = pending, written = pendingBytes
        pending = []
        DispatchQueue.concurrentPerform(iterations: n + 2) { j in
            if j == n {
                hasher.update(bufferPointer: shared.base)
                return
            }
            if j == n + 1 {
                do { try write(toWrite, bytes: written) } catch { errors.set(error) }
                return
            }
            let lo = j * chunkBytes, hi = min(shared.base.count, lo + chunkBytes)
            do {
                let c = try PackWriter.compressChunk(UnsafeRawBufferPointer(rebasing: shared.base[lo..<hi]), transform: transform,
                                                     elementSize: elementSize, level: level)
                lock.lock(); results.value[j] = c; lock.unlock()
            } catch { errors.set(error) }
        }
        pending = results.value.compactMap { $0 }
        pendingBytes = src.count
        nextChunk += n
        if let e = errors.value { throw e }
    }

    private func write(_ chunks: [PackWriter.CompressedChunk], bytes: Int) throws {
        var done = 0
        defer { for c in chunks[done...] { c.release() } }
        for c in chunks {
            index.appendLE(UInt64(out.bytesWritten)); index.appendLE(c.hash)
            for p in 0..<PackLayout.maxPlanes { index.appendLE(c.planeLengths[p]) }
            try out.write(c.bytes)
            c.release()
            done += 1
        }
        if bytes > 0 { progress?(bytes) }
    }

    /// Writes the last window's chunks; the stream must have delivered `byteCount` bytes.
    func finish() throws {
        let last = pending
        pending = []
        try write(last, bytes: pendingBytes)
        pendingBytes = 0
        sha256 = Array(hasher.finalize())
    }

    /// Frees the buffers (after `finish`, or when the stream failed).
    func discard() {
        for c in pending { c.release() }
        pending = []
        staging?.deallocate()
        staging = nil
    }
}
