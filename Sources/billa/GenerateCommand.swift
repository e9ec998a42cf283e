import ArgumentParser
import BillaKit
import Foundation

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Continue a prompt with the model, streaming tokens as they come (a human smoke test; greedy by default).")

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
    }

    func run() throws {
        try reportingErrors {
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
                try printJSON(Out(prompt: prompt, prompt_ids: try m.tokenize(prompt), ids: ids, text: text, timing: timing))
            } else {
                print()
            }
        }
    }
}
