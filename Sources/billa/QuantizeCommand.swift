import ArgumentParser
import BillaKit
import Foundation

extension QuantRecipe: ExpressibleByArgument {
    public init?(argument: String) { self.init(name: argument) }
}

/// Output formats of `billa quantize`.
enum QuantizeFormat: String, ExpressibleByArgument, CaseIterable { case gguf, pack }

struct Quantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Quantize a model to llama.cpp's types, byte-identical to llama-quantize (with or without an importance matrix).",
        discussion: """
            SRC is a GGUF file (f32/f16/bf16), a Meta release or a Hugging Face directory. TYPE is a llama-quantize file type: q4_0, q4_1, q5_0, q5_1, q8_0, q2_k, q3_k_s, q3_k_m (= q3_k), q3_k_l, q4_k_s, q4_k_m (= q4_k), q5_k_s, q5_k_m (= q5_k), q6_k, iq4_nl, iq4_xs, the grid types iq1_s, iq1_m, iq2_xxs, iq2_xs, iq2_s, iq2_m, iq3_xxs, iq3_xs, iq3_s, iq3_m, the ternary tq1_0, tq2_0 (for models trained to ternary weights), and f16, bf16, f32.

            q2_k_s, iq1_s, iq1_m, iq2_xxs, iq2_xs, iq2_s, iq2_m, iq3_xxs and iq3_xs need an importance matrix: refused without --imatrix, as llama-quantize refuses them (a tensor given IQ1_S, IQ2_XXS or IQ2_XS with --tensor-type, --output-tensor-type or --token-embedding-type needs an imatrix entry too, which ggml asserts).

            Each tensor gets the type llama-quantize would give it: 1-D and norm tensors stay as they are (f32 from Meta/HF sources), output.weight becomes Q6_K, q4_k_m/q5_k_m give some attn_v and ffn_down layers Q6_K, and rows that are not whole blocks fall back to a 32-element type.

            --imatrix FILE quantizes with an importance matrix (llama-imatrix's or billa imatrix's, GGUF or legacy .dat) as llama-quantize --imatrix does: each quantized tensor's entry weights its rows' rounding, the recipes change where llama-quantize's do with one, and the output records quantize.imatrix.file, .dataset, .entries_count and .chunks_count. --include-weights / --exclude-weights S keep or drop the entries whose names contain S.

            --tensor-type PATTERN=TYPE overrides the choice for GGUF tensor names matching the regular expression; a pattern that matches no tensor is an error. --pure gives every matrix TYPE; --leave-output-tensor keeps output.weight as it is; --output-tensor-type and --token-embedding-type set those two tensors' types, as llama-quantize's options of the same names do. Rows are split across --threads threads.

            Examples:
              billa quantize llama-7b-f16.gguf -o llama-7b-q4_k_m.gguf --type q4_k_m
              billa quantize llama-7b-f16.gguf -o llama-7b-iq4_xs.gguf --type iq4_xs --imatrix llama-7b.imatrix.gguf
              billa quantize llama-7b-f16.gguf -o llama-7b-iq2_xxs.gguf --type iq2_xxs --imatrix llama-7b.imatrix.gguf
              billa quantize llama-7b -o llama-7b-q8_0.gguf --type q8_0 --tensor-type 'attn_v=q8_0' --tensor-type 'token_embd=q8_0'
              billa quantize llama-7b-hf -o llama-7b-q4_k_m.billa --type q4_k_m --format pack
              billa quantize llama-65b -o llama-65b-q4_0.gguf --type q4_0 --max-shard-size 4GB
            """)

    @Argument(help: "A GGUF file, a Meta release directory or a Hugging Face directory.")
    var source: String

    @Option(name: .shortAndLong, help: "The file to write: a .gguf file, or a .billa pack with --format pack; a gguf-split set from -o model.gguf is model-00001-of-0000N.gguf, ...")
    var output: String

    @Option(name: .long, help: "The llama-quantize type (q4_k_m, q5_k_m, q8_0, q6_k, q4_0, iq4_xs, iq3_xxs, iq2_xxs, ...).")
    var type: QuantRecipe

    @Option(name: .long, help: "gguf (default) or pack.")
    var format: QuantizeFormat = .gguf

    @Option(name: .customLong("tensor-type"), help: "PATTERN=TYPE: give tensors whose GGUF name matches PATTERN this type.")
    var tensorTypes: [String] = []

    @Flag(name: .long, help: "Allow quantizing tensors that are already quantized.")
    var allowRequantize = false

    @Flag(name: .long, help: "Every quantized tensor gets the type's default (no per-tensor mixture), as llama-quantize --pure.")
    var pure = false

    @Flag(name: .long, help: "Do not quantize output.weight.")
    var leaveOutputTensor = false

    @Option(name: .long, help: "The type of output.weight (f16, q8_0, q6_k, ...).")
    var outputTensorType: String?

    @Option(name: .long, help: "The type of token_embd.weight (f16, q8_0, q4_k, ...).")
    var tokenEmbeddingType: String?

    @Option(name: .long, help: "An importance matrix (llama-imatrix's or billa imatrix's, GGUF or .dat): quantize with it as llama-quantize --imatrix does.")
    var imatrix: String?

    @Option(name: .long, help: "Use the imatrix only for tensors whose name contains this (repeatable).")
    var includeWeights: [String] = []

    @Option(name: .long, help: "Do not use the imatrix for tensors whose name contains this (repeatable).")
    var excludeWeights: [String] = []

    @Option(name: .long, help: "llama.context_length. Meta releases do not record it: 2048 unless given (LLaMA 2: 4096); HF and GGUF sources keep theirs unless given.")
    var maxPositionEmbeddings: Int?

    @Option(name: .long, help: "general.name (default: the source directory's name, or the source GGUF's).")
    var name: String?

    @Option(name: .long, help: "tokenizer.ggml.pre for a byte-level BPE tokenizer that convert_hf_to_gguf.py does not recognize (a trimmed or retrained vocabulary): llama-bpe for Llama-3's split regex, qwen2 for Qwen2's. Meta and HF sources only.")
    var tokenizerPre: String?

    @Option(name: .long, help: "Threads for quantizing rows.")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Flag(name: .long, help: "Print each tensor's chosen type; write nothing.")
    var dryRun = false

    @Option(name: .long, help: "GGUF output: a gguf-split set (PREFIX-0000K-of-0000N.gguf) whose files hold at most this much tensor data, e.g. 4GB.")
    var maxShardSize: String?

    @Option(name: .long, help: "GGUF output: a gguf-split set of at most N tensors per file.")
    var splitMaxTensors: Int?

    @OptionGroup var drops: DropOptions
    @OptionGroup var narrowing: NarrowingOptions
    @OptionGroup var report: ReportOptions
    @OptionGroup var write: WriteOptions

    /// An option that does not apply to the chosen output is a usage error (exit 64), never silently ignored.
    func validate() throws {
        if format == .pack, splitMaxTensors != nil || maxShardSize != nil {
            throw ValidationError("--split-max-tensors / --max-shard-size cut GGUF output; a quantized pack is one file")
        }
        if splitMaxTensors != nil, maxShardSize != nil {
            throw ValidationError("--split-max-tensors and --max-shard-size both cut the GGUF output; pass one of them, as llama-gguf-split takes one")
        }
        if threads < 1 { throw ValidationError("--threads must be at least 1") }
        if !includeWeights.isEmpty, !excludeWeights.isEmpty {
            throw ValidationError("--include-weights and --exclude-weights exclude each other, as in llama-quantize; pass one of them")
        }
        if imatrix == nil, !includeWeights.isEmpty || !excludeWeights.isEmpty {
            throw ValidationError("--include-weights / --exclude-weights filter an importance matrix; pass --imatrix FILE")
        }
    }

    func run() throws {
        if !dryRun {
            let split = splitMaxTensors != nil || maxShardSize != nil
            try write.check([output] + (split ? OutputGuard.existingGGUFShards(of: output) : []), .file, inputs: [source, imatrix])
        }
        var o = GGUFExportOptions(recipe: type)
        o.narrowing = narrowing.make()
        o.drops = drops.policy
        o.split = try ggufSplitRule(maxTensors: splitMaxTensors, maxShardSize: maxShardSize)
        o.overrides = try tensorTypes.map(parseOverride)
        o.allowRequantize = allowRequantize
        o.typeChoices.pure = pure
        o.typeChoices.leaveOutputTensor = leaveOutputTensor
        o.typeChoices.outputTensorType = try outputTensorType.map { try tensorType($0, "--output-tensor-type") }
        o.typeChoices.tokenEmbeddingType = try tokenEmbeddingType.map { try tensorType($0, "--token-embedding-type") }
        if let imatrix {
            let m = try ImportanceMatrix.forQuantize(imatrix, include: includeWeights, exclude: excludeWeights)
            if m.entries.isEmpty {
                warn("--include-weights / --exclude-weights left no entry of \(imatrix): quantizing without an importance matrix, as llama-quantize does")
            }
            o.importance = (m, imatrix)
        }
        o.contextLength = try maxPositionEmbeddings.map(checkedContextLength)
        o.name = name
        o.tokenizerPre = tokenizerPre
        o.threads = max(1, threads)
        if format == .pack, !dryRun {
            try runQuantizedPack(source: source, output: output, export: o, options: PackOptions(), report: report, command: "quantize")
            return
        }
        try runGGUFExport(source: source, output: output, options: o, dryRun: dryRun, report: report, label: "quantize")
    }
}

