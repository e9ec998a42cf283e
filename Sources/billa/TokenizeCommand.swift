import ArgumentParser
import BillaKit
import Foundation

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Encode text with a SentencePiece tokenizer, with exactly sentencepiece's ids.",
        discussion: "With no TEXT, each line of standard input is encoded on its own. No BOS is added.")

    @Argument(help: "A tokenizer.model, or a model directory holding one.")
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
    }

    func run() throws {
        try reportingErrors {
            // ArgumentParser hands over arguments already repaired to valid UTF-8 (bad bytes become U+FFFD), so the
            // raw argv is checked first: bad input is an error, never silently different ids.
            for i in 0..<Int(CommandLine.argc) {
                guard let p = CommandLine.unsafeArgv[i] else { continue }
                let raw = Array(UnsafeBufferPointer(start: UnsafeRawPointer(p).assumingMemoryBound(to: UInt8.self), count: strlen(p)))
                try UTF8Check.validateArgument(raw, index: i)
            }
            let tok = try Tokenizer(path: TokenizerLocation.find(tokenizer))
            var totals = (lines: 0, tokens: 0, bytes: 0)
            func show(_ bytes: [UInt8], source: String?) throws {
                let ids = try tok.encode(bytes: bytes, source: source)
                if count {
                    totals = (totals.lines + 1, totals.tokens + ids.count, totals.bytes + bytes.count)
                    return
                }
                let text = String(decoding: bytes, as: UTF8.self)
                if json {
                    struct Line: Encodable { let text: String; let ids: [Int]; let pieces: [String] }
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                    let data = try encoder.encode(Line(text: text, ids: ids, pieces: tok.encodePieces(text)))
                    print(String(decoding: data, as: UTF8.self))
                } else if pieces {
                    print(tok.encodePieces(text).joined(separator: " "))
                } else {
                    print(ids.map(String.init).joined(separator: " "))
                }
            }
            if let text {
                try show(Array(text.utf8), source: nil)
            } else {
                // raw bytes, so malformed UTF-8 reaches the tokenizer's check instead of readLine's repair
                var n = 0
                try StdinLines.forEach { line in
                    n += 1
                    try show(line, source: "standard input, line \(n)")
                }
            }
            if count {
                if json {
                    struct Totals: Encodable { let lines: Int; let tokens: Int; let bytes: Int }
                    try printJSON(Totals(lines: totals.lines, tokens: totals.tokens, bytes: totals.bytes))
                } else {
                    print("\(totals.lines) lines, \(totals.tokens) tokens, \(totals.bytes) bytes")
                }
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
        let inside = path + "/tokenizer.model"
        guard FileManager.default.fileExists(atPath: inside) else {
            throw BillaError(.notFound, file: path, "the directory has no tokenizer.model", remedy: "pass the tokenizer.model file itself")
        }
        return inside
    }
}

/// Standard input as lines of raw bytes (\n or \r\n endings removed).
enum StdinLines {
    static func forEach(_ body: ([UInt8]) throws -> Void) throws {
        var pending = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; throw BillaError(.io, file: "standard input", "read failed", remedy: "") }
            if n == 0 { break }
            var start = 0
            for i in 0..<n where buffer[i] == 0x0A {
                pending.append(contentsOf: buffer[start..<i])
                if pending.last == 0x0D { pending.removeLast() }
                try body(pending)
                pending.removeAll(keepingCapacity: true)
                start = i + 1
            }
            pending.append(contentsOf: buffer[start..<n])
        }
        if !pending.isEmpty { try body(pending) }
    }
}
