import Foundation

/// What `billa doctor` found at a path: what it is, the evidence, what is wrong with it, which files are official
/// ones, and the commands for the usual next step. Encoded as the `--json` report (issue 16's convention).
public struct DoctorReport: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable, CaseIterable {
        case metaOriginal = "meta_original"
        case hfModel = "hf_model"
        case billaRelease = "billa_release"
        case billaRecovered = "billa_recovered"
        case vicunaDelta = "vicuna_delta"
        case alpacaWeightDiff = "alpaca_weight_diff"
        case belleEncrypted = "belle_encrypted"
        case loraAdapter = "lora_adapter"
        case gguf
        case ggufSplit = "gguf_split"
        case pack
        case tensorFile = "tensor_file"
        case notRecognised = "not_recognised"
    }

    /// One piece of evidence, in the order it was found ("size": "LLaMA-7B (dim 4096, 32 layers)").
    public struct Fact: Codable, Sendable, Equatable {
        public var name: String
        public var value: String
        public init(_ name: String, _ value: String) { self.name = name; self.value = value }
    }

    public struct Finding: Codable, Sendable, Equatable {
        public enum Level: String, Codable, Sendable { case note, warning, error }
        public var level: Level
        public var text: String
    }

    /// A file whose digest is in `PublishedValues`, and how billa knows the digest: it hashed the file, or the
    /// file's manifest (checklist.chk) lists it.
    public struct KnownFile: Codable, Sendable, Equatable {
        public var file: String
        public var algorithm: String
        public var digest: String
        public var model: String
        public var official: String
        public var source: String
        public var how: String
    }

    /// A file billa hashed, and what the manifest beside it expected (nil: no manifest lists it).
    public struct HashedFile: Codable, Sendable, Equatable {
        public var file: String
        public var algorithm: String
        public var digest: String
        public var sizeBytes: Int
        public var expected: String?
        public var matches: Bool?
        enum CodingKeys: String, CodingKey { case file, algorithm, digest, sizeBytes = "size_bytes", expected, matches }
    }

    public var command = "doctor"
    public var schemaVersion = 1
    /// Recognised, and no finding is an error.
    public var ok: Bool { kind != .notRecognised && !findings.contains { $0.level == .error } }
    public var path: String
    /// The directory actually read (a Hugging Face cache root's snapshot), when it differs from `path`.
    public var resolvedPath: String?
    public var kind: Kind
    /// One line: what it is.
    public var title: String
    public var facts: [Fact] = []
    public var findings: [Finding] = []
    public var knownFiles: [KnownFile] = []
    public var hashed: [HashedFile] = []
    /// Large files not hashed (without --hash), so a reader knows what was not checked.
    public var notHashed: [String] = []
    /// Shell commands for the usual next step; UPPERCASE words are for the user to fill in.
    public var next: [String] = []

    enum CodingKeys: String, CodingKey {
        case command, schemaVersion = "schema_version", ok, path, resolvedPath = "resolved_path", kind, title, facts, findings
        case knownFiles = "known_files", hashed, notHashed = "not_hashed", next
    }

    public init(path: String, kind: Kind, title: String) {
        self.path = path
        self.kind = kind
        self.title = title
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        command = try c.decode(String.self, forKey: .command)
        schemaVersion = try c.decode(Int.self, forKey: .schemaVersion)
        path = try c.decode(String.self, forKey: .path)
        resolvedPath = try c.decodeIfPresent(String.self, forKey: .resolvedPath)
        kind = try c.decode(Kind.self, forKey: .kind)
        title = try c.decode(String.self, forKey: .title)
        facts = try c.decode([Fact].self, forKey: .facts)
        findings = try c.decode([Finding].self, forKey: .findings)
        knownFiles = try c.decode([KnownFile].self, forKey: .knownFiles)
        hashed = try c.decode([HashedFile].self, forKey: .hashed)
        notHashed = try c.decode([String].self, forKey: .notHashed)
        next = try c.decode([String].self, forKey: .next)
        let claimed = try c.decode(Bool.self, forKey: .ok)
        guard claimed == ok else {
            throw DecodingError.dataCorruptedError(forKey: .ok, in: c, debugDescription: "ok is \(claimed) but the findings say \(ok)")
        }
    }

    public func encode(to encoder: Encoder) throws {
        // command, schema_version and ok are the envelope's (Sources/billa/JSONReport.swift, formats/json.md); the
        // decoder reads them back from the whole report.
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(path, forKey: .path)
        try c.encodeIfPresent(resolvedPath, forKey: .resolvedPath)
        try c.encode(kind, forKey: .kind)
        try c.encode(title, forKey: .title)
        try c.encode(facts, forKey: .facts)
        try c.encode(findings, forKey: .findings)
        try c.encode(knownFiles, forKey: .knownFiles)
        try c.encode(hashed, forKey: .hashed)
        try c.encode(notHashed, forKey: .notHashed)
        try c.encode(next, forKey: .next)
    }

    mutating func fact(_ name: String, _ value: String) { facts.append(Fact(name, value)) }
    mutating func note(_ text: String) { findings.append(Finding(level: .note, text: text)) }
    mutating func warn(_ text: String) { findings.append(Finding(level: .warning, text: text)) }
    mutating func error(_ text: String) { findings.append(Finding(level: .error, text: text)) }

    /// The report as a person reads it.
    public var text: String {
        var out = "\(path): \(title)\n"
        if let resolvedPath { out += "  read from \(resolvedPath)\n" }
        for f in facts { out += "  \(f.name): \(f.value)\n" }
        for k in knownFiles { out += "  official: \(k.file) is \(k.official) (\(k.algorithm) \(k.how); published in \(k.source))\n" }
        for h in hashed {
            let status = h.matches.map { $0 ? "OK" : "FAILED (expected \(h.expected ?? "?"))" } ?? "not in a manifest"
            out += "  hashed: \(h.file) \(h.algorithm) \(h.digest) \(status)\n"
        }
        if !notHashed.isEmpty { out += "  not hashed (large; pass --hash): \(notHashed.joined(separator: ", "))\n" }
        for f in findings { out += "  \(f.level.rawValue): \(f.text)\n" }
        if !next.isEmpty {
            out += "next:\n"
            for n in next { out += "  \(n)\n" }
        }
        return out
    }
}