/// --max-position-embeddings: a positive count that fits GGUF's u32 and config.json's int.
func checkedContextLength(_ n: Int) throws -> Int {
    guard n > 0, n <= Int(Int32.max) else {
        throw BillaError(.invalidArgument, "--max-position-embeddings \(n) is not a context length",
                         remedy: "pass a positive number of tokens, e.g. 2048 (LLaMA 1) or 4096 (LLaMA 2)")
    }
    return n
}

/// A tensor type named on the command line (f32, f16, bf16 or a block type), or a usage error naming the option.
func tensorType(_ name: String, _ option: String) throws -> DType {
    guard let t = parseTensorType(name) else {
        throw BillaError(.invalidArgument, "\(option) \(name) is not a tensor type",
                         remedy: "use one of f32, f16, bf16, \(QuantType.allCases.map { $0.rawValue.lowercased() }.joined(separator: ", "))")
    }
    return t
}

func parseOverride(_ text: String) throws -> (pattern: String, type: DType) {
    guard let eq = text.lastIndex(of: "="), let t = parseTensorType(String(text[text.index(after: eq)...])),
          eq != text.startIndex else {
        throw BillaError(.invalidArgument, "--tensor-type '\(text)' is not PATTERN=TYPE",
                         remedy: "write e.g. --tensor-type 'attn_v=q8_0' (types: f32, f16, bf16, \(QuantType.allCases.map { $0.rawValue.lowercased() }.joined(separator: ", ")))")
    }
    return (String(text[..<eq]), t)
}

