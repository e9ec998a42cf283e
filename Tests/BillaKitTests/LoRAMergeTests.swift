import CKernels
import Foundation
import Testing
@testable import BillaKit

/// The reference outputs of make_lora_fixtures.py: every tensor of every output file with torch's SHA-256 of its
/// bytes, and its values either stored (expected/<case>.safetensors, key "<file>/<tensor>") or, for tensors the
/// generator proved equal to a slice of an adapter's (or the base's) table, that slice.
enum LoRAReference {
    struct Entry: Decodable {
        struct Slice: Decodable { let adapter: String; let tensor: String; let rows: [Int]; let cols: [Int] }
        let name: String
        let dtype: String
        let shape: [Int]
        let sha256: String
        let from_adapter: Slice?
    }
    struct Case: Decodable { let files: [String: [Entry]] }

    static let dir = Fixtures.path("lora")

    static func load(_ name: String) throws -> Case {
        try JSONDecoder().decode(Case.self, from: Data(contentsOf: URL(fileURLWithPath: "\(dir)/expected/\(name).json")))
    }

    /// The expected bytes of one entry.
    static func bytes(_ e: Entry, file: String, stored: TensorFile) throws -> [UInt8] {
        guard let s = e.from_adapter else {
            let t = try #require(stored.tensor(named: "\(file)/\(e.name)"), "\(file)/\(e.name) missing from the reference")
            return try t.withBytes { Array($0) }
        }
        let path = s.adapter == "base" ? "\(dir)/base" : "\(dir)/\(s.adapter)/adapter_model.bin"
        let source: Tensor
        if s.adapter == "base" {
            source = try #require(try Release.open(path).tensors.first { $0.tensor.name == s.tensor }?.tensor)
        } else {
            source = try #require(try FormatSniffer.openTensorFile(path).tensor(named: s.tensor))
        }
        let es = source.dtype.size, width = source.shape[1]
        return try source.withBytes { all in
            var out = [UInt8]()
            for r in s.rows[0]..<s.rows[1] {
                out += all[(r * width + s.cols[0]) * es..<(r * width + s.cols[1]) * es]
            }
            return out
        }
    }

    /// Compares `got` (file name -> tensor file) with the reference case; nil when every tensor is bit-identical.
    /// With `byName` the files are ignored and tensors matched by name (PEFT writes one model.safetensors).
    static func difference(_ name: String, got: [String: TensorFile], byName: Bool = false) throws -> String? {
        let ref = try load(name)
        let stored = try SafetensorsReader.open("\(dir)/expected/\(name).safetensors")
        var gotTensors = [String: Tensor]()
        if byName { for f in got.values { for t in f.tensors { gotTensors[t.name] = t } } }
        var seen = 0
        for (file, entries) in ref.files.sorted(by: { $0.key < $1.key }) {
            if !byName {
                guard let f = got[file] else { return "billa wrote no \(file) (it wrote \(got.keys.sorted()))" }
                guard Set(f.tensors.map(\.name)) == Set(entries.map(\.name)) else {
                    return "\(file): tensors differ: billa \(f.tensors.map(\.name).sorted()) vs reference \(entries.map(\.name).sorted())"
                }
            }
            for e in entries {
                let t: Tensor
                if byName {
                    guard let g = gotTensors[e.name] else { return "billa wrote no \(e.name)" }
                    t = g
                } else {
                    t = try #require(got[file]?.tensor(named: e.name))
                }
                seen += 1
                let dtype = ["float16": DType.f16, "float32": .f32, "bfloat16": .bf16][e.dtype]
                guard t.dtype == dtype, t.shape == e.shape else {
                    return "\(file):\(e.name): billa \(t.dtype.rawValue) \(t.shape), reference \(e.dtype) \(e.shape)"
                }
                let want = try bytes(e, file: file, stored: stored)
                let wantSHA = want.withUnsafeBytes { sha256Hex($0) }
                guard wantSHA == e.sha256 else { return "fixture problem: \(file):\(e.name)'s recorded values do not hash to the reference's SHA-256" }
                let diff = try t.withBytes { g in want.withUnsafeBytes { firstDifference(g, $0, elementSize: t.dtype.size) } }
                if let diff { return "\(file):\(e.name) (\(e.shape)): \(diff) (billa vs reference)" }
            }
        }
        if byName && seen != gotTensors.count { return "billa wrote \(gotTensors.count) tensors, the reference \(seen)" }
        return nil
    }

