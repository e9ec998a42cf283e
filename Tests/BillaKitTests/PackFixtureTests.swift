import Foundation
import Testing
@testable import BillaKit

/// The committed example packs (Tests/Fixtures/pack), written by `billa pack` and checked against formats/pack.md by
/// the independent Python reader scripts/fixtures/check_pack.py (verdict in check_pack.md).
@Suite("pack: fixtures, releases and unpack")
struct PackFixtureTests {
    static let sources: [(pack: String, source: String)] = [
        ("tiny-f32.billa", "dtypes/tiny-f32.safetensors"), ("tiny-f16.billa", "dtypes/tiny-f16.safetensors"),
        ("tiny-bf16.billa", "dtypes/tiny-bf16.safetensors"), ("tiny-bf16-small-chunks.billa", "dtypes/tiny-bf16.safetensors"),
        ("tiny-meta-raw.billa", "tiny-meta"), ("tiny-hf-st.billa", "tiny-hf-st"), ("edge.billa", "pack/edge-source.safetensors"),
    ]

    @Test("every fixture pack holds exactly its source's tensors, and verifies", arguments: sources.map(\.pack))
    func fixtureMatchesSource(_ name: String) throws {
        let source = try #require(Self.sources.first { $0.pack == name }?.source)
        let pack = try PackReader.open(Fixtures.path("pack/" + name))
        let packRelease = pack.release()
        let sourceRelease = try Release.open(Fixtures.path(source))
        #expect(packRelease.tensors.count == sourceRelease.tensors.count)
        for ((pf, pt), (sf, st)) in zip(packRelease.tensors, sourceRelease.tensors) {
            #expect(pt.name == st.name && pt.dtype == st.dtype && pt.shape == st.shape)
            #expect(pf.path.hasSuffix(sf.path.split(separator: "/").last.map(String.init) ?? "") || packRelease.files.count == 1)
            try pt.withBytes { a in
                try st.withBytes { b in
                    let d = firstDifference(a, b, elementSize: st.dtype.size)
                    #expect(d == nil, "\(name) \(pt.name): \(d ?? "")")
                }
            }
        }
        let report = PackVerifier.verify(pack)
        #expect(report.ok, "\(report.items.filter { !$0.ok })")
    }

    @Test("the independent Python reader's verdict covers every fixture and found no failure")
    func pythonVerdict() throws {
        let text = try String(contentsOfFile: Fixtures.path("pack/check_pack.md"), encoding: .utf8)
        #expect(!text.contains("FAIL"))
        for (pack, _) in Self.sources { #expect(text.contains("- OK \(pack):"), "check_pack.md does not cover \(pack); rerun scripts/fixtures/check_pack.py check") }
    }

    @Test("a packed Meta release opens as that release: layout, parameters, per-tensor digests")
    func releaseOfPack() throws {
        let source = try Release.open(Fixtures.path("tiny-meta"))
        let packed = try Release.open(Fixtures.path("pack/tiny-meta-raw.billa"))
        #expect(packed.layout == .meta)
        #expect(packed.parameters == source.parameters)
        #expect(packed.parameterCount == source.parameterCount)
        #expect(packed.files.count == 2, "one file per model-parallel shard")
        let a = try Checksummer.hashTensors(source, algorithm: .sha256).map { "\($0.shard) \($0.name) \($0.digest)" }
        let b = try Checksummer.hashTensors(packed, algorithm: .sha256).map { "\($0.shard.split(separator: "#").last.map(String.init) ?? "") \($0.name) \($0.digest)" }
        #expect(a == b)
        let pack = try PackReader.open(Fixtures.path("pack/tiny-meta-raw.billa"))
        #expect(pack.metadata.source.files.map(\.name).sorted() == ["consolidated.00.pth", "consolidated.01.pth", "params.json", "tokenizer.model"])
        let expected = Fixtures.manifest.files["tiny-meta/consolidated.00.pth"]?.sha256
        #expect(expected != nil && pack.metadata.source.files.first { $0.name == "consolidated.00.pth" }?.sha256 == expected)
        #expect(try pack.blob(named: "tokenizer.model").map(Array.init) == Array(try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("tiny-meta/tokenizer.model")))))
    }

    @Test("unpack --to hf rebuilds the Hugging Face directory byte for byte")
    func unpackHF() throws {
        let out = PackTestSupport.temporaryPath("hf")
        defer { try? FileManager.default.removeItem(atPath: out) }
        try Unpacker.unpack(try PackReader.open(Fixtures.path("pack/tiny-hf-st.billa")), to: .hf, output: out)
        let names = try FileManager.default.contentsOfDirectory(atPath: Fixtures.path("tiny-hf-st")).sorted()
        #expect(try FileManager.default.contentsOfDirectory(atPath: out).sorted() == names)
        for n in names {
            let a = try Data(contentsOf: URL(fileURLWithPath: out + "/" + n)), b = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("tiny-hf-st/" + n)))
            #expect(a == b, "\(n) differs after pack -> unpack")
        }
    }

