import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A byte-count progress line on stderr. It draws only when stderr is a terminal and the user did not ask for
/// quiet, at most ten times a second; it is thread-safe because checksum and convert work on both cores.
public final class ProgressMeter: @unchecked Sendable {
    private let lock = NSLock()
    private let label: String
    private let total: Int
    private var done = 0
    private var lastDraw = 0.0
    private let start = Date()
    private let enabled: Bool

    public init(label: String, total: Int, quiet: Bool) {
        self.label = label
        self.total = total
        enabled = !quiet && isatty(2) == 1
    }

    public func add(_ bytes: Int) {
        guard enabled else { return }
        lock.lock()
        done += bytes
        let now = Date().timeIntervalSince(start)
        let draw = now - lastDraw >= 0.1
        if draw { lastDraw = now }
        let (d, t) = (done, total)
        lock.unlock()
        if draw { render(d, t, now) }
    }

    public func finish() {
        guard enabled else { return }
        lock.lock(); let d = done; lock.unlock()
        render(d, total, Date().timeIntervalSince(start))
        FileHandle.standardError.write(Data("\n".utf8))
    }

    private func render(_ done: Int, _ total: Int, _ seconds: Double) {
        let width = 30
        let fraction = total > 0 ? min(1, Double(done) / Double(total)) : 1
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let rate = seconds > 0 ? Double(done) / seconds : 0
        let line = "\r\(label) [\(bar)] \(ByteFormat.human(done))/\(ByteFormat.human(total)) \(ByteFormat.human(Int(rate)))/s "
        FileHandle.standardError.write(Data(line.utf8))
    }
}

public enum ByteFormat {
    public static func human(_ bytes: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = Double(bytes)
        var u = 0
        while v >= 1024, u < units.count - 1 { v /= 1024; u += 1 }
        return u == 0 ? "\(bytes) B" : String(format: "%.1f", v) + " " + units[u]
    }

    /// Parses "500MB", "2GiB", "10GB", "1234" for options like --max-shard-size (decimal and binary units).
    public static func parse(_ text: String) -> Int? {
        let t = text.trimmingCharacters(in: .whitespaces).uppercased()
        let units: [(String, Int)] = [("TIB", 1 << 40), ("GIB", 1 << 30), ("MIB", 1 << 20), ("KIB", 1 << 10),
                                      ("TB", 1_000_000_000_000), ("GB", 1_000_000_000), ("MB", 1_000_000), ("KB", 1000), ("B", 1)]
        for (suffix, scale) in units where t.hasSuffix(suffix) {
            guard let v = Double(t.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)), v >= 0 else { return nil }
            return Int(v * Double(scale))
        }
        return Int(t)
    }
}
