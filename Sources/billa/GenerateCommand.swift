import ArgumentParser
import BillaKit
import Foundation

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Continue a prompt with the model, streaming tokens as they come (a human smoke test; greedy by default).",
        discussion: """
            MODEL is anything billa reads: a Meta or Hugging Face directory, a GGUF file or a billa pack. Greedy unless --temperature is above 0; the same --seed gives the same text.

            Examples:
              billa generate BiLLa-7B-SFT --prompt 'Human: 介绍一下北京 Assistant: ' -n 128
              billa generate llama-7b-q4_k_m.gguf --prompt 'The capital of France is' --temperature 0.8 --top-p 0.95 --seed 1
            """)

    @Argument(help: "A Meta or Hugging Face directory, a GGUF or a billa pack.")
    var model: String

    @Option(name: .long, help: "The text to continue. BiLLa expects \"Human: ...\\nAssistant: \".")
    var prompt: String

    @Option(name: [.short, .long], help: "New tokens at most.")
    var n = 64

    @Option(name: .long, help: "0 is greedy; higher samples more freely.")
    var temperature = 0.0

    @Option(name: .long, help: "Sample only from the most likely tokens whose probabilities add up to this.")
    var topP = 1.0

    @Option(name: .long, help: "Seed of the sampler.")
    var seed: UInt64 = 0

    @Option(name: .long, help: "Tokenizer to use when the model carries none.")
    var tokenizer: String?

    @Flag(name: .long, help: "Print the prompt ids, generated ids, text and timings as JSON instead of streaming.")
    var json = false

    @Flag(name: .long, help: "Keep going past the end-of-sequence token (for benchmarks: always -n tokens).")
    var ignoreEos = false

    @Flag(name: .long, help: "No progress on stderr (shown with --json, or when stdout is not the terminal the tokens stream to).")
    var quiet = false

    func validate() throws {
        if n < 1 { throw ValidationError("-n must be at least 1") }
        if temperature < 0 { throw ValidationError("--temperature must not be negative") }
        if !(topP > 0 && topP <= 1) { throw ValidationError("--top-p must be in (0, 1]") }
        if temperature == 0, topP != 1 { throw ValidationError("--top-p applies to sampling; pass a --temperature above 0 with it (0 is greedy)") }
        if temperature == 0, seed != 0 { throw ValidationError("--seed applies to sampling; pass a --temperature above 0 with it (0 is greedy)") }
    }

    func run() throws {
        let m = try Verifier.Loaded(model, tokenizer: tokenizer)
        let sampler = Sampler(temperature: temperature, topP: topP, seed: seed)
        if !json { FileHandle.standardOutput.write(Data(prompt.utf8)) }
        var text = ""
        var timing: GenerationTiming?
        let meter = ProgressMeter(label: "generate", total: n, unit: .items("tokens"), quiet: quiet || (!json && isatty(1) == 1))
        let ids = try m.generate(prompt, count: n, sampler: sampler, stopAtEOS: !ignoreEos, timing: { timing = $0 }, progress: meter) { piece in
            text += piece
            if !json { FileHandle.standardOutput.write(Data(piece.utf8)) }
        }
        meter.finish()
        if json {
            struct Out: Encodable { let prompt: String; let prompt_ids: [Int]; let ids: [Int]; let text: String; let timing: GenerationTiming? }
            try printJSON(command: "generate", Out(prompt: prompt, prompt_ids: try m.tokenize(prompt), ids: ids, text: text, timing: timing))
        } else {
            print()
        }
    }
}
