/// BPE's question "is left + right a piece, and which?" answered from the two symbols' piece ids: every split of a
/// segmentable piece into two segmentable pieces is one entry. A symbol with an id spells exactly that piece's
/// bytes, so an entry exists exactly when the concatenation is a piece, and the lookup hashes two integers instead
/// of the bytes of the candidate (the merge loop asks this for every adjacent pair, and again after each merge).
struct MergeTable: Sendable {
    struct Slot: Sendable {
        var key: UInt64 = MergeTable.empty
        var id: Int32 = -1
        var score: Float = 0
    }

    private static let empty = UInt64.max
    private var slots: [Slot]
    private let shift: UInt64

    /// `pieces`: the segmentable pieces (`index` maps their bytes back to ids), with their scores.
    init(_ pieces: [(bytes: [UInt8], id: Int32)], index: PieceIndex, scores: [Float]) {
        var entries = [(UInt64, Int32)]()
        for p in pieces where p.bytes.count > 1 {
            p.bytes.withUnsafeBufferPointer { b in
                guard let base = b.baseAddress else { return }
                var cut = UTF8Length.of(base[0])
                while cut < b.count {
                    if let l = index.lookup(base, cut), let r = index.lookup(base + cut, b.count - cut) {
                        entries.append((MergeTable.key(l, r), p.id))
                    }
                    cut += UTF8Length.of(base[cut])
                }
            }
        }
        var bits: UInt64 = 4
        while (1 << bits) < entries.count + entries.count / 2 { bits += 1 }
        slots = Array(repeating: Slot(), count: 1 << Int(bits))
        shift = 64 - bits
        for (k, id) in entries {
            let s = slotIndex(k)
            if slots[s].key == MergeTable.empty { slots[s] = Slot(key: k, id: id, score: scores[Int(id)]) }
        }
    }

    @inline(__always)
    private static func key(_ left: Int32, _ right: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
    }

    @inline(__always)
    private func slotIndex(_ k: UInt64) -> Int {
        let mask = slots.count - 1
        var s = Int(truncatingIfNeeded: (k &* 0x9E37_79B9_7F4A_7C15) >> shift)
        while true {
            let key = slots[s].key
            if key == k || key == MergeTable.empty { return s }
            s = (s + 1) & mask
        }
    }

    /// The piece `left` + `right` spells (id -1: none); both ids must be segmentable pieces.
    @inline(__always)
    func merged(_ left: Int32, _ right: Int32) -> Slot {
        slots[slotIndex(MergeTable.key(left, right))]
    }
}
