import ArgumentParser
import BillaKit
import Foundation

struct Doctor: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Say what a download is (Meta, HF, BiLLa, delta, diff, BELLE, LoRA, GGUF, pack) and what to run next.",
        discussion: """
            Reads headers, names and checksums only (plus a norm vector or a sample of embedding rows where a check needs them). Files up to 64 MiB are hashed; larger ones only with --hash. Digests and checklist.chk entries are looked up in the published values (Meta's checklist.chk md5s, the SHA-256 tables of Chinese-LLaMA-Alpaca and llama.cpp, BiLLa's and Alpaca's sums). Exit status: 0 recognised and sound, 1 recognised with a problem (missing shard, checksum mismatch), 2 not recognised or unreadable.

            Examples:
              billa doctor ~/Downloads/llama-7b
              billa doctor ~/.cache/huggingface/hub/models--meta-llama--Llama-2-7b-hf --json
              billa doctor chinese-alpaca-lora-7b --hash
            """)

    @Argument(help: "A directory (Meta, Hugging Face, HF cache entry, LoRA adapter, BELLE .enc files) or a file (GGUF, pack, .enc, tensor file).")
    var path: String

    @Flag(name: .long, help: "Hash every file however large, and compute published sums that read a whole tensor.")
    var hash = false

    @Flag(name: .long, help: "Print the report as JSON on stdout.")
    var json = false

    func run() throws {
        var o = ModelDoctor.Options()
        o.hash = hash
        let report = try ModelDoctor.diagnose(path, options: o)
        if json { try printJSON(command: "doctor", ok: report.ok, report) } else { print(report.text, terminator: "") }
        if report.kind == .notRecognised { throw ExitCode(ExitStatus.badInput) }
        if !report.ok { throw ExitCode(ExitStatus.checkFailed) }
    }
}
