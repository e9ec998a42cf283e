import ArgumentParser
import BillaKit
import Foundation

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Encode text with a model's tokenizer, with exactly the reference library's ids.",
        discussion: """
            TOKENIZER is a tokenizer.json (ids of Hugging Face tokenizers), a SentencePiece tokenizer.model (sentencepiece's), Meta's tiktoken tokenizer.model (tiktoken's, as Meta's llama-models drives it), a GGUF model (its own vocabulary, llama.cpp's ids), or a model directory (its tokenizer.json, else its tokenizer.model). With no TEXT, each line of standard input is encoded on its own; with --json each line gives one JSON object on one line (JSON Lines). No BOS is added.

            Examples:
              billa tokenize llama-7b/tokenizer.model 'Hello 世界'
              billa tokenize BiLLa-7B-SFT --pieces '人工智能'
              billa tokenize llama-7b/tokenizer.model --count < corpus.txt
            """)

    @Argument(help: "A tokenizer.json, a tokenizer.model or a GGUF, or a model directory holding a tokenizer.")
    var tokenizer: String

    @Argument(help: "The text to encode (default: lines from standard input).")
    var text: String?

    @Flag(name: .long, help: "Print ids (the default).")
    var ids = false

    @Flag(name: .long, help: "Print pieces instead of ids.")
    var pieces = false

    @Flag(name: .long, help: "Print {text, ids, pieces} as JSON, one object per line of input.")
    var json = false

    @Flag(name: .long, help: "Print only the totals: lines, tokens, bytes (how many tokens is this data set?).")
    var count = false

    func validate() throws {
        if ids && pieces { throw ValidationError("choose one of --ids and --pieces") }
        if json && (ids || pieces) { throw ValidationError("--json prints text, ids and pieces together; --ids and --pieces choose the plain output") }
        if count && (ids || pieces) { throw ValidationError("--count prints only the totals; --ids and --pieces do not apply to it") }
    }

    func run() throws {
        // ArgumentParser hands over arguments already repaired to valid UTF-8 (bad bytes become U+FFFD), so the
        // raw argv is checked first: bad input is an error, never silently different ids.
        for i in 0..<Int(CommandLine.argc) {
            guard let p = CommandLine.unsafeArgv[i] else { continue }
            let raw = Array(UnsafeBufferPointer(start: UnsafeRawPointer(p).assumingMemoryBound(to: UInt8.self), count: strlen(p)))
            try UTF8Check.validateArgument(raw, index: i)
        }
        let tok = try ModelTokenizer.open(tokenizer)
        let sentencePiece = tok as? Tokenizer, bpe = tok as? BPETokenizer
        var totals = (lines: 0, tokens: 0, bytes: 0)
        var scratch = Tokenizer.Scratch()
        var bpeScratch = BPETokenizer.Scratch()
        var tokens = [Tokenizer.Token]()
        func show(_ bytes: [UInt8], source: String?) throws {
            let ids = try tok.encode(bytes: bytes, source: source)
            let text = String(decoding: bytes, as: UTF8.self)
            if json {
                struct Line: Encodable { let text: String; let ids: [Int]; let pieces: [String] }
                try printJSON(command: "tokenize", lines: true, Line(text: text, ids: ids, pieces: tok.encodePieces(text)))
            } else if pieces {
                print(tok.encodePieces(text).joined(separator: " "))
            } else {
                print(ids.map(String.init).joined(separator: " "))
            }
        }
        if let text {
            let bytes = Array(text.utf8)
            if count {
                totals = (1, try tok.encode(bytes: bytes).count, bytes.count)
            } else {
                try show(bytes, source: nil)
            }
        } else {
            // raw bytes, so malformed UTF-8 reaches the tokenizer's check instead of readLine's repair
            var lines = StdinLines()
            var n = 0
            while let line = try lines.next() {
                n += 1
                if count {
                    // the benchmarked path: the line is encoded in place, with buffers reused from line to line
                    // (no closure holds these variables, which would check every access to them at run time)
                    try UTF8Check.validate(line, source: "standard input, line \(n)")
                    if let sentencePiece {
                        sentencePiece.encode(utf8: line, scratch: &scratch, into: &tokens)
                    } else if let bpe {
                        bpe.encode(utf8: line, scratch: &bpeScratch, into: &tokens)
                    } else {
                        tokens = try tok.encode(bytes: Array(line), source: nil).map { Tokenizer.Token(id: Int32($0), start: 0, end: 0) }
                    }
                    totals = (totals.lines + 1, totals.tokens + tokens.count, totals.bytes + line.count)
                } else {
                    try show(Array(line), source: "standard input, line \(n)")
                }
            }
        }
        if count {
            if json {
                struct Totals: Encodable { let lines: Int; let tokens: Int; let bytes: Int }
                try printJSON(command: "tokenize", Totals(lines: totals.lines, tokens: totals.tokens, bytes: totals.bytes))
            } else {
                print("\(totals.lines) lines, \(totals.tokens) tokens, \(totals.bytes) bytes")
            }
        }
    }
}

/// A tokenizer argument: the file itself, or the tokenizer.model of a model directory.
enum TokenizerLocation {
    static func find(_ path: String) throws -> String {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw BillaError(.notFound, file: path, "no such file or directory", remedy: "check the path")
        }
        guard isDir.boolValue else { return path }
        let inside = try ModelDirectory.resolve(path) + "/tokenizer.model"   // a Hugging Face cache root: its refs/main snapshot
        guard FileManager.default.fileExists(atPath: inside) else {
            throw BillaError(.notFound, file: path, "the directory has no tokenizer.model", remedy: "pass the tokenizer.model file itself")
        }
        return inside
    }
}

/// Standard input as lines of raw bytes (\n or \r\n endings removed), read in 1 MiB blocks; each line is handed
/// over in place, without a copy.
struct StdinLines: ~Copyable {
    private var buffer: UnsafeMutablePointer<UInt8>
    private var capacity = 1 << 20
    private var filled = 0      // bytes read into the buffer
    private var start = 0       // where the next line begins
    private var scanned = 0     // buffer[start..<scanned] holds no newline
    private var atEnd = false

    init() { buffer = .allocate(capacity: capacity) }
    deinit { buffer.deallocate() }

    /// The next line, valid until the next call; nil at the end of input.
    mutating func next() throws -> UnsafeBufferPointer<UInt8>? {
        while true {
            if let hit = memchr(buffer + scanned, 0x0A, filled - scanned) {
                let end = buffer.distance(to: hit.assumingMemoryBound(to: UInt8.self))
                let first = start
                let stop = end > first && buffer[end - 1] == 0x0D ? end - 1 : end
                start = end + 1
                scanned = start
                return UnsafeBufferPointer(start: buffer + first, count: stop - first)
            }
            scanned = filled
            if atEnd {
                guard start < filled else { return nil }
                let first = start
                start = filled
                return UnsafeBufferPointer(start: buffer + first, count: filled - first)
            }
            if start > 0 {   // keep the unfinished line, at the front
                memmove(buffer, buffer + start, filled - start)
                filled -= start
                scanned = filled
                start = 0
            }
            if filled == capacity {   // a line longer than the buffer
                let larger = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity * 2)
                larger.update(from: buffer, count: filled)
                buffer.deallocate()
                buffer = larger
                capacity *= 2
            }
            let n = read(0, buffer + filled, capacity - filled)
            if n < 0 {
                if errno == EINTR { continue }
                throw BillaError(.io, file: "standard input", "read failed", remedy: "")
            }
            if n == 0 { atEnd = true } else { filled += n }
        }
    }
}
