// Coverage-guided fuzz targets for billa's parsers (libFuzzer). Build and run them with `scripts/fuzz`; the normal
// `swift build` / `swift test` never see this target (Package.swift adds it only when BILLA_FUZZ is set).
//
// Each target writes the input to a file and opens it through the same API a command uses, then touches what that
// command would: `inspect` (parameter count, the report), `checksum --per-tensor` (every tensor's bytes, which
// decodes pack chunks and gathers strided views), `tokenize` (a tokenization).

import CFuzzDriver
import Foundation
@testable import BillaKit

/// One file per process in tmpfs: readers take paths and map files, as the commands do.
let scratch: String = {
    let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
    let dir = "\(base)/billa-fuzz-\(getpid())"
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}()

func withInputFile(_ data: UnsafePointer<UInt8>?, _ size: Int, name: String, _ body: (String) throws -> Void) {
    let path = scratch + "/" + name
    let bytes = size == 0 ? Data() : Data(bytes: data!, count: size)
    guard FileManager.default.createFile(atPath: path, contents: bytes) else { fatalError("cannot write \(path)") }
    // Errors are the expected outcome for most inputs; crashes, hangs and huge allocations are what libFuzzer catches.
    try? body(path)
}

/// What `inspect` and `checksum --per-tensor` do with a release.
func inspectAndRead(_ release: Release) throws {
    _ = InspectReport(release)
    _ = release.parameterCount
    _ = try Checksummer.hashTensors(release, algorithm: .md5)
    // A row-range read, as conversions that slice or permute do.
    for (_, t) in release.tensors where t.shape.count >= 1 && t.shape[0] > 0 {
        if case .packed(let p) = t.layout {
            _ = try t.readRows(0..<1)
            _ = try p.read(bytes: 0..<min(t.byteCount, 100))
        }
    }
}

let targets: [String: (name: String, run: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt)] = [
    // zip reader + pickle interpreter
    "pth": ("input.pth", { d, n in
        withInputFile(d, n, name: "input.pth") { path in
            try inspectAndRead(try Release.open(path))
        }
        return 0
    }),
    "safetensors": ("input.safetensors", { d, n in
        withInputFile(d, n, name: "input.safetensors") { path in
            try inspectAndRead(try Release.open(path))
        }
        return 0
    }),
    "gguf": ("input.gguf", { d, n in
        withInputFile(d, n, name: "input.gguf") { path in
            try inspectAndRead(try GGUFReader.open(path).release())
        }
        return 0
    }),
    // pack reader + chunk decode
    "pack": ("input.billa", { d, n in
        withInputFile(d, n, name: "input.billa") { path in
            try inspectAndRead(try Release.open(path))
        }
        return 0
    }),
    // SentencePiece protobuf (tokenizer.model) + the raw scan for non-UTF-8 pieces + one tokenization
    "spm": ("tokenizer.model", { d, n in
        let bytes = n == 0 ? [] : Array(UnsafeBufferPointer(start: d!, count: n))
        _ = RawModelScan.nonUTF8Pieces(bytes)
        if let model = try? SentencePieceModel(bytes: bytes), let tokenizer = try? Tokenizer(model: model) {
            let ids = tokenizer.encode("Hello world, 你好 \u{1F600}\n\tcafé  <s>")
            _ = try? tokenizer.decode(ids)
        }
        return 0
    }),
    // checksum manifests (checklist.chk, sha256sum output)
    "manifest": ("checklist.chk", { d, n in
        withInputFile(d, n, name: "checklist.chk") { path in _ = try Manifest.parse(path) }
        return 0
    }),
]

var args = CommandLine.arguments
guard args.count >= 2, let target = targets[args[1]] else {
    FileHandle.standardError.write("usage: BillaFuzz TARGET [libFuzzer flags] [corpus dirs]; targets: \(targets.keys.sorted().joined(separator: ", "))\n".data(using: .utf8)!)
    exit(2)
}
args.remove(at: 1)
var cargs = args.map { strdup($0) }
let rc = cargs.withUnsafeMutableBufferPointer { buf in
    billa_fuzz_run(CInt(buf.count), buf.baseAddress!, target.run)
}
exit(rc)
