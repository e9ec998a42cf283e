import Foundation
import Testing
@testable import BillaKit
#if canImport(Glibc)
import Glibc
#endif

/// A minimal terminal: printable characters overwrite at the cursor, CR returns to column 0, LF moves down,
/// ESC[K erases to the end of the row, and a character past the last column wraps (as xterm's autowrap does). It is
/// what a user sees, so "a redraw leaves `715.0 MiB/s s`" is a test on its rows rather than on the bytes written.
struct TerminalScreen {
    let width: Int
    var rows: [[Character]] = [[]]
    var row = 0, col = 0
    /// Escape sequences other than ESC[K, which the renderer must not send.
    var unknownEscapes = [String]()
    var wrapped = false

    init(width: Int) { self.width = width }

    mutating func feed(_ text: String) {
        var chars = Array(text)[...]
        while let c = chars.popFirst() {
            switch c {
            case "\r": col = 0
            case "\n", "\r\n":
                if c == "\r\n" { col = 0 }
                row += 1
                if row == rows.count { rows.append([]) }
            case "\u{1B}":
                var seq = ""
                while let n = chars.popFirst() { seq.append(n); if n.isLetter { break } }
                if seq == "[K" { if col < rows[row].count { rows[row].removeSubrange(col...) } } else { unknownEscapes.append(seq) }
            default:
                if col == width {   // autowrap
                    wrapped = true
                    row += 1; col = 0
                    if row == rows.count { rows.append([]) }
                }
                while rows[row].count < col { rows[row].append(" ") }
                if col < rows[row].count { rows[row][col] = c } else { rows[row].append(c) }
                col += 1
            }
        }
    }

    var lines: [String] { rows.map { String($0) } }
}

/// A stream and a clock for a StatusLine under test.
final class CapturedTerminal: @unchecked Sendable {
    private let lock = NSLock()
    private var written = ""
    private var time = 0.0
    var text: String { lock.lock(); defer { lock.unlock() }; return written }
    var now: Double {
        get { lock.lock(); defer { lock.unlock() }; return time }
        set { lock.lock(); time = newValue; lock.unlock() }
    }

    func line(interactive: Bool = true, interval: Double = 0.1, columns: Int = 120) -> StatusLine {
        StatusLine(interactive: interactive, interval: interval, columns: { columns }, clock: { [self] in now },
                   sink: { [self] s in lock.lock(); written += s; lock.unlock() })
    }

    /// The texts drawn, in order: what lies between a carriage return and the erase that ends every frame.
    var frames: [String] { Self.frames(text) }

    static func frames(_ raw: String) -> [String] {
        raw.components(separatedBy: "\r").compactMap { part in
            guard let end = part.range(of: "\u{1B}[K"), end.lowerBound != part.startIndex else { return nil }
            return String(part[..<end.lowerBound])
        }
    }

    func screen(width: Int = 120) -> TerminalScreen {
        var s = TerminalScreen(width: width)
        s.feed(text)
        return s
    }
}

@Suite("progress rendering")
struct ProgressRenderingTests {
    @Test("a byte meter shows stage, tensor, bar, percentage, bytes, rate and ETA; numbers worked out by hand")
    func bytesLine() {
        let t = CapturedTerminal()
        let m = ProgressMeter(label: "convert", total: 4 << 30, quiet: false, line: t.line())
        m.item("model.layers.0.self_attn.q_proj.weight")
        t.now = 2
        m.add(1 << 30)   // 1 GiB in 2 s: 512 MiB/s, 3 GiB left: 6 s
        #expect(t.frames == ["convert model.layers.0.self_attn.q_proj.weight [#####---------------]  25% 1.0 GiB/4.0 GiB 512.0 MiB/s ETA 0:06"])
    }

    @Test("an item meter counts prompts as prompts, never as bytes")
    func itemsLine() {
        let t = CapturedTerminal()
        let m = ProgressMeter(label: "verify", total: 6, unit: .items("prompts"), quiet: false, line: t.line())
        t.now = 2
        m.add(1)   // 1 of 6 in 2 s: 0.5 prompts/s, 5 left: 10 s
        #expect(t.frames == ["verify [###-----------------]  16% 1/6 prompts 0.5 prompts/s ETA 0:10"])
        t.now = 128
        m.add(3)   // 4 of 6 in 128 s: 1/32 prompts per second, 2 left: 64 s
        #expect(t.frames.last == "verify [#############-------]  66% 4/6 prompts 0.0 prompts/s ETA 1:04")
        #expect(!t.text.contains(" B"), "\(t.text)")
    }