/// A --tensor-type pattern that names no tensor is a mistake (a typo, or a Meta/HF name where GGUF names are
/// matched), never silently a no-op.
func checkOverridesMatch(_ options: GGUFExportOptions, _ plan: GGUFExportPlan) throws {
    for (pattern, _) in options.overrides {
        guard let re = try? NSRegularExpression(pattern: pattern) else { continue }   // the plan refused invalid ones
        let hit = plan.choices.contains { re.firstMatch(in: $0.name, range: NSRange($0.name.startIndex..., in: $0.name)) != nil }
        if !hit {
            let example = plan.choices.first(where: { $0.shape.count == 2 })?.name ?? "blk.0.attn_v.weight"
            throw BillaError(.invalidArgument, file: plan.source, "--tensor-type pattern '\(pattern)' matches no tensor of the model",
                             remedy: "patterns match GGUF tensor names such as \(example); see billa quantize --dry-run for them")
        }
    }
}

/// What `quantize --json` and `convert --to gguf --json` print.
/// The output path is the envelope's `output`; `files` lists what was written (one file, or a gguf-split set).
struct GGUFExportReport: Encodable {
    var source: String
    var type: String
    var dryRun: Bool
    var tensors: [GGUFTensorChoice]
    var inputBytes: Int
    var outputBytes: Int
    var files: [String]?
    var seconds: Double?
    var notes: [String]

    enum CodingKeys: String, CodingKey {
        case source, type, tensors, notes, seconds, files
        case dryRun = "dry_run", inputBytes = "input_bytes", outputBytes = "output_bytes"
    }
}

