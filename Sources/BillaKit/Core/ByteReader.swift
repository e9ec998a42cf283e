/// A little-endian cursor over untrusted bytes. `read*` advances, and every read is bounds-checked so a truncated
/// or lying header becomes an error naming what was being read.
public struct ByteReader {
    public let bytes: UnsafeRawBufferPointer
    public var position: Int
    public var file: String?

    public init(_ bytes: UnsafeRawBufferPointer, position: Int = 0, file: String? = nil) {
        self.bytes = bytes
        self.position = position
        self.file = file
    }

    public var remaining: Int { bytes.count - position }
    public var isAtEnd: Bool { position >= bytes.count }

    mutating func need(_ n: Int, _ what: String) throws {
        guard n >= 0, position >= 0, n <= bytes.count - position else {
            throw BillaError.truncated(what, file: file)
        }
    }

    public mutating func readU8(_ what: String = "a byte") throws -> UInt8 {
        try need(1, what)
        defer { position += 1 }
        return bytes[position]
    }

    public mutating func readLE<T: FixedWidthInteger>(_ type: T.Type, _ what: String) throws -> T {
        try need(MemoryLayout<T>.size, what)
        defer { position += MemoryLayout<T>.size }
        return T(littleEndian: bytes.loadUnaligned(fromByteOffset: position, as: T.self))
    }

    public mutating func readBE<T: FixedWidthInteger>(_ type: T.Type, _ what: String) throws -> T {
        try need(MemoryLayout<T>.size, what)
        defer { position += MemoryLayout<T>.size }
        return T(bigEndian: bytes.loadUnaligned(fromByteOffset: position, as: T.self))
    }

    public mutating func readBytes(_ n: Int, _ what: String) throws -> UnsafeRawBufferPointer {
        try need(n, what)
        defer { position += n }
        return UnsafeRawBufferPointer(rebasing: bytes[position..<(position + n)])
    }

    public mutating func skip(_ n: Int, _ what: String) throws {
        try need(n, what)
        position += n
    }
}
