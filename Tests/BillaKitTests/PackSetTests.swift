import Crypto
import Foundation
import Testing
@testable import BillaKit

/// Shard sets (formats/pack.md 7): a model split over NAME-0000i-of-0000N.billa files reads back as the whole model.
@Suite("pack shard sets")
struct PackSetTests {
    static func tempDir() throws -> String { try Fixtures.tempDir("set") }

    /// Packs tiny-hf-st (330 KB of tensors) into files of at most 100 KB of tensors.
    static func makeSet(_ dir: String, name: String = "tiny") throws -> [String] {
        var o = PackOptions()
        o.maxShardBytes = 100_000
        return try Packer.pack(try Release.open(Fixtures.path("tiny-hf-st")), options: o, to: dir + "/\(name).billa")
    }

    @Test("a set reads back as the source model: every tensor's bytes, from any shard's path; blobs in the first only")
    func roundTrip() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let files = try Self.makeSet(dir)
        #expect(files.count >= 3)
        #expect(files.first?.hasSuffix("tiny-00001-of-0000\(files.count).billa") == true, "\(files)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/tiny.billa"))
        let packs = try PackSet.open(files[files.count - 1])
        #expect(packs.map(\.shardIndex) == Array(0..<files.count))
        #expect(Set(packs.map(\.setID)).count == 1)
        #expect(!packs[0].blobs.isEmpty && packs.dropFirst().allSatisfy { $0.blobs.isEmpty })
        for p in packs { #expect(p.tensors.reduce(0) { $0 + $1.byteCount } <= 100_000 || p.tensors.count == 1) }

        let source = try Release.open(Fixtures.path("tiny-hf-st"))
        let back = try Release.open(files[1])
        let want = source.tensors.map(\.tensor), got = back.tensors.map(\.tensor)
        #expect(got.map(\.name).sorted() == want.map(\.name).sorted())
        for t in want {
            let g = try #require(got.first { $0.name == t.name })
            let diff = try t.withBytes { a in try g.withBytes { b in firstDifference(a, b, elementSize: max(1, t.dtype.size)) } }
            #expect(diff == nil, "\(t.name): \(diff ?? "")")
        }
        // the side files come from the first shard, whichever file was named
        #expect(try back.sideFiles.bytes("tokenizer.model") == Array(try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("tiny-hf-st/tokenizer.model")))))
    }

    @Test("re-packing a set, named by any shard, records every file of the set as the source, each with its SHA-256")
    func repackRecordsEveryShard() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let files = try Self.makeSet(dir)
        let again = dir + "/again.billa"
        try Packer.pack(Release.open(files[files.count - 1]), options: PackOptions(), to: again)
        let m = try PackReader.open(again).metadata
        #expect(m.source.files.map(\.name) == files.map { ($0 as NSString).lastPathComponent })
        for (f, recorded) in zip(files, m.source.files) {
            let bytes = try #require(FileManager.default.contents(atPath: f))
            #expect(recorded.sha256 == SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined(), "\(f)")
            #expect(recorded.bytes == bytes.count)
        }
        #expect(try PackReader.open(again).blobs.map(\.name).contains("tokenizer.model"))
    }

    @Test("a missing shard and a shard of another set are errors naming the file")
    func incompleteOrMixed() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let files = try Self.makeSet(dir)
        try FileManager.default.removeItem(atPath: files[1])
        #expect { try PackSet.open(files[0]) } throws: { e in
            (e as? BillaError)?.description.contains(files[1]) == true && (e as? BillaError)?.description.contains("missing") == true
        }
        // a file of another set (other tensors, so another set_id) under the missing shard's name
        var o = PackOptions()
        o.maxShardBytes = 100_000
        let other = try Packer.pack(try Release.open(Fixtures.path("tiny-meta")), options: o, to: dir + "/other.billa")
        try FileManager.default.copyItem(atPath: other[0], toPath: files[1])
        #expect { try PackSet.open(files[0]) } throws: { e in (e as? BillaError)?.description.contains("same set") == true }
    }

    @Test("billa pack --max-shard-size writes a set; verify --checksums checks every file of it")
    func commandLine() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cli = CLITests()
        let r = try cli.billa("pack", Fixtures.path("tiny-hf-st"), "-o", dir + "/t.billa", "--max-shard-size", "100KB", "--json")
        #expect(r.status == 0, "\(r.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        let files = try #require(json?["files"] as? [String])   // every file of the set (formats/json.md)
        let count = files.count
        #expect(count >= 3)
        let first = dir + "/" + PackSet.fileName(prefix: "t", index: 0, count: count)
        #expect(json?["output"] as? String == first && files.first == first, "\(files)")
        let v = try cli.billa("verify", "--checksums", first)
        #expect(v.status == 0, "\(v.stderr)")
        #expect(v.stdout.contains("t-0000\(count)-of-0000\(count).billa"), "every shard is listed")
    }

    /// A Meta release's shards repeat every tensor name: the checksum report must say which source file an item is.
    @Test("verify --checksums names the source file of each tensor of a multi-group pack")
    func checksumItemsNameTheGroup() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Packer.pack(try Release.open(Fixtures.path("tiny-meta")), options: PackOptions(), to: dir + "/m.billa")
        let r = PackVerifier.verify(try PackReader.open(dir + "/m.billa"))
        let tensors = r.items.filter { $0.kind == "tensor" }
        #expect(!tensors.isEmpty && tensors.allSatisfy { ["consolidated.00.pth", "consolidated.01.pth"].contains($0.group ?? "") })
        #expect(Set(tensors.compactMap(\.group)).count == 2)
        #expect(tensors[0].label.hasSuffix("(\(tensors[0].group ?? ""))"))
    }
}
