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
    /// Kept open so writers can copy mapped bytes file to file in the kernel (`MappedRegions`).
    private let fd: Int32

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw BillaError.fromErrno("open", path: path) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { defer { close(fd) }; throw BillaError.fromErrno("stat", path: path) }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw BillaError(.io, file: path, "not a regular file", remedy: "pass a checkpoint file or a model directory")
        }
        size = Int(st.st_size)
        self.fd = fd
        if size == 0 {
            base = nil
            return
        }
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else { defer { close(fd) }; throw BillaError.fromErrno("mmap", path: path) }
        base = UnsafeRawPointer(p)
        MappedRegions.add(base: UnsafeRawPointer(p), size: size, fd: fd)
    }

    deinit {
        if let base {
            MappedRegions.remove(base: base)
            munmap(UnsafeMutableRawPointer(mutating: base), size)
        }
        close(fd)
    }

    /// The whole file. Empty for an empty file.
    public var all: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: size) }

    /// A bounds-checked slice. `what` names the structure for the error message.
    public func bytes(at offset: Int, count: Int, what: @autoclosure () -> String) throws -> UnsafeRawBufferPointer {
        guard offset >= 0, count >= 0, offset <= size, count <= size - offset else {
            throw BillaError(.outOfBounds, file: path,
                             "\(what()) spans bytes \(offset)..<\(offset &+ count) but the file has \(size) bytes",
                             remedy: "the file is truncated or corrupt; download it again and check its published checksum")
        }
        return UnsafeRawBufferPointer(rebasing: all[offset..<(offset + count)])
    }

    /// Tells the kernel the next reads are scattered small ones (a zip's local headers sit beside gigabytes of
    /// tensor data): without it every header fault pulls read_ahead_kb of tensor bytes in around it, and a cold
    /// `inspect` of a 13 GB .pth would read most of the file. `adviseNormal` undoes it.
    public func adviseRandom() { advise(MADV_RANDOM) }
    public func adviseNormal() { advise(MADV_NORMAL) }

    /// `count` bytes at `offset` through read(2), for small structures scattered through a large file: a fault on the
    /// mapping would map the whole large folio around them (ext4 caches files in folios of up to 2 MiB), and reading
    /// a zip's 300 local headers that way leaves ~350 MiB of tensor data in the resident set.
    public func read(at offset: Int, count: Int) throws -> [UInt8] {
        _ = try bytes(at: offset, count: count, what: "\(count) bytes at \(offset)")   // the bounds check and its error
        var out = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, count - done, off_t(offset + done)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw BillaError.fromErrno("read", path: path) }
            done += n
        }
        return out
    }

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

/// The live mappings, so that bytes handed to a writer can be traced back to (file, offset) and copied with
/// copy_file_range(2): page cache to page cache, without faulting the source pages into this process or copying them
/// through user space. This is what lets a straight tensor copy run near `cp` speed.
enum MappedRegions {
    nonisolated(unsafe) private static var regions: [(start: UInt, end: UInt, fd: Int32)] = []
    nonisolated(unsafe) private static var lock = pthread_mutex_t()
    private static let initialised: Bool = { pthread_mutex_init(&lock, nil); return true }()

    static func add(base: UnsafeRawPointer, size: Int, fd: Int32) {
        _ = initialised
        pthread_mutex_lock(&lock); defer { pthread_mutex_unlock(&lock) }
        let start = UInt(bitPattern: base)
        regions.append((start, start + UInt(size), fd))
    }

    static func remove(base: UnsafeRawPointer) {
        _ = initialised
        pthread_mutex_lock(&lock); defer { pthread_mutex_unlock(&lock) }
        let start = UInt(bitPattern: base)
        regions.removeAll { $0.start == start }
    }

    /// The file and offset holding `count` bytes at `p`, when they lie inside one mapping.
    static func locate(_ p: UnsafeRawPointer, count: Int) -> (fd: Int32, offset: Int)? {
        _ = initialised
        pthread_mutex_lock(&lock); defer { pthread_mutex_unlock(&lock) }
        let a = UInt(bitPattern: p)
        guard let r = regions.first(where: { a >= $0.start && a + UInt(count) <= $0.end }) else { return nil }
        return (r.fd, Int(a - r.start))
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
