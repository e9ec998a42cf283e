import CZstd

/// A thin wrapper over the system libzstd (ZSTD_compress / ZSTD_decompress). The pack format builds its chunked
/// compression on this; for now it is also what proves the library is linked.
public enum Zstd {
    public static var versionString: String { String(cString: ZSTD_versionString()) }

    public static func compress(_ input: UnsafeRawBufferPointer, level: Int32) throws -> [UInt8] {
        let bound = ZSTD_compressBound(input.count)
        var out = [UInt8](repeating: 0, count: bound)
        let n = out.withUnsafeMutableBytes { dst in
            ZSTD_compress(dst.baseAddress, bound, input.baseAddress, input.count, level)
        }
        try check(n, "ZSTD_compress")
        out.removeLast(bound - n)
        return out
    }

    /// Decompresses one frame whose content size is known in advance (the pack's chunk index records it).
    public static func decompress(_ frame: UnsafeRawBufferPointer, size: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: size)
        let n = out.withUnsafeMutableBytes { dst in
            ZSTD_decompress(dst.baseAddress, size, frame.baseAddress, frame.count)
        }
        try check(n, "ZSTD_decompress")
        guard n == size else {
            throw BillaError(.corruptContainer, "a zstd frame decoded to \(n) bytes, expected \(size)",
                             remedy: "the file is corrupt; download it again")
        }
        return out
    }

    /// The content size a frame declares, or nil when it does not say.
    public static func frameContentSize(_ frame: UnsafeRawBufferPointer) -> Int? {
        let n = ZSTD_getFrameContentSize(frame.baseAddress, frame.count)
        // ZSTD_CONTENTSIZE_UNKNOWN and _ERROR are the two largest unsigned values.
        return n >= UInt64.max - 1 ? nil : Int(exactly: n)
    }

    private static func check(_ code: Int, _ call: String) throws {
        if ZSTD_isError(code) != 0 {
            throw BillaError(.corruptContainer, "\(call) failed: \(String(cString: ZSTD_getErrorName(code)))",
                             remedy: "the compressed data is corrupt; download the file again")
        }
    }
}
