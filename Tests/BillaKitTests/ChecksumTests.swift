import Foundation
import Testing
@testable import BillaKit

@Suite("checksum")
struct ChecksumTests {
    @Test("file digests equal hashlib's, for both algorithms")
    func fileDigests() throws {
        let names = Fixtures.manifest.files.keys.sorted()
        let sha = Checksummer.hashFiles(names.map(Fixtures.path), algorithm: .sha256)
        let md5 = Checksummer.hashFiles(names.map(Fixtures.path), algorithm: .md5)
        for (i, name) in names.enumerated() {
            let e = try #require(Fixtures.manifest.files[name])
            #expect(try sha[i].get().digest == e.sha256, "\(name)")
            #expect(try md5[i].get().digest == e.md5, "\(name)")
            #expect(try sha[i].get().bytes == e.size, "\(name)")
        }
    }

    @Test("Meta's checklist.chk verifies, and a changed or missing file is named")
    func checklist() throws {
        let ok = try Manifest.check(Fixtures.path("tiny-meta/checklist.chk"))
        #expect(ok.count == 4 && ok.allSatisfy { $0.status == .ok })

        let dir = try TemporaryDirectory()
        for name in try FileManager.default.contentsOfDirectory(atPath: Fixtures.path("tiny-meta")) where name != "tokenizer.model" {
            try FileManager.default.copyItem(atPath: Fixtures.path("tiny-meta/\(name)"), toPath: dir.path + "/" + name)
        }
        var params = try Data(contentsOf: URL(fileURLWithPath: dir.path + "/params.json"))
        params[params.count - 2] ^= 1
        try params.write(to: URL(fileURLWithPath: dir.path + "/params.json"))
        let results = try Manifest.check(dir.path + "/checklist.chk")
        let status = Dictionary(uniqueKeysWithValues: results.map { ($0.name, $0.status) })
        #expect(status == ["consolidated.00.pth": .ok, "consolidated.01.pth": .ok, "params.json": .failed, "tokenizer.model": .missing])
    }

    @Test("sha256sum-style manifests, with binary markers, are read")
    func sha256sumFormat() throws {
        let dir = try TemporaryDirectory()
        let e = try #require(Fixtures.manifest.files["views/views.pth"])
        let text = "\(e.sha256) *\(Fixtures.path("views/views.pth"))\n\(String(repeating: "0", count: 64))  \(Fixtures.path("views/views.safetensors"))\n"
        try text.write(toFile: dir.path + "/SHA256SUMS", atomically: true, encoding: .utf8)
        let results = try Manifest.check(dir.path + "/SHA256SUMS")
        #expect(results.map(\.status) == [.ok, .failed])
        #expect(results.allSatisfy { $0.algorithm == .sha256 })
    }

    @Test("a malformed manifest line is an error naming the line")
    func malformed() throws {
        let dir = try TemporaryDirectory()
        try "not a digest line\n".write(toFile: dir.path + "/bad.chk", atomically: true, encoding: .utf8)
        let e = try #require(throws: BillaError.self) { try Manifest.check(dir.path + "/bad.chk") }
        #expect(e.message.contains("line 1"))
    }

    @Test("per-tensor digests are the same for .pth and safetensors, and equal torch's", arguments: ["f16", "bf16", "f32"])
    func perTensorAcrossContainers(_ dtype: String) throws {
        let pth = try Checksummer.hashTensors(Release.open(Fixtures.path("dtypes/tiny-\(dtype).pth")), algorithm: .sha256)
        let st = try Checksummer.hashTensors(Release.open(Fixtures.path("dtypes/tiny-\(dtype).safetensors")), algorithm: .sha256)
        let a = Dictionary(uniqueKeysWithValues: pth.map { ($0.name, $0.digest) })
        let b = Dictionary(uniqueKeysWithValues: st.map { ($0.name, $0.digest) })
        #expect(a == b)
        let expected = try #require(Fixtures.manifest.files["dtypes/tiny-\(dtype).pth"]?.tensors)
        #expect(a == expected.mapValues(\.sha256))
    }
}

@Suite("libzstd")
struct ZstdTests {
    @Test("decodes a frame written by the zstd command-line tool")
    func decodesReferenceFrame() throws {
        let frame = try MappedFile(path: Fixtures.path("zstd/plain.txt.zst"))
        let plain = try MappedFile(path: Fixtures.path("zstd/plain.txt"))
        #expect(Zstd.frameContentSize(frame.all) == plain.size)
        let decoded = try Zstd.decompress(frame.all, size: plain.size)
        #expect(decoded.withUnsafeBytes { firstDifference($0, plain.all, elementSize: 1) } == nil)
        #expect(Zstd.versionString.hasPrefix("1."))
    }

    @Test("round-trips and rejects a corrupt frame")
    func roundTrip() throws {
        let input = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 * 7 / 3) }
        let frame = try input.withUnsafeBytes { try Zstd.compress($0, level: 3) }
        #expect(frame.count < input.count)
        #expect(try frame.withUnsafeBytes { try Zstd.decompress($0, size: input.count) } == input)
        // A plain frame has no content checksum (the pack adds its own), so break the magic and truncate instead.
        var broken = frame
        broken[0] ^= 0xFF
        #expect(throws: BillaError.self) { _ = try broken.withUnsafeBytes { try Zstd.decompress($0, size: input.count) } }
        let cut = Array(frame.prefix(frame.count / 2))
        #expect(throws: BillaError.self) { _ = try cut.withUnsafeBytes { try Zstd.decompress($0, size: input.count) } }
    }
}
