/// One member of a ZIP archive: where its stored bytes are in the file.
public struct ZipEntry: Sendable {
    public let name: String
    public let dataOffset: Int
    public let size: Int
    public let crc32: UInt32
}

/// A read-only view of the stored (uncompressed) ZIP archives that `torch.save` writes, ZIP64 included.
///
/// Validation on open: the end records agree with the file length, every central-directory entry has a matching
/// local header, every member is stored (not compressed, not encrypted), and no two members' bytes overlap. That
/// refuses compression bombs and overlapping-entry bombs before a single member is read. CRCs are not checked on
/// open: that would read the whole 13 GB file; `billa checksum` reads the bytes anyway.
public struct ZipArchive: Sendable {
    public let file: MappedFile
    public let entries: [ZipEntry]
    private let index: [String: Int]

    public init(file: MappedFile) throws {
        self.file = file
        do {
            entries = try ZipArchive.readEntries(file)
        } catch let e as BillaError {
            throw e.inFile(file.path)
        }
        var index = [String: Int]()
        for (i, e) in entries.enumerated() {
            if index[e.name] != nil {
                throw BillaError(.corruptContainer, file: file.path, "the archive has two members named '\(e.name)'",
                                 remedy: "this is not an archive torch.save wrote; re-save it with torch.save")
            }
            index[e.name] = i
        }
        self.index = index
    }

    public func entry(named name: String) -> ZipEntry? { index[name].map { entries[$0] } }

    public func bytes(of entry: ZipEntry) throws -> UnsafeRawBufferPointer {
        try file.bytes(at: entry.dataOffset, count: entry.size, what: "archive member '\(entry.name)'")
    }

    private static func readEntries(_ file: MappedFile) throws -> [ZipEntry] {
        file.adviseRandom()
        defer { file.adviseNormal() }
        let all = file.all
        let eocd = try findEndOfCentralDirectory(all)
        var r = ByteReader(all, position: eocd + 4)
        let diskNumber = try r.readLE(UInt16.self, "end of central directory")
        let cdDisk = try r.readLE(UInt16.self, "end of central directory")
        _ = try r.readLE(UInt16.self, "end of central directory")
        var count = Int(try r.readLE(UInt16.self, "end of central directory"))
        var cdSize = Int(try r.readLE(UInt32.self, "end of central directory"))
        var cdOffset = Int(try r.readLE(UInt32.self, "end of central directory"))
        guard diskNumber == 0 || diskNumber == 0xFFFF, cdDisk == 0 || cdDisk == 0xFFFF else {
            throw BillaError(.unsupported, "the archive spans several disks", remedy: "join the parts into one file")
        }
        var directoryEnd = eocd
        // ZIP64: a locator sits right before the classic end record and points at the 64-bit end record.
        if eocd >= ZipLayout.zip64LocatorSize {
            var l = ByteReader(all, position: eocd - ZipLayout.zip64LocatorSize)
            if try l.readLE(UInt32.self, "zip64 locator") == ZipLayout.zip64LocatorSignature {
                _ = try l.readLE(UInt32.self, "zip64 locator")
                let z64 = try l.readLE(UInt64.self, "zip64 locator")
                guard z64 <= UInt64(eocd - ZipLayout.zip64LocatorSize) else {
                    throw BillaError(.corruptContainer, "the ZIP64 locator points past the end records",
                                     remedy: "the file is corrupt; download it again")
                }
                var z = ByteReader(all, position: Int(z64))
                guard try z.readLE(UInt32.self, "zip64 end record") == ZipLayout.zip64EndSignature else {
                    throw BillaError(.corruptContainer, "the ZIP64 locator does not point at a ZIP64 end record",
                                     remedy: "the file is corrupt; download it again")
                }
                try z.skip(8 + 2 + 2 + 4 + 4, "zip64 end record")
                _ = try z.readLE(UInt64.self, "zip64 end record")
                let c64 = try z.readLE(UInt64.self, "zip64 end record")
                let s64 = try z.readLE(UInt64.self, "zip64 end record")
                let o64 = try z.readLE(UInt64.self, "zip64 end record")
                guard c64 <= UInt64(Int.max), s64 <= UInt64(Int.max), o64 <= UInt64(Int.max) else {
                    throw BillaError(.corruptContainer, "the ZIP64 end record has impossible sizes",
                                     remedy: "the file is corrupt; download it again")
                }
                count = Int(c64); cdSize = Int(s64); cdOffset = Int(o64)
                directoryEnd = Int(z64)
            }
        }
        guard cdOffset <= directoryEnd, cdSize <= directoryEnd - cdOffset else {
            throw BillaError(.corruptContainer, "the central directory (\(cdSize) bytes at \(cdOffset)) lies outside the file",
                             remedy: "the file is truncated or corrupt; download it again")
        }
        guard count <= cdSize / ZipLayout.centralHeaderSize else {
            throw BillaError(.corruptContainer, "the archive claims \(count) members in a \(cdSize)-byte directory",
                             remedy: "the file is corrupt; download it again")
        }
        var entries = [ZipEntry]()
        entries.reserveCapacity(count)
        var c = ByteReader(UnsafeRawBufferPointer(rebasing: all[cdOffset..<(cdOffset + cdSize)]))
        for _ in 0..<count {
            entries.append(try readCentralEntry(&c, file: file, directoryStart: cdOffset))
        }
        // Members must not share bytes: overlapping members are how non-recursive zip bombs amplify.
        let sorted = entries.sorted { $0.dataOffset < $1.dataOffset }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.dataOffset + a.size > b.dataOffset - ZipLayout.localHeaderSize {
            throw BillaError(.corruptContainer, "members '\(a.name)' and '\(b.name)' overlap",
                             remedy: "this is a crafted archive (a zip bomb), not a checkpoint; do not use it")
        }
        return entries
    }

