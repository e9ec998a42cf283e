import Foundation
import Testing
@testable import BillaKit

/// What llama.cpp did with billa's gguf-split sets, recorded by scripts/fixtures/make_llama_split_fixtures.py
/// (Tests/Fixtures/gguf-split/llama/expected.json): from billa's single file, from the first file of billa's split
/// set and from `llama-gguf-split --merge` of that set, llama-simple gave the same greedy text and
/// llama-perplexity the same logits, byte for byte; the merge is billa's single file plus the three split.* keys.
/// These tests hold that without llama.cpp: billa today writes those very files, and billa's single file with the
/// three keys added is the merged file, byte for byte (its digest), reading back as every tensor of the single file.
@Suite("llama.cpp loads billa's gguf-split sets (recorded)")
struct LlamaSplitTests {
    struct Expected: Decodable {
        struct Keep: Decodable { let type: String; let value: Int }
        struct Case: Decodable {
            let billa_command: [String]
            let split_options: [String]
            let single_sha256: String
            let split_sha256: [String: String]
            let merged_sha256: String
            let merged_size: Int
            let tensors: Int
            let merge_keeps: [String: Keep]
            let llama_same_from: [String]
        }
        let cases: [String: Case]
    }

    static let expected: Expected? = try? JSONDecoder().decode(
        Expected.self, from: Data(contentsOf: URL(fileURLWithPath: Fixtures.path("gguf-split/llama/expected.json"))))

    func sha(_ path: String) throws -> String { try Checksummer.hashFile(path, algorithm: .sha256).digest }

    func run(_ args: [String]) throws {
        let r = try CLITests().billa(args, stdin: nil)
        #expect(r.status == 0, "billa \(args.joined(separator: " ")): \(r.stderr)")
    }

    /// The three keys llama-gguf-split --merge leaves after the model's keys, as the generator read them.
    static func mergeKeys(_ c: Expected.Case) -> [(String, GGUFValue)] {
        GGUFSplit.metadata(GGUFMetadata(), index: 0, count: 0, tensors: c.tensors).entries.map { ($0.key, $0.value) }
    }

    @Test("billa writes the single file and split set llama.cpp loaded; its merge prediction is llama-gguf-split's merge",
          arguments: ["f16", "q8_0"])
    func recordedCase(_ name: String) throws {
        let c = try #require(Self.expected?.cases[name], "Tests/Fixtures/gguf-split/llama/expected.json has no case \(name)")
        #expect(c.llama_same_from == ["single", "split first file", "merged"])
        let dir = try Fixtures.tempDir("llama-split-\(name)")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let command = c.billa_command.map { $0 == "tiny-hf-st" ? Fixtures.path("tiny-hf-st") : $0 }
        try run(command + ["-o", dir + "/single.gguf", "--quiet"])
        try run(command + c.split_options + ["-o", dir + "/split.gguf", "--quiet"])

        // The very files llama.cpp loaded (so they load today and give the recorded outputs).
        let single = dir + "/single.gguf"
        #expect(try sha(single) == c.single_sha256,
                "billa's single file differs from the one llama.cpp ran; if intended, rerun scripts/check-llama-split and the generator")
        let parts = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("split-") }.sorted()
        #expect(parts == c.split_sha256.keys.sorted(), "billa wrote \(parts), llama.cpp loaded \(c.split_sha256.keys.sorted())")
        for p in parts where c.split_sha256[p] != nil {
            #expect(try sha(dir + "/" + p) == c.split_sha256[p], "\(p) differs from the file llama.cpp loaded")
        }

        // The merge, predicted: the single file's keys, then split.no = 0, split.tensors.count = N, split.count = 0.
        let one = try GGUFReader.open(single)
        #expect(one.tensors.count == c.tensors)
        let keys = Self.mergeKeys(c)
        #expect(keys.map(\.0) == ["split.no", "split.tensors.count", "split.count"])
        for (k, v) in keys {
            let rec = try #require(c.merge_keeps[k], "\(k) not recorded")
            #expect(v.intValue == rec.value && (rec.type == "UINT16" ? v == .u16(UInt16(rec.value)) : v == .i32(Int32(rec.value))),
                    "\(k): predicted \(v), the merge has \(rec.type) \(rec.value)")
        }
        var metadata = one.metadata
        metadata.entries += keys.map { (key: $0.0, value: $0.1) }
        let plans = try one.tensors.map { t in
            let bytes = Array(try one.file.bytes(at: one.dataOffset + t.offset, count: t.byteCount, what: t.name))
            return TensorPlan(name: t.name, dtype: t.dtype, shape: t.shape, provenance: "single.gguf") { body in try bytes.withUnsafeBytes { try body($0) } }
        }
        let predicted = dir + "/merged.gguf"
        try GGUFWriter.write(metadata: metadata, tensors: plans, to: predicted)
        let size = (try FileManager.default.attributesOfItem(atPath: predicted)[.size] as? Int) ?? -1
        #expect(size == c.merged_size, "predicted merge \(size) bytes, llama-gguf-split wrote \(c.merged_size)")
        #expect(try sha(predicted) == c.merged_sha256, "the predicted merge is not llama-gguf-split's merged file")

        // billa reads that merged file as one model (split.count 0), every tensor equal to the single file's.
        let merged = try GGUFSplit.open(try GGUFReader.open(predicted))
        try #require(merged.count == 1)
        let m = merged[0]
        #expect(m.metadata.entries.count == one.metadata.entries.count + 3)
        for (a, b) in zip(one.metadata.entries, m.metadata.entries) { #expect(a.key == b.key && a.value == b.value, "key \(a.key)") }
        #expect(m.tensors.count == one.tensors.count)
        for (t, u) in zip(one.tensors, m.tensors) {
            #expect(t.name == u.name && t.dtype == u.dtype && t.dims == u.dims && t.offset == u.offset, "\(t.name): info differs")
            let x = try one.file.bytes(at: one.dataOffset + t.offset, count: t.byteCount, what: t.name)
            let y = try m.file.bytes(at: m.dataOffset + u.offset, count: u.byteCount, what: u.name)
            let diff = firstDifference(x, y, elementSize: 1)
            #expect(diff == nil, "\(t.name): \(diff ?? "")")
        }
        // And billa reads the split set as the same model.
        let set = try GGUFSplit.open(try GGUFReader.open(dir + "/" + (parts.first ?? "")))
        #expect(set.count == parts.count && set.reduce(0) { $0 + $1.tensors.count } == c.tensors)
    }
}
