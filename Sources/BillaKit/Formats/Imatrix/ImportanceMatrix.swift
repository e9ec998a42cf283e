import Foundation

/// An importance matrix as llama-imatrix writes it and llama-quantize reads it: for every weight matrix (by its
/// GGUF name), the sum over calibration tokens of each input column's squared activation, and how many tokens
/// went into the sums. llama-quantize divides one by the other and hands the quantizer one weight per column, so
/// the columns that carry large activations are rounded more carefully.
///
/// Two files hold it (formats/imatrix.md): the GGUF one (`general.type = imatrix`, raw sums in `NAME.in_sum2`,
/// token counts in `NAME.counts`) and the legacy `.dat` (per entry the mean scaled by a call count). Both are read
/// as they are, and written from raw sums exactly as llama-imatrix writes them, so either tool reads the other's.
public struct ImportanceMatrix: Sendable, Equatable {
    /// One matrix's statistics. `counts` has one element per stacked matrix (one for dense LLaMA weights): tokens
    /// seen (GGUF), or the call count the legacy file stores.
    public struct Entry: Sendable, Equatable {
        public var sums: [Float]
        public var counts: [Int64]
        public init(sums: [Float], counts: [Int64]) { self.sums = sums; self.counts = counts }
    }

    public enum Format: String, Sendable, Codable, CaseIterable { case gguf, dat }

    public var entries: [String: Entry]
    /// The calibration texts, as named on the command line that computed them.
    public var datasets: [String]
    public var chunkCount: Int
    /// Tokens per chunk (the context size); the legacy format does not record it (0).
    public var chunkSize: Int
    /// The format the statistics were read from or computed for: legacy sums are already means × call count.
    public var format: Format
    /// Whether a GGUF file carried the three `imatrix.*` keys llama-quantize requires.
    public var hasMetadata: Bool
    /// The imatrix.* keys a GGUF imatrix lacks (llama-quantize refuses one without all three).
    public var missingMetadata: [String] = []

    public init(entries: [String: Entry], datasets: [String], chunkCount: Int, chunkSize: Int,
                format: Format = .gguf, hasMetadata: Bool = true) {
        self.entries = entries
        self.datasets = datasets
        self.chunkCount = chunkCount
        self.chunkSize = chunkSize
        self.format = format
        self.hasMetadata = hasMetadata
    }

    /// The per-column weights llama-quantize passes to the quantizer for the tensor `name`: sums / tokens (a
    /// matrix that saw no tokens gets 1s), or, from a legacy file, the stored values / the call count.
    public func importance(for name: String) -> [Float]? {
        guard let e = entries[name], !e.counts.isEmpty else { return nil }
        switch format {
        case .gguf:
            let cols = e.sums.count / e.counts.count
            var out = [Float](repeating: 1, count: e.sums.count)
            for m in 0..<e.counts.count where e.counts[m] > 0 {
                let c = Float(e.counts[m])
                for i in 0..<cols { out[m * cols + i] = e.sums[m * cols + i] / c }
            }
            return out
        case .dat:
            let ncall = e.counts[0]
            guard ncall > 0 else { return e.sums }
            let c = Float(ncall)
            return e.sums.map { $0 / c }
        }
    }

    /// llama-quantize's --exclude-weights then --include-weights: entries whose name contains any excluded
    /// substring are dropped, then only those containing an included one are kept.
    public func filtered(include: [String], exclude: [String]) -> ImportanceMatrix {
        var copy = self
        copy.entries = entries.filter { name, _ in !exclude.contains { name.contains($0) } }
        if !include.isEmpty { copy.entries = copy.entries.filter { name, _ in include.contains { name.contains($0) } } }
        return copy
    }

    /// Reads `path` as llama-quantize --imatrix does: either format, a GGUF imatrix only with its three
    /// `imatrix.*` keys; then --exclude-weights / --include-weights.
    public static func forQuantize(_ path: String, include: [String] = [], exclude: [String] = []) throws -> ImportanceMatrix {
        let m = try read(path)
        guard m.format == .dat || m.hasMetadata else {
            throw BillaError(.invalidHeader, file: path, "the GGUF imatrix lacks \(m.missingMetadata.isEmpty ? "imatrix metadata" : m.missingMetadata.joined(separator: ", ")) (llama-quantize refuses it: \"missing imatrix metadata\")",
                             remedy: "recompute it with billa imatrix or a current llama-imatrix")
        }
        let kept = m.filtered(include: include, exclude: exclude)
        for name in kept.sortedNames {
            if let v = kept.importance(for: name)?.first(where: { !$0.isFinite }) {
                throw BillaError(.invalidHeader, file: path, tensor: name, "the importance matrix holds \(v) (llama-quantize refuses it: \"imatrix contains non-finite value\")",
                                 remedy: "recompute the importance matrix; the model overflowed on the calibration text or the file is damaged")
            }
        }
        return kept
    }

    /// Entry names in the order both of llama-imatrix's writers use (std::sort: bytewise).
    var sortedNames: [String] { entries.keys.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) } }
}

/// The suffixes and keys of the GGUF imatrix file (llama.cpp common/imatrix-loader.h).
enum ImatrixKeys {
    static let type = "general.type"
    static let typeValue = "imatrix"
    static let datasets = "imatrix.datasets"
    static let chunkCount = "imatrix.chunk_count"
    static let chunkSize = "imatrix.chunk_size"
    static let sumsSuffix = ".in_sum2"
    static let countsSuffix = ".counts"
}

extension ImatrixKeys {
    /// What llama-quantize records about the imatrix in its output (tools/quantize/quantize.cpp's kv overrides,
    /// appended after general.file_type): the file as given and the first dataset, each cut at 127 bytes as its
    /// strncpy into a 128-byte field cuts them; the number of entries used; the chunk count when known.
    static func record(_ m: ImportanceMatrix, file: String, into meta: inout GGUFMetadata) {
        meta["quantize.imatrix.file"] = .string(Array(file.utf8.prefix(127)))
        if let d = m.datasets.first { meta["quantize.imatrix.dataset"] = .string(Array(d.utf8.prefix(127))) }
        meta["quantize.imatrix.entries_count"] = .u32(UInt32(clamping: m.entries.count))
        if m.chunkCount > 0 { meta["quantize.imatrix.chunks_count"] = .u32(UInt32(clamping: m.chunkCount)) }
    }
}
