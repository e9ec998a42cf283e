import Foundation
import Testing
@testable import BillaKit
#if canImport(Glibc)
import Glibc
#endif

/// The Hugging Face hub cache layout, built from a fixture the way huggingface_hub stores a download:
/// `models--ORG--NAME/blobs/SHA256`, `snapshots/REV/NAME -> ../../blobs/SHA256` (relative symlinks), `refs/main`.
enum HFCache {
    static let revision = "0123456789abcdef0123456789abcdef01234567"

    /// Returns (cache root, snapshot directory).
    static func make(from fixture: String, in dir: String, name: String = "tiny", refsMain: Bool = true) throws -> (root: String, snapshot: String) {
        let fm = FileManager.default
        let root = dir + "/models--billa--" + name
        let snapshot = root + "/snapshots/" + revision
        try fm.createDirectory(atPath: root + "/blobs", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: snapshot, withIntermediateDirectories: true)
        try fm.createDirectory(atPath: root + "/refs", withIntermediateDirectories: true)
        for name in try fm.contentsOfDirectory(atPath: Fixtures.path(fixture)).sorted() {
            let digest = try Checksummer.hashFile(Fixtures.path(fixture + "/" + name), algorithm: .sha256).digest
            if !fm.fileExists(atPath: root + "/blobs/" + digest) {
                try fm.copyItem(atPath: Fixtures.path(fixture + "/" + name), toPath: root + "/blobs/" + digest)
            }
            try #require(symlink("../../blobs/" + digest, snapshot + "/" + name) == 0)
        }
        if refsMain { try revision.write(toFile: root + "/refs/main", atomically: false, encoding: .utf8) }
        return (root, snapshot)
    }

    /// Every path under `dir` that is a symlink.
    static func symlinks(under dir: String) -> [String] {
        var out = [String]()
        let e = FileManager.default.enumerator(atPath: dir)
        while let name = e?.nextObject() as? String {
            var st = stat()
            if lstat(dir + "/" + name, &st) == 0, (st.st_mode & S_IFMT) == S_IFLNK { out.append(name) }
        }
        return out
    }

    /// The files of `dir` (regular files, after links) with their SHA-256, by name.
    static func digests(_ dir: String) throws -> [String: String] {
        var out = [String: String]()
        for name in try FileManager.default.contentsOfDirectory(atPath: dir) where !name.hasPrefix(".") {
            out[name] = try Checksummer.hashFile(dir + "/" + name, algorithm: .sha256).digest
        }
        return out
    }
}

@Suite("the Hugging Face cache layout")
struct HFCacheTests {
    @Test("inspect reads a snapshot of symlinks and the cache root (refs/main) as the directory itself")
    func inspect() throws {
        let dir = try Fixtures.tempDir("hfcache-inspect")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (root, snapshot) = try HFCache.make(from: "tiny-hf-st", in: dir)
        let plain = try Release.open(Fixtures.path("tiny-hf-st"))
        for path in [snapshot, root, root + "/"] {
            let r = try Release.open(path)
            #expect(r.path == snapshot)
            #expect(r.layout == .huggingFace && r.parameters == plain.parameters && r.vocab == plain.vocab)
            #expect(r.tensors.map(\.tensor.name) == plain.tensors.map(\.tensor.name))
            #expect(r.tokenizerPath == snapshot + "/tokenizer.model")
        }
        let cli = try BillaProcess.run(["inspect", root, "--json"])
        #expect(cli.status == 0, "\(cli.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(cli.stdout.utf8)) as? [String: Any])
        #expect(json["parameter_count"] as? Int == Fixtures.manifest.models["tiny-hf-st"]?.parameters)
    }

    @Test("a cache root without refs/main is refused, naming the snapshots there are")
    func noRefsMain() throws {
        let dir = try Fixtures.tempDir("hfcache-norefs")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (root, _) = try HFCache.make(from: "tiny-hf-st", in: dir, refsMain: false)
        let r = try BillaProcess.run(["inspect", root])
        #expect(r.status == 2)
        #expect(r.stderr.contains("refs/main") && r.stderr.contains(HFCache.revision), "\(r.stderr)")
    }

    @Test("convert from the snapshot and from the cache root: no symlinks in the output, the same bytes as from the plain directory")
    func convert() throws {
        let dir = try Fixtures.tempDir("hfcache-convert")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (root, snapshot) = try HFCache.make(from: "tiny-hf-st", in: dir)
        let reference = dir + "/plain"
        let made = try BillaProcess.run(["convert", Fixtures.path("tiny-hf-st"), "-o", reference, "--to", "meta", "--quiet"])
        try #require(made.status == 0, "\(made.stderr)")
        let want = try HFCache.digests(reference)
        #expect(want["tokenizer.model"] != nil)
        for (i, source) in [snapshot, root].enumerated() {
            let out = dir + "/out\(i)"
            let r = try BillaProcess.run(["convert", source, "-o", out, "--to", "meta", "--quiet"])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(HFCache.symlinks(under: out).isEmpty, "symlinks in the output: \(HFCache.symlinks(under: out))")
            #expect(try HFCache.digests(out) == want)
            // and back to HF, reshard, pack: every side file a real file with the source's bytes
            let back = dir + "/back\(i)"
            let b = try BillaProcess.run(["reshard", source, "-o", back, "--per-layer", "--quiet"])
            #expect(b.status == 0, "\(b.stderr)")
            #expect(HFCache.symlinks(under: back).isEmpty, "symlinks in the output: \(HFCache.symlinks(under: back))")
            for name in ["config.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"] {
                #expect(try Checksummer.hashFile(back + "/" + name, algorithm: .sha256).digest
                        == Checksummer.hashFile(Fixtures.path("tiny-hf-st/" + name), algorithm: .sha256).digest, "\(name)")
            }
        }
        // The output stays good after the cache is gone (nothing in it points there).
        try FileManager.default.removeItem(atPath: root)
        #expect(try HFCache.digests(dir + "/out0") == want)
        _ = try Release.open(dir + "/back1")
    }

    @Test("recover delta with base and delta in the cache (snapshots and roots): the FastChat target, no symlinks")
    func recover() throws {
        let dir = try Fixtures.tempDir("hfcache-recover")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (root, snapshot) = try HFCache.make(from: "tiny-hf-st", in: dir)
        let (deltaRoot, deltaSnapshot) = try HFCache.make(from: "recover/delta/delta", in: dir, name: "delta")
        let ref = try SafetensorsReader.open(Fixtures.path("recover/delta/target.safetensors"))
        for (i, (base, delta)) in [(snapshot, deltaSnapshot), (root, deltaRoot)].enumerated() {
            let out = dir + "/t\(i)"
            let r = try BillaProcess.run(["recover", "delta", "--base", base, "--delta", delta, "-o", out, "--quiet"])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(HFCache.symlinks(under: out).isEmpty, "symlinks in the output: \(HFCache.symlinks(under: out))")
            let mine = try SafetensorsReader.open(out + "/model.safetensors")
            #expect(mine.tensors.count == ref.tensors.count)
            for t in ref.tensors {
                let m = try #require(mine.tensor(named: t.name))
                let d = try m.withBytes { a in try t.withBytes { b in firstDifference(a, b, elementSize: 2) } }
                #expect(d == nil, "\(t.name): \(d ?? "")")
            }
            #expect(try Checksummer.hashFile(out + "/config.json", algorithm: .sha256).digest
                    == Checksummer.hashFile(Fixtures.path("recover/delta/delta/config.json"), algorithm: .sha256).digest)
        }
    }
}
