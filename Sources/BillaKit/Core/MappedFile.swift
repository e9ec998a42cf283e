#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory map of a whole file. Every reader hands out tensor bytes as slices of one of these, so opening
/// a 13 GB checkpoint costs address space, not memory, and only the pages a command touches are ever read.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let size: Int
    private let base: UnsafeRawPointer?

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw BillaError.fromErrno("open", path: path) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw BillaError.fromErrno("stat", path: path) }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw BillaError(.io, file: path, "not a regular file", remedy: "pass a checkpoint file or a model directory")
        }
        size = Int(st.st_size)
        if size == 0 {
            base = nil
            return
        }
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else { throw BillaError.fromErrno("mmap", path: path) }
        base = UnsafeRawPointer(p)
    }

    deinit {
        if let base { munmap(UnsafeMutableRawPointer(mutating: base), size) }
    }

    /// The whole file. Empty for an empty file.
    public var all: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: size) }

    /// A bounds-checked slice. `what` names the structure for the error message.
    public func bytes(at offset: Int, count: Int, what: String) throws -> UnsafeRawBufferPointer {
        guard offset >= 0, count >= 0, offset <= size, count <= size - offset else {
            throw BillaError(.outOfBounds, file: path,
                             "\(what) spans bytes \(offset)..<\(offset &+ count) but the file has \(size) bytes",
                             remedy: "the file is truncated or corrupt; download it again and check its published checksum")
        }
        return UnsafeRawBufferPointer(rebasing: all[offset..<(offset + count)])
    }

    /// Tells the kernel the next reads are scattered small ones (a zip's local headers sit beside gigabytes of
    /// tensor data): without it every header fault pulls read_ahead_kb of tensor bytes in around it, and a cold
    /// `inspect` of a 13 GB .pth would read most of the file. `adviseNormal` undoes it.
    public func adviseRandom() { advise(MADV_RANDOM) }
    public func adviseNormal() { advise(MADV_NORMAL) }

    private func advise(_ advice: Int32) {
        guard let base, size > 0 else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: base), size, advice)
    }

    /// Tells the kernel we will read a range front to back, so readahead can run ahead of the hash or copy.
    public func adviseSequential(offset: Int, count: Int) {
        guard let base, count > 0 else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = offset / page * page
        _ = madvise(UnsafeMutableRawPointer(mutating: base + start), count + (offset - start), MADV_SEQUENTIAL)
    }
}

extension BillaError {
    static func fromErrno(_ call: String, path: String) -> BillaError {
        let e = errno
        let text = String(cString: strerror(e))
        let code: Code = (e == ENOENT) ? .notFound : .io
        let remedy = (e == ENOENT) ? "check the path" : (e == EACCES ? "check the file's permissions" : "")
        return BillaError(code, file: path, "\(call) failed: \(text)", remedy: remedy)
    }
}
