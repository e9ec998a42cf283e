import Crypto
import Foundation

/// An opened, validated pack: header, table, metadata and the tensors as `Tensor`s. Raw tensors are zero-copy slices
/// of the map; chunked ones decode on demand. Every rule of formats/pack.md 2-3 is checked here, once.
public struct PackFile: Sendable {
    public let file: MappedFile
    public let alignment: Int
    public let shardIndex: Int
    public let shardCount: Int
    /// Equal in every file of one shard set (formats/pack.md 7).
    public let setID: [UInt8]
    public let version: (major: UInt16, minor: UInt16)
    public let metadata: PackMetadata
    public let blobs: [PackBlob]
    public let tableSHA256: [UInt8]
    let entries: [PackTensorEntry]
    public let tensors: [Tensor]

    public var path: String { file.path }

    /// The tensor's stored SHA-256 (of its dense bytes).
    public func sha256(of name: String) -> String? { entries.first { $0.name == name }.map { Hex.string($0.sha256) } }

    public func blob(named name: String) throws -> UnsafeRawBufferPointer? {
        guard let b = blobs.first(where: { $0.name == name }) else { return nil }
        return try file.bytes(at: b.offset, count: b.length, what: "blob '\(name)'")
    }
}

public enum PackReader {
    public static func open(_ path: String) throws -> PackFile { try open(MappedFile(path: path)) }

    static func bad(_ file: MappedFile, _ message: String, tensor: String? = nil) -> BillaError {
        BillaError(.corruptContainer, file: file.path, tensor: tensor, message,
                   remedy: "the pack is truncated or damaged; copy it again or re-create it with `billa pack` from the source")
    }

    public static func open(_ file: MappedFile) throws -> PackFile {
        let size = file.size
        let minimum = PackLayout.headerSize + PackLayout.footerSize
        guard size >= minimum else {
            throw bad(file, "the file has \(size) bytes, fewer than a pack's \(minimum)-byte header and footer")
        }
        var h = ByteReader(try file.bytes(at: 0, count: PackLayout.headerSize, what: "pack header"), file: file.path)
        guard Array(try h.readBytes(8, "magic")) == PackLayout.headerMagic else {
            throw BillaError(.unknownFormat, file: file.path, "not a billa pack (no BILLAPAK magic)", remedy: "pass a file written by `billa pack`")
        }
        let major = try h.readLE(UInt16.self, "major"), minor = try h.readLE(UInt16.self, "minor")
        guard major == PackLayout.major else {
            throw BillaError(.unsupported, file: file.path, "pack format version \(major).\(minor); this billa reads version \(PackLayout.major).x",
                             remedy: "use a billa release that supports pack version \(major)")
        }
        let alignment = Int(try h.readLE(UInt32.self, "alignment"))
        guard alignment >= 64, alignment <= 1 << 20, alignment & (alignment - 1) == 0 else {
            throw bad(file, "alignment \(alignment) is not a power of two between 64 and 1 MiB")
        }
        let shardIndex = Int(try h.readLE(UInt32.self, "shard index")), shardCount = Int(try h.readLE(UInt32.self, "shard count"))
        guard shardCount >= 1, shardIndex < shardCount else { throw bad(file, "shard \(shardIndex) of \(shardCount) is impossible") }
        let setID = Array(try h.readBytes(16, "set id"))

        var f = ByteReader(try file.bytes(at: size - PackLayout.footerSize, count: PackLayout.footerSize, what: "pack footer"), file: file.path)
        let tableOffset64 = try f.readLE(UInt64.self, "table offset"), tableLength64 = try f.readLE(UInt64.self, "table length")
        let tableHash = Array(try f.readBytes(32, "table hash"))
        let fMajor = try f.readLE(UInt16.self, "major"), fMinor = try f.readLE(UInt16.self, "minor")
        try f.skip(4, "reserved")
        guard Array(try f.readBytes(8, "footer magic")) == PackLayout.footerMagic else {
            throw bad(file, "no BILLAEND footer at the end: the file is truncated or has bytes appended")
        }
        guard fMajor == major, fMinor == minor else {
            throw bad(file, "header says version \(major).\(minor), footer \(fMajor).\(fMinor)")
        }
        let dataEnd = size - PackLayout.footerSize
        guard tableOffset64 >= UInt64(PackLayout.headerSize), tableLength64 <= UInt64(dataEnd),
              tableOffset64 == UInt64(dataEnd) - tableLength64 else {
            throw bad(file, "the footer puts the table at \(tableOffset64) (\(tableLength64) bytes); it must end at the footer, \(dataEnd)")
        }
        let tableOffset = Int(tableOffset64)
        let table = try file.bytes(at: tableOffset, count: Int(tableLength64), what: "pack table")
        let digest = Array(SHA256.hash(data: table))
        guard digest == tableHash else {
            throw BillaError(.checksumMismatch, file: file.path, "the table's SHA-256 is \(Hex.string(digest)), the footer says \(Hex.string(tableHash))",
                             remedy: "the pack is damaged; copy it again or re-create it with `billa pack`")
        }
        return try parseTable(table, file: file, tableOffset: tableOffset, alignment: alignment,
                              shard: (shardIndex, shardCount, setID), version: (major, minor), tableHash: tableHash)
    }

