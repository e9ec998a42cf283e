import Foundation
import Testing
@testable import BillaKit

/// End-to-end: the built `billa` binary, its exit codes and its JSON.
@Suite("billa command line")
struct CLITests {
    struct Run {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    /// BILLA_TEST_BINARY runs the command-line tests against another build (to check that they fail on an older
    /// billa); otherwise the binary built next to the tests.
    static let binary: String? = {
        if let other = ProcessInfo.processInfo.environment["BILLA_TEST_BINARY"] { return other }
        let root = URL(fileURLWithPath: Fixtures.root).deletingLastPathComponent().deletingLastPathComponent().path
        let candidates = [
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path + "/billa",
            root + "/.build/debug/billa",
        ]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    func billa(_ args: String...) throws -> Run { try billa(args, stdin: nil) }

    func billa(_ args: [String], stdin: Data?) throws -> Run {
        let exe = try #require(CLITests.binary, "the billa binary was not built next to the tests")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        if let stdin {
            let input = Pipe()
            p.standardInput = input
            try input.fileHandleForWriting.write(contentsOf: stdin)
            try input.fileHandleForWriting.close()
        }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Run(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }

    @Test("inspect --json has format, parameters, tensors and the vocabulary check")
    func inspectJSON() throws {
        let r = try billa("inspect", Fixtures.path("tiny-meta"), "--json")
        #expect(r.status == 0, "\(r.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(json["format"] as? String == "meta")
        let params = try #require(json["parameters"] as? [String: Any])
        #expect(params["dim"] as? Int == 64 && params["n_kv_heads"] as? Int == 2)
        #expect(json["parameter_count"] as? Int == Fixtures.manifest.models["tiny-meta"]?.parameters)
        let tensors = try #require(json["tensors"] as? [[String: Any]])
        #expect(tensors.count == 44)
        #expect(tensors.allSatisfy { $0["name"] is String && $0["dtype"] is String && $0["shape"] is [Int] && $0["bytes"] is Int })
        let vocab = try #require(json["vocab"] as? [String: Any])
        #expect(vocab["embedding"] as? Int == 512 && vocab["tokenizer"] as? Int == 512 && vocab["consistent"] as? Bool == true)
    }

    @Test("inspect warns on a vocabulary mismatch")
    func inspectMismatch() throws {
        let r = try billa("inspect", Fixtures.path("mismatch"))
        #expect(r.status == 0)
        #expect(r.stdout.contains("MISMATCH"))
        #expect(r.stderr.contains("warning: vocabulary sizes disagree"))
    }

    @Test("hostile input exits non-zero with the file named and no crash")
    func hostileExit() throws {
        let r = try billa("inspect", Fixtures.path("hostile/pickle-os-system.pth"))
        #expect(r.status == 2, "bad input exits 2")
        #expect(r.stderr.contains("pickle-os-system.pth") && r.stderr.contains("os.system") && r.stderr.contains("remedy"))
    }

    @Test("checksum output is what md5sum prints, and --check exits non-zero on a failure")
    func checksumCommands() throws {
        let e = try #require(Fixtures.manifest.files["tiny-meta/consolidated.00.pth"])
        let r = try billa("checksum", "--algorithm", "md5", Fixtures.path("tiny-meta/consolidated.00.pth"))
        #expect(r.stdout == "\(e.md5)  \(Fixtures.path("tiny-meta/consolidated.00.pth"))\n")
        let ok = try billa("checksum", "--check", Fixtures.path("tiny-meta/checklist.chk"))
        #expect(ok.status == 0 && ok.stdout.contains("consolidated.01.pth: OK"))

        let dir = try TemporaryDirectory()
        try "\(String(repeating: "0", count: 32))  \(Fixtures.path("tiny-meta/params.json"))\n".write(toFile: dir.path + "/c.chk", atomically: true, encoding: .utf8)
        let bad = try billa("checksum", "--check", dir.path + "/c.chk", "--json")
        #expect(bad.status == 1)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(bad.stdout.utf8)) as? [String: Any])
        #expect(json["command"] as? String == "checksum" && json["ok"] as? Bool == false)
        #expect((json["files"] as? [[String: Any]])?.first?["status"] as? String == "FAILED")
    }

    @Test("checksum --per-tensor --json lists each tensor")
    func perTensorJSON() throws {
        let r = try billa("checksum", "--per-tensor", Fixtures.path("views/views.pth"), "--json")
        #expect(r.status == 0)
        let json = try #require((try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])?["tensors"] as? [[String: Any]])
        let expected = try #require(Fixtures.manifest.files["views/views.pth"]?.tensors)
        for item in json {
            let name = try #require(item["name"] as? String)
            #expect(item["digest"] as? String == expected[name]?.sha256, "\(name)")
        }
    }

    @Test("verify exits 0 on a lossless pair, 1 when the candidate is not the model, and --json has the keys")
    func verifyExitCodes() throws {
        let ok = try billa("verify", Fixtures.path("tiny-meta"), Fixtures.path("tiny-hf-st"), "--json", "--prompt", "Hello world")
        #expect(ok.status == 0, "\(ok.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(ok.stdout.utf8)) as? [String: Any])
        for key in ["ok", "max_abs_diff", "kld_mean", "top1_agreement", "ppl"] { #expect(json[key] != nil, "missing \(key)") }
        #expect(json["ok"] as? Bool == true && json["command"] as? String == "verify")
        let bad = try billa("verify", Fixtures.path("verify/trained"), Fixtures.path("tiny-hf-st"), "--prompt", "Hello world")
        #expect(bad.status == 1)
        #expect(bad.stdout.contains("FAIL"))
    }

    @Test("tokenize prints pieces; vocab audit --json has the issue's keys and fails an inconsistent model")
    func tokenizeAndAudit() throws {
        let t = try billa("tokenize", Fixtures.path("tokenizers/llama-tokenizer.model"), "Hello 世界", "--pieces")
        #expect(t.status == 0)
        #expect(t.stdout == "▁Hello ▁ 世 界\n")
        let a = try billa("vocab", "audit", Fixtures.path("tiny-hf-st"), "--corpus", Fixtures.path("tokenizer/corpus-en.jsonl"), "--json")
        #expect(a.status == 0, "\(a.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(a.stdout.utf8)) as? [String: Any])
        #expect(json["pieces"] as? Int == 512 && json["ok"] as? Bool == true)
        let cov = try #require(json["coverage"] as? [String: Any])
        for key in ["tokens_per_char", "byte_fallback_rate", "unk_rate"] {
            #expect((cov[key] as? [String: Any])?["overall"] != nil, "coverage.\(key).overall")
        }
        // ids from sentencepiece 0.2.3: encode("Hello") == [15043], encode("世界") == [29871, 30793, 30967]
        let lines = try billa(["tokenize", Fixtures.path("tokenizers/llama-tokenizer.model")], stdin: Data("Hello\r\n世界\n".utf8))
        #expect(lines.status == 0 && lines.stdout == "15043\n29871 30793 30967\n", "\(lines.stdout)")
        let bad = try billa(["tokenize", Fixtures.path("tokenizers/llama-tokenizer.model")], stdin: Data([0x61, 0xFF, 0x62, 0x0A]))
        #expect(bad.status == 2 && bad.stderr.contains("not valid UTF-8"), "\(bad.stderr)")
        let m = try billa("vocab", "audit", Fixtures.path("mismatch"))
        #expect(m.status == 1, "an inconsistent model fails the audit")
    }

    @Test("recover billa takes a negative --expect-sum as a value and refuses a mismatch, writing nothing")
    func recoverExpectSum() throws {
        let r = Fixtures.path("recover/billa")
        let out = NSTemporaryDirectory() + "billa-cli-recover-\(getpid())"
        try? FileManager.default.removeItem(atPath: out)
        let bad = try billa("recover", "billa", "--release", r + "/release", "--llama", r + "/llama/consolidated.00.pth", "-o", out,
                            "--expect-sum", "-3756.942626953125", "--quiet")
        #expect(bad.status != 0 && bad.stderr.contains("LLaMA"), "\(bad.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out))
        // expected.json's double sum, from the generator's torch run
        let ok = try billa("recover", "billa", "--release", r + "/release", "--llama", r + "/llama/consolidated.00.pth", "-o", out,
                           "--expect-sum", "1.767326533794403", "--quiet")
        #expect(ok.status == 0, "\(ok.stderr)")
    }

    @Test("convert --dry-run writes nothing; convert then inspect; recover xor creates its output directory")
    func convertAndXor() throws {
        let out = NSTemporaryDirectory() + "billa-cli-convert-\(getpid())"
        try? FileManager.default.removeItem(atPath: out)
        let dry = try billa("convert", Fixtures.path("tiny-meta"), "-o", out, "--to", "hf", "--dry-run", "--json")
        #expect(dry.status == 0 && !FileManager.default.fileExists(atPath: out), "\(dry.stderr)")
        #expect(dry.stdout.contains("model.layers.0.self_attn.q_proj.weight"))
        let real = try billa("convert", Fixtures.path("tiny-meta"), "-o", out, "--to", "hf", "--quiet")
        #expect(real.status == 0, "\(real.stderr)")
        let check = try billa("verify", Fixtures.path("tiny-meta"), out, "--prompt", "Hello", "--quiet")
        #expect(check.status == 0, "\(check.stdout)")
        let x = Fixtures.path("recover/xor")
        let xo = NSTemporaryDirectory() + "billa-cli-xor-\(getpid())/nested"
        try? FileManager.default.removeItem(atPath: xo)
        let dec = try billa("recover", "xor", x + "/weights.bin.6f222eb4.enc", "--key", x + "/key.bin", "-o", xo, "--chunk-size", "4096", "--quiet")
        #expect(dec.status == 0, "\(dec.stderr)")
        #expect(FileManager.default.contentsEqual(atPath: xo + "/weights.bin", andPath: x + "/weights.bin"))
    }

    @Test("convert --to gguf: --max-position-embeddings and --name reach the file, --quiet prints nothing, --name is refused for hf")
    func convertToGGUF() throws {
        let out = TinyGGUF.tempPath("cli-convert.gguf")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let r = try billa("convert", Fixtures.path("tiny-meta"), "-o", out, "--to", "gguf", "--max-position-embeddings", "4096",
                          "--name", "tiny-2", "--quiet")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.isEmpty && r.stderr.isEmpty, "--quiet printed: \(r.stdout)\(r.stderr)")
        let g = try GGUFReader.open(out)
        #expect(g.metadata["llama.context_length"] == .u32(4096))
        #expect(g.metadata["general.name"]?.stringValue == "tiny-2")
        #expect(g.tensor(named: "blk.0.attn_q.weight")?.dtype == .f16)
        // Without --quiet: the summary and the note about Meta's unrecorded context length.
        // (over the first output: --force)
        let loud = try billa("convert", Fixtures.path("tiny-meta"), "-o", out, "--to", "gguf", "--dtype", "q8_0", "--force")
        #expect(loud.status == 0 && loud.stdout.contains("wrote \(out)") && loud.stdout.contains("context_length is 2048"), "\(loud.stdout)")
        #expect(try GGUFReader.open(out).tensor(named: "blk.0.attn_q.weight")?.dtype == .q8_0)
        let bad = try billa("convert", Fixtures.path("tiny-meta"), "-o", out + ".hf", "--to", "hf", "--name", "x")
        #expect(bad.status == 64 && bad.stderr.contains("--name"), "an option that does not apply is a usage error: \(bad.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out + ".hf"))
    }

    @Test("quantize writes llama-quantize's file, --dry-run --json lists the types and writes nothing, --quiet is quiet, errors name the remedy")
    func quantizeCommand() throws {
        let src = try TinyGGUF.path.get()
        let out = TinyGGUF.tempPath("cli-q4_k_m.gguf")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let dry = try billa("quantize", src, "-o", out, "--type", "q4_k_m", "--dry-run", "--json")
        #expect(dry.status == 0 && !FileManager.default.fileExists(atPath: out), "\(dry.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(dry.stdout.utf8)) as? [String: Any])
        let tensors = try #require(json["tensors"] as? [[String: Any]])
        let golden = try #require(try QuantFixtures.golden().model["q4_k_m"])
        #expect(tensors.map { $0["name"] as? String } == golden.tensors.map(\.name))
        #expect(tensors.map { ($0["target"] as? String)?.uppercased() } == golden.tensors.map { $0.type?.uppercased() })
        let r = try billa("quantize", src, "-o", out, "--type", "q4_k_m", "--threads", "2", "--quiet")
        #expect(r.status == 0 && r.stdout.isEmpty && r.stderr.isEmpty, "\(r.stdout)\(r.stderr)")
        #expect(try sha256Hex(file: out) == golden.sha256, "the CLI's file differs from llama-quantize's")
        let again = try billa("quantize", out, "-o", out + ".2", "--type", "q4_0", "--quiet")
        #expect(again.status == 2 && again.stderr.contains("--allow-requantize"), "\(again.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out + ".2"))
        let badType = try billa("quantize", src, "-o", out, "--type", "q9_9")
        #expect(badType.status != 0 && badType.stderr.contains("q9_9"))
    }

    @Test("verify --prompts FILE: the report counts the prompts given, not built-in ones; the Markdown table escapes |Δlogit|")
    func verifyPromptsFile() throws {
        let dir = try TemporaryDirectory()
        try "Hello world\nThe capital of France is | not a cell\n".write(toFile: dir.path + "/p.txt", atomically: true, encoding: .utf8)
        // (the random tiny model may fail the perplexity check; what matters here is what the report says it ran on)
        let one = try billa("verify", Fixtures.path("tiny-meta"), "--prompts", dir.path + "/p.txt", "--quiet")
        #expect(one.status == 0 || one.status == 1, "\(one.stderr)")
        #expect(!one.stdout.contains("built-in") && one.stdout.contains("2 prompts given"), "\(one.stdout)")
        let pair = try billa("verify", Fixtures.path("tiny-meta"), Fixtures.path("tiny-hf-st"), "--prompts", dir.path + "/p.txt", "--quiet")
        #expect(pair.status == 0, "\(pair.stderr)")
        // every table row has as many unescaped pipes as the header's separator row: 9 for 8 columns
        let rows = pair.stdout.split(separator: "\n").filter { $0.hasPrefix("|") }
        #expect(rows.count == 4, "header, separator, 2 prompts: \(pair.stdout)")
        for row in rows {
            let cells = row.replacingOccurrences(of: "\\|", with: "").filter { $0 == "|" }.count
            #expect(cells == 9, "a Markdown row with \(cells) cell borders: \(row)")
        }
        #expect(rows.first?.contains("max \\|Δlogit\\|") == true, "\(rows.first ?? "")")
    }

    /// An HF directory of the torch-written f32 state dict (dtypes/, make_fixtures.py) with tiny-hf-st's config.
    func f32Directory(_ dir: String) throws -> String {
        let src = dir + "/src-f32"
        try FileManager.default.createDirectory(atPath: src, withIntermediateDirectories: true)
        for f in ["config.json", "tokenizer.model"] { try FileManager.default.copyItem(atPath: Fixtures.path("tiny-hf-st/" + f), toPath: src + "/" + f) }
        try FileManager.default.copyItem(atPath: Fixtures.path("dtypes/tiny-f32.safetensors"), toPath: src + "/model.safetensors")
        return src
    }

    /// Every tensor of `dir`'s safetensors equals torch's cast in `reference`, byte for byte (the first difference named).
    func expectTensors(in dir: String, equal reference: String, dtype: DType) throws {
        let theirs = try SafetensorsReader.open(Fixtures.path(reference))
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".safetensors") }
        let mine = try files.map { try SafetensorsReader.open(dir + "/" + $0) }
        for t in theirs.tensors {
            let m = try #require(mine.lazy.compactMap { $0.tensor(named: t.name) }.first, "\(t.name) missing from \(dir)")
            #expect(m.dtype == dtype, "\(t.name) is \(m.dtype)")
            let diff = try m.withBytes { a in try t.withBytes { b in firstDifference(a, b, elementSize: dtype.size) } }
            #expect(diff == nil, "\(t.name): \(diff ?? "")")
        }
    }

