/// BPE merge rules: (left id, right id) → (rank, merged id), in an open-addressing table keyed by the id pair,
/// since the merge loop asks it for every adjacent pair.
struct MergeTable: Sendable {
    private var keys: [UInt64]
    private var values: [UInt64]    // rank << 32 | merged id
    private let shift: UInt64
    private let mask: Int
    private(set) var count = 0
    static let empty = UInt64.max

    init(capacity: Int) {
        var bits: UInt64 = 4
        while (1 << bits) < capacity * 2 { bits += 1 }
        keys = Array(repeating: MergeTable.empty, count: 1 << bits)
        values = Array(repeating: 0, count: 1 << bits)
        shift = 64 - bits
        mask = (1 << bits) - 1
    }

    @inline(__always)
    private func slot(_ key: UInt64) -> Int { Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> shift) }

    /// Inserts; an existing pair keeps its first (lowest) rank, as in tokenizers' and tiktoken's tables.
    mutating func insert(left: Int32, right: Int32, rank: Int32, merged: Int32) {
        let key = UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
        var s = slot(key)
        while keys[s] != MergeTable.empty {
            if keys[s] == key { return }
            s = (s + 1) & mask
        }
        keys[s] = key
        values[s] = UInt64(UInt32(bitPattern: rank)) << 32 | UInt64(UInt32(bitPattern: merged))
        count += 1
    }

    /// (rank << 32 | merged id), or nil.
    @inline(__always)
    func lookup(_ left: Int32, _ right: Int32) -> UInt64? {
        let key = UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
        var s = slot(key)
        return keys.withUnsafeBufferPointer { k in
            while true {
                let v = k[s]
                if v == key { return values[s] }
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
        ids.removeAll(keepingCapacity: true)
        next.removeAll(keepingCapacity: true)
        prev.removeAll(keepingCapacity: true)
        heap.removeAll(keepingCapacity: true)
        for i in 0..<n {
            ids.append(initial(i))
            next.append(i + 1 < n ? Int32(i + 1) : -1)
            prev.append(Int32(i - 1))
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

    private mutating func push(_ v: UInt64) {
        heap.append(v)
        var c = heap.count - 1
        while c > 0 {
            let p = (c - 1) / 2
            if heap[p] <= v { break }
            heap[c] = heap[p]
            c = p
        }
        heap[c] = v
    }

    private mutating func pop() -> UInt64? {
        guard let last = heap.popLast() else { return nil }
        guard !heap.isEmpty else { return last }
        let top = heap[0]
        var c = 0
        let n = heap.count
        while true {
            let l = 2 * c + 1
            if l >= n { break }
            var m = l
            if l + 1 < n, heap[l + 1] < heap[l] { m = l + 1 }
            if heap[m] >= last { break }
            heap[c] = heap[m]
            c = m
        }
        heap[c] = last
        return top
    }
}
