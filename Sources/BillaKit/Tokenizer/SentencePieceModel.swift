import Foundation
import SwiftProtobuf

public typealias PieceType = Sentencepiece_ModelProto.SentencePiece.TypeEnum

/// A SentencePiece `tokenizer.model` file: the ModelProto as swift-protobuf parsed it. Parsing keeps unknown fields
/// and proto2 presence, so `serialized()` of an unmodified model gives back the file's bytes exactly, as the C++ and
/// Python runtimes do (fields in number order, unknown fields last).
public struct SentencePieceModel: Sendable {
    public var proto: Sentencepiece_ModelProto
    /// Where it was read from, for error messages; nil for a model built in memory.
    public let path: String?

    public init(proto: Sentencepiece_ModelProto, path: String? = nil) {
        self.proto = proto
        self.path = path
    }

    public static func load(_ path: String) throws -> SentencePieceModel {
        let file = try MappedFile(path: path)
        let bytes = withExtendedLifetime(file) { Array(file.all) }
        return try SentencePieceModel(bytes: bytes, path: path)
    }

    public init(bytes: [UInt8], path: String? = nil) throws {
        self.path = path
        guard !bytes.isEmpty else {
            throw BillaError(.invalidHeader, file: path, "empty file, not a SentencePiece model",
                             remedy: "download tokenizer.model again")
        }
        do {
            // partial: the schema has no required fields, so the completeness walk over every piece (8% of a
            // tokenizer's load) could never fail
            proto = try Sentencepiece_ModelProto(serializedBytes: bytes, partial: true)
        } catch BinaryDecodingError.invalidUTF8 {
            let bad = RawModelScan.nonUTF8Pieces(bytes).first.map { " (piece #\($0.index), bytes \($0.hex))" } ?? ""
            throw BillaError(.invalidHeader, file: path, "a string field is not valid UTF-8\(bad); billa reads only UTF-8 pieces (sentencepiece loads such a model, but no UTF-8 text can ever encode to that piece)",
                             remedy: "the file is corrupt or was edited by a tool that wrote raw bytes; download it again or rewrite the piece as <0xNN> byte pieces")
        } catch {
            throw BillaError(.invalidHeader, file: path, "not a SentencePiece model: protobuf parse failed (\(error))",
                             remedy: "pass the tokenizer.model of the release (a tokenizer.json is a different format)")
        }
        guard !proto.pieces.isEmpty else {
            throw BillaError(.invalidHeader, file: path, "the model has no pieces; not a SentencePiece tokenizer.model",
                             remedy: "pass the tokenizer.model of the release")
        }
    }

    public var pieceCount: Int { proto.pieces.count }

    public func serialized() throws -> [UInt8] {
        do { return try proto.serializedBytes() } catch {
            throw BillaError(.invalidArgument, file: path, "cannot serialize the model: \(error)", remedy: "report this as a billa bug")
        }
    }

    /// Writes through a temporary file and a rename, so a failure leaves nothing at `path`.
    public func write(to path: String) throws {
        let bytes = try serialized()
        let w = try AtomicFileWriter(path: path)
        try w.write(bytes)
        try w.commit()
    }
}

/// A walk over the raw protobuf for what swift-protobuf refuses to parse: pieces whose bytes are not UTF-8.
enum RawModelScan {
    struct BadPiece { let index: Int; let hex: String }

    static func nonUTF8Pieces(_ bytes: [UInt8]) -> [BadPiece] {
        var out = [BadPiece]()
        var index = 0
        /// Reads a varint at `i` that must end before `limit` (the end of the enclosing field); nil if it does not.
        func varint(_ i: inout Int, _ limit: Int) -> UInt64? {
            var v: UInt64 = 0
            var shift: UInt64 = 0
            while i < limit, shift < 64 {
                let b = bytes[i]; i += 1
                v |= UInt64(b & 0x7F) << shift
                if b & 0x80 == 0 { return v }
                shift += 7
            }
            return nil
        }
        var i = 0
        while i < bytes.count {
            guard let key = varint(&i, bytes.count), key & 7 == 2, let n = varint(&i, bytes.count),
                  n <= UInt64(bytes.count - i) else { break }
            let end = i + Int(n)
            if key >> 3 == 1 {
                // a SentencePiece message: field 1 is the piece string; every read stays inside [i, end)
                var j = i
                while j < end {
                    guard let k = varint(&j, end) else { break }
                    switch k & 7 {
                    case 0:
                        guard varint(&j, end) != nil else { j = end; break }
                    case 1: j = end - j >= 8 ? j + 8 : end
                    case 5: j = end - j >= 4 ? j + 4 : end
                    case 2:
                        guard let m = varint(&j, end), m <= UInt64(end - j) else { j = end; break }
                        let fieldEnd = j + Int(m)
                        if k >> 3 == 1, String(validatingUTF8Bytes: bytes[j..<fieldEnd]) == nil {
                            out.append(BadPiece(index: index, hex: bytes[j..<fieldEnd].map { String(format: "%02x", $0) }.joined()))
                        }
                        j = fieldEnd
                    default: j = end
                    }
                }
                index += 1
            }
            i = end
        }
        return out
    }
}

extension String {
    /// nil unless the bytes are well-formed UTF-8.
    init?<C: Collection>(validatingUTF8Bytes bytes: C) where C.Element == UInt8 {
        var it = bytes.makeIterator()
        var decoder = UTF8()
        var out = ""
        loop: while true {
            switch decoder.decode(&it) {
            case .scalarValue(let s): out.unicodeScalars.append(s)
            case .emptyInput: break loop
            case .error: return nil
            }
        }
        self = out
    }
}
