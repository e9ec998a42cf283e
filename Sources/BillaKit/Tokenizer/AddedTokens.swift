/// tokenizer.json's added tokens, found in text before pre-tokenization as `tokenizers`' AddedVocabulary does:
/// leftmost-longest matches (its Aho-Corasick `LeftmostLongest`), non-overlapping, with `lstrip` / `rstrip`
/// taking the whitespace (Rust's `char::is_whitespace`: White_Space) on that side into the token.
struct AddedTokenMatcher: Sendable {
    struct Entry: Sendable { var bytes: [UInt8]; var id: Int32; var lstrip: Bool; var rstrip: Bool }
    private var byFirst: [[Entry]] = Array(repeating: [], count: 256)   // longest first
    private(set) var isEmpty = true

    init(_ entries: [Entry]) {
        for e in entries where !e.bytes.isEmpty { byFirst[Int(e.bytes[0])].append(e); isEmpty = false }
        for i in 0..<256 { byFirst[i].sort { $0.bytes.count > $1.bytes.count } }
    }

    /// Splits `b[from..<to]` into gaps (id nil) and added tokens, calling `piece` for each non-empty part in order.
    func split(_ b: UnsafeBufferPointer<UInt8>, _ from: Int, _ to: Int, _ piece: (Int, Int, Int32?) -> Void) {
        if isEmpty { if to > from { piece(from, to, nil) }; return }
        var gap = from, i = from
        while i < to {
            let cands = byFirst[Int(b[i])]
            var hit: Entry?
            if !cands.isEmpty {
                for e in cands where e.bytes.count <= to - i {
                    var same = true
                    for k in 1..<e.bytes.count where b[i + k] != e.bytes[k] { same = false; break }
                    if same { hit = e; break }
                }
            }
            guard let e = hit else { i += 1; continue }
            var start = i, stop = i + e.bytes.count
            if e.lstrip {
                while start > gap, let p = AddedTokenMatcher.whitespaceBefore(b, start, floor: gap) { start = p }
            }
            if e.rstrip {
                while stop < to, let q = AddedTokenMatcher.whitespaceAfter(b, stop, limit: to) { stop = q }
            }
            if start > gap { piece(gap, start, nil) }
            piece(start, stop, e.id)
            gap = stop
            i = stop
        }
        if to > gap { piece(gap, to, nil) }
    }

    /// The start of the whitespace character ending at `end`, or nil.
    static func whitespaceBefore(_ b: UnsafeBufferPointer<UInt8>, _ end: Int, floor: Int) -> Int? {
        var s = end - 1
        while s > floor, b[s] & 0xC0 == 0x80 { s -= 1 }
        return isWhitespace(b, s) ? s : nil
    }

    static func whitespaceAfter(_ b: UnsafeBufferPointer<UInt8>, _ start: Int, limit: Int) -> Int? {
        let (c, l) = UnicodeClass.at(b, start)
        return (c == .space || c == .newline) && start + l <= limit ? start + l : nil
    }

    private static func isWhitespace(_ b: UnsafeBufferPointer<UInt8>, _ i: Int) -> Bool {
        let c = UnicodeClass.at(b, i).0
        return c == .space || c == .newline
    }
}
