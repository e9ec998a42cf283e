/// JSON text the way Python's `json.dumps` writes it (the files transformers and Meta publish): either compact with
/// ", " and ": " separators in insertion order, or `indent=2, sort_keys=True`. Values are Bool, Int, Double,
/// String, nil (null), arrays and `PythonJSON.Object`s.
public enum PythonJSON {
    /// An ordered object: Meta's params.json keeps insertion order.
    public struct Object { public var pairs: [(String, Any?)]; public init(_ pairs: [(String, Any?)]) { self.pairs = pairs } }

    public static func compact(_ v: Any?) -> String {
        switch v {
        case let o as Object: return "{" + o.pairs.map { "\(JSONText.quote($0.0)): \(compact($0.1))" }.joined(separator: ", ") + "}"
        case let a as [Any?]: return "[" + a.map(compact).joined(separator: ", ") + "]"
        default: return scalar(v)
        }
    }

    public static func indented(_ v: Any?, level: Int = 0) -> String {
        let pad = String(repeating: "  ", count: level + 1), close = String(repeating: "  ", count: level)
        switch v {
        case let o as Object:
            if o.pairs.isEmpty { return "{}" }
            let items = o.pairs.sorted { Array($0.0.utf16).lexicographicallyPrecedes(Array($1.0.utf16)) }
                .map { pad + JSONText.quote($0.0) + ": " + indented($0.1, level: level + 1) }
            return "{\n" + items.joined(separator: ",\n") + "\n" + close + "}"
        case let a as [Any?]:
            if a.isEmpty { return "[]" }
            return "[\n" + a.map { pad + indented($0, level: level + 1) }.joined(separator: ",\n") + "\n" + close + "]"
        default: return scalar(v)
        }
    }

    static func scalar(_ v: Any?) -> String {
        switch v {
        case nil: return "null"
        case let b as Bool: return b ? "true" : "false"
        case let i as Int: return String(i)
        case let d as Double: return pythonFloat(d)
        case let s as String: return JSONText.quote(s)
        default: return "null"
        }
    }

    /// Python's float repr: shortest round-trip digits, exponent form below 1e-4 or from 1e16 ("1e-05", "10000.0").
    static func pythonFloat(_ d: Double) -> String {
        if d == d.rounded(), abs(d) < 1e16 { return String(format: "%.1f", d) }
        var s = "\(d)"   // Swift also prints the shortest round-trip digits
        if let e = s.firstIndex(of: "e") {
            var mantissa = String(s[..<e])
            var exp = String(s[s.index(after: e)...])
            if mantissa.hasSuffix(".0") { mantissa.removeLast(2) }
            let negative = exp.hasPrefix("-")
            exp = exp.trimmingPrefix(while: { $0 == "-" || $0 == "+" })
            if exp.count < 2 { exp = "0" + exp }
            s = mantissa + "e" + (negative ? "-" : "+") + exp
        }
        return s
    }
}

extension String {
    fileprivate func trimmingPrefix(while p: (Character) -> Bool) -> String { String(drop(while: p)) }
}
