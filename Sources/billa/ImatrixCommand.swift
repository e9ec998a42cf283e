import ArgumentParser
import BillaKit
import Foundation

struct Imatrix: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compute an importance matrix over a text with billa's forward pass, in the files llama-quantize --imatrix reads.",
        discussion: """
            As llama-imatrix does: the text (read as llama.cpp's -f reads it: UTF-8, one trailing newline dropped) is tokenized once (BOS first) and cut into -c-token chunks, each starting with BOS and run from an empty cache; for every matrix of every block, the squared inputs are summed per column in f32, token after token, with the token count. The output head is included only with --process-output. Products over fewer than 16 tokens are skipped (so -c must be 16 or more) and the text must hold at least two chunks.

            The file is llama-imatrix's GGUF imatrix (--output-format gguf, the default: NAME.in_sum2 and NAME.counts, imatrix.datasets, imatrix.chunk_count, imatrix.chunk_size) or its legacy .dat (--output-format dat), byte for byte in layout; llama-quantize --imatrix and billa quantize --imatrix read either. Entries are keyed by GGUF tensor name whatever the model's layout. --in-file FILE (repeatable) starts from matrices computed before, as llama-imatrix --in-file does: their sums and token counts are added up in order (a legacy .dat counts -c tokens per call), the new text's tokens are added on top, and the datasets are kept; without -f the matrices are only combined. Unlike llama-imatrix, billa does not print a perplexity estimate (billa perplexity does) and writes the file once, when complete.

            Examples:
              billa imatrix llama-7b-f16.gguf -f calibration.txt -o llama-7b.imatrix.gguf
              billa imatrix llama-7b-hf -f wiki.train.raw -o imatrix.dat --output-format dat -c 512 --chunks 100
              billa imatrix --in-file a.imatrix.gguf --in-file b.imatrix.gguf -o ab.imatrix.gguf
            """)

    @Argument(help: "The model: a GGUF file, a Meta release, a Hugging Face directory or a billa pack (not needed to only combine --in-file matrices).")
    var model: String?

    @Option(name: .customShort("f"), help: "The calibration text (UTF-8). Without it, --in-file matrices are only combined.")
    var file: String?

    @Option(name: .customLong("in-file"), help: "An importance matrix to start from (repeatable; GGUF or .dat): its sums are added to, as llama-imatrix --in-file.")
    var inFiles: [String] = []

    @Option(name: .shortAndLong, help: "The importance matrix to write.")
    var output = "imatrix.gguf"

    @Option(name: [.customShort("c"), .customLong("ctx-size")], help: "Tokens per chunk (llama-imatrix's -c).")
    var ctxSize = 512

    @Option(name: .long, help: "At most this many chunks (default: every whole chunk of the text).")
    var chunks: Int?

    @Option(name: [.customLong("from-chunk"), .customLong("chunk")], help: "Skip this many chunks at the start of the text.")
    var fromChunk = 0

    @Option(name: .long, help: "gguf (default) or dat (llama-imatrix's legacy format).")
    var outputFormat: ImportanceMatrix.Format = .gguf

    @Flag(name: .long, help: "Also collect the output head's input (output.weight), as llama-imatrix --process-output.")
    var processOutput = false

    @Option(name: .long, help: "Tokenizer to use when the model carries none.")
    var tokenizer: String?

    @OptionGroup var drops: DropOptions
    @OptionGroup var report: ReportOptions
    @OptionGroup var write: WriteOptions

    func validate() throws {
        if file == nil, inFiles.isEmpty { throw ValidationError("give a calibration text with -f, or --in-file matrices to combine") }
        if file != nil, model == nil { throw ValidationError("computing an importance matrix over -f TEXT needs the MODEL") }
        if let chunks, chunks < 1 { throw ValidationError("--chunks must be at least 1") }
        if fromChunk < 0 { throw ValidationError("--from-chunk must not be negative") }
    }

    func run() throws {
        try write.check([output], .file, inputs: [model, file, tokenizer] + inFiles)
        try OutputGuard.requireDirectory(of: output)
        if outputFormat == .gguf, !output.hasSuffix(".gguf") {
            warn("writing the GGUF imatrix format to '\(output)', whose name does not end in .gguf; --output-format dat writes the legacy format")
        }
        let start = inFiles.isEmpty ? nil : try ImportanceMatrix.combine(try inFiles.map { ($0, try ImportanceMatrix.read($0)) }, chunkSize: ctxSize)
        guard let file, let model else {
            // llama-imatrix without a prompt: the --in-file matrices combined, nothing computed.
            let m = start!
            try m.write(to: output, as: outputFormat)
            if report.json {
                try printJSON(command: "imatrix", output: output, ImatrixReport(format: outputFormat.rawValue, summary:
                    ImatrixSummary(tokens: 0, chunks: m.chunkCount, contextSize: ctxSize, entries: m.entries.count, seconds: 0)))
                return
            }
            report.say("wrote \(output): \(m.entries.count) matrices combined from \(inFiles.count) files (\(m.chunkCount) chunks of \(ctxSize) tokens), \(outputFormat.rawValue) format")
            return
        }
        let text = try PerplexityRun.readText(file)
        let loaded = try Verifier.Loaded(model, tokenizer: tokenizer, unused: drops.policy)
        stateLosses(loaded.model.weights.ignored)
        warnContext(loaded, ctxSize)
        var o = ImatrixOptions()
        o.contextSize = ctxSize
        o.maxChunks = chunks
        o.skipChunks = fromChunk
        o.processOutput = processOutput
        o.dataset = file
        o.start = start
        var meter: ProgressMeter?
        let (matrix, summary) = try ImatrixRun.compute(loaded, text: text, options: o) { done, total in
            if meter == nil { meter = ProgressMeter(label: "imatrix", total: total, unit: .items("chunks"), quiet: report.quiet) }
            meter?.add(1)
            _ = done
        }
        meter?.finish()
        try matrix.write(to: output, as: outputFormat)
        if report.json {
            try printJSON(command: "imatrix", output: output, ImatrixReport(format: outputFormat.rawValue, summary: summary))
            return
        }
        report.say("wrote \(output): \(summary.entries) matrices over \(summary.chunks) chunks of \(summary.contextSize) tokens (\(summary.chunks * summary.contextSize) of the text's \(summary.tokens)), \(outputFormat.rawValue) format, in \(String(format: "%.1f", summary.seconds)) s")
    }
}

extension ImportanceMatrix.Format: ExpressibleByArgument {}

/// What `billa imatrix --json` prints besides the envelope.
struct ImatrixReport: Encodable {
    let format: String
    let summary: ImatrixSummary

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(format, forKey: .format)
        try summary.encode(to: encoder)
    }
    enum CodingKeys: String, CodingKey { case format }
}
