import Foundation

/// A JSON value as written, keeping what JSONSerialization blurs on Linux: integers apart from other numbers,
/// booleans apart from 0 and 1, and duplicate keys (an error here, not a silent overwrite).
indirect enum JSONValue: Equatable {
    case null, bool(Bool), integer(Int), number(Double), string(String), array([JSONValue]), object([(String, JSONValue)])

    static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case let (.bool(x), .bool(y)): return x == y
        case let (.integer(x), .integer(y)): return x == y
        case let (.number(x), .number(y)): return x == y
        case let (.string(x), .string(y)): return x == y
        case let (.array(x), .array(y)): return x == y
        case let (.object(x), .object(y)): return x.map(\.0) == y.map(\.0) && x.map(\.1) == y.map(\.1)
        default: return false
        }
    }

    subscript(_ key: String) -> JSONValue? {
        if case .object(let kv) = self { return kv.first { $0.0 == key }?.1 }
        return nil
    }

    var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case .integer: return "integer"
        case .number: return "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }
}

struct JSONParseError: Error, CustomStringConvertible {
    let description: String
}

/// A strict RFC 8259 parser: one value, nothing after it but whitespace.
struct JSONParser {
    private let bytes: [UInt8]
    private var i = 0

    static func parse(_ text: String) throws -> JSONValue {
        var p = JSONParser(bytes: Array(text.utf8))
        let v = try p.value()
        p.skipSpace()
        guard p.i == p.bytes.count else { throw p.fail("text after the value") }
        return v
    }

    private init(bytes: [UInt8]) { self.bytes = bytes }

    private func fail(_ what: String) -> JSONParseError { JSONParseError(description: "\(what) at byte \(i)") }

    private mutating func skipSpace() {
        while i < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[i]) { i += 1 }
    }

    private mutating func literal(_ word: String, _ v: JSONValue) throws -> JSONValue {
        let w = Array(word.utf8)
        guard i + w.count <= bytes.count, Array(bytes[i..<i + w.count]) == w else { throw fail("bad literal") }
        i += w.count
        return v
    }

    private mutating func value() throws -> JSONValue {
        skipSpace()
        guard i < bytes.count else { throw fail("unexpected end") }
        switch bytes[i] {
        case UInt8(ascii: "{"):
            i += 1
            var kv = [(String, JSONValue)]()
            skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(kv) }
            while true {
                skipSpace()
                let k = try string()
                if kv.contains(where: { $0.0 == k }) { throw fail("duplicate key \"\(k)\"") }
                skipSpace()
                guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                i += 1
                kv.append((k, try value()))
                skipSpace()
                guard i < bytes.count else { throw fail("unexpected end") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "}") { i += 1; return .object(kv) }
                throw fail("expected ',' or '}'")
            }
        case UInt8(ascii: "["):
            i += 1
            var items = [JSONValue]()
            skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
            while true {
                items.append(try value())
                skipSpace()
                guard i < bytes.count else { throw fail("unexpected end") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                throw fail("expected ',' or ']'")
            }
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): return try literal("true", .bool(true))
        case UInt8(ascii: "f"): return try literal("false", .bool(false))
        case UInt8(ascii: "n"): return try literal("null", .null)
        default: return try number()
        }
    }

    private mutating func number() throws -> JSONValue {
        let start = i
        var integral = true
        while i < bytes.count, "-+0123456789.eE".utf8.contains(bytes[i]) {
            if [UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E")].contains(bytes[i]) { integral = false }
            i += 1
        }
        let text = String(decoding: bytes[start..<i], as: UTF8.self)
        if integral, let n = Int(text) { return .integer(n) }
        guard !text.isEmpty, let d = Double(text) else { throw fail("bad number '\(text)'") }
        return .number(d)
    }

    private mutating func string() throws -> String {
        guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a string") }
        i += 1
        var out = [UInt8]()
        while i < bytes.count {
            let c = bytes[i]
            i += 1
            if c == UInt8(ascii: "\"") { return String(decoding: out, as: UTF8.self) }
            if c < 0x20 { throw fail("control character in a string") }
            guard c == UInt8(ascii: "\\") else { out.append(c); continue }
            guard i < bytes.count else { break }
            let e = bytes[i]
            i += 1
            switch e {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "u"):
                guard i + 4 <= bytes.count, var u = UInt32(String(decoding: bytes[i..<i + 4], as: UTF8.self), radix: 16) else { throw fail("bad \\u") }
                i += 4
                if (0xD800..<0xDC00).contains(u), i + 6 <= bytes.count, bytes[i] == UInt8(ascii: "\\"),
                   let lo = UInt32(String(decoding: bytes[i + 2..<i + 6], as: UTF8.self), radix: 16) {
                    u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00)
                    i += 6
                }
                out += Array(String(Unicode.Scalar(u).map(Character.init) ?? "\u{FFFD}").utf8)
            default: throw fail("bad escape")
            }
        }
        throw fail("unterminated string")
    }
}

