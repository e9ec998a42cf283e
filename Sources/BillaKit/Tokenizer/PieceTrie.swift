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
        var child: Int32 = -1   // -1: the child has no edges (a walk ends there)
        var piece: Int32 = -1   // id of the piece the child spells, or -1
    }

    static let root: Int32 = 0
    private var slots: [Slot]
    private let shift: UInt64
    /// The root's edges for characters of the Basic Multilingual Plane, indexed by code point (child -2: none).
    /// Every walk starts at the root, so these are the most used edges, and CJK text would otherwise spread them
    /// over the whole table.
    private var bmpRoot: [(child: Int32, piece: Int32)] = Array(repeating: (-2, -1), count: 0x10000)

    /// `pieces` must be valid UTF-8; a piece already present keeps its first id.
    init(_ pieces: [(bytes: [UInt8], id: Int32)]) {
        var chars = 0
        for p in pieces { chars += PieceTrie.characterCount(p.bytes) }
        var bits: UInt64 = 4
        // nodes ≤ chars: at most half full. Fewer probes gained more than a smaller table (2/3 full: +12% time)
        while (1 << bits) < 2 * max(chars, 1) { bits += 1 }
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
        // a child without edges of its own is marked, so a walk stops there without probing for a next edge
        var hasEdges = [Bool](repeating: false, count: Int(nodes))
        for slot in slots where slot.key != 0 { hasEdges[Int((slot.key - 1) >> 32)] = true }
        for i in slots.indices where slots[i].key != 0 && !hasEdges[Int(slots[i].child)] { slots[i].child = -1 }
        for slot in slots where slot.key != 0 && (slot.key - 1) >> 32 == UInt64(PieceTrie.root) {
            let code = UInt32(truncatingIfNeeded: slot.key - 1)
            if let scalar = PieceTrie.bmpScalar(code) { bmpRoot[scalar] = (slot.child, slot.piece) }
        }
    }

    /// The code point of a 1- to 3-byte character code; nil for 4-byte ones.
    @inline(__always)
    private static func bmpScalar(_ code: UInt32) -> Int? {
        let b0 = code & 0xFF, b1 = (code >> 8) & 0x3F, b2 = (code >> 16) & 0x3F
        if b0 < 0x80 { return Int(b0) }
        if b0 < 0xE0 { return Int((b0 & 0x1F) << 6 | b1) }
        if b0 < 0xF0 { return Int((b0 & 0x0F) << 12 | b1 << 6 | b2) }
        return nil
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

    /// Follows the edge for the character `code` from `node` (never -1): the child (-1: a leaf) and the piece it
    /// spells (-1: none), or nil when no piece goes on with that character.
    @inline(__always)
    func step(_ node: Int32, _ code: UInt32) -> (child: Int32, piece: Int32)? {
        if node == PieceTrie.root, let scalar = PieceTrie.bmpScalar(code) {
            let edge = bmpRoot[scalar]
            return edge.child == -2 ? nil : edge
        }
        let slot = slots[slotIndex(node, code)]
        return slot.key == 0 ? nil : (slot.child, slot.piece)
    }
}