    /// Every tensor file billa wrote into `dir`, by name.
    static func output(_ dir: String) throws -> [String: TensorFile] {
        var files = [String: TensorFile]()
        for n in try FileManager.default.contentsOfDirectory(atPath: dir) where n.hasSuffix(".bin") || n.hasSuffix(".pth") || n.hasSuffix(".safetensors") {
            files[n] = try FormatSniffer.openTensorFile(dir + "/" + n)
        }
        return files
    }
}

@Suite("recover lora: LoRA merges against PEFT and merge_llama_with_chinese_lora_low_mem.py")
struct LoRAMergeTests {
    static let base = LoRAReference.dir + "/base"
    static func adapter(_ n: String) -> String { LoRAReference.dir + "/" + n }

    static func merge(_ adapters: [String], to target: ConvertOptions.Target = .hf, shards: Int? = nil) throws -> (String, String) {
        let tmp = try Fixtures.tempDir("lora")
        var o = LoRAMerge.Options(base: base, adapters: adapters.map(adapter), output: tmp + "/out")
        o.target = target
        o.shards = shards
        try LoRAMerge.plan(o).plan.execute()
        return (tmp, tmp + "/out")
    }

    @Test("a plain PEFT adapter (rank_pattern, alpha_pattern) equals PEFT's merge_and_unload, tensor for tensor",
          arguments: [("adapter-plain", "peft-plain"), ("adapter-rslora", "peft-rslora")])
    func peft(adapter: String, reference: String) throws {
        let (tmp, out) = try Self.merge([adapter])
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let diff = try LoRAReference.difference(reference, got: try LoRAReference.output(out), byName: true)
        #expect(diff == nil, "\(diff ?? "")")
    }

    @Test("Hugging Face output equals the script's --output_type huggingface, shard for shard",
          arguments: [(["adapter-zh"], "script-hf-zh"), (["adapter-zh", "adapter-zh-2"], "script-hf-zh-zh2")])
    func scriptHF(adapters: [String], reference: String) throws {
        let (tmp, out) = try Self.merge(adapters)
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let diff = try LoRAReference.difference(reference, got: try LoRAReference.output(out))
        #expect(diff == nil, "\(diff ?? "")")
        // the script's config.json: vocab_size = len(last tokenizer)
        let config = try Release.readJSON(out + "/config.json")
        #expect(config["vocab_size"] as? Int == 49953)
        let index = try Release.readJSON(out + "/pytorch_model.bin.index.json")
        let total = try LoRAReference.output(out).values.flatMap(\.tensors).reduce(0) { $0 + $1.byteCount }
        #expect((index["metadata"] as? [String: Any])?["total_size"] as? Int == total)
        // the last adapter's tokenizer
        #expect(try TokenizerPieceCount.count(at: out + "/tokenizer.model") == 49953)
    }

