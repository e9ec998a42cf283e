import Foundation
import Testing
@testable import BillaKit

func sha256Hex(file path: String) throws -> String {
    let f = try MappedFile(path: path)
    return sha256Hex(f.all)
}

/// The tiny f32 LLaMA GGUF the generator wrote with gguf-py and quantized with llama.cpp: its header is
/// committed, its values are the generator's splitmix64 formula (reproduced here), so the whole file is rebuilt
/// byte for byte without committing 7 MB.
enum TinyGGUF {
    static func splitmix(_ seed: UInt64, _ i: Int) -> UInt64 {
        var z = seed &+ UInt64(i + 1) &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    static func values(seed: UInt64, rows: Int, cols: Int, kind: String) -> [Float] {
        var out = [Float](repeating: 0, count: rows * cols)
        for r in 0..<rows {
            let e = Int(splitmix(seed ^ 0x5EED, r) % 8) - 6
            let scale = Float(sign: .plus, exponent: e, significand: 1)
            for c in 0..<cols {
                let i = r * cols + c
                let u = Float(splitmix(seed, i) >> 40) * Float(sign: .plus, exponent: -24, significand: 1)
                let v = 2 * u - 1
                out[i] = kind == "norm" ? v * 0.25 + 1 : v * v * v * scale
            }
        }
        return out
    }

    /// Writes the f32 source GGUF into a temporary directory once and returns its path.
    static let path: Result<String, Error> = Result {
        let golden = try QuantFixtures.golden()
        let f32 = try #require(golden.model["f32"])
        var file = try QuantFixtures.bytes("tiny-f32.header.gguf")
        let edge = Array(try QuantFixtures.edge().prefix(64 * 256))
        for t in f32.tensors {
            let shape = try #require(t.shape)
            let rows = shape.count == 2 ? shape[0] : 1, cols = shape.last ?? 0
            let seedText = try #require(t.seed)
            let seed = try #require(UInt64(seedText))
            var v = values(seed: seed, rows: rows, cols: cols, kind: t.kind ?? "")
            if t.name == "blk.0.attn_q.weight" { v.replaceSubrange(0..<edge.count, with: edge) }
            v.withUnsafeBytes { file.append(contentsOf: $0) }
            file += [UInt8](repeating: 0, count: (32 - file.count % 32) % 32)
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("billa-gguf-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let p = dir.appendingPathComponent("tiny-f32.gguf").path
        try Data(file).write(to: URL(fileURLWithPath: p))
        return p
    }

    static func tempPath(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("billa-gguf-\(getpid())-\(name)").path
    }
}

@Suite("GGUF reader, writer and llama-quantize parity")
struct GGUFTests {
    @Test("the rebuilt f32 source is gguf-py's file, and the reader validates it")
    func sourceRebuilt() throws {
        let path = try TinyGGUF.path.get()
        let golden = try QuantFixtures.golden()
        #expect(try sha256Hex(file: path) == golden.model["f32"]?.sha256)
        let g = try GGUFReader.open(path)
        #expect(g.version == 3)
        #expect(g.architecture == "llama")
        #expect(g.tensors.count == golden.model["f32"]?.tensors.count)
        #expect(g.dataOffset == golden.model["f32"]?.data_offset)
        #expect(g.metadata["tokenizer.ggml.tokens"]?.arrayCount == 512)
        #expect(g.metadata["llama.block_count"] == .u32(4))
        #expect(g.tensor(named: "blk.0.ffn_down.weight")?.shape == [256, 288])
    }

    @Test("billa's writer reproduces gguf-py's bytes for the same metadata and tensors")
    func writerMatchesGGUFPy() throws {
        let g = try GGUFReader.open(try TinyGGUF.path.get())
        let out = TinyGGUF.tempPath("rewrite.gguf")
        defer { try? FileManager.default.removeItem(atPath: out) }
        try GGUFWriter.write(metadata: g.metadata, tensors: g.tensorFile.tensors.map { TensorPlan(copying: $0) }, to: out)
        let diff = try ggufDifference(out, try TinyGGUF.path.get())
        #expect(diff == nil, "\(diff ?? "")")
    }

    /// The whole quantized file equals llama-quantize's: metadata, tensor order, types, offsets, padding and data.
    @Test("billa quantize writes llama-quantize's file byte for byte",
          arguments: ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k_s", "q4_k_m", "q5_k_s", "q5_k_m", "q6_k"])
    func quantizeMatchesLlamaQuantize(_ ftype: String) throws {
        let golden = try #require(try QuantFixtures.golden().model[ftype])
        let recipe = try #require(QuantRecipe(name: ftype))
        let out = TinyGGUF.tempPath("\(ftype).gguf")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let plan = try GGUFExport.plan(source: try TinyGGUF.path.get(), options: GGUFExportOptions(recipe: recipe))
        // The per-tensor type policy first: it explains a file difference better than a hash.
        for (c, want) in zip(plan.choices, golden.tensors) {
            #expect(c.name == want.name && c.target.rawValue == want.type, "\(ftype): \(c.name) -> \(c.target.rawValue), llama.cpp: \(want.name) -> \(want.type ?? "")")
        }
        #expect(plan.choices.count == golden.tensors.count)
        try plan.write(to: out)
        let g = try GGUFReader.open(out)
        for (t, want) in zip(g.tensors, golden.tensors) {
            let bytes = try g.file.bytes(at: g.dataOffset + t.offset, count: t.byteCount, what: t.name)
            // Only digests are committed for these 1-10 MB files; the edge rows' blocks are compared one by one in
            // QuantTests.matchesLlamaCpp, so a mismatch here names the tensor and its bytes in the file.
            #expect(sha256Hex(bytes) == want.sha256, "\(ftype): tensor \(t.name) (\(t.dtype.rawValue), file bytes \(g.dataOffset + t.offset)..<\(g.dataOffset + t.offset + t.byteCount)) differs from llama.cpp's")
        }
        // Every tensor's data agrees above, so a difference here is in the header (metadata, tensor infos) or padding.
        #expect(try sha256Hex(file: out) == golden.sha256, "\(ftype): whole file differs from llama-quantize's: header (bytes 0..<\(g.dataOffset)) or padding")
    }

    /// Rows that are not whole blocks: llama-quantize falls back (K -> 32-element type -> F16), also for a legacy type
    /// asked for explicitly, and does not fail; billa writes its files (scripts/fixtures/make_fallback_fixtures.py).
    @Test("rows that are not whole blocks fall back to llama-quantize's types, byte for byte",
          arguments: [("q4_0", [String]()), ("q8_0", []), ("q4_k_m", []), ("q4_k_m-ffn_down-q5_0", ["ffn_down=q5_0"])])
    func fallbackMatchesLlamaQuantize(_ name: String, _ overrides: [String]) throws {
        let dir = Fixtures.path("quant/fallback")
        let recipe = try #require(QuantRecipe(name: String(name.prefix { $0 != "-" })))
        var o = GGUFExportOptions(recipe: recipe)
        o.overrides = try overrides.map { o in
            let parts = o.split(separator: "=")
            return (pattern: String(parts[0]), type: try #require(parseTensorType(String(parts[1]))))
        }
        let plan = try GGUFExport.plan(source: dir + "/src.gguf", options: o)
        #expect(plan.choices.first { $0.name == "blk.0.ffn_down.weight" }?.target == .f16, "40-column rows cannot be 32-element blocks")
        #expect(plan.notes.contains { $0.contains("blk.0.ffn_down.weight") && $0.contains("F16") })
        let out = TinyGGUF.tempPath("fallback-\(name).gguf")
        defer { try? FileManager.default.removeItem(atPath: out) }
        try plan.write(to: out)
        let diff = try ggufDifference(out, dir + "/\(name).gguf")
        #expect(diff == nil, "\(name): \(diff ?? "")")
    }

    @Test("GGUF files open through Release for inspect and checksum --per-tensor")
    func releaseOpensGGUF() throws {
        let r = try Release.open(try TinyGGUF.path.get())
        #expect(r.files.first?.format == .gguf)
        #expect(r.tensors.count == 39)
        let digests = try Checksummer.hashTensors(r, algorithm: .sha256, progress: nil)
        #expect(digests.count == 39)
    }

    @Test("hostile GGUF headers are refused with an error, never a crash")
    func hostile() throws {
        var good = try QuantFixtures.bytes("tiny-f32.header.gguf")
        func open(_ bytes: [UInt8]) -> BillaError? {
            let p = TinyGGUF.tempPath("hostile.gguf")
            defer { try? FileManager.default.removeItem(atPath: p) }
            do {
                try Data(bytes).write(to: URL(fileURLWithPath: p))
                _ = try GGUFReader.open(p)
                return nil
            } catch let e as BillaError { return e } catch { return nil }
        }
        // The header alone: tensor data is missing.
        #expect(open(good)?.code == .outOfBounds)
        #expect(open(Array(good.prefix(20))) != nil)                 // truncated counts
        var bad = good; bad[0] = 0x00                                 // magic
        #expect(open(bad)?.code == .invalidHeader)
        bad = good; bad[4] = 1                                        // version 1
        #expect(open(bad)?.code == .unsupported)
        bad = good; for i in 8..<16 { bad[i] = 0xFF }                 // absurd tensor count
        #expect(open(bad)?.code == .invalidHeader)
        bad = good; for i in 16..<24 { bad[i] = 0x7F }                // absurd metadata count
        #expect(open(bad)?.code == .invalidHeader)
        bad = good; bad[24 + 8] = 0xFF; bad[24 + 9] = 0xFF            // first key length past the end
        #expect(open(bad) != nil)
        good.removeAll()
        #expect(open(good) != nil)
    }

    @Test("convert --to gguf: Meta and HF sources give the same tensors, with the vocabulary")
    func convertMetaAndHF() throws {
        var o = GGUFExportOptions(recipe: .f32)
        o.name = "tiny"
        let meta = try GGUFExport.plan(source: Fixtures.path("tiny-meta"), options: o)
        let hf = try GGUFExport.plan(source: Fixtures.path("tiny-hf-st"), options: o)
        let a = TinyGGUF.tempPath("meta.gguf"), b = TinyGGUF.tempPath("hf.gguf")
        defer { try? FileManager.default.removeItem(atPath: a); try? FileManager.default.removeItem(atPath: b) }
        try meta.write(to: a)
        try hf.write(to: b)
        let ga = try GGUFReader.open(a), gb = try GGUFReader.open(b)
        #expect(ga.tensors.map(\.name) == gb.tensors.map(\.name))
        #expect(ga.tensors.count == 2 * 9 + 3)
        for (x, y) in zip(ga.tensors, gb.tensors) {
            let bx = try ga.file.bytes(at: ga.dataOffset + x.offset, count: x.byteCount, what: x.name)
            let by = try gb.file.bytes(at: gb.dataOffset + y.offset, count: y.byteCount, what: y.name)
            #expect(firstDifference(bx, by, elementSize: 4) == nil, "\(x.name): HF (unpermuted) differs from Meta")
        }
        let sp = try SentencePieceModel.load(Fixtures.path("tiny-meta/tokenizer.model"))
        guard case .array(.string, let toks)? = ga.metadata["tokenizer.ggml.tokens"] else {
            Issue.record("no token list"); return
        }
        #expect(toks.count == 512)
        #expect(toks.enumerated().allSatisfy { $0.element.stringValue == sp.proto.pieces[$0.offset].piece })
        #expect(ga.metadata["tokenizer.ggml.bos_token_id"] == .u32(1))
        #expect(ga.metadata["tokenizer.ggml.add_bos_token"] == .bool(true))
        #expect(ga.metadata["llama.attention.head_count_kv"] == .u32(2))
        #expect(ga.tensor(named: "blk.0.attn_norm.weight")?.dtype == .f32)
    }

    @Test("--tensor-type overrides win, requantizing needs a flag, non-finite weights are refused and nothing is written")
    func policyErrors() throws {
        let src = try TinyGGUF.path.get()
        var o = GGUFExportOptions(recipe: .q4_k_m)
        o.overrides = [(pattern: "attn_v", type: .q8_0), (pattern: "^output\\.", type: .f16)]
        let plan = try GGUFExport.plan(source: src, options: o)
        for c in plan.choices where c.name.contains("attn_v") { #expect(c.target == .q8_0, "\(c.name)") }
        #expect(plan.choices.first { $0.name == "output.weight" }?.target == .f16)
        #expect(plan.choices.first { $0.name == "blk.0.attn_norm.weight" }?.target == .f32)

        let q8 = TinyGGUF.tempPath("q8.gguf"), out = TinyGGUF.tempPath("re.gguf")
        defer { try? FileManager.default.removeItem(atPath: q8); try? FileManager.default.removeItem(atPath: out) }
        try GGUFExport.plan(source: src, options: GGUFExportOptions(recipe: .q8_0)).write(to: q8)
        #expect(throws: BillaError.self) { try GGUFExport.plan(source: q8, options: GGUFExportOptions(recipe: .q4_0)) }
        var again = GGUFExportOptions(recipe: .q4_0)
        again.allowRequantize = true
        try GGUFExport.plan(source: q8, options: again).write(to: out)
        #expect(try GGUFReader.open(out).tensor(named: "blk.0.attn_q.weight")?.dtype == .q4_0)
        try FileManager.default.removeItem(atPath: out)

        // A NaN in the source: the error names the tensor and no output appears.
        var bytes = try QuantFixtures.bytes("tiny-f32.header.gguf")
        let g = try GGUFReader.open(src)
        bytes = Array(g.file.all)
        let t = try #require(g.tensor(named: "blk.1.attn_k.weight"))
        let at = g.dataOffset + t.offset + 4 * 300
        withUnsafeBytes(of: Float.nan.bitPattern.littleEndian) { for i in 0..<4 { bytes[at + i] = $0[i] } }
        let nanPath = TinyGGUF.tempPath("nan.gguf")
        defer { try? FileManager.default.removeItem(atPath: nanPath) }
        try Data(bytes).write(to: URL(fileURLWithPath: nanPath))
        do {
            try GGUFExport.plan(source: nanPath, options: GGUFExportOptions(recipe: .q4_k_m)).write(to: out)
            Issue.record("a NaN weight was quantized")
        } catch let e as BillaError {
            #expect(e.tensor == "blk.1.attn_k.weight")
        }
        #expect(!FileManager.default.fileExists(atPath: out))
    }
}
