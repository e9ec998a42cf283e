import Foundation
import Testing
@testable import BillaKit

/// FastChat delta and BELLE xor against the generator's runs of those projects' procedures
/// (scripts/fixtures/make_convert_fixtures.py: fastchat_apply_delta, belle_decrypt).
@Suite("recover delta and xor")
struct RecoverSiblingTests {
    static func tempDir() throws -> String { try Fixtures.tempDir("rx") }

    @Test("delta: target = base + delta in fp16, extra vocabulary rows kept, equal to FastChat's procedure")
    func delta() throws {
        let tmp = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let plan = try DeltaRecovery.plan(base: Fixtures.path("tiny-hf-st"), delta: Fixtures.path("recover/delta/delta"), output: tmp + "/t")
        try plan.execute()
        let mine = try SafetensorsReader.open(tmp + "/t/model.safetensors")
        let ref = try SafetensorsReader.open(Fixtures.path("recover/delta/target.safetensors"))
        #expect(mine.tensors.count == ref.tensors.count)
        for t in ref.tensors {
            let m = try #require(mine.tensor(named: t.name))
            #expect(m.shape == t.shape && m.dtype == t.dtype, "\(t.name)")
            let d = try m.withBytes { a in try t.withBytes { b in firstDifference(a, b, elementSize: 2) } }
            #expect(d == nil, "\(t.name): \(d ?? "")")
        }
        #expect(mine.tensor(named: "lm_head.weight")?.shape == [520, 64])
        #expect(FileManager.default.fileExists(atPath: tmp + "/t/config.json"))
    }

    @Test("delta: a base of another size is refused before anything is written")
    func deltaMismatch() throws {
        #expect(throws: BillaError.self) {
            _ = try DeltaRecovery.plan(base: Fixtures.path("recover/delta/delta"), delta: Fixtures.path("tiny-hf-st"), output: "/nonexistent/x")
        }
    }

    static func expectedXor() throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Fixtures.path("recover/xor/expected.json")))) as? [String: Any] ?? [:]
    }

    @Test("xor: decrypts to the plain file (short key chunk tiled, key wrapped) and checks the header hash")
    func xor() throws {
        let tmp = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let e = try Self.expectedXor()
        let enc = Fixtures.path("recover/xor/" + (try #require(e["enc"] as? String)))
        let chunk = try #require(e["chunk_size"] as? Int)
        let r = try XorRecovery.decrypt(input: enc, key: Fixtures.path("recover/xor/key.bin"), outputDir: tmp, chunk: chunk)
        #expect(r.output == tmp + "/weights.bin")
        #expect(r.sha256 == e["sha256"] as? String)
        let a = try Data(contentsOf: URL(fileURLWithPath: r.output))
        let b = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("recover/xor/weights.bin")))
        let d = a.withUnsafeBytes { p in b.withUnsafeBytes { q in firstDifference(p, q, elementSize: 1) } }
        #expect(d == nil, "\(d ?? "")")
    }

    @Test("xor: the wrong key fails the hash check and leaves no output")
    func xorWrongKey() throws {
        let tmp = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let e = try Self.expectedXor()
        let enc = Fixtures.path("recover/xor/" + (try #require(e["enc"] as? String)))
        #expect { try XorRecovery.decrypt(input: enc, key: Fixtures.path("recover/xor/weights.bin"), outputDir: tmp, chunk: 4096) } throws: { e in
            (e as? BillaError)?.code == .checksumMismatch
        }
        #expect((try FileManager.default.contentsOfDirectory(atPath: tmp)).isEmpty)
    }

    @Test("weight-diff: fp32 diff + raw with the [PAD] mean row equals Alpaca's recover, and the sum matches")
    func weightDiff() throws {
        let tmp = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let job = try WeightDiffRecovery.plan(raw: Fixtures.path("tiny-hf-st"), diff: Fixtures.path("recover/weight-diff/diff"), output: tmp + "/r")
        try job.plan.execute()
        #expect(Set(job.padRows) == ["model.embed_tokens.weight", "lm_head.weight"])
        let mine = try SafetensorsReader.open(tmp + "/r/model.safetensors")
        let ref = try SafetensorsReader.open(Fixtures.path("recover/weight-diff/recovered.safetensors"))
        for t in ref.tensors {
            let m = try #require(mine.tensor(named: t.name))
            #expect(m.shape == t.shape && m.dtype == t.dtype, "\(t.name)")
            let d = try m.withBytes { a in try t.withBytes { b in firstDifference(a, b, elementSize: 4) } }
            #expect(d == nil, "\(t.name): \(d ?? "")")
        }
        let e = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Fixtures.path("recover/weight-diff/expected.json")))) as? [String: Any]
        let s64 = try #require(e?["sum_f64"] as? Double)
        #expect(abs(job.sum.value - s64) < 1e-6, "sum \(job.sum.value) vs \(s64)")
        // weight_diff.py's own number: torch fp32 sums added in fp32
        let s32 = try #require(e?["sum_f32_torch"] as? Double)
        #expect(abs(Double(job.torchStyleSum) - s32) <= Double(Float(s32).ulp), "fp32 sum \(job.torchStyleSum) vs torch \(s32)")
    }
}
