import Foundation

/// A candidate's logits against a base file's log-probabilities, position by position, with llama-perplexity's
/// arithmetic (`kl_divergence_result` and the `log_softmax` that fills it): the candidate's NLL and the base's, their
/// product, KL(base ‖ candidate) over the base's entries above e^-16, Δp = p_candidate(token) − p_base(token), and
/// whether both put the same token on top. Per-position KLD and Δp are kept for the percentiles.
public struct KLDSums: Sendable {
    public var sumNLL = 0.0, sumNLL2 = 0.0
    public var sumNLLBase = 0.0, sumNLLBase2 = 0.0
    public var sumNLLNLLBase = 0.0
    public var sumKLD = 0.0, sumKLD2 = 0.0
    public var sumPDiff = 0.0, sumPDiff2 = 0.0, sumPDiff4 = 0.0
    public var maxPDiff: Float = 0
    public var sameTop = 0
    public var count = 0
    public var kld: [Float] = []
    public var pDiff: [Float] = []

    public init() {}

    /// One position's terms, computed apart so rows can run on several cores and be summed in order.
    struct Row {
        var nll: Float, nllBase: Float, kld: Double, pDiff: Float, sameTop: Bool
    }

    static func row(_ logits: UnsafePointer<Float>, vocab n: Int, base: UnsafeRawPointer, token: Int) -> Row {
        var maxLogit = logits[0]
        var imax = 0
        for i in 1..<n where logits[i] > maxLogit {
            maxLogit = logits[i]
            imax = i
        }
        var sumExp = 0.0
        for i in 0..<n { sumExp += Double(Foundation.exp(logits[i] - maxLogit)) }
        let logSumExp = Float(Foundation.log(sumExp))
        let (scale, minLogProb) = KLDBaseRow.header(base)
        let nll = maxLogit + logSumExp - logits[token]
        let nllBase = -KLDBaseRow.logProb(base, token, scale: scale, minLogProb: minLogProb)
        let top = maxLogit + logSumExp
        var sum = 0.0
        var imaxBase = -1
        var pMax: Float = 0
        for i in 0..<n {
            let pLog = KLDBaseRow.logProb(base, i, scale: scale, minLogProb: minLogProb)
            if i == 0 || pLog > pMax {
                pMax = pLog
                imaxBase = i
            }
            if pLog > -16 {
                let p = Foundation.exp(pLog)
                sum += Double(p * (pLog - logits[i] + top))
            }
        }
        let pDiff = Foundation.exp(-nll) - Foundation.exp(-nllBase)
        return Row(nll: nll, nllBase: nllBase, kld: sum, pDiff: pDiff, sameTop: imax == imaxBase)
    }

    mutating func add(_ r: Row) {
        sumNLL += Double(r.nll)
        sumNLL2 += Double(r.nll * r.nll)
        sumNLLBase += Double(r.nllBase)
        sumNLLBase2 += Double(r.nllBase * r.nllBase)
        sumNLLNLLBase += Double(r.nll * r.nllBase)
        sumKLD += r.kld
        sumKLD2 += r.kld * r.kld
        sumPDiff += Double(r.pDiff)
        let p2 = Double(r.pDiff * r.pDiff)
        sumPDiff2 += p2
        sumPDiff4 += p2 * p2
        maxPDiff = max(maxPDiff, abs(r.pDiff))
        if r.sameTop { sameTop += 1 }
        count += 1
        kld.append(Float(r.kld))
        pDiff.append(r.pDiff)
    }

    /// Adds chunk `c`'s rows: `logits` holds one row per scored position, `next` the tokens they predict.
    public mutating func add(_ logits: [Float], vocab: Int, next: ArraySlice<Int>, base: KLDBaseReader, chunk c: Int) {
        let n = next.count
        let next = Array(next)
        var rows = [Row](repeating: Row(nll: 0, nllBase: 0, kld: 0, pDiff: 0, sameTop: false), count: n)
        logits.withUnsafeBufferPointer { lp in
            rows.withUnsafeMutableBufferPointer { rp in
                nonisolated(unsafe) let l = lp.baseAddress!, o = rp.baseAddress!
                PerplexityScoring.eachRow(n) { r in o[r] = Self.row(l + r * vocab, vocab: vocab, base: base.row(chunk: c, r), token: next[r]) }
            }
        }
        for r in rows { add(r) }
    }

    /// llama-perplexity's `mean_and_uncertainty`: the mean and the standard error of the mean (0 below 11 values).
    static func meanAndUncertainty(_ sum: Double, _ sum2: Double, _ count: Int) -> (Double, Double) {
        guard count >= 1 else { return (0, 0) }
        let f = sum / Double(count)
        let df = sum2 / Double(count) - f * f
        return (f, df > 0 && count > 10 ? (df / Double(count - 1)).squareRoot() : 0)
    }

    /// llama-perplexity's `covariance` of the two mean NLLs (0 below 10 values).
    static func covariance(_ a: Double, _ b: Double, _ ab: Double, _ count: Int) -> Double {
        guard count >= 10 else { return 0 }
        return (ab / Double(count) - (a / Double(count)) * (b / Double(count))) / Double(count - 1)
    }

    /// The statistics llama-perplexity prints, from the sums so far. Where its formulas divide by zero (fewer than 11
    /// positions: no uncertainties, so no correlation; a Δp of exactly 0 everywhere) the value is 0, not NaN.
    public var statistics: KLDStatistics { statistics(percentiles: true) }

    /// The same without the percentiles (empty), which sort every value so far: what a per-chunk row needs.
    public var running: KLDStatistics { statistics(percentiles: false) }

