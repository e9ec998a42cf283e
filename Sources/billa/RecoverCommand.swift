import ArgumentParser
import BillaKit
import Foundation

struct Recover: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Recover usable weights from a release published as a difference to LLaMA.",
        subcommands: [RecoverBilla.self, RecoverDelta.self, RecoverWeightDiff.self, RecoverXor.self, RecoverLoRA.self])
}

struct RecoverBilla: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "billa",
        abstract: "Recover BiLLa's embedding with the original LLaMA weights (embedding_convert.py, streaming).",
        discussion: """
            Rows [0, n) of model.embed_tokens.weight become fp32(released) - fp32(LLaMA tok_embeddings), n being
            LLaMA's vocabulary; the whole embedding is then cast to fp16 (round to nearest even). Only LLaMA's
            embedding is read. The output is a complete HF directory (other files hard-linked where possible).
            The sum of the recovered embedding (accumulated in double) is reported and, with --expect-sum or for
            BiLLa-7B-SFT, checked: a mismatch means the LLaMA copy is not the original one.
            """)

    @Option(name: .long, help: "The BiLLa release directory (config.json + pytorch_model-*.bin).")
    var release: String

    @Option(name: .long, help: "LLaMA-7B's consolidated.00.pth, its Meta directory, or an HF LLaMA directory.")
    var llama: String

    @Option(name: .shortAndLong, help: "The directory to create (not with --in-place).")
    var output: String?

    @Option(name: .long, parsing: .unconditional, help: "The expected sum of the recovered embedding (BiLLa-7B-SFT: -3756.942626953125).")
    var expectSum: Double?

    @Option(name: .long, help: "Tolerance for --expect-sum (absolute).")
    var tolerance: Double = 1e-2

    @Flag(name: .long, help: "Rewrite only the embedding shard inside --release, after keeping <shard>.backup-<time>.")
    var inPlace = false

    @Flag(name: .long, help: "The inverse: add LLaMA's embedding (fp32 result), producing a publishable release.")
    var encrypt = false

    @Flag(name: .long, help: "Print the plan; write nothing.")
    var dryRun = false

    @OptionGroup var report: ReportOptions
    @OptionGroup var write: WriteOptions

    func validate() throws {
        if inPlace == (output != nil) { throw ValidationError("give either -o OUT or --in-place") }
    }

    struct Result: Encodable {
        var shard: String
        var rows: Int
        var changedRows: Int
        var sum: Double
        var expectedSum: Double?
        var matches: Bool?
        var output: OutputReport
        var backups: [String]
    }

    func run() throws {
        try reportingErrors {
            if let output, !dryRun { try write.check([output], .directory, inputs: [release, llama]) }
            var o = BillaRecovery.Options(release: release, llama: llama)
            o.output = output
            o.inPlace = inPlace
            o.encrypt = encrypt
            o.expectSum = expectSum
            let job = try BillaRecovery.plan(o)
            var plan = job.plan
            if dryRun {
                if report.json { try printJSON(plan.report(dryRun: true)) } else { print(plan.describe(), terminator: "") }
                return
            }
            let sum = job.sum
            let tol = tolerance
            if let expected = job.expectedSum {
                plan.verify = {
                    guard abs(sum.value - expected) <= tol else {
                        throw BillaError(.checksumMismatch, file: job.shard, tensor: BillaRecovery.embeddingName,
                                         "the recovered embedding sums to \(sum.value), not \(expected)",
                                         remedy: "the LLaMA weights given with --llama are not the original LLaMA-7B (a converted, re-saved or different copy was used); nothing was written. Use Meta's original consolidated.00.pth, checked with billa checksum --check checklist.chk")
                    }
                }
            }
            let meter = ProgressMeter(label: "recover", total: plan.tensorBytes, quiet: report.quiet)
            let start = Date()
            var backups = [String]()
            if inPlace { backups = try plan.executeInPlace(progress: meter) } else { try plan.execute(progress: meter) }
            meter.finish()
            let matches = job.expectedSum.map { abs(sum.value - $0) <= tol }
            let r = Result(shard: job.shard, rows: job.rows, changedRows: job.changedRows, sum: sum.value,
                           expectedSum: job.expectedSum, matches: matches,
                           output: plan.report(dryRun: false, seconds: Date().timeIntervalSince(start)), backups: backups)
            if report.json {
                try printJSON(r)
            } else {
                report.say("\(encrypt ? "encrypted" : "recovered") \(BillaRecovery.embeddingName): rows [0, \(job.changedRows)) of \(job.rows) changed")
                report.say("sum of the \(encrypt ? "encrypted" : "recovered") embedding (double): \(sum.value)")
                if let e = job.expectedSum { report.say("expected \(e): match") }
                report.say("wrote \(inPlace ? job.shard : plan.destination)")
                for b in backups { report.say("backup: \(b)") }
            }
        }
    }
}

struct RecoverDelta: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delta",
        abstract: "Apply a FastChat/Vicuna delta: target = base + delta (fp16), as fastchat.model.apply_delta.")

    @Option(name: .long, help: "The base model (HF directory, e.g. LLaMA-7B converted with billa convert --to hf).")
    var base: String

    @Option(name: .long, help: "The delta directory (e.g. vicuna-7b-delta-v1.1).")
    var delta: String

    @Option(name: .shortAndLong, help: "The directory to create.")
    var output: String

    @Flag(name: .long, help: "Print the plan; write nothing.")
    var dryRun = false

    @OptionGroup var report: ReportOptions
    @OptionGroup var write: WriteOptions

    func run() throws {
        try reportingErrors {
            if !dryRun { try write.check([output], .directory, inputs: [base, delta]) }
            try runPlan(try DeltaRecovery.plan(base: base, delta: delta, output: output), label: "apply delta", dryRun: dryRun, report: report)
        }
    }
}

