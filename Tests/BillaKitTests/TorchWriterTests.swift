import Foundation
import Testing
@testable import BillaKit
import CKernels

/// TorchWriter against torch.save: the generator (scripts/fixtures/make_convert_fixtures.py) saved each case with
/// torch 2.15; billa writes the same tensors in the same order to a file of the same name.
@Suite("PyTorch zip writer")
struct TorchWriterTests {
    static let cases = ["mixed", "many", "batch", "single"]

    static func tempDir() throws -> String { try Fixtures.tempDir("tw") }

    static func plans(_ c: String) throws -> [TensorPlan] {
        let dir = Fixtures.path("convert/torchwriter")
        let source = try SafetensorsReader.open(dir + "/\(c).safetensors")
        let order = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/\(c).order.json"))) as? [String] ?? []
        return try order.map { name in
            TensorPlan(copying: try #require(source.tensor(named: name), "\(c): \(name) missing"))
        }
    }

    @Test("byte-identical to torch.save of the same OrderedDict", arguments: cases)
    func identical(_ c: String) throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = dir + "/\(c).pth"
        try TorchWriter.write(try Self.plans(c), to: out)
        let mine = try Data(contentsOf: URL(fileURLWithPath: out))
        let torch = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("convert/torchwriter/\(c).pth")))
        let diff = mine.withUnsafeBytes { a in torch.withUnsafeBytes { b in firstDifference(a, b, elementSize: 1) } }
        #expect(diff == nil, "\(c).pth: \(diff ?? "")")
    }

    @Test("what billa writes reads back through billa's own reader with the same bytes")
    func roundTrip() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let plans = try Self.plans("mixed")
        try TorchWriter.write(plans, to: dir + "/x.bin")
        let back = try TorchCheckpoint.open(dir + "/x.bin")
        #expect(back.tensors.map(\.name) == plans.map(\.name))
        let source = try SafetensorsReader.open(Fixtures.path("convert/torchwriter/mixed.safetensors"))
        for t in back.tensors {
            let r = try #require(source.tensor(named: t.name))
            #expect(t.shape == r.shape && t.dtype == r.dtype, "\(t.name)")
            let diff = try t.withBytes { a in try r.withBytes { b in firstDifference(a, b, elementSize: t.dtype.size) } }
            #expect(diff == nil, "\(t.name): \(diff ?? "")")
        }
        let archive = try ZipArchive(file: try MappedFile(path: dir + "/x.bin"))
        for e in archive.entries {
            #expect(e.name.hasPrefix("x/"))
            if e.name.contains("/data/") { #expect(e.dataOffset % 64 == 0, "\(e.name) at \(e.dataOffset)") }
            var crc = CRC32()
            crc.update(try archive.bytes(of: e))
            #expect(crc.value == e.crc32, "\(e.name): CRC in the directory does not match the data")
        }
    }

    @Test("a tensor whose source comes up short is an error and leaves no file")
    func shortSource() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let bad = TensorPlan(name: "w", dtype: .f32, shape: [4], provenance: "test") { body in
            try [UInt8](repeating: 0, count: 8).withUnsafeBytes { try body($0) }
        }
        #expect(throws: BillaError.self) { try TorchWriter.write([bad], to: dir + "/w.pth") }
        #expect((try FileManager.default.contentsOfDirectory(atPath: dir)).isEmpty)
    }

    @Test("CRC-32 of the standard check string")
    func crcCheckValue() {
        var c = CRC32()
        Array("123456789".utf8).withUnsafeBytes { c.update($0) }
        #expect(c.value == 0xCBF4_3926)
    }
}

@Suite("CRC-32")
struct CRCTests {
    /// torch.save (miniz) wrote these archives: their central directories hold independently computed CRCs.
    @Test("both bodies give the CRCs torch.save recorded, for every member of the torch-written fixtures")
    func againstTorch() throws {
        var checked = 0, large = 0
        for path in ["tiny-meta/consolidated.00.pth", "tiny-meta/consolidated.01.pth",
                     "tiny-hf-bin/pytorch_model-00001-of-00002.bin", "tiny-hf-bin/pytorch_model-00002-of-00002.bin"] {
            let archive = try ZipArchive(file: try MappedFile(path: Fixtures.path(path)))
            for e in archive.entries {
                let bytes = try archive.bytes(of: e)
                guard let base = bytes.baseAddress else { continue }
                for (body, name) in [(KernelBodies.portable, "portable")] + (KernelBodies.hasPCLMUL ? [(KernelBodies.pclmul, "PCLMUL")] : []) {
                    var state: UInt32 = 0xFFFF_FFFF
                    #expect(bk_crc32_update_using(body, &state, base, bytes.count) == 1, "the \(name) body did not run")
                    #expect(state ^ 0xFFFF_FFFF == e.crc32, "\(path) \(e.name) (\(bytes.count) bytes, \(name) body)")
                }
                checked += 1
                if bytes.count >= 4096 { large += 1 }
            }
        }
        #expect(checked > 20 && large > 5, "the fixtures must exercise the folding path")
    }

    @Test("the PCLMUL body equals the portable one at every length and alignment, continuing a running register",
          .enabled(if: KernelBodies.hasPCLMUL, KernelBodies.noPCLMUL))
    func bodiesAgree() {
        var rng = SplitMix64(seed: 5)
        let bytes = (0..<70_000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        bytes.withUnsafeBytes { raw in
            let base = raw.baseAddress!
            var sizes = Array(0..<300) + [1023, 4096, 4097, 65_536, 69_000]
            sizes += (0..<20).map { _ in Int.random(in: 300..<69_000, using: &rng) }
            for n in sizes {
                for offset in [0, 1, 3, 7] where offset + n <= raw.count {
                    let seed = UInt32.random(in: 0...UInt32.max, using: &rng)
                    var fast = seed, portable = seed
                    #expect(bk_crc32_update_using(KernelBodies.pclmul, &fast, base + offset, n) == 1, "the PCLMUL body did not run")
                    #expect(bk_crc32_update_using(KernelBodies.portable, &portable, base + offset, n) == 1)
                    #expect(fast == portable, "length \(n) at offset \(offset)")
                }
            }
        }
    }
}

@Suite("CRC-32 on two cores")
struct CRCCombineTests {
    @Test("the two-thread CRC equals the one-pass CRC at odd sizes")
    func combine() {
        var rng = SystemRandomNumberGenerator()
        for size in [1 << 20, (1 << 20) + 7, 3_000_001] {
            let bytes = (0..<size).map { _ in UInt8.random(in: 0...255, using: &rng) }
            var a = CRC32(), b = CRC32()
            bytes.withUnsafeBytes { a.update($0); b.updateUsingBothCores($0) }
            #expect(a.value == b.value, "size \(size)")
        }
    }
}
