import ArgumentParser
import BillaKit
import Foundation

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Prove a converted model matches its source by running both (exit 0 pass, 1 fail); check one model alone; or check a pack's checksums.",
        discussion: """
            billa verify REFERENCE CANDIDATE runs both models on the same prompts and reports max |Δlogit|, KL divergence, top-1 agreement and perplexity; lossless conversions must agree to float rounding, quantized ones within their type's thresholds (--max-kld, --min-top1 override them).

            billa verify MODEL checks one model alone: weights and logits finite, perplexity better than uniform.

            --trace runs both models block by block on the first failing prompt (--all: every prompt) and reports the residual stream's relative error after each block's attention and MLP, the first block past tolerance and, by swapping that block's tensors one at a time for the reference's, the tensor responsible ("layer 3, attn_k", "attn_q of every layer"); --trace-svg FILE charts the error by layer.

            billa verify --checksums PACK checks every chunk hash and tensor SHA-256 of a billa pack.

            Exit status: 0 pass, 1 fail, 2 a model could not be read.

            Examples:
              billa verify llama-7b llama-7b-hf
              billa verify llama-7b llama-7b-q4_k_m.gguf --prompts prompts.jsonl
              billa verify llama-7b llama-7b-hf --trace --trace-svg trace.svg
              billa verify BiLLa-7B-SFT --prompt 'Human: 你好 Assistant: '
              billa verify --checksums llama-7b.billa
            """)

    @Argument(help: "The reference model (or the only model): a Meta or Hugging Face directory, a GGUF, a billa pack.")
    var reference: String

    @Argument(help: "The candidate model to compare with the reference.")
    var candidate: String?

    @Option(name: .long, help: "A prompt (repeatable). Default: a built-in Chinese/English set in BiLLa's Human/Assistant format.")
    var prompt: [String] = []

    @Option(name: .long, help: "A file of prompts: one per line, or jsonl with a \"text\" field.")
    var prompts: String?

    @Option(name: .long, help: "Tokenizer to use when the reference carries none.")
    var tokenizer: String?

    @Option(name: .long, help: "Fail when the mean KL divergence exceeds this (overrides the type's default).")
    var maxKld: Double?

    @Option(name: .long, help: "Fail when top-1 agreement is below this fraction (overrides the type's default).")
    var minTop1: Double?

    @Flag(name: .long, help: "Check every chunk hash, tensor SHA-256 and the table of a billa pack.")
    var checksums = false

    @Flag(name: .long, help: "Trace the first failing prompt block by block and name the tensor responsible for the first divergence.")
    var trace = false

    @Flag(name: .long, help: "With --trace: trace every prompt, not only the first failing one.")
    var all = false

    @Option(name: .long, help: "With --trace: write an SVG chart of the residual stream's error by layer (implies --trace; an existing file only with --force).")
    var traceSvg: String?

    /// Tensors the forward pass does not read are refused unless these allow ignoring them (listed on stderr).
    @OptionGroup var drops: DropOptions
    @OptionGroup var report: ReportOptions
    /// --force lets --trace-svg replace an existing chart (never an input).
    @OptionGroup var write: WriteOptions

    /// An option that does not apply to the chosen mode is a usage error (exit 64), never silently ignored.
    func validate() throws {
        if checksums {
            if candidate != nil { throw ValidationError("--checksums checks one pack; it takes no candidate") }
            if !prompt.isEmpty || prompts != nil || tokenizer != nil || maxKld != nil || minTop1 != nil || !drops.patterns.isEmpty || drops.dropUnknown {
                throw ValidationError("--checksums reads no prompts and runs no model: --prompt, --prompts, --tokenizer, --max-kld, --min-top1 and --drop-* do not apply")
            }
        }
        if candidate == nil, maxKld != nil || minTop1 != nil {
            throw ValidationError("--max-kld and --min-top1 judge a comparison; give a CANDIDATE to compare with the reference")
        }
        if candidate == nil || checksums, trace || all || traceSvg != nil {
            throw ValidationError("--trace, --all and --trace-svg trace a comparison; give a CANDIDATE to compare with the reference")
        }
        if all, !trace, traceSvg == nil { throw ValidationError("--all says which prompts --trace traces; add --trace") }
        if let traceSvg, !traceSvg.lowercased().hasSuffix(".svg") { throw ValidationError("--trace-svg must name an .svg file") }
        if write.force, traceSvg == nil { throw ValidationError("--force lets --trace-svg replace its chart; verify writes nothing else") }
    }

    func run() throws {
        if checksums {
            try verifyChecksums()
            return
        }
        let texts = try promptTexts()
        if let traceSvg { try write.check([traceSvg], .file, inputs: [reference, candidate, tokenizer, prompts]) }
        let ref = try Verifier.Loaded(reference, tokenizer: tokenizer, unused: drops.policy)
        stateLosses(ref.model.weights.ignored)
        guard let candidate else {
            let r = try Verifier.sanity(ref, prompts: texts, quiet: report.quiet)
            if report.json { try printJSON(command: "verify", ok: r.pass, r) } else {
                for c in r.checks { print("\(c.ok ? "ok  " : "FAIL") \(c.name): \(c.detail)") }
                print(r.pass ? "PASS" : "FAIL")
            }
            if !r.pass { throw ExitCode(1) }
            return
        }
        let cand = try Verifier.Loaded(candidate, tokenizer: nil, unused: drops.policy)
        stateLosses(cand.model.weights.ignored)
        let meter = ProgressMeter(label: "verify", total: texts.count, unit: .items("prompts"), quiet: report.quiet)
        var done = 0
        let r = try Verifier.compare(ref, cand, prompts: texts, overrides: (maxKld, minTop1)) { n in meter.add(n - done); done = n }
        meter.finish()
        // An architecture mismatch ran no prompt: there is nothing to trace, and the verdict says why.
        var traced: TraceReport?
        if trace || traceSvg != nil, !r.prompts.isEmpty {
            let total = DivergenceTrace.maxPasses(prompts: DivergenceTrace.promptsToTrace(r, all: all).count, layers: cand.model.weights.parameters.nLayers)
            let passes = ProgressMeter(label: "verify", total: total, unit: .items("passes"), quiet: report.quiet)
            passes.item("trace")
            traced = try DivergenceTrace.run(ref, cand, report: r, all: all) { passes.add(1) }
            passes.finish()
            if let traceSvg, let traced { try TraceChart.write(traced, to: traceSvg) }
        }
        if report.json {
            try printJSON(command: "verify", ok: r.pass, output: traceSvg, r, TracePart(trace: traced))
        } else {
            print(VerifyText.render(r), terminator: "")
            if let traced { print(TraceText.render(traced), terminator: "") }
        }
        if !r.pass { throw ExitCode(1) }
    }

    private func promptTexts() throws -> [String] {
        var texts = prompt
        if let prompts {
            let data: String
            do { data = try String(contentsOfFile: prompts, encoding: .utf8) } catch {
                throw BillaError(.io, file: prompts, "cannot read the prompts: \(error.localizedDescription)", remedy: "check the path; the file must be UTF-8")
            }
            for line in data.split(separator: "\n", omittingEmptySubsequences: true) {
                if line.hasPrefix("{"), let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                   let t = obj["text"] as? String {
                    texts.append(t)
                } else {
                    texts.append(String(line))
                }
            }
        }
        return texts.isEmpty ? Verifier.defaultPrompts : texts
    }

    private func verifyChecksums() throws {
        let packs = try PackSet.open(reference)   // a shard set is checked file by file
        let meter = ProgressMeter(label: "verifying", total: packs.reduce(0) { $0 + $1.tensors.reduce(0) { $0 + $1.byteCount } }, quiet: report.quiet)
        var r = PackVerifier.verify(packs[0], progress: meter)
        if packs.count > 1 {
            let reports = [r] + packs.dropFirst().map { PackVerifier.verify($0, progress: meter) }
            r.items = zip(packs, reports).flatMap { p, rep in
                rep.items.map { var i = $0; i.name = "\(p.path.split(separator: "/").last ?? ""): \(i.name)"; return i }
            }
            r.tableSHA256 = reports.map(\.tableSHA256).joined(separator: ",")
        }
        meter.finish()
        if report.json {
            try printJSON(command: "verify", ok: r.ok, r)
        } else {
            for item in r.items {
                print("\(item.ok ? "ok     " : "CORRUPT") \(item.label)" + (item.message.map { ": \($0)" } ?? ""))
            }
        }
        let bad = r.items.filter { !$0.ok }
        if !bad.isEmpty {
            FileHandle.standardError.write(Data("billa: \(bad.count) of \(r.items.count) items of \(reference) are corrupt (first: \(bad[0].label)); re-create the pack with billa pack\n".utf8))
            throw ExitCode(1)
        }
    }
}

