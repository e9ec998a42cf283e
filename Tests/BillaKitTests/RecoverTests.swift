import Foundation
import Testing
@testable import BillaKit

/// BiLLa recovery against embedding_convert.py: the generator built recover/billa/release with that script's
/// encrypt from recover/billa/trained and ran its decrypt to get recover/billa/decrypted.
@Suite("recover billa")
struct RecoverTests {
    static let dir = Fixtures.path("recover/billa")

    static func tempDir() throws -> String { try Fixtures.tempDir("rc") }

    static func expected() throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/expected.json"))) as? [String: Any] ?? [:]
    }

    static func compare(_ a: String, _ b: String) throws -> String? {
        let x = try Data(contentsOf: URL(fileURLWithPath: a)), y = try Data(contentsOf: URL(fileURLWithPath: b))
        return x.withUnsafeBytes { p in y.withUnsafeBytes { q in firstDifference(p, q, elementSize: 2) } }
    }

    @Test("decrypt equals embedding_convert.py's output byte for byte, and the double sum matches")
    func decrypt() throws {
        let tmp = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        var o = BillaRecovery.Options(release: Self.dir + "/release", llama: Self.dir + "/llama/consolidated.00.pth")
        o.output = tmp + "/out"
        let job = try BillaRecovery.plan(o)
        try job.plan.execute()
        let mine = try TorchCheckpoint.open(tmp + "/out/pytorch_model-2-of-2.bin")
        let ref = try TorchCheckpoint.open(Self.dir + "/decrypted/pytorch_model-2-of-2.bin")
        for t in ref.tensors {
            let m = try #require(mine.tensor(named: t.name))
            #expect(m.dtype == t.dtype && m.shape == t.shape, "\(t.name)")
            let d = try m.withBytes { a in try t.withBytes { b in firstDifference(a, b, elementSize: t.dtype.size) } }
            #expect(d == nil, "\(t.name): \(d ?? "")")
        }
        let whole = try Self.compare(tmp + "/out/pytorch_model-2-of-2.bin", Self.dir + "/decrypted/pytorch_model-2-of-2.bin")
        #expect(whole == nil, "the shard is not byte-identical to the script's torch.save: \(whole ?? "")")
        let sum64 = try #require(try Self.expected()["sum_f64"] as? Double)
        #expect(abs(job.sum.value - sum64) < 1e-9, "sum \(job.sum.value) vs \(sum64)")
        #expect(job.changedRows == 512 && job.rows == 600)
        // The other files are there, unchanged; the index's total_size follows the fp32 -> fp16 embedding.
        for f in ["pytorch_model-1-of-2.bin", "config.json"] {
            #expect(try Self.compare(tmp + "/out/" + f, Self.dir + "/release/" + f) == nil, "\(f)")
        }
        let index = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: tmp + "/out/pytorch_model.bin.index.json"))) as? [String: Any]
        let released = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Self.dir + "/release/pytorch_model.bin.index.json"))) as? [String: Any]
        #expect((index?["weight_map"] as? NSDictionary) == (released?["weight_map"] as? NSDictionary))
        try Self.expectIndexTotal(tmp + "/out")
        #expect(try Release.open(tmp + "/out").vocab.embedding == 600)
    }

    @Test("encrypt reproduces the release the script made, byte for byte")
    func encrypt() throws {
        let tmp = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        var o = BillaRecovery.Options(release: Self.dir + "/trained", llama: Self.dir + "/llama/consolidated.00.pth")
        o.output = tmp + "/rel"
        o.encrypt = true
        try BillaRecovery.plan(o).plan.execute()
        let d = try Self.compare(tmp + "/rel/pytorch_model-2-of-2.bin", Self.dir + "/release/pytorch_model-2-of-2.bin")
        #expect(d == nil, "\(d ?? "")")
        // The fp32 embedding makes the release larger than the trained model's index says.
        try Self.expectIndexTotal(tmp + "/rel")
    }

    static func expectIndexTotal(_ dir: String) throws {
        let index = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/pytorch_model.bin.index.json"))) as? [String: Any]
        var tensorBytes = 0
        for f in ["pytorch_model-1-of-2.bin", "pytorch_model-2-of-2.bin"] {
            tensorBytes += try TorchCheckpoint.open(dir + "/" + f).tensors.reduce(0) { $0 + $1.byteCount }
        }
        #expect(((index?["metadata"] as? [String: Any])?["total_size"] as? Int) == tensorBytes, "\(dir): total_size")
    }

    @Test("a wrong expected sum fails and writes nothing")
    func wrongSum() throws {
        let tmp = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        var o = BillaRecovery.Options(release: Self.dir + "/release", llama: Self.dir + "/llama/consolidated.00.pth")
        o.output = tmp + "/out"
        let job = try BillaRecovery.plan(o)
        var plan = job.plan
        let sum = job.sum
        plan.verify = { if abs(sum.value - 123.0) > 1e-2 { throw BillaError(.checksumMismatch, "sum", remedy: "wrong LLaMA") } }
        #expect(throws: BillaError.self) { try plan.execute() }
        #expect((try FileManager.default.contentsOfDirectory(atPath: tmp)).isEmpty)
    }

    @Test("--in-place rewrites only the embedding shard after a backup")
    func inPlace() throws {
        let tmp = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        try FileManager.default.copyItem(atPath: Self.dir + "/release", toPath: tmp + "/rel")
        var o = BillaRecovery.Options(release: tmp + "/rel", llama: Self.dir + "/llama/consolidated.00.pth")
        o.inPlace = true
        let backups = try BillaRecovery.plan(o).plan.executeInPlace()
        #expect(backups.count == 1)
        #expect(try Self.compare(tmp + "/rel/pytorch_model-2-of-2.bin", Self.dir + "/decrypted/pytorch_model-2-of-2.bin") == nil)
        #expect(try Self.compare(backups[0], Self.dir + "/release/pytorch_model-2-of-2.bin") == nil)
        // a second in-place run would subtract LLaMA twice: refused, the shard untouched
        #expect(throws: BillaError.self) { try BillaRecovery.plan(o) }
        #expect(try Self.compare(tmp + "/rel/pytorch_model-2-of-2.bin", Self.dir + "/decrypted/pytorch_model-2-of-2.bin") == nil)
    }

    @Test("a LLaMA embedding of another width is a clear error naming the tensor")
    func widthMismatch() throws {
        // tiny-meta's shard 0 holds half the embedding's columns ([512, 32]).
        var o = BillaRecovery.Options(release: Self.dir + "/release", llama: Fixtures.path("tiny-meta/consolidated.00.pth"))
        o.output = "/nonexistent/out"
        #expect { try BillaRecovery.plan(o) } throws: { e in
            guard let e = e as? BillaError else { return false }
            return e.code == .shapeMismatch && e.tensor == "tok_embeddings.weight"
        }
    }
}
