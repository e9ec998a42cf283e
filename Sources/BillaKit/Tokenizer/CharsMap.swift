/// A NormalizerSpec's `precompiled_charsmap` (nmt_nfkc and friends): `<trie size: u32 LE><darts-clone double
/// array><NUL-separated replacement strings>`. The trie maps a source byte sequence to the offset of its replacement.
/// Layout of a double-array unit (darts.h): bits 0-7 label, bit 8 has-leaf, bit 9 offset scale, bits 10-31 offset;
/// a leaf unit's low 31 bits are its value.
struct CharsMap: Sendable {
    private let units: [UInt32]
    /// NUL-terminated replacements; `longestRule` gives ranges into it.
    let strings: [UInt8]
    /// ASCII bytes that begin no rule matching when an ASCII byte (or the end) follows: most of a Latin text's
    /// bytes, which then skip the walk (NFKC's rules for a letter go on with a combining mark).
    private let plainASCII: [Bool]

    init(_ blob: [UInt8], file: String?) throws {
        func bad(_ why: String) -> BillaError {
            BillaError(.invalidHeader, file: file, "normalizer_spec.precompiled_charsmap is malformed: \(why)",
                       remedy: "the tokenizer.model is corrupt; download it again")
        }
        guard blob.count > 4 else { throw bad("shorter than its header") }
        let size = Int(blob[0]) | Int(blob[1]) << 8 | Int(blob[2]) << 16 | Int(blob[3]) << 24
        guard size < blob.count - 4 + 1, size % 4 == 0, size > 0 else { throw bad("trie size \(size) does not fit the blob") }
        var u = [UInt32]()
        u.reserveCapacity(size / 4)
        var i = 4
        while i < 4 + size {
            u.append(UInt32(blob[i]) | UInt32(blob[i + 1]) << 8 | UInt32(blob[i + 2]) << 16 | UInt32(blob[i + 3]) << 24)
            i += 4
        }
        units = u
        strings = Array(blob[(4 + size)...])
        // a byte is plain when no rule is that byte alone and none goes on from it with another ASCII byte
        var plain = [Bool](repeating: false, count: 128)
        if !u.isEmpty {
            func child(_ node: Int, _ c: Int) -> Int? {
                let next = node ^ c
                return next < u.count && CharsMap.label(u[next]) == UInt32(c) ? next : nil
            }
            for b in 0..<128 {
                guard let n1 = child(CharsMap.offset(u[0]), b) else { plain[b] = true; continue }
                let after = n1 ^ CharsMap.offset(u[n1])
                let continues = after < u.count && (0..<128).contains { child(after, $0) != nil }
                plain[b] = !CharsMap.hasLeaf(u[n1]) && !continues
            }
        }
        plainASCII = plain
    }

    @inline(__always) private static func offset(_ u: UInt32) -> Int { Int((u >> 10) << ((u & (1 << 9)) >> 6)) }
    @inline(__always) private static func label(_ u: UInt32) -> UInt32 { u & ((1 << 31) | 0xFF) }
    @inline(__always) private static func hasLeaf(_ u: UInt32) -> Bool { (u >> 8) & 1 == 1 }
    @inline(__always) private static func value(_ u: UInt32) -> Int { Int(u & ((1 << 31) - 1)) }

    /// How many bytes from `p` are plain ASCII other than ' ', each followed by ASCII or the end: no rule
    /// matches at any of them, and each is its own normalized form.
    @inline(__always)
    func plainRun(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int {
        var i = 0
        while i < n {
            let b = p[i]
            if b >= 0x80 || b == 0x20 || !plainASCII[Int(b)] || (i + 1 < n && p[i + 1] >= 0x80) { break }
            i += 1
        }
        return i
    }

    /// The longest rule that matches a prefix of `p[0..<n]`: its length and where its replacement is in `strings`.
    @inline(__always)
    func longestRule(_ p: UnsafePointer<UInt8>, _ n: Int) -> (length: Int, start: Int, end: Int)? {
        if p[0] < 0x80, plainASCII[Int(p[0])], n == 1 || p[1] < 0x80 { return nil }
        var best: (Int, Int)?
        var node = 0
        guard !units.isEmpty else { return nil }
        node ^= CharsMap.offset(units[0])
        for i in 0..<n {
            node ^= Int(p[i])
            guard node >= 0, node < units.count else { break }
            let unit = units[node]
            if CharsMap.label(unit) != UInt32(p[i]) { break }
            node ^= CharsMap.offset(unit)
            guard node >= 0, node < units.count else { break }
            if CharsMap.hasLeaf(unit) { best = (i + 1, CharsMap.value(units[node])) }
        }
        guard let (length, at) = best, at < strings.count else { return nil }
        var end = at
        while end < strings.count, strings[end] != 0 { end += 1 }
        return (length, at, end)
    }
}
