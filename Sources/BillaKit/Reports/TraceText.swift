import Foundation

/// `verify --trace` as text: per traced prompt the block table, the first point past tolerance, the swap table and
/// the verdict line (`responsible: layer 3, attn_k`).
public enum TraceText {
    public static func render(_ r: TraceReport) -> String {
        var out = ""
        for p in r.prompts {
            out += String(format: "\ntrace of prompt %d (%d tokens): relative error of the residual stream, tolerance %.3g (%@)\n",
                          p.prompt, p.tokens, r.tolerance, r.toleranceRule)
            out += "| layer | after attention | after MLP |\n|---:|---:|---:|\n"
            for b in p.blocks {
                func cell(_ v: Double, _ s: BlockStage) -> String {
                    String(format: "%.3g", v) + (p.firstDivergence.map { $0.layer == b.layer && $0.stage == s } == true ? " ←" : "")
                }
                out += "| \(b.layer) | \(cell(b.afterAttention, .attention)) | \(cell(b.afterMLP, .mlp)) |\n"
            }
            guard let d = p.firstDivergence else {
                if let e = p.logitsError, !p.swaps.isEmpty {
                    out += String(format: "no block diverged past tolerance; the logits differ by %.3g of their norm\n", e)
                    out += "| swapped for the reference's | error of the logits | within tolerance |\n|---|---:|---|\n"
                    for s in p.swaps { out += String(format: "| %@ | %.3g | %@ |\n", s.tensor.rawValue, s.error, s.withinTolerance ? "yes" : "no") }
                    out += "responsible: \(p.verdict)\n"
                } else {
                    out += p.verdict + "\n"
                }
                continue
            }
            out += String(format: "first past tolerance: layer %d after %@ (%.3g)\n", d.layer, d.stage.label, d.error)
            out += "| swapped for the reference's | error at layer \(d.layer) after \(d.stage.label) | within tolerance |\n|---|---:|---|\n"
            for s in p.swaps {
                out += String(format: "| %@ | %.3g | %@ |\n", s.tensor.perLayer ? "layer \(d.layer) \(s.tensor.rawValue)" : s.tensor.rawValue,
                              s.error, s.withinTolerance ? "yes" : "no")
            }
            out += "responsible: \(p.verdict)\n"
        }
        return out
    }
}