    func statistics(percentiles: Bool) -> KLDStatistics {
        let logPPL = Self.meanAndUncertainty(sumNLL, sumNLL2, count)
        let logBase = Self.meanAndUncertainty(sumNLLBase, sumNLLBase2, count)
        let cov = Self.covariance(sumNLL, sumNLLBase, sumNLLNLLBase, count)
        let ppl = Foundation.exp(logPPL.0), pplBase = Foundation.exp(logBase.0)
        let ratio = logPPL.0 - logBase.0
        let ratioUnc = max(0, logPPL.1 * logPPL.1 + logBase.1 * logBase.1 - 2 * cov).squareRoot()   // rounding can make it −0.0…
        let pplUnc = ppl * logPPL.1, baseUnc = pplBase * logBase.1
        let kl = Self.meanAndUncertainty(sumKLD, sumKLD2, count)
        let mse = Self.meanAndUncertainty(sumPDiff2, sumPDiff4, count)
        let rms = mse.0.squareRoot()
        let pd = Self.meanAndUncertainty(sumPDiff, sumPDiff2, count)
        let top = Double(sameTop) / Double(count)
        let sortedKLD = percentiles ? kld.sorted() : [], sortedP = percentiles ? pDiff.sorted() : []
        func pct(_ v: [Float], _ f: Float) -> Double { Double(Self.percentile(v, f)) }
        return KLDStatistics(
            positions: count,
            ppl: .init(value: ppl, uncertainty: pplUnc),
            pplBase: .init(value: pplBase, uncertainty: baseUnc),
            lnPPLCorrelation: logPPL.1 * logBase.1 > 0 ? cov / (logPPL.1 * logBase.1) : 0,
            lnPPLRatio: .init(value: ratio, uncertainty: ratioUnc),
            pplRatio: .init(value: Foundation.exp(ratio), uncertainty: Foundation.exp(ratio) * ratioUnc),
            pplDiff: .init(value: ppl - pplBase, uncertainty: max(0, pplUnc * pplUnc + baseUnc * baseUnc - 2 * ppl * pplBase * cov).squareRoot()),
            kld: .init(mean: kl.0, uncertainty: kl.1,
                       percentiles: !percentiles ? [] : KLDStatistics.kldPercentiles.map { .init(percent: $0, value: $0 == 50 ? Double(Self.median(sortedKLD)) : pct(sortedKLD, Float($0 / 100))) }),
            deltaP: .init(mean: pd.0, uncertainty: pd.1,
                          percentiles: !percentiles ? [] : KLDStatistics.deltaPPercentiles.map { .init(percent: $0, value: $0 == 50 ? Double(Self.median(sortedP)) : pct(sortedP, Float($0 / 100))) }),
            rmsDeltaP: .init(value: rms, uncertainty: rms > 0 ? 0.5 / rms * mse.1 : 0),
            sameTop: .init(value: top, uncertainty: count > 1 ? (top * (1 - top) / Double(count - 1)).squareRoot() : 0))
    }

    /// llama-perplexity's percentile of sorted floats: linear between neighbours, in float.
    static func percentile(_ v: [Float], _ fraction: Float) -> Float {
        guard !v.isEmpty else { return 0 }
        if fraction <= 0 { return v[0] }
        if fraction >= 1 { return v[v.count - 1] }
        var p = fraction * Float(v.count - 1)
        let ip = Int(p)
        p -= Float(ip)
        return (1 - p) * v[ip] + p * v[min(ip + 1, v.count - 1)]
    }

    /// The middle value, or the mean of the two middle ones (as llama-perplexity's median).
    static func median(_ v: [Float]) -> Float {
        guard !v.isEmpty else { return 0 }
        return v.count % 2 == 0 ? 0.5 * (v[v.count / 2] + v[v.count / 2 - 1]) : v[v.count / 2]
    }
}

/// What `--kl-divergence` reports, named as llama-perplexity prints it.
public struct KLDStatistics: Encodable, Sendable, Equatable {
    public struct Estimate: Encodable, Sendable, Equatable {
        public var value: Double
        public var uncertainty: Double
    }
    public struct Percentile: Encodable, Sendable, Equatable {
        public var percent: Double
        public var value: Double
    }
    public struct Distribution: Encodable, Sendable, Equatable {
        public var mean: Double
        public var uncertainty: Double
        /// From the largest (100) down to the smallest (0), llama-perplexity's rows; 50 is the median.
        public var percentiles: [Percentile]
    }

    /// The rows llama-perplexity prints, in its order.
    public static let kldPercentiles: [Double] = [100, 99.9, 99, 95, 90, 50, 10, 5, 1, 0.1, 0]
    public static let deltaPPercentiles: [Double] = [100, 99.9, 99, 95, 90, 75, 50, 25, 10, 5, 1, 0.1, 0]

    public var positions: Int
    public var ppl: Estimate
    public var pplBase: Estimate
    public var lnPPLCorrelation: Double
    public var lnPPLRatio: Estimate
    public var pplRatio: Estimate
    public var pplDiff: Estimate
    public var kld: Distribution
    public var deltaP: Distribution
    public var rmsDeltaP: Estimate
    public var sameTop: Estimate

    enum CodingKeys: String, CodingKey {
        case positions, ppl, pplBase = "ppl_base", lnPPLCorrelation = "ln_ppl_correlation", lnPPLRatio = "ln_ppl_ratio"
        case pplRatio = "ppl_ratio", pplDiff = "ppl_diff", kld, deltaP = "delta_p", rmsDeltaP = "rms_delta_p", sameTop = "same_top"
    }
}
