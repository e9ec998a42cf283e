import Foundation

/// Every `--json` report is one object that opens with the same keys (formats/json.md): `command`, `schema_version`,
/// `ok` where the command judges something and `output` where it writes something. Commands hand their own keys
/// over as parts, which are encoded into the same object, so no command can forget the common keys or spell them
/// its own way.
struct JSONReport: Encodable {
    /// Raised when a key of a report changes meaning or goes away; new keys do not raise it.
    static let schemaVersion = 1

    let command: String
    let ok: Bool?
    let output: String?
    /// Encodable values with keyed containers (structs with snake_case CodingKeys): their keys join the envelope's.
    let parts: [any Encodable]

    enum Key: String, CodingKey { case command, schemaVersion = "schema_version", ok, output }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        try c.encode(command, forKey: .command)
        try c.encode(Self.schemaVersion, forKey: .schemaVersion)
        try c.encodeIfPresent(ok, forKey: .ok)
        try c.encodeIfPresent(output, forKey: .output)
        for p in parts { try p.encode(to: encoder) }
    }
}

/// Prints one report on stdout: pretty-printed with sorted keys, or on one line (`lines`, for JSON Lines output
/// such as `tokenize --json` over standard input).
func printJSON(command: String, ok: Bool? = nil, output: String? = nil, lines: Bool = false, _ parts: any Encodable...) throws {
    try printJSON(command: command, ok: ok, output: output, lines: lines, parts: parts)
}

func printJSON(command: String, ok: Bool? = nil, output: String? = nil, lines: Bool = false, parts: [any Encodable]) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = lines ? [.sortedKeys, .withoutEscapingSlashes] : [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    let data = try encoder.encode(JSONReport(command: command, ok: ok, output: output, parts: parts))
    FileHandle.standardOutput.write(data)
    FileHandle.standardOutput.write(Data("\n".utf8))
}

/// A part whose keys are known only after the work ran (sums accumulated while writing): built when encoded.
struct LazyPart<T: Encodable>: Encodable {
    let make: () -> T
    init(_ make: @escaping () -> T) { self.make = make }
    func encode(to encoder: Encoder) throws { try make().encode(to: encoder) }
}