/// `trace` in verify's JSON, present only when --trace ran.
struct TracePart: Encodable {
    let trace: TraceReport?
    enum CodingKeys: String, CodingKey { case trace }
    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(trace, forKey: .trace)
    }
}

/// The human-readable verify report: one line per prompt, then the totals and the verdict.
enum VerifyText {
    static func render(_ r: VerifyReport) -> String {
        var out = "reference: \(r.reference)\ncandidate: \(r.candidate)\n"
        out += "judged as: \(r.thresholds.kind)"
        if let rel = r.thresholds.maxRelativeLogitDiff { out += String(format: " (max |Δlogit| ≤ %.0e of the logit scale)", rel) }
        out += String(format: ", mean KL ≤ %g, top-1 ≥ %.1f%%\n\n", r.thresholds.maxKLD, 100 * r.thresholds.minTop1)
        // The architecture check fails before any prompt runs: no table and no totals of nothing, only the verdict.
        if r.prompts.isEmpty { return out + (r.pass ? "PASS\n" : "FAIL: " + r.failures.joined(separator: "; ") + "\n") }
        // Markdown: the pipes of |Δlogit| and of prompt text are escaped, or they would end the cell.
        out += "| prompt | tokens | max \\|Δlogit\\| | KL mean | KL p99 | top-1 | ppl ref | ppl cand |\n|---|---:|---:|---:|---:|---:|---:|---:|\n"
        for p in r.prompts {
            let text = p.text.replacingOccurrences(of: "\n", with: "⏎")
            let short = (text.count > 28 ? String(text.prefix(27)) + "…" : text).replacingOccurrences(of: "|", with: "\\|")
            out += String(format: "| %@ | %d | %.3g | %.3g | %.3g | %.1f%% | %.2f | %.2f |\n", short, p.tokens, p.maxAbsDiff, p.kldMean,
                          p.kldP99, 100 * p.top1Agreement, p.ppl.reference, p.ppl.candidate)
        }
        out += String(format: "\n%d positions: max |Δlogit| %.3g (logit scale %.3g), KL mean %.3g (p50 %.3g, p90 %.3g, p99 %.3g, max %.3g), top-1 %.2f%%, ppl %.3f vs %.3f\n",
                      r.positions, r.maxAbsDiff, r.maxAbsLogit, r.kldMean, r.kldPercentiles.p50, r.kldPercentiles.p90,
                      r.kldPercentiles.p99, r.kldPercentiles.max, 100 * r.top1Agreement, r.ppl.reference, r.ppl.candidate)
        out += r.pass ? "PASS\n" : "FAIL: " + r.failures.joined(separator: "; ") + "\n"
        return out
    }
}
