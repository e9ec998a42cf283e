import ArgumentParser
import BillaKit
import Foundation

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a checkpoint's format, architecture, tensors and vocabulary cross-check (reads headers only).",
        discussion: """
            PATH is a Meta release or Hugging Face directory (or a Hugging Face cache root), a single .pth, .bin, .safetensors or .gguf file, or a billa pack (.billa). Only headers are read, so it takes a moment even for a 65B model.

            The vocabulary cross-check compares the embedding's rows, lm_head's rows, config.json's vocab_size and the tokenizer's pieces; a disagreement is printed as MISMATCH and warned about on stderr.

            Examples:
              billa inspect llama-7b
              billa inspect BiLLa-7B-SFT --json | jq .vocab
              billa inspect model-q4_k_m.gguf
              billa inspect imatrix.gguf          (an importance matrix: its entries, chunks and datasets)
            """)

    @Argument(help: "A model directory (Meta or Hugging Face), a .pth, .bin, .safetensors or .gguf file, or a billa pack.")
    var path: String

    @OptionGroup var report: ReportOptions

    func run() throws {
        if ImportanceMatrix.isGGUFImatrix(path) || (path.hasSuffix(".dat") && FileManager.default.fileExists(atPath: path)) {
            try inspectImatrix()
            return
        }
        let release = try Release.open(path)
        let r = InspectReport(release)
        if report.json {
            try printJSON(command: "inspect", r)
        } else {
            print(InspectText.render(r), terminator: "")
        }
        for w in r.warnings { warn(w) }
    }
}

extension Inspect {
    /// An importance matrix (llama-imatrix's or billa imatrix's): what it was computed on and what it holds.
    func inspectImatrix() throws {
        let m = try ImportanceMatrix.read(path)
        let entries = m.entries.keys.sorted(by: QuantPolicy.order).map { name -> ImatrixInspectReport.Entry in
            let e = m.entries[name]!
            return .init(name: name, columns: e.counts.isEmpty ? 0 : e.sums.count / e.counts.count, matrices: e.counts.count,
                         count: e.counts.max() ?? 0)
        }
        let r = ImatrixInspectReport(path: path, format: m.format.rawValue, chunkCount: m.chunkCount,
                                     chunkSize: m.format == .gguf ? m.chunkSize : nil, datasets: m.datasets, entries: entries)
        if report.json { try printJSON(command: "inspect", r); return }
        let chunks = m.chunkCount > 0 ? ", \(m.chunkCount) chunks" + (m.format == .gguf && m.chunkSize > 0 ? " of \(m.chunkSize) tokens" : "") : ""
        print("\(path): importance matrix (\(m.format == .gguf ? "GGUF imatrix" : "legacy .dat")), \(entries.count) entries\(chunks)")
        print("datasets: \(m.datasets.isEmpty ? "-" : m.datasets.joined(separator: ", "))")
        print("")
        let rows = entries.map { [$0.name, String($0.columns), String($0.matrices), String($0.count)] }
        print(Table.render(header: ["entry", "columns", "matrices", m.format == .gguf ? "tokens" : "calls"], rows: rows, rightAligned: [1, 2, 3]), terminator: "")
    }
}

/// What `inspect --json` prints for an importance matrix.
struct ImatrixInspectReport: Encodable {
    struct Entry: Encodable {
        let name: String
        let columns: Int
        let matrices: Int
        /// Tokens seen (GGUF imatrix) or the call count (legacy .dat), the largest over the entry's matrices.
        let count: Int64
    }
    let path: String
    let format: String
    let chunkCount: Int
    let chunkSize: Int?
    let datasets: [String]
    let entries: [Entry]

    enum CodingKeys: String, CodingKey {
        case path, format, datasets, entries
        case chunkCount = "chunk_count", chunkSize = "chunk_size"
    }
}

/// The human-readable form of an inspect report.
enum InspectText {
    static func render(_ r: InspectReport) -> String {
        var out = ""
        var kind = ["meta": "Meta original release", "hf": "Hugging Face directory"][r.format] ?? r.format
        // A pack's "files" are its groups (the source files it was made from) inside one file on disk.
        let pack = r.files.first?.format == .billaPack
        if pack, r.format != ContainerFormat.billaPack.rawValue { kind += " in a billa pack" }
        out += "\(r.path): \(kind), \(r.files.count) \(pack ? "group(s)" : "file(s)"), \(ByteFormat.human(r.totalBytes))\n"
        if let p = r.parameters {
            out += "architecture: \(p.modelFamily.rawValue), dim \(p.dim), layers \(p.nLayers), heads \(p.nHeads) (kv \(p.nKVHeads)), ffn \(p.ffnDim.map(String.init) ?? "?"), "
            out += "vocab \(p.vocabSize.map(String.init) ?? "?"), norm eps \(p.normEps), rope theta \(RopeScaling.show(p.ropeTheta))"
            out += ", rope scaling \(p.ropeScaling.map(scalingText) ?? "none")"
            if p.modelFamily.has(.attnQBias) { out += ", q/k/v biases" }
            if let w = p.slidingWindow {
                out += ", sliding window \(w)" + ((p.slidingWindowFirstLayer ?? 0) > 0 ? " from layer \(p.slidingWindowFirstLayer!)" : "")
            }
            out += "\n"
        }
        out += "parameters: \(grouped(r.parameterCount))\n"
        let mix = r.dtypes.sorted { $0.value.parameters > $1.value.parameters }
            .map { "\($0.key) \($0.value.tensors) tensors / \(grouped($0.value.parameters)) values" }
        out += "dtypes: \(mix.joined(separator: ", "))\n"
        func show(_ v: Int?) -> String { v.map(String.init) ?? "-" }
        out += "vocab: embedding \(show(r.vocab.embedding)), lm_head \(show(r.vocab.lmHead)), config \(show(r.vocab.config)), "
        out += "tokenizer \(show(r.vocab.tokenizer)): \(r.vocab.consistent ? "consistent" : "MISMATCH")\n"
        out += "\n"
        let rows = r.tensors.map { [$0.name, $0.dtype.rawValue, Shape.describe($0.shape), grouped($0.bytes), $0.shard + ($0.storage == "dense" ? "" : " (\($0.storage))")] }
        out += Table.render(header: ["tensor", "dtype", "shape", "bytes", "file"], rows: rows, rightAligned: [3])
        return out
    }

    /// The scaling's fields on one line; GGUF's per-frequency factors are counted, not listed (64 of them at 8B).
    static func scalingText(_ s: RopeScaling) -> String {
        s.fields.map { $0.0 == "rope_freqs" ? "rope_freqs \(s.freqFactors?.count ?? 0) factors" : "\($0.0) \($0.1)" }
            .joined(separator: ", ")
    }

    static func grouped(_ n: Int) -> String {
        let s = String(n)
        var out = ""
        for (i, c) in s.reversed().enumerated() {
            if i > 0, i % 3 == 0, c != "-" { out.append(",") }
            out.append(c)
        }
        return String(out.reversed())
    }
}

enum Table {
    static func render(header: [String], rows: [[String]], rightAligned: Set<Int> = []) -> String {
        var widths = header.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, c in
                let pad = String(repeating: " ", count: widths[i] - c.count)
                return rightAligned.contains(i) ? pad + c : c + pad
            }.joined(separator: "  ").trimmingCharacters(in: .whitespaces) + "\n"
        }
        return line(header) + rows.map(line).joined()
    }
}
