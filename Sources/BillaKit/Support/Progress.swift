import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What a meter counts: bytes (shown in KiB/MiB/GiB) or items named by their plural ("prompts", "tokens"), so a
/// count of prompts never reads as bytes.
public enum ProgressUnit: Sendable, Equatable {
    case bytes
    case items(String)

    func amount(_ done: Int, of total: Int) -> String {
        switch self {
        case .bytes: return "\(ByteFormat.human(done))/\(ByteFormat.human(total))"
        case .items(let noun): return "\(done)/\(total) \(noun)"
        }
    }

    func rate(_ perSecond: Double) -> String {
        switch self {
        case .bytes: return "\(ByteFormat.human(Int(perSecond)))/s"
        case .items(let noun): return String(format: perSecond >= 100 ? "%.0f" : "%.1f", perSecond) + " \(noun)/s"
        }
    }
}

/// The one line at the bottom of a terminal that progress meters draw on, and the way diagnostics reach stderr
/// without landing in the middle of it: `message` clears the line, writes, then redraws the meter below.
/// Every redraw starts with a carriage return and ends with "erase to end of line", so a shorter line never leaves
/// the tail of a longer one behind, and lines are cut to the terminal's width so they never wrap (a wrapped line
/// cannot be taken back with a carriage return).
public final class StatusLine: @unchecked Sendable {
    /// stderr of this process. Draws only on a terminal (and not TERM=dumb, which has no erase). The redraw interval
    /// is 0.1 s (10 Hz); BILLA_PROGRESS_INTERVAL (seconds) changes it, for tests that need every frame.
    public static let standardError = StatusLine(
        interactive: isatty(2) == 1 && ProcessInfo.processInfo.environment["TERM"] != "dumb",
        interval: ProcessInfo.processInfo.environment["BILLA_PROGRESS_INTERVAL"].flatMap(Double.init) ?? 0.1,
        columns: { StatusLine.terminalColumns(2) },
        clock: { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 },
        sink: { FileHandle.standardError.write(Data($0.utf8)) })

    static let clearLine = "\r\u{1B}[K"

    let interactive: Bool
    let interval: Double
    let columns: @Sendable () -> Int
    let clock: @Sendable () -> Double
    let sink: @Sendable (String) -> Void
    let lock = NSLock()
    /// The meter that owns the line (the last one started and not finished), and whether its text is on screen.
    var active: ProgressMeter?
    var shown = false

    /// A line drawing into `sink`: tests pass a buffer and a fake clock, so rates, ETAs and the redraw limit are exact.
    init(interactive: Bool, interval: Double, columns: @escaping @Sendable () -> Int, clock: @escaping @Sendable () -> Double,
         sink: @escaping @Sendable (String) -> Void) {
        self.interactive = interactive
        self.interval = interval
        self.columns = columns
        self.clock = clock
        self.sink = sink
    }

    /// Writes whole lines of diagnostics (a warning, a note, an error). The progress line is cleared first; with
    /// `keepProgress` it is drawn again under the message, otherwise it is given up (an error ends the command, and
    /// the meter that was running will never finish).
    public func message(_ text: String, keepProgress: Bool = true) {
        lock.lock()
        defer { lock.unlock() }
        if shown { sink(Self.clearLine); shown = false }
        sink(text)
        if !keepProgress { active = nil } else if let m = active, m.drawn { draw(m.renderLocked(clock())) }
    }

    /// What the running meter works on now (a tensor, a file), shown after its label from the next redraw on.
    /// Library loops call it once per tensor; without a meter on a terminal it only takes a lock.
    public func item(_ name: String) {
        guard interactive else { return }
        lock.lock()
        active?.current = name
        lock.unlock()
    }

    /// `StatusLine.standardError.item(name)`, for the loops of the writers and hashers.
    public static func item(_ name: String) { standardError.item(name) }

    /// Replaces the line on screen with `text`; the caller holds the lock.
    func draw(_ text: String) {
        sink("\r" + text + "\u{1B}[K")
        shown = true
    }

    func begin(_ meter: ProgressMeter) {
        lock.lock()
        active = meter
        lock.unlock()
    }

