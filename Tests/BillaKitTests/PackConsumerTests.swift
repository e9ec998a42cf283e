import Crypto
import Foundation
import Testing
@testable import BillaKit

/// Commands that take a model must take a pack of it and get what the directory would give them: the tokenizer and
/// configs travel as blobs, and re-packing records the pack itself as the source.
@Suite struct PackConsumerTests {
    static func packed(_ fixture: String) throws -> String {
        let pack = PackTestSupport.temporaryPath("\(fixture).billa")
        try Packer.pack(Release.open(Fixtures.path(fixture)), options: PackOptions(), to: pack)
        return pack
    }

    static func contents(_ path: String) -> Data? { FileManager.default.contents(atPath: path) }

    @Test func metaPackConvertsToHFWithItsTokenizer() throws {
        let pack = try Self.packed("tiny-meta")
        let out = PackTestSupport.temporaryPath("hf")
        try Converter.plan(source: pack, destination: out, options: ConvertOptions(target: .hf)).execute()
        let written = try #require(Self.contents(out + "/tokenizer.model"))
        #expect(written == Self.contents(Fixtures.path("tiny-meta/tokenizer.model")))
        #expect(FileManager.default.fileExists(atPath: out + "/tokenizer_config.json"))
    }

    @Test func hfPackConvertsToMetaWithItsTokenizer() throws {
        let pack = try Self.packed("tiny-hf-st")
        let out = PackTestSupport.temporaryPath("meta")
        try Converter.plan(source: pack, destination: out, options: ConvertOptions(target: .meta)).execute()
        #expect(Self.contents(out + "/tokenizer.model") == Self.contents(Fixtures.path("tiny-hf-st/tokenizer.model")))
    }

    /// The pack's GGUF is the directory's, byte for byte: same vocabulary, same HF configs (context length, ids).
    @Test(arguments: ["tiny-hf-st", "tiny-meta"]) func packConvertsToTheDirectorysGGUF(_ fixture: String) throws {
        let pack = try Self.packed(fixture)
        var o = GGUFExportOptions(recipe: .f16)
        o.name = "tiny"
        let fromPack = PackTestSupport.temporaryPath("p.gguf"), fromDir = PackTestSupport.temporaryPath("d.gguf")
        try GGUFExport.plan(source: pack, options: o).write(to: fromPack)
        try GGUFExport.plan(source: Fixtures.path(fixture), options: o).write(to: fromDir)
        let p = try #require(Self.contents(fromPack))
        #expect(p == Self.contents(fromDir))
    }

    @Test func packQuantizesAndKeepsItsBlobs() throws {
        let pack = try Self.packed("tiny-hf-st")
        let out = PackTestSupport.temporaryPath("q.billa")
        try Packer.packQuantized(source: pack, export: GGUFExportOptions(recipe: .q8_0), options: PackOptions(), to: out)
        let q = try PackReader.open(out)
        #expect(q.metadata.quantization != nil)
        let tok = try #require(try q.blob(named: "tokenizer.model"))
        #expect(Data(tok) == Self.contents(Fixtures.path("tiny-hf-st/tokenizer.model")))
    }

    /// tiny-meta has two shards, so its pack has two groups; re-packing must name the pack file (hashed once) as
    /// the source, keep the groups' names and carry the blobs.
    @Test func repackingAMultiGroupPackRecordsThePackOnce() throws {
        let pack = try Self.packed("tiny-meta")
        #expect(try PackReader.open(pack).metadata.groups.count == 2)
        let again = PackTestSupport.temporaryPath("again.billa")
        try Packer.pack(Release.open(pack), options: PackOptions(), to: again)
        let m = try PackReader.open(again).metadata
        let name = (pack as NSString).lastPathComponent
        #expect(m.source.files.map(\.name) == [name])
        let bytes = try #require(Self.contents(pack))
        #expect(m.source.files.first?.sha256 == SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined())
        #expect(m.groups.map(\.name) == ["consolidated.00.pth", "consolidated.01.pth"])
        #expect(try PackReader.open(again).blobs.map(\.name).contains("tokenizer.model"))
    }
}

