import Foundation
import Testing
@testable import BillaKit
#if canImport(Glibc)
import Glibc
#endif

/// The built `billa`, run as a user runs it, for the rules on outputs: inputs are never written over, existing
/// outputs need --force, and an interrupted or killed command leaves nothing that looks like an output.
enum BillaProcess {
    static var binary: String? { CLITests.binary }

    static func run(_ args: [String]) throws -> CLITests.Run { try CLITests().billa(args, stdin: nil) }

    /// Starts `billa args`, waits until a name starting with `.BASE.billa-tmp-` appears in `dir` (the write has
    /// begun), sends `signal`, and returns how the process ended and its stderr.
    /// Spawned with posix_spawn, the signal mask emptied and the three signals at their default action: `Process`
    /// would hand the child the mask of the test's worker thread, where every signal is blocked, and a billa that
    /// does nothing about signals would then ignore them instead of dying of them as it does under a shell.
    /// `namePrefix`, when given, waits instead for a temporary whose name starts with it (a later file of a set).
    static func interrupt(_ args: [String], watching dir: String, base: String, namePrefix: String? = nil,
                          with sig: Int32) throws -> (status: Int32, signaled: Bool, stderr: String, sawTemporary: Bool) {
        let exe = try #require(binary, "the billa binary was not built next to the tests")
        let errPath = dir + "/.stderr-\(UUID().uuidString)"
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var empty = sigset_t(), defaults = sigset_t()
        sigemptyset(&empty)
        sigemptyset(&defaults)
        for s in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigmask(&attr, &empty)
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv: [UnsafeMutablePointer<CChar>?] = ([exe] + args).map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, exe, &actions, &attr, argv, environ)
        try #require(rc == 0, "posix_spawn: \(rc)")
        var saw = false
        var status: Int32 = 0
        var ended = false
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline {
            if waitpid(pid, &status, WNOHANG) == pid { ended = true; break }
            let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
            let ready: (String) -> Bool = { n in
                if let namePrefix { return n.hasPrefix(namePrefix) && n.contains(".billa-tmp-") }
                return n.hasPrefix(".\(base).billa-tmp-")
            }
            if names.contains(where: ready) {
                saw = true
                break
            }
            usleep(2_000)
        }
        if saw { kill(pid, sig) }
        if !ended { waitpid(pid, &status, 0) }
        let err = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        unlink(errPath)
        // WIFSIGNALED / WEXITSTATUS, which Swift does not import
        let signaled = (status & 0x7f) != 0 && (status & 0x7f) != 0x7f
        return (signaled ? (status & 0x7f) : (status >> 8) & 0xff, signaled, err, saw)
    }
}

/// A Hugging Face directory of one LLaMA-7B decoder layer at its real shapes (dim 4096, 32 heads, ffn 11008), f16,
/// the tensor data a sparse file of zeros (so making it costs no disk writes), with the tiny fixture's tokenizer
/// and 512 embedding rows to match it. Converting or quantizing it writes about 400 MB: long enough to interrupt.
enum RealShapeModel {
    static func make(in dir: String) throws -> String {
        let model = dir + "/layer7b"
        try FileManager.default.createDirectory(atPath: model, withIntermediateDirectories: true)
        let dim = 4096, ffn = 11008, vocab = 512
        var tensors: [(String, [Int])] = [("model.embed_tokens.weight", [vocab, dim]), ("model.norm.weight", [dim]), ("lm_head.weight", [vocab, dim])]
        let l = "model.layers.0."
        for n in ["q_proj", "k_proj", "v_proj", "o_proj"] { tensors.append((l + "self_attn.\(n).weight", [dim, dim])) }
        tensors += [(l + "mlp.gate_proj.weight", [ffn, dim]), (l + "mlp.up_proj.weight", [ffn, dim]), (l + "mlp.down_proj.weight", [dim, ffn]),
                    (l + "input_layernorm.weight", [dim]), (l + "post_attention_layernorm.weight", [dim])]
        var header = [String]()
        var offset = 0
        for (name, shape) in tensors {
            let bytes = shape.reduce(2, *)
            header.append("\"\(name)\":{\"dtype\":\"F16\",\"shape\":[\(shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + bytes)]}")
            offset += bytes
        }
        var json = Array(("{" + header.joined(separator: ",") + "}").utf8)
        while (json.count + 8) % 8 != 0 { json.append(0x20) }
        var file = [UInt8]()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { file += $0 }
        file += json
        let path = model + "/model.safetensors"
        #expect(FileManager.default.createFile(atPath: path, contents: Data(file)))
        let fd = open(path, O_WRONLY)
        #expect(fd >= 0 && ftruncate(fd, off_t(file.count + offset)) == 0)
        close(fd)
        let config = """
            {"architectures": ["LlamaForCausalLM"], "hidden_size": \(dim), "intermediate_size": \(ffn), "num_attention_heads": 32,
             "num_hidden_layers": 1, "num_key_value_heads": 32, "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "vocab_size": \(vocab),
             "max_position_embeddings": 2048, "tie_word_embeddings": false, "torch_dtype": "float16", "model_type": "llama",
             "bos_token_id": 1, "eos_token_id": 2}
            """
        try config.write(toFile: model + "/config.json", atomically: false, encoding: .utf8)
        try FileManager.default.copyItem(atPath: Fixtures.path("tiny-hf-st/tokenizer.model"), toPath: model + "/tokenizer.model")
        return model
    }
}

