import CKernels
import Dispatch
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes a file under a temporary name in its final directory and renames it into place only when complete, so a
/// failed or interrupted command never leaves a half-written checkpoint where a good one is expected. The
/// temporary `.NAME.billa-tmp-PID-N` is registered with `Temporaries` from its creation to its rename, so an
/// interrupt removes it (`InterruptCleanup`), and the stale ones of dead processes beside `NAME` are removed first.
/// The rename replaces an existing `NAME`: commands refuse existing outputs before writing (`OutputGuard`).
///
/// A multi-file output (a pack shard set, a gguf-split set) `seal`s each file when it is written and renames them all
/// only once the last is sealed (`commit(keepRegistered:)`), so a `kill -9` while writing leaves only temporaries.
public final class AtomicFileWriter {
    public let finalPath: String
    public let temporaryPath: String
    private var fd: Int32
    /// Whether the temporary has been renamed into place (or its rename failed and it was removed).
    private var settled = false
    private var buffer: [UInt8] = []
    private let bufferLimit = 8 << 20
    public private(set) var bytesWritten = 0

    public init(path: String) throws {
        finalPath = path
        let dir = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        let base = path.split(separator: "/").last.map(String.init) ?? path
        Temporaries.removeStale(beside: path)
        var tmp = ""
        var fd: Int32 = -1
        for attempt in 0..<100 {
            tmp = (dir.isEmpty ? "" : dir + "/") + ".\(base).billa-tmp-\(getpid())-\(attempt)"
            let candidate = tmp
            fd = Temporaries.make(candidate, directory: false) { open(candidate, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644) }
            if fd >= 0 { break }
            let e = errno
            Temporaries.settle(candidate) {}   // not created: forget the name
            errno = e
            if e != EEXIST { break }
        }
        guard fd >= 0 else { throw BillaError.fromErrno("create", path: tmp) }
        temporaryPath = tmp
        self.fd = fd
        buffer.reserveCapacity(bufferLimit)
    }

    deinit {
        writebackPending.wait()
        if fd >= 0 { close(fd) }
        if !settled {
            let tmp = temporaryPath
            Temporaries.settle(tmp) { _ = unlink(tmp) }
        }
    }

    /// BILLA_SERIAL_WRITES=1 writes every piece on one thread, to measure what the split brings.
    static let serialWrites: Bool = {
        guard let v = getenv("BILLA_SERIAL_WRITES") else { return false }
        return String(cString: v) != "0" && String(cString: v) != ""
    }()

    /// Where the next byte goes: every write is positional, so two threads can fill two halves of a piece.
    private var fileOffset = 0 {
        didSet { startWriteback() }
    }

    /// The end of the range whose writeback has been started.
    private var writebackStarted = 0
    static let writebackStep = 32 << 20

    /// Starts the disk on every 32 MiB as soon as it is written, without waiting. commit's fsync then waits only for
    /// the tail: the disk works while the next tensors are gathered and copied, as with `cp` followed by `sync`,
    /// instead of after the whole file (or, across output shards, once per shard with the CPU idle).
    /// The call itself maps pages to blocks and submits them, which takes a while on a large range, so it runs on a
    /// queue of its own and the writer goes on copying; commit and deinit wait for it before the descriptor closes.
    private func startWriteback() {
        guard fileOffset - writebackStarted >= AtomicFileWriter.writebackStep else { return }
        let fd = self.fd, start = Int64(writebackStarted), count = Int64(fileOffset - writebackStarted)
        writeback.async(group: writebackPending) { _ = bk_start_writeback(fd, start, count) }
        writebackStarted = fileOffset
    }

