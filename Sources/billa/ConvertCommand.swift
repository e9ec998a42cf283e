import ArgumentParser
import BillaKit
import Foundation

extension ConvertOptions.Target: ExpressibleByArgument {}
extension ConvertOptions.WeightFormat: ExpressibleByArgument {}

/// --dtype values as people type them.
enum DTypeArgument: String, ExpressibleByArgument, CaseIterable {
    case f16, bf16, f32
    var dtype: DType { self == .f16 ? .f16 : (self == .bf16 ? .bf16 : .f32) }
}

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a Meta release to a Hugging Face directory or back, streaming tensor by tensor.",
        discussion: """
            Meta -> HF merges the model-parallel shards, renames, permutes wq/wk into HF's rotary layout (wk with
            n_kv_heads), skips rope.freqs, and writes config.json, the tokenizer files and safetensors (or .bin)
            shards with their index. HF -> Meta is the exact inverse into --shards N consolidated.NN.pth files.
            The output directory is written under a temporary name and renamed when complete.
            """)

    @Argument(help: "A Meta release directory or a Hugging Face directory.")
    var source: String

    @Option(name: .shortAndLong, help: "The directory to create.")
    var output: String

    @Option(name: .long, help: "hf, meta or gguf (a single GGUF file; see billa quantize for the types).")
    var to: ConvertTarget

    @Option(name: .long, help: "HF weight files: safetensors (default) or pth (pytorch_model*.bin).")
    var format: ConvertOptions.WeightFormat?

    @Option(name: .long, help: "Cast floating-point weights: f16, bf16 or f32 (round to nearest even); with --to gguf also q8_0, q4_0, q4_k_m, q5_k_m, q6_k, ...")
    var dtype: ConvertDType?

    @Option(name: .long, help: "Meta output: number of model-parallel shards (default 1).")
    var shards: Int?

    @Option(name: .long, help: "Largest shard, e.g. 5GB, 500MB, 2GiB. HF output: default 5GB. GGUF output: a gguf-split set (default one file).")
    var maxShardSize: String?

    @Option(name: .long, help: "GGUF output: a gguf-split set of at most N tensors per file.")
    var splitMaxTensors: Int?

    @Option(name: .long, help: "Context length: max_position_embeddings of config.json (HF output) or llama.context_length (GGUF output). Meta releases do not record it: 2048 unless given (LLaMA 2: 4096); HF sources keep theirs.")
    var maxPositionEmbeddings: Int?

    @Option(name: .long, help: "GGUF output: general.name (default: the source directory's name).")
    var name: String?

    @Flag(name: .long, help: "Print every output tensor and where it comes from; write nothing.")
    var dryRun = false

    @OptionGroup var drops: DropOptions
    @OptionGroup var narrowing: NarrowingOptions
    @OptionGroup var report: ReportOptions
    @OptionGroup var write: WriteOptions

    /// An option that does not apply to the chosen output is a usage error (exit 64), never silently ignored.
    func validate() throws {
        if to != .hf, format != nil { throw ValidationError("--format chooses HF weight files; it does not apply to --to \(to.rawValue)") }
        if to != .meta, shards != nil {
            throw ValidationError("--shards sets the Meta model-parallel count; with --to \(to.rawValue) use --max-shard-size")
        }
        if to == .meta, maxShardSize != nil {
            throw ValidationError("--max-shard-size does not apply to --to meta (Meta shards are model-parallel: use --shards)")
        }
        if to != .gguf, splitMaxTensors != nil { throw ValidationError("--split-max-tensors cuts GGUF output; use --max-shard-size for HF shards") }
        if to != .gguf, name != nil { throw ValidationError("--name sets general.name, which only GGUF files have") }
        if let shards, shards < 1 { throw ValidationError("--shards must be at least 1") }
    }

    func run() throws {
        try reportingErrors {
            if !dryRun {
                let ggufSplit = to == .gguf && (splitMaxTensors != nil || maxShardSize != nil)
                try write.check([output] + (ggufSplit ? OutputGuard.existingGGUFShards(of: output) : []),
                                to == .gguf ? .file : .directory, inputs: [source])
            }
            // --to gguf: GGUFExport (QuantizeCommand.swift) writes one GGUF file or a gguf-split set.
            guard let layout = to.layout else {
                // Without --dtype every tensor keeps its source type (bf16 stays BF16): nothing is narrowed silently.
                var o = GGUFExportOptions(recipe: dtype?.recipe ?? .f16)
                o.sourceTypes = dtype == nil
                if dtype == nil, let kept = PackGGUF.recordedRecipe(source) {   // a pack of GGUF tensors keeps its types
                    o.recipe = kept
                    o.sourceTypes = false
                }
                o.narrowing = narrowing.make()
                o.drops = drops.policy
                o.split = try ggufSplitRule(maxTensors: splitMaxTensors, maxShardSize: maxShardSize)
                o.contextLength = try maxPositionEmbeddings.map(checkedContextLength)
                o.name = name
                try runConvertToGGUF(source: source, output: output, options: o, dryRun: dryRun, report: report)
                return
            }
            var o = ConvertOptions(target: layout)
            o.format = format ?? .safetensors
            o.dtype = try dtype?.floatDType()
            o.narrowing = narrowing.make()
            o.drops = drops.policy
            o.shards = shards ?? 1
            let size = maxShardSize ?? "5GB"
            guard let limit = ByteFormat.parse(size), limit > 0 else {
                throw BillaError(.invalidArgument, "--max-shard-size '\(size)' is not a size", remedy: "write it like 5GB, 500MB or 2GiB")
            }
            o.maxShardSize = limit
            o.maxPositionEmbeddings = try checkedContextLength(maxPositionEmbeddings ?? 2048)
            let plan = try Converter.plan(source: source, destination: output, options: o)
            try runPlan(plan, label: "convert", dryRun: dryRun, report: report)
            stateClamped(o.narrowing)
        }
    }
}

/// Shows or executes a plan, with progress on a terminal and a text or JSON report.
func runPlan(_ plan: OutputPlan, label: String, dryRun: Bool, report: ReportOptions) throws {
    if dryRun {
        if report.json { try printJSON(plan.report(dryRun: true)) } else { print(plan.describe(), terminator: "") }
        return
    }
    stateLosses(plan.losses)
    let meter = ProgressMeter(label: label, total: plan.tensorBytes, quiet: report.quiet)
    let start = Date()
    try plan.execute(progress: meter)
    meter.finish()
    let seconds = Date().timeIntervalSince(start)
    if report.json {
        try printJSON(plan.report(dryRun: false, seconds: seconds))
    } else {
        report.say("wrote \(plan.destination): \(plan.files.count) files, \(ByteFormat.human(plan.tensorBytes)) of tensors in \(String(format: "%.2f", seconds)) s")
        for n in plan.notes { report.say("note: \(n)") }
    }
}
