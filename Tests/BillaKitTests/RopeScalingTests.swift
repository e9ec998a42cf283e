import Foundation
import Testing
@testable import BillaKit

/// transformers' logits and convert_hf_to_gguf.py's GGUF rope metadata for the tiny weights under each rope
/// scaling (scripts/fixtures/make_rope_fixtures.py).
enum RopeGolden {
    nonisolated(unsafe) static let json: [String: Any] = {
        guard let data = FileManager.default.contents(atPath: Fixtures.path("rope/golden.json")),
              let o = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            preconditionFailure("Tests/Fixtures/rope/golden.json is unreadable; regenerate with scripts/fixtures/make_rope_fixtures.py")
        }
        return o
    }()
    static let names = ["unscaled", "linear", "linear-legacy", "dynamic", "yarn", "yarn-params", "llama3"]
    static let scaled = names.filter { $0 != "unscaled" }
    static var sequences: [[Int]] { json["sequences"] as? [[Int]] ?? [] }

    /// (logits, vocab, largest |logit|) of model `name` on sequence `i`.
    static func logits(_ name: String, _ i: Int) throws -> (values: [Float], vocab: Int, scale: Double) {
        let runs = try #require((json["models"] as? [String: Any])?[name] as? [[String: Any]])
        let run = runs[i]
        let file = try #require(run["logits"] as? String), shape = try #require(run["shape"] as? [Int])
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("rope/" + file)))
        return (data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }, shape[1], try #require(run["max_abs_logit"] as? Double))
    }

    static func gguf(_ name: String) -> [String: Any] { ((json["gguf"] as? [String: Any])?[name] as? [String: Any]) ?? [:] }
    static var realShape: [String: Any] { json["real_shape"] as? [String: Any] ?? [:] }

    /// An HF directory: tiny-hf-st's weights and tokenizer under the config of `name`.
    static func model(_ name: String, in dir: String) throws -> String {
        let d = dir + "/" + name
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        for f in try FileManager.default.contentsOfDirectory(atPath: Fixtures.path("tiny-hf-st")) where f != "config.json" {
            try FileManager.default.copyItem(atPath: Fixtures.path("tiny-hf-st/" + f), toPath: d + "/" + f)
        }
        try FileManager.default.copyItem(atPath: Fixtures.path("rope/\(name).config.json"), toPath: d + "/config.json")
        return d
    }

    /// Runs `path` on every sequence and reports the first element off by more than 1e-4 of the logit scale
    /// (ForwardTests' bound) against transformers' logits of `name`.
    static func check(_ path: String, against name: String, sequences: [Int]? = nil, label: String) throws {
        let weights = try LlamaWeights(Release.open(path))
        let lm = LlamaModel(weights)
        for i in sequences ?? Array(0..<RopeGolden.sequences.count) {
            let ids = RopeGolden.sequences[i]
            let want = try logits(name, i)
            let got = try lm.forward(ids, cache: KVCache(for: weights, capacity: ids.count))
            if let d = VerifyGolden.firstDifference(got, want.values, vocab: want.vocab, tol: Float(1e-4 * want.scale)) {
                Issue.record("\(label), sequence \(i) (\(ids.count) tokens): \(d)")
            }
        }
    }
}

@Suite("RoPE scaling: config, forward pass, conversions, GGUF, verify")
struct RopeScalingTests {
    @Test("billa's logits equal transformers' for every rope type", arguments: RopeGolden.names)
    func forwardMatchesTransformers(name: String) throws {
        let tmp = try Fixtures.tempDir("rope-fwd")
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        try RopeGolden.check(try RopeGolden.model(name, in: tmp), against: name, label: name)
    }

    /// The fixture's premise, checked on billa: dynamic NTK changes nothing within max_position_embeddings (24), and
    /// every scaling changes the 64-token logits.
    @Test func dynamicOnlyActsPastTheContext() throws {
        let tmp = try Fixtures.tempDir("rope-dyn")
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        try RopeGolden.check(try RopeGolden.model("dynamic", in: tmp), against: "unscaled", sequences: [0], label: "dynamic within 24 positions")
        let long = try RopeGolden.logits("dynamic", 1), plain = try RopeGolden.logits("unscaled", 1)
        #expect(zip(long.values, plain.values).map { abs($0 - $1) }.max()! > 1e-3)
    }

