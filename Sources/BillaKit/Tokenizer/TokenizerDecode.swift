/// Decoding as `SentencePieceProcessor::Decode`: control pieces vanish, unk becomes the trainer's unk_surface
/// (" ⁇ " by default), runs of byte pieces are joined and read as UTF-8 (each malformed byte becomes U+FFFD), U+2581
/// becomes a space, and the dummy-prefix space of the first piece is dropped.
extension Tokenizer {
    public func decode(_ ids: [Int]) throws -> String {
        for id in ids where id < 0 || id >= pieceCount {
            throw BillaError(.invalidArgument, "id \(id) is out of range; the tokenizer has \(pieceCount) pieces",
                             remedy: "pass ids produced by this tokenizer")
        }
        let spec = model.proto.normalizerSpec
        let ts = model.proto.trainerSpec
        let unkSurface = ts.hasUnkSurface ? Array(ts.unkSurface.utf8) : Array(" \u{2047} ".utf8)
        let space = Normalizer.spaceSymbol
        var text = [UInt8]()
        var isBOSWS = true
        var bosWSSeen = false
        var bytes = [UInt8]()

        func flushBytes() {
            var i = 0
            while i < bytes.count {
                if let n = UTF8Check.charLength(bytes, at: i) {
                    text.append(contentsOf: bytes[i..<(i + n)])
                    i += n
                } else {
                    text.append(contentsOf: [0xEF, 0xBF, 0xBD])
                    i += 1
                }
            }
            bytes.removeAll()
        }

        for raw in ids {
            // Decode(ids) maps ids to pieces and back (PieceToId), as the reference does.
            let id = self.id(of: piece(raw))
            if types[id] == .byte, let v = Tokenizer.byteValue(piece(id)) {
                bytes.append(UInt8(v))
                continue
            }
            flushBytes()
            if bosWSSeen || !text.isEmpty { isBOSWS = false }
            var p = pieceBytes[id][...]
            var decoded: [UInt8]
            bosWSSeen = false
            switch types[id] {
            case .control:
                decoded = []
            case .unknown:
                decoded = unkSurface
            default:
                if isBOSWS, spec.addDummyPrefix || spec.removeExtraWhitespaces {
                    if p.starts(with: space) {
                        p = p.dropFirst(3)
                        bosWSSeen = !spec.removeExtraWhitespaces
                    }
                }
                decoded = []
                var i = p.startIndex
                while i < p.endIndex {
                    if p[i] == 0xE2, i + 2 < p.endIndex, p[i + 1] == 0x96, p[i + 2] == 0x81 {
                        decoded.append(0x20)
                        i += 3
                    } else {
                        decoded.append(p[i])
                        i += 1
                    }
                }
            }
            text.append(contentsOf: decoded)
        }
        flushBytes()
        return String(decoding: text, as: UTF8.self)
    }
}