    @Test("Meta output equals the script's --output_type pth with its shard count (2: output.weight 24976 + 24977 rows)",
          arguments: [(["adapter-zh"], "script-pth-zh", 2), (["adapter-zh", "adapter-zh-2"], "script-pth-zh-zh2", 1)])
    func scriptPth(adapters: [String], reference: String, shards: Int) throws {
        let (tmp, out) = try Self.merge(adapters, to: .meta, shards: shards)
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let diff = try LoRAReference.difference(reference, got: try LoRAReference.output(out))
        #expect(diff == nil, "\(diff ?? "")")
        let versions = try Release.readJSON(LoRAReference.dir + "/expected/versions.json")
        let want = try #require(versions["\(reference).params.json"] as? [String: Any])
        let got = try Release.readJSON(out + "/params.json")
        for (k, v) in want { #expect("\(got[k] ?? "missing")" == "\(v)", "params.json \(k)") }
    }

    @Test("billa verify: the merged model against PEFT's merged model is lossless")
    func verifyAgainstPEFT() throws {
        let (tmp, out) = try Self.merge(["adapter-plain"])
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let r = try Verifier.compare(Verifier.Loaded(LoRAReference.dir + "/peft-plain"), Verifier.Loaded(out), prompts: Array(Verifier.defaultPrompts.prefix(3)))
        #expect(r.thresholds.kind == "lossless")
        #expect(r.pass, "\(r.failures)")
        #expect(r.maxAbsDiff == 0, "same weights, same forward pass: \(r.maxAbsDiff)")
    }

    @Test("--dry-run lists each tensor an adapter touches, with the adapters in merge order")
    func dryRun() throws {
        let o = LoRAMerge.Options(base: Self.base, adapters: [Self.adapter("adapter-zh"), Self.adapter("adapter-zh-2")], output: "/nonexistent/out")
        let job = try LoRAMerge.plan(o)
        let touched = Dictionary(uniqueKeysWithValues: job.touched.map { ($0.tensor, $0.adapters) })
        // zh: 7 projections x 2 layers + 2 tables; zh-2 adds q/v/o to the same tensors and its own tables
        #expect(touched.count == 16)
        #expect(touched["model.layers.1.self_attn.q_proj.weight"] == ["adapter-zh (lora r 8, scaling 4.0)", "adapter-zh-2 (lora r 16, scaling 2.0)"])
        #expect(touched["model.layers.0.mlp.up_proj.weight"] == ["adapter-zh (lora r 8, scaling 4.0)"])
        #expect(touched["lm_head.weight"] == ["adapter-zh (modules_to_save)", "adapter-zh-2 (modules_to_save)"])
        #expect(job.plan.describe().contains("+ lora adapter-zh-2 (r 16, scaling 2.0)"))
        #expect(!FileManager.default.fileExists(atPath: "/nonexistent/out"))
    }
}

@Suite("recover lora: refusals")
struct LoRARefusalTests {
    /// A copy of a fixture adapter with its config edited (and the weights linked).
    static func edited(_ name: String, _ edit: (inout [String: Any]) -> Void, extra: [String: String] = [:]) throws -> String {
        let src = LoRAReference.dir + "/" + name
        let d = try Fixtures.tempDir("lora-edit")
        for f in try FileManager.default.contentsOfDirectory(atPath: src) where f != "adapter_config.json" {
            try FileManager.default.createSymbolicLink(atPath: d + "/" + f, withDestinationPath: src + "/" + f)
        }
        var cfg = try Release.readJSON(src + "/adapter_config.json")
        edit(&cfg)
        try JSONSerialization.data(withJSONObject: cfg).write(to: URL(fileURLWithPath: d + "/adapter_config.json"))
        for (f, target) in extra { try FileManager.default.createSymbolicLink(atPath: d + "/" + f, withDestinationPath: target) }
        return d
    }

    static func refusal(_ adapters: [String]) -> BillaError? {
        do {
            _ = try LoRAMerge.plan(LoRAMerge.Options(base: LoRAMergeTests.base, adapters: adapters, output: "/nonexistent/out"))
            return nil
        } catch let e as BillaError { return e } catch { return nil }
    }

    @Test("DoRA, bias training, lora_bias and unknown settings are refused by name",
          arguments: [("use_dora", "true", "DoRA"), ("bias", "\"lora_only\"", "bias-training"), ("lora_bias", "true", "lora_bias"),
                      ("layer_replication", "[[0, 1]]", "layer_replication"), ("init_lora_weights", "\"pissa\"", "pissa"),
                      ("peft_type", "\"IA3\"", "IA3"), ("layers_to_transform", "[0]", "layers_to_transform")])
    func refusedSettings(key: String, json: String, word: String) throws {
        let value = try JSONSerialization.jsonObject(with: Data(json.utf8), options: .fragmentsAllowed)
        let d = try Self.edited("adapter-plain") { $0[key] = value }
        defer { try? FileManager.default.removeItem(atPath: d) }
        let e = try #require(Self.refusal([d]))
        #expect(e.code == .unsupported && e.message.contains(word), "\(e)")
    }

    @Test("a target module that matches no base tensor is an error naming it")
    func unknownTarget() throws {
        let d = try Self.edited("adapter-plain") { $0["target_modules"] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "c_attn"] }
        defer { try? FileManager.default.removeItem(atPath: d) }
        let e = try #require(Self.refusal([d]))
        #expect(e.tensor == "c_attn" && e.message.contains("matches no tensor"), "\(e)")
    }