    @Test func bothSpellingsReadTheSame() throws {
        let tmp = try Fixtures.tempDir("rope-spell")
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let a = try Release.open(try RopeGolden.model("linear", in: tmp)).parameters
        let b = try Release.open(try RopeGolden.model("linear-legacy", in: tmp)).parameters
        #expect(a?.ropeScaling == RopeScaling(type: .linear, factor: 4))
        #expect(a == b)
        #expect(a?.ropeTheta == 500000)
        let y = try #require(try Release.open(try RopeGolden.model("yarn-params", in: tmp)).parameters?.ropeScaling)
        #expect(y.type == .yarn && y.factor == 8 && y.originalContextLength == 16 && y.attentionFactor == 1.25)
        #expect(y.betaFast == 16 && y.betaSlow == 2 && y.truncate == false)
    }

    /// Unknown rope types, longrope and model types of no supported family are refused by name.
    @Test(arguments: [
        ("rope_parameters", #"{"rope_type": "longrope", "rope_theta": 10000.0, "short_factor": [1], "long_factor": [1]}"#, "longrope"),
        ("rope_parameters", #"{"rope_type": "stretchy", "rope_theta": 10000.0, "factor": 2.0}"#, "stretchy"),
        ("rope_scaling", #"{"type": "su", "factor": 2.0}"#, "su"),
        ("rope_parameters", #"{"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0, "warp": 3}"#, "warp"),
        ("model_type", #""gemma""#, "gemma"),
        ("model_type", #""qwen3""#, "qwen3"),
    ])
    func refusedByName(key: String, value: String, name: String) throws {
        let tmp = try Fixtures.tempDir("rope-refuse")
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let d = try RopeGolden.model("unscaled", in: tmp)
        var config = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: d + "/config.json"))) as? [String: Any])
        config[key] = try JSONSerialization.jsonObject(with: Data(value.utf8), options: .fragmentsAllowed)
        if key == "rope_scaling" { config["rope_parameters"] = nil }   // transformers 4's spelling alone
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: d + "/config.json"))
        do {
            _ = try Release.open(d)
            Issue.record("\(key) \(value) was accepted")
        } catch let e as BillaError {
            #expect(e.code == .unsupported && e.message.contains("'\(name)'"), "\(e)")
        }
    }

