import Crypto
import Foundation
import Testing
@testable import BillaKit

/// Damaged and hostile packs: every one must fail with a BillaError that says where, never crash or hang.
@Suite("pack: corruption and hostile tables")
struct PackCorruptionTests {
    /// A pack of two chunked tensors and one empty (so raw) one, as bytes, with the entry offsets of its table.
    struct Sample {
        var bytes: [UInt8]
        var tableOffset: Int
        func entry(_ i: Int) -> Int { tableOffset + PackLayout.tableHeaderSize + i * PackLayout.tensorEntrySize }
    }

    static let a = PackTestSupport.bytes(.bf16, count: 4096, seed: 31)
    static let b = PackTestSupport.bytes(.f32, count: 2048, seed: 32)

    static func sample() throws -> Sample {
        let path = try PackTestSupport.write([("a", .bf16, [64, 64], a), ("b", .f32, [2048], b), ("c", .i32, [0, 16], [])],
                                             options: PackOptions(chunkBytes: 1024))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        let footer = bytes.count - 64
        let tableOffset = bytes[footer..<footer + 8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        return Sample(bytes: bytes, tableOffset: tableOffset)
    }

    static func save(_ bytes: [UInt8]) throws -> String {
        let path = PackTestSupport.temporaryPath("bad.billa")
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    static func put<T: FixedWidthInteger>(_ v: T, at offset: Int, in bytes: inout [UInt8]) {
        withUnsafeBytes(of: v.littleEndian) { for (i, x) in $0.enumerated() { bytes[offset + i] = x } }
    }

    static func read64(_ bytes: [UInt8], _ at: Int) -> Int { (0..<8).reduce(0) { $0 | Int(bytes[at + $1]) << (8 * $1) } }

    /// Re-seals the table after a patch so the deeper checks, not the table hash, have to catch it.
    static func reseal(_ s: inout Sample) {
        let footer = s.bytes.count - 64
        let digest = Array(SHA256.hash(data: s.bytes[s.tableOffset..<footer]))
        for i in 0..<32 { s.bytes[footer + 16 + i] = digest[i] }
    }

    static func openError(_ bytes: [UInt8]) throws -> BillaError? {
        let path = try save(bytes)
        defer { try? FileManager.default.removeItem(atPath: path) }
        do { _ = try PackReader.open(path); return nil } catch let e as BillaError { return e }
    }

    @Test("flipping one byte in a chunk names the tensor and the chunk, on read and in verify")
    func flippedChunkByte() throws {
        var s = try Self.sample()
        // Tensor "a": chunks of 1 KiB; flip a byte in the middle of chunk 3's stored bytes.
        let index = Self.read64(s.bytes, s.entry(0) + 56)
        let chunk3 = Self.read64(s.bytes, index + 3 * 32), chunk4 = Self.read64(s.bytes, index + 4 * 32)
        s.bytes[(chunk3 + chunk4) / 2] ^= 0x10
        let path = try Self.save(s.bytes)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let pack = try PackReader.open(path)
        let t = try #require(pack.tensors.first { $0.name == "a" })
        do {
            try t.withBytes { _ in }
            Issue.record("a corrupt chunk decoded without error")
        } catch let e as BillaError {
            #expect(e.code == .checksumMismatch)
            #expect(e.tensor == "a")
            #expect(e.message.contains("chunk 3 of 8"), "\(e.message)")
            #expect(e.description.contains("billa verify --checksums"))
        }
        #expect(try t.readRows(0..<16).count == 16 * 128, "chunks before the damage still read")
        let report = PackVerifier.verify(pack)
        #expect(!report.ok)
        let bad = report.items.filter { !$0.ok }
        #expect(bad.map(\.name) == ["a"] && bad.first?.badChunks == [3], "\(bad)")
    }

    @Test("a flipped byte in a raw tensor is caught by verify's SHA-256")
    func flippedRawByte() throws {
        let path2 = try PackTestSupport.write([("c", .i32, [16], [UInt8](repeating: 7, count: 64))], options: PackOptions(raw: true))
        defer { try? FileManager.default.removeItem(atPath: path2) }
        var raw = Array(try Data(contentsOf: URL(fileURLWithPath: path2)))
        raw[4096 + 3] ^= 1
        let path3 = try Self.save(raw)
        defer { try? FileManager.default.removeItem(atPath: path3) }
        let report = PackVerifier.verify(try PackReader.open(path3))
        #expect(report.items.first?.ok == false && report.items.first?.message?.contains("SHA-256") == true)
    }

    @Test("truncated packs fail cleanly at every length")
    func truncated() throws {
        let s = try Self.sample()
        for length in [0, 1, 8, 63, 64, 127, 128, s.bytes.count / 2, s.bytes.count - 64, s.bytes.count - 1] {
            let e = try Self.openError(Array(s.bytes.prefix(length)))
            #expect(e != nil, "a pack cut to \(length) bytes opened")
        }
        var appended = s.bytes
        appended += [0, 0, 0]
        #expect(try Self.openError(appended) != nil, "trailing bytes were accepted")
    }

    @Test("a damaged table is caught by its SHA-256")
    func tableHash() throws {
        var s = try Self.sample()
        s.bytes[s.tableOffset + 40] ^= 0xFF
        let e = try #require(try Self.openError(s.bytes))
        #expect(e.code == .checksumMismatch && e.message.contains("table"))
    }

    @Test("hostile tables: offsets past EOF, overlaps, overflow, bad counts, bad names", arguments: [
        "data past EOF", "overlapping tensors", "dimension overflow", "counts do not add up", "name outside strings",
        "wrong chunk count", "footer table offset past EOF", "raw misaligned", "blob past EOF",
        "unknown dtype overlapping another tensor",
    ])
    func hostile(_ kind: String) throws {
        var s = try Self.sample()
        let e0 = s.entry(0), e1 = s.entry(1)
        switch kind {
        case "data past EOF": Self.put(UInt64(1) << 40, at: e1 + 24, in: &s.bytes)
        case "overlapping tensors":
            // b's chunks start where a's start; give b a's index offset arithmetic too so only the overlap is wrong.
            let aOffset = Self.read64(s.bytes, e0 + 24), bLength = Self.read64(s.bytes, e1 + 32)
            Self.put(UInt64(aOffset), at: e1 + 24, in: &s.bytes)
            Self.put(UInt64((aOffset + bLength + 7) / 8 * 8), at: e1 + 56, in: &s.bytes)
        case "dimension overflow":
            let dimsIndex = Int(s.bytes[e0 + 8])
            let dims = s.tableOffset + 32 + 3 * 128
            Self.put(UInt64(1) << 62, at: dims + dimsIndex * 8, in: &s.bytes)
        case "counts do not add up": Self.put(UInt32(0xFFFF_FFFF), at: s.tableOffset, in: &s.bytes)
        case "name outside strings": Self.put(UInt32(0xFFFF_FF00), at: e0, in: &s.bytes)
        case "wrong chunk count": Self.put(UInt64(3), at: e0 + 48, in: &s.bytes)
        case "footer table offset past EOF":
            Self.put(UInt64(1) << 62, at: s.bytes.count - 64, in: &s.bytes)
        case "unknown dtype overlapping another tensor":
            // An unreadable tensor's extent is still checked: it may not overlap b.
            Self.put(UInt16(0x7777), at: e0 + 14, in: &s.bytes)
            let bOffset = Self.read64(s.bytes, e1 + 24), aLength = Self.read64(s.bytes, e0 + 32)
            Self.put(UInt64(bOffset), at: e0 + 24, in: &s.bytes)
            Self.put(UInt64((bOffset + aLength + 7) / 8 * 8), at: e0 + 56, in: &s.bytes)
        case "raw misaligned":
            let c = s.entry(2)
            Self.put(UInt64(Self.read64(s.bytes, c + 24) + 4), at: c + 24, in: &s.bytes)
        case "blob past EOF":
            // No blobs in the sample: claim one, which breaks the table arithmetic.
            Self.put(UInt32(1), at: s.tableOffset + 4, in: &s.bytes)
        default: Issue.record("unknown case")
        }
        Self.reseal(&s)
        let e = try #require(try Self.openError(s.bytes), "\(kind) was accepted")
        #expect(!e.message.isEmpty && e.file != nil, "\(kind): \(e)")
    }

    /// formats/pack.md 8: codes from a newer minor version fail that tensor only, when it is read, naming it and
    /// saying to upgrade; the other tensors still read bit-exact.
    @Test("an unknown dtype or transform code fails only its tensor, on read", arguments: [
        ("dtype", 0, 14, 0x7777), ("transform", 1, 17, 9), ("block dtype", 0, 14, 0x10F), ("raw dtype", 2, 14, 0x7777),
    ])
    func unknownCode(_ what: String, _ tensor: Int, _ field: Int, _ code: Int) throws {
        var s = try Self.sample()
        if field == 14 { Self.put(UInt16(code), at: s.entry(tensor) + field, in: &s.bytes) } else { s.bytes[s.entry(tensor) + field] = UInt8(code) }
        Self.reseal(&s)
        let path = try Self.save(s.bytes)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let pack = try PackReader.open(path)
        let names = ["a", "b", "c"]
        #expect(pack.tensors.map(\.name) == names, "\(what): every tensor is still listed")
        do {
            try pack.tensors[tensor].withBytes { _ in }
            Issue.record("\(what): a tensor with an unknown code was read")
        } catch let e as BillaError {
            #expect(e.code == .unsupported && e.tensor == names[tensor], "\(e)")
            #expect(e.description.contains("upgrade billa"), "\(e.description)")
        }
        #expect(throws: BillaError.self) { _ = try pack.tensors[tensor].readRows(0..<0) }
        for (i, want) in [Self.a, Self.b, []].enumerated() where i != tensor {
            #expect(try pack.tensors[i].withBytes { Array($0) } == want, "\(what): tensor \(names[i]) no longer reads")
        }
        let report = PackVerifier.verify(pack)
        #expect(report.items.filter { !$0.ok }.map(\.name) == [names[tensor]])
    }

    @Test("a tampered chunk index is caught before it is trusted")
    func tamperedIndex() throws {
        var s = try Self.sample()
        let index = Self.read64(s.bytes, s.entry(0) + 56)
        Self.put(UInt64(Self.read64(s.bytes, index + 32) + 1), at: index + 32, in: &s.bytes)   // chunk 1 offset
        let path = try Self.save(s.bytes)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let pack = try PackReader.open(path)
        #expect(throws: BillaError.self) { try pack.tensors[0].withBytes { _ in } }
        // The same lie with the index hash updated still fails: chunks must tile the data exactly.
        var t = s
        let records = Array(t.bytes[index..<index + 8 * 32])
        Self.put(records.withUnsafeBytes { XXH64.hash($0) }, at: t.entry(0) + 64, in: &t.bytes)
        Self.reseal(&t)
        let path2 = try Self.save(t.bytes)
        defer { try? FileManager.default.removeItem(atPath: path2) }
        do {
            try PackReader.open(path2).tensors[0].withBytes { _ in }
            Issue.record("a non-tiling index was accepted")
        } catch let e as BillaError {
            #expect(e.message.contains("back to back"), "\(e.message)")
        }
    }
}
