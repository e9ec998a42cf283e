import Foundation
import Testing
@testable import BillaKit

/// Meta <-> HF against transformers: Tests/Fixtures/tiny-hf-st is transformers' save_pretrained of tiny-meta
/// converted with convert_llama_weights_to_hf.py's permute (make_fixtures.py), and convert/hf-bin is the same
/// model as transformers 4 saved .bin shards (make_convert_fixtures.py).
@Suite("convert")
struct ConvertTests {
    static func tempDir() throws -> String { try Fixtures.tempDir("cv") }

    static func sameBytes(_ a: String, _ b: String) throws -> String? {
        let x = try Data(contentsOf: URL(fileURLWithPath: a)), y = try Data(contentsOf: URL(fileURLWithPath: b))
        return x.withUnsafeBytes { p in y.withUnsafeBytes { q in firstDifference(p, q, elementSize: 1) } }
    }

    @Test("Meta -> HF safetensors is byte-identical to transformers' shards")
    func metaToHFSafetensors() throws {
        let tmp = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        var o = ConvertOptions(target: .hf)
        o.maxShardSize = 200_000
        let plan = try Converter.plan(source: Fixtures.path("tiny-meta"), destination: tmp + "/hf", options: o)
        try plan.execute()
        for f in ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"] {
            let d = try Self.sameBytes(tmp + "/hf/" + f, Fixtures.path("tiny-hf-st/" + f))
            #expect(d == nil, "\(f): \(d ?? "")")
        }
        let mine = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: tmp + "/hf/model.safetensors.index.json"))) as? NSDictionary
        let theirs = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Fixtures.path("tiny-hf-st/model.safetensors.index.json")))) as? NSDictionary
        #expect(mine == theirs)
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: tmp + "/hf/config.json"))) as? [String: Any] ?? [:]
        var expected = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Fixtures.path("tiny-hf-st/config.json")))) as? [String: Any] ?? [:]
        expected["transformers_version"] = nil
        config["transformers_version"] = nil
        #expect(NSDictionary(dictionary: config) == NSDictionary(dictionary: expected))
        for f in ["tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"] {
            #expect(try Self.sameBytes(tmp + "/hf/" + f, Fixtures.path("tiny-hf-st/" + f)) == nil, "\(f)")
        }
    }

    @Test("Meta -> HF .bin is byte-identical to torch.save of transformers' state dict shards")
    func metaToHFBin() throws {
        let tmp = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        var o = ConvertOptions(target: .hf)
        o.format = .pth
        o.maxShardSize = 200_000
        try Converter.plan(source: Fixtures.path("tiny-meta"), destination: tmp + "/hf", options: o).execute()
        for f in ["pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"] {
            let d = try Self.sameBytes(tmp + "/hf/" + f, Fixtures.path("convert/hf-bin/" + f))
            #expect(d == nil, "\(f): \(d ?? "")")
        }
        #expect(try Self.sameBytes(tmp + "/hf/pytorch_model.bin.index.json", Fixtures.path("convert/hf-bin/pytorch_model.bin.index.json")) == nil)
    }

    @Test("HF -> Meta restores the original consolidated shards bit for bit")
    func hfToMeta() throws {
        let tmp = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        var o = ConvertOptions(target: .meta)
        o.shards = 2
        try Converter.plan(source: Fixtures.path("tiny-hf-st"), destination: tmp + "/meta", options: o).execute()
        for k in 0..<2 {
            let f = String(format: "consolidated.%02d.pth", k)
            let mine = try TorchCheckpoint.open(tmp + "/meta/" + f)
            let orig = try TorchCheckpoint.open(Fixtures.path("tiny-meta/" + f))
            #expect(mine.tensors.map(\.name) == orig.tensors.map(\.name))
            for t in orig.tensors {
                let m = try #require(mine.tensor(named: t.name), "\(f) lacks \(t.name)")
                #expect(m.shape == t.shape && m.dtype == t.dtype, "\(f) \(t.name)")
                let d = try m.withBytes { a in try t.withBytes { b in firstDifference(a, b, elementSize: t.dtype.size) } }
                #expect(d == nil, "\(f) \(t.name): \(d ?? "")")
            }
            // Not compared byte for byte: make_fixtures.py saved tiny-meta's shards as plain dicts (EMPTY_DICT),
            // billa writes an OrderedDict as torch.save(model.state_dict()) does.
        }
    }

    @Test("Meta -> HF -> Meta round trip is bit-exact, also through bf16 -> f16 casts of f16 data")
    func roundTrip() throws {
        let tmp = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        try Converter.plan(source: Fixtures.path("tiny-meta"), destination: tmp + "/hf", options: ConvertOptions(target: .hf)).execute()
        var o = ConvertOptions(target: .meta)
        o.shards = 2
        try Converter.plan(source: tmp + "/hf", destination: tmp + "/meta", options: o).execute()
        for k in 0..<2 {
            let f = String(format: "consolidated.%02d.pth", k)
            let mine = try TorchCheckpoint.open(tmp + "/meta/" + f), orig = try TorchCheckpoint.open(Fixtures.path("tiny-meta/" + f))
            for t in orig.tensors where t.name != "rope.freqs" {
                let m = try #require(mine.tensor(named: t.name))
                let d = try m.withBytes { a in try t.withBytes { b in firstDifference(a, b, elementSize: 2) } }
                #expect(d == nil, "\(f) \(t.name): \(d ?? "")")
            }
        }
    }

    @Test("--dtype casts round to nearest even like torch (bf16 and f32 references from make_fixtures.py)")
    func casts() throws {
        let tmp = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        for (d, ref) in [(DType.bf16, "tiny-bf16"), (.f32, "tiny-f32")] {
            var o = ConvertOptions(target: .hf)
            o.dtype = d
            try Converter.plan(source: Fixtures.path("tiny-meta"), destination: tmp + "/\(ref)", options: o).execute()
            let mine = try SafetensorsReader.open(tmp + "/\(ref)/model.safetensors")
            let theirs = try SafetensorsReader.open(Fixtures.path("dtypes/\(ref).safetensors"))
            for t in theirs.tensors {
                let m = try #require(mine.tensor(named: t.name))
                #expect(m.dtype == d)
                let diff = try m.withBytes { a in try t.withBytes { b in firstDifference(a, b, elementSize: d.size) } }
                #expect(diff == nil, "\(ref) \(t.name): \(diff ?? "")")
            }
        }
    }

    @Test("a failing conversion leaves no output; an existing output is refused")
    func atomic() throws {
        let tmp = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        var o = ConvertOptions(target: .meta)
        o.shards = 3   // 64 columns do not split in 3
        #expect(throws: BillaError.self) {
            try Converter.plan(source: Fixtures.path("tiny-hf-st"), destination: tmp + "/m", options: o).execute()
        }
        #expect(!FileManager.default.fileExists(atPath: tmp + "/m"))
        #expect((try FileManager.default.contentsOfDirectory(atPath: tmp)).isEmpty)
        #expect(throws: BillaError.self) {
            try Converter.plan(source: Fixtures.path("tiny-meta"), destination: tmp, options: ConvertOptions(target: .hf)).execute()
        }
    }
}