    static func parseTable(_ table: UnsafeRawBufferPointer, file: MappedFile, tableOffset: Int, alignment: Int,
                           shard: (Int, Int, [UInt8]), version: (UInt16, UInt16), tableHash: [UInt8]) throws -> PackFile {
        var r = ByteReader(table, file: file.path)
        let tensorCount = Int(try r.readLE(UInt32.self, "tensor count"))
        let blobCount = Int(try r.readLE(UInt32.self, "blob count"))
        let dimsCount = Int(try r.readLE(UInt32.self, "dims count"))
        let stringsLength = Int(try r.readLE(UInt32.self, "strings length"))
        let metadataLength = Int(try r.readLE(UInt32.self, "metadata length"))
        try r.skip(12, "reserved")
        // All five are < 2^32, so this sum cannot overflow a 64-bit Int.
        let expected = PackLayout.tableHeaderSize + tensorCount * PackLayout.tensorEntrySize + blobCount * PackLayout.blobEntrySize
            + dimsCount * 8 + stringsLength + metadataLength
        guard expected == table.count else {
            throw bad(file, "the table's counts add up to \(expected) bytes, but the table has \(table.count)")
        }
        let entriesStart = PackLayout.tableHeaderSize
        let blobsStart = entriesStart + tensorCount * PackLayout.tensorEntrySize
        let dimsStart = blobsStart + blobCount * PackLayout.blobEntrySize
        let stringsStart = dimsStart + dimsCount * 8
        let metadataStart = stringsStart + stringsLength
        let strings = UnsafeRawBufferPointer(rebasing: table[stringsStart..<metadataStart])
        let metadataBytes = UnsafeRawBufferPointer(rebasing: table[metadataStart..<table.count])

        let metadata: PackMetadata
        do { metadata = try JSONDecoder().decode(PackMetadata.self, from: Data(metadataBytes)) } catch {
            throw bad(file, "the metadata is not the JSON object formats/pack.md 6 describes: \(error)")
        }

        func name(_ offset: Int, _ length: Int, _ what: String) throws -> String {
            guard length >= 1, length <= 65535, offset <= strings.count, length <= strings.count - offset else {
                throw bad(file, "\(what) name at \(offset) (\(length) bytes) is outside the string table (\(strings.count) bytes)")
            }
            let bytes = UnsafeRawBufferPointer(rebasing: strings[offset..<(offset + length)])
            guard let s = String(validating: bytes, as: UTF8.self), !bytes.contains(0) else {
                throw bad(file, "\(what) name at \(offset) is not valid UTF-8")
            }
            return s
        }

        var extents = [(start: Int, end: Int, what: String)]()
        func inData(_ start: UInt64, _ end: UInt64, _ what: String) throws -> (Int, Int) {
            guard start >= UInt64(PackLayout.headerSize), start <= end, end <= UInt64(tableOffset) else {
                throw bad(file, "\(what) spans bytes \(start)..<\(end), outside the data area 64..<\(tableOffset)")
            }
            return (Int(start), Int(end))
        }

        var entries = [PackTensorEntry]()
        var unreadable = [Int: BillaError]()
        var names = Set<String>()
        for i in 0..<tensorCount {
            var e = ByteReader(UnsafeRawBufferPointer(rebasing: table[(entriesStart + i * PackLayout.tensorEntrySize)...]), file: file.path)
            let nameOffset = Int(try e.readLE(UInt32.self, "name offset")), nameLength = Int(try e.readLE(UInt32.self, "name length"))
            let tensorName = try name(nameOffset, nameLength, "tensor \(i)")
            func fail(_ m: String) -> BillaError { bad(file, m, tensor: tensorName) }
            let dimsIndex = Int(try e.readLE(UInt32.self, "dims index")), ndim = Int(try e.readLE(UInt16.self, "ndim"))
            let dtypeCode = try e.readLE(UInt16.self, "dtype")
            let storage = try e.readU8("storage"), transformCode = try e.readU8("transform")
            try e.skip(2, "reserved")
            let group = Int(try e.readLE(UInt32.self, "group"))
            guard names.insert("\(group)/\(tensorName)").inserted else { throw fail("two tensors of group \(group) have this name") }
            let dataOffset = try e.readLE(UInt64.self, "data offset"), dataLength = try e.readLE(UInt64.self, "data length")
            let chunkBytes = try e.readLE(UInt64.self, "chunk bytes"), chunkCount = try e.readLE(UInt64.self, "chunk count")
            let indexOffset = try e.readLE(UInt64.self, "index offset"), indexHash = try e.readLE(UInt64.self, "index hash")
            let sha = Array(try e.readBytes(32, "sha256"))

            guard ndim <= PackLayout.maxNDim, dimsIndex <= dimsCount, ndim <= dimsCount - dimsIndex else {
                throw fail("\(ndim) dimensions at \(dimsIndex) are outside the \(dimsCount) dims of the table")
            }
            var shape = [Int]()
            for d in 0..<ndim {
                let v = table.loadUnaligned(fromByteOffset: dimsStart + (dimsIndex + d) * 8, as: UInt64.self)
                guard let dim = Int(exactly: UInt64(littleEndian: v)) else { throw fail("dimension \(d) (\(v)) is too large") }
                shape.append(dim)
            }
            guard group < metadata.groups.count else { throw fail("group \(group) but the metadata lists \(metadata.groups.count) groups") }
            // Section 8: a dtype or transform code this billa does not know (a newer minor version) makes only this
            // tensor unreadable; its extent is still checked so the rest of the file can be trusted.
            if let why = unknownCodes(dtypeCode, transformCode, storage: storage, version: version) {
                let entry = try unreadableEntry(tensorName, shape: shape, group: group, storage: storage, dataOffset: dataOffset,
                                                dataLength: dataLength, chunkBytes: chunkBytes, chunkCount: chunkCount,
                                                indexOffset: indexOffset, sha256: sha, alignment: alignment, fail: fail, inData: inData)
                extents.append((entry.extent.start, entry.extent.end, "tensor '\(tensorName)'"))
                entries.append(entry)
                unreadable[entries.count - 1] = BillaError(.unsupported, file: file.path, tensor: tensorName, why,
                                                           remedy: "upgrade billa to a release that reads pack \(version.0).\(version.1); the other tensors read normally")
                continue
            }
            let dtype = PackLayout.dtypesByCode[dtypeCode]!
            guard let transform = PlaneTransform(rawValue: transformCode) else {
                throw storage == 0 ? fail("a raw tensor must have transform, chunk and index fields 0")
                    : BillaError(.unsupported, file: file.path, tensor: tensorName, "unknown storage code \(storage): written by a newer billa",
                                 remedy: "use a newer billa to read this pack")
            }
            guard let byteCount = Shape.byteCount(shape, dtype) else {
                throw fail("shape \(Shape.describe(shape)) overflows\(dtype.isQuantized ? " or its rows are not whole \(dtype.rawValue) blocks" : "")")
            }
            var entry = PackTensorEntry(name: tensorName, shape: shape, dtype: dtype, chunked: storage == 1, transform: transform, group: group,
                                        dataOffset: 0, dataLength: 0, chunkBytes: 0, chunkCount: 0, indexOffset: 0, indexXXH64: indexHash, sha256: sha)
            switch storage {
            case 0:
                guard transform == .none, chunkBytes == 0, chunkCount == 0, indexOffset == 0, indexHash == 0 else {
                    throw fail("a raw tensor must have transform, chunk and index fields 0")
                }
                guard dataLength == UInt64(byteCount) else { throw fail("stores \(dataLength) bytes, but \(dtype.rawValue) \(Shape.describe(shape)) needs \(byteCount)") }
                guard dataOffset % UInt64(alignment) == 0 else { throw fail("raw data at \(dataOffset) is not aligned to \(alignment)") }
                let (s, end) = try inData(dataOffset, dataOffset.addingReportingOverflow(dataLength).overflow ? UInt64.max : dataOffset + dataLength, "tensor '\(tensorName)'")
                entry.dataOffset = s
                entry.dataLength = end - s
            case 1:
                guard transform.accepts(dtype) else { throw fail("transform \(transform.name) does not apply to \(dtype.rawValue)") }
                guard byteCount > 0 else { throw fail("an empty tensor must be stored raw") }
                guard chunkBytes > 0, chunkBytes <= UInt64(PackLayout.maxChunkBytes), chunkBytes % UInt64(dtype.size) == 0 else {
                    throw fail("chunk size \(chunkBytes) must be 1...\(PackLayout.maxChunkBytes) bytes and a multiple of \(dtype.size)")
                }
                let cb = Int(chunkBytes)
                let needed = (byteCount - 1) / cb + 1
                guard chunkCount == UInt64(needed) else { throw fail("\(chunkCount) chunks, but \(byteCount) bytes in chunks of \(cb) need \(needed)") }
                guard dataLength <= UInt64(tableOffset), dataOffset <= UInt64(tableOffset) else {
                    throw fail("data at \(dataOffset) (\(dataLength) bytes) is outside the data area 64..<\(tableOffset)")
                }
                guard let idx = alignUp(Int(dataOffset) + Int(dataLength), 8), UInt64(idx) == indexOffset else {
                    throw fail("the chunk index must start at the 8-aligned end of the data, not \(indexOffset)")
                }
                let indexEnd = UInt64(idx) + UInt64(needed) * UInt64(PackLayout.chunkRecordSize)   // needed < 2^59: fits
                _ = try inData(dataOffset, indexEnd, "tensor '\(tensorName)' with its chunk index")
                entry.dataOffset = Int(dataOffset); entry.dataLength = Int(dataLength)
                entry.chunkBytes = cb; entry.chunkCount = needed; entry.indexOffset = idx
            default:
                throw BillaError(.unsupported, file: file.path, tensor: tensorName, "unknown storage code \(storage): written by a newer billa",
                                 remedy: "use a newer billa to read this pack")
            }
            let x = entry.extent
            extents.append((x.start, x.end, "tensor '\(tensorName)'"))
            entries.append(entry)
        }

        var blobs = [PackBlob]()
        for i in 0..<blobCount {
            var b = ByteReader(UnsafeRawBufferPointer(rebasing: table[(blobsStart + i * PackLayout.blobEntrySize)...]), file: file.path)
            let nameOffset = Int(try b.readLE(UInt32.self, "blob name offset")), nameLength = Int(try b.readLE(UInt32.self, "blob name length"))
            let blobName = try name(nameOffset, nameLength, "blob \(i)")
            guard !blobName.contains("/"), !blobName.hasPrefix("."), !blobs.contains(where: { $0.name == blobName }) else {
                throw bad(file, "blob name '\(blobName)' is not a unique plain file name")
            }
            let offset = try b.readLE(UInt64.self, "blob offset"), length = try b.readLE(UInt64.self, "blob length")
            let sha = Array(try b.readBytes(32, "blob sha256"))
            let end = offset.addingReportingOverflow(length)
            let (s, e) = try inData(offset, end.overflow ? UInt64.max : end.partialValue, "blob '\(blobName)'")
            extents.append((s, e, "blob '\(blobName)'"))
            blobs.append(PackBlob(name: blobName, offset: s, length: e - s, sha256: sha))
        }

        let sorted = extents.filter { $0.end > $0.start }.sorted { $0.start < $1.start }
        for (a, b) in zip(sorted, sorted.dropFirst()) where b.start < a.end {
            throw bad(file, "\(a.what) (\(a.start)..<\(a.end)) and \(b.what) (\(b.start)..<\(b.end)) overlap")
        }

        let tensors = entries.enumerated().map { i, e in
            Tensor(name: e.name, dtype: e.dtype, shape: e.shape, file: file,
                   layout: unreadable[i].map { .unreadable($0) } ?? (e.chunked ? .packed(PackedTensor(file: file, entry: e)) : .dense(byteOffset: e.dataOffset)))
        }
        return PackFile(file: file, alignment: alignment, shardIndex: shard.0, shardCount: shard.1, setID: shard.2, version: version,
                        metadata: metadata, blobs: blobs, tableSHA256: tableHash, entries: entries, tensors: tensors)
    }
}
