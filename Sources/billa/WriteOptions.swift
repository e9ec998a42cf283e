import ArgumentParser
import BillaKit

/// What every write command shares: the one rule for outputs (`OutputGuard`). An output that is, replaces or
/// contains a file the command reads is refused always; one that exists is refused unless --force.
struct WriteOptions: ParsableArguments {
    @Flag(name: .long, help: "Replace the output if it exists (never an input: billa refuses to write over what it reads).")
    var force = false

    /// Checks `outputs` against `inputs` before anything is written; nil inputs (options not given) are skipped.
    func check(_ outputs: [String], _ kind: OutputGuard.Kind, inputs: [String?]) throws {
        try OutputGuard.check(inputs: inputs.compactMap { $0 }, outputs: outputs.map { OutputGuard.Output($0, kind) }, force: force)
    }
}