@Suite("dtype casts")
struct CastTests {
    @Test("the integer f32 -> f16 rounding equals the IEEE conversion on every f16 boundary and random values")
    func f16Rounding() {
        var values: [Float] = [0, -0, 1, -1, 65504, 65519.99, 65520, -65520, 1e-8, 5.96e-8, 2.98e-8, 2.9802322e-8, 6.1e-5,
                               .infinity, -.infinity, .greatestFiniteMagnitude, .leastNonzeroMagnitude]
        // Every f16 value and the midpoints between neighbours (ties) and just beside them.
        for bits in 0..<0x7C00 {
            let a = Float(Float16(bitPattern: UInt16(bits))), b = Float(Float16(bitPattern: UInt16(bits + 1)))
            let mid = (a + b) / 2
            values += [a, mid, mid.nextUp, mid.nextDown, -mid]
        }
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<100_000 { values.append(Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &rng))) }
        var mismatches = 0
        for v in values where !v.isNaN && DTypeCast.f32ToF16(v) != Float16(v).bitPattern { mismatches += 1 }
        #expect(mismatches == 0)
        #expect(DTypeCast.f32ToF16(.nan) & 0x7E00 == 0x7E00)
    }
}

/// Conversions refuse weights that are not the model their config describes, before writing anything.
@Suite struct ConvertRefusalTests {
    static func copyDir(_ from: String, _ name: String) throws -> String {
        let dir = NSTemporaryDirectory() + "billa-refuse-\(getpid())-\(name)"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.copyItem(atPath: from, toPath: dir)
        return dir
    }