    @Test("weights for a module target_modules does not select are refused (PEFT would drop them)")
    func unselectedWeights() throws {
        let d = try Self.edited("adapter-plain") { $0["target_modules"] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj"] }
        defer { try? FileManager.default.removeItem(atPath: d) }
        let e = try #require(Self.refusal([d]))
        #expect(e.message.contains("down_proj") && e.message.contains("does not select"), "\(e)")
    }

    @Test("the vocabularies must grow in order; the sizes are in the message")
    func shrinkingVocabulary() throws {
        // an adapter shipping LLaMA's 32000-piece tokenizer after the 49953-row Chinese one
        let d = try Self.edited("adapter-plain", { _ in }, extra: ["tokenizer.model": Fixtures.path("tokenizers/llama-tokenizer.model")])
        defer { try? FileManager.default.removeItem(atPath: d) }
        let e = try #require(Self.refusal([LoRAMergeTests.adapter("adapter-zh"), d]))
        #expect(e.code == .shapeMismatch && e.message.contains("32000") && e.message.contains("49953"), "\(e)")
    }

    @Test("a modules_to_save entry without weights is refused")
    func missingModulesToSave() throws {
        let d = try Self.edited("adapter-zh") { $0["modules_to_save"] = ["embed_tokens", "lm_head", "norm"] }
        defer { try? FileManager.default.removeItem(atPath: d) }
        let e = try #require(Self.refusal([d]))
        #expect(e.tensor == "norm", "\(e)")
    }
}

@Suite("recover lora: the merge arithmetic at a real shape")
struct LoRARealShapeTests {
    /// make_lora_fixtures.py's counter_hash.
    static func hash(_ i: Int, seed: UInt32) -> UInt32 {
        var h = UInt32(truncatingIfNeeded: UInt64(i) &* 0x9E37_79B1 &+ UInt64(seed))
        h ^= h >> 16
        h = h &* 0x85EB_CA6B
        h ^= h >> 13
        h = h &* 0xC2B2_AE35
        h ^= h >> 16
        return h
    }

    static func memory(_ name: String, _ dtype: DType, _ shape: [Int], _ bytes: [UInt8]) -> TensorPlan {
        let rowBytes = bytes.count / shape[0]
        return RowSource(dtype: dtype, shape: shape, provenance: name, fill: { r, dst in
            bytes.withUnsafeBytes { dst.copyMemory(from: $0.baseAddress! + r.lowerBound * rowBytes, byteCount: r.count * rowBytes) }
        }).plan(named: name)
    }