    @Test("a shorter redraw leaves nothing of the longer line on screen (the old `715.0 MiB/s s`)")
    func shorterRedraw() {
        let t = CapturedTerminal()
        let m = ProgressMeter(label: "sha256", total: 10 << 30, quiet: false, line: t.line())
        m.item("consolidated.00.pth-with-a-long-name")
        t.now = 1
        m.add(715 << 20)
        m.item("a")
        t.now = 100
        m.add(1)
        let frames = t.frames
        #expect(frames.count == 2)
        #expect(frames[1].count < frames[0].count, "the scenario needs the second frame to be the shorter")
        let screen = t.screen()
        #expect(screen.lines == [frames[1]], "the screen holds more than the last frame: \(screen.lines)")
        #expect(screen.unknownEscapes.isEmpty)
    }

    @Test("redraws are limited to 10 per second however often work is counted")
    func rateLimit() {
        let t = CapturedTerminal()
        let m = ProgressMeter(label: "pack", total: 2000 * 4096, quiet: false, line: t.line())
        for i in 1...2000 {
            t.now = Double(i) / 1000   // a chunk every millisecond for 2 s
            m.add(4096)
        }
        let n = t.frames.count
        #expect((19...20).contains(n), "\(n) redraws in 2 s")
    }

    @Test("finish clears the line; a command that ends within the first interval draws nothing")
    func finishClears() {
        let t = CapturedTerminal()
        let m = ProgressMeter(label: "quantize", total: 100, quiet: false, line: t.line())
        t.now = 0.5
        m.add(50)
        m.finish()
        #expect(t.frames.count == 1)
        #expect(t.text.hasSuffix("\r\u{1B}[K"))
        #expect(t.screen().lines == [""], "\(t.screen().lines)")
        m.add(10)   // after finish: nothing more
        #expect(t.frames.count == 1)

        let fast = CapturedTerminal()
        let f = ProgressMeter(label: "convert", total: 100, quiet: false, line: fast.line())
        fast.now = 0.05
        f.add(100)
        f.finish()
        #expect(fast.text.isEmpty, "\(fast.text)")
    }

    @Test("nothing is written when stderr is not a terminal or with --quiet")
    func silent() {
        let pipe = CapturedTerminal()
        let a = ProgressMeter(label: "convert", total: 100, quiet: false, line: pipe.line(interactive: false))
        let quiet = CapturedTerminal()
        let b = ProgressMeter(label: "convert", total: 100, quiet: true, line: quiet.line())
        for m in [a, b] {
            m.item("x")
            for i in 1...10 { pipe.now = Double(i); quiet.now = Double(i); m.add(10) }
            m.finish()
        }
        #expect(pipe.text.isEmpty && quiet.text.isEmpty)
    }

    @Test("a warning printed while the bar is drawn stays whole; the bar is drawn again under it")
    func warningDuringProgress() {
        let t = CapturedTerminal()
        let line = t.line()
        let m = ProgressMeter(label: "convert", total: 1000, quiet: false, line: line)
        t.now = 1
        m.add(100)
        line.message("warning: 3 values of lm_head.weight were clamped to ±65504\n")
        t.now = 2
        m.add(100)
        var s = t.screen()
        #expect(s.lines.count == 2)
        #expect(s.lines[0] == "warning: 3 values of lm_head.weight were clamped to ±65504")
        #expect(s.lines[1] == t.frames.last)
        m.finish()
        s = t.screen()
        #expect(s.lines == ["warning: 3 values of lm_head.weight were clamped to ±65504", ""])

        // An error ends the command: the line is cleared and not drawn again.
        let e = CapturedTerminal()
        let eline = e.line()
        let n = ProgressMeter(label: "convert", total: 1000, quiet: false, line: eline)
        e.now = 1
        n.add(100)
        eline.message("error: disk full\n", keepProgress: false)
        e.now = 2
        n.add(100)
        #expect(e.screen().lines == ["error: disk full", ""])
    }