    static func refuses(_ source: String, _ o: ConvertOptions, _ words: String) {
        let out = source + "-out"
        do {
            _ = try Converter.plan(source: source, destination: out, options: o)
            Issue.record("\(source) was accepted")
        } catch let e as BillaError {
            #expect(e.description.contains(words), "\(e)")
        } catch { Issue.record("\(error)") }
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    @Test func wrongHeadCount() throws {
        let dir = try Self.copyDir(Fixtures.path("tiny-meta"), "heads")
        try Data(#"{"dim": 64, "multiple_of": 32, "n_heads": 8, "n_kv_heads": 2, "n_layers": 2, "norm_eps": 1e-05, "vocab_size": -1}"#.utf8)
            .write(to: URL(fileURLWithPath: dir + "/params.json"))
        Self.refuses(dir, ConvertOptions(target: .hf), "wk")
    }

    @Test func shardFromAnotherModel() throws {
        let dir = try Self.copyDir(Fixtures.path("tiny-meta"), "mixed")
        // the unsplit model as shard 01: its pieces have the whole model's shapes
        try FileManager.default.removeItem(atPath: dir + "/consolidated.01.pth")
        try FileManager.default.copyItem(atPath: Fixtures.path("recover/billa/llama/consolidated.00.pth"), toPath: dir + "/consolidated.01.pth")
        Self.refuses(dir, ConvertOptions(target: .hf), "the architecture needs")
    }

    @Test func configVocabularyOfAnotherModel() throws {
        Self.refuses(Fixtures.path("mismatch"), ConvertOptions(target: .meta), "vocab_size")
    }

    @Test func shardsThatSplitHeads() throws {
        var o = ConvertOptions(target: .meta)
        o.shards = 4   // the tiny model has 2 kv heads
        Self.refuses(Fixtures.path("tiny-hf-st"), o, "whole heads")
    }
}

@Suite("config.json")
struct HFConfigTests {
    /// transformers 4 reads only the top-level rope_theta; 5 reads rope_parameters and accepts the top-level key.
    @Test("a rotary base other than 10000 is written where transformers 4 and 5 both read it")
    func ropeTheta() throws {
        var p = ModelParameters(dim: 64, nLayers: 2, nHeads: 4, nKVHeads: 2, ffnDim: 176, vocabSize: 300, normEps: 1e-5, ropeTheta: 500_000)
        func parse(_ p: ModelParameters) throws -> [String: Any] {
            let text = HFLayout.config(p, vocab: 300, ffn: 176, dtype: .f16, maxPositions: 2048)
            return try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] ?? [:]
        }
        let long = try parse(p)
        #expect(long["rope_theta"] as? Double == 500_000)
        #expect((long["rope_parameters"] as? [String: Any])?["rope_theta"] as? Double == 500_000)
        p.ropeTheta = 10000
        let base = try parse(p)
        #expect(base["rope_theta"] == nil, "transformers 5 writes no top-level key for the default base")
        #expect((base["rope_parameters"] as? [String: Any])?["rope_theta"] as? Double == 10000)
    }
}