/// `billa inspect PACK`: the pack's size counts once however many groups it has, and storage is named.
@Suite struct PackInspectTests {
    @Test func multiGroupPackSizeCountsOnceAndStorageIsNamed() throws {
        let pack = try PackConsumerTests.packed("tiny-meta")
        let size = try #require(try FileManager.default.attributesOfItem(atPath: pack)[.size] as? Int)
        let json = try CLITests().billa("inspect", pack, "--json")
        #expect(json.status == 0, "\(json.stderr)")
        let r = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(r["total_bytes"] as? Int == size)
        let files = try #require(r["files"] as? [[String: Any]])
        #expect(files.count == 2)
        #expect(files.compactMap { $0["bytes"] as? Int }.reduce(0, +) < size)
        let storage = Set(try #require(r["tensors"] as? [[String: Any]]).compactMap { $0["storage"] as? String })
        #expect(storage.contains("zstd planes") && !storage.contains("strided"))
        let text = try CLITests().billa("inspect", pack)
        #expect(text.stdout.contains("2 group(s), \(ByteFormat.human(size))"), "\(text.stdout.prefix(200))")
        #expect(text.stdout.contains("(zstd planes)") && !text.stdout.contains("(strided)"))

        let raw = PackTestSupport.temporaryPath("raw.billa")
        try Packer.pack(Release.open(Fixtures.path("tiny-meta")), options: PackOptions(raw: true), to: raw)
        let rawText = try CLITests().billa("inspect", raw)
        #expect(rawText.stdout.contains("(raw)") && !rawText.stdout.contains("(zstd planes)"))
    }
}

@Suite struct PackUnpackConvertTests {
    static func files(_ dir: String) throws -> [String: Data] {
        var out = [String: Data]()
        for name in try FileManager.default.contentsOfDirectory(atPath: dir) { out[name] = FileManager.default.contents(atPath: dir + "/" + name) }
        return out
    }

    /// A Meta pack unpacks to HF as the Meta directory converts: the same files, byte for byte.
    @Test func metaPackUnpacksToHFAsTheReleaseConverts() throws {
        let pack = try PackConsumerTests.packed("tiny-meta")
        let unpacked = PackTestSupport.temporaryPath("unpacked"), converted = PackTestSupport.temporaryPath("converted")
        try Unpacker.unpack(PackReader.open(pack), to: .hf, output: unpacked)
        try Converter.plan(source: Fixtures.path("tiny-meta"), destination: converted, options: ConvertOptions(target: .hf)).execute()
        let got = try Self.files(unpacked), want = try Self.files(converted)
        #expect(got.keys.sorted() == want.keys.sorted())
        #expect(got.keys.contains("tokenizer.model") && got.keys.contains("config.json"))
        for (name, data) in want { #expect(got[name] == data, "\(name) differs") }
    }
}

/// `billa pack --level`: the help and the validation name the same range, and its ends work.
@Suite struct PackLevelOptionTests {
    @Test func helpAndValidationAgreeOn1To22() throws {
        let cli = CLITests()
        let help = try cli.billa("pack", "--help")
        #expect(help.stdout.contains("1-22"), "\(help.stdout)")
        #expect(!help.stdout.contains("1-19"))
        for (level, ok) in [("22", true), ("1", true), ("23", false), ("0", false)] {
            let out = PackTestSupport.temporaryPath("l\(level).billa")
            let r = try cli.billa("pack", Fixtures.path("tiny-hf-st"), "-o", out, "--level", level, "--quiet")
            #expect((r.status == 0) == ok, "--level \(level): \(r.stderr)")
            if !ok { #expect(r.stderr.contains("1-22")) }
        }
    }
}