struct RecoverXor: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "xor",
        abstract: "Decrypt BELLE .enc files with LLaMA-7B's consolidated.00.pth, as BELLE's models/decrypt.py, checking the SHA-256 header.")

    @Argument(help: "One or more <name>.<sha256>.enc files.")
    var inputs: [String]

    @Option(name: .long, help: "The key: LLaMA-7B's original consolidated.00.pth.")
    var key: String

    @Option(name: .shortAndLong, help: "The directory to write the decrypted files into.")
    var output: String

    @Option(name: .long, help: ArgumentHelp("Chunk size of the scheme (decrypt.py uses 10 MiB).", visibility: .hidden))
    var chunkSize: Int = XorRecovery.chunkSize

    @Flag(name: .long, help: "Print what would be written (each output, its size and the SHA-256 it must have); write nothing.")
    var dryRun = false

    @OptionGroup var report: ReportOptions
    @OptionGroup var write: WriteOptions

    func run() throws {
        try reportingErrors {
            if dryRun {
                struct Planned: Encodable { let input: String; let output: String; let bytes: Int; let expected_sha256: String; let key: String }
                var planned = [Planned]()
                for input in inputs {
                    let enc = try MappedFile(path: input)
                    guard enc.size >= 32 else {
                        throw BillaError(.corruptContainer, file: input, "fewer than the 32-byte SHA-256 header", remedy: "download the .enc file again")
                    }
                    let header = try enc.bytes(at: 0, count: 32, what: "SHA-256 header").map { String(format: "%02x", $0) }.joined()
                    planned.append(Planned(input: input, output: output + "/" + XorRecovery.outputName(for: input).name, bytes: enc.size - 32,
                                           expected_sha256: header, key: key))
                }
                if report.json { try printJSON(planned) } else {
                    for p in planned { print("\(p.output)  <- \(p.input) xor \(p.key) (\(p.bytes) bytes, must hash to \(p.expected_sha256))") }
                }
                return
            }
            try write.check(inputs.map { output + "/" + XorRecovery.outputName(for: $0).name }, .file, inputs: inputs + [key])
            var isDir: ObjCBool = false
            if !FileManager.default.fileExists(atPath: output, isDirectory: &isDir) {
                do { try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true) } catch {
                    throw BillaError(.io, file: output, "cannot create the output directory: \(error.localizedDescription)", remedy: "check the path and permissions")
                }
            } else if !isDir.boolValue {
                throw BillaError(.invalidArgument, file: output, "is a file, not a directory", remedy: "pass the directory to write the decrypted files into")
            }
            var results = [XorRecovery.Result]()
            for input in inputs {
                let size = ((try? FileManager.default.attributesOfItem(atPath: input)[.size]) as? Int) ?? 0
                let meter = ProgressMeter(label: (input as NSString).lastPathComponent, total: size, quiet: report.quiet)
                results.append(try XorRecovery.decrypt(input: input, key: key, outputDir: output, chunk: chunkSize, progress: meter))
                meter.finish()
            }
            if report.json { try printJSON(results) } else {
                for r in results { report.say("\(r.output): sha256 \(r.sha256) matches the header") }
            }
        }
    }
}

struct RecoverWeightDiff: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "weight-diff",
        abstract: "Recover a Stanford Alpaca weight diff: fp32(diff) + fp32(raw LLaMA, with a [PAD] mean row), as weight_diff.py recover.")

    @Option(name: .long, help: "The raw LLaMA in Hugging Face format.")
    var raw: String

    @Option(name: .long, help: "The weight diff directory.")
    var diff: String

    @Option(name: .shortAndLong, help: "The directory to create.")
    var output: String

    @Option(name: .long, parsing: .unconditional, help: "Expected sum of all recovered tensors (Alpaca-7B: 50637.1836).")
    var expectSum: Double?

    @Option(name: .long, help: "Tolerance for --expect-sum (weight_diff.py uses atol 1e-2).")
    var tolerance: Double = 1e-2

    @Flag(name: .long, help: "Print the plan; write nothing.")
    var dryRun = false

    @OptionGroup var report: ReportOptions
    @OptionGroup var write: WriteOptions

    func run() throws {
        try reportingErrors {
            if !dryRun { try write.check([output], .directory, inputs: [raw, diff]) }
            let job = try WeightDiffRecovery.plan(raw: raw, diff: diff, output: output)
            var plan = job.plan
            if let expected = expectSum {
                let tol = tolerance
                plan.verify = {
                    // compared the way weight_diff.py does: its fp32 sum, torch.allclose(atol=1e-2, rtol=0)
                    let got = Double(job.torchStyleSum)
                    guard abs(got - expected) <= tol else {
                        throw BillaError(.checksumMismatch, file: diff, "the recovered weights sum to \(got) (as weight_diff.py sums them in fp32), not \(expected)",
                                         remedy: "the raw LLaMA is not the one the diff was made from (or was converted differently); nothing was written")
                    }
                }
            }
            try runPlan(plan, label: "weight diff", dryRun: dryRun, report: report)
            if !dryRun && !report.json { print("sum of the recovered weights: \(job.torchStyleSum) (fp32, as weight_diff.py), \(job.sum.value) (double)") }
        }
    }
}
