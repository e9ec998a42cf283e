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
        abstract: "Convert a model between Meta, Hugging Face and GGUF, or change its dtype, streaming tensor by tensor.",
        discussion: """
            Meta -> HF merges the model-parallel shards, renames, permutes wq/wk into HF's rotary layout (wk with n_kv_heads), skips rope.freqs, and writes config.json, the tokenizer files and safetensors (or .bin) shards with their index. HF -> Meta is the exact inverse into --shards N consolidated.NN.pth files. --to gguf writes one GGUF file (or a gguf-split set) as llama.cpp's convert script does; --dtype then takes llama-quantize's types too.

            HF -> HF and Meta -> Meta change the dtype (--dtype is required there): every floating-point tensor is cast, round to nearest even. A narrowing to f16 refuses a value beyond ±65504, naming the tensor and its largest value, unless --clamp-overflow.

            Every output is written under a temporary name and renamed when complete.

            Examples:
              billa convert llama-7b -o llama-7b-hf --to hf
              billa convert llama-7b-hf -o llama-7b --to meta --shards 1
              billa convert llama-7b-hf -o llama-7b-bf16 --to hf --dtype bf16
              billa convert llama-7b -o llama-7b-q8_0.gguf --to gguf --dtype q8_0
            """)

    @Argument(help: "A Meta release directory, a Hugging Face directory or a billa pack of either.")
    var source: String

    @Option(name: .shortAndLong, help: "What to create: a directory (--to hf, --to meta) or a .gguf file (--to gguf; a gguf-split set from -o model.gguf is model-00001-of-0000N.gguf, ...).")
    var output: String

    @Option(name: .long, help: "hf (a Hugging Face directory), meta (consolidated.NN.pth + params.json) or gguf (a GGUF file; see billa quantize for the types).")
    var to: ConvertTarget

    @Option(name: .long, help: "--to hf: the weight files, safetensors (default) or pth (pytorch_model*.bin).")
    var format: ConvertOptions.WeightFormat?

    @Option(name: .long, help: "Cast floating-point weights: f16, bf16 or f32 (round to nearest even); with --to gguf also q8_0, q4_0, q4_k_m, q5_k_m, q6_k, ...")
    var dtype: ConvertDType?

    @Option(name: .long, help: "--to meta: the number of model-parallel shards (default 1).")
    var shards: Int?

    @Option(name: .long, help: "The largest file, e.g. 5GB, 500MB, 2GiB: --to hf cuts its shards at this size (default 5GB); --to gguf writes a gguf-split set (default one file).")
    var maxShardSize: String?

    @Option(name: .long, help: "--to gguf: a gguf-split set of at most N tensors per file.")
    var splitMaxTensors: Int?

    @Option(name: .long, help: "Context length: max_position_embeddings of config.json (--to hf) or llama.context_length (--to gguf). Meta releases do not record it: 2048 unless given (LLaMA 2: 4096); HF sources keep theirs.")
    var maxPositionEmbeddings: Int?

    @Option(name: .long, help: "--to gguf: general.name (default: the source directory's name).")
    var name: String?

    @Option(name: .long, help: "--to gguf: tokenizer.ggml.pre for a byte-level BPE tokenizer that convert_hf_to_gguf.py does not recognize (a trimmed or retrained vocabulary): llama-bpe for Llama-3's split regex, qwen2 for Qwen2's.")
    var tokenizerPre: String?

    @Flag(name: .long, help: "Print every output tensor and where it comes from; write nothing.")
    var dryRun = false

    @OptionGroup var drops: DropOptions
    @OptionGroup var narrowing: NarrowingOptions
    @OptionGroup var report: ReportOptions
    @OptionGroup var write: WriteOptions

    /// An option that does not apply to the chosen output is a usage error (exit 64), never silently ignored.
    func validate() throws {
        if to != .gguf, tokenizerPre != nil { throw ValidationError("--tokenizer-pre names a GGUF vocabulary's pre-tokenizer; it applies to --to gguf only") }
        if to != .hf, format != nil { throw ValidationError("--format chooses HF weight files; it does not apply to --to \(to.rawValue)") }
        if to != .meta, shards != nil {
            throw ValidationError("--shards sets the Meta model-parallel count; with --to \(to.rawValue) use --max-shard-size")
        }
        if to == .meta, maxShardSize != nil {
            throw ValidationError("--max-shard-size does not apply to --to meta (Meta shards are model-parallel: use --shards)")
        }
        if to == .meta, maxPositionEmbeddings != nil {
            throw ValidationError("--max-position-embeddings does not apply to --to meta: params.json does not record a context length")
        }
        if to != .gguf, splitMaxTensors != nil { throw ValidationError("--split-max-tensors cuts GGUF output; use --max-shard-size for HF shards") }
        if to != .gguf, name != nil { throw ValidationError("--name sets general.name, which only GGUF files have") }
        if to != .gguf, let dtype, dtype.recipe.defaultType.isQuantized {
            throw ValidationError("--dtype \(dtype.recipe.rawValue) is a quantized type; --to \(to.rawValue) holds f16, bf16 or f32 (use --to gguf for quantized output)")
        }
        if to == .gguf, splitMaxTensors != nil, maxShardSize != nil {
            throw ValidationError("--split-max-tensors and --max-shard-size both cut the GGUF output; pass one of them")
        }
        if narrowing.clampOverflow, dtype == nil {
            throw ValidationError("--clamp-overflow applies to a narrowing: pass --dtype f16 or bf16 with it")
        }
        if let shards, shards < 1 { throw ValidationError("--shards must be at least 1") }
        if let maxShardSize, (ByteFormat.parse(maxShardSize) ?? 0) <= 0 {
            throw ValidationError("--max-shard-size '\(maxShardSize)' is not a size; write it like 5GB, 500MB or 2GiB")
        }
    }

    /// HF -> HF and Meta -> Meta only change the dtype (Resharder): options of a layout conversion do not apply.
    func validateSameLayout() throws {
        guard let layout = to.layout, let kind = try? Release.open(source).layout,
              (kind == .huggingFace && layout == .hf) || (kind == .meta && layout == .meta) else { return }
        if dtype == nil {
            throw ValidationError("the source is already in the \(to.rawValue) layout: pass --dtype to change its type, or use billa reshard to re-split it")
        }
        if maxPositionEmbeddings != nil { throw ValidationError("--max-position-embeddings does not apply to a dtype change: the source's config.json is kept") }
        if !drops.patterns.isEmpty || drops.dropUnknown { throw ValidationError("--drop-tensor/--drop-unknown do not apply to a dtype change: every tensor is kept") }
    }

    func run() throws {
        try validateSameLayout()
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
            o.tokenizerPre = tokenizerPre
            try runConvertToGGUF(source: source, output: output, options: o, dryRun: dryRun, report: report)
            return
        }
        var o = ConvertOptions(target: layout)
        o.format = format ?? .safetensors
        o.dtype = try dtype?.floatDType()
        o.narrowing = narrowing.make()
        o.drops = drops.policy
        o.shards = shards ?? 1
        o.maxShardSize = ByteFormat.parse(maxShardSize ?? "5GB") ?? 5_000_000_000
        o.maxPositionEmbeddings = try maxPositionEmbeddings.map(checkedContextLength)
        let plan = try Converter.plan(source: source, destination: output, options: o)
        try runPlan(plan, command: "convert", dryRun: dryRun, report: report)
        stateClamped(o.narrowing)
    }
}

