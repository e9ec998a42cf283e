import Foundation
import Testing
@testable import BillaKit

/// The exit statuses are one contract for every command (README, "Exit status"): 0 success, 1 a check that ran and
/// failed, 2 bad input or an I/O error, 64 usage. One case per status per command family, through the binary.
@Suite("exit statuses")
struct ExitCodeTests {
    let cli = CLITests()
    static let missing = "/nonexistent/billa-exit-test"

    /// Every command family, with arguments that make it fail on a missing input (2) and an option it lacks (64).
    static let families: [(name: String, missingInput: [String], unknownOption: [String])] = [
        ("inspect", ["inspect", missing], ["inspect", Fixtures.path("tiny-meta"), "--no-such-option"]),
        ("checksum", ["checksum", missing], ["checksum", "--no-such-option", missing]),
        ("tokenize", ["tokenize", missing, "hi"], ["tokenize", "--no-such-option", missing, "hi"]),
        ("vocab", ["vocab", "audit", missing], ["vocab", "audit", "--no-such-option", missing]),
        ("convert", ["convert", missing, "-o", "/tmp/billa-exit-never", "--to", "hf"], ["convert", missing, "-o", "/tmp/x", "--to", "hf", "--no-such-option"]),
        ("recover", ["recover", "delta", "--base", missing, "--delta", missing, "-o", "/tmp/billa-exit-never"], ["recover", "delta", "--no-such-option"]),
        ("reshard", ["reshard", missing, "-o", "/tmp/billa-exit-never", "--shards", "1"], ["reshard", missing, "--no-such-option"]),
        ("quantize", ["quantize", missing, "-o", "/tmp/billa-exit-never.gguf", "--type", "q8_0"], ["quantize", missing, "-o", "/tmp/x.gguf", "--type", "q8_0", "--no-such-option"]),
        ("pack", ["pack", missing, "-o", "/tmp/billa-exit-never.billa"], ["pack", missing, "-o", "/tmp/x.billa", "--no-such-option"]),
        ("unpack", ["unpack", missing, "-o", "/tmp/billa-exit-never", "--to", "hf"], ["unpack", missing, "--no-such-option"]),
        ("verify", ["verify", missing], ["verify", missing, "--no-such-option"]),
        ("generate", ["generate", missing, "--prompt", "hi"], ["generate", missing, "--no-such-option"]),
        ("perplexity", ["perplexity", missing, "-f", missing], ["perplexity", missing, "--no-such-option"]),
    ]

    @Test("2: every command on a missing input names it and exits 2", arguments: families.map(\.name))
    func badInput(family: String) throws {
        let f = try #require(Self.families.first { $0.name == family })
        let r = try cli.billa(f.missingInput, stdin: nil)
        #expect(r.status == 2, "\(family): exit \(r.status): \(r.stderr)")
        #expect(r.stderr.contains(Self.missing), "\(family): the error must name the file: \(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "/tmp/billa-exit-never"))
    }

    @Test("64: every command refuses an unknown option as a usage error", arguments: families.map(\.name))
    func unknownOption(family: String) throws {
        let f = try #require(Self.families.first { $0.name == family })
        let r = try cli.billa(f.unknownOption, stdin: nil)
        #expect(r.status == 64, "\(family): exit \(r.status): \(r.stderr)")
    }