    @Test("a long tensor name is shortened to the terminal's width, so the line never wraps")
    func narrowTerminal() {
        let t = CapturedTerminal()
        let m = ProgressMeter(label: "quantize", total: 1 << 30, quiet: false, line: t.line(columns: 70))
        m.item("model.layers.31.block_sparse_moe.experts.7.w2.weight")
        t.now = 1
        m.add(1 << 20)
        let s = t.screen(width: 70)
        #expect(!s.wrapped && s.lines.count == 1, "\(s.lines)")
        let frame = t.frames[0]
        #expect(frame.count <= 69 && frame.contains("ETA"), "\(frame)")
        #expect(frame.hasPrefix("quantize …") && frame.contains("w2.weight"), "the name keeps its distinctive end: \(frame)")
    }

    @Test("an enabled meter costs a few hundred nanoseconds per add between redraws (debug build)")
    func cost() {
        let line = StatusLine(interactive: true, interval: 0.1, columns: { 120 },
                              clock: { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }, sink: { _ in })
        let m = ProgressMeter(label: "bench", total: Int.max / 2, quiet: false, line: line)
        // CPU time of this thread, not wall time: the suite runs many tests at once on a shared machine.
        func cpu() -> Double { var t = timespec(); clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); return Double(t.tv_sec) * 1e9 + Double(t.tv_nsec) }
        let n = 500_000
        let t0 = cpu()
        for _ in 0..<n { m.add(4096) }
        let ns = (cpu() - t0) / Double(n)
        m.finish()
        print("progress: \(String(format: "%.0f", ns)) ns of CPU per add (checksum adds once per 4 MiB chunk)")
        #expect(ns < 5000, "\(ns) ns per add")
    }

    @Test("ETA clock format")
    func clockFormat() {
        #expect(ProgressMeter.clock(4) == "0:04")
        #expect(ProgressMeter.clock(754) == "12:34")
        #expect(ProgressMeter.clock(3723) == "1:02:03")
        #expect(ProgressMeter.clock(0.2) == "0:01")
    }
}

/// `billa` with stderr on a pseudo-terminal, as a user at a terminal runs it.
enum PseudoTerminal {
    struct Run {
        let status: Int32
        let stdout: String
        /// Everything written to the terminal (stderr), with the line discipline's CR LF for LF.
        let terminal: String
    }

    static func run(_ args: [String], interval: String? = "0", columns: Int = 120, stdoutOnTerminal: Bool = false) throws -> Run {
        let exe = try #require(CLITests.binary, "the billa binary was not built next to the tests")
        let master = libc.openpt(O_RDWR | O_NOCTTY | O_CLOEXEC)
        try #require(master >= 0 && libc.grantpt(master) == 0 && libc.unlockpt(master) == 0, "no pseudo-terminal: errno \(errno)")
        defer { close(master) }
        var name = [CChar](repeating: 0, count: 128)
        try #require(libc.ptsname(master, &name, name.count) == 0)
        let slave = open(String(cString: name), O_RDWR | O_NOCTTY | O_CLOEXEC)
        try #require(slave >= 0)
        var size = winsize(ws_row: 24, ws_col: UInt16(columns), ws_xpixel: 0, ws_ypixel: 0)
        _ = ioctl(slave, UInt(TIOCSWINSZ), &size)

        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        var env = ProcessInfo.processInfo.environment
        env["TERM"] = "xterm"
        env["BILLA_PROGRESS_INTERVAL"] = interval
        p.environment = env
        p.standardInput = FileHandle.nullDevice
        p.standardError = FileHandle(fileDescriptor: slave, closeOnDealloc: false)
        let out = Pipe()
        p.standardOutput = stdoutOnTerminal ? p.standardError : out
        let terminal = Captured(), stdout = Captured()
        let group = DispatchGroup()
        DispatchQueue.global().async(group: group) {
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            while true {   // until EIO: the child, the last holder of the slave, has exited
                let n = read(master, &buffer, buffer.count)
                if n <= 0 { break }
                terminal.append(buffer[0..<n])
            }
        }
        do { try p.run() } catch { close(slave); throw error }
        close(slave)
        if !stdoutOnTerminal {
            DispatchQueue.global().async(group: group) { stdout.append(out.fileHandleForReading.readDataToEndOfFile()) }
        }
        p.waitUntilExit()
        group.wait()
        return Run(status: p.terminationStatus, stdout: stdout.string, terminal: terminal.string)
    }