/// Shows or executes a plan, with progress on a terminal and a text or JSON report.
/// `command` names the report (formats/json.md) and labels the progress meter; `extra` adds keys to the JSON report.
func runPlan(_ plan: OutputPlan, command: String, dryRun: Bool, report: ReportOptions, extra: (any Encodable)? = nil, ok: Bool? = nil) throws {
    let parts: [any Encodable] = extra.map { [$0] } ?? []
    if dryRun {
        if report.json {
            try printJSON(command: command, output: plan.destination, parts: [plan.report(dryRun: true)] + parts)
        } else {
            print(plan.describe(), terminator: "")
        }
        return
    }
    stateLosses(plan.losses)
    let meter = ProgressMeter(label: command, total: plan.tensorBytes, quiet: report.quiet)
    let start = Date()
    try plan.execute(progress: meter)
    meter.finish()
    let seconds = Date().timeIntervalSince(start)
    if report.json {
        try printJSON(command: command, ok: ok, output: plan.destination, parts: [plan.report(dryRun: false, seconds: seconds)] + parts)
    } else {
        report.say("wrote \(plan.destination): \(plan.files.count) files, \(ByteFormat.human(plan.tensorBytes)) of tensors in \(String(format: "%.2f", seconds)) s")
        for n in plan.notes { report.say("note: \(n)") }
    }
}
