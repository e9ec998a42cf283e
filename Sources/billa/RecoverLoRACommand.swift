import ArgumentParser
import BillaKit
import Foundation

struct RecoverLoRA: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lora",
        abstract: "Merge PEFT LoRA adapters into their base, in order (Chinese-LLaMA-Alpaca's merge script, PEFT's merge_and_unload).",
        discussion: """
            Each adapter in turn: its modules_to_save tables (the Chinese releases' embed_tokens and lm_head on the extended vocabulary) replace the base's, then W += (B @ A) * scaling in f32, rounded back to W's dtype; bit-identical to merge_llama_with_chinese_lora_low_mem.py and to PEFT. The vocabularies must grow in order; the output takes the last adapter's tokenizer. --to hf mirrors the base's shards (the script's --output_type huggingface); --to meta writes consolidated.NN.pth (--output_type pth, with its shard count).

            Examples:
              billa recover lora --base llama-7b-hf chinese-llama-plus-lora-7b chinese-alpaca-plus-lora-7b -o chinese-alpaca-plus-7b
              billa recover lora --base llama-7b-hf chinese-alpaca-lora-7b -o chinese-alpaca-7b --to meta
            """)

    @Option(name: .long, help: "The base model: a Hugging Face directory (e.g. LLaMA-7B converted with billa convert --to hf).")
    var base: String

    @Argument(help: "Adapter directories (adapter_config.json + adapter_model.bin or .safetensors), in merge order.")
    var adapters: [String]

    @Option(name: .shortAndLong, help: "The directory to create.")
    var output: String

    @Option(name: .long, help: "hf (the base's shard layout) or meta (consolidated.NN.pth + params.json).")
    var to: ConvertOptions.Target = .hf

    @Option(name: .long, help: "Meta output: model-parallel files (default: the merge script's 1/2/4/8 for 7B/13B/33B/65B widths, else 1).")
    var shards: Int?

    @Flag(name: .long, help: "List every tensor an adapter touches, with those adapters, and the files; write nothing.")
    var dryRun = false

    @OptionGroup var narrowing: NarrowingOptions
    @OptionGroup var report: ReportOptions
    @OptionGroup var write: WriteOptions

    func validate() throws {
        if to != .meta, shards != nil { throw ValidationError("--shards sets the Meta model-parallel count; it does not apply to --to hf") }
        if let shards, shards < 1 { throw ValidationError("--shards must be at least 1") }
    }

    func run() throws {
        if !dryRun { try write.check([output], .directory, inputs: [base] + adapters) }
        var o = LoRAMerge.Options(base: base, adapters: adapters, output: output)
        o.target = to
        o.shards = shards
        o.narrowing = narrowing.make()
        let job = try LoRAMerge.plan(o)
        if dryRun && !report.json {
            print("tensors the adapters touch (\(job.touched.count)):")
            for t in job.touched { print("  \(t.tensor)  <- \(t.adapters.joined(separator: ", then "))") }
        }
        struct Touched: Encodable { let tensor: String; let adapters: [String] }
        struct Touches: Encodable { let touched: [Touched] }
        try runPlan(job.plan, command: "recover lora", dryRun: dryRun, report: report,
                    extra: Touches(touched: job.touched.map { Touched(tensor: $0.tensor, adapters: $0.adapters) }))
        stateClamped(o.narrowing)
    }
}

