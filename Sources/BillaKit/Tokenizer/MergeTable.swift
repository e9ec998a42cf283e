/// BPE merge rules: (left id, right id) → (rank, merged id), in an open-addressing table keyed by the id pair,
/// since the merge loop asks it for every adjacent pair.
struct MergeTable: Sendable {
    /// key, value, key, value, ...: a probe touches one cache line, not one in each of two arrays (the table is
    /// megabytes for Llama-3's 280,000 merges, so nearly every probe of a long word misses the cache).
    private var slots: [UInt64]
    private let shift: UInt64
    private let mask: Int
    private(set) var count = 0
    static let empty = UInt64.max

    init(capacity: Int) {
        var bits: UInt64 = 4
        while (1 << bits) < capacity * 2 { bits += 1 }
        slots = Array(repeating: MergeTable.empty, count: 2 << bits)
        shift = 64 - bits
        mask = (1 << bits) - 1
    }

    @inline(__always)
    private func slot(_ key: UInt64) -> Int { Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> shift) }

    /// Inserts; an existing pair keeps its first (lowest) rank, as in tokenizers' and tiktoken's tables.
    mutating func insert(left: Int32, right: Int32, rank: Int32, merged: Int32) {
        let key = UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
        var s = slot(key)
        while slots[2 * s] != MergeTable.empty {
            if slots[2 * s] == key { return }
            s = (s + 1) & mask
        }
        slots[2 * s] = key
        slots[2 * s + 1] = UInt64(UInt32(bitPattern: rank)) << 32 | UInt64(UInt32(bitPattern: merged))
        count += 1
    }

    /// (rank << 32 | merged id), or nil.
    @inline(__always)
    func lookup(_ left: Int32, _ right: Int32) -> UInt64? {
        let key = UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
        var s = slot(key)
        return slots.withUnsafeBufferPointer { k in
            while true {
                let v = k[2 * s]
                if v == key { return k[2 * s + 1] }
                if v == MergeTable.empty { return nil }
                s = (s + 1) & mask
            }
        }
    }
}

/// The buffers of one BPE merge, reused from word to word.
struct MergeBuffers {
    var ids: [Int32] = []
    var next: [Int32] = []
    var prev: [Int32] = []
    var heap: [UInt64] = []     // rank << 32 | left symbol index: a min-heap pops the lowest rank, then the leftmost

    /// Merges the symbols `initial` (one id per byte of the word) as tokenizers' `Word::merge_all` and tiktoken's
    /// `byte_pair_merge` do: repeatedly the adjacent pair of lowest rank, the leftmost on ties. Appends the
    /// resulting ids and each token's length in symbols to `out`.
    mutating func merge(_ table: MergeTable, count n: Int, initial: (Int) -> Int32, out: (Int32, Int) -> Void) {
        guard n > 0 else { return }
        // Every buffer is sized once and then used through pointers: the loop runs for every byte of every word
        // the vocabulary does not hold whole (long Chinese runs), where bounds and uniqueness checks cost half.
        // The heap holds the n - 1 first pairs and at most two more per merge: under 3n entries.
        if ids.count < n {
            let c = max(n, 2 * ids.count)
            ids = [Int32](repeating: 0, count: c); next = ids; prev = ids
            heap = [UInt64](repeating: 0, count: 3 * c)
        }
        ids.withUnsafeMutableBufferPointer { idb in
        next.withUnsafeMutableBufferPointer { nxb in
        prev.withUnsafeMutableBufferPointer { pvb in
        heap.withUnsafeMutableBufferPointer { hb in
            let ids = idb.baseAddress!, next = nxb.baseAddress!, prev = pvb.baseAddress!, heap = hb.baseAddress!
            var count = 0
            @inline(__always) func push(_ v: UInt64) {
                var c = count
                count += 1
                while c > 0 {
                    let p = (c - 1) / 2
                    if heap[p] <= v { break }
                    heap[c] = heap[p]
                    c = p
                }
                heap[c] = v
            }
            @inline(__always) func pop() -> UInt64? {
                guard count > 0 else { return nil }
                count -= 1
                let last = heap[count]
                guard count > 0 else { return last }
                let top = heap[0]
                var c = 0
                while true {
                    let l = 2 * c + 1
                    if l >= count { break }
                    var m = l
                    if l + 1 < count, heap[l + 1] < heap[l] { m = l + 1 }
                    if heap[m] >= last { break }
                    heap[c] = heap[m]
                    c = m
                }
                heap[c] = last
                return top
            }
            for i in 0..<n {
                ids[i] = initial(i)
                next[i] = i + 1 < n ? Int32(i + 1) : -1
                prev[i] = Int32(i - 1)
            }
            for i in 0..<(n - 1) {
                if let m = table.lookup(ids[i], ids[i + 1]) { push(m & 0xFFFF_FFFF_0000_0000 | UInt64(i)) }
            }
            while let top = pop() {
                let left = Int(top & 0xFFFF_FFFF)
                let rank = top >> 32
                guard ids[left] >= 0 else { continue }
                let right = Int(next[left])
                guard right >= 0, let m = table.lookup(ids[left], ids[right]), m >> 32 == rank else { continue }   // stale
                ids[left] = Int32(truncatingIfNeeded: m & 0xFFFF_FFFF)
                ids[right] = -1
                let after = Int(next[right])
                next[left] = Int32(after)
                if after >= 0 { prev[after] = Int32(left) }
                let before = Int(prev[left])
                if before >= 0, let m2 = table.lookup(ids[before], ids[left]) { push(m2 & 0xFFFF_FFFF_0000_0000 | UInt64(before)) }
                if after >= 0, let m2 = table.lookup(ids[left], ids[after]) { push(m2 & 0xFFFF_FFFF_0000_0000 | UInt64(left)) }
            }
            var i = 0
            while i >= 0 && i < n {
                let nx = Int(next[i])
                out(ids[i], (nx < 0 ? n : nx) - i)
                i = nx
            }
        }
        }
        }
        }
    }
}
