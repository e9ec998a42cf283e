/// Piece bytes → id, looked up by a byte range of the text being encoded without building a String: the BPE loop
/// asks this for every candidate pair, so it is an open-addressing table over one contiguous copy of all pieces.
struct PieceIndex: Sendable {
    private var storage: [UInt8] = []
    private var offsets: [Int32] = []   // piece i is storage[offsets[i] ..< offsets[i+1]]
    private var ids: [Int32] = []       // entry → id, parallel to offsets
    private var slots: [Int32]          // -1 empty, else entry number
    private let mask: Int

    init(capacity: Int) {
        var n = 16
        while n < capacity * 2 { n <<= 1 }
        slots = Array(repeating: -1, count: n)
        mask = n - 1
        offsets = [0]
    }

    @inline(__always)
    static func hash(_ p: UnsafePointer<UInt8>, _ count: Int) -> Int {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for i in 0..<count {
            h = (h ^ UInt64(p[i])) &* 0x0000_0100_0000_01B3
        }
        return Int(truncatingIfNeeded: h ^ (h >> 29))
    }

    /// Inserts; returns false when the piece is already present (the existing id stays).
    mutating func insert(_ bytes: [UInt8], id: Int32) -> Bool {
        if bytes.isEmpty || lookup(bytes) != nil { return false }
        let entry = Int32(ids.count)
        storage.append(contentsOf: bytes)
        offsets.append(Int32(storage.count))
        ids.append(id)
        var s = bytes.withUnsafeBufferPointer { b in b.baseAddress.map { PieceIndex.hash($0, b.count) } ?? 0 } & mask
        while slots[s] >= 0 { s = (s + 1) & mask }
        slots[s] = entry
        return true
    }

    @inline(__always)
    func lookup(_ p: UnsafePointer<UInt8>, _ count: Int) -> Int32? {
        var s = PieceIndex.hash(p, count) & mask
        return storage.withUnsafeBufferPointer { st in
            while true {
                let e = Int(slots[s])
                if e < 0 { return nil }
                let lo = Int(offsets[e]), hi = Int(offsets[e + 1])
                if hi - lo == count {
                    var same = true
                    for i in 0..<count where st[lo + i] != p[i] { same = false; break }
                    if same { return ids[e] }
                }
                s = (s + 1) & mask
            }
        }
    }

    func lookup(_ bytes: [UInt8]) -> Int32? {
        if bytes.isEmpty { return nil }
        return bytes.withUnsafeBufferPointer { b in b.baseAddress.flatMap { lookup($0, b.count) } }
    }
}
