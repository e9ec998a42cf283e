import ArgumentParser
import BillaKit
import Foundation

@main
struct Billa: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "billa",
        abstract: "Read, check and convert LLaMA-family weights, streaming and verifiable.",
        version: BillaVersion.description,
        subcommands: [Inspect.self, Doctor.self, Checksum.self, Tokenize.self, Vocab.self, Convert.self, Recover.self, Reshard.self, Quantize.self, Pack.self, Unpack.self, Verify.self, Generate.self, Perplexity.self, Imatrix.self, PackBench.self]
    )

    static func main() {
        InterruptCleanup.install()   // first: it must block the signals before any thread starts
        MemoryPolicy.apply()
        var command: ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            exit(withError: error)   // --help and --version exit 0; unknown or conflicting options exit 64
        }
        do {
            try command.run()
        } catch let e as BillaError {
            StatusLine.standardError.message("error: \(e.description)\n", keepProgress: false)
            exit(withError: ExitCode(ExitStatus.badInput))
        } catch let e as ExitCode {
            exit(withError: e)
        } catch let e as ValidationError {
            exit(withError: e)   // a command's own check of its options after parsing: still a usage error (64)
        } catch let e as CleanExit {
            exit(withError: e)
        } catch where String(reflecting: type(of: error)).hasPrefix("ArgumentParser.") {
            exit(withError: error)   // the parser's own errors from run(), e.g. `billa help pack` printing help
        } catch {
            // Foundation and system errors (a file that cannot be read, a full disk) are bad input or I/O too, not a
            // failed check: the argument parser would exit 1 for them, which a pipeline reads as "the check failed".
            StatusLine.standardError.message("error: \(error.localizedDescription)\n", keepProgress: false)
            exit(withError: ExitCode(ExitStatus.badInput))
        }
    }
}

/// The exit statuses, the same for every command (README, "Exit status"): a pipeline can tell "the candidate is
/// wrong" (1) from "the input could not be read" (2) and "you called it wrong" (64, the argument parser's EX_USAGE).
enum ExitStatus {
    /// A check ran and failed: verify, checksum --check, verify --checksums, vocab audit on a mismatch.
    static let checkFailed: Int32 = 1
    /// Bad input or an I/O error; the message names the file and the remedy.
    static let badInput: Int32 = 2
    /// Unknown, missing or conflicting options (ValidationError).
    static let usage: Int32 = 64
}

/// Options every report command shares.
struct ReportOptions: ParsableArguments {
    @Flag(name: .long, help: "Print the report as JSON on stdout.")
    var json = false

    @Flag(name: .long, help: "No progress and no summary of what was written; errors and warnings still go to stderr.")
    var quiet = false

    /// Prints a line of a write command's summary ("wrote ...", "note: ..."). Scripts pass --quiet to keep stdout
    /// empty, so the summary follows the progress meter; reports that are a command's answer (digests, tables,
    /// dry-run plans) print regardless.
    func say(_ line: String) {
        if !quiet { print(line) }
    }
}

func warn(_ text: String) {
    StatusLine.standardError.message("warning: \(text)\n")
}
