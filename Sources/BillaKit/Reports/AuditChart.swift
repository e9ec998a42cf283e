import Foundation

/// The audit as a picture: per corpus, tokens per character of each script as bars (the target, and the tokenizer
/// it is compared with beside it), with the byte-fallback share of each bar drawn darker. Plain SVG with no
/// scripts or external fonts, so it opens in any browser; PNG goes through rsvg-convert when it is installed.
public enum AuditChart {
    static let scripts: [Script] = [.han, .latin, .digits, .punctuation, .other]
    static let colors = ["#4878d0", "#ee854a"]
    static let dark = ["#1f3f7a", "#9a4a17"]

    public static func svg(_ a: VocabAuditReport, _ b: VocabAuditReport?) -> String {
        let reports = [a] + (b.map { [$0] } ?? [])
        let panelW = 420.0, panelH = 260.0, top = 86.0, left = 60.0
        let panels = max(1, a.coverage.count)
        let width = left + Double(panels) * (panelW + 30) + 20, height = top + panelH + 80
        var maxV = 0.0
        for r in reports { for c in r.coverage { for s in scripts { maxV = max(maxV, (c.tokensPerChar.values[s.rawValue] ?? nil) ?? 0) } } }
        let scale = maxV > 0 ? (maxV * 1.15).rounded(.up) : 1
        var out = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        out += "<text x=\"\(left)\" y=\"24\" font-size=\"16\" font-weight=\"bold\">Tokens per character by script (darker: byte-fallback tokens)</text>\n"
        for (i, r) in reports.enumerated() {
            let x = left + Double(i) * 330
            out += "<rect x=\"\(x)\" y=\"38\" width=\"12\" height=\"12\" fill=\"\(colors[i])\"/>"
            out += "<text x=\"\(x + 18)\" y=\"49\">\(escape((r.tokenizer as NSString).lastPathComponent)) (\(r.pieces) pieces)</text>\n"
        }
        if a.coverage.isEmpty {
            out += "<text x=\"\(left)\" y=\"\(top + 40)\">no corpus given (--corpus FILE)</text>\n"
        }
        for (p, c) in a.coverage.enumerated() {
            let x0 = left + Double(p) * (panelW + 30)
            out += "<text x=\"\(x0)\" y=\"\(top - 6)\" font-weight=\"bold\">\(escape(c.corpus))</text>\n"
            out += "<line x1=\"\(x0)\" y1=\"\(top + panelH)\" x2=\"\(x0 + panelW)\" y2=\"\(top + panelH)\" stroke=\"black\"/>\n"
            out += "<line x1=\"\(x0)\" y1=\"\(top)\" x2=\"\(x0)\" y2=\"\(top + panelH)\" stroke=\"black\"/>\n"
            for k in 0...4 {
                let v = scale * Double(k) / 4, y = top + panelH - panelH * Double(k) / 4
                out += "<text x=\"\(x0 - 6)\" y=\"\(y + 4)\" text-anchor=\"end\">\(String(format: "%.2g", v))</text>"
                out += "<line x1=\"\(x0)\" y1=\"\(y)\" x2=\"\(x0 + panelW)\" y2=\"\(y)\" stroke=\"#ddd\"/>\n"
            }
            let group = panelW / Double(scripts.count), barW = group * 0.8 / Double(reports.count)
            for (si, s) in scripts.enumerated() {
                let gx = x0 + Double(si) * group + group * 0.1
                for (ri, r) in reports.enumerated() {
                    let cov = r.coverage[p]
                    guard let v = cov.tokensPerChar.values[s.rawValue] ?? nil else { continue }
                    let h = panelH * v / scale
                    let bx = gx + Double(ri) * barW
                    out += "<rect x=\"\(f(bx))\" y=\"\(f(top + panelH - h))\" width=\"\(f(barW - 2))\" height=\"\(f(h))\" fill=\"\(colors[ri])\"/>"
                    let fb = (cov.byteFallbackRate.values[s.rawValue] ?? nil) ?? 0
                    if fb > 0 {
                        out += "<rect x=\"\(f(bx))\" y=\"\(f(top + panelH - h * fb))\" width=\"\(f(barW - 2))\" height=\"\(f(h * fb))\" fill=\"\(dark[ri])\"/>"
                    }
                    out += "<text x=\"\(f(bx + barW / 2 - 1))\" y=\"\(f(top + panelH - h - 4))\" text-anchor=\"middle\" font-size=\"10\">\(String(format: "%.2f", v))</text>\n"
                }
                out += "<text x=\"\(f(gx + group * 0.4))\" y=\"\(top + panelH + 16)\" text-anchor=\"middle\">\(s.rawValue)</text>\n"
            }
        }
        out += "</svg>\n"
        return out
    }

    public static func write(_ a: VocabAuditReport, _ b: VocabAuditReport?, to path: String) throws {
        let text = svg(a, b)
        if path.lowercased().hasSuffix(".svg") {
            try AtomicFileWriter.write(Array(text.utf8), to: path)
            return
        }
        guard path.lowercased().hasSuffix(".png") else {
            throw BillaError(.invalidArgument, file: path, "the chart must be .svg or .png", remedy: "name the file chart.svg or chart.png")
        }
        let tool = ["/usr/bin/rsvg-convert", "/usr/local/bin/rsvg-convert"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let tool else {
            throw BillaError(.unsupported, file: path, "PNG charts are rendered by rsvg-convert, which is not installed",
                             remedy: "write an .svg chart, or install librsvg2-bin (apt-get install librsvg2-bin)")
        }
        let svgPath = path + ".tmp.svg"
        try AtomicFileWriter.write(Array(text.utf8), to: svgPath)
        defer { try? FileManager.default.removeItem(atPath: svgPath) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = ["-o", path + ".tmp", svgPath]
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw BillaError(.io, file: path, "rsvg-convert failed (status \(p.terminationStatus))", remedy: "write an .svg chart instead")
        }
        if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
        try FileManager.default.moveItem(atPath: path + ".tmp", toPath: path)
    }

    static func f(_ v: Double) -> String { String(format: "%.1f", v) }
    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
