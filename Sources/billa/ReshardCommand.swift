import ArgumentParser
import BillaKit
import Foundation

struct Reshard: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Re-split a model's weight files, changing no tensor unless --dtype asks.",
        discussion: """
            Meta releases: --shards N model-parallel files (merged and re-split by Meta's rules). HF directories: --max-shard-size SIZE (huggingface_hub's rule) or --per-layer (one file per decoder layer plus one for the rest, BiLLa's 33-file layout). Files keep their format (safetensors or .bin).

            --dtype casts every floating-point tensor on the way (round to nearest even) and sets config.json's dtype (or torch_dtype). A narrowing to f16 refuses a value beyond ±65504, naming the tensor and its largest value, unless --clamp-overflow.

            Examples:
              billa reshard llama-7b-hf -o llama-7b-2gb --max-shard-size 2GB
              billa reshard BiLLa-7B-SFT -o billa-33 --per-layer --dtype bf16
              billa reshard llama-13b -o llama-13b-mp1 --shards 1
            """)

    @Argument(help: "A Meta release or a Hugging Face directory.")
    var source: String

    @Option(name: .shortAndLong, help: "The directory to create.")
    var output: String

    @Option(name: .long, help: "Meta source: the number of model-parallel shards.")
    var shards: Int?

    @Option(name: .long, help: "HF source: the largest shard, e.g. 5GB, 500MB.")
    var maxShardSize: String?

    @Flag(name: .long, help: "HF source: one shard per decoder layer, then one for the rest.")
    var perLayer = false

    @Option(name: .long, help: "Cast floating-point tensors to f16, bf16 or f32 (round to nearest even).")
    var dtype: DTypeArgument?

    @Flag(name: .long, help: "Print the plan; write nothing.")
    var dryRun = false

    @OptionGroup var narrowing: NarrowingOptions
    @OptionGroup var report: ReportOptions
    @OptionGroup var write: WriteOptions

    func validate() throws {
        let chosen = (shards != nil ? 1 : 0) + (maxShardSize != nil ? 1 : 0) + (perLayer ? 1 : 0)
        if chosen != 1 { throw ValidationError("give exactly one of --shards, --max-shard-size, --per-layer") }
        if let shards, shards < 1 { throw ValidationError("--shards must be at least 1") }
        if let maxShardSize, (ByteFormat.parse(maxShardSize) ?? 0) <= 0 {
            throw ValidationError("--max-shard-size '\(maxShardSize)' is not a size; write it like 5GB, 500MB or 2GiB")
        }
        if narrowing.clampOverflow, dtype == nil { throw ValidationError("--clamp-overflow applies to a narrowing: pass --dtype f16 or bf16 with it") }
    }

    func run() throws {
        if !dryRun { try write.check([output], .directory, inputs: [source]) }
        let mode: Resharder.Mode
        if let shards { mode = .shards(shards) } else if let text = maxShardSize, let v = ByteFormat.parse(text) {
            mode = .maxShardSize(v)
        } else { mode = .perLayer }
        let n = narrowing.make()
        let plan = try Resharder.plan(source: source, destination: output, mode: mode, dtype: dtype?.dtype, narrowing: n)
        try runPlan(plan, command: "reshard", dryRun: dryRun, report: report)
        stateClamped(n)
    }
}