    func end(_ meter: ProgressMeter) {
        lock.lock()
        if active === meter {
            if shown { sink(Self.clearLine); shown = false }
            active = nil
        }
        lock.unlock()
    }

    /// The width of the terminal on `fd` (80 when it does not say).
    static func terminalColumns(_ fd: Int32) -> Int {
        var size = winsize()
        if ioctl(fd, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { return Int(size.ws_col) }
        return ProcessInfo.processInfo.environment["COLUMNS"].flatMap(Int.init) ?? 80
    }
}

/// A progress line on stderr: the stage (the label), what it works on (a tensor or file), a bar, the percentage,
/// the amount done in its unit, the average rate and the time left. Drawn only when stderr is a terminal and the
/// user did not pass --quiet, at most once per redraw interval (10 Hz), first after one interval so commands that
/// end sooner show nothing; `finish` clears the line, so what remains on screen is the command's own output.
/// Thread-safe: checksum, convert and quantize report from both cores.
public final class ProgressMeter: @unchecked Sendable {
    let label: String
    let unit: ProgressUnit
    let line: StatusLine
    let enabled: Bool
    let start: Double
    // guarded by line.lock
    var total: Int
    var done = 0
    var lastDraw: Double
    var current: String?
    var drawn = false

    public convenience init(label: String, total: Int, unit: ProgressUnit = .bytes, quiet: Bool) {
        self.init(label: label, total: total, unit: unit, quiet: quiet, line: .standardError)
    }

    init(label: String, total: Int, unit: ProgressUnit = .bytes, quiet: Bool, line: StatusLine) {
        self.label = label
        self.total = max(0, total)
        self.unit = unit
        self.line = line
        enabled = !quiet && line.interactive
        start = line.clock()
        lastDraw = start
        if enabled { line.begin(self) }
    }

    /// Counts `n` more bytes (or items) done; redraws when the interval has passed.
    public func add(_ n: Int) {
        guard enabled else { return }
        line.lock.lock()
        defer { line.lock.unlock() }
        done += n
        if done > total { total = done }   // work the plan did not count (a copy where a hard link failed)
        guard line.active === self else { return }
        let now = line.clock()
        guard now - lastDraw >= line.interval else { return }
        lastDraw = now
        drawn = true
        line.draw(renderLocked(now))
    }

    /// Names what the meter works on from now (this meter's own line, wherever it draws).
    public func item(_ name: String) {
        guard enabled else { return }
        line.lock.lock()
        current = name
        line.lock.unlock()
    }

    /// Clears the line (nothing of the meter stays on screen).
    public func finish() {
        guard enabled else { return }
        line.end(self)
    }

    /// The text of the line at time `now`, cut to the terminal's width; the caller holds the lock.
    func renderLocked(_ now: Double) -> String {
        let width = max(20, line.columns()) - 1   // the last column would make some terminals wrap
        let elapsed = now - start
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let fraction = total > 0 ? min(1, Double(done) / Double(total)) : 1
        let cells = 20
        let filled = Int(fraction * Double(cells))
        let bar = "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: cells - filled) + "]"
        let percent = String(format: "%3d%%", Int(fraction * 100))
        let eta: String
        if done >= total { eta = "ETA 0:00" } else if rate > 0 { eta = "ETA " + Self.clock(Double(total - done) / rate) } else { eta = "ETA --:--" }
        let numbers = "\(percent) \(unit.amount(done, of: total)) \(unit.rate(rate)) \(eta)"
        var text = "\(label) \(bar) \(numbers)"
        if text.count > width { text = "\(label) \(numbers)" }   // a narrow terminal: the numbers matter more than the bar
        if let current {
            let room = width - text.count - 1
            if room >= 8 {
                let shown = current.count <= room ? current : "…" + current.suffix(room - 1)
                text = "\(label) \(shown) " + text.dropFirst(label.count + 1)
            }
        }
        return text.count > width ? String(text.prefix(width)) : text
    }

    /// 0:04, 12:34, 1:02:03.
    static func clock(_ seconds: Double) -> String {
        let s = Int(min(seconds.rounded(.up), 359_999))
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
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