/// The subset of JSON Schema (2020-12) that formats/json.schema.json uses: type (one or a list), enum, properties,
/// required, additionalProperties (false or a schema), items, anyOf and local $ref. A keyword outside the subset is
/// itself an error, so the schema cannot say more than the validator checks.
struct JSONSchemaValidator {
    let root: JSONValue
    static let keywords: Set<String> = ["type", "enum", "properties", "required", "additionalProperties", "items", "anyOf", "$ref",
                                        "$schema", "$id", "$defs", "title", "description"]

    /// Every problem, each with its JSON path; empty when `value` conforms.
    func errors(_ value: JSONValue, against schema: JSONValue, at path: String = "$") -> [String] {
        guard case .object(let kw) = schema else { return ["\(path): the schema is not an object"] }
        var out = [String]()
        for (k, _) in kw where !Self.keywords.contains(k) { out.append("\(path): schema keyword '\(k)' is outside the validator's subset") }
        if case .string(let ref)? = schema["$ref"] {
            guard ref.hasPrefix("#/$defs/"), let target = root["$defs"]?[String(ref.dropFirst(8))] else { return out + ["\(path): unresolved $ref \(ref)"] }
            return out + errors(value, against: target, at: path)
        }
        if case .array(let options)? = schema["anyOf"] {
            let results = options.map { errors(value, against: $0, at: path) }
            if !results.contains(where: \.isEmpty) {
                out.append("\(path): matches none of anyOf: " + results.map { $0.joined(separator: "; ") }.joined(separator: " | "))
            }
        }
        if let t = schema["type"] {
            let allowed: [String]
            switch t {
            case .string(let s): allowed = [s]
            case .array(let a): allowed = a.compactMap { if case .string(let s) = $0 { return s } else { return nil } }
            default: allowed = []
            }
            let actual = value.typeName
            let ok = allowed.contains(actual) || (actual == "integer" && allowed.contains("number"))
            if !ok { return out + ["\(path): \(actual), the schema wants \(allowed.joined(separator: " or "))"] }
        }
        if case .array(let choices)? = schema["enum"], !choices.contains(value) {
            out.append("\(path): \(value) is not one of the schema's enum")
        }
        if case .object(let kv) = value {
            var props = [String: JSONValue]()
            if case .object(let p)? = schema["properties"] { for (k, v) in p { props[k] = v } }
            if case .array(let req)? = schema["required"] {
                for case .string(let r) in req where !kv.contains(where: { $0.0 == r }) { out.append("\(path): missing required key '\(r)'") }
            }
            for (k, v) in kv {
                if let s = props[k] {
                    out += errors(v, against: s, at: "\(path).\(k)")
                } else if let extra = schema["additionalProperties"] {
                    if extra == .bool(false) { out.append("\(path): unknown key '\(k)'") } else if extra != .bool(true) {
                        out += errors(v, against: extra, at: "\(path).\(k)")
                    }
                }
            }
        }
        if case .array(let items) = value, let s = schema["items"] {
            for (n, item) in items.enumerated() { out += errors(item, against: s, at: "\(path)[\(n)]") }
        }
        return out
    }
}