    /// posix_openpt and friends: glibc has them, but Swift's Glibc module leaves them out (they need _XOPEN_SOURCE).
    struct PTYFunctions: @unchecked Sendable {
        let openpt: @convention(c) (Int32) -> Int32
        let grantpt: @convention(c) (Int32) -> Int32
        let unlockpt: @convention(c) (Int32) -> Int32
        let ptsname: @convention(c) (Int32, UnsafeMutablePointer<CChar>, Int) -> Int32
    }

    static let libc: PTYFunctions = {
        let h = dlopen(nil, RTLD_NOW)
        func f<T>(_ name: String, _: T.Type) -> T { unsafeBitCast(dlsym(h, name), to: T.self) }
        return PTYFunctions(openpt: f("posix_openpt", (@convention(c) (Int32) -> Int32).self),
                            grantpt: f("grantpt", (@convention(c) (Int32) -> Int32).self),
                            unlockpt: f("unlockpt", (@convention(c) (Int32) -> Int32).self),
                            ptsname: f("ptsname_r", (@convention(c) (Int32, UnsafeMutablePointer<CChar>, Int) -> Int32).self))
    }()

    final class Captured: @unchecked Sendable {
        private let lock = NSLock()
        private var bytes = [UInt8]()
        func append<S: Sequence>(_ s: S) where S.Element == UInt8 { lock.lock(); bytes += s; lock.unlock() }
        var string: String { lock.lock(); defer { lock.unlock() }; return String(decoding: bytes, as: UTF8.self) }
    }
}

/// One long command run under a pseudo-terminal: the stage its frames start with, its unit, what one of its frames
/// names (a tensor or file), or nil where only the stage is known.
struct ProgressCase: Sendable, CustomTestStringConvertible {
    let name: String
    let args: [String]
    let stage: String
    let unit: String
    let item: String?
    /// A command run first (with --quiet), e.g. to make the pack the case reads.
    var setup: [String]? = nil
    var testDescription: String { name }
}

@Suite("progress on a terminal")
struct ProgressTerminalTests {
    static let meta = Fixtures.path("tiny-meta"), hf = Fixtures.path("tiny-hf-st"), pack = Fixtures.path("pack/tiny-hf-st.billa")
    static let bytes = "B/s"

