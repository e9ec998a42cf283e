import ArgumentParser
import BillaKit
import Foundation

@main
struct Billa: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "billa",
        abstract: "Read, check and convert LLaMA-family weights, streaming and verifiable.",
        version: BillaVersion.description,
        subcommands: [Inspect.self, Checksum.self, Tokenize.self, Vocab.self, Convert.self, Recover.self, Reshard.self, Quantize.self, Pack.self, Unpack.self, Verify.self, Generate.self, PackBench.self]
    )

    static func main() {
        InterruptCleanup.install()   // first: it must block the signals before any thread starts
        MemoryPolicy.apply()
        main(nil)
    }
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

/// Runs a command body, turning billa's errors into a message on stderr and a non-zero exit.
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let e as BillaError {
        FileHandle.standardError.write(Data("error: \(e.description)\n".utf8))
        throw ExitCode(1)
    }
}

func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    let data = try encoder.encode(value)
    FileHandle.standardOutput.write(data)
    FileHandle.standardOutput.write(Data("\n".utf8))
}

func warn(_ text: String) {
    FileHandle.standardError.write(Data("warning: \(text)\n".utf8))
}
