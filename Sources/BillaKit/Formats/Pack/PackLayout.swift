/// The fixed facts of the pack format (formats/pack.md): magic numbers, sizes and the code tables. Every other pack
/// file refers to these instead of repeating a number.
public enum PackLayout {
    public static let headerMagic = Array("BILLAPAK".utf8)
    public static let footerMagic = Array("BILLAEND".utf8)
    public static let major: UInt16 = 1
    public static let minor: UInt16 = 0
    public static let headerSize = 64
    public static let footerSize = 64
    public static let tableHeaderSize = 32
    public static let tensorEntrySize = 128
    public static let blobEntrySize = 64
    public static let chunkRecordSize = 32
    public static let maxPlanes = 4
    public static let maxNDim = 16
    public static let maxChunkBytes = 256 << 20
    public static let defaultChunkBytes = 1 << 20
    public static let defaultAlignment = 4096
    public static let fileExtension = "billa"

    /// Section 4: plain dtype codes. Block (quantized) dtypes are 0x100 + ggml type and slot in here when `DType`
    /// gains them.
    public static let dtypeCodes: [DType: UInt16] = {
        var codes: [DType: UInt16] = [
            .f64: 1, .f32: 2, .f16: 3, .bf16: 4, .f8e4m3: 5, .f8e5m2: 6, .i64: 7, .i32: 8, .i16: 9, .i8: 10,
            .u64: 11, .u32: 12, .u16: 13, .u8: 14, .bool: 15,
        ]
        for d in DType.allCases { if let q = d.quantType { codes[d] = 0x100 + UInt16(q.ggmlType) } }
        return codes
    }()
    static let dtypesByCode: [UInt16: DType] = Dictionary(uniqueKeysWithValues: dtypeCodes.map { ($0.value, $0.key) })

    /// Section 4: the llama.cpp block types the format reserves codes for (name, block elements, block bytes).
    public static let blockDTypes: [UInt16: (name: String, elements: Int, bytes: Int)] = [
        0x102: ("Q4_0", 32, 18), 0x103: ("Q4_1", 32, 20), 0x106: ("Q5_0", 32, 22), 0x107: ("Q5_1", 32, 24),
        0x108: ("Q8_0", 32, 34), 0x10A: ("Q2_K", 256, 84), 0x10B: ("Q3_K", 256, 110), 0x10C: ("Q4_K", 256, 144),
        0x10D: ("Q5_K", 256, 176), 0x10E: ("Q6_K", 256, 210), 0x10F: ("Q8_K", 256, 292),
        0x114: ("IQ4_NL", 32, 18), 0x117: ("IQ4_XS", 256, 136),
        0x110: ("IQ2_XXS", 256, 66), 0x111: ("IQ2_XS", 256, 74), 0x112: ("IQ3_XXS", 256, 98), 0x115: ("IQ3_S", 256, 110),
        0x116: ("IQ2_S", 256, 82), 0x113: ("IQ1_S", 256, 50), 0x11D: ("IQ1_M", 256, 56), 0x122: ("TQ1_0", 256, 54),
        0x123: ("TQ2_0", 256, 66),
    ]
}

/// Section 5.2: the lossless byte-plane splits.
public enum PlaneTransform: UInt8, Sendable, Codable, CaseIterable {
    case none = 0
    case bytes16 = 1
    case bf16Exponent = 2
    case f32Exponent = 3

    public var name: String {
        switch self {
        case .none: return "none"
        case .bytes16: return "bytes16"
        case .bf16Exponent: return "bf16-exponent"
        case .f32Exponent: return "f32-exponent"
        }
    }

    public var planeCount: Int {
        switch self {
        case .none: return 1
        case .bytes16, .bf16Exponent: return 2
        case .f32Exponent: return 4
        }
    }

    public func accepts(_ dtype: DType) -> Bool {
        switch self {
        case .none: return true
        case .bytes16: return [.f16, .bf16, .i16, .u16].contains(dtype)
        case .bf16Exponent: return dtype == .bf16
        case .f32Exponent: return dtype == .f32
        }
    }

    /// The writer's choice (not part of the format): split floats so the exponent compresses on its own.
    public static func preferred(for dtype: DType) -> PlaneTransform {
        switch dtype {
        case .bf16: return .bf16Exponent
        case .f32: return .f32Exponent
        case .f16: return .bytes16
        default: return .none
        }
    }

    /// Decoded size of plane `p` for a chunk of `bytes` bytes of `elementSize`-byte elements.
    func planeSize(chunkBytes: Int, elementSize: Int) -> Int {
        self == .none ? chunkBytes : chunkBytes / elementSize
    }
}

/// Section 3.2, decoded. Fields keep their on-disk meaning; `PackReader` has validated all of them.
struct PackTensorEntry: Sendable, Equatable {
    var name: String
    var shape: [Int]
    var dtype: DType
    var chunked: Bool
    var transform: PlaneTransform
    var group: Int
    var dataOffset: Int
    var dataLength: Int
    var chunkBytes: Int
    var chunkCount: Int
    var indexOffset: Int
    var indexXXH64: UInt64
    var sha256: [UInt8]

    /// Validated on open, so never nil here.
    var byteCount: Int { Shape.byteCount(shape, dtype) ?? 0 }
    /// [start, end) of everything the tensor owns in the data area.
    var extent: (start: Int, end: Int) {
        chunked ? (dataOffset, indexOffset + chunkCount * PackLayout.chunkRecordSize) : (dataOffset, dataOffset + dataLength)
    }
}

/// Section 3.3, decoded.
public struct PackBlob: Sendable, Equatable {
    public var name: String
    public var offset: Int
    public var length: Int
    public var sha256: [UInt8]
}

/// One chunk index record (5.1).
struct ChunkRecord: Sendable, Equatable {
    var offset: Int
    var xxh64: UInt64
    var planeLengths: [Int]
    var storedLength: Int { planeLengths.reduce(0, +) }
}

/// Little-endian appends for the writer, mirroring `ByteReader`.
extension Array where Element == UInt8 {
    mutating func appendLE<T: FixedWidthInteger>(_ v: T) {
        Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) }
    }

    mutating func appendZeros(_ n: Int) { append(contentsOf: repeatElement(0, count: n)) }
}

enum Hex {
    static func string(_ bytes: [UInt8]) -> String {
        let table = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes { out.append(table[Int(b >> 4)]); out.append(table[Int(b & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }
}

func alignUp(_ x: Int, _ a: Int) -> Int? {
    let (s, o) = x.addingReportingOverflow(a - 1)
    return o ? nil : s / a * a
}

/// Raw memory handed to the workers of `DispatchQueue.concurrentPerform`: each worker touches a disjoint part, which
/// the compiler cannot see, hence unchecked.
struct SharedBytes: @unchecked Sendable {
    let base: UnsafeRawBufferPointer
}

struct SharedMutableBytes: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
}