@Suite("inputs are never written over; existing outputs need --force")
struct InputProtectionTests {
    func sha(_ path: String) throws -> String { try Checksummer.hashFile(path, algorithm: .sha256).digest }

    /// A private copy of a fixture directory, so a test that went wrong cannot damage the fixture.
    func copy(_ fixture: String, into dir: String) throws -> String {
        let to = dir + "/" + (fixture as NSString).lastPathComponent
        try FileManager.default.copyItem(atPath: Fixtures.path(fixture), toPath: to)
        return to
    }

    @Test("convert DIR -o DIR/model.safetensors --to gguf is refused, even with --force, and the weights stay as they were")
    func convertOntoItsOwnWeights() throws {
        let dir = try Fixtures.tempDir("guard-self")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let src = try copy("tiny-hf-st", into: dir)
        let weights = src + "/model-00001-of-00002.safetensors"
        let before = try sha(weights)
        for extra in [[], ["--force"]] {
            let r = try BillaProcess.run(["convert", src, "-o", weights, "--to", "gguf"] + extra)
            #expect(r.status == 2, "exit \(r.status): \(r.stderr)")
            #expect(r.stderr.contains(weights) && r.stderr.contains("billa never writes over"), "\(r.stderr)")
            #expect(try sha(weights) == before)
        }
        // The source directory itself, and a directory that holds it.
        for out in [src, dir] {
            let r = try BillaProcess.run(["convert", src, "-o", out, "--to", "meta", "--force"])
            #expect(r.status == 2, "exit \(r.status): \(r.stderr)")
            #expect(r.stderr.contains(out + ":"), "\(r.stderr)")
        }
        #expect(try sha(weights) == before)
        let names = try FileManager.default.contentsOfDirectory(atPath: src).sorted()
        #expect(names == (try FileManager.default.contentsOfDirectory(atPath: Fixtures.path("tiny-hf-st")).sorted()))
    }

    @Test("an output that is a symlink or a hard link to an input is refused, with or without --force")
    func linksToInputs() throws {
        let dir = try Fixtures.tempDir("guard-links")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let src = try copy("tiny-hf-st", into: dir)
        let tok = src + "/tokenizer.model"
        let before = try sha(tok)
        #expect(symlink(tok, dir + "/sym.model") == 0)
        #expect(link(tok, dir + "/hard.model") == 0)
        for out in [dir + "/sym.model", dir + "/hard.model"] {
            for extra in [[], ["--force"]] {
                let r = try BillaProcess.run(["vocab", "merge", tok, tok, "-o", out] + extra)
                #expect(r.status == 2, "exit \(r.status): \(r.stderr)")
                #expect(r.stderr.contains("is \(tok)") || r.stderr.contains(tok), "\(r.stderr)")
            }
        }
        #expect(try sha(tok) == before)
        // A symlinked parent directory of the input, named as a directory output.
        #expect(symlink(src, dir + "/alias") == 0)
        let r = try BillaProcess.run(["reshard", dir + "/alias", "-o", dir + "/alias", "--per-layer", "--force"])
        #expect(r.status == 2, "\(r.stderr)")
        #expect(try sha(tok) == before)
    }

