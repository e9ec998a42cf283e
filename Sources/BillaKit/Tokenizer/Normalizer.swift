/// SentencePiece's normalizer (normalizer.cc): optional precompiled character map, dummy prefix, whitespace
/// escaping to U+2581 and, when the spec asks, removal of leading, trailing and repeated spaces. The input is
/// already checked to be UTF-8, so the reference's "replace a malformed byte with U+FFFD" path never runs.
struct Normalizer: Sendable {
    static let spaceSymbol: [UInt8] = [0xE2, 0x96, 0x81]

    let addDummyPrefix: Bool
    let removeExtraWhitespaces: Bool
    let escapeWhitespaces: Bool
    let treatWhitespaceAsSuffix: Bool
    let charsMap: CharsMap?
    /// User-defined pieces pass through the character map untouched.
    let userDefined: PrefixMatcher?

    var isIdentity: Bool { charsMap == nil }

    /// Appends the normalized form of `input` to `out` (cleared first).
    func normalize(_ input: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) {
        out.removeAll(keepingCapacity: true)
        guard input.count > 0, let base = input.baseAddress else { return }
        if isIdentity, !removeExtraWhitespaces, escapeWhitespaces, !treatWhitespaceAsSuffix {
            // LLaMA's spec: every byte is itself except ' '.
            if addDummyPrefix { out.append(contentsOf: Normalizer.spaceSymbol) }
            for b in input {
                if b == 0x20 { out.append(0xE2); out.append(0x96); out.append(0x81) } else { out.append(b) }
            }
            return
        }
        var pos = 0
        let n = input.count
        if removeExtraWhitespaces {
            while pos < n {
                let (rep, len) = prefix(base + pos, n - pos)
                if !(rep.count == 1 && rep.first == 0x20) { break }
                pos += len
            }
        }
        if pos == n { return }
        func addSpace(_ out: inout [UInt8]) {
            if escapeWhitespaces { out.append(contentsOf: Normalizer.spaceSymbol) } else { out.append(0x20) }
        }
        if !treatWhitespaceAsSuffix, addDummyPrefix { addSpace(&out) }
        var prevSpace = removeExtraWhitespaces
        while pos < n {
            let (rep, len) = prefix(base + pos, n - pos)
            var s = rep[...]
            while prevSpace, s.first == 0x20 { s = s.dropFirst() }
            if !s.isEmpty {
                for b in s {
                    if escapeWhitespaces, b == 0x20 { out.append(contentsOf: Normalizer.spaceSymbol) } else { out.append(b) }
                }
                prevSpace = s.last == 0x20
            }
            pos += len
            if !removeExtraWhitespaces { prevSpace = false }
        }
        if removeExtraWhitespaces {
            let space: [UInt8] = escapeWhitespaces ? Normalizer.spaceSymbol : [0x20]
            while out.count >= space.count, Array(out[(out.count - space.count)...]) == space {
                out.removeLast(space.count)
            }
        }
        if treatWhitespaceAsSuffix, addDummyPrefix { addSpace(&out) }
    }

    /// NormalizePrefix: the replacement for the longest rule matching at `p`, or the one UTF-8 character there.
    private func prefix(_ p: UnsafePointer<UInt8>, _ n: Int) -> (ArraySlice<UInt8>, Int) {
        if let userDefined, let len = userDefined.longestMatch(p, n) {
            return (ArraySlice(UnsafeBufferPointer(start: p, count: len)), len)
        }
        if let charsMap, let (len, rep) = charsMap.longestRule(p, n) {
            return (rep, len)
        }
        let len = min(n, UTF8Length.of(p[0]))
        return (ArraySlice(UnsafeBufferPointer(start: p, count: len)), len)
    }
}

enum UTF8Length {
    /// string_util::OneCharLen: the length a lead byte announces (continuation bytes count as 1).
    @inline(__always)
    static func of(_ lead: UInt8) -> Int {
        switch lead >> 4 {
        case 0xC, 0xD: return 2
        case 0xE: return 3
        case 0xF: return 4
        default: return 1
        }
    }
}

/// Longest-match lookup of user-defined pieces (PrefixMatcher in normalizer.cc); they are few, so a map from first
/// byte to candidates, longest first, is enough.
struct PrefixMatcher: Sendable {
    private var byFirst: [UInt8: [[UInt8]]] = [:]

    init?(_ pieces: [[UInt8]]) {
        guard !pieces.isEmpty else { return nil }
        for p in pieces where !p.isEmpty { byFirst[p[0], default: []].append(p) }
        for k in byFirst.keys { byFirst[k]?.sort { $0.count > $1.count } }
    }

    @inline(__always)
    func longestMatch(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int? {
        guard let candidates = byFirst[p[0]] else { return nil }
        for c in candidates where c.count <= n {
            var same = true
            for i in 1..<c.count where c[i] != p[i] { same = false; break }
            if same { return c.count }
        }
        return nil
    }
}
