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
            """)

    @Argument(help: "A model directory (Meta or Hugging Face), a .pth, .bin, .safetensors or .gguf file, or a billa pack.")
    var path: String

    @OptionGroup var report: ReportOptions

    func run() throws {
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
            out += "architecture: dim \(p.dim), layers \(p.nLayers), heads \(p.nHeads) (kv \(p.nKVHeads)), ffn \(p.ffnDim.map(String.init) ?? "?"), "
            out += "vocab \(p.vocabSize.map(String.init) ?? "?"), norm eps \(p.normEps), rope theta \(RopeScaling.show(p.ropeTheta))"
            out += ", rope scaling \(p.ropeScaling.map(scalingText) ?? "none")\n"
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
