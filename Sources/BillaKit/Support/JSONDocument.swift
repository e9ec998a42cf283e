import Foundation

/// A strict RFC 8259 JSON parser into native Swift values: `[String: Any]`, `[Any]`, `String`, `Int` (integers that
/// fit), `Double`, `Bool` and `NSNull`, the shapes `JSONSerialization` gives, so code written against it reads these
/// the same way. Why not `JSONSerialization`: on Linux it builds Foundation objects and bridges every one, which
/// costs about a second on Llama-3's 6 MB `tokenizer.json` (128,000 vocabulary keys, 280,000 merges) before a single
/// token is encoded. This parser reads the mapped bytes once.
///
/// Refused, as serde_json (tokenizers' parser) refuses them: trailing text, control characters in strings, bad
/// escapes, lone surrogates, leading zeros, nesting deeper than `maxDepth`. A duplicate object key keeps the last
/// value, as both references do.
enum JSONDocument {
    static let maxDepth = 512

    struct Failure: Error, CustomStringConvertible {
        let offset: Int
        let reason: String
        var description: String { "\(reason) at byte \(offset)" }
    }

    /// The strings of a large array (or the keys of a large object) in one buffer, not as one `String` each:
    /// what `parse(_:compact:)` gives for the members named there. Building, hashing and casting 400,000 Swift
    /// Strings was most of a tokenizer.json load.
    struct StringList {
        /// the unescaped UTF-8 of every string, back to back
        var bytes: [UInt8] = []
        /// string k is bytes[ends[k-1] ..< ends[k]] (ends[-1] = 0)
        var ends: [Int] = []
        /// the array held [a, b] pairs: strings 2k and 2k+1 are element k (else each string is an element)
        var pairs = false
        /// an object's values, parallel to its keys (empty for an array)
        var values: [Any] = []

