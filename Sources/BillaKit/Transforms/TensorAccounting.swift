import Foundation

/// The user's leave to lose source tensors that no rule of a conversion (or the forward pass) consumes: a Qwen2
/// attention bias, a LoRA leftover, an unknown name. Without it such a tensor refuses the run by name, so nothing is
/// lost silently.
public struct DropPolicy: Sendable {
    /// Regular expressions (`--drop-tensor PATTERN`); a tensor whose name any of them matches may be dropped.
    public var patterns: [String] = []
    /// `--drop-unknown`: every tensor no rule consumes may be dropped.
    public var dropUnknown = false

    public init(patterns: [String] = [], dropUnknown: Bool = false) {
        self.patterns = patterns
        self.dropUnknown = dropUnknown
    }

    func allows(_ name: String) throws -> Bool {
        if dropUnknown { return true }
        for p in patterns {
            guard let re = try? NSRegularExpression(pattern: p) else {
                throw BillaError(.invalidArgument, "--drop-tensor '\(p)' is not a valid regular expression",
                                 remedy: "pass a regular expression matched against source tensor names, e.g. --drop-tensor '\\.bias$'")
            }
            if re.firstMatch(in: name, range: NSRange(name.startIndex..., in: name)) != nil { return true }
        }
        return false
    }
}

/// The one place that decides what happens to a source tensor that no rule maps: every converter, the GGUF export
/// and the forward pass ask it. Known-harmless buffers that the reference code recomputes from the config —
/// transformers' `rotary_emb.inv_freq` and Meta's `rope.freqs` — are dropped with a note; anything else is refused
/// by name unless the `DropPolicy` allows it, and then each dropped tensor is listed with its size.
public enum TensorAccounting {
    /// Buffers recomputed from the config by transformers and by Meta's code, never model parameters.
    public static func isKnownBuffer(_ name: String) -> Bool {
        name == "rope.freqs" || name.hasSuffix("rotary_emb.inv_freq")
    }

    /// What accounting decided for the tensors a rule did not consume.
    public struct Outcome: Sendable {
        /// Names not to convert (known buffers and allowed drops).
        public var skipped: Set<String> = []
        /// Notes on the known buffers (stdout summary).
        public var notes: [String] = []
        /// One line per dropped tensor with its size, for stderr.
        public var dropped: [String] = []
    }

    /// Checks every source tensor: `consumed` says whether a rule maps it. `what` names the consumer in the error
    /// ("no Hugging Face LLaMA name", "the forward pass does not use it").
    public static func account(_ tensors: [(name: String, bytes: Int, file: String)], consumed: (String) -> Bool,
                               policy: DropPolicy, what: String, bufferNote: String) throws -> Outcome {
        var out = Outcome()
        var refused = [(name: String, file: String)]()
        var seen = Set<String>()
        for t in tensors where !consumed(t.name) && seen.insert(t.name).inserted {
            if isKnownBuffer(t.name) {
                out.skipped.insert(t.name)
                out.notes.append("\(t.name) is not converted: \(bufferNote)")
            } else if try policy.allows(t.name) {
                out.skipped.insert(t.name)
                let total = tensors.filter { $0.name == t.name }.reduce(0) { $0 + $1.bytes }
                out.dropped.append("dropped \(t.name) (\(ByteFormat.human(total)), \(total) bytes) from \(t.file): \(what)")
            } else {
                refused.append((t.name, t.file))
            }
        }
        if let first = refused.first {
            let names = refused.prefix(8).map(\.name).joined(separator: ", ") + (refused.count > 8 ? ", ..." : "")
            throw BillaError(.unsupported, file: first.file, tensor: first.name,
                             "\(refused.count) source tensor\(refused.count == 1 ? "" : "s") would be lost (\(what)): \(names)",
                             remedy: "this is not a plain LLaMA checkpoint; pass --drop-tensor PATTERN (a regular expression) or --drop-unknown to drop \(refused.count == 1 ? "it" : "them") knowingly (each dropped tensor is listed on stderr)")
        }
        return out
    }

    /// Accounts for the tensors of a release (each distinct name once, sizes summed over Meta shards).
    public static func account(_ release: Release, consumed: (String) -> Bool, policy: DropPolicy, what: String,
                               bufferNote: String) throws -> Outcome {
        try account(release.tensors.map { ($0.tensor.name, $0.tensor.byteCount, $0.file.path) }, consumed: consumed,
                    policy: policy, what: what, bufferNote: bufferNote)
    }
}