    @Test("64: conflicting options and options that do not apply to the chosen output")
    func conflictingOptions() throws {
        let cases: [[String]] = [
            ["checksum", "--check", Fixtures.path("tiny-meta/checklist.chk"), "--per-tensor"],
            ["convert", Fixtures.path("tiny-meta"), "-o", "/tmp/billa-exit-never", "--to", "hf", "--shards", "2"],
            ["convert", Fixtures.path("tiny-hf-st"), "-o", "/tmp/billa-exit-never", "--to", "meta", "--max-shard-size", "1GB"],
            ["convert", Fixtures.path("tiny-meta"), "-o", "/tmp/billa-exit-never.gguf", "--to", "gguf", "--format", "pth"],
            ["convert", Fixtures.path("tiny-meta"), "-o", "/tmp/billa-exit-never", "--to", "meta", "--split-max-tensors", "3"],
            ["recover", "billa", "--release", Fixtures.path("tiny-hf-st"), "--llama", Fixtures.path("tiny-meta")],
            ["generate", Fixtures.path("verify/trained"), "--prompt", "hi", "-n", "0"],
            // issue 16: every option/target pair that does not apply, and conflicting cuts of one output
            ["convert", Fixtures.path("tiny-meta"), "-o", "/tmp/billa-exit-never", "--to", "meta", "--max-position-embeddings", "4096"],
            ["convert", Fixtures.path("tiny-meta"), "-o", "/tmp/billa-exit-never", "--to", "hf", "--dtype", "q8_0"],
            ["convert", Fixtures.path("tiny-meta"), "-o", "/tmp/billa-exit-never", "--to", "hf", "--clamp-overflow"],
            ["convert", Fixtures.path("tiny-meta"), "-o", "/tmp/billa-exit-never.gguf", "--to", "gguf", "--split-max-tensors", "3", "--max-shard-size", "1GB"],
            ["convert", Fixtures.path("tiny-meta"), "-o", "/tmp/billa-exit-never", "--to", "hf", "--max-shard-size", "lots"],
            ["convert", Fixtures.path("tiny-hf-st"), "-o", "/tmp/billa-exit-never", "--to", "hf"],
            ["convert", Fixtures.path("tiny-hf-st"), "-o", "/tmp/billa-exit-never", "--to", "hf", "--dtype", "bf16", "--max-position-embeddings", "4096"],
            ["convert", Fixtures.path("tiny-hf-st"), "-o", "/tmp/billa-exit-never", "--to", "hf", "--dtype", "bf16", "--drop-unknown"],
            ["reshard", Fixtures.path("tiny-hf-st"), "-o", "/tmp/billa-exit-never", "--per-layer", "--clamp-overflow"],
            ["reshard", Fixtures.path("tiny-hf-st"), "-o", "/tmp/billa-exit-never", "--per-layer", "--shards", "2"],
            ["quantize", Fixtures.path("tiny-meta"), "-o", "/tmp/billa-exit-never.billa", "--type", "q8_0", "--format", "pack", "--max-shard-size", "1GB"],
            ["quantize", Fixtures.path("tiny-meta"), "-o", "/tmp/billa-exit-never.gguf", "--type", "q8_0", "--split-max-tensors", "3", "--max-shard-size", "1GB"],
            ["pack", Fixtures.path("tiny-meta"), "-o", "/tmp/billa-exit-never.billa", "--quantize", "q8_0", "--max-shard-size", "1GB"],
            ["pack", Fixtures.path("tiny-meta"), "-o", "/tmp/billa-exit-never.billa", "--raw", "--chunk-size", "64KiB"],
            ["recover", "lora", "--base", Fixtures.path("lora/base"), Fixtures.path("lora/adapter-plain"), "-o", "/tmp/billa-exit-never", "--shards", "2"],
            ["recover", "weight-diff", "--raw", Fixtures.path("tiny-hf-st"), "--diff", Fixtures.path("recover/weight-diff/diff"), "-o", "/tmp/billa-exit-never", "--tolerance", "1"],
            ["pack", Fixtures.path("tiny-meta"), "-o", "/tmp/billa-exit-never.billa", "--raw", "--level", "19"],
            ["checksum", "--check", Fixtures.path("tiny-meta/checklist.chk"), "--algorithm", "md5"],
            ["tokenize", Fixtures.path("tokenizers/llama-tokenizer.model"), "hi", "--json", "--pieces"],
            ["tokenize", Fixtures.path("tokenizers/llama-tokenizer.model"), "hi", "--count", "--ids"],
            ["generate", Fixtures.path("verify/trained"), "--prompt", "hi", "--top-p", "0.9"],
            ["generate", Fixtures.path("verify/trained"), "--prompt", "hi", "--seed", "7"],
            ["verify", Fixtures.path("tiny-meta"), "--max-kld", "0.1"],
            ["verify", "--checksums", Fixtures.path("pack/tiny-hf-st.billa"), "--prompt", "hi"],
            ["verify", "--checksums", Fixtures.path("pack/tiny-hf-st.billa"), Fixtures.path("tiny-hf-st")],
        ]
        for args in cases {
            let r = try cli.billa(args, stdin: nil)
            #expect(r.status == 64, "\(args.joined(separator: " ")): exit \(r.status): \(r.stderr)")
        }
        for never in ["/tmp/billa-exit-never", "/tmp/billa-exit-never.gguf", "/tmp/billa-exit-never.billa"] {
            #expect(!FileManager.default.fileExists(atPath: never), "\(never) was written")
        }
    }

    @Test("1: a check that ran and failed (checksum --check, verify, vocab audit); 0 when it passes")
    func checkFailed() throws {
        let dir = try TemporaryDirectory()
        try "\(String(repeating: "0", count: 32))  \(Fixtures.path("tiny-meta/params.json"))\n"
            .write(toFile: dir.path + "/c.chk", atomically: true, encoding: .utf8)
        let cases: [(args: [String], want: Int32)] = [
            (["checksum", "--check", Fixtures.path("tiny-meta/checklist.chk")], 0),
            (["checksum", "--check", dir.path + "/c.chk"], 1),
            (["verify", Fixtures.path("verify/trained"), Fixtures.path("tiny-hf-st"), "--prompt", "Hello world"], 1),
            (["vocab", "audit", Fixtures.path("mismatch")], 1),
            (["inspect", Fixtures.path("tiny-meta")], 0),
        ]
        for c in cases {
            let r = try cli.billa(c.args, stdin: nil)
            #expect(r.status == c.want, "\(c.args.joined(separator: " ")): exit \(r.status), want \(c.want): \(r.stderr)")
        }
    }
}
