import ArgumentParser
import BillaKit
import Foundation

struct Reshard: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Re-split a model's weight files without changing any tensor.",
        discussion: """
            Meta releases: --shards N model-parallel files (merged and re-split by Meta's rules).
            HF directories: --max-shard-size SIZE (huggingface_hub's rule) or --per-layer (one file per decoder
            layer plus one for the rest, BiLLa's 33-file layout). Files keep their format (safetensors or .bin).
            """)

    @Argument(help: "A Meta release or a Hugging Face directory.")
    var source: String

    @Option(name: .shortAndLong, help: "The directory to create.")
    var output: String

    @Option(name: .long, help: "Meta: the number of model-parallel shards.")
    var shards: Int?

    @Option(name: .long, help: "HF: the largest shard, e.g. 5GB, 500MB.")
    var maxShardSize: String?

    @Flag(name: .long, help: "HF: one shard per decoder layer, then one for the rest.")
    var perLayer = false

    @Flag(name: .long, help: "Print the plan; write nothing.")
    var dryRun = false

    @OptionGroup var report: ReportOptions
    @OptionGroup var write: WriteOptions

    func validate() throws {
        let chosen = (shards != nil ? 1 : 0) + (maxShardSize != nil ? 1 : 0) + (perLayer ? 1 : 0)
        if chosen != 1 { throw ValidationError("give exactly one of --shards, --max-shard-size, --per-layer") }
    }

    func run() throws {
        try reportingErrors {
            if !dryRun { try write.check([output], .directory, inputs: [source]) }
            let mode: Resharder.Mode
            if let shards { mode = .shards(shards) } else if let text = maxShardSize {
                guard let v = ByteFormat.parse(text), v > 0 else {
                    throw BillaError(.invalidArgument, "--max-shard-size '\(text)' is not a size", remedy: "write it like 5GB, 500MB or 2GiB")
                }
                mode = .maxShardSize(v)
            } else { mode = .perLayer }
            try runPlan(try Resharder.plan(source: source, destination: output, mode: mode), label: "reshard", dryRun: dryRun, report: report)
        }
    }
}