    /// OUT is replaced by a fresh path in a temporary directory.
    static let cases: [ProgressCase] = [
        .init(name: "checksum", args: ["checksum", meta + "/consolidated.00.pth"], stage: "sha256", unit: bytes, item: "consolidated.00.pth"),
        .init(name: "checksum --per-tensor", args: ["checksum", "--per-tensor", meta], stage: "sha256 per tensor", unit: bytes, item: "layers."),
        .init(name: "checksum --check", args: ["checksum", "--check", meta + "/checklist.chk"], stage: "checking", unit: bytes, item: ".pth"),
        .init(name: "convert --to hf", args: ["convert", meta, "--to", "hf", "-o", "OUT"], stage: "convert", unit: bytes, item: "model.layers."),
        .init(name: "convert --to meta", args: ["convert", hf, "--to", "meta", "-o", "OUT"], stage: "convert", unit: bytes, item: "layers."),
        .init(name: "convert --to gguf", args: ["convert", meta, "--to", "gguf", "-o", "OUT.gguf"], stage: "convert", unit: bytes, item: "blk."),
        .init(name: "recover billa", args: ["recover", "billa", "--release", Fixtures.path("recover/billa/release"),
                                            "--llama", Fixtures.path("recover/billa/llama/consolidated.00.pth"), "-o", "OUT"],
              stage: "recover", unit: bytes, item: "embed_tokens"),
        .init(name: "recover delta", args: ["recover", "delta", "--base", hf, "--delta", Fixtures.path("recover/delta/delta"), "-o", "OUT"],
              stage: "recover delta", unit: bytes, item: "model."),
        .init(name: "recover weight-diff", args: ["recover", "weight-diff", "--raw", hf, "--diff", Fixtures.path("recover/weight-diff/diff"), "-o", "OUT"],
              stage: "recover weight-diff", unit: bytes, item: "model."),
        .init(name: "recover xor", args: ["recover", "xor", Fixtures.path("recover/xor/weights.bin.6f222eb4.enc"), "--key",
                                          Fixtures.path("recover/xor/key.bin"), "-o", "OUT", "--chunk-size", "4096"],
              stage: "weights.bin.6f222eb4.enc", unit: bytes, item: nil),
        .init(name: "recover lora", args: ["recover", "lora", "--base", Fixtures.path("lora/base"), Fixtures.path("lora/adapter-plain"), "-o", "OUT"],
              stage: "recover lora", unit: bytes, item: "model.layers."),
        .init(name: "reshard", args: ["reshard", hf, "--per-layer", "-o", "OUT"], stage: "reshard", unit: bytes, item: "model."),
        .init(name: "vocab resize", args: ["vocab", "resize", hf, "--tokenizer", hf + "/tokenizer.model", "-o", "OUT"], stage: "vocab resize", unit: bytes, item: "model."),
        .init(name: "quantize", args: ["quantize", hf, "--type", "q8_0", "-o", "OUT.gguf"], stage: "quantize", unit: bytes, item: "blk."),
        .init(name: "quantize --format pack", args: ["quantize", hf, "--type", "q8_0", "--format", "pack", "-o", "OUT.billa"], stage: "packing", unit: bytes, item: "blk."),
        .init(name: "pack", args: ["pack", hf, "-o", "OUT.billa"], stage: "packing", unit: bytes, item: "model."),
        .init(name: "pack (hashing the source)", args: ["pack", meta, "-o", "OUT.billa"], stage: "hashing source", unit: bytes, item: ".pth"),
        .init(name: "unpack --to safetensors", args: ["unpack", pack, "--to", "safetensors", "-o", "OUT.safetensors"], stage: "unpacking", unit: bytes, item: "model."),
        .init(name: "unpack --to hf", args: ["unpack", pack, "--to", "hf", "-o", "OUT"], stage: "unpacking", unit: bytes, item: "model."),
        .init(name: "verify --checksums", args: ["verify", "--checksums", pack], stage: "verifying", unit: bytes, item: "model."),
        .init(name: "verify REFERENCE CANDIDATE", args: ["verify", meta, hf, "--prompt", "Hello", "--prompt", "world"],
              stage: "verify", unit: "prompts/s", item: nil),
        .init(name: "verify MODEL (weights)", args: ["verify", pack, "--tokenizer", hf + "/tokenizer.model", "--prompt", "Hello"], stage: "checking weights", unit: "matrices/s", item: "."),
        .init(name: "verify MODEL (prompts)", args: ["verify", meta, "--prompt", "Hello", "--prompt", "world"], stage: "verify", unit: "prompts/s", item: nil),
        .init(name: "verify MODEL (pack checksums)", args: ["verify", "OUT.billa", "--prompt", "Hello"], stage: "checking pack", unit: bytes, item: "model.",
              setup: ["pack", Fixtures.path("verify/trained"), "-o", "OUT.billa", "--quiet"]),
        .init(name: "generate --json", args: ["generate", meta, "--prompt", "Hello", "-n", "4", "--ignore-eos", "--json"], stage: "generate", unit: "tokens/s", item: nil),
        .init(name: "generate, stdout not a terminal", args: ["generate", meta, "--prompt", "Hello", "-n", "4", "--ignore-eos"], stage: "generate", unit: "tokens/s", item: nil),
        .init(name: "perplexity, stdout not a terminal", args: ["perplexity", Fixtures.path("verify/trained"), "-f", Fixtures.path("perplexity/text.txt"), "-c", "128", "--chunks", "3"],
              stage: "perplexity", unit: "chunks/s", item: nil),
        .init(name: "vocab audit --corpus", args: ["vocab", "audit", hf, "--corpus", Fixtures.path("tokenizer/corpus-zh.jsonl"), "--against", Fixtures.path("tokenizers/llama-tokenizer.model")],
              stage: "audit", unit: bytes, item: "corpus-zh.jsonl"),
        .init(name: "vocab audit --corpus (reading it)", args: ["vocab", "audit", hf, "--corpus", Fixtures.path("tokenizer/corpus-zh.jsonl")],
              stage: "reading corpus", unit: bytes, item: "corpus-zh.jsonl"),
    ]

