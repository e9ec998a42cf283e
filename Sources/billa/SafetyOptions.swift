import ArgumentParser
import BillaKit
import Foundation

/// --drop-tensor / --drop-unknown: leave to lose source tensors that no rule consumes (refused by name otherwise).
struct DropOptions: ParsableArguments {
    @Option(name: .customLong("drop-tensor"), help: "PATTERN (regular expression): drop source tensors whose name matches it, if no rule consumes them; each is listed on stderr.")
    var patterns: [String] = []

    @Flag(name: .long, help: "Drop every source tensor no rule consumes (each is listed on stderr with its size).")
    var dropUnknown = false

    var policy: DropPolicy { DropPolicy(patterns: patterns, dropUnknown: dropUnknown) }
}

/// --clamp-overflow: an explicit narrowing clamps values beyond the target's range instead of refusing.
struct NarrowingOptions: ParsableArguments {
    @Flag(name: .long, help: "When narrowing (to f16 or bf16), write finite values beyond the target's range as its largest finite value instead of refusing; the count per tensor is printed on stderr.")
    var clampOverflow = false

    func make() -> Narrowing { Narrowing(clamp: clampOverflow) }
}

/// Lossy steps a plan takes knowingly: on stderr, before anything is written, whatever --quiet says.
/// llama.cpp's "n_ctx_per_seq > n_ctx_train" warning: chunks longer than the context the model records.
func warnContext(_ loaded: Verifier.Loaded, _ nCtx: Int) {
    guard let trained = loaded.model.weights.parameters.contextLength, nCtx > trained else { return }
    warn("-c \(nCtx) exceeds the model's context length \(trained): positions past it were never trained, so the numbers may mean little (llama.cpp warns the same: n_ctx_per_seq > n_ctx_train)")
}

func stateLosses(_ lines: [String]) {
    for l in lines { StatusLine.standardError.message("note: \(l)\n") }
}

/// What a clamping run clamped, on stderr after the write.
func stateClamped(_ narrowing: Narrowing) {
    for l in narrowing.clampedReport { StatusLine.standardError.message("warning: \(l)\n") }
}

/// --split-max-tensors N / --max-shard-size SIZE for GGUF outputs: a gguf-split set instead of one file.
func ggufSplitRule(maxTensors: Int?, maxShardSize: String?) throws -> GGUFSplitRule? {
    if maxTensors != nil && maxShardSize != nil {
        throw BillaError(.invalidArgument, "--split-max-tensors and --max-shard-size both cut the GGUF output",
                         remedy: "pass one of them, as llama-gguf-split takes one")
    }
    if let n = maxTensors {
        guard n > 0 else { throw BillaError(.invalidArgument, "--split-max-tensors \(n) is not a tensor count", remedy: "pass a positive number, e.g. 128") }
        return .maxTensors(n)
    }
    if let s = maxShardSize {
        guard let b = ByteFormat.parse(s), b > 0 else {
            throw BillaError(.invalidArgument, "--max-shard-size '\(s)' is not a size", remedy: "write it like 4GB, 500MB or 2GiB")
        }
        return .maxBytes(b)
    }
    return nil
}
