import Foundation
import Testing
@testable import BillaKit

/// transformers' logits and convert_hf_to_gguf.py's GGUFs for tiny Mistral- and Qwen2-shaped models
/// (scripts/fixtures/make_family_fixtures.py).
enum FamilyGolden {
    nonisolated(unsafe) static let json: [String: Any] = {
        guard let data = FileManager.default.contents(atPath: Fixtures.path("families/golden.json")),
              let o = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            preconditionFailure("Tests/Fixtures/families/golden.json is unreadable; regenerate with scripts/fixtures/make_family_fixtures.py")
        }
        return o
    }()
    /// model -> the directory whose weights it runs on
    static let bases = ["mistral": "mistral", "mistral-nowindow": "mistral", "qwen2": "qwen2", "qwen2-sliding": "qwen2"]

    static func sequences(_ base: String) -> [[Int]] { (json["sequences"] as? [String: Any])?[base] as? [[Int]] ?? [] }

    static func logits(_ name: String, _ i: Int) throws -> (values: [Float], vocab: Int, scale: Double) {
        let run = try #require((json["models"] as? [String: Any])?[name] as? [[String: Any]])[i]
        let file = try #require(run["logits"] as? String), shape = try #require(run["shape"] as? [Int])
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("families/" + file)))
        return (data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }, shape[1], try #require(run["max_abs_logit"] as? Double))
    }

    /// llama.cpp's token_to_piece with special tokens shown: SentencePiece pieces with '▁' as a space and <0xNN>
    /// as the byte; byte-level BPE tokens as their bytes; control tokens as their text.
    static func llamaPiece(_ t: any TextTokenizer, _ id: Int) -> [UInt8] {
        if let spm = t as? Tokenizer {
            let p = spm.piece(id)
            if spm.model.proto.pieces[id].type == .byte, p.hasPrefix("<0x"), let b = UInt8(p.dropFirst(3).dropLast(), radix: 16) { return [b] }
            return Array(p.replacingOccurrences(of: "\u{2581}", with: " ").utf8)
        }
        let bpe = t as! BPETokenizer
        if let s = bpe.literalPieces[Int32(id)] { return Array(s.utf8) }
        return bpe.decodeBytes[id]
    }

    static func hex(_ b: [UInt8]) -> String { b.map { String(format: "%02x", $0) }.joined() }

    static func gguf(_ name: String) -> [String: Any] { ((json["gguf"] as? [String: Any])?[name] as? [String: Any]) ?? [:] }

    /// The model's directory: the fixture itself, or (a config-only twin) its base's files under the twin's config.
    static func model(_ name: String, in dir: String) throws -> String {
        let base = bases[name] ?? name
        if name == base { return Fixtures.path("families/" + name) }
        let d = dir + "/" + name
        if FileManager.default.fileExists(atPath: d) { return d }
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        for f in try FileManager.default.contentsOfDirectory(atPath: Fixtures.path("families/" + base)) where f != "config.json" {
            try FileManager.default.copyItem(atPath: Fixtures.path("families/\(base)/\(f)"), toPath: d + "/" + f)
        }
        try FileManager.default.copyItem(atPath: Fixtures.path("families/\(name).config.json"), toPath: d + "/config.json")
        return d
    }

    /// Runs `path` on every sequence of `name`'s base and reports the first logit off by more than 1e-4 of the
    /// logit scale against transformers' logits of `name`.
    static func check(_ path: String, against name: String, sequences which: [Int]? = nil, label: String) throws {
        let weights = try LlamaWeights(Release.open(path))
        let lm = LlamaModel(weights)
        let seqs = sequences(bases[name] ?? name)
        for i in which ?? Array(seqs.indices) {
            let want = try logits(name, i)
            let got = try lm.forward(seqs[i], cache: KVCache(for: weights, capacity: seqs[i].count))
            if let d = VerifyGolden.firstDifference(got, want.values, vocab: want.vocab, tol: Float(1e-4 * want.scale)) {
                Issue.record("\(label), sequence \(i) (\(seqs[i].count) tokens): \(d)")
            }
        }
    }
}

