import Crypto

/// The digests billa computes. sha256 is the default; md5 is what Meta's checklist.chk uses.
public enum HashAlgorithm: String, Sendable, CaseIterable, Codable {
    case sha256
    case md5

    /// Hex digest length, which is how a manifest line tells its algorithm.
    public var hexLength: Int { self == .sha256 ? 64 : 32 }

    public static func forHexLength(_ n: Int) -> HashAlgorithm? { allCases.first { $0.hexLength == n } }

    func makeHasher() -> AnyHasher {
        switch self {
        case .sha256: return AnyHasher(SHA256())
        case .md5: return AnyHasher(Insecure.MD5())
        }
    }
}

/// A running digest of either algorithm, so the streaming code is written once.
enum AnyHasher {
    case sha256(SHA256)
    case md5(Insecure.MD5)

    init(_ h: SHA256) { self = .sha256(h) }
    init(_ h: Insecure.MD5) { self = .md5(h) }

    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        switch self {
        case .sha256(var h): h.update(bufferPointer: bytes); self = .sha256(h)
        case .md5(var h): h.update(bufferPointer: bytes); self = .md5(h)
        }
    }

    func hex() -> String {
        let digest: [UInt8]
        switch self {
        case .sha256(let h): digest = Array(h.finalize())
        case .md5(let h): digest = Array(h.finalize())
        }
        let table = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(digest.count * 2)
        for b in digest { out.append(table[Int(b >> 4)]); out.append(table[Int(b & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }
}
