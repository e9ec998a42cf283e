/// BPE's question "is left + right a piece, and which?" remembered by the two symbols' piece ids. The merge loop asks
/// it for every adjacent pair and again after each merge, mostly about the same few thousand pairs; the byte lookup
/// hashes and compares the concatenation each time. A full table of every split of every piece answers in one
/// probe too, but building it cost LLaMA's load 15 ms, more than a 5 MB encode gains from it.
///
/// Direct-mapped: an entry is overwritten by any other pair hashing to its slot, and misses (no piece) are kept too.
/// Each scratch has its own memo, for one tokenizer at a time, so there is no sharing between threads.
struct MergeMemo {
    struct Entry {
        var key: UInt64     // left id << 32 | right id; empty: UInt64.max
        var id: Int32       // -1: the concatenation is no piece
        var score: Float
    }

    static let bits = 14
    let entries: UnsafeMutablePointer<Entry>

    @inline(__always)
    static func key(_ left: Int32, _ right: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
    }

    @inline(__always)
    static func slot(_ key: UInt64) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> UInt64(64 - bits))
    }
}

extension SegmentBuffers {
    /// The memo for `tokenizer`, emptied when the scratch was last used with another one.
    func mergeMemo(for tokenizer: Tokenizer) -> MergeMemo {
        let count = 1 << MergeMemo.bits
        let entries = memo.reserve(count)
        if memoOwner !== tokenizer {
            entries.update(repeating: MergeMemo.Entry(key: .max, id: -1, score: 0), count: count)
            memoOwner = tokenizer
        }
        return MergeMemo(entries: entries)
    }
}