/// Plans, then writes, a GGUF file; shared by `billa quantize` and `billa convert --to gguf`.
func runGGUFExport(source: String, output: String, options: GGUFExportOptions, dryRun: Bool, report: ReportOptions,
                   label: String) throws {
    let plan = try GGUFExport.plan(source: source, options: options)
    try checkOverridesMatch(options, plan)
    var r = GGUFExportReport(source: source, type: options.recipe.rawValue, dryRun: dryRun,
                             tensors: plan.choices, inputBytes: plan.inputBytes, outputBytes: plan.outputDataBytes,
                             files: nil, seconds: nil, notes: plan.notes)
    if dryRun {
        if report.json { try printJSON(command: label, output: output, r); return }
        let rows = plan.choices.map { [$0.name, Shape.describe($0.shape), $0.source.rawValue, $0.target.rawValue] }
        print(Table.render(header: ["tensor", "shape", "from", "to"], rows: rows), terminator: "")
        print("\(plan.choices.count) tensors, \(ByteFormat.human(plan.inputBytes)) -> \(ByteFormat.human(plan.outputDataBytes))")
        for n in plan.losses { print("note: \(n)") }
        for n in plan.notes { print("note: \(n)") }
        return
    }
    stateLosses(plan.losses)
    let meter = ProgressMeter(label: label, total: plan.outputDataBytes, quiet: report.quiet)
    let start = Date()
    let paths = try plan.write(to: output) { meter.add($0) }
    meter.finish()
    stateClamped(options.narrowing)
    r.seconds = Date().timeIntervalSince(start)
    r.files = paths
    if report.json {
        try printJSON(command: label, output: output, r)
    } else {
        let s = r.seconds ?? 0
        let written = paths.count > 1 ? "\(paths[0]) ... \((paths[paths.count - 1] as NSString).lastPathComponent) (\(paths.count) files)" : output
        report.say("wrote \(written): \(plan.choices.count) tensors, \(ByteFormat.human(plan.inputBytes)) -> \(ByteFormat.human(plan.outputDataBytes)) in \(String(format: "%.2f", s)) s (\(ByteFormat.human(Int(Double(plan.inputBytes) / max(s, 1e-9))))/s read)")
        for n in plan.notes { report.say("note: \(n)") }
    }
}

// MARK: billa convert --to gguf

/// `billa convert --to` targets: ConvertOptions' Meta/HF layouts, plus gguf (written by GGUFExport).
enum ConvertTarget: String, ExpressibleByArgument, CaseIterable {
    case hf, meta, gguf

    var layout: ConvertOptions.Target? {
        switch self {
        case .hf: return .hf
        case .meta: return .meta
        case .gguf: return nil
        }
    }
}

/// `billa convert --dtype`: f16, bf16, f32, or (with --to gguf) any llama-quantize type (q8_0, q4_k_m, ...).
struct ConvertDType: ExpressibleByArgument {
    let recipe: QuantRecipe

    init?(argument: String) {
        guard let r = QuantRecipe(name: argument) else { return nil }
        recipe = r
    }

    static var allValueStrings: [String] { QuantRecipe.allCases.map(\.rawValue) }

    /// The cast for Meta/HF outputs, which hold float tensors only.
    func floatDType() throws -> DType {
        guard !recipe.defaultType.isQuantized else {
            throw BillaError(.invalidArgument, "--dtype \(recipe.rawValue) is a quantized type; Meta and HF files hold f16, bf16 or f32",
                             remedy: "use --to gguf for quantized output, or --dtype f16")
        }
        return recipe.defaultType
    }
}

/// `billa convert SRC -o OUT.gguf --to gguf [--dtype TYPE]`: f16 unless --dtype says otherwise; norms stay f32.
func runConvertToGGUF(source: String, output: String, options: GGUFExportOptions, dryRun: Bool, report: ReportOptions) throws {
    var o = options
    o.threads = ProcessInfo.processInfo.activeProcessorCount
    try runGGUFExport(source: source, output: output, options: o, dryRun: dryRun, report: report, label: "convert")
}

/// `quantize --format pack` and `pack --quantize`: the GGUF plan's tensors in a billa pack.
func runQuantizedPack(source: String, output: String, export: GGUFExportOptions, options: PackOptions, report: ReportOptions,
                      command: String) throws {
    let start = Date()
    let plan = try GGUFExport.plan(source: source, options: export)   // headers only: cheap to plan twice
    try checkOverridesMatch(export, plan)
    stateLosses(plan.losses)
    try Packer.packQuantized(source: source, export: export, options: options, to: output, quiet: report.quiet)
    stateClamped(export.narrowing)
    let pack = try PackReader.open(output)
    let seconds = Date().timeIntervalSince(start)
    let bytes = pack.tensors.reduce(0) { $0 + $1.byteCount }
    let summary = PackSummary(files: [output], tensors: pack.tensors.count, tensorBytes: bytes, fileBytes: pack.file.size,
                              ratio: bytes > 0 ? Double(pack.file.size) / Double(bytes) : 1, seconds: seconds)
    if report.json { try printJSON(command: command, output: output, summary) } else {
        let mix = Dictionary(grouping: pack.tensors, by: \.dtype).map { "\($0.value.count) \($0.key.rawValue)" }.sorted().joined(separator: ", ")
        report.say("wrote \(output): \(pack.tensors.count) tensors (\(mix)), \(ByteFormat.human(pack.file.size)) in " + String(format: "%.1f s", seconds))
    }
}
