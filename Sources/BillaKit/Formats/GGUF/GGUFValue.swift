/// One GGUF metadata value. Strings keep their bytes, so a file's metadata is copied unchanged even when a
/// tokenizer piece is not valid UTF-8.
public indirect enum GGUFValue: Sendable, Equatable {
    case u8(UInt8), i8(Int8), u16(UInt16), i16(Int16), u32(UInt32), i32(Int32), u64(UInt64), i64(Int64)
    case f32(Float), f64(Double), bool(Bool)
    case string([UInt8])
    case array(GGUFValueType, [GGUFValue])

    public static func text(_ s: String) -> GGUFValue { .string(Array(s.utf8)) }
    public static func strings(_ a: [String]) -> GGUFValue { .array(.string, a.map(text)) }

    public var type: GGUFValueType {
        switch self {
        case .u8: return .u8
        case .i8: return .i8
        case .u16: return .u16
        case .i16: return .i16
        case .u32: return .u32
        case .i32: return .i32
        case .u64: return .u64
        case .i64: return .i64
        case .f32: return .f32
        case .f64: return .f64
        case .bool: return .bool
        case .string: return .string
        case .array: return .array
        }
    }

    public var stringValue: String? {
        if case .string(let b) = self { return String(decoding: b, as: UTF8.self) }
        return nil
    }

    /// Integer value of any integer type (bool as 0/1), for keys whose writers disagree on the width.
    public var intValue: Int? {
        switch self {
        case .u8(let v): return Int(v)
        case .i8(let v): return Int(v)
        case .u16(let v): return Int(v)
        case .i16(let v): return Int(v)
        case .u32(let v): return Int(v)
        case .i32(let v): return Int(v)
        case .u64(let v): return Int(exactly: v)
        case .i64(let v): return Int(v)
        case .bool(let v): return v ? 1 : 0
        default: return nil
        }
    }

    public var doubleValue: Double? {
        switch self {
        case .f32(let v): return Double(v)
        case .f64(let v): return v
        default: return intValue.map(Double.init)
        }
    }

    public var arrayCount: Int? {
        if case .array(_, let a) = self { return a.count }
        return nil
    }

    /// A short human description for reports ("[string × 32000]").
    public var summary: String {
        switch self {
        case .string: return stringValue.map { $0.count > 80 ? String($0.prefix(77)) + "..." : $0 } ?? ""
        case .array(let t, let a): return "[\(t) × \(a.count)]"
        case .f32(let v): return "\(v)"
        case .f64(let v): return "\(v)"
        case .bool(let v): return "\(v)"
        default: return intValue.map(String.init) ?? ""
        }
    }
}

/// The ordered metadata of a GGUF file: order is kept because the writer reproduces a file's key order.
public struct GGUFMetadata: Sendable, Equatable {
    public var entries: [(key: String, value: GGUFValue)] = []

    public init(_ entries: [(String, GGUFValue)] = []) { self.entries = entries.map { (key: $0.0, value: $0.1) } }

    public subscript(key: String) -> GGUFValue? {
        get { entries.first { $0.key == key }?.value }
        set {
            if let i = entries.firstIndex(where: { $0.key == key }) {
                if let v = newValue { entries[i].value = v } else { entries.remove(at: i) }
            } else if let v = newValue {
                entries.append((key: key, value: v))
            }
        }
    }

    public var keys: [String] { entries.map(\.key) }

    public static func == (a: GGUFMetadata, b: GGUFMetadata) -> Bool {
        a.entries.count == b.entries.count && zip(a.entries, b.entries).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }
}
