import Foundation

/// What a user points billa at: a Meta original release, a Hugging Face directory, or a single tensor file.
public enum ReleaseLayout: String, Codable, Sendable {
    case meta
    case huggingFace = "hf"
    case file
}

/// A model on disk, opened and validated: its tensor files, architecture, tokenizer and vocabulary cross-check.
/// Opening reads headers only; no tensor bytes are touched.
public struct Release: Sendable {
    public let path: String
    public let layout: ReleaseLayout
    public let files: [TensorFile]
    public let parameters: ModelParameters?
    public let tokenizerPath: String?
    public let vocab: VocabCheck
    public let warnings: [String]

    /// Every tensor with the file it lives in, in file then storage order.
    public var tensors: [(file: TensorFile, tensor: Tensor)] {
        files.flatMap { f in f.tensors.map { (f, $0) } }
    }

    public static func open(_ path: String) throws -> Release {
        let release = try openUnchecked(path)
        try release.checkTotals()
        return release
    }

    /// Each reader bounds each tensor by its file, but a hostile file can hold several tensors whose element counts
    /// add up past Int.max (two stride-0 views of 2^62 elements, two unknown-dtype pack tensors of shape [2^62]).
    /// Checked once here, the sums `parameterCount`, `inspect` and the writers form cannot overflow.
    func checkTotals() throws {
        var elements = 0, bytes = 0
        for (f, t) in tensors {
            let (e, o1) = elements.addingReportingOverflow(t.elementCount)
            let (b, o2) = bytes.addingReportingOverflow(t.byteCount)
            guard !o1, !o2 else {
                throw BillaError(.shapeMismatch, file: f.path, tensor: t.name,
                                 "the tensors up to this one (\(Shape.describe(t.shape))) claim more than \(Int.max) elements or bytes in total, which no file can hold",
                                 remedy: "the file is corrupt or hostile; download it again and check its published checksum")
            }
            elements = e
            bytes = b
        }
    }

    static func openUnchecked(_ path: String) throws -> Release {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw BillaError(.notFound, file: path, "no such file or directory", remedy: "check the path")
        }
        if !isDir.boolValue { return try openFile(path) }
        // A Hugging Face cache root reads the snapshot refs/main names; a snapshot's symlinks are followed by every reader.
        let dir = try ModelDirectory.resolve(path)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        if names.contains("params.json"), names.contains(where: { $0.hasPrefix("consolidated.") && $0.hasSuffix(".pth") }) {
            return try MetaRelease.open(dir, names: names)
        }
        if names.contains("config.json") {
            return try HuggingFaceRelease.open(dir, names: names)
        }
        throw BillaError(.unknownFormat, file: dir,
                         "neither a Meta release (params.json + consolidated.NN.pth) nor a Hugging Face directory (config.json + weights)",
                         remedy: "point billa at the directory that holds params.json or config.json, or at a single weights file")
    }

    static func openFile(_ path: String) throws -> Release {
        let mapped = try MappedFile(path: path)
        if FormatSniffer.detect(mapped) == .billaPack {
            let pack = try PackReader.open(mapped)
            return pack.shardCount > 1 ? PackSet.release(try PackSet.open(mapped.path)) : pack.release()
        }
        if FormatSniffer.detect(mapped) == .gguf { return try GGUFFile.release(try GGUFSplit.open(GGUFReader.open(mapped))) }
        let file = try FormatSniffer.openTensorFile(path)
        let embedding = file.tensor(named: "model.embed_tokens.weight") ?? file.tensor(named: "tok_embeddings.weight")
        let head = file.tensor(named: "lm_head.weight") ?? file.tensor(named: "output.weight")
        let vocab = VocabCheck(embedding: embedding?.shape.first, lmHead: head?.shape.first)
        return Release(path: path, layout: .file, files: [file], parameters: nil, tokenizerPath: nil, vocab: vocab,
                       warnings: vocab.warning.map { [$0] } ?? [])
    }

    init(path: String, layout: ReleaseLayout, files: [TensorFile], parameters: ModelParameters?, tokenizerPath: String?,
         vocab: VocabCheck, warnings: [String]) {
        self.path = path
        self.layout = layout
        self.files = files
        self.parameters = parameters
        self.tokenizerPath = tokenizerPath
        self.vocab = vocab
        self.warnings = warnings
    }

    /// Parameters of the whole model: replicated Meta tensors count once, buffers (rope.freqs, inv_freq) not at all.
    public var parameterCount: Int {
        var seen = Set<String>()
        var total = 0
        for (_, t) in tensors {
            if t.name == "rope.freqs" || t.name.hasSuffix("rotary_emb.inv_freq") { continue }
            if layout == .meta, MetaShardRules.rule(for: t.name) == .replicated {
                if !seen.insert(t.name).inserted { continue }
            }
            total += t.elementCount
        }
        return total
    }

    static func readJSON(_ path: String) throws -> [String: Any] {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw BillaError(.io, file: path, "cannot read: \(error.localizedDescription)", remedy: "check the file exists and is readable")
        }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw BillaError(.invalidHeader, file: path, "not a JSON object", remedy: "download the file again")
        }
        return object
    }

    static func tokenizerPieces(_ path: String?, warnings: inout [String]) -> Int? {
        guard let path else { return nil }
        do { return try TokenizerPieceCount.count(at: path) } catch {
            warnings.append("cannot read the tokenizer: \(error)")
            return nil
        }
    }
}

extension Dictionary where Key == String, Value == Any {
    func int(_ key: String) -> Int? { self[key] as? Int }
    func double(_ key: String) -> Double? { (self[key] as? Double) ?? (self[key] as? Int).map(Double.init) }
}
