import ArgumentParser
import BillaKit
import Foundation

struct Vocab: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Merge, resize and audit vocabularies (LLaMA's 32000 pieces vs extended Chinese ones).",
        subcommands: [VocabMergeCommand.self, VocabResizeCommand.self, VocabAuditCommand.self])
}

struct VocabMergeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Extend BASE with EXTRA's pieces the way Chinese-LLaMA-Alpaca's merge_tokenizers.py does (byte-identical output).",
        discussion: """
            BASE is kept as it is; every piece of EXTRA whose text BASE lacks is appended in EXTRA's order with score 0, so the new pieces win every merge they take part in. The output is byte-identical to that script's.

            Example:
              billa vocab merge llama-7b/tokenizer.model chinese_sp.model -o merged.model
            """)

    @Argument(help: "The base tokenizer.model (e.g. LLaMA's).") var base: String
    @Argument(help: "The tokenizer.model whose new pieces are appended (e.g. chinese_sp.model).") var extra: String
    @Option(name: .shortAndLong, help: "The merged tokenizer.model to write.") var output: String
    @Flag(name: .long, help: "Append a [PAD] control piece, as Chinese-Alpaca's training adds.") var addPad = false
    @OptionGroup var report: ReportOptions
    @OptionGroup var write: WriteOptions

    func run() throws {
        try write.check([output], .file, inputs: [base, extra])
        let r = try VocabMerge.merge(base: SentencePieceModel.load(base), extra: SentencePieceModel.load(extra), addPad: addPad)
        let bytes = try r.model.serialized()
        try AtomicFileWriter.write(bytes, to: output)
        struct Out: Encodable { let base_pieces: Int; let added: Int; let already_present: Int; let pieces: Int; let pad_id: Int? }
        let out = Out(base_pieces: r.basePieces, added: r.added, already_present: r.skipped, pieces: r.model.pieceCount, pad_id: r.padID)
        if report.json { try printJSON(command: "vocab merge", output: output, out) } else {
            report.say("wrote \(output): \(r.basePieces) + \(r.added) new pieces = \(r.model.pieceCount)" +
                  " (\(r.skipped) of EXTRA's were already present)" + (r.padID.map { ", [PAD] = \($0)" } ?? ""))
            report.say("next: resize the model to it with billa vocab resize MODEL --tokenizer \(output) -o OUT")
        }
    }
}

struct VocabResizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resize",
        abstract: "Resize embed_tokens / lm_head and config.json of a Hugging Face model to a tokenizer's size, streaming.",
        discussion: """
            Existing rows are kept bit for bit; new rows are the mean of the existing ones (--init mean, so new tokens start as an average token rather than noise) or zero. Only the shards holding the two tensors are rewritten, streaming; the rest are hard-linked, and the tokenizer is copied into the output.

            Example:
              billa vocab resize llama-7b-hf --tokenizer merged.model -o llama-7b-zh
            """)

    @Argument(help: "A Hugging Face model directory.") var model: String
    @Option(name: .long, help: "The tokenizer.model to fit (it is copied into OUT).") var tokenizer: String
    @Option(name: .shortAndLong, help: "The directory to create.") var output: String
    @Option(name: .long, help: "New rows: mean (of the existing rows) or zero.") var `init`: String = "mean"
    @Flag(name: .long, help: "Print the plan; write nothing.") var dryRun = false
    @OptionGroup var report: ReportOptions
    @OptionGroup var write: WriteOptions

    func validate() throws {
        if VocabResize.Initialisation(rawValue: `init`) == nil { throw ValidationError("--init is mean or zero") }
    }

    func run() throws {
        if !dryRun { try write.check([output], .directory, inputs: [model, tokenizer]) }
        let plan = try VocabResize.plan(.init(model: model, tokenizer: TokenizerLocation.find(tokenizer), output: output,
                                              initialisation: VocabResize.Initialisation(rawValue: `init`) ?? .mean))
        try runPlan(plan, command: "vocab resize", dryRun: dryRun, report: report)
    }
}

