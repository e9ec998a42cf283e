import Foundation

/// llama-perplexity's printed lines, with its format strings, so its output and billa's can be read (and parsed by
/// the same script) side by side.
public enum PerplexityText {
    /// The running estimate after chunk `i` (1-based): `[i]X.XXXX,`.
    public static func running(_ i: Int, _ ppl: Double) -> String { String(format: "[%d]%.4f,", i, ppl) }

    /// `Final estimate: PPL = X +/- Y`.
    public static func final(_ r: PerplexityReport) -> String {
        guard let u = r.pplUncertainty else { return String(format: "Final estimate: PPL = %.4f (the NLL's variance is not positive: no uncertainty)", r.ppl) }
        return String(format: "Final estimate: PPL = %.4f +/- %.5f", r.ppl, u)
    }

    public static let kldTableHeader = "chunk             PPL               ln(PPL(Q)/PPL(base))          KL Divergence              Δp RMS            Same top p"

    /// One row of the per-chunk table, from the sums after chunk `i`.
    public static func kldChunk(_ i: Int, _ s: KLDStatistics) -> String {
        String(format: "%4d", i)
            + String(format: "    %9.4f ± %9.4f", s.ppl.value, s.ppl.uncertainty)
            + String(format: "    %10.5f ± %10.5f", s.lnPPLRatio.value, s.lnPPLRatio.uncertainty)
            + String(format: "    %10.5f ± %10.5f", s.kld.mean, s.kld.uncertainty)
            + String(format: "    %6.3f ± %6.3f %%", 100 * s.rmsDeltaP.value, 100 * s.rmsDeltaP.uncertainty)
            + String(format: "    %6.3f ± %6.3f %%", 100 * s.sameTop.value, 100 * s.sameTop.uncertainty)
    }

    /// The three statistics blocks printed at the end of `--kl-divergence`.
    public static func kldSummary(_ s: KLDStatistics) -> String {
        var out = "====== Perplexity statistics ======\n"
        out += String(format: "Mean PPL(Q)                   : %10.6f ± %10.6f\n", s.ppl.value, s.ppl.uncertainty)
        out += String(format: "Mean PPL(base)                : %10.6f ± %10.6f\n", s.pplBase.value, s.pplBase.uncertainty)
        out += String(format: "Cor(ln(PPL(Q)), ln(PPL(base))): %6.2f%%\n", 100 * s.lnPPLCorrelation)
        out += String(format: "Mean ln(PPL(Q)/PPL(base))     : %10.6f ± %10.6f\n", s.lnPPLRatio.value, s.lnPPLRatio.uncertainty)
        out += String(format: "Mean PPL(Q)/PPL(base)         : %10.6f ± %10.6f\n", s.pplRatio.value, s.pplRatio.uncertainty)
        out += String(format: "Mean PPL(Q)-PPL(base)         : %10.6f ± %10.6f\n", s.pplDiff.value, s.pplDiff.uncertainty)
        out += "\n====== KL divergence statistics ======\n"
        out += String(format: "Mean    KLD: %10.6f ± %10.6f\n", s.kld.mean, s.kld.uncertainty)
        for p in s.kld.percentiles { out += String(format: "%@ KLD: %10.6f\n", label(p.percent), p.value) }
        out += "\n====== Token probability statistics ======\n"
        out += String(format: "Mean    Δp: %6.3f ± %5.3f %%\n", 100 * s.deltaP.mean, 100 * s.deltaP.uncertainty)
        for p in s.deltaP.percentiles { out += String(format: "%@ Δp: %6.3f%%\n", label(p.percent), 100 * p.value) }
        out += String(format: "RMS Δp    : %6.3f ± %5.3f %%\n", 100 * s.rmsDeltaP.value, 100 * s.rmsDeltaP.uncertainty)
        out += String(format: "Same top p: %6.3f ± %5.3f %%\n", 100 * s.sameTop.value, 100 * s.sameTop.uncertainty)
        return out
    }

    /// The row labels llama-perplexity uses: "Maximum", "99.9%  ", " 5.0%  ", "Median ", "Minimum".
    static func label(_ percent: Double) -> NSString {
        switch percent {
        case 100: return "Maximum"
        case 0: return "Minimum"
        case 50: return "Median "
        default: return String(format: "%4.1f%%  ", percent) as NSString
        }
    }
}
