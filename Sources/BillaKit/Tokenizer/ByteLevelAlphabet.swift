/// GPT-2's byte-level alphabet (`bytes_to_unicode`): each byte is written as one printable character, bytes that
/// are printable Latin-1 as themselves and the others (controls, space, 0x7F-0xA0, 0xAD) as U+0100 onwards in
/// byte order. tokenizer.json vocabularies and merges are spelled in it ("Ġ" is the space byte).
enum ByteLevelAlphabet {
    /// byte → its character's scalar value
    static let scalars: [UInt32] = {
        var out = [UInt32](repeating: 0, count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            if (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b) {
                out[b] = UInt32(b)
            } else {
                out[b] = next
                next += 1
            }
        }
        return out
    }()

    /// scalar value → byte, for the 256 characters of the alphabet (others -1)
    static let bytes: [Int16] = {
        var out = [Int16](repeating: -1, count: 324)
        for (b, s) in scalars.enumerated() { out[Int(s)] = Int16(b) }
        return out
    }()

    /// The bytes a byte-level string spells, or nil when a character is outside the alphabet.
    static func decode(_ s: String) -> [UInt8]? {
        var out = [UInt8]()
        out.reserveCapacity(s.utf8.count)
        for u in s.unicodeScalars {
            guard Int(u.value) < bytes.count, bytes[Int(u.value)] >= 0 else { return nil }
            out.append(UInt8(bytes[Int(u.value)]))
        }
        return out
    }

    /// `decode` into a reused buffer, over the string's UTF-8 without building scalars; false when a character is
    /// outside the alphabet (the buffer then holds garbage).
    static func decode(_ s: String, into out: inout [UInt8]) -> Bool {
        var s = s
        return s.withUTF8 { decode(utf8: $0, into: &out) }
    }

    /// The same over UTF-8 bytes (valid UTF-8: the alphabet's characters take one or two bytes).
    static func decode(utf8 u: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) -> Bool {
        out.removeAll(keepingCapacity: true)
        var i = 0
        while i < u.count {
            let c = u[i]
            let v: Int
            if c < 0x80 { v = Int(c); i += 1 } else if c & 0xE0 == 0xC0, i + 1 < u.count {
                v = Int(c & 0x1F) << 6 | Int(u[i + 1] & 0x3F); i += 2
            } else { return false }
            guard v < bytes.count, bytes[v] >= 0 else { return false }
            out.append(UInt8(bytes[v]))
        }
        return true
    }

    static func encode<S: Sequence>(_ raw: S) -> String where S.Element == UInt8 {
        var s = String.UnicodeScalarView()
        for b in raw { if let u = Unicode.Scalar(scalars[Int(b)]) { s.append(u) } }
        return String(s)
    }
}