    @Test("every write command refuses an existing output unless --force, naming it; with --force it is replaced")
    func existingOutputs() throws {
        let dir = try Fixtures.tempDir("guard-exists")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let hf = Fixtures.path("tiny-hf-st"), meta = Fixtures.path("tiny-meta"), tok = Fixtures.path("tiny-hf-st/tokenizer.model")
        let pack = dir + "/m.billa"
        let made = try BillaProcess.run(["pack", hf, "-o", pack, "--quiet"])
        try #require(made.status == 0, "\(made.stderr)")
        let deltaFixture = Fixtures.path("recover/delta/delta")
        // Each command with a file output (true) or a directory output (false).
        let commands: [(String, [String], Bool)] = [
            ("convert", ["convert", meta, "--to", "hf"], false),
            ("convert --to gguf", ["convert", hf, "--to", "gguf"], true),
            ("quantize", ["quantize", hf, "--type", "q8_0"], true),
            ("pack", ["pack", hf], true),
            ("unpack", ["unpack", pack, "--to", "hf"], false),
            ("unpack --to safetensors", ["unpack", pack, "--to", "safetensors"], true),
            ("reshard", ["reshard", hf, "--per-layer"], false),
            ("vocab merge", ["vocab", "merge", tok, tok], true),
            ("vocab resize", ["vocab", "resize", hf, "--tokenizer", tok], false),
            ("recover delta", ["recover", "delta", "--base", hf, "--delta", deltaFixture], false),
            ("recover weight-diff", ["recover", "weight-diff", "--raw", hf, "--diff", Fixtures.path("recover/weight-diff/diff")], false),
            ("recover billa", ["recover", "billa", "--release", Fixtures.path("recover/billa/release"),
                               "--llama", Fixtures.path("recover/billa/llama/consolidated.00.pth")], false),
        ]
        for (i, (label, args, isFile)) in commands.enumerated() {
            let out = dir + "/out\(i)"
            if isFile {
                #expect(FileManager.default.createFile(atPath: out, contents: Data("keep".utf8)))
            } else {
                try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: false)
                #expect(FileManager.default.createFile(atPath: out + "/keep", contents: Data("keep".utf8)))
            }
            let refused = try BillaProcess.run(args + ["-o", out, "--quiet"])
            #expect(refused.status == 2, "\(label): exit \(refused.status): \(refused.stderr)")
            #expect(refused.stderr.contains(out) && refused.stderr.contains("pass --force to replace it"), "\(label): \(refused.stderr)")
            let kept = isFile ? out : out + "/keep"
            #expect(FileManager.default.contents(atPath: kept) == Data("keep".utf8), "\(label): the existing output was changed")
            let replaced = try BillaProcess.run(args + ["-o", out, "--quiet", "--force"])
            #expect(replaced.status == 0, "\(label) --force: \(replaced.stderr)")
            #expect(FileManager.default.contents(atPath: kept) != Data("keep".utf8), "\(label) --force did not replace the output")
            let left = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".billa-") }
            #expect(left.isEmpty, "\(label) left \(left)")
        }
    }

    @Test("recover xor: an existing decrypted file needs --force; the key and the .enc file are never outputs")
    func xorOutputs() throws {
        let dir = try Fixtures.tempDir("guard-xor")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let x = try copy("recover/xor", into: dir)
        let args = ["recover", "xor", x + "/weights.bin.6f222eb4.enc", "--key", x + "/key.bin", "--chunk-size", "4096", "--quiet"]
        let out = dir + "/dec"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: false)
        #expect(FileManager.default.createFile(atPath: out + "/weights.bin", contents: Data("keep".utf8)))
        let refused = try BillaProcess.run(args + ["-o", out])
        #expect(refused.status == 2 && refused.stderr.contains(out + "/weights.bin") && refused.stderr.contains("pass --force to replace it"), "\(refused.stderr)")
        #expect(FileManager.default.contents(atPath: out + "/weights.bin") == Data("keep".utf8))
        let replaced = try BillaProcess.run(args + ["-o", out, "--force"])
        #expect(replaced.status == 0, "\(replaced.stderr)")
        #expect(FileManager.default.contentsEqual(atPath: out + "/weights.bin", andPath: x + "/weights.bin"))
        // Decrypting into the directory that holds weights.bin (as the key here): its own name would replace the key.
        let key = x + "/weights.bin"
        let before = try sha(key)
        let r = try BillaProcess.run(["recover", "xor", x + "/weights.bin.6f222eb4.enc", "--key", key, "-o", x, "--force", "--quiet"])
        #expect(r.status == 2 && r.stderr.contains("billa never writes over"), "\(r.stderr)")
        #expect(try sha(key) == before)
    }

    @Test("OutputGuard: files of an input directory, shard sets, and directories that hold inputs")
    func guardRules() throws {
        let dir = try Fixtures.tempDir("guard-lib")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let src = try copy("tiny-hf-st", into: dir)
        func refused(_ out: String, _ kind: OutputGuard.Kind, inputs: [String], force: Bool = true) -> Bool {
            (try? OutputGuard.check(inputs: inputs, outputs: [.init(out, kind)], force: force)) == nil
        }
        #expect(refused(src + "/tokenizer.model", .file, inputs: [src]))
        #expect(refused(src + "/config.json", .file, inputs: [src]))
        #expect(refused(src, .directory, inputs: [src]))
        #expect(refused(dir, .directory, inputs: [src]))
        #expect(refused(dir, .directory, inputs: [src + "/tokenizer.model"]))
        // Reading one file of a shard set reads the set.
        #expect(refused(src + "/model-00002-of-00002.safetensors", .file, inputs: [src + "/model-00001-of-00002.safetensors"]))
        // A new file beside the inputs is fine; an existing unrelated one needs force.
        #expect(!refused(src + "/new.gguf", .file, inputs: [src], force: false))
        #expect(FileManager.default.createFile(atPath: dir + "/other", contents: Data()))
        #expect(refused(dir + "/other", .file, inputs: [src], force: false))
        #expect(!refused(dir + "/other", .file, inputs: [src], force: true))
        #expect(OutputGuard.mayReplace(dir + "/other"))
        // The files of an existing pack shard set `pack -o m.billa --max-shard-size` would write.
        #expect(FileManager.default.createFile(atPath: dir + "/m-00001-of-00002.billa", contents: Data()))
        #expect(FileManager.default.createFile(atPath: dir + "/m-x-00001-of-00002.billa", contents: Data()))
        #expect(OutputGuard.existingPackShards(of: dir + "/m.billa") == [dir + "/m-00001-of-00002.billa"])
        // A directory named as a file output is refused even with force.
        try FileManager.default.createDirectory(atPath: dir + "/d", withIntermediateDirectories: false)
        #expect(refused(dir + "/d", .file, inputs: [src]))
    }
}

