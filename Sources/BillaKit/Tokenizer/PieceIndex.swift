/// Piece bytes → id, looked up by a byte range of the text being encoded without building a String: the BPE loop
/// asks this for every candidate pair, so it is an open-addressing table over one contiguous copy of all pieces.
struct PieceIndex: Sendable {
    private var storage: [UInt8] = []
    private var offsets: [Int32] = []   // piece i is storage[offsets[i] ..< offsets[i+1]]
    private var ids: [Int32] = []       // entry → id, parallel to offsets
    /// `UInt64.max` empty, else the hash's high 32 bits << 32 | entry number: a probe that meets another piece's
    /// slot is rejected on the tag without touching `offsets` and `storage` (two cache misses on a 128k-token
    /// vocabulary).
    private var slots: [UInt64]
    private let shift: UInt64

    init(capacity: Int) {
        var bits: UInt64 = 4
        while (1 << bits) < capacity * 2 { bits += 1 }
        slots = Array(repeating: UInt64.max, count: 1 << bits)
        shift = 64 - bits
        offsets = [0]
    }

    /// FNV-1a over the bytes, then a multiplicative mix whose high bits pick the slot and make the tag.
    @inline(__always)
    static func hash(_ p: UnsafePointer<UInt8>, _ count: Int) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for i in 0..<count {
            h = (h ^ UInt64(p[i])) &* 0x0000_0100_0000_01B3
        }
        return (h ^ (h >> 32)) &* 0x9E37_79B9_7F4A_7C15
    }

    /// Inserts; returns false when the piece is already present (the existing id stays).
    mutating func insert(_ bytes: [UInt8], id: Int32) -> Bool {
        if bytes.isEmpty || lookup(bytes) != nil { return false }
        let entry = UInt64(ids.count)
        storage.append(contentsOf: bytes)
        offsets.append(Int32(storage.count))
        ids.append(id)
        let h = bytes.withUnsafeBufferPointer { b in PieceIndex.hash(b.baseAddress!, b.count) }
        let mask = slots.count - 1
        var s = Int(truncatingIfNeeded: h >> shift)
        while slots[s] != UInt64.max { s = (s + 1) & mask }
        slots[s] = (h >> 32) << 32 | entry
        return true
    }

    @inline(__always)
    func lookup(_ p: UnsafePointer<UInt8>, _ count: Int) -> Int32? {
        let h = PieceIndex.hash(p, count)
        let tag = h >> 32
        return slots.withUnsafeBufferPointer { sl in
            storage.withUnsafeBufferPointer { st in
                let mask = sl.count - 1
                var s = Int(truncatingIfNeeded: h >> shift)
                while true {
                    let v = sl[s]
                    if v == UInt64.max { return nil }
                    if v >> 32 == tag {
                        let e = Int(v & 0xFFFF_FFFF)
                        let lo = Int(offsets[e]), hi = Int(offsets[e + 1])
                        if hi - lo == count {
                            var same = true
                            for i in 0..<count where st[lo + i] != p[i] { same = false; break }
                            if same { return ids[e] }
                        }
                    }
                    s = (s + 1) & mask
                }
            }
        }
    }

    func lookup(_ bytes: [UInt8]) -> Int32? {
        if bytes.isEmpty { return nil }
        return bytes.withUnsafeBufferPointer { b in b.baseAddress.flatMap { lookup($0, b.count) } }
    }
}
