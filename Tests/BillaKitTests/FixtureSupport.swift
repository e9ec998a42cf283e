import Foundation
@testable import BillaKit

/// Paths and the generator's manifest. Expected values in the tests come from `manifest.json`, which
/// `scripts/fixtures/make_fixtures.py` computed with torch and hashlib, never from billa.
enum Fixtures {
    /// A fresh directory under the system's temporary directory, named `billa-TAG-UUID`; tests remove it.
    static func tempDir(_ tag: String) throws -> String {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("billa-\(tag)-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    static let root: String = {
        let here = URL(fileURLWithPath: #filePath)
        return here.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures").path
    }()

    static func path(_ relative: String) -> String { root + "/" + relative }

    struct TensorEntry: Decodable {
        let dtype: String
        let shape: [Int]
        let sha256: String
    }

    struct FileEntry: Decodable {
        let sha256: String
        let md5: String
        let size: Int
        let tensors: [String: TensorEntry]?
    }

    struct VocabEntry: Decodable {
        let embedding: Int?
        let lm_head: Int?
        let config: Int?
        let tokenizer: Int?
    }

    struct ModelEntry: Decodable {
        let format: String
        let dim: Int
        let n_layers: Int
        let n_heads: Int
        let n_kv_heads: Int
        let ffn_dim: Int
        let vocab: VocabEntry
        let norm_eps: Double
        let rope_theta: Double
        let parameters: Int
    }

    struct Manifest: Decodable {
        let files: [String: FileEntry]
        let models: [String: ModelEntry]
    }

    static let manifest: Manifest = {
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: path("manifest.json")))
            return try JSONDecoder().decode(Manifest.self, from: data)
        } catch {
            preconditionFailure("Tests/Fixtures/manifest.json is unreadable (\(error)); regenerate with scripts/fixtures/make_fixtures.py")
        }
    }()

    /// Every weights file of the manifest with tensors listed.
    static var weightFiles: [String] {
        manifest.files.filter { $0.value.tensors != nil }.keys.sorted()
    }
}

/// Where two byte buffers first differ, as a sentence naming the element: the standards ask every reference
/// comparison to report it.
func firstDifference(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer, elementSize: Int) -> String? {
    if a.count != b.count { return "sizes differ: \(a.count) vs \(b.count) bytes" }
    for i in 0..<a.count where a[i] != b[i] {
        let e = i / elementSize
        let lo = e * elementSize
        let hi = min(a.count, lo + elementSize)
        let hex = { (p: UnsafeRawBufferPointer) in p[lo..<hi].map { String(format: "%02x", $0) }.joined() }
        return "first difference at element \(e) (byte \(i)): \(hex(a)) vs \(hex(b))"
    }
    return nil
}

func sha256Hex(_ bytes: UnsafeRawBufferPointer) -> String {
    var h = HashAlgorithm.sha256.makeHasher()
    h.update(bytes)
    return h.hex()
}

/// Where two GGUF files first differ, located in the reference's layout: the header (metadata and tensor infos),
/// or a tensor's block (name, type, block index, byte offset in the file and in the tensor). nil when equal.
func ggufDifference(_ gotPath: String, _ wantPath: String) throws -> String? {
    let got = try MappedFile(path: gotPath), want = try MappedFile(path: wantPath)
    let a = got.all, b = want.all
    guard let i = (0..<min(a.count, b.count)).first(where: { a[$0] != b[$0] }) else {
        return a.count == b.count ? nil : "sizes differ: \(a.count) vs \(b.count) bytes, equal up to the shorter"
    }
    let g = try GGUFReader.open(wantPath)
    let hex = { (p: UnsafeRawBufferPointer, lo: Int, n: Int) in p[lo..<min(p.count, lo + n)].map { String(format: "%02x", $0) }.joined() }
    if i < g.dataOffset {
        return "first difference in the header (metadata / tensor infos) at byte \(i): \(hex(a, i, 8)) vs \(hex(b, i, 8))"
    }
    for t in g.tensors {
        let start = g.dataOffset + t.offset
        guard i >= start && i < start + t.byteCount else { continue }
        let blockBytes = t.dtype.quantType?.bytesPerBlock ?? (t.dtype.byteCount(elements: 1) ?? 1)
        let block = (i - start) / blockBytes
        let lo = start + block * blockBytes
        return "first difference in tensor \(t.name) (\(t.dtype.rawValue)), block \(block) (\(blockBytes) bytes), file byte \(i) "
            + "(byte \(i - start) of the tensor): \(hex(a, lo, blockBytes)) vs \(hex(b, lo, blockBytes))"
    }
    return "first difference in alignment padding at byte \(i)"
}
