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
            // LLaMA's spec: every byte is itself except ' '; copied in runs between spaces.
            out.reserveCapacity(input.count + 3)
            if addDummyPrefix { out.append(contentsOf: Normalizer.spaceSymbol) }
            var run = 0
            for i in 0..<input.count where base[i] == 0x20 {
                out.append(contentsOf: UnsafeBufferPointer(start: base + run, count: i - run))
                out.append(contentsOf: Normalizer.spaceSymbol)
                run = i + 1
            }
            out.append(contentsOf: UnsafeBufferPointer(start: base + run, count: input.count - run))
            return
        }
        if let charsMap {
            charsMap.strings.withUnsafeBufferPointer { normalize(base, input.count, charsMap, $0, into: &out) }
        } else {
            normalize(base, input.count, nil, UnsafeBufferPointer(start: nil, count: 0), into: &out)
        }
    }

    /// The general case: `strings` is the character map's replacement table.
    private func normalize(_ base: UnsafePointer<UInt8>, _ n: Int, _ charsMap: CharsMap?,
                           _ strings: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) {
        out.reserveCapacity(n + n / 2 + 8)
        /// NormalizePrefix: the replacement for the longest rule matching at `p`, or the one UTF-8 character there,
        /// and the input length it consumes.
        func prefix(_ p: UnsafePointer<UInt8>, _ n: Int) -> (UnsafeBufferPointer<UInt8>, Int) {
            if let userDefined, let len = userDefined.longestMatch(p, n) {
                return (UnsafeBufferPointer(start: p, count: len), len)
            }
            if let charsMap, let (len, at, end) = charsMap.longestRule(p, n) {
                return (UnsafeBufferPointer(rebasing: strings[at..<end]), len)
            }
            let len = min(n, UTF8Length.of(p[0]))
            return (UnsafeBufferPointer(start: p, count: len), len)
        }
        var pos = 0
        if removeExtraWhitespaces {
            while pos < n {
                let (rep, len) = prefix(base + pos, n - pos)
                if !(rep.count == 1 && rep[0] == 0x20) { break }
                pos += len
            }
        }
        if pos == n { return }
        func addSpace(_ out: inout [UInt8]) {
            if escapeWhitespaces { out.append(contentsOf: Normalizer.spaceSymbol) } else { out.append(0x20) }
        }
        if !treatWhitespaceAsSuffix, addDummyPrefix { addSpace(&out) }
        var prevSpace = removeExtraWhitespaces
        // A character without a rule and other than ' ' is copied as it is: such runs are appended in one go.
        var run = pos
        while pos < n {
            if userDefined == nil, let charsMap {
                let plain = charsMap.plainRun(base + pos, n - pos)
                if plain > 0 {
                    pos += plain
                    prevSpace = false
                    continue
                }
            }
            let (rep, len) = prefix(base + pos, n - pos)
            if rep.baseAddress == base + pos, rep.count == len, !rep.contains(0x20) {
                pos += len
                prevSpace = false
                continue
            }
            if run < pos { out.append(contentsOf: UnsafeBufferPointer(start: base + run, count: pos - run)) }
            run = pos + len
            var from = 0
            if prevSpace { while from < rep.count, rep[from] == 0x20 { from += 1 } }
            if from < rep.count {
                for i in from..<rep.count {
                    let b = rep[i]
                    if escapeWhitespaces, b == 0x20 { out.append(contentsOf: Normalizer.spaceSymbol) } else { out.append(b) }
                }
                prevSpace = rep[rep.count - 1] == 0x20
            }
            pos += len
            if !removeExtraWhitespaces { prevSpace = false }
        }
        if run < n { out.append(contentsOf: UnsafeBufferPointer(start: base + run, count: n - run)) }
        if removeExtraWhitespaces {
            let space: [UInt8] = escapeWhitespaces ? Normalizer.spaceSymbol : [0x20]
            while out.count >= space.count, out[(out.count - space.count)...].elementsEqual(space) {
                out.removeLast(space.count)
            }
        }
        if treatWhitespaceAsSuffix, addDummyPrefix { addSpace(&out) }
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

/// Longest-match lookup of user-defined pieces (PrefixMatcher in normalizer.cc); they are few, so a table from first
/// byte to candidates, longest first, is enough.
struct PrefixMatcher: Sendable {
    private var byFirst: [[[UInt8]]] = Array(repeating: [], count: 256)

    init?(_ pieces: [[UInt8]]) {
        guard !pieces.isEmpty else { return nil }
        for p in pieces where !p.isEmpty { byFirst[Int(p[0])].append(p) }
        for k in byFirst.indices { byFirst[k].sort { $0.count > $1.count } }
    }

    @inline(__always)
    func longestMatch(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int? {
        for c in byFirst[Int(p[0])] where c.count <= n {
            var same = true
            for i in 1..<c.count where c[i] != p[i] { same = false; break }
            if same { return c.count }
        }
        return nil
    }
}