    static func arguments(_ c: ProgressCase, in dir: String) -> [String] {
        c.args.map { $0.hasPrefix("OUT") ? dir + "/" + $0 : $0 }
    }

    @Test("every long command draws stage, item, unit and ETA on a terminal, within its width, and clears the line at the end", arguments: cases)
    func drawsAndClears(_ c: ProgressCase) throws {
        let dir = try TemporaryDirectory()
        if let setup = c.setup {
            let made = try CLITests().billa(setup.map { $0.hasPrefix("OUT") ? dir.path + "/" + $0 : $0 }, stdin: nil)
            try #require(made.status == 0, "\(c.name): \(made.stderr)")
        }
        let r = try PseudoTerminal.run(Self.arguments(c, in: dir.path))
        #expect(r.status == 0, "\(c.name): exit \(r.status): \(r.terminal)")
        let frames = CapturedTerminal.frames(r.terminal).filter { $0.hasPrefix(c.stage + " ") }
        try #require(!frames.isEmpty, "\(c.name): no frame starts with '\(c.stage) ': \(r.terminal.debugDescription)")
        for f in frames {
            #expect(f.contains("ETA ") && f.contains("%") && f.contains(c.unit), "\(c.name): \(f)")
            #expect(f.count <= 119, "\(c.name): wider than the terminal: \(f)")
        }
        if c.unit == Self.bytes { #expect(frames.contains { $0.contains(" B/") || $0.contains("iB/") }, "\(c.name): \(frames)") }
        if let item = c.item { #expect(frames.contains { $0.dropFirst(c.stage.count).contains(item) }, "\(c.name): no frame names '\(item)': \(frames)") }
        var screen = TerminalScreen(width: 120)
        screen.feed(r.terminal)
        #expect(!screen.wrapped && screen.unknownEscapes.isEmpty, "\(c.name)")
        let left = screen.lines.filter { $0.contains("ETA ") || $0.contains("[#") || $0.contains("--]") }
        #expect(left.isEmpty, "\(c.name): progress left on screen: \(left)")
    }

    @Test("--quiet draws nothing on a terminal; a pipe gets no progress either")
    func quietAndPipe() throws {
        for name in ["convert --to hf", "quantize", "verify REFERENCE CANDIDATE", "generate --json", "vocab audit --corpus"] {
            let c = try #require(Self.cases.first { $0.name == name })
            let a = try TemporaryDirectory(), b = try TemporaryDirectory()
            let q = try PseudoTerminal.run(Self.arguments(c, in: a.path) + ["--quiet"])
            #expect(q.status == 0, "\(c.name) --quiet: \(q.terminal)")
            #expect(!q.terminal.contains("\r") && !q.terminal.contains("ETA"), "\(c.name) --quiet drew: \(q.terminal.debugDescription)")
            let piped = try CLITests().billa(Self.arguments(c, in: b.path), stdin: nil)
            #expect(piped.status == 0, "\(c.name): \(piped.stderr)")
            #expect(!piped.stderr.contains("\r") && !piped.stderr.contains("ETA"), "\(c.name) drew on a pipe: \(piped.stderr.debugDescription)")
        }
    }

    @Test("generate streaming its tokens to the terminal draws no bar over them")
    func generateOnTerminal() throws {
        let r = try PseudoTerminal.run(["generate", Self.meta, "--prompt", "Hello", "-n", "4", "--ignore-eos"], stdoutOnTerminal: true)
        #expect(r.status == 0, "\(r.terminal)")
        #expect(r.terminal.hasPrefix("Hello"), "\(r.terminal.debugDescription)")
        #expect(!r.terminal.contains("ETA") && !r.terminal.contains("\u{1B}"), "\(r.terminal.debugDescription)")
    }
}
