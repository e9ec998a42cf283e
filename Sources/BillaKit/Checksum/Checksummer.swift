import Foundation
#if canImport(Glibc)
import Glibc
#endif

public struct FileDigest: Codable, Sendable, Equatable {
    public var path: String
    public var algorithm: HashAlgorithm
    public var digest: String
    public var bytes: Int
}

public struct TensorDigest: Codable, Sendable, Equatable {
    public var name: String
    public var shard: String
    public var dtype: DType
    public var shape: [Int]
    public var algorithm: HashAlgorithm
    public var digest: String
}

/// Streaming digests of whole files and of individual tensors, spread over the cores.
public enum Checksummer {
    static let chunk = 4 << 20

    /// Hashes one file front to back with read(2) into a reused buffer: for a hash that is faster than faulting in
    /// mmap pages, and it keeps resident memory at one buffer.
    public static func hashFile(_ path: String, algorithm: HashAlgorithm, progress: ProgressMeter? = nil) throws -> FileDigest {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw BillaError.fromErrno("open", path: path) }
        defer { close(fd) }
        _ = posix_fadvise(fd, 0, 0, Int32(POSIX_FADV_SEQUENTIAL))
        StatusLine.item((path as NSString).lastPathComponent)
        var hasher = algorithm.makeHasher()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 4096)
        defer { buffer.deallocate() }
        var total = 0
        while true {
            let n = read(fd, buffer.baseAddress, chunk)
            if n < 0 {
                if errno == EINTR { continue }
                throw BillaError.fromErrno("read", path: path)
            }
            if n == 0 { break }
            hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            total += n
            progress?.add(n)
        }
        return FileDigest(path: path, algorithm: algorithm, digest: hasher.hex(), bytes: total)
    }

    /// Hashes several files at once, one per core. Results keep the input order; a failure stays with its file.
    public static func hashFiles(_ paths: [String], algorithm: HashAlgorithm, progress: ProgressMeter? = nil) -> [Result<FileDigest, BillaError>] {
        let results = ResultSlots<FileDigest>(count: paths.count)
        DispatchQueue.concurrentPerform(iterations: paths.count) { i in
            do {
                results.set(i, .success(try hashFile(paths[i], algorithm: algorithm, progress: progress)))
            } catch let e as BillaError {
                results.set(i, .failure(e))
            } catch {
                results.set(i, .failure(BillaError(.io, file: paths[i], "\(error)", remedy: "")))
            }
        }
        return results.values
    }

    /// Hashes each tensor's dense little-endian row-major bytes, independent of the container: the same weights in
    /// a .pth and in safetensors give the same digests.
    public static func hashTensors(_ release: Release, algorithm: HashAlgorithm, progress: ProgressMeter? = nil) throws -> [TensorDigest] {
        let items = release.tensors
        let results = ResultSlots<TensorDigest>(count: items.count)
        DispatchQueue.concurrentPerform(iterations: items.count) { i in
            let (file, t) = items[i]
            StatusLine.item(t.name)
            do {
                var hasher = algorithm.makeHasher()
                try t.withBytes { bytes in
                    var start = 0
                    while start < bytes.count {
                        let end = min(bytes.count, start + chunk)
                        hasher.update(UnsafeRawBufferPointer(rebasing: bytes[start..<end]))
                        progress?.add(end - start)
                        start = end
                    }
                }
                let shard = file.path.split(separator: "/").last.map(String.init) ?? file.path
                results.set(i, .success(TensorDigest(name: t.name, shard: shard, dtype: t.dtype, shape: t.shape,
                                                     algorithm: algorithm, digest: hasher.hex())))
            } catch let e as BillaError {
                results.set(i, .failure(e.forTensor(t.name)))
            } catch {
                results.set(i, .failure(BillaError(.io, file: file.path, tensor: t.name, "\(error)", remedy: "")))
            }
        }
        return try results.values.map { try $0.get() }
    }
}

/// Fixed slots written from concurrent workers.
final class ResultSlots<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var slots: [Result<T, BillaError>?]

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func set(_ i: Int, _ r: Result<T, BillaError>) {
        lock.lock(); slots[i] = r; lock.unlock()
    }

    var values: [Result<T, BillaError>] {
        lock.lock(); defer { lock.unlock() }
        return slots.map { $0 ?? .failure(BillaError(.io, "a worker produced no result", remedy: "report this as a bug")) }
    }
}
