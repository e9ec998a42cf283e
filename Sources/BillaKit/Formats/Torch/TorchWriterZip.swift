/// The stored-ZIP stream `torch.save` writes (PyTorch's PyTorchStreamWriter over miniz, in ZIP64 mode): every
/// member's data starts 64-byte aligned thanks to an "FB" extra field padded with 'Z', local headers leave CRC and
/// sizes zero and a data descriptor follows each non-empty member, and the archive always ends with ZIP64 end
/// records. Matching those choices byte for byte is what makes billa's files identical to torch's.
struct TorchZipStream {
    enum Fact {
        static let alignment = 64
        static let localSignature: UInt32 = 0x0403_4b50
        static let descriptorSignature: UInt32 = 0x0807_4b50
        static let centralSignature: UInt32 = 0x0201_4b50
        static let zip64EndSignature: UInt32 = 0x0606_4b50
        static let zip64LocatorSignature: UInt32 = 0x0706_4b50
        static let endSignature: UInt32 = 0x0605_4b50
        /// UTF-8 names; bit 3 (sizes in a data descriptor) only for non-empty members, as miniz does.
        static let flagsEmpty: UInt16 = 0x0800
        static let flagsWithDescriptor: UInt16 = 0x0808
        static let zip64ExtraID: UInt16 = 0x0001
        static let limit32 = 0xFFFF_FFFF
        /// Version made by / needed in the ZIP64 end record (miniz's constants).
        static let zip64MadeBy: UInt16 = 0x031E
        static let zip64Needed: UInt16 = 0x002D
    }

    private let out: AtomicFileWriter
    private let prefix: String
    private var central: [UInt8] = []
    private var count = 0
    /// torch's serialization id inputs: member names in write order and the CRC of every data descriptor.
    private(set) var names: [String] = []
    private(set) var combinedDescriptorCRC: UInt64 = 0

    init(out: AtomicFileWriter, archiveName: String) {
        self.out = out
        self.prefix = archiveName + "/"
    }

    mutating func add(_ name: String, bytes: [UInt8]) throws {
        try add(name, size: bytes.count) { emit in try bytes.withUnsafeBytes { try emit($0) } }
    }

    /// Adds one stored member of `size` bytes; `produce` hands the bytes over in as many pieces as it likes.
    mutating func add(_ name: String, size: Int,
                      produce: ((UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws {
        let nameBytes = Array((prefix + name).utf8)
        let offset = out.bytesWritten
        let bigSize = size >= Fact.limit32
        let farOffset = offset >= Fact.limit32
        let zip64 = bigSize || farOffset

        var local = ByteSink()
        var zip64Extra = ByteSink()
        if zip64 {
            zip64Extra.u16(Fact.zip64ExtraID)
            zip64Extra.u16(UInt16((bigSize ? 16 : 0) + (farOffset ? 8 : 0)))
            if bigSize { zip64Extra.u64(UInt64(size)); zip64Extra.u64(0) }   // compressed size unknown yet: 0
            if farOffset { zip64Extra.u64(UInt64(offset)) }
        }
        let start = offset + 30 + nameBytes.count + zip64Extra.bytes.count + 4
        let pad = (Fact.alignment - start % Fact.alignment) % Fact.alignment
        let flags = size > 0 ? Fact.flagsWithDescriptor : Fact.flagsEmpty
        local.u32(Fact.localSignature)
        local.u16(0); local.u16(flags); local.u16(0); local.u16(0); local.u16(0)   // version, flags, stored, time, date
        local.u32(0); local.u32(0); local.u32(0)                                  // crc and sizes: in the descriptor
        local.u16(UInt16(nameBytes.count))
        local.u16(UInt16(zip64Extra.bytes.count + 4 + pad))
        local.bytes += nameBytes
        local.bytes += zip64Extra.bytes
        local.bytes += [UInt8(ascii: "F"), UInt8(ascii: "B"), UInt8(pad & 0xFF), UInt8(pad >> 8)]
        local.bytes += [UInt8](repeating: UInt8(ascii: "Z"), count: pad)
        try out.write(local.bytes)

        var crc = CRC32()
        var written = 0
        try produce { piece in
            try crc.update(piece, whileRunning: { try out.write(piece) })
            written += piece.count
        }
        guard written == size else {
            throw BillaError(.shapeMismatch, file: out.finalPath, tensor: name,
                             "its source produced \(written) bytes where \(size) were planned",
                             remedy: "this is a bug in billa; please report it with the command you ran")
        }
        let sum = crc.value
        if size > 0 {
            var d = ByteSink()
            d.u32(Fact.descriptorSignature)
            d.u32(sum)
            if zip64 { d.u64(UInt64(size)); d.u64(UInt64(size)) } else { d.u32(UInt32(size)); d.u32(UInt32(size)) }
            try out.write(d.bytes)
            combinedDescriptorCRC = TorchHash.combine(combinedDescriptorCRC, UInt64(sum))
        }

        var c = ByteSink()
        var centralExtra = ByteSink()
        if zip64 {
            centralExtra.u16(Fact.zip64ExtraID)
            centralExtra.u16(UInt16((bigSize ? 16 : 0) + (farOffset ? 8 : 0)))
            if bigSize { centralExtra.u64(UInt64(size)); centralExtra.u64(UInt64(size)) }
            if farOffset { centralExtra.u64(UInt64(offset)) }
        }
        c.u32(Fact.centralSignature)
        c.u16(0); c.u16(0); c.u16(flags); c.u16(0); c.u16(0); c.u16(0)   // made by, needed, flags, method, time, date
        c.u32(sum)
        c.u32(UInt32(min(size, Fact.limit32))); c.u32(UInt32(min(size, Fact.limit32)))
        c.u16(UInt16(nameBytes.count)); c.u16(UInt16(centralExtra.bytes.count)); c.u16(0)
        c.u16(0); c.u16(0); c.u32(0)                                     // disk, internal and external attributes
        c.u32(UInt32(min(offset, Fact.limit32)))
        c.bytes += nameBytes
        c.bytes += centralExtra.bytes
        central += c.bytes
        count += 1
        names.append(name)
    }

    /// Writes the central directory and the ZIP64 and classic end records.
    func finish() throws {
        let cdOffset = out.bytesWritten
        try out.write(central)
        let endOffset = out.bytesWritten
        var e = ByteSink()
        e.u32(Fact.zip64EndSignature); e.u64(44)
        e.u16(Fact.zip64MadeBy); e.u16(Fact.zip64Needed); e.u32(0); e.u32(0)
        e.u64(UInt64(count)); e.u64(UInt64(count)); e.u64(UInt64(central.count)); e.u64(UInt64(cdOffset))
        e.u32(Fact.zip64LocatorSignature); e.u32(0); e.u64(UInt64(endOffset)); e.u32(1)
        e.u32(Fact.endSignature); e.u16(0); e.u16(0)
        e.u16(UInt16(min(count, 0xFFFF))); e.u16(UInt16(min(count, 0xFFFF)))
        e.u32(UInt32(min(central.count, Fact.limit32))); e.u32(UInt32(min(cdOffset, Fact.limit32))); e.u16(0)
        try out.write(e.bytes)
    }
}

/// Little-endian byte building for headers.
struct ByteSink {
    var bytes: [UInt8] = []
    mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
}