    @Test func metaUseScaledRopeIsLlama31() throws {
        let tmp = try Fixtures.tempDir("rope-meta")
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        for f in try FileManager.default.contentsOfDirectory(atPath: Fixtures.path("tiny-meta")) {
            try FileManager.default.copyItem(atPath: Fixtures.path("tiny-meta/" + f), toPath: tmp + "/" + f)
        }
        var params = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: tmp + "/params.json"))) as? [String: Any])
        params["use_scaled_rope"] = true
        params["rope_theta"] = 500000.0
        try JSONSerialization.data(withJSONObject: params).write(to: URL(fileURLWithPath: tmp + "/params.json"))
        let s = try #require(try Release.open(tmp).parameters?.ropeScaling)
        #expect(s.type == .llama3 && s.factor == 8 && s.lowFreqFactor == 1 && s.highFreqFactor == 4 && s.originalContextLength == 8192)
    }

    /// HF -> Meta -> HF keeps every parameter of the scaling, and both outputs still give transformers' logits.
    @Test("HF -> Meta -> HF keeps the scaling", arguments: RopeGolden.scaled)
    func metaRoundTrip(name: String) throws {
        let tmp = try Fixtures.tempDir("rope-rt")
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let src = try RopeGolden.model(name, in: tmp)
        let before = try #require(try Release.open(src).parameters)
        let toMeta = try Converter.plan(source: src, destination: tmp + "/meta", options: ConvertOptions(target: .meta))
        if before.ropeScaling != RopeScaling.metaLlama31 {
            #expect(toMeta.notes.contains { $0.contains("rope_scaling") && $0.contains("Meta's reference code ignores") }, "\(toMeta.notes)")
        }
        try toMeta.execute()
        #expect(try Release.open(tmp + "/meta").parameters?.ropeScaling == before.ropeScaling)
        try Converter.plan(source: tmp + "/meta", destination: tmp + "/hf", options: ConvertOptions(target: .hf)).execute()
        let after = try #require(try Release.open(tmp + "/hf").parameters)
        #expect(after.ropeScaling == before.ropeScaling && after.ropeTheta == before.ropeTheta)
        try RopeGolden.check(tmp + "/meta", against: name, label: "\(name) as Meta")
        try RopeGolden.check(tmp + "/hf", against: name, label: "\(name) back to HF")
    }

    /// billa's GGUF has convert_hf_to_gguf.py's rope keys and rope_freqs.weight, reads back to the same scaling
    /// (llama3 as its factors), and runs to transformers' logits; dynamic, which GGUF cannot hold, is a note.
    @Test("HF -> GGUF writes the rope as convert_hf_to_gguf.py", arguments: RopeGolden.names)
    func ggufExport(name: String) throws {
        let tmp = try Fixtures.tempDir("rope-gguf")
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let src = try RopeGolden.model(name, in: tmp)
        let plan = try GGUFExport.plan(source: src, options: GGUFExportOptions(recipe: .f32))
        try plan.write(to: tmp + "/m.gguf")
        let g = try GGUFReader.open(tmp + "/m.gguf")
        let want = RopeGolden.gguf(name)
        let keys = try #require(want["keys"] as? [String: Any])
        for (k, v) in keys where k != "llama.context_length" {
            let got = g.metadata[k]
            switch v {
            case let s as String: #expect(got?.stringValue == s, "\(name): \(k) = \(String(describing: got)), convert_hf_to_gguf \(s)")
            case let n as NSNumber:
                #expect(got?.doubleValue.map { Float($0) } == Float(n.doubleValue), "\(name): \(k) = \(String(describing: got)), convert_hf_to_gguf \(n)")
            default: Issue.record("\(name): \(k) has an unexpected golden value \(v)")
            }
        }
        let ours = g.metadata.entries.map { $0.key }.filter { $0.hasPrefix("llama.rope.") && keys[$0] == nil }
        #expect(ours.isEmpty, "\(name): billa writes \(ours), convert_hf_to_gguf.py does not")
        let freqs = g.tensor(named: "rope_freqs.weight")
        if let wantFreqs = want["rope_freqs"] as? [String: Any] {
            let values = try #require(wantFreqs["values"] as? [Double]).map(Float.init)
            let t = try #require(freqs, "\(name): no rope_freqs.weight")
            #expect(t.dtype == .f32 && t.shape == [values.count])
            let got = try g.release().files[0].tensor(named: "rope_freqs.weight")!.withBytes { b in
                (0..<values.count).map { b.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) }
            }
            if let i = got.indices.first(where: { got[$0] != values[$0] }) {
                Issue.record("\(name): rope_freqs.weight[\(i)] = \(got[i]), convert_hf_to_gguf \(values[i])")
            }
        } else {
            #expect(freqs == nil, "\(name): billa writes rope_freqs.weight, convert_hf_to_gguf.py does not")
        }
        if name == "dynamic" {
            #expect(plan.notes.contains { $0.contains("GGUF cannot hold dynamic NTK") }, "\(plan.notes)")
            try RopeGolden.check(tmp + "/m.gguf", against: "unscaled", label: "dynamic as GGUF (unscaled)")
        } else if name == "yarn-params" {
            // truncate false has no GGUF key: the file runs yarn with truncation, as llama.cpp does, and says so
            #expect(plan.notes.contains { $0.contains("truncate false") }, "\(plan.notes)")
            #expect(try Release.open(tmp + "/m.gguf").parameters?.ropeScaling?.truncate == nil)
        } else {
            try RopeGolden.check(tmp + "/m.gguf", against: name, label: "\(name) as GGUF")
        }
    }

    @Test func packKeepsTheScaling() throws {
        let tmp = try Fixtures.tempDir("rope-pack")
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let src = try RopeGolden.model("yarn-params", in: tmp)
        _ = try Packer.pack(Release.open(src), options: PackOptions(), to: tmp + "/m.billa")
        #expect(try Release.open(tmp + "/m.billa").parameters?.ropeScaling == Release.open(src).parameters?.ropeScaling)
        try RopeGolden.check(tmp + "/m.billa", against: "yarn-params", label: "yarn-params as a pack")
    }

    /// The scaled model against its unscaled twin fails on the architecture, before any prompt (it used to PASS with
    /// max |Δlogit| 0); against its own GGUF (llama3 as factors) it has no architecture difference.
    @Test func verifyComparesTheArchitectureFirst() throws {
        let tmp = try Fixtures.tempDir("rope-verify")
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let plain = try Verifier.Loaded(try RopeGolden.model("unscaled", in: tmp))
        for name in RopeGolden.scaled {
            let scaled = try Verifier.Loaded(try RopeGolden.model(name, in: tmp))
            let r = try Verifier.compare(plain, scaled, prompts: ["The capital of France is"])
            #expect(!r.pass && r.prompts.isEmpty && r.positions == 0, "\(name): \(r.failures)")
            #expect(r.failures.contains { $0.contains("rope_scaling") && $0.contains("reference none") }, "\(name): \(r.failures)")
        }
        let a = try Verifier.Loaded(tmp + "/yarn"), b = try Verifier.Loaded(tmp + "/yarn-params")
        let r = try Verifier.compare(a, b, prompts: ["x"])
        for field in ["factor", "original_max_position_embeddings", "attention_factor", "beta_fast", "beta_slow", "truncate"] {
            #expect(r.failures.contains { $0.contains("rope_scaling.\(field):") }, "\(field) not named: \(r.failures)")
        }
        try GGUFExport.plan(source: tmp + "/llama3", options: GGUFExportOptions(recipe: .f32)).write(to: tmp + "/l.gguf")
        let hf = try #require(try Release.open(tmp + "/llama3").parameters), gguf = try #require(try Release.open(tmp + "/l.gguf").parameters)
        #expect(gguf.ropeScaling?.type == .freqFactors)
        #expect(ArchitectureCheck.differences(hf, gguf).isEmpty, "\(ArchitectureCheck.differences(hf, gguf))")
        var other = hf
        other.normEps = 1e-6
        other.nKVHeads = 4
        #expect(ArchitectureCheck.differences(hf, other) == ["n_kv_heads: reference 2, candidate 4", "norm_eps: reference 1e-05, candidate 1e-06"])
    }

    @Test func verifyCommandExitsOneNamingTheField() throws {
        let tmp = try Fixtures.tempDir("rope-cli")
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let r = try CLITests().billa("verify", try RopeGolden.model("unscaled", in: tmp), try RopeGolden.model("llama3", in: tmp))
        #expect(r.status == 1, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("rope_scaling") && r.stdout.contains("llama3"), "\(r.stdout)")
        #expect(!r.stdout.contains("| prompt |") && !r.stdout.contains("positions:"), "no prompt ran, so no table: \(r.stdout)")
    }

    /// inspect's text names the scaling (it used to print only rope theta), with the numbers of the fixture's
    /// config.json; its GGUF's per-frequency factors are counted, one per rotated pair (head_dim 16: 8).
    @Test func inspectTextShowsTheScaling() throws {
        let tmp = try Fixtures.tempDir("rope-inspect")
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let dir = try RopeGolden.model("llama3", in: tmp)
        let r = try CLITests().billa("inspect", dir)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("rope theta 500000, rope scaling type llama3, factor 8, original_max_position_embeddings 64, low_freq_factor 1, high_freq_factor 4\n"), "\(r.stdout)")
        let plain = try CLITests().billa("inspect", try RopeGolden.model("unscaled", in: tmp))
        #expect(plain.stdout.contains("rope scaling none\n"), "\(plain.stdout)")
        try GGUFExport.plan(source: dir, options: GGUFExportOptions(recipe: .f32)).write(to: tmp + "/l.gguf")
        let g = try CLITests().billa("inspect", tmp + "/l.gguf")
        #expect(g.stdout.contains("rope scaling type rope_freqs.weight") && g.stdout.contains("rope_freqs 8 factors\n"), "\(g.stdout)")
    }

    /// Llama-3.1-8B's rope_freqs.weight (head_dim 128, Meta's constants) equals what convert_hf_to_gguf.py computes.
    @Test func llama3FactorsAtRealShape() throws {
        let rs = RopeGolden.realShape
        let want = try #require(rs["rope_freqs"] as? [Double]).map(Float.init)
        let got = RopeFrequencies.llama3Factors(theta: 500000, headDim: 128, RopeScaling.metaLlama31)
        #expect(got.count == 64 && want.count == 64)
        if let i = got.indices.first(where: { got[$0] != want[$0] }) {
            Issue.record("rope_freqs[\(i)] = \(got[i]), convert_hf_to_gguf \(want[i])")
        }
    }

    /// transformers' inverse frequencies at head_dim 128 for every type (dynamic at 16384 positions over 8192).
    @Test func inverseFrequenciesAtRealShape() throws {
        let rs = try #require(RopeGolden.realShape["transformers"] as? [String: [String: Any]])
        for (name, entry) in rs.sorted(by: { $0.key < $1.key }) {
            let rp = try #require(entry["rope_parameters"] as? [String: Any])
            let config: [String: Any] = ["rope_parameters": rp, "max_position_embeddings": 8192]
            let rope = try RopeScaling.fromHFConfig(config, file: "golden")
            let p = ModelParameters(dim: 4096, nLayers: 1, nHeads: 32, nKVHeads: 8, ffnDim: nil, vocabSize: nil, normEps: 1e-5,
                                    ropeTheta: rope.theta, ropeScaling: rope.scaling)
            let got = RopeFrequencies.compute(p, seqLen: (entry["seq_len"] as? Int) ?? 1)
            let want = try #require(entry["inv_freq"] as? [Double]).map(Float.init)
            if let i = want.indices.first(where: { abs(got.invFreq[$0] - want[$0]) > 2e-6 * abs(want[$0]) }) {
                Issue.record("\(name): inv_freq[\(i)] = \(got.invFreq[i]), transformers \(want[i])")
            }
            let a = try #require(entry["attention_factor"] as? Double)
            #expect(abs(Double(got.attention) - a) < 1e-6, "\(name): attention factor \(got.attention), transformers \(a)")
        }
    }
}