struct VocabAuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Check a tokenizer against its model and measure what it costs on real text, per script.",
        discussion: """
            Consistency: pieces vs embedding rows vs lm_head rows vs config vocab_size vs the bos/eos/pad/unk ids; duplicate and unreachable pieces. Coverage on each --corpus (jsonl with a "text" field, or plain text): tokens per character, byte-fallback and unk rates per script (Han, Latin, digits, punctuation, other), the Han characters spelled with bytes most often, and how much of CJK the vocabulary holds. --against puts a second tokenizer's numbers beside them, of any kind (SentencePiece, tokenizer.json, tiktoken). For byte-level BPE, "byte fallback" counts tokens that are not whole characters (they start or end inside one), attributed to the character they cut.

            Exit status 1 when the consistency check fails.

            Examples:
              billa vocab audit BiLLa-7B-SFT --corpus zh.jsonl --against llama-7b/tokenizer.model
              billa vocab audit merged/tokenizer.model --corpus zh.jsonl --chart coverage.svg
            """)

    @Argument(help: "A tokenizer.json, a tokenizer.model (SentencePiece or Meta's tiktoken) or a model directory.") var target: String
    @Option(name: .long, help: "A corpus (repeatable).") var corpus: [String] = []
    @Option(name: .long, help: "Another tokenizer (any kind) or model directory to compare with.") var against: String?
    @Option(name: .long, help: "Write a chart of the coverage numbers (.svg; .png through rsvg-convert).") var chart: String?
    @OptionGroup var report: ReportOptions

    func validate() throws {
        if let chart, !(chart.lowercased().hasSuffix(".svg") || chart.lowercased().hasSuffix(".png")) {
            throw ValidationError("--chart must name an .svg or .png file")
        }
    }

    func run() throws {
        let corpora = try corpus.map { (name: ($0 as NSString).lastPathComponent, texts: try VocabAudit.readCorpus($0, quiet: report.quiet)) }
        let meter = ProgressMeter(label: "audit", total: corpora.reduce(0) { $0 + $1.texts.reduce(0) { $0 + $1.utf8.count } } * (against == nil ? 1 : 2), quiet: report.quiet)
        let main = try Self.audit(target, corpora: corpora, progress: meter)
        let other = try against.map { try Self.audit($0, corpora: corpora, progress: meter) }
        meter.finish()
        if let chart { try AuditChart.write(main, other, to: chart) }
        if report.json {
            // `ok` is the consistency verdict (exit 1 when false); against and coverage are null without --against
            // and --corpus.
            struct Out: Encodable {
                let target: VocabAuditReport; let against: VocabAuditReport?; let pieces: Int; let coverage: CoverageSummary?
                enum CodingKeys: String, CodingKey { case target, against, pieces, coverage }
                func encode(to encoder: Encoder) throws {
                    var c = encoder.container(keyedBy: CodingKeys.self)
                    try c.encode(target, forKey: .target); try c.encode(against, forKey: .against); try c.encode(pieces, forKey: .pieces)
                    try c.encode(coverage, forKey: .coverage)
                }
            }
            try printJSON(command: "vocab audit", ok: main.consistent, output: chart,
                          Out(target: main, against: other, pieces: main.pieces, coverage: CoverageSummary(main.coverage)))
        } else {
            print(AuditText.render(main, other), terminator: "")
        }
        if !main.consistent { throw ExitCode(1) }
    }

    static func audit(_ path: String, corpora: [(name: String, texts: [String])], progress: ProgressMeter? = nil) throws -> VocabAuditReport {
        var isDir: ObjCBool = false
        _ = FileManager.default.fileExists(atPath: path, isDirectory: &isDir)
        guard isDir.boolValue else { return VocabAudit.audit(try ModelTokenizer.open(path), path: path, corpora: corpora, progress: progress) }
        let release = try Release.open(path)
        guard let tok = try ModelTokenizer.load(for: release) else {
            throw BillaError(.notFound, file: path, "the model directory has no tokenizer.json or tokenizer.model",
                             remedy: "pass the tokenizer file itself")
        }
        let t = tok.kind == .tokenizerJSON ? release.path + "/tokenizer.json" : release.tokenizerPath ?? path
        let config = FileManager.default.fileExists(atPath: release.path + "/config.json") ? try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: release.path + "/config.json"))) as? [String: Any] : nil
        return VocabAudit.audit(tok, path: t, release: release, config: config ?? nil, corpora: corpora, progress: progress)
    }
}

/// The coverage of all corpora together, the top-level keys the issue names (coverage.tokens_per_char, ...).
struct CoverageSummary: Encodable {
    let tokens_per_char: [String: Double?]
    let byte_fallback_rate: [String: Double?]
    let unk_rate: [String: Double?]