@Suite("interrupts and crashes leave nothing behind", .serialized)
struct InterruptTests {
    func leftovers(_ dir: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".billa-") }
    }

    @Test("SIGINT during convert --to meta at real shapes: exit 130, no temporary, no output", arguments: [SIGINT, SIGHUP])
    func interruptConvert(_ sig: Int32) throws {
        let dir = try Fixtures.tempDir("sigint")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let model = try RealShapeModel.make(in: dir)
        let out = dir + "/out"
        let r = try BillaProcess.interrupt(["convert", model, "-o", out, "--to", "meta", "--quiet"], watching: dir, base: "out", with: sig)
        #expect(r.sawTemporary, "the command ended before it began writing: \(r.stderr)")
        #expect(!r.signaled && r.status == 128 + sig, "\(r.signaled ? "killed by signal" : "exit") \(r.status): \(r.stderr)")
        let left = try leftovers(dir)
        #expect(left.isEmpty, "left \(left)")
        #expect(!FileManager.default.fileExists(atPath: out))
        #expect(r.stderr.contains("removed"), "\(r.stderr)")
    }

    @Test("SIGTERM during quantize at real shapes: exit 143, no .NAME.gguf.billa-tmp-PID-0, no output")
    func terminateQuantize() throws {
        let dir = try Fixtures.tempDir("sigterm")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let model = try RealShapeModel.make(in: dir)
        let out = dir + "/q.gguf"
        let r = try BillaProcess.interrupt(["quantize", model, "-o", out, "--type", "q8_0", "--quiet"], watching: dir, base: "q.gguf", with: SIGTERM)
        #expect(r.sawTemporary, "the command ended before it began writing: \(r.stderr)")
        #expect(!r.signaled && r.status == 143, "\(r.signaled ? "killed by signal" : "exit") \(r.status): \(r.stderr)")
        let left = try leftovers(dir)
        #expect(left.isEmpty, "left \(left)")
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    @Test("kill -9 during convert leaves no output under its name, only a temporary the next run removes")
    func killedConvert() throws {
        let dir = try Fixtures.tempDir("sigkill")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let model = try RealShapeModel.make(in: dir)
        let out = dir + "/out"
        let r = try BillaProcess.interrupt(["convert", model, "-o", out, "--to", "meta", "--quiet"], watching: dir, base: "out", with: SIGKILL)
        #expect(r.sawTemporary && r.signaled && r.status == SIGKILL)
        #expect(!FileManager.default.fileExists(atPath: out))
        let stale = try leftovers(dir)
        #expect(stale.count == 1 && stale[0].hasPrefix(".out.billa-tmp-"), "\(stale)")
        // The next run of the same command (a small model, the same output name) removes it and says so.
        let again = try BillaProcess.run(["convert", Fixtures.path("tiny-hf-st"), "-o", out, "--to", "meta", "--quiet"])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(again.stderr.contains("removed \(dir)/\(stale.first ?? "?")"), "\(again.stderr)")
        #expect(try leftovers(dir).isEmpty)
    }

    @Test("stale temporaries of a dead PID are removed and named; a live process's are kept")
    func staleTemporaries() throws {
        let dir = try Fixtures.tempDir("stale")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let dead: Int32 = 2_147_483_000   // above any pid_max: kill(2) says ESRCH
        #expect(kill(dead, 0) != 0 && errno == ESRCH)
        let live = getpid()   // this test process
        let staleDir = dir + "/.out.billa-tmp-\(dead)", staleFile = dir + "/.q.gguf.billa-tmp-\(dead)-0"
        let liveFile = dir + "/.q.gguf.billa-tmp-\(live)-0"
        try FileManager.default.createDirectory(atPath: staleDir, withIntermediateDirectories: false)
        #expect(FileManager.default.createFile(atPath: staleDir + "/consolidated.00.pth", contents: Data(count: 100)))
        #expect(FileManager.default.createFile(atPath: staleFile, contents: Data(count: 100)))
        #expect(FileManager.default.createFile(atPath: liveFile, contents: Data(count: 100)))
        let convert = try BillaProcess.run(["convert", Fixtures.path("tiny-hf-st"), "-o", dir + "/out", "--to", "meta", "--quiet"])
        #expect(convert.status == 0, "\(convert.stderr)")
        #expect(convert.stderr.contains("removed \(staleDir)") && convert.stderr.contains("process \(dead)"), "\(convert.stderr)")
        #expect(!FileManager.default.fileExists(atPath: staleDir))
        let quantize = try BillaProcess.run(["quantize", Fixtures.path("tiny-hf-st"), "-o", dir + "/q.gguf", "--type", "q8_0", "--quiet"])
        #expect(quantize.status == 0, "\(quantize.stderr)")
        #expect(!FileManager.default.fileExists(atPath: staleFile))
        #expect(FileManager.default.fileExists(atPath: liveFile), "the temporary of a running process was removed")
    }

    @Test("a directory output replaced with --force goes through .NAME.billa-old-PID and leaves nothing")
    func forcedDirectoryReplace() throws {
        let dir = try Fixtures.tempDir("force-dir")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = dir + "/out"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: false)
        #expect(FileManager.default.createFile(atPath: out + "/old-file", contents: Data("x".utf8)))
        try OutputGuard.check(inputs: [Fixtures.path("tiny-hf-st")], outputs: [.init(out, .directory)], force: true)
        try Converter.plan(source: Fixtures.path("tiny-hf-st"), destination: out, options: ConvertOptions(target: .meta)).execute()
        #expect(!FileManager.default.fileExists(atPath: out + "/old-file"))
        #expect(FileManager.default.fileExists(atPath: out + "/consolidated.00.pth"))
        #expect(try leftovers(dir).isEmpty)
    }
}
