import Foundation

/// Unicode NFC, tokenizer.json's `{"type": "NFC"}` normalizer (Qwen2's). Text made only of characters that NFC
/// never changes and that never combine with a neighbour (ASCII, Latin-1, the CJK ideograph blocks, CJK symbols
/// without the combining tone marks, fullwidth ASCII) is copied as it is; anything else goes through Foundation's
/// canonical composition.
enum NFC {
    static func append(_ b: UnsafeBufferPointer<UInt8>, to out: inout [UInt8]) {
        if isStable(b) { out.append(contentsOf: b); return }
        let s = String(decoding: b, as: UTF8.self).precomposedStringWithCanonicalMapping
        out.append(contentsOf: s.utf8)
    }

    static func isStable(_ b: UnsafeBufferPointer<UInt8>) -> Bool {
        var i = 0
        while i < b.count {
            let c0 = UInt32(b[i])
            if c0 < 0x80 { i += 1; continue }
            var v: UInt32, l: Int
            if c0 < 0xE0 { v = (c0 & 0x1F) << 6 | UInt32(b[i + 1] & 0x3F); l = 2 }
            else if c0 < 0xF0 { v = (c0 & 0x0F) << 12 | UInt32(b[i + 1] & 0x3F) << 6 | UInt32(b[i + 2] & 0x3F); l = 3 }
            else { return false }
            switch v {
            case 0x80..<0x300, 0x3000...0x3029, 0x3030...0x303F, 0x3400...0x4DBF, 0x4E00...0x9FFF, 0xFF01...0xFF5E: i += l
            default: return false
            }
        }
        return true
    }
}
