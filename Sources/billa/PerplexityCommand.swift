import ArgumentParser
import BillaKit
import Foundation

struct Perplexity: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Perplexity of a text with llama-perplexity's procedure; save a KL-divergence base or compare a model with one.",
        discussion: """
            MODEL is anything billa reads: a Meta or Hugging Face directory, a GGUF file or a billa pack. The text is tokenized once (BOS first), cut into chunks of -c tokens, and the second half of each chunk is scored, as llama-perplexity does; the numbers are llama-perplexity's on the same model.

            --kl-divergence-base FILE with -f saves the model's log-probabilities (llama-perplexity's own file format); --kl-divergence-base FILE --kl-divergence then runs another model on the tokens stored there and prints llama-perplexity's statistics (mean KLD with its uncertainty, percentiles, Δp, same top token). Either tool can write the base and either can read it.

            Examples:
              billa perplexity llama-7b-f16.gguf -f wiki.test.raw
              billa perplexity llama-7b-hf -f wiki.test.raw -c 512 --kl-divergence-base llama-7b.kld
              billa perplexity llama-7b-q4_0.gguf --kl-divergence-base llama-7b.kld --kl-divergence
            """)

    @Argument(help: "A Meta or Hugging Face directory, a GGUF or a billa pack.")
    var model: String

    @Option(name: [.customShort("f"), .long], help: "The text (UTF-8; one trailing newline is dropped, as llama-perplexity's -f does).")
    var file: String?

    @Option(name: [.customShort("c"), .customLong("ctx-size")], help: "Tokens per chunk (default 512; with --kl-divergence the base file's).")
    var ctxSize: Int?

    @Option(name: [.customShort("b"), .customLong("batch-size")], help: "llama.cpp's logical batch: chunks run in forward calls of at most min(b, c) tokens; the scores do not depend on it.")
    var batchSize = PerplexityPlan.defaultBatch

    @Option(name: .long, help: "Score at most this many chunks (default: every whole chunk of the text).")
    var chunks: Int?

    @Option(name: .long, help: "The KL-divergence base file: written from -f's text, or read with --kl-divergence.")
    var klDivergenceBase: String?

    @Flag(name: .long, help: "Compare MODEL with the log-probabilities in --kl-divergence-base (its tokens are the text).")
    var klDivergence = false

    @Option(name: .long, help: "Tokenizer to use when the model carries none.")
    var tokenizer: String?

    @OptionGroup var drops: DropOptions
    @OptionGroup var write: WriteOptions
    @OptionGroup var report: ReportOptions

    func validate() throws {
        if klDivergence {
            guard klDivergenceBase != nil else { throw ValidationError("--kl-divergence compares with a base file: pass --kl-divergence-base FILE") }
            if file != nil { throw ValidationError("--kl-divergence reads its tokens from the base file; -f does not apply") }
            if chunks != nil { throw ValidationError("--kl-divergence scores every chunk of the base file; --chunks does not apply") }
            if write.force { throw ValidationError("--kl-divergence writes nothing; --force does not apply") }
        } else {
            guard file != nil else { throw ValidationError("pass the text with -f FILE (or --kl-divergence with a base file)") }
            if write.force && klDivergenceBase == nil { throw ValidationError("--force applies to the base file written with --kl-divergence-base") }
        }
        if let c = ctxSize, c < 3 { throw ValidationError("-c must be at least 3 (each chunk scores c - 1 - c/2 tokens)") }
        if batchSize < 1 { throw ValidationError("-b must be at least 1") }
        if let n = chunks, n < 1 { throw ValidationError("--chunks must be at least 1") }
    }

    func run() throws {
        if klDivergence { try compare() } else { try score() }
    }

    /// Streams the running estimates to stdout, as llama-perplexity does; the meter on stderr stays quiet when stdout
    /// is the terminal that shows them.
    private func meter(_ total: Int) -> ProgressMeter {
        ProgressMeter(label: "perplexity", total: total, unit: .items("chunks"), quiet: report.quiet || (!report.json && isatty(1) == 1))
    }

    private func score() throws {
        guard let file else { return }
        if let base = klDivergenceBase { try write.check([base], .file, inputs: [model, file, tokenizer]) }
        let text = try PerplexityRun.readText(file)
        let m = try Verifier.Loaded(model, tokenizer: tokenizer, unused: drops.policy)
        stateLosses(m.model.weights.ignored)
        let tokens = try m.tokenize(text)
        let plan = try PerplexityPlan(tokens: tokens.count, nCtx: ctxSize ?? PerplexityPlan.defaultContext, nBatch: batchSize, maxChunks: chunks, text: file)
        warnContext(m, plan.nCtx)
        if !report.quiet {
            StatusLine.standardError.message("perplexity: \(tokens.count) tokens, \(plan.nChunk) chunks of n_ctx=\(plan.nCtx) (batch_size=\(plan.nBatch), n_seq=\(plan.nSeq)), scoring the last \(plan.scoredPerChunk) tokens of each\n")
        }
        let progress = meter(plan.nChunk)
        let r = try PerplexityRun.perplexity(m, tokens: tokens, plan: plan, text: file, base: klDivergenceBase) { i, sums in
            progress.add(1)
            if !report.json {
                print(PerplexityText.running(i, sums.ppl), terminator: "")
                fflush(nil)   // every open stream: the estimate shows as soon as its chunk is done
            }
        }
        progress.finish()
        if report.json {
            try printJSON(command: "perplexity", output: klDivergenceBase, r)
            return
        }
        print()
        print(PerplexityText.final(r))
        if let base = klDivergenceBase { report.say("wrote \(base): the log-probs of \(r.scored) positions (\(plan.nChunk) chunks of \(plan.nCtx))") }
    }

    private func compare() throws {
        guard let path = klDivergenceBase else { return }
        let base = try KLDBaseReader(path: path)
        if let c = ctxSize, c != base.layout.nCtx {
            throw BillaError(.invalidArgument, file: path, "the base was computed with n_ctx \(base.layout.nCtx), -c says \(c)",
                             remedy: "leave -c out (the base's n_ctx is used) or pass -c \(base.layout.nCtx)")
        }
        let plan = try PerplexityPlan(base: base.layout, nBatch: batchSize)
        let m = try Verifier.Loaded(model, tokenizer: tokenizer, unused: drops.policy)
        stateLosses(m.model.weights.ignored)
        warnContext(m, plan.nCtx)
        if !report.quiet {
            StatusLine.standardError.message("kl-divergence: \(plan.nChunk) chunks of n_ctx=\(plan.nCtx) from \(path), \(plan.scoredPerChunk) positions each\n")
        }
        let progress = meter(plan.nChunk)
        if !report.json { print(PerplexityText.kldTableHeader) }
        let r = try PerplexityRun.klDivergence(m, base: base, plan: plan) { i, sums in
            progress.add(1)
            if !report.json { print(PerplexityText.kldChunk(i, sums.running)) }
        }
        progress.finish()
        if report.json {
            try printJSON(command: "perplexity", r)
            return
        }
        print()
        if r.statistics.positions < 100 {
            StatusLine.standardError.message("note: \(r.statistics.positions) positions; llama-perplexity prints no statistics below 100\n")
        }
        print(PerplexityText.kldSummary(r.statistics), terminator: "")
    }
}