        var count: Int { ends.count }
        func withString<R>(_ k: Int, _ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
            let lo = k == 0 ? 0 : ends[k - 1]
            return try bytes.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[lo..<ends[k]])) }
        }
        func string(_ k: Int) -> String { withString(k) { String(decoding: $0, as: UTF8.self) } }
    }

    /// `compact`: member names whose value, when it is an object or an array of strings or of string pairs, comes
    /// back as a `StringList` (an object's keys in file order, a repeated key kept twice) instead of a dictionary
    /// or an array.
    static func parse(_ data: Data, compact: Set<String> = []) throws -> Any {
        try data.withUnsafeBytes { raw in
            var p = Parser(b: raw.bindMemory(to: UInt8.self))
            p.compact = compact
            p.skipSpace()
            let v = try p.value(depth: 0)
            p.skipSpace()
            guard p.i == p.b.count else { throw Failure(offset: p.i, reason: "text after the JSON value") }
            return v
        }
    }

    private struct Parser {
        let b: UnsafeBufferPointer<UInt8>
        var i = 0
        var scratch: [UInt8] = []
        var compact: Set<String> = []

        init(b: UnsafeBufferPointer<UInt8>) { self.b = b }

        func fail(_ reason: String) -> Failure { Failure(offset: i, reason: reason) }

        mutating func skipSpace() {
            while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
        }

        mutating func value(depth: Int) throws -> Any {
            guard i < b.count else { throw fail("unexpected end of the text") }
            switch b[i] {
            case UInt8(ascii: "{"): return try object(depth: depth + 1)
            case UInt8(ascii: "["): return try array(depth: depth + 1)
            case UInt8(ascii: "\""): return try string()
            case UInt8(ascii: "t"): try literal("true"); return true
            case UInt8(ascii: "f"): try literal("false"); return false
            case UInt8(ascii: "n"): try literal("null"); return NSNull()
            default: return try number()
            }
        }

        mutating func literal(_ word: StaticString) throws {
            let n = word.utf8CodeUnitCount
            guard i + n <= b.count else { throw fail("unexpected end of the text") }
            for k in 0..<n where b[i + k] != word.utf8Start[k] { throw fail("invalid literal") }
            i += n
        }

        mutating func object(depth: Int) throws -> [String: Any] {
            guard depth <= JSONDocument.maxDepth else { throw fail("nesting deeper than \(JSONDocument.maxDepth)") }
            i += 1
            var out = [String: Any]()
            skipSpace()
            if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return out }
            while true {
                skipSpace()
                guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw fail("expected a key string") }
                let key = try string()
                skipSpace()
                guard i < b.count, b[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                i += 1
                skipSpace()
                if compact.contains(key), i < b.count, let list = try compactValue(depth: depth) {
                    out[key] = list
                } else {
                    out[key] = try value(depth: depth)
                }
                skipSpace()
                guard i < b.count else { throw fail("unexpected end of the text") }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                if b[i] == UInt8(ascii: "}") { i += 1; return out }
                throw fail("expected ',' or '}'")
            }
        }

        /// A `StringList` for the object or string array at `i`, or nil (and `i` unchanged) for any other value.
        mutating func compactValue(depth: Int) throws -> StringList? {
            guard depth + 1 <= JSONDocument.maxDepth else { throw fail("nesting deeper than \(JSONDocument.maxDepth)") }
            let start = i
            var list = StringList()
            func close(_ c: UInt8) throws -> Bool {   // after an element: true at the end
                skipSpace()
                guard i < b.count else { throw fail("unexpected end of the text") }
                if b[i] == UInt8(ascii: ",") { i += 1; skipSpace(); return false }
                if b[i] == c { i += 1; return true }
                throw fail("expected ',' or '\(Character(Unicode.Scalar(c)))'")
            }
            if b[i] == UInt8(ascii: "{") {
                i += 1; skipSpace()
                if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return list }
                while true {
                    guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw fail("expected a key string") }
                    try rawString(into: &list)
                    skipSpace()
                    guard i < b.count, b[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                    i += 1; skipSpace()
                    list.values.append(try value(depth: depth + 1))
                    if try close(UInt8(ascii: "}")) { return list }
                }
            }
            guard b[i] == UInt8(ascii: "[") else { return nil }
            i += 1; skipSpace()
            if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return list }
            let pairs = i < b.count && b[i] == UInt8(ascii: "[")
            list.pairs = pairs
            while true {
                if pairs {
                    guard i < b.count, b[i] == UInt8(ascii: "[") else { i = start; return nil }
                    i += 1; skipSpace()
                    guard i < b.count, b[i] == UInt8(ascii: "\"") else { i = start; return nil }
                    try rawString(into: &list)
                    skipSpace()
                    guard i < b.count, b[i] == UInt8(ascii: ",") else { i = start; return nil }
                    i += 1; skipSpace()
                    guard i < b.count, b[i] == UInt8(ascii: "\"") else { i = start; return nil }
                    try rawString(into: &list)
                    skipSpace()
                    guard i < b.count, b[i] == UInt8(ascii: "]") else { i = start; return nil }
                    i += 1
                } else {
                    guard i < b.count, b[i] == UInt8(ascii: "\"") else { i = start; return nil }
                    try rawString(into: &list)
                }
                if try close(UInt8(ascii: "]")) { return list }
            }
        }

        /// A string's unescaped UTF-8 appended to `list`.
        mutating func rawString(into list: inout StringList) throws {
            let s = try string()   // small strings stay inline: no allocation
            list.bytes.append(contentsOf: s.utf8)
            list.ends.append(list.bytes.count)
        }

        mutating func array(depth: Int) throws -> [Any] {
            guard depth <= JSONDocument.maxDepth else { throw fail("nesting deeper than \(JSONDocument.maxDepth)") }
            i += 1
            var out = [Any]()
            skipSpace()
            if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return out }
            while true {
                skipSpace()
                out.append(try value(depth: depth))
                skipSpace()
                guard i < b.count else { throw fail("unexpected end of the text") }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                if b[i] == UInt8(ascii: "]") { i += 1; return out }
                throw fail("expected ',' or ']'")
            }
        }

        mutating func string() throws -> String {
            i += 1
            let start = i
            // fast path: no escape
            while i < b.count {
                let c = b[i]
                if c == UInt8(ascii: "\"") {
                    let s = try utf8(UnsafeBufferPointer(rebasing: b[start..<i]), at: start)
                    i += 1
                    return s
                }
                if c == UInt8(ascii: "\\") { break }
                if c < 0x20 { throw fail("control character in a string") }
                i += 1
            }
            scratch.removeAll(keepingCapacity: true)
            scratch.append(contentsOf: UnsafeBufferPointer(rebasing: b[start..<i]))
            while i < b.count {
                let c = b[i]
                if c == UInt8(ascii: "\"") {
                    i += 1
                    return try scratch.withUnsafeBufferPointer { try utf8($0, at: start) }
                }
                if c < 0x20 { throw fail("control character in a string") }
                if c != UInt8(ascii: "\\") { scratch.append(c); i += 1; continue }
                guard i + 1 < b.count else { throw fail("unexpected end of the text") }
                let e = b[i + 1]
                i += 2
                switch e {
                case UInt8(ascii: "\""): scratch.append(0x22)
                case UInt8(ascii: "\\"): scratch.append(0x5C)
                case UInt8(ascii: "/"): scratch.append(0x2F)
                case UInt8(ascii: "b"): scratch.append(0x08)
                case UInt8(ascii: "f"): scratch.append(0x0C)
                case UInt8(ascii: "n"): scratch.append(0x0A)
                case UInt8(ascii: "r"): scratch.append(0x0D)
                case UInt8(ascii: "t"): scratch.append(0x09)
                case UInt8(ascii: "u"):
                    var u = try hex4()
                    if (0xD800...0xDBFF).contains(u) {
                        guard i + 1 < b.count, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") else {
                            throw fail("lone leading surrogate")
                        }
                        i += 2
                        let lo = try hex4()
                        guard (0xDC00...0xDFFF).contains(lo) else { throw fail("invalid trailing surrogate") }
                        u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(u) {
                        throw fail("lone trailing surrogate")
                    }
                    guard let scalar = Unicode.Scalar(u) else { throw fail("invalid escape") }
                    scratch.append(contentsOf: Array(String(Character(scalar)).utf8))
                default:
                    throw fail("invalid escape")
                }
            }
            throw fail("unterminated string")
        }

        mutating func hex4() throws -> UInt32 {
            guard i + 4 <= b.count else { throw fail("unexpected end of the text") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = b[i]
                let d: UInt32
                switch c {
                case 0x30...0x39: d = UInt32(c - 0x30)
                case 0x41...0x46: d = UInt32(c - 0x41 + 10)
                case 0x61...0x66: d = UInt32(c - 0x61 + 10)
                default: throw fail("invalid \\u escape")
                }
                v = v << 4 | d
                i += 1
            }
            return v
        }

        func utf8(_ s: UnsafeBufferPointer<UInt8>, at offset: Int) throws -> String {
            guard let str = String(validating: s, as: UTF8.self) else {
                throw Failure(offset: offset, reason: "a string is not valid UTF-8")
            }
            return str
        }

        mutating func number() throws -> Any {
            let start = i
            if i < b.count, b[i] == UInt8(ascii: "-") { i += 1 }
            guard i < b.count, (0x30...0x39).contains(b[i]) else { throw fail("invalid value") }
            if b[i] == 0x30 {
                i += 1
                if i < b.count, (0x30...0x39).contains(b[i]) { throw fail("leading zero in a number") }
            } else {
                while i < b.count, (0x30...0x39).contains(b[i]) { i += 1 }
            }
            var integral = true
            if i < b.count, b[i] == UInt8(ascii: ".") {
                integral = false
                i += 1
                guard i < b.count, (0x30...0x39).contains(b[i]) else { throw fail("invalid number") }
                while i < b.count, (0x30...0x39).contains(b[i]) { i += 1 }
            }
            if i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
                integral = false
                i += 1
                if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
                guard i < b.count, (0x30...0x39).contains(b[i]) else { throw fail("invalid number") }
                while i < b.count, (0x30...0x39).contains(b[i]) { i += 1 }
            }
            let text = String(decoding: UnsafeBufferPointer(rebasing: b[start..<i]), as: UTF8.self)
            if integral, let v = Int(text) { return v }
            guard let d = Double(text) else { throw Failure(offset: start, reason: "invalid number") }
            return d
        }
    }
}
