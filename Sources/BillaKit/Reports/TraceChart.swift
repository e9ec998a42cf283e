import Foundation

/// `verify --trace-svg`: the residual stream's relative error by layer, after attention and after the MLP, on a
/// log scale with the tolerance dashed and the first block past it ringed; one panel per traced prompt. Plain SVG
/// (no scripts, no external fonts), written atomically.
public enum TraceChart {
    static let colors = ["#4878d0", "#ee854a"]
    /// Errors below this (bit-identical blocks are 0) sit on the axis.
    static let floor = 1e-9

    public static func svg(_ r: TraceReport) -> String {
        let panelW = 660.0, panelH = 240.0, left = 70.0, top = 70.0, gap = 70.0
        let width = left + panelW + 40, height = top + Double(max(1, r.prompts.count)) * (panelH + gap)
        var out = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        out += "<text x=\"\(left)\" y=\"24\" font-size=\"16\" font-weight=\"bold\">Relative error of the residual stream by layer (candidate vs reference)</text>\n"
        for (i, name) in ["after attention", "after MLP"].enumerated() {
            let x = left + Double(i) * 160
            out += "<rect x=\"\(x)\" y=\"36\" width=\"12\" height=\"12\" fill=\"\(colors[i])\"/><text x=\"\(x + 18)\" y=\"47\">\(name)</text>\n"
        }
        out += "<line x1=\"\(left + 330)\" y1=\"42\" x2=\"\(left + 360)\" y2=\"42\" stroke=\"#c00\" stroke-dasharray=\"5,3\"/>"
        out += "<text x=\"\(left + 366)\" y=\"47\">tolerance \(String(format: "%.3g", r.tolerance))</text>\n"
        for (pi, p) in r.prompts.enumerated() {
            let y0 = top + Double(pi) * (panelH + gap)
            let values = p.blocks.flatMap { [$0.afterAttention, $0.afterMLP] }.filter(\.isFinite) + [r.tolerance]
            let lo = log10(max(floor, min(values.filter { $0 > 0 }.min() ?? r.tolerance, r.tolerance) / 10)).rounded(.down)
            let hi = log10(max(values.max() ?? 1, r.tolerance * 10)).rounded(.up)
            func y(_ v: Double) -> Double {
                let l = v.isFinite ? log10(max(v, pow(10, lo))) : hi
                return y0 + panelH - panelH * (l - lo) / max(hi - lo, 1)
            }
            let n = max(1, p.blocks.count)
            // the stream's order within a layer: after attention a quarter in, after the MLP three quarters
            func x(_ layer: Int, _ stage: Int = -1) -> Double { left + panelW * (Double(layer) + 0.5 + 0.25 * Double(stage < 0 ? 0 : 2 * stage - 1)) / Double(n) }
            let title = p.text.replacingOccurrences(of: "\n", with: "⏎")
            out += "<text x=\"\(left)\" y=\"\(f(y0 - 8))\" font-weight=\"bold\">prompt \(p.prompt): \(escape(title.count > 50 ? String(title.prefix(49)) + "…" : title)) — \(escape(p.verdict.count > 40 ? String(p.verdict.prefix(39)) + "…" : p.verdict))</text>\n"
            out += "<line x1=\"\(left)\" y1=\"\(f(y0 + panelH))\" x2=\"\(left + panelW)\" y2=\"\(f(y0 + panelH))\" stroke=\"black\"/>"
            out += "<line x1=\"\(left)\" y1=\"\(f(y0))\" x2=\"\(left)\" y2=\"\(f(y0 + panelH))\" stroke=\"black\"/>\n"
            var e = lo
            while e <= hi {
                let yy = y(pow(10, e))
                out += "<line x1=\"\(left)\" y1=\"\(f(yy))\" x2=\"\(left + panelW)\" y2=\"\(f(yy))\" stroke=\"#ddd\"/>"
                out += "<text x=\"\(left - 6)\" y=\"\(f(yy + 4))\" text-anchor=\"end\">1e\(Int(e))</text>\n"
                e += max(1, ((hi - lo) / 6).rounded(.up))
            }
            let step = max(1, n / 16)
            for l in stride(from: 0, to: n, by: step) {
                out += "<text x=\"\(f(x(l)))\" y=\"\(f(y0 + panelH + 16))\" text-anchor=\"middle\">\(l)</text>"
            }
            out += "<text x=\"\(left + panelW / 2)\" y=\"\(f(y0 + panelH + 32))\" text-anchor=\"middle\">layer (below 1e\(Int(lo)), and 0 for identical blocks, on the axis)</text>\n"
            out += "<line x1=\"\(left)\" y1=\"\(f(y(r.tolerance)))\" x2=\"\(left + panelW)\" y2=\"\(f(y(r.tolerance)))\" stroke=\"#c00\" stroke-dasharray=\"5,3\"/>\n"
            // one line through the stream in its order (attention, MLP, next layer's attention, ...), the points
            // coloured by stage
            let stream = p.blocks.flatMap { [($0.layer, 0, $0.afterAttention), ($0.layer, 1, $0.afterMLP)] }
            out += "<polyline points=\"" + stream.map { "\(f(x($0.0, $0.1))),\(f(y($0.2)))" }.joined(separator: " ")
                + "\" fill=\"none\" stroke=\"#888\" stroke-width=\"1.5\"/>\n"
            for (l, si, v) in stream {
                out += "<circle cx=\"\(f(x(l, si)))\" cy=\"\(f(y(v)))\" r=\"4\" fill=\"\(colors[si])\"><title>layer \(l) \(si == 0 ? "after attention" : "after MLP"): \(String(format: "%.3g", v))</title></circle>"
            }
            out += "\n"
            if let d = p.firstDivergence {
                out += "<circle cx=\"\(f(x(d.layer, d.stage == .attention ? 0 : 1)))\" cy=\"\(f(y(d.error)))\" r=\"8\" fill=\"none\" stroke=\"#c00\" stroke-width=\"2\"/>\n"
            }
        }
        out += "</svg>\n"
        return out
    }

    public static func write(_ r: TraceReport, to path: String) throws {
        guard path.lowercased().hasSuffix(".svg") else {
            throw BillaError(.invalidArgument, file: path, "the trace chart is SVG", remedy: "name the file trace.svg")
        }
        try AtomicFileWriter.write(Array(svg(r).utf8), to: path)
    }

    static func f(_ v: Double) -> String { String(format: "%.1f", v) }
    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
