/// The segmentable pieces as a trie whose edges are whole UTF-8 characters, so walking the text from one position
/// finds every piece starting there with one table probe per character (the unigram lattice; sentencepiece walks a
/// darts trie byte by byte for the same). BPE builds one from its single-character pieces only, to give each
/// starting symbol its id in one probe.
///
/// Edges live in one open-addressing table keyed by (node, character code); a slot also carries the piece that the
/// child node spells, so a step reads one slot.
struct PieceTrie: Sendable {
    struct Slot: Sendable {
        var key: UInt64 = 0     // (node << 32 | character code) + 1; 0 is empty
        var child: Int32 = -1
        var piece: Int32 = -1   // id of the piece the child spells, or -1
    }

    static let root: Int32 = 0
    private var slots: [Slot]
    private let shift: UInt64
    /// The root's edges for ASCII characters, looked up directly: every position of Latin text starts with one.
    private var asciiRoot: [(child: Int32, piece: Int32)] = Array(repeating: (-1, -1), count: 128)

    /// `pieces` must be valid UTF-8; a piece already present keeps its first id.
    init(_ pieces: [(bytes: [UInt8], id: Int32)]) {
        var chars = 0
        for p in pieces { chars += PieceTrie.characterCount(p.bytes) }
        var bits: UInt64 = 4
        while (1 << bits) < max(chars + chars / 2, 1) { bits += 1 }   // nodes ≤ chars: at most 2/3 full, 16-byte slots
        slots = Array(repeating: Slot(), count: 1 << Int(bits))
        shift = 64 - bits
        var nodes: Int32 = 1
        for p in pieces {
            p.bytes.withUnsafeBufferPointer { b in
                guard let base = b.baseAddress else { return }
                var node = PieceTrie.root
                var i = 0
                while i < b.count {
                    let len = min(UTF8Length.of(base[i]), b.count - i)
                    let s = slotIndex(node, PieceTrie.code(base + i, len))
                    if slots[s].key == 0 {
                        slots[s] = Slot(key: PieceTrie.key(node, PieceTrie.code(base + i, len)), child: nodes, piece: -1)
                        nodes += 1
                    }
                    i += len
                    if i == b.count, slots[s].piece < 0 { slots[s].piece = p.id }
                    node = slots[s].child
                }
            }
        }
        for c in 0..<128 {
            let slot = slots[slotIndex(PieceTrie.root, UInt32(c))]
            if slot.key != 0 { asciiRoot[c] = (slot.child, slot.piece) }
        }
    }

    private static func characterCount(_ b: [UInt8]) -> Int {
        var i = 0, n = 0
        while i < b.count { i += UTF8Length.of(b[i]); n += 1 }
        return n
    }

    /// The character's bytes packed little-endian: distinct for distinct well-formed characters, since the lead
    /// byte fixes the length.
    @inline(__always)
    static func code(_ p: UnsafePointer<UInt8>, _ len: Int) -> UInt32 {
        switch len {
        case 1: return UInt32(p[0])
        case 2: return UInt32(p[0]) | UInt32(p[1]) << 8
        case 3: return UInt32(p[0]) | UInt32(p[1]) << 8 | UInt32(p[2]) << 16
        default: return UInt32(p[0]) | UInt32(p[1]) << 8 | UInt32(p[2]) << 16 | UInt32(p[3]) << 24
        }
    }

    @inline(__always)
    private static func key(_ node: Int32, _ code: UInt32) -> UInt64 {
        (UInt64(UInt32(bitPattern: node)) << 32 | UInt64(code)) &+ 1
    }

    /// The slot holding the edge, or the empty slot where it would go.
    @inline(__always)
    private func slotIndex(_ node: Int32, _ code: UInt32) -> Int {
        let k = PieceTrie.key(node, code)
        let mask = slots.count - 1
        var s = Int(truncatingIfNeeded: (k &* 0x9E37_79B9_7F4A_7C15) >> shift)
        while true {
            let key = slots[s].key
            if key == k || key == 0 { return s }
            s = (s + 1) & mask
        }
    }

    /// Follows the edge for the character `code` from `node`: the child and the piece it spells (-1: none), or nil
    /// when no piece goes on with that character.
    @inline(__always)
    func step(_ node: Int32, _ code: UInt32) -> (child: Int32, piece: Int32)? {
        if node == PieceTrie.root, code < 128 {
            let edge = asciiRoot[Int(code)]
            return edge.child < 0 ? nil : edge
        }
        let slot = slots[slotIndex(node, code)]
        return slot.key == 0 ? nil : (slot.child, slot.piece)
    }
}