    /// A 4096 x 4096 f16 weight and a rank-64 f32 pair through the merge's row source (8 MiB write chunks, so the
    /// rows of B are taken at four offsets), against torch's `W += (B @ A) * scaling`.
    @Test func rank64On4096x4096() throws {
        struct Meta: Decodable { let rows: Int; let cols: Int; let rank: Int; let scaling: Double; let row_step: Int; let sha256: String }
        let meta = try JSONDecoder().decode(Meta.self, from: Data(contentsOf: URL(fileURLWithPath: LoRAReference.dir + "/expected/real-shape.json")))
        let (rows, cols, rank) = (meta.rows, meta.cols, meta.rank)
        var w = [UInt8](repeating: 0, count: rows * cols * 2)
        w.withUnsafeMutableBytes { p in
            let h = p.bindMemory(to: Float16.self)
            for i in 0..<(rows * cols) { h[i] = Float16(Float(Int(Self.hash(i, seed: 1) >> 21) - 1024) * 0x1p-14) }
        }
        func factor(_ n: Int, seed: UInt32) -> [UInt8] {
            var out = [UInt8](repeating: 0, count: n * 4)
            out.withUnsafeMutableBytes { p in
                let f = p.bindMemory(to: Float.self)
                for i in 0..<n { f[i] = Float(Int(Self.hash(i, seed: seed) >> 8) - (1 << 23)) * 0x1p-28 }
            }
            return out
        }
        let tmp = try Fixtures.tempDir("lora-real")
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        try SafetensorsWriter.write([Self.memory("w", .f16, [rows, cols], w)], metadata: [:], to: tmp + "/w.safetensors")
        try SafetensorsWriter.write([Self.memory("a", .f32, [rank, cols], factor(rank * cols, seed: 2)),
                                     Self.memory("b", .f32, [rows, rank], factor(rows * rank, seed: 3))], metadata: [:], to: tmp + "/ab.safetensors")
        let wf = try SafetensorsReader.open(tmp + "/w.safetensors"), ab = try SafetensorsReader.open(tmp + "/ab.safetensors")
        let pair = LoRAAdapter.Pair(module: "m", a: try #require(ab.tensor(named: "a")), b: try #require(ab.tensor(named: "b")),
                                    rank: rank, alpha: 16, scaling: Float(meta.scaling))
        let merged = LoRAMerge.loraAdded(RowSource(try #require(wf.tensor(named: "w"))), pair, adapter: "real")
        try SafetensorsWriter.write([merged.plan(named: "w")], metadata: [:], to: tmp + "/out.safetensors")
        let out = try #require(try SafetensorsReader.open(tmp + "/out.safetensors").tensor(named: "w"))
        let sample = try #require(try SafetensorsReader.open(LoRAReference.dir + "/expected/real-shape.safetensors").tensor(named: "rows"))
        try out.withBytes { got in
            try sample.withBytes { want in
                for (k, row) in stride(from: 0, to: rows, by: meta.row_step).enumerated() {
                    let g = UnsafeRawBufferPointer(rebasing: got[(row * cols * 2)..<((row + 1) * cols * 2)])
                    let e = UnsafeRawBufferPointer(rebasing: want[(k * cols * 2)..<((k + 1) * cols * 2)])
                    let diff = firstDifference(g, e, elementSize: 2)
                    #expect(diff == nil, "row \(row): \(diff ?? "")")
                    if diff != nil { return }
                }
            }
            #expect(sha256Hex(got) == meta.sha256, "the sampled rows agree but some other row differs from torch's")
        }
    }

    /// The AVX2 body and the portable one (fmaf) give the same bits at an odd width (tails of 8 and of 1).
    @Test(.enabled(if: KernelBodies.hasAVX2, KernelBodies.noAVX2)) func kernelBodiesAgree() {
        let (rows, r, cols) = (37, 13, 4096 + 40 + 3)
        let a = (0..<(r * cols)).map { Float(Int(Self.hash($0, seed: 7) >> 8) - (1 << 23)) * 0x1p-20 }
        let b = (0..<(rows * r)).map { Float(Int(Self.hash($0, seed: 8) >> 8) - (1 << 23)) * 0x1p-20 }
        let w0 = (0..<(rows * cols)).map { Float(Int(Self.hash($0, seed: 9) >> 8) - (1 << 23)) * 0x1p-16 }
        var fast = w0, portable = w0
        #expect(bk_lora_add_using(KernelBodies.avx2, b, a, &fast, Int64(rows), Int64(r), Int64(cols), 0.7) == 1, "the AVX2 body did not run")
        #expect(bk_lora_add_using(KernelBodies.portable, b, a, &portable, Int64(rows), Int64(r), Int64(cols), 0.7) == 1)
        let i = (0..<fast.count).first { fast[$0].bitPattern != portable[$0].bitPattern }
        #expect(i == nil, "element \(i ?? 0): \(fast[i ?? 0]) vs \(portable[i ?? 0])")
        #expect(fast != w0)
    }
}

@Suite("recover lora: command line")
struct LoRACLITests {
    @Test func dryRunAndMerge() throws {
        let tmp = try Fixtures.tempDir("lora-cli")
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let args = ["recover", "lora", "--base", LoRAMergeTests.base, LoRAMergeTests.adapter("adapter-zh"), LoRAMergeTests.adapter("adapter-zh-2"), "-o", tmp + "/out"]
        let dry = try CLITests().billa(args + ["--dry-run"], stdin: nil)
        #expect(dry.status == 0, "\(dry.stderr)")
        #expect(dry.stdout.contains("tensors the adapters touch (16):"))
        #expect(dry.stdout.contains("model.layers.0.self_attn.q_proj.weight  <- adapter-zh (lora r 8, scaling 4.0), then adapter-zh-2 (lora r 16, scaling 2.0)"), "\(dry.stdout)")
        #expect(!FileManager.default.fileExists(atPath: tmp + "/out"))
        let run = try CLITests().billa(args + ["--to", "meta", "--quiet"], stdin: nil)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(FileManager.default.fileExists(atPath: tmp + "/out/consolidated.00.pth"))
        // the base given as an adapter
        let bad = try CLITests().billa(["recover", "lora", "--base", LoRAMergeTests.base, LoRAMergeTests.base, "-o", tmp + "/out2"], stdin: nil)
        #expect(bad.status != 0 && bad.stderr.contains("adapter_config.json") && !FileManager.default.fileExists(atPath: tmp + "/out2"), "\(bad.stderr)")
    }
}
