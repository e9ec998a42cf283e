import Foundation

/// BELLE's encrypted releases (LianjiaTech/BELLE models/decrypt.py): `<name>.<sha256 hex>.enc` holds the SHA-256 of
/// the plain file in its first 32 bytes, then the plain bytes XOR-ed with LLaMA-7B's `consolidated.00.pth`. The
/// key is consumed in 10 MiB reads beside 10 MiB data chunks; a short key read is tiled across its data chunk, and
/// an empty read (the key's end) starts the key over. The output is checked against the header's hash before it
/// is renamed into place.
public enum XorRecovery {
    public static let chunkSize = 10 * 1024 * 1024
    public static let hashSize = 32

    public struct Result: Codable, Sendable {
        public var input: String
        public var output: String
        public var bytes: Int
        public var sha256: String
        public var expected: String
        public var nameChecksum: String?

        enum CodingKeys: String, CodingKey { case input, output, bytes, sha256, expected, nameChecksum = "name_checksum" }
    }

    /// decrypt.py names the output by dropping ".<checksum>.enc".
    public static func outputName(for input: String) -> (name: String, checksum: String?) {
        let base = (input as NSString).lastPathComponent
        guard base.hasSuffix(".enc") else { return (base + ".dec", nil) }
        let stem = String(base.dropLast(4))
        guard let dot = stem.lastIndex(of: ".") else { return (stem, nil) }
        return (String(stem[..<dot]), String(stem[stem.index(after: dot)...]))
    }

    /// Decrypts `input` with `key` into `outputDir`. `chunk` is decrypt.py's chunk size (tests use a small one).
    public static func decrypt(input: String, key: String, outputDir: String, chunk: Int = chunkSize,
                               progress: ProgressMeter? = nil) throws -> Result {
        let enc = try MappedFile(path: input)
        let k = try MappedFile(path: key)
        guard enc.size >= hashSize else {
            throw BillaError(.corruptContainer, file: input, "the file has \(enc.size) bytes, fewer than the 32-byte SHA-256 header",
                             remedy: "download the .enc file again")
        }
        guard k.size > 0 else {
            throw BillaError(.invalidArgument, file: key, "the key file is empty", remedy: "pass LLaMA-7B's original consolidated.00.pth")
        }
        let (name, checksum) = outputName(for: input)
        let outPath = outputDir + "/" + name
        guard !FileManager.default.fileExists(atPath: outPath) || OutputGuard.mayReplace(outPath) else { throw OutputGuard.existing(outPath) }
        let expected = try enc.bytes(at: 0, count: hashSize, what: "SHA-256 header")
        let expectedHex = expected.map { String(format: "%02x", $0) }.joined()
        let out = try AtomicFileWriter(path: outPath)
        var hasher = HashAlgorithm.sha256.makeHasher()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 64)
        defer { buffer.deallocate() }
        var offset = hashSize
        var keyPosition = 0
        enc.adviseSequential(offset: 0, count: enc.size)
        while offset < enc.size {
            let n = min(chunk, enc.size - offset)
            let data = try enc.bytes(at: offset, count: n, what: "encrypted data")
            if keyPosition >= k.size { keyPosition = 0 }          // an empty read: decrypt.py seeks to 0
            let keyCount = min(chunk, k.size - keyPosition)
            let keyBytes = try k.bytes(at: keyPosition, count: keyCount, what: "key")
            keyPosition += keyCount
            xor(data, keyBytes, into: buffer)
            let plain = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
            hasher.update(plain)
            try out.write(plain)
            MappedPages.drop(data)
            MappedPages.drop(keyBytes)
            progress?.add(n)
            offset += n
        }
        let digest = hasher.hex()
        guard digest == expectedHex else {
            throw BillaError(.checksumMismatch, file: input,
                             "the decrypted bytes hash to \(digest), but the file's header says \(expectedHex)",
                             remedy: "the key must be the original LLaMA-7B consolidated.00.pth (md5 6efc8dab194ab59e49cd24be5574d85e in Meta's checklist.chk); check it with billa checksum --check, and the .enc file against its published size. Nothing was written")
        }
        try out.commit()
        return Result(input: input, output: outPath, bytes: enc.size - hashSize, sha256: digest, expected: expectedHex, nameChecksum: checksum)
    }

    /// The plain XOR, with the key chunk tiled across the data chunk, eight bytes at a time where it can.
    static func xor(_ data: UnsafeRawBufferPointer, _ key: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) {
        guard let d = data.baseAddress, let k = key.baseAddress, let o = out.baseAddress else { return }
        var i = 0
        while i < data.count {
            let run = min(key.count, data.count - i)
            var j = 0
            while j + 8 <= run {
                let v = d.loadUnaligned(fromByteOffset: i + j, as: UInt64.self) ^ k.loadUnaligned(fromByteOffset: j, as: UInt64.self)
                o.storeBytes(of: v, toByteOffset: i + j, as: UInt64.self)
                j += 8
            }
            while j < run {
                o.storeBytes(of: d.load(fromByteOffset: i + j, as: UInt8.self) ^ k.load(fromByteOffset: j, as: UInt8.self),
                             toByteOffset: i + j, as: UInt8.self)
                j += 1
            }
            i += run
        }
    }
}
