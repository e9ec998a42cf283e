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
            Rows [0, n) of model.embed_tokens.weight become fp32(released) - fp32(LLaMA tok_embeddings), n being LLaMA's vocabulary; the whole embedding is then cast to fp16 (round to nearest even). Only LLaMA's embedding is read. The output is a complete HF directory (other files hard-linked where possible).

            The sum of the recovered embedding (accumulated in double) is reported and, with --expect-sum or for BiLLa-7B-SFT, checked: a mismatch means the LLaMA copy is not the original one, and nothing is written.

            Examples:
              billa recover billa --release BiLLa-7B-SFT --llama llama-7b/consolidated.00.pth -o BiLLa-7B-SFT-recovered
              billa recover billa --release BiLLa-7B-SFT --llama llama-7b --in-place
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

    /// The embedding's numbers, beside the plan's keys in `recover billa --json`.
    struct Result: Encodable {
        var shard: String
        var rows: Int
        var changedRows: Int
        var sum: Double
        var expectedSum: Double?
        var backups: [String]

        enum CodingKeys: String, CodingKey { case shard, rows, changedRows = "changed_rows", sum, expectedSum = "expected_sum", backups }
    }

    func run() throws {
        if let output, !dryRun { try write.check([output], .directory, inputs: [release, llama]) }
        var o = BillaRecovery.Options(release: release, llama: llama)
        o.output = output
        o.inPlace = inPlace
        o.encrypt = encrypt
        o.expectSum = expectSum
        let job = try BillaRecovery.plan(o)
        var plan = job.plan
        if dryRun {
            try runPlan(plan, command: "recover billa", dryRun: true, report: report)
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
                       expectedSum: job.expectedSum, backups: backups)
        if report.json {
            try printJSON(command: "recover billa", ok: matches, output: inPlace ? job.shard : plan.destination,
                          r, plan.report(dryRun: false, seconds: Date().timeIntervalSince(start)))
        } else {
            report.say("\(encrypt ? "encrypted" : "recovered") \(BillaRecovery.embeddingName): rows [0, \(job.changedRows)) of \(job.rows) changed")
            report.say("sum of the \(encrypt ? "encrypted" : "recovered") embedding (double): \(sum.value)")
            if let e = job.expectedSum { report.say("expected \(e): match") }
            report.say("wrote \(inPlace ? job.shard : plan.destination)")
            for b in backups { report.say("backup: \(b)") }
        }
    }
}

struct RecoverDelta: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delta",
        abstract: "Apply a FastChat/Vicuna delta: target = base + delta (fp16), as fastchat.model.apply_delta.",
        discussion: """
            Each value becomes fp16(fp32(base) + fp32(delta)), as apply_delta.py adds in place. A delta whose embedding or head has more rows than the base's (Vicuna v0's 32001 tokens) keeps its extra rows as they are. The output mirrors the delta directory: the same shard names and format, its config and tokenizer.

            Example:
              billa recover delta --base llama-7b-hf --delta vicuna-7b-delta-v1.1 -o vicuna-7b
            """)

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
        if !dryRun { try write.check([output], .directory, inputs: [base, delta]) }
        try runPlan(try DeltaRecovery.plan(base: base, delta: delta, output: output), command: "recover delta", dryRun: dryRun, report: report)
    }
}

struct RecoverXor: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "xor",
        abstract: "Decrypt BELLE .enc files with LLaMA-7B's consolidated.00.pth, as BELLE's models/decrypt.py, checking the SHA-256 header.",
        discussion: """
            Each output is named by dropping .<sha256>.enc from its input and is checked against the SHA-256 in the file's header before it is renamed into place.

            Example:
              billa recover xor BELLE-7B-2M/*.enc --key llama-7b/consolidated.00.pth -o BELLE-7B-2M-plain
            """)

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
        if dryRun {
            struct Planned: Encodable { let input: String; let output: String; let bytes: Int; let expected_sha256: String; let key: String }
                struct Plan: Encodable { let dry_run = true; let files: [Planned] }
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
            if report.json { try printJSON(command: "recover xor", output: output, Plan(files: planned)) } else {
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
        struct Done: Encodable { let dry_run = false; let files: [XorRecovery.Result] }
        if report.json { try printJSON(command: "recover xor", ok: true, output: output, Done(files: results)) } else {
            for r in results { report.say("\(r.output): sha256 \(r.sha256) matches the header") }
        }
    }
}

struct RecoverWeightDiff: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "weight-diff",
        abstract: "Recover a Stanford Alpaca weight diff: fp32(diff) + fp32(raw LLaMA, with a [PAD] mean row), as weight_diff.py recover.",
        discussion: """
            The raw LLaMA first gets a [PAD] row (the mean of the existing rows, as smart_tokenizer_and_embedding_resize does); the recovered weights are diff + raw, kept in fp32 as weight_diff.py keeps them. With --expect-sum its sum is compared the way weight_diff.py compares it, and nothing is written on a mismatch.

            Example:
              billa recover weight-diff --raw llama-7b-hf --diff alpaca-7b-wdiff -o alpaca-7b --expect-sum 50637.1836
            """)

    @Option(name: .long, help: "The raw LLaMA in Hugging Face format.")
    var raw: String

    @Option(name: .long, help: "The weight diff directory.")
    var diff: String

    @Option(name: .shortAndLong, help: "The directory to create.")
    var output: String

    @Option(name: .long, parsing: .unconditional, help: "Expected sum of all recovered tensors (Alpaca-7B: 50637.1836).")
    var expectSum: Double?

    @Option(name: .customLong("tolerance"), help: "Tolerance for --expect-sum (default 1e-2, weight_diff.py's atol).")
    var toleranceChoice: Double?

    var tolerance: Double { toleranceChoice ?? 1e-2 }

    @Flag(name: .long, help: "Print the plan; write nothing.")
    var dryRun = false

    @OptionGroup var report: ReportOptions
    @OptionGroup var write: WriteOptions

    func validate() throws {
        if toleranceChoice != nil, expectSum == nil { throw ValidationError("--tolerance applies to --expect-sum; pass both or neither") }
    }

    func run() throws {
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
        // The sums are known once the plan has run; a dry run reports the plan alone.
        struct Sums: Encodable { let sum_fp32: Double; let sum: Double; let expected_sum: Double? }
        let sums = { Sums(sum_fp32: Double(job.torchStyleSum), sum: job.sum.value, expected_sum: expectSum) }
        if dryRun || !report.json {
            try runPlan(plan, command: "recover weight-diff", dryRun: dryRun, report: report)
        } else {
            try runPlan(plan, command: "recover weight-diff", dryRun: false, report: report, extra: LazyPart(sums), ok: expectSum.map { _ in true })
        }
        if !dryRun && !report.json { print("sum of the recovered weights: \(job.torchStyleSum) (fp32, as weight_diff.py), \(job.sum.value) (double)") }
    }
}
