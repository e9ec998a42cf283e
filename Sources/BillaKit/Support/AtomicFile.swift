#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes a file under a temporary name in its final directory and renames it into place only when complete, so a
/// failed or interrupted command never leaves a half-written checkpoint where a good one is expected.
public final class AtomicFileWriter {
    public let finalPath: String
    public let temporaryPath: String
    private var fd: Int32
    private var buffer: [UInt8] = []
    private let bufferLimit = 8 << 20
    public private(set) var bytesWritten = 0

    public init(path: String) throws {
        finalPath = path
        let dir = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        let base = path.split(separator: "/").last.map(String.init) ?? path
        var tmp = ""
        var fd: Int32 = -1
        for attempt in 0..<100 {
            tmp = (dir.isEmpty ? "" : dir + "/") + ".\(base).billa-tmp-\(getpid())-\(attempt)"
            fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            if fd >= 0 || errno != EEXIST { break }
        }
        guard fd >= 0 else { throw BillaError.fromErrno("create", path: tmp) }
        temporaryPath = tmp
        self.fd = fd
        buffer.reserveCapacity(bufferLimit)
    }

    deinit {
        if fd >= 0 {
            close(fd)
            unlink(temporaryPath)
        }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        // Bytes that sit in a mapped file go file to file in the kernel (see MappedRegions).
        if bytes.count >= 1 << 20, let base = bytes.baseAddress, let src = MappedRegions.locate(base, count: bytes.count) {
            try flush()
            if try sendAll(from: src.fd, offset: src.offset, count: bytes.count) {
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

    /// sendfile(2) until `count` bytes are written; false when the kernel cannot do it for these files (nothing
    /// was written then, and the caller writes the bytes itself).
    private func sendAll(from source: Int32, offset: Int, count: Int) throws -> Bool {
        var off = off_t(offset)
        var done = 0
        while done < count {
            let n = sendfile(fd, source, &off, count - done)
            if n < 0 {
                if errno == EINTR { continue }
                if done == 0, errno == EINVAL || errno == ENOSYS { return false }
                throw BillaError.fromErrno("sendfile", path: temporaryPath)
            }
            if n == 0 { throw BillaError(.io, file: temporaryPath, "the source ended while copying", remedy: "the input file was truncated while billa read it") }
            done += n
        }
        return true
    }

    private func flush() throws {
        guard !buffer.isEmpty else { return }
        try buffer.withUnsafeBytes { try writeAll($0) }
        buffer.removeAll(keepingCapacity: true)
    }

    private func writeAll(_ bytes: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw BillaError.fromErrno("write", path: temporaryPath)
            }
            done += n
        }
    }

    /// Flushes, syncs and renames into place. Until this returns, nothing exists at `finalPath` that was not there.
    public func commit() throws {
        try flush()
        guard fsync(fd) == 0 else { throw BillaError.fromErrno("fsync", path: temporaryPath) }
        close(fd)
        fd = -1
        guard rename(temporaryPath, finalPath) == 0 else {
            let e = BillaError.fromErrno("rename", path: finalPath)
            unlink(temporaryPath)
            throw e
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