    @Test("unpack --to meta rebuilds a packed Meta release, and converts a packed HF directory like its source")
    func unpackMeta() throws {
        let out = PackTestSupport.temporaryPath("meta")
        defer { try? FileManager.default.removeItem(atPath: out) }
        try Unpacker.unpack(try PackReader.open(Fixtures.path("pack/tiny-meta-raw.billa")), to: .meta, output: out)
        let source = try Release.open(Fixtures.path("tiny-meta")), rebuilt = try Release.open(out)
        #expect(rebuilt.layout == .meta && rebuilt.parameters == source.parameters)
        let digests = { (r: Release) in try Checksummer.hashTensors(r, algorithm: .sha256).map { "\($0.shard) \($0.name) \($0.digest)" } }
        #expect(try digests(rebuilt) == digests(source))
        for n in ["params.json", "tokenizer.model"] {
            #expect(FileManager.default.contents(atPath: out + "/" + n) == FileManager.default.contents(atPath: Fixtures.path("tiny-meta/" + n)), "\(n)")
        }

        let fromPack = PackTestSupport.temporaryPath("meta-from-pack"), fromDir = PackTestSupport.temporaryPath("meta-from-dir")
        defer { try? FileManager.default.removeItem(atPath: fromPack); try? FileManager.default.removeItem(atPath: fromDir) }
        try Unpacker.unpack(try PackReader.open(Fixtures.path("pack/tiny-hf-st.billa")), to: .meta, output: fromPack)
        try Converter.plan(source: Fixtures.path("tiny-hf-st"), destination: fromDir, options: ConvertOptions(target: .meta)).execute()
        #expect(try digests(Release.open(fromPack)) == digests(Release.open(fromDir)))
        #expect(FileManager.default.fileExists(atPath: fromPack + "/tokenizer.model"))
    }

    @Test("unpack --to safetensors is bit-exact, and refuses an existing output or a Meta target it cannot make")
    func unpackSafetensors() throws {
        let out = PackTestSupport.temporaryPath("out.safetensors")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let pack = try PackReader.open(Fixtures.path("pack/tiny-bf16.billa"))
        try Unpacker.unpack(pack, to: .safetensors, output: out)
        let written = try SafetensorsReader.open(MappedFile(path: out))
        let source = try SafetensorsReader.open(MappedFile(path: Fixtures.path("dtypes/tiny-bf16.safetensors")))
        #expect(written.tensors.map(\.name) == source.tensors.map(\.name))
        for (a, b) in zip(written.tensors, source.tensors) {
            try a.withBytes { x in try b.withBytes { y in #expect(firstDifference(x, y, elementSize: 2) == nil, "\(a.name)") } }
        }
        #expect(throws: BillaError.self) { try Unpacker.unpack(pack, to: .meta, output: out + ".meta") }
        let meta = try PackReader.open(Fixtures.path("pack/tiny-meta-raw.billa"))
        #expect(throws: BillaError.self) { try Unpacker.unpack(meta, to: .safetensors, output: out + ".2") }
        #expect(!FileManager.default.fileExists(atPath: out + ".2"), "a failed unpack left a file behind")
    }

    @Test("inspect, checksum --per-tensor and verify --checksums accept a pack on the command line")
    func cli() throws {
        let runner = CLITests()
        _ = try #require(CLITests.binary, "the billa binary was not built next to the tests")
        let pack = Fixtures.path("pack/tiny-hf-st.billa")
        let inspect = try runner.billa("inspect", pack, "--json")
        #expect(inspect.status == 0, "\(inspect.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as? [String: Any])
        #expect(json["format"] as? String == "hf")
        let a = try runner.billa("checksum", "--per-tensor", pack, "--quiet")
        let b = try runner.billa("checksum", "--per-tensor", Fixtures.path("tiny-hf-st"), "--quiet")
        #expect(a.status == 0 && a.stdout == b.stdout, "\(a.stderr)")
        let v = try runner.billa("verify", "--checksums", pack, "--quiet")
        #expect(v.status == 0, "\(v.stderr)")

        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("pack/tiny-bf16-small-chunks.billa"))))
        let file = try PackReader.open(Fixtures.path("pack/tiny-bf16-small-chunks.billa"))
        guard case .packed(let p) = try #require(file.tensors.first { $0.name == "model.embed_tokens.weight" }).layout else {
            Issue.record("the embedding is not chunked"); return
        }
        let record = try p.index()[2]
        bytes[record.offset + 10] ^= 0x40
        let bad = PackTestSupport.temporaryPath("bad.billa")
        defer { try? FileManager.default.removeItem(atPath: bad) }
        try Data(bytes).write(to: URL(fileURLWithPath: bad))
        let r = try runner.billa("verify", "--checksums", bad, "--quiet")
        #expect(r.status == 1)
        #expect(r.stdout.contains("CORRUPT tensor model.embed_tokens.weight") && r.stdout.contains("chunk 2 of"), "\(r.stdout)")
    }
}