    private let writeback = DispatchQueue(label: "billa.writeback")
    private let writebackPending = DispatchGroup()

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        // Bytes that sit in a mapped file go file to file in the kernel (see MappedRegions).
        if bytes.count >= 1 << 20, let base = bytes.baseAddress, let src = MappedRegions.locate(base, count: bytes.count) {
            try flush()
            if try copyAll(from: src.fd, offset: src.offset, count: bytes.count) {
                fileOffset += bytes.count
                bytesWritten += bytes.count
                return
            }
        }
        if buffer.count + bytes.count > bufferLimit { try flush() }
        if bytes.count >= bufferLimit {
            try writeAll(bytes)
        } else {
            buffer.append(contentsOf: bytes)
        }
        bytesWritten += bytes.count
    }

    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    /// Splits a large piece at a page boundary of the file into two halves done on two threads: the kernel's copy
    /// into the page cache is the cost of a conversion, and one core's copy is slower than the disk takes it.
    private func halves(_ count: Int) -> [(start: Int, count: Int)] {
        guard count >= 4 << 20, !AtomicFileWriter.serialWrites else { return [(0, count)] }
        let mid = ((fileOffset + count / 2) & ~4095) - fileOffset
        return [(0, mid), (mid, count - mid)]
    }

    private func onThreads(_ parts: [(start: Int, count: Int)], _ work: (Int, Int) throws -> Void) throws {
        try Parallel.forEach(parts.count) { try work(parts[$0].start, parts[$0].count) }
    }

    /// copy_file_range(2) until `count` bytes are copied; false when the kernel cannot do it for these files
    /// (nothing was written then, and the caller writes the bytes itself).
    private func copyAll(from source: Int32, offset: Int, count: Int) throws -> Bool {
        let base = fileOffset
        let fd = self.fd, path = temporaryPath
        struct Unsupported: Error {}
        do {
            try onThreads(halves(count)) { start, n in
                var src = Int64(offset + start), dst = Int64(base + start)
                var done = 0
                while done < n {
                    let k = Int(bk_copy_file_range(source, &src, fd, &dst, n - done))
                    if k < 0 {
                        if errno == EINTR { continue }
                        if done == 0, [EINVAL, ENOSYS, EXDEV, EOPNOTSUPP, EBADF].contains(errno) { throw Unsupported() }
                        throw BillaError.fromErrno("copy_file_range", path: path)
                    }
                    if k == 0 { throw BillaError(.io, file: path, "the source ended while copying", remedy: "the input file was truncated while billa read it") }
                    done += k
                }
            }
        } catch is Unsupported {
            return false   // the caller writes the bytes (all of them, over any half that was copied)
        }
        return true
    }

    private func flush() throws {
        guard !buffer.isEmpty else { return }
        try buffer.withUnsafeBytes { try writeAll($0) }
        buffer.removeAll(keepingCapacity: true)
    }

    private func writeAll(_ bytes: UnsafeRawBufferPointer) throws {
        guard let base = bytes.baseAddress else { return }
        let at = fileOffset, fd = self.fd, path = temporaryPath
        nonisolated(unsafe) let p = base
        try onThreads(halves(bytes.count)) { start, n in
            var done = 0
            while done < n {
                let k = pwrite(fd, p + start + done, n - done, off_t(at + start + done))
                if k < 0 {
                    if errno == EINTR { continue }
                    throw BillaError.fromErrno("write", path: path)
                }
                done += k
            }
        }
        fileOffset += bytes.count
    }

    /// Flushes and syncs the temporary and closes it, releasing the buffer: the file is complete on disk but not yet
    /// under its name. A set of files seals each as it is finished, so many can wait for their rename without
    /// holding a descriptor and a buffer each. Calling it again does nothing.
    public func seal() throws {
        guard fd >= 0 else { return }
        try flush()
        writebackPending.wait()
        guard fsync(fd) == 0 else { throw BillaError.fromErrno("fsync", path: temporaryPath) }
        close(fd)
        fd = -1
        buffer = []
    }

    /// Seals and renames into place. Until this returns, nothing exists at `finalPath` that was not there.
    /// `keepRegistered`: the file, now under its final name, stays in `Temporaries` (an interrupt removes it) until
    /// the caller forgets it, as a set does until its last file is in place; the rename and that registration
    /// happen under one lock, so no interrupt falls between them.
    public func commit(keepRegistered: Bool = false) throws {
        try seal()
        let tmp = temporaryPath, final = finalPath
        settled = true
        try Temporaries.settle(tmp, replacingWith: keepRegistered ? final : nil) {
            guard rename(tmp, final) == 0 else {
                let e = BillaError.fromErrno("rename", path: final)
                unlink(tmp)
                throw e
            }
        }
    }
}

extension AtomicFileWriter {
    /// A small file, whole: written beside its final name and renamed into place.
    public static func write(_ bytes: [UInt8], to path: String) throws {
        let w = try AtomicFileWriter(path: path)
        try w.write(bytes)
        try w.commit()
    }
}