    init?(_ all: [Coverage]) {
        guard !all.isEmpty else { return nil }
        func total(_ k: KeyPath<Coverage, ScriptCounts<Int>>) -> [String: Int] {
            all.reduce(into: [String: Int]()) { r, c in for (s, v) in c[keyPath: k].values { r[s, default: 0] += v } }
        }
        let chars = total(\.chars), tokens = total(\.tokens), bytes = total(\.byteTokens), unk = total(\.unkTokens)
        func rate(_ n: [String: Int], _ d: [String: Int]) -> [String: Double?] {
            n.reduce(into: [String: Double?]()) { r, kv in r[kv.key] = (d[kv.key] ?? 0) == 0 ? .some(nil) : .some(Double(kv.value) / Double(d[kv.key]!)) }
        }
        tokens_per_char = rate(tokens, chars)
        byte_fallback_rate = rate(bytes, tokens)
        unk_rate = rate(unk, tokens)
    }
}

enum AuditText {
    static let scripts = ["han", "latin", "digits", "punctuation", "other", "overall"]

    static func render(_ a: VocabAuditReport, _ b: VocabAuditReport?) -> String {
        var out = ""
        for r in [a] + (b.map { [$0] } ?? []) {
            out += "\(r.tokenizer): \(r.pieces) pieces (\(r.algorithm)\(r.byteFallback && !r.algorithm.hasPrefix("byte-level") ? ", byte fallback" : "")), "
            out += "\(r.cjk.hanPieces) Han characters as pieces, \(r.cjk.unifiedBlockCovered) of the \(r.cjk.unifiedBlockSize) CJK unified ideographs\n"
            if let v = r.vocab {
                func s(_ x: Int?) -> String { x.map(String.init) ?? "absent" }
                out += "  vocabulary: tokenizer \(s(v.tokenizer)), embedding \(s(v.embedding)), lm_head \(s(v.lmHead)), config \(s(v.config))\n"
            }
            out += "  special ids: " + r.special.map { "\($0.name) \($0.id.map(String.init) ?? "-")\($0.config.map { " (config \($0))" } ?? "")\($0.ok ? "" : " MISMATCH")" }.joined(separator: ", ") + "\n"
            out += "  duplicate pieces: \(r.duplicatePieces.count); unreachable pieces: \(r.unreachablePieces)"
            if !r.unreachableExamples.isEmpty { out += " (e.g. " + r.unreachableExamples.prefix(5).map { "'\($0)'" }.joined(separator: ", ") + ")" }
            out += "\n  " + (r.consistent ? "consistent" : "INCONSISTENT: " + r.problems.joined(separator: "; ")) + "\n"
        }
        for (i, c) in a.coverage.enumerated() {
            let other = b?.coverage[i]
            out += "\n\(c.corpus) (\(c.texts) texts, \(c.chars.values["overall"] ?? 0) characters)\n"
            out += "| script | chars | tokens/char | byte fallback | unk |" + (other != nil ? " tokens/char (against) | byte fallback (against) | unk (against) |" : "") + "\n"
            out += "|---|---:|---:|---:|---:|" + (other != nil ? "---:|---:|---:|" : "") + "\n"
            for s in scripts {
                out += "| \(s) | \(c.chars.values[s] ?? 0) | \(f(c.tokensPerChar.values[s] ?? nil)) | \(pct(c.byteFallbackRate.values[s] ?? nil)) | \(pct(c.unkRate.values[s] ?? nil)) |"
                if let o = other {
                    out += " \(f(o.tokensPerChar.values[s] ?? nil)) | \(pct(o.byteFallbackRate.values[s] ?? nil)) | \(pct(o.unkRate.values[s] ?? nil)) |"
                }
                out += "\n"
            }
            out += "Han characters in the corpus held as one piece: \(c.hanDistinctCovered) of \(c.hanDistinct)"
            if let o = other { out += " (against: \(o.hanDistinctCovered))" }
            out += "\n"
            if !c.hanByteFallbackTop.isEmpty {
                out += "spelled with bytes most often: " + c.hanByteFallbackTop.prefix(10).map { "\($0.char)×\($0.count)" }.joined(separator: " ") + "\n"
            }
        }
        return out
    }

    static func f(_ v: Double?) -> String { v.map { String(format: "%.3f", $0) } ?? "-" }
    static func pct(_ v: Double?) -> String { v.map { String(format: "%.2f%%", 100 * $0) } ?? "-" }
}