    @Test("convert --to hf --dtype from an HF directory and reshard --dtype cast like torch, and config.json names the type")
    func dtypeChanges() throws {
        let dir = try TemporaryDirectory()
        let src = try f32Directory(dir.path)
        let c = try billa("convert", src, "-o", dir.path + "/bf16", "--to", "hf", "--dtype", "bf16", "--quiet")
        #expect(c.status == 0, "\(c.stderr)")
        #expect(c.stderr.contains("narrowing") && c.stderr.contains("f32 -> bf16"), "the narrowing is stated: \(c.stderr)")
        try expectTensors(in: dir.path + "/bf16", equal: "dtypes/tiny-bf16.safetensors", dtype: .bf16)
        let config = try String(contentsOfFile: dir.path + "/bf16/config.json", encoding: .utf8)
        #expect(config.contains("\"dtype\": \"bfloat16\""), "\(config)")
        let r = try billa("reshard", src, "-o", dir.path + "/f16", "--per-layer", "--dtype", "f16", "--quiet")
        #expect(r.status == 0, "\(r.stderr)")
        try expectTensors(in: dir.path + "/f16", equal: "dtypes/tiny-f16.safetensors", dtype: .f16)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path + "/f16").filter { $0.hasSuffix(".safetensors") }.count == 3)
        // without --dtype the same-layout convert is a usage error, as before it was a refusal
        let none = try billa("convert", src, "-o", dir.path + "/none", "--to", "hf")
        #expect(none.status == 64 && none.stderr.contains("--dtype"), "\(none.stderr)")
    }

    @Test("a dtype change to f16 refuses a value beyond 65504 naming the tensor and the value; --clamp-overflow clamps it")
    func dtypeOverflow() throws {
        let dir = try TemporaryDirectory()
        let src = dir.path + "/src"
        try FileManager.default.createDirectory(atPath: src, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Fixtures.path("tiny-hf-st/config.json"), toPath: src + "/config.json")
        // one F32 tensor [2, 2]: 1, -2, 70000, 0.5 (70000 is past f16's 65504)
        let header = #"{"model.norm.weight":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}"#
        let padded = header + String(repeating: " ", count: (8 - header.utf8.count % 8) % 8)
        var bytes = withUnsafeBytes(of: UInt64(padded.utf8.count).littleEndian) { Array($0) } + Array(padded.utf8)
        for v: Float in [1, -2, 70000, 0.5] { bytes += withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } }
        try Data(bytes).write(to: URL(fileURLWithPath: src + "/model.safetensors"))
        for cmd in [["convert", src, "-o", dir.path + "/o1", "--to", "hf", "--dtype", "f16"], ["reshard", src, "-o", dir.path + "/o2", "--max-shard-size", "1GB", "--dtype", "f16"]] {
            let r = try billa(cmd, stdin: nil)
            #expect(r.status == 2 && r.stderr.contains("model.norm.weight") && r.stderr.contains("70000") && r.stderr.contains("--clamp-overflow"),
                    "\(cmd[0]): exit \(r.status): \(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: cmd[3]), "\(cmd[0]) left an output after refusing")
            let c = try billa(cmd + ["--clamp-overflow", "--quiet"], stdin: nil)
            #expect(c.status == 0 && c.stderr.contains("clamped 1 value of model.norm.weight"), "\(cmd[0]): \(c.stderr)")
            let t = try #require(try SafetensorsReader.open(cmd[3] + "/model.safetensors").tensor(named: "model.norm.weight"))
            let halves = try t.withBytes { b in (0..<4).map { UInt16(b[2 * $0]) | UInt16(b[2 * $0 + 1]) << 8 } }
            #expect(halves == [0x3C00, 0xC000, 0x7BFF, 0x3800], "\(halves.map { String($0, radix: 16) })")
        }
    }

    @Test("quantize --tensor-type with a pattern that matches no tensor is an error naming the pattern")
    func unmatchedTensorType() throws {
        let src = try TinyGGUF.path.get()
        let out = TinyGGUF.tempPath("cli-unmatched.gguf")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let r = try billa("quantize", src, "-o", out, "--type", "q8_0", "--tensor-type", "self_attn.v_proj=q4_0")
        #expect(r.status == 2 && r.stderr.contains("'self_attn.v_proj'") && r.stderr.contains("matches no tensor"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out))
        let ok = try billa("quantize", src, "-o", out, "--type", "q8_0", "--tensor-type", "attn_v=q4_0", "--dry-run")
        #expect(ok.status == 0, "\(ok.stderr)")
    }

    static let subcommands = ["inspect", "checksum", "tokenize", "vocab merge", "vocab resize", "vocab audit", "convert", "reshard", "quantize",
                              "pack", "unpack", "verify", "generate", "perplexity", "recover billa", "recover delta", "recover xor", "recover weight-diff", "recover lora"]

    /// The argument parser wraps prose to the terminal; a line break inside a paragraph of the source shows up, at a
    /// width no paragraph reaches, as two consecutive unindented lines. Indented lines (examples) are kept as written.
    @Test("help: no hard-wrapped prose, an example in every subcommand, each option's help true for every output kind", arguments: subcommands)
    func helpReadsWell(_ command: String) throws {
        let exe = try #require(CLITests.binary)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = command.split(separator: " ").map(String.init) + ["--help"]
        p.environment = ProcessInfo.processInfo.environment.merging(["COLUMNS": "1000"]) { $1 }
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        let prose = text.components(separatedBy: "USAGE:").first ?? ""
        let lines = prose.components(separatedBy: "\n")
        for (a, b) in zip(lines, lines.dropFirst()) where !a.isEmpty && !b.isEmpty && !a.hasPrefix(" ") && !b.hasPrefix(" ") && !a.hasSuffix(":") {
            Issue.record("\(command): a paragraph is hard-wrapped between \"\(a.suffix(40))\" and \"\(b.prefix(40))\"")
        }
        #expect(prose.contains("Example"), "\(command): no examples in its help")
    }

    @Test("help of convert, inspect and unpack names every kind they take and write")
    func helpNamesFormats() throws {
        let convert = try billa("convert", "--help").stdout
        #expect(convert.components(separatedBy: "USAGE:")[0].contains("GGUF"), "convert's summary names GGUF")
        #expect(convert.contains(".gguf file"), "convert -o says it can be a .gguf file")
        let inspect = try billa("inspect", "--help").stdout
        for kind in [".gguf", "pack", ".safetensors", ".pth"] { #expect(inspect.contains(kind), "inspect's help omits \(kind)") }
        let unpack = try billa("unpack", "--help").stdout
        for kind in ["meta", "gguf", "safetensors", "hf"] { #expect(unpack.components(separatedBy: "USAGE:")[0].contains(kind), "unpack's summary omits \(kind)") }
    }
}