@Suite("model families: Mistral and Qwen2 configs, forward pass, conversions, GGUF, verify")
struct FamilyTests {
    @Test("config.json / params.json give the family, its window and its biases")
    func configs() throws {
        let tmp = try Fixtures.tempDir("family-cfg")
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let m = try #require(try Release.open(FamilyGolden.model("mistral", in: tmp)).parameters)
        #expect(m.modelFamily == .mistral && m.slidingWindow == 8 && m.window(layer: 0) == 8 && m.window(layer: 1) == 8)
        let meta = try #require(try Release.open(Fixtures.path("families/mistral-meta")).parameters)
        #expect(meta.modelFamily == .mistral && meta.slidingWindow == 8 && meta.nKVHeads == 2)
        let n = try #require(try Release.open(FamilyGolden.model("mistral-nowindow", in: tmp)).parameters)
        #expect(n.modelFamily == .mistral && n.slidingWindow == nil)
        let q = try #require(try Release.open(FamilyGolden.model("qwen2", in: tmp)).parameters)
        #expect(q.modelFamily == .qwen2 && q.slidingWindow == nil && q.ropeTheta == 1e6)
        #expect(q.modelFamily.has(.attnQBias) && !ModelFamily.llama.has(.attnQBias))
        let s = try #require(try Release.open(FamilyGolden.model("qwen2-sliding", in: tmp)).parameters)
        #expect(s.window(layer: 0) == nil && s.window(layer: 1) == 8)
    }