    private static func findEndOfCentralDirectory(_ all: UnsafeRawBufferPointer) throws -> Int {
        let minimum = ZipLayout.endOfCentralDirectorySize
        guard all.count >= minimum else { throw BillaError.truncated("the ZIP end record") }
        let lowest = max(0, all.count - minimum - ZipLayout.maxCommentLength)
        var p = all.count - minimum
        while p >= lowest {
            if all.loadUnaligned(fromByteOffset: p, as: UInt32.self) == ZipLayout.endOfCentralDirectorySignature.littleEndian {
                let commentLength = Int(UInt16(littleEndian: all.loadUnaligned(fromByteOffset: p + 20, as: UInt16.self)))
                if p + minimum + commentLength == all.count { return p }
            }
            p -= 1
        }
        throw BillaError(.corruptContainer, "no ZIP end-of-central-directory record: the file is truncated",
                         remedy: "download the file again and compare it with the published checksum")
    }

    private static func readCentralEntry(_ c: inout ByteReader, file: MappedFile, directoryStart: Int) throws -> ZipEntry {
        guard try c.readLE(UInt32.self, "central directory") == ZipLayout.centralHeaderSignature else {
            throw BillaError(.corruptContainer, "a central-directory entry has a bad signature",
                             remedy: "the file is corrupt; download it again")
        }
        try c.skip(4, "central directory")
        let flags = try c.readLE(UInt16.self, "central directory")
        let method = try c.readLE(UInt16.self, "central directory")
        try c.skip(4, "central directory")
        let crc = try c.readLE(UInt32.self, "central directory")
        var compressed = UInt64(try c.readLE(UInt32.self, "central directory"))
        var uncompressed = UInt64(try c.readLE(UInt32.self, "central directory"))
        let nameLength = Int(try c.readLE(UInt16.self, "central directory"))
        let extraLength = Int(try c.readLE(UInt16.self, "central directory"))
        let commentLength = Int(try c.readLE(UInt16.self, "central directory"))
        let disk = try c.readLE(UInt16.self, "central directory")
        try c.skip(6, "central directory")
        var localOffset = UInt64(try c.readLE(UInt32.self, "central directory"))
        let nameBytes = try c.readBytes(nameLength, "a member name")
        let name = String(decoding: nameBytes, as: UTF8.self)
        var extra = ByteReader(try c.readBytes(extraLength, "a member's extra field"))
        try c.skip(commentLength, "a member comment")

        while extra.remaining >= 4 {
            let id = try extra.readLE(UInt16.self, "extra field")
            let length = Int(try extra.readLE(UInt16.self, "extra field"))
            var field = ByteReader(try extra.readBytes(length, "extra field of '\(name)'"))
            guard id == ZipLayout.zip64ExtraID else { continue }
            if uncompressed == 0xFFFF_FFFF { uncompressed = try field.readLE(UInt64.self, "zip64 extra of '\(name)'") }
            if compressed == 0xFFFF_FFFF { compressed = try field.readLE(UInt64.self, "zip64 extra of '\(name)'") }
            if localOffset == 0xFFFF_FFFF { localOffset = try field.readLE(UInt64.self, "zip64 extra of '\(name)'") }
        }
        guard disk == 0 || disk == 0xFFFF else {
            throw BillaError(.unsupported, "member '\(name)' is on another disk", remedy: "join the parts into one file")
        }
        guard flags & ZipLayout.flagEncrypted == 0 else {
            throw BillaError(.unsupported, "member '\(name)' is encrypted", remedy: "torch.save never encrypts; this is not a checkpoint")
        }
        guard method == ZipLayout.methodStored, compressed == uncompressed else {
            throw BillaError(.unsupported,
                             "member '\(name)' is compressed (method \(method), \(compressed) bytes claiming \(uncompressed))",
                             remedy: "torch.save stores members uncompressed; this archive was repacked or is a zip bomb. Re-save the weights with torch.save")
        }
        guard directoryStart >= ZipLayout.localHeaderSize, localOffset <= UInt64(directoryStart - ZipLayout.localHeaderSize) else {
            throw BillaError(.corruptContainer, "member '\(name)' starts past the central directory",
                             remedy: "the file is corrupt; download it again")
        }
        // Read, not mapped: a fault here would map the large folio around the header, a MiB of tensor data each.
        let header = try file.read(at: Int(localOffset), count: ZipLayout.localHeaderSize)
        let (localName, localExtra) = try header.withUnsafeBytes { raw -> (Int, Int) in
            var l = ByteReader(raw)
            guard try l.readLE(UInt32.self, "local header of '\(name)'") == ZipLayout.localHeaderSignature else {
                throw BillaError(.corruptContainer, "member '\(name)' has no local header where the directory says",
                                 remedy: "the file is corrupt; download it again")
            }
            try l.skip(22, "local header of '\(name)'")
            return (Int(try l.readLE(UInt16.self, "local header of '\(name)'")), Int(try l.readLE(UInt16.self, "local header of '\(name)'")))
        }
        let dataOffset = Int(localOffset) + ZipLayout.localHeaderSize + localName + localExtra
        guard uncompressed <= UInt64(directoryStart), dataOffset <= directoryStart,
              Int(uncompressed) <= directoryStart - dataOffset else {
            throw BillaError(.corruptContainer, "member '\(name)' (\(uncompressed) bytes) runs into the central directory",
                             remedy: "the file is truncated or corrupt; download it again")
        }
        return ZipEntry(name: name, dataOffset: dataOffset, size: Int(uncompressed), crc32: crc)
    }
}
