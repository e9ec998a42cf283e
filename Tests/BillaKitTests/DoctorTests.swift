import Foundation
import Testing
@testable import BillaKit

/// `billa doctor`: one case per kind of fixture in Tests/Fixtures, the published-value table, and the --json
/// report decoded strictly. Expected digests come from the generators' manifest (hashlib) or from the published
/// sources the table cites, never from billa.
@Suite("billa doctor")
struct DoctorTests {
    static func diagnose(_ relative: String, hash: Bool = false, published: [PublishedValue]? = nil) throws -> DoctorReport {
        var o = ModelDoctor.Options()
        o.hash = hash
        if let published { o.published = published }
        return try ModelDoctor.diagnose(Fixtures.path(relative), options: o)
    }

    static func copy(_ fixture: String, _ tag: String, skipping: Set<String> = []) throws -> String {
        let dir = try Fixtures.tempDir(tag) + "/" + (fixture as NSString).lastPathComponent
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for name in try FileManager.default.contentsOfDirectory(atPath: Fixtures.path(fixture)) where !skipping.contains(name) {
            try FileManager.default.copyItem(atPath: Fixtures.path(fixture + "/" + name), toPath: dir + "/" + name)
        }
        return dir
    }

    static let kinds: [(String, DoctorReport.Kind)] = [
        ("tiny-meta", .metaOriginal),
        ("tiny-hf-st", .hfModel),
        ("tiny-hf-bin", .hfModel),
        ("convert/hf-bin", .notRecognised),          // shards and an index but no config.json
        ("lora/base", .hfModel),
        ("lora/peft-plain", .hfModel),
        ("mismatch", .hfModel),
        ("verify/trained", .hfModel),
        ("gguf/chat", .hfModel),
        ("gguf/alpaca", .hfModel),
        ("recover/billa/release", .billaRelease),
        ("recover/billa/trained", .billaRecovered),
        ("recover/delta/delta", .vicunaDelta),
        ("recover/weight-diff/diff", .alpacaWeightDiff),
        ("recover/xor", .belleEncrypted),
        ("recover/xor/weights.bin.6f222eb4.enc", .belleEncrypted),
        ("lora/adapter-plain", .loraAdapter),
        ("lora/adapter-rslora", .loraAdapter),
        ("lora/adapter-zh", .loraAdapter),
        ("lora/adapter-zh-2", .loraAdapter),
        ("quant/fallback/q4_0.gguf", .gguf),
        ("quant/fallback/src.gguf", .gguf),
        ("gguf-split/q8_0-00002-of-00003.gguf", .ggufSplit),
        ("pack/tiny-f16.billa", .pack),
        ("pack/tiny-meta-raw.billa", .pack),
        ("dtypes/tiny-f16.safetensors", .tensorFile),
        ("tiny-meta/consolidated.01.pth", .tensorFile),
        ("zstd", .notRecognised),
        ("zstd/plain.txt.zst", .notRecognised),
    ]

    @Test("identifies each fixture", arguments: DoctorTests.kinds.map { "\($0.0) -> \($0.1.rawValue)" })
    func identifies(_ label: String) throws {
        let (fixture, kind) = try #require(Self.kinds.first { "\($0.0) -> \($0.1.rawValue)" == label })
        let r = try Self.diagnose(fixture)
        #expect(r.kind == kind, "\(r.text)")
        if kind != .notRecognised {
            #expect(!r.next.isEmpty, "no next step: \(r.text)")
            #expect(r.next.allSatisfy { $0.hasPrefix("billa ") || $0.hasPrefix("download ") || $0.hasPrefix("cp ") || $0.hasPrefix("merge ") })
        }
    }

