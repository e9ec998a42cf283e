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

    func run() throws {
        try reportingErrors {
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
                    let data = try JSONEncoder().encode(Line(text: text, ids: ids, pieces: tok.encodePieces(text)))
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
                var n = 0
                while let line = readLine(strippingNewline: true) {
                    n += 1
                    try show(Array(line.utf8), source: "standard input, line \(n)")
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
