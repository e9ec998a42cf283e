import Crypto
import Foundation

/// `billa verify --checksums`: every chunk's XXH64, every tensor's and blob's SHA-256 (the table's was checked on
/// open). It keeps going after a failure so one run names every damaged tensor and chunk.
public struct PackVerifyReport: Encodable, Sendable {
    public struct Item: Codable, Sendable {
        public var name: String
        /// The source file (group) a tensor came from, when the pack has several: a Meta release's model-parallel
        /// shards repeat every tensor name, so the name alone does not say which one is damaged.
        public var group: String?
        public var kind: String
        public var ok: Bool
        public var chunks: Int
        public var badChunks: [Int]
        public var message: String?

        enum CodingKeys: String, CodingKey { case name, group, kind, ok, chunks, badChunks = "bad_chunks", message }

        /// "tensor NAME", "tensor NAME (GROUP)" or "blob NAME", for messages.
        public var label: String { "\(kind) \(name)" + (group.map { " (\($0))" } ?? "") }
    }

    public var path: String
    public var tableSHA256: String
    public var items: [Item]
    public var ok: Bool { items.allSatisfy(\.ok) }

    /// `ok` is the report's verdict, written by the command's envelope (formats/json.md).
    enum CodingKeys: String, CodingKey { case path, tableSHA256 = "table_sha256", items }
}

public enum PackVerifier {
    public static func verify(_ pack: PackFile, progress: ProgressMeter? = nil) -> PackVerifyReport {
        var items = [PackVerifyReport.Item]()
        let groups = pack.metadata.groups
        for (entry, tensor) in zip(pack.entries, pack.tensors) {
            var item = verifyTensor(entry, tensor, progress: progress)
            if groups.count > 1, entry.group < groups.count { item.group = groups[entry.group].name }
            items.append(item)
        }
        for b in pack.blobs {
            var item = PackVerifyReport.Item(name: b.name, group: nil, kind: "blob", ok: true, chunks: 0, badChunks: [], message: nil)
            do {
                let bytes = try pack.file.bytes(at: b.offset, count: b.length, what: "blob '\(b.name)'")
                let digest = Array(SHA256.hash(data: bytes))
                if digest != b.sha256 {
                    item.ok = false
                    item.message = "SHA-256 is \(Hex.string(digest)), the table says \(Hex.string(b.sha256))"
                }
            } catch { item.ok = false; item.message = "\(error)" }
            items.append(item)
        }
        return PackVerifyReport(path: pack.path, tableSHA256: Hex.string(pack.tableSHA256), items: items)
    }

    static func verifyTensor(_ entry: PackTensorEntry, _ tensor: Tensor, progress: ProgressMeter?) -> PackVerifyReport.Item {
        var item = PackVerifyReport.Item(name: entry.name, group: nil, kind: "tensor", ok: true, chunks: entry.chunkCount, badChunks: [], message: nil)
        var hasher = SHA256()
        StatusLine.item(entry.name)
        do {
            if case .packed(let packed) = tensor.layout {
                let records = try packed.index()
                let window = 8
                let buffer = UnsafeMutableRawPointer.allocate(byteCount: window * entry.chunkBytes, alignment: 64)
                defer { buffer.deallocate() }
                var first = 0
                var messages = [String]()
                while first < records.count {
                    let n = min(window, records.count - first)
                    let failures = PackWriter.Box([(Int, String)]())
                    let lock = NSLock()
                    let start = first, shared = SharedMutableBytes(base: buffer), step = entry.chunkBytes
                    DispatchQueue.concurrentPerform(iterations: n) { j in
                        do { try packed.decodeChunk(start + j, records, into: shared.base + j * step) } catch {
                            let text = (error as? BillaError)?.message ?? "\(error)"
                            lock.lock(); failures.value.append((start + j, text)); lock.unlock()
                        }
                    }
                    for (i, m) in failures.value.sorted(by: { $0.0 < $1.0 }) { item.badChunks.append(i); messages.append(m) }
                    let bytes = (first + n == records.count) ? entry.byteCount - first * entry.chunkBytes : n * entry.chunkBytes
                    hasher.update(bufferPointer: UnsafeRawBufferPointer(start: buffer, count: bytes))
                    progress?.add(bytes)
                    first += n
                }
                if !item.badChunks.isEmpty {
                    item.ok = false
                    item.message = messages.first.map { "\(item.badChunks.count) corrupt chunk(s): \($0)" }
                    return item
                }
            } else {
                try tensor.withBytes { hasher.update(bufferPointer: $0); progress?.add($0.count) }
            }
            let digest = Array(hasher.finalize())
            if digest != entry.sha256 {
                item.ok = false
                item.message = "SHA-256 of the dense bytes is \(Hex.string(digest)), the table says \(Hex.string(entry.sha256))"
            }
        } catch {
            item.ok = false
            item.message = (error as? BillaError)?.message ?? "\(error)"
        }
        return item
    }
}
