import Foundation
import Testing
@testable import BillaKit

/// Resharding never changes a tensor: every output tensor is compared with torch's bytes in the fixtures.
@Suite("reshard")
struct ReshardTests {
    static func tempDir() throws -> String { try Fixtures.tempDir("rs") }

    static func expectSame(_ mine: [Tensor], _ reference: [Tensor], _ what: String) throws {
        #expect(Set(mine.map(\.name)) == Set(reference.map(\.name)), "\(what): tensor names differ")
        for r in reference {
            let m = try #require(mine.first { $0.name == r.name }, "\(what) lacks \(r.name)")
            #expect(m.shape == r.shape && m.dtype == r.dtype, "\(what) \(r.name)")
            let d = try m.withBytes { a in try r.withBytes { b in firstDifference(a, b, elementSize: r.dtype.size) } }
            #expect(d == nil, "\(what) \(r.name): \(d ?? "")")
        }
    }

    @Test("Meta 2 -> 1 shard merges to the unsplit weights; 1 -> 2 splits back to the original shards")
    func meta() throws {
        let tmp = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        try Resharder.plan(source: Fixtures.path("tiny-meta"), destination: tmp + "/one", mode: .shards(1)).execute()
        let one = try TorchCheckpoint.open(tmp + "/one/consolidated.00.pth")
        let full = try SafetensorsReader.open(Fixtures.path("tiny-meta-full.safetensors"))
        try Self.expectSame(one.tensors, full.tensors, "1 shard")
        #expect(FileManager.default.fileExists(atPath: tmp + "/one/params.json"))
        #expect(FileManager.default.fileExists(atPath: tmp + "/one/tokenizer.model"))
        try Resharder.plan(source: tmp + "/one", destination: tmp + "/two", mode: .shards(2)).execute()
        for k in 0..<2 {
            let f = String(format: "consolidated.%02d.pth", k)
            try Self.expectSame(try TorchCheckpoint.open(tmp + "/two/" + f).tensors,
                                try TorchCheckpoint.open(Fixtures.path("tiny-meta/" + f)).tensors, f)
        }
    }

    @Test("HF per layer: one file per decoder layer plus the rest, with an index transformers can follow")
    func perLayer() throws {
        let tmp = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        try Resharder.plan(source: Fixtures.path("tiny-hf-bin"), destination: tmp + "/pl", mode: .perLayer).execute()
        let names = try FileManager.default.contentsOfDirectory(atPath: tmp + "/pl")
        #expect(Set(names.filter { $0.hasSuffix(".bin") }) ==
                ["pytorch_model-1-of-3.bin", "pytorch_model-2-of-3.bin", "pytorch_model-3-of-3.bin"])
        let mine = try Release.open(tmp + "/pl")
        let source = try Release.open(Fixtures.path("tiny-hf-bin"))
        try Self.expectSame(mine.tensors.map(\.tensor), source.tensors.map(\.tensor), "per-layer")
        let last = try TorchCheckpoint.open(tmp + "/pl/pytorch_model-3-of-3.bin")
        #expect(Set(last.tensors.map(\.name)) == ["model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"])
    }

    @Test("HF by size: one safetensors file when the limit allows it")
    func bySize() throws {
        let tmp = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        try Resharder.plan(source: Fixtures.path("tiny-hf-st"), destination: tmp + "/one", mode: .maxShardSize(10_000_000)).execute()
        let mine = try Release.open(tmp + "/one")
        #expect(mine.files.count == 1)
        try Self.expectSame(mine.tensors.map(\.tensor), try Release.open(Fixtures.path("tiny-hf-st")).tensors.map(\.tensor), "by size")
    }
}