    @Test("Meta: shard set from wq's rows, checklist.chk hashed (small files) and all OK")
    func meta() throws {
        let r = try Self.diagnose("tiny-meta")
        #expect(r.ok, "\(r.text)")
        #expect(r.facts.contains { $0.name == "shards" && $0.value == "2 of 2 (complete)" })
        let manifest = Fixtures.manifest.files
        for name in ["consolidated.00.pth", "consolidated.01.pth", "tokenizer.model"] {
            let h = try #require(r.hashed.first { $0.file == name && $0.algorithm == "md5" }, "\(name) not hashed")
            #expect(h.digest == manifest["tiny-meta/" + name]?.md5 && h.matches == true)
        }
        #expect(r.knownFiles.isEmpty, "the tiny fixture's digests are no published ones")
        #expect(r.next.contains { $0.contains("billa convert") && $0.contains("--to hf") })
    }

    @Test("Meta: the checklist's entries are looked up in the table without hashing (planted test entries)")
    func checklistLookup() throws {
        let files = Fixtures.manifest.files
        let planted = try ["consolidated.00.pth", "consolidated.01.pth", "tokenizer.model"].map { name in
            PublishedValue(.md5(try #require(files["tiny-meta/" + name]?.md5)), model: "tiny-test", file: name, source: "DoctorTests")
        } + [PublishedValue(.md5("37d1bdac3715c68d67e2e7b9a20b3d07"), model: "tiny-test", file: "params.json", source: "tiny-meta/checklist.chk")]
        var o = ModelDoctor.Options()
        o.published = planted
        o.smallFileBytes = 0   // nothing hashed: the identity comes from checklist.chk's lines alone
        let r = try ModelDoctor.diagnose(Fixtures.path("tiny-meta"), options: o)
        #expect(r.hashed.isEmpty && r.notHashed.count == 4)
        #expect(Set(r.knownFiles.filter { $0.how == "listed in checklist.chk" }.map(\.file)) == ["consolidated.00.pth", "consolidated.01.pth", "params.json", "tokenizer.model"])
        #expect(r.title.contains("checklist.chk is tiny-test's"), "\(r.title)")
        #expect(r.next.contains { $0.hasPrefix("billa checksum --check") })
    }

    @Test("Meta: a missing shard and a changed file are errors")
    func metaBroken() throws {
        let missing = try Self.copy("tiny-meta", "doctor-missing", skipping: ["consolidated.01.pth"])
        defer { try? FileManager.default.removeItem(atPath: (missing as NSString).deletingLastPathComponent) }
        let r = try ModelDoctor.diagnose(missing)
        #expect(!r.ok && r.findings.contains { $0.level == .error && $0.text.contains("missing consolidated.01.pth") }, "\(r.text)")
        #expect(r.facts.contains { $0.name == "shards" && $0.value == "1 of 2" })

        let changed = try Self.copy("tiny-meta", "doctor-changed")
        defer { try? FileManager.default.removeItem(atPath: (changed as NSString).deletingLastPathComponent) }
        try #"{"dim": 64, "multiple_of": 32, "n_heads": 4, "n_kv_heads": 2, "n_layers": 2, "norm_eps": 1e-05, "vocab_size": -1} "#
            .write(toFile: changed + "/params.json", atomically: true, encoding: .utf8)
        let c = try ModelDoctor.diagnose(changed)
        #expect(c.hashed.first { $0.file == "params.json" }?.matches == false)
        #expect(!c.ok && c.findings.contains { $0.level == .error && $0.text.hasPrefix("params.json: md5") })
    }

    @Test("HF cache root: read at refs/main's snapshot, and says so")
    func hfCache() throws {
        let dir = try Fixtures.tempDir("doctor-hfcache")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (root, snapshot) = try HFCache.make(from: "tiny-hf-st", in: dir)
        let r = try ModelDoctor.diagnose(root)
        #expect(r.kind == .hfModel && r.resolvedPath == snapshot, "\(r.text)")
        #expect(r.facts.first?.name == "hf cache" && r.facts.first?.value.contains("billa/tiny") == true)
        let s = try ModelDoctor.diagnose(snapshot)
        #expect(s.kind == .hfModel && s.facts.first?.value.contains("snapshot \(HFCache.revision) of billa/tiny") == true)
    }

    @Test("BiLLa release: the step in the embedding's row norms is at LLaMA's vocabulary (512 rows in the fixture)")
    func billaRelease() throws {
        let expected = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Fixtures.path("recover/billa/expected.json")))) as? [String: Any]
        let changed = try #require(expected?["changed_rows"] as? Int)
        let r = try Self.diagnose("recover/billa/release")
        #expect(r.kind == .billaRelease)
        #expect(r.facts.contains { $0.name == "embedding rows" && $0.value.hasPrefix("rows [0, \(changed)) have ") }, "\(r.text)")
        #expect(r.next.contains { $0.hasPrefix("billa recover billa --release ") })
        // the recovered model has no such step
        let t = try Self.diagnose("recover/billa/trained")
        let step = try #require(t.facts.first { $0.name == "embedding rows" }?.value)
        let ratio = try #require(step.split(separator: " ").first { $0.hasSuffix("x") }.flatMap { Double($0.dropLast()) })
        #expect(ratio < DoctorHF.releaseStepRatio && t.kind == .billaRecovered, "\(step)")
    }

    @Test("deltas and diffs: norm weights centred on zero; fp32 is Alpaca's diff, fp16 a Vicuna delta")
    func differences() throws {
        let d = try Self.diagnose("recover/delta/delta")
        #expect(d.kind == .vicunaDelta && d.next.contains { $0.hasPrefix("billa recover delta --base ") })
        let w = try Self.diagnose("recover/weight-diff/diff")
        #expect(w.kind == .alpacaWeightDiff && w.next.contains { $0.hasPrefix("billa recover weight-diff --raw ") })
        // a random test model has signed norm weights too, but of order one: a model, with a warning
        let chat = try Self.diagnose("gguf/chat")
        #expect(chat.kind == .hfModel && chat.findings.contains { $0.level == .warning && $0.text.contains("randomly initialised") })
    }

    @Test("BELLE: header and name checksum; a renamed file is an error")
    func belle() throws {
        let r = try Self.diagnose("recover/xor")
        let sha = try #require((try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Fixtures.path("recover/xor/expected.json")))) as? [String: Any])?["sha256"] as? String)
        #expect(r.ok && r.facts.contains { $0.value.contains("must hash to \(sha)") }, "\(r.text)")
        #expect(r.next.contains { $0.hasPrefix("billa recover xor --key ") })
        let dir = try Fixtures.tempDir("doctor-belle")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.copyItem(atPath: Fixtures.path("recover/xor/weights.bin.6f222eb4.enc"), toPath: dir + "/weights.bin.deadbeef.enc")
        let bad = try ModelDoctor.diagnose(dir + "/weights.bin.deadbeef.enc")
        #expect(bad.kind == .belleEncrypted && !bad.ok)
    }

    @Test("LoRA: rank, alpha, base shape, the extended vocabulary", arguments: [
        ("lora/adapter-plain", "r 8, lora_alpha 16.0"), ("lora/adapter-rslora", "r 16, lora_alpha 8.0, rsLoRA"),
        ("lora/adapter-zh", "r 8, lora_alpha 32.0"), ("lora/adapter-zh-2", "r 16, lora_alpha 32.0"),
    ])
    func lora(_ fixture: String, _ rank: String) throws {
        let r = try Self.diagnose(fixture)
        #expect(r.kind == .loraAdapter && r.ok, "\(r.text)")
        #expect(r.facts.first { $0.name == "rank" }?.value == rank)
        // lora/base: hidden_size 12, 2 layers; adapter-rslora targets layer 1 only
        let layers = fixture.hasSuffix("rslora") ? "1" : "0, 1"
        #expect(r.facts.first { $0.name == "base shape" }?.value == "hidden 12, adapts layers \(layers): not a published LLaMA size")
        if fixture.contains("zh") {
            #expect(r.facts.first { $0.name == "vocabulary" }?.value == "49953 rows (modules_to_save embed_tokens/lm_head)")
            #expect(r.findings.contains { $0.text.hasPrefix("a 49953-row vocabulary with modules_to_save") })
        }
        #expect(r.next.contains { $0.hasPrefix("billa recover lora --base ") })
    }

    @Test("GGUF: type mix; a split set with a missing file is an error")
    func gguf() throws {
        let q = try Self.diagnose("quant/fallback/q4_0.gguf")
        #expect(q.facts.first { $0.name == "types" }?.value.contains("Q4_0") == true, "\(q.text)")
        let s = try Self.diagnose("gguf-split/q8_0-00001-of-00003.gguf")
        #expect(s.kind == .ggufSplit && s.ok && s.facts.contains { $0.name == "split" && $0.value == "file 1 of 3; 3 of 3 present" }, "\(s.text)")
        let dir = try Fixtures.tempDir("doctor-split")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for i in [1, 2] {
            let name = "q8_0-0000\(i)-of-00003.gguf"
            try FileManager.default.copyItem(atPath: Fixtures.path("gguf-split/" + name), toPath: dir + "/" + name)
        }
        let broken = try ModelDoctor.diagnose(dir + "/q8_0-00001-of-00003.gguf")
        #expect(broken.kind == .ggufSplit && !broken.ok && broken.findings.contains { $0.text.contains("q8_0-00003-of-00003.gguf") })
    }

    @Test("the published table: well-formed, one entry per digest, each with its source; lookups find the official file")
    func publishedTable() throws {
        var seen = Set<String>()
        for v in PublishedValues.table {
            #expect(!v.source.isEmpty && !v.model.isEmpty && !v.file.isEmpty)
            if let d = v.digest, let a = v.algorithm {
                #expect(d.count == a.hexLength && d.allSatisfy { $0.isHexDigit && !$0.isUppercase }, "\(d)")
                #expect(seen.insert(d).inserted, "\(d) twice")
            }
        }
        // values typed from the sources (github.com/shawwn/llama-dl/issues/4; Chinese-LLaMA-Alpaca SHA256.md)
        let meta = PublishedValues.lookup("6EFC8DAB194AB59E49CD24BE5574D85E")
        #expect(meta.count == 1 && meta.first?.model == "LLaMA-7B" && meta.first?.file == "consolidated.00.pth")
        let alpaca = PublishedValues.lookup("4ee0bf805c312a9a771624d481fbdb4485e1b0a70cd2a8da9f96137f177b795d")
        #expect(alpaca.first?.model == "Chinese-Alpaca-Plus-7B LoRA")
        #expect(PublishedValues.lookup("00000000000000000000000000000000").isEmpty)
    }

    @Test("a hashed file whose digest is planted in a test-only table is named as that official file")
    func plantedHash() throws {
        let md5 = try #require(Fixtures.manifest.files["tiny-hf-st/tokenizer.model"]?.md5)
        let r = try Self.diagnose("tiny-hf-st", published: [PublishedValue(.md5(md5), model: "Planted", file: "tokenizer.model", source: "DoctorTests")])
        let k = try #require(r.knownFiles.first)
        #expect(k.file == "tokenizer.model" && k.how == "hashed" && k.official == "Planted tokenizer.model")
        #expect(r.title == "Hugging Face model: Planted")
    }

    @Test("--json: one object, the convention's keys, decoded strictly; exit 0 / 1 / 2")
    func json() throws {
        let cli = CLITests()
        let run = try cli.billa("doctor", Fixtures.path("tiny-meta"), "--json")
        #expect(run.status == 0, "\(run.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        #expect(Set(object.keys) == ["command", "schema_version", "ok", "path", "kind", "title", "facts", "findings", "known_files", "hashed", "not_hashed", "next"])
        let r = try JSONDecoder().decode(DoctorReport.self, from: Data(run.stdout.utf8))
        #expect(r.command == "doctor" && r.schemaVersion == 1 && r.ok && r.kind == .metaOriginal)
        #expect(object["schema_version"] as? Int == 1)
        let hashed = try #require(object["hashed"] as? [[String: Any]])
        #expect(hashed.allSatisfy { $0["size_bytes"] is Int && $0["digest"] is String })
        #expect(r == (try Self.diagnose("tiny-meta")))

        let missing = try Self.copy("tiny-meta", "doctor-json", skipping: ["consolidated.00.pth"])
        defer { try? FileManager.default.removeItem(atPath: (missing as NSString).deletingLastPathComponent) }
        let failed = try cli.billa("doctor", missing, "--json")
        #expect(failed.status == 1)
        #expect(try JSONDecoder().decode(DoctorReport.self, from: Data(failed.stdout.utf8)).ok == false)

        let unknown = try cli.billa("doctor", Fixtures.path("zstd"))
        #expect(unknown.status == 2 && unknown.stdout.contains("not recognised") && unknown.stdout.contains("plain.txt"))
        let absent = try cli.billa("doctor", Fixtures.path("no-such-thing"))
        #expect(absent.status == 2 && absent.stderr.contains("no such file"))
    }

    /// The --hash path at BiLLa-7B-SFT's real embedding shape (46943 x 4096 f16, 384 MB, a sparse file of zeros but
    /// for its first 3757 values): -1 x 3756 and f16(-0.94) = -0.93994140625 sum to -3756.93994, within 1e-2 of the
    /// published -3756.9426 (github.com/Neutralzz/BiLLa embedding_convert.py); a planted different value must fail.
    @Test("--hash compares a BiLLa-7B-SFT-shaped embedding's sum with the published one, both ways")
    func billaPublishedSumAtRealShape() throws {
        let rows = 46943, width = 4096
        let dir = try Fixtures.tempDir("doctor-sum")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let bytes = rows * width * 2
        var header = Array(#"{"model.embed_tokens.weight":{"dtype":"F16","shape":[\#(rows),\#(width)],"data_offsets":[0,\#(bytes)]}}"#.utf8)
        while header.count % 8 != 0 { header.append(UInt8(ascii: " ")) }
        var head = withUnsafeBytes(of: UInt64(header.count).littleEndian) { Array($0) } + header
        let minusOne = Float16(-1).bitPattern, last = Float16(-0.94).bitPattern
        #expect(Float(Float16(-0.94)) == -0.93994140625)
        for _ in 0..<3756 { head.append(UInt8(minusOne & 0xFF)); head.append(UInt8(minusOne >> 8)) }
        head.append(UInt8(last & 0xFF)); head.append(UInt8(last >> 8))
        let path = dir + "/model.safetensors"
        try Data(head).write(to: URL(fileURLWithPath: path))
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try h.truncate(atOffset: UInt64(8 + header.count + bytes))
        try h.close()
        let t = try #require(try SafetensorsReader.open(MappedFile(path: path)).tensor(named: "model.embed_tokens.weight"))

        var o = ModelDoctor.Options()
        o.hash = true
        var r = DoctorReport(path: dir, kind: .billaRecovered, title: "t")
        try DoctorHF.billaSum(t, into: &r, ModelDoctor.Context(options: o))
        #expect(r.title.hasPrefix("BiLLa-7B-SFT, recovered correctly") && !r.findings.contains { $0.level == .error },
                "\(r.title): \(r.findings)")

        o.published = [PublishedValue(.sum(-3700, tolerance: 1e-2), model: "planted", file: BillaRecovery.embeddingName + " (planted)", source: "test")]
        var bad = DoctorReport(path: dir, kind: .billaRecovered, title: "t")
        try DoctorHF.billaSum(t, into: &bad, ModelDoctor.Context(options: o))
        #expect(bad.findings.contains { $0.level == .error && $0.text.contains("-3756.93994140625") && $0.text.contains("-3700") }, "\(bad.findings)")
    }

    @Test("the embedding probe at BiLLa's layout: 33000 rows, the step found exactly at LLaMA's 32000 from a sample")
    func embeddingStepAtRealRows() throws {
        let rows = 33000, width = 128
        let dir = try Fixtures.tempDir("doctor-step")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // rows [0, 32000) hold 0.5, the rest 0.25 (both exact in f16): a norm ratio of exactly 2
        var data = [UInt8]()
        data.reserveCapacity(rows * width * 2)
        for r in 0..<rows {
            let bits = (r < 32000 ? Float16(0.5) : Float16(0.25)).bitPattern
            for _ in 0..<width { data.append(UInt8(bits & 0xFF)); data.append(UInt8(bits >> 8)) }
        }
        var header = Array(#"{"model.embed_tokens.weight":{"dtype":"F16","shape":[\#(rows),\#(width)],"data_offsets":[0,\#(data.count)]}}"#.utf8)
        while header.count % 8 != 0 { header.append(UInt8(ascii: " ")) }
        var file = withUnsafeBytes(of: UInt64(header.count).littleEndian) { Array($0) }
        file += header + data
        let path = dir + "/embedding.safetensors"
        try Data(file).write(to: URL(fileURLWithPath: path))
        let t = try #require(try SafetensorsReader.open(MappedFile(path: path)).tensor(named: "model.embed_tokens.weight"))
        let step = try #require(try WeightProbe.largestStep(t))
        #expect(step.boundary == 32000 && abs(step.ratio - 2) < 1e-12 && step.sampled < 400, "\(step)")
        // one 4096-wide row: norm sqrt(4096 * 0.25^2) = 16
        let wide = dir + "/wide.safetensors"
        let bits = Float16(0.25).bitPattern
        var row = [UInt8]()
        for _ in 0..<(4 * 4096) { row.append(UInt8(bits & 0xFF)); row.append(UInt8(bits >> 8)) }
        var h2 = Array(#"{"w":{"dtype":"F16","shape":[4,4096],"data_offsets":[0,\#(row.count)]}}"#.utf8)
        while h2.count % 8 != 0 { h2.append(UInt8(ascii: " ")) }
        try Data(withUnsafeBytes(of: UInt64(h2.count).littleEndian) { Array($0) } + h2 + row).write(to: URL(fileURLWithPath: wide))
        let w = try #require(try SafetensorsReader.open(MappedFile(path: wide)).tensor(named: "w"))
        #expect(try WeightProbe.rowNorm(w, 3) == 16)
    }


    @Test("real published files among the fixtures: Meta's tokenizer.model (md5, tokenizer_checklist.chk) and Chinese-LLaMA's (SHA-256)")
    func realPublishedTokenizers() throws {
        // Tests/Fixtures/tokenizers/PROVENANCE.md: lora/base carries LLaMA's original tokenizer (md5 eeec4125...)
        let base = try Self.diagnose("lora/base")
        let meta = try #require(base.knownFiles.first { $0.file == "tokenizer.model" && $0.algorithm == "md5" }, "\(base.text)")
        #expect(meta.model == "LLaMA (all sizes)" && meta.digest == "eeec4125e9c7560836b4873b6f8e3025" && meta.source.contains("shawwn/llama-dl/issues/4"))
        // lora/adapter-zh ships Chinese-LLaMA-Alpaca's merged tokenizer, whose SHA-256 is in its SHA256.md
        let zh = try Self.diagnose("lora/adapter-zh")
        let cla = try #require(zh.knownFiles.first { $0.file == "tokenizer.model" && $0.algorithm == "sha256" }, "\(zh.text)")
        #expect(cla.model == "Chinese-LLaMA (7B, 13B, 33B)" && cla.source.contains("Chinese-LLaMA-Alpaca SHA256.md"))
    }

}