    /// Settings billa would not honour are refused by name, not run as something else.
    @Test(arguments: [
        ("mistral", "model_type", #""gemma2""#, "gemma2"),
        ("mistral", "hidden_act", #""gelu""#, "hidden_act"),
        ("mistral", "head_dim", "32", "head_dim"),
        ("mistral", "sliding_window", "0", "sliding_window"),
        ("qwen2-sliding", "layer_types", #"["sliding_attention", "full_attention"]"#, "layer_types"),
        ("mistral", "mlp_bias", "true", "mlp_bias"),
    ])
    func refusedByName(model: String, key: String, value: String, name: String) throws {
        let tmp = try Fixtures.tempDir("family-refuse")
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let d = tmp + "/m"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        let src = try FamilyGolden.model(model, in: tmp)
        for f in try FileManager.default.contentsOfDirectory(atPath: src) {
            try FileManager.default.copyItem(atPath: src + "/" + f, toPath: d + "/" + f)
        }
        var config = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: d + "/config.json"))) as? [String: Any])
        config[key] = try JSONSerialization.jsonObject(with: Data(value.utf8), options: .fragmentsAllowed)
        try FileManager.default.removeItem(atPath: d + "/config.json")
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: d + "/config.json"))
        do {
            _ = try Release.open(d)
            Issue.record("\(key) \(value) was accepted")
        } catch let e as BillaError {
            #expect(e.message.contains(name), "\(e.message)")
        }
    }

    @Test("billa's logits equal transformers' (windowed attention past 8 tokens, q/k/v biases, tied embeddings)",
          arguments: ["mistral", "mistral-nowindow", "qwen2", "qwen2-sliding"])
    func forwardMatchesTransformers(name: String) throws {
        let tmp = try Fixtures.tempDir("family-fwd")
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        try FamilyGolden.check(try FamilyGolden.model(name, in: tmp), against: name, label: name)
    }

    @Test("the Mistral original runs as transformers runs its HF twin; Meta -> HF -> Meta keeps every byte and the window")
    func mistralOriginal() throws {
        let tmp = try Fixtures.tempDir("family-meta")
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let meta = Fixtures.path("families/mistral-meta")
        try FamilyGolden.check(meta, against: "mistral", label: "mistral-meta")
        var o = ConvertOptions(target: .hf)
        o.maxPositionEmbeddings = 256
        try Converter.plan(source: meta, destination: tmp + "/hf", options: o).execute()
        let config = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: tmp + "/hf/config.json"))) as? [String: Any])
        #expect(config["model_type"] as? String == "mistral" && config["sliding_window"] as? Int == 8)
        #expect(config["architectures"] as? [String] == ["MistralForCausalLM"])
        #expect(config["attention_bias"] == nil && config["mlp_bias"] == nil, "LlamaConfig keys in a Mistral config")
        try expectSameTensors(tmp + "/hf", Fixtures.path("families/mistral"))
        // transformers loaded this conversion as MistralForCausalLM and gave the golden logits (the generator's
        // --billa run): billa must still write those very config files.
        let loaded = try #require((FamilyGolden.json["billa_hf"] as? [String: Any])?["sha256"] as? [String: String])
        for (f, sha) in loaded.sorted(by: { $0.key < $1.key }) {
            #expect(try sha256Hex(file: tmp + "/hf/" + f) == sha, "\(f) is not the file transformers loaded; regenerate with make_family_fixtures.py --billa if the change is intended")
        }
        try Converter.plan(source: tmp + "/hf", destination: tmp + "/meta", options: ConvertOptions(target: .meta)).execute()
        let back = try #require(try Release.open(tmp + "/meta").parameters)
        #expect(back.modelFamily == .mistral && back.slidingWindow == 8)
        try expectSameTensors(tmp + "/meta", meta)
    }

    @Test("inspect names the family, its biases and its window; a pack keeps them")
    func inspectAndPack() throws {
        let tmp = try Fixtures.tempDir("family-inspect")
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let r = try CLITests().billa("inspect", try FamilyGolden.model("qwen2-sliding", in: tmp))
        #expect(r.status == 0 && r.stdout.contains("architecture: qwen2, dim 64") && r.stdout.contains("q/k/v biases, sliding window 8 from layer 1"), "\(r.stdout)\(r.stderr)")
        let m = try CLITests().billa("inspect", Fixtures.path("families/mistral-meta"))
        #expect(m.stdout.contains("architecture: mistral,") && m.stdout.contains("sliding window 8\n"), "\(m.stdout)")
        _ = try Packer.pack(Release.open(try FamilyGolden.model("qwen2-sliding", in: tmp)), options: PackOptions(), to: tmp + "/q.billa")
        #expect(try Release.open(tmp + "/q.billa").parameters == Release.open(tmp + "/qwen2-sliding").parameters)
        try FamilyGolden.check(tmp + "/q.billa", against: "qwen2-sliding", label: "qwen2-sliding as a pack")
    }

    @Test("imatrix and perplexity warn when -c passes the model's context length (256 here), as llama.cpp does")
    func contextWarning() throws {
        let tmp = try Fixtures.tempDir("family-ctx")
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let text = Fixtures.path("tokenizer/corpus-en.jsonl")
        let over = try CLITests().billa("imatrix", Fixtures.path("families/mistral"), "-f", text, "-c", "300", "--chunks", "1", "-o", tmp + "/a.gguf")
        #expect(over.status == 0 && over.stderr.contains("-c 300 exceeds the model's context length 256"), "\(over.stderr)")
        let within = try CLITests().billa("imatrix", Fixtures.path("families/mistral"), "-f", text, "-c", "128", "--chunks", "1", "-o", tmp + "/b.gguf")
        #expect(within.status == 0 && !within.stderr.contains("exceeds"), "\(within.stderr)")
    }

    @Test("Qwen2 has no Meta layout: converting it there is refused by name")
    func qwen2HasNoMetaLayout() throws {
        let tmp = try Fixtures.tempDir("family-qmeta")
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        #expect {
            try Converter.plan(source: Fixtures.path("families/qwen2"), destination: tmp + "/meta", options: ConvertOptions(target: .meta))
        } throws: { ($0 as? BillaError)?.message.contains("qwen2 models have no Meta original layout") == true }
    }

    @Test("convert --to gguf writes convert_hf_to_gguf.py's architecture keys and tensor bytes", arguments: ["mistral", "qwen2"])
    func ggufMatchesConverter(name: String) throws {
        let tmp = try Fixtures.tempDir("family-gguf")
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        var o = GGUFExportOptions(recipe: .f32)
        o.sourceTypes = true
        // the trimmed Qwen2 vocabulary's hash is unknown to the converter; its generator answered "qwen2" for it
        if name == "qwen2" { o.tokenizerPre = "qwen2" }
        let plan = try GGUFExport.plan(source: Fixtures.path("families/" + name), options: o)
        try plan.write(to: tmp + "/m.gguf")
        let g = try GGUFReader.open(tmp + "/m.gguf")
        let want = FamilyGolden.gguf(name)
        let keys = try #require(want["keys"] as? [String: [String: Any]])
        // general.type and general.size_label are the converter's descriptions, general.name billa's (the
        // directory's name). Arrays (tokens, types, merges) are compared by the SHA-256 of their JSON as the
        // generator wrote it (Python's json.dumps, compact, non-ASCII kept).
        for (key, w) in keys.sorted(by: { $0.key < $1.key }) where w["sha256"] != nil {
            guard case .array(_, let values)? = g.metadata[key] else { Issue.record("\(name): \(key) is absent"); continue }
            let text = "[" + values.map { v -> String in
                if let s = v.stringValue { return JSONText.quote(s) }
                if case .bool(let b) = v { return b ? "true" : "false" }
                if case .f32(let f) = v { return "\(Double(f))" }   // Python's repr of the float32 as a double
                return v.intValue.map(String.init) ?? "?"
            }.joined(separator: ",") + "]"
            #expect(values.count == w["count"] as? Int && Array(text.utf8).withUnsafeBytes { sha256Hex($0) } == w["sha256"] as? String,
                    "\(name): \(key) (\(values.count) values) differs from the converter's (\(w["count"] ?? "?"))")
        }
        for (key, w) in keys.sorted(by: { $0.key < $1.key }) where !["general.type", "general.size_label"].contains(key) {
            let got = g.metadata[key]
            if let v = w["value"] as? Double, w["type"] as? String == "FLOAT32" {
                #expect(got?.doubleValue.map { Float($0) } == Float(v), "\(name): \(key) = \(got.map { "\($0)" } ?? "absent"), converter: \(v)")
            } else if let v = w["value"] as? Int {
                #expect(got?.intValue == v, "\(name): \(key) = \(got.map { "\($0)" } ?? "absent"), converter: \(v)")
            } else if let v = w["value"] as? String {
                #expect(got?.stringValue == v, "\(name): \(key) = \(got.map { "\($0)" } ?? "absent"), converter: \(v)")
            }
        }
        let extra = g.metadata.keys.filter { $0 != GGUFKeys.name && keys[$0] == nil }
        #expect(extra.isEmpty, "\(name): keys the converter does not write: \(extra)")
        let tensors = try #require(want["tensors"] as? [[String: Any]])
        #expect(g.tensors.map(\.name).sorted() == tensors.compactMap { $0["name"] as? String }.sorted(), "\(name): tensor names differ")
        for w in tensors {
            guard let t = g.tensors.first(where: { $0.name == w["name"] as? String }) else { continue }
            let bytes = try g.file.bytes(at: g.dataOffset + t.offset, count: t.byteCount, what: t.name)
            #expect(t.dtype.rawValue.uppercased() == w["type"] as? String && t.dims == w["shape"] as? [Int],
                    "\(name): \(t.name) is \(t.dtype.rawValue) \(t.dims), converter: \(w["type"] ?? "") \(w["shape"] ?? "")")
            #expect(sha256Hex(bytes) == w["sha256"] as? String, "\(name): tensor \(t.name)'s bytes differ from the converter's")
        }
        if name == "mistral" { #expect(plan.losses.contains { $0.contains("no sliding attention window") }, "\(plan.losses)") }
        // billa runs its GGUF as llama.cpp would: the Qwen2 file in NEOX (halves) rope with its biases.
        if name == "qwen2" { try FamilyGolden.check(tmp + "/m.gguf", against: "qwen2", label: "qwen2 GGUF") }
    }

    @Test("quantize chooses llama-quantize's type for every tensor and writes its bytes (Qwen2's tied token_embd takes the output's type)",
          arguments: ["mistral", "qwen2"])
    func quantizeMatchesLlama(name: String) throws {
        let tmp = try Fixtures.tempDir("family-quant")
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let all = try #require((FamilyGolden.json["quantize"] as? [String: Any])?[name] as? [String: [[String: Any]]])
        for (type, want) in all.sorted(by: { $0.key < $1.key }) {
            let recipe = try #require(QuantRecipe(name: type))
            var o = GGUFExportOptions(recipe: recipe)
            if name == "qwen2" { o.tokenizerPre = "qwen2" }   // the trimmed vocabulary's hash is unknown to the converter
            try GGUFExport.plan(source: Fixtures.path("families/" + name), options: o).write(to: tmp + "/q.gguf")
            let g = try GGUFReader.open(tmp + "/q.gguf")
            #expect(g.tensors.map(\.name).sorted() == want.compactMap { $0["name"] as? String }.sorted(), "\(name) \(type): tensor names differ")
            for w in want {
                guard let t = g.tensors.first(where: { $0.name == w["name"] as? String }) else { continue }
                #expect(t.dtype.rawValue.uppercased() == w["type"] as? String, "\(name) \(type): \(t.name) is \(t.dtype.rawValue), llama-quantize chose \(w["type"] ?? "")")
                let bytes = try g.file.bytes(at: g.dataOffset + t.offset, count: t.byteCount, what: t.name)
                #expect(sha256Hex(bytes) == w["sha256"] as? String, "\(name) \(type): \(t.name)'s bytes differ from llama-quantize's")
            }
        }
    }

    @Test("verify names the sliding window when a prompt passes it, and only then")
    func verifyComparesTheWindow() throws {
        let tmp = try Fixtures.tempDir("family-verify")
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let a = try Verifier.Loaded(try FamilyGolden.model("mistral", in: tmp))
        let b = try Verifier.Loaded(try FamilyGolden.model("mistral-nowindow", in: tmp))
        let short = try Verifier.compare(a, b, prompts: ["Hi"])
        #expect(short.pass, "\(short.failures)")
        let long = try Verifier.compare(a, b, prompts: ["Hi", String(repeating: "the quick brown fox ", count: 4)])
        #expect(!long.pass && long.prompts.isEmpty, "\(long.failures)")
        #expect(long.failures.contains { $0.contains("sliding_window (layer 0): reference 8, candidate none") }, "\(long.failures)")
        // Qwen2 against a model without biases is a different architecture.
        var p = try #require(try Release.open(FamilyGolden.model("qwen2", in: tmp)).parameters)
        let q = p
        p.family = nil
        #expect(ArchitectureCheck.differences(q, p).contains { $0.hasPrefix("attention biases: reference q/k/v (qwen2), candidate none (llama)") })
    }

    @Test("billa generate's greedy tokens on its GGUF are llama.cpp's (llama-simple) on the converter's", arguments: ["mistral", "qwen2"])
    func greedyMatchesLlama(name: String) throws {
        let tmp = try Fixtures.tempDir("family-greedy")
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        var o = GGUFExportOptions(recipe: .f32)
        o.sourceTypes = true
        if name == "qwen2" { o.tokenizerPre = "qwen2" }
        try GGUFExport.plan(source: Fixtures.path("families/" + name), options: o).write(to: tmp + "/m.gguf")
        let want = try #require((FamilyGolden.json["llama"] as? [String: Any])?[name] as? [String: Any])
        let model = try Verifier.Loaded(tmp + "/m.gguf")
        let prompt = try #require(FamilyGolden.json["prompt"] as? String)
        let ids = try model.tokenize(prompt)
        let new = try model.generate(prompt, count: try #require(want["n_predict"] as? Int), sampler: Sampler()) { _ in }
        let tok = try #require(model.tokenizer)
        // llama-simple prints every token as llama_token_to_piece(special: true) renders it, then a newline.
        var printed = [UInt8]()
        for id in ids + new { printed += FamilyGolden.llamaPiece(tok, id) }
        printed.append(0x0A)
        #expect(FamilyGolden.hex(printed) == want["greedy_hex"] as? String,
                "\(name): billa printed \(String(decoding: printed, as: UTF8.self).debugDescription), llama-simple \((want["greedy_text"] as? String ?? "").debugDescription)")
    }

    private func expectSameTensors(_ a: String, _ b: String) throws {
        let ra = try Release.open(a), rb = try Release.open(b)
        let tb = Dictionary(rb.tensors.map { ($0.1.name, $0.1) }, uniquingKeysWith: { x, _ in x })
        #expect(Set(ra.tensors.map(\.1.name)) == Set(tb.keys), "\(a) and \(b) hold other tensors")
        for (_, t) in ra.tensors {
            guard let u = tb[t.name] else { continue }
            let x = try t.withBytes { Array($0) }, y = try u.withBytes { Array($0) }
            #expect(t.dtype == u.dtype && t.shape == u.shape && x == y, "\(t.name) differs between \(a) and \(b)")
        }
    }
}
