import Foundation

/// The pack chunks decoded last for a read that used only part of them, so the next read of the same chunk (the
/// next row, the next range starting mid-chunk, another piece of a Meta column join) copies instead of decoding
/// again: this is what makes row-by-row access decode each chunk once (see the contract in RowSource.swift).
///
/// One process-wide cache, bounded by bytes (`budget`, never fewer than one chunk), least recently used first out,
/// so memory does not grow with the number of tensors; a tensor's chunks leave it when the tensor is released or
/// freed. Entries are keyed by the `PackedTensor` object, which removes its own entries in `deinit` so a later object
/// at the same address never sees them.
final class PackChunkCache: @unchecked Sendable {
    static let shared = PackChunkCache(budget: 64 << 20)

    private struct Entry {
        let owner: ObjectIdentifier
        let chunk: Int
        let bytes: UnsafeMutableRawPointer
        let count: Int
        var used: UInt64
    }

    private let lock = NSLock()
    private var entries = [Entry]()
    private var held = 0
    private var clock: UInt64 = 0
    let budget: Int

    init(budget: Int) { self.budget = budget }

    /// Calls `body` with the cached bytes of `chunk` of `owner` (under the cache's lock: copy, do not keep), or returns false.
    func with(_ owner: ObjectIdentifier, chunk: Int, _ body: (UnsafeRawBufferPointer) -> Void) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard let i = entries.firstIndex(where: { $0.owner == owner && $0.chunk == chunk }) else { return false }
        clock += 1
        entries[i].used = clock
        body(UnsafeRawBufferPointer(start: entries[i].bytes, count: entries[i].count))
        return true
    }

    /// Takes ownership of `bytes` (allocated with `UnsafeMutableRawPointer.allocate`) as `chunk` of `owner`.
    func insert(_ owner: ObjectIdentifier, chunk: Int, bytes: UnsafeMutableRawPointer, count: Int) {
        lock.lock()
        defer { lock.unlock() }
        if entries.contains(where: { $0.owner == owner && $0.chunk == chunk }) { bytes.deallocate(); return }
        clock += 1
        entries.append(Entry(owner: owner, chunk: chunk, bytes: bytes, count: count, used: clock))
        held += count
        while held > budget, entries.count > 1, let oldest = entries.indices.min(by: { entries[$0].used < entries[$1].used }) {
            remove(at: oldest)
        }
    }

    /// Drops the chunks of `owner` for which `predicate` holds.
    func drop(_ owner: ObjectIdentifier, where predicate: (Int) -> Bool = { _ in true }) {
        lock.lock()
        defer { lock.unlock() }
        var i = 0
        while i < entries.count {
            if entries[i].owner == owner && predicate(entries[i].chunk) { remove(at: i) } else { i += 1 }
        }
    }

    /// Bytes held, for tests.
    var heldBytes: Int { lock.lock(); defer { lock.unlock() }; return held }

    private func remove(at i: Int) {
        held -= entries[i].count
        entries[i].bytes.deallocate()
        entries.remove(at: i)
    }
}
