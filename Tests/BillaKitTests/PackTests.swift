import Crypto
import Foundation
import Testing
@testable import BillaKit

/// Helpers shared by the pack suites: temporary paths and packs of synthetic tensors.
enum PackTestSupport {
    static func temporaryPath(_ name: String) -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("billa-pack-tests-\(getpid())")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.appendingPathComponent("\(UUID().uuidString)-\(name)").path
    }

    /// Deterministic pseudo-random bytes (SplitMix64), or N(0, 0.02)-like floats for float dtypes so the planes
    /// have real exponent structure.
    static func bytes(_ dtype: DType, count: Int, seed: UInt64) -> [UInt8] {
        var state = seed
        func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        let n = count * dtype.size
        var out = [UInt8](repeating: 0, count: n)
        switch dtype {
        case .f32, .bf16, .f16:
            for i in 0..<count {
                let u1 = Double(next() >> 11) / Double(1 << 53) + 1e-300, u2 = Double(next() >> 11) / Double(1 << 53)
                let v = Float(0.02 * (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2))
                switch dtype {
                case .f32: withUnsafeBytes(of: v.bitPattern.littleEndian) { for k in 0..<4 { out[4 * i + k] = $0[k] } }
                case .bf16: let b = UInt16(v.bitPattern >> 16); out[2 * i] = UInt8(b & 0xFF); out[2 * i + 1] = UInt8(b >> 8)
                default: let b = Float16(v).bitPattern; out[2 * i] = UInt8(b & 0xFF); out[2 * i + 1] = UInt8(b >> 8)
                }
            }
        case .bool:
            for i in 0..<n { out[i] = UInt8(next() & 1) }
        default:
            for i in 0..<n { out[i] = UInt8(truncatingIfNeeded: next()) }
        }
        return out
    }

    static func plan(_ name: String, _ dtype: DType, _ shape: [Int], _ data: [UInt8]) -> TensorPlan {
        TensorPlan(name: name, dtype: dtype, shape: shape, provenance: "test") { body in try data.withUnsafeBytes { try body($0) } }
    }

    static let metadata = PackMetadata(billaVersion: BillaVersion.string, source: .init(layout: "file", name: "synthetic", files: []),
                                       groups: [.init(name: "synthetic", format: "synthetic", safetensorsMetadata: nil)],
                                       model: nil, vocab: nil, compression: .init(raw: false))

    static func write(_ tensors: [(String, DType, [Int], [UInt8])], options: PackOptions, blobs: [PackBlobInput] = []) throws -> String {
        let path = temporaryPath("t.billa")
        try PackWriter.write(tensors.map { PackInput(plan: plan($0.0, $0.1, $0.2, $0.3), group: 0) }, blobs: blobs,
                             metadata: metadata, options: options, to: path)
        return path
    }

    static func expectEqual(_ t: Tensor, _ expected: [UInt8], _ label: String) throws {
        try t.withBytes { got in
            expected.withUnsafeBytes { want in
                let d = firstDifference(got, want, elementSize: t.dtype.size)
                #expect(d == nil, "\(label) \(t.name): \(d ?? "")")
            }
        }
    }
}

@Suite("pack: round trips")
struct PackRoundTripTests {
    @Test("every dtype survives pack -> read bit-exact, chunked (several chunk sizes) and raw", arguments: DType.allCases)
    func everyDType(_ dtype: DType) throws {
        // Block-quantized rows must be whole blocks; their bytes are arbitrary blocks (the pack stores, not decodes).
        let shape = dtype.isQuantized ? [3, 2 * dtype.blockSize] : [37, 29]
        let bytes = try #require(Shape.byteCount(shape, dtype))
        let data = PackTestSupport.bytes(dtype.isQuantized ? .u8 : dtype, count: dtype.isQuantized ? bytes : 37 * 29,
                                         seed: UInt64(dtype.size * 7919 + dtype.rawValue.count))
        for options in [PackOptions(chunkBytes: 256), PackOptions(chunkBytes: 1 << 20), PackOptions(level: 19, chunkBytes: 1000), PackOptions(raw: true)] {
            let path = try PackTestSupport.write([("w", dtype, shape, data)], options: options)
            defer { try? FileManager.default.removeItem(atPath: path) }
            let pack = try PackReader.open(path)
            let t = try #require(pack.tensors.first)
            #expect(t.dtype == dtype && t.shape == shape)
            #expect(t.isDense == (options.raw || dtype.isQuantized))
            try PackTestSupport.expectEqual(t, data, "chunk \(options.chunkBytes) raw \(options.raw)")
            #expect(pack.sha256(of: "w") == Hex.string(Array(SHA256.hash(data: data))))
        }
    }

    @Test("0-d, empty and single-element tensors, blobs, and a pack with no tensors")
    func edgeCases() throws {
        let scalar = PackTestSupport.bytes(.f32, count: 1, seed: 1)
        let path = try PackTestSupport.write([("scalar", .f32, [], scalar), ("empty", .f16, [0, 4], []), ("one", .bf16, [1], [1, 2])],
                                             options: PackOptions(chunkBytes: 64), blobs: [PackBlobInput(name: "tokenizer.model", bytes: [9, 8, 7])])
        defer { try? FileManager.default.removeItem(atPath: path) }
        let pack = try PackReader.open(path)
        #expect(pack.tensors.map(\.shape) == [[], [0, 4], [1]])
        try PackTestSupport.expectEqual(pack.tensors[0], scalar, "0-d")
        try PackTestSupport.expectEqual(pack.tensors[1], [], "empty")
        try PackTestSupport.expectEqual(pack.tensors[2], [1, 2], "one")
        #expect(pack.tensors[1].isDense, "empty tensors are stored raw (formats/pack.md 9)")
        #expect(try pack.blob(named: "tokenizer.model").map(Array.init) == [9, 8, 7])
        #expect(PackVerifier.verify(pack).ok)

        let none = try PackTestSupport.write([], options: PackOptions())
        defer { try? FileManager.default.removeItem(atPath: none) }
        #expect(try PackReader.open(none).tensors.isEmpty)
    }

    @Test("raw tensors are page-aligned slices of the map (zero-copy)")
    func rawIsZeroCopy() throws {
        let data = PackTestSupport.bytes(.f16, count: 5000, seed: 3)
        let path = try PackTestSupport.write([("a", .f16, [5000], data), ("b", .f16, [5000], data)], options: PackOptions(raw: true))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let pack = try PackReader.open(path)
        for t in pack.tensors {
            guard case .dense(let offset) = t.layout else { Issue.record("\(t.name) is not dense"); continue }
            #expect(offset % 4096 == 0)
            try t.withBytes { #expect($0.baseAddress == t.file.all.baseAddress! + offset) }
        }
    }

    @Test("XXH64 matches the reference vectors of the xxHash specification")
    func xxh64Vectors() {
        // From xxhash's sanity tests (python-xxhash 3.5.0 gives the same: xxh64_intdigest(b'') etc.).
        #expect(XXH64.hash(UnsafeRawBufferPointer(start: nil, count: 0)) == 0xEF46_DB37_51D8_E999)
        #expect(Array("a".utf8).withUnsafeBytes { XXH64.hash($0) } == 0xD24E_C4F1_A98C_6E5B)
        #expect(Array("abc".utf8).withUnsafeBytes { XXH64.hash($0) } == 0x44BC_2CF5_AD77_0999)
        let long = Array("Nobody inspects the spammish repetition".utf8)
        #expect(long.withUnsafeBytes { XXH64.hash($0) } == 0xFBCE_A83C_8A37_8BF1)
        let cycle = (0..<768).map { UInt8($0 % 256) }   // python: xxh64_intdigest(bytes(range(256)) * 3)
        #expect(cycle.withUnsafeBytes { XXH64.hash($0) } == 0x8E03_C838_C596_036F)
    }
}

@Suite("pack: random access")
struct PackRandomAccessTests {
    @Test("a row range decodes only the chunks it touches")
    func rowRange() throws {
        let data = PackTestSupport.bytes(.f32, count: 64 * 64, seed: 11)   // 256-byte rows, 4 rows per 1 KiB chunk
        let other = PackTestSupport.bytes(.bf16, count: 4096, seed: 12)
        let path = try PackTestSupport.write([("other", .bf16, [4096], other), ("w", .f32, [64, 64], data)], options: PackOptions(chunkBytes: 1024))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let pack = try PackReader.open(path)
        let w = try #require(pack.tensors.first { $0.name == "w" })
        guard case .packed(let packed) = w.layout else { Issue.record("not chunked"); return }
        #expect(packed.chunkCount == 16)
        let rows = try w.readRows(5..<9)   // bytes 1280..<2304: chunks 1 and 2
        let d = rows.withUnsafeBytes { a in Array(data[1280..<2304]).withUnsafeBytes { firstDifference(a, $0, elementSize: 4) } }
        #expect(d == nil, "\(d ?? "")")
        #expect(packed.chunksDecoded == 2)
        _ = try w.readRows(63..<64)
        #expect(packed.chunksDecoded == 3)
        guard case .packed(let otherPacked) = pack.tensors[0].layout else { Issue.record("not chunked"); return }
        #expect(otherPacked.chunksDecoded == 0, "reading one tensor touched another")
        #expect(throws: BillaError.self) { try w.readRows(60..<65) }
    }

    @Test("one tensor by name, without decoding the others")
    func oneTensor() throws {
        let a = PackTestSupport.bytes(.f16, count: 3000, seed: 21), b = PackTestSupport.bytes(.f16, count: 3000, seed: 22)
        let path = try PackTestSupport.write([("a", .f16, [3000], a), ("b", .f16, [3000], b)], options: PackOptions(chunkBytes: 512))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let file = try FormatSniffer.openTensorFile(path)
        #expect(file.format == .billaPack)
        let tb = try #require(file.tensor(named: "b"))
        try PackTestSupport.expectEqual(tb, b, "b")
        if case .packed(let pa) = try #require(file.tensor(named: "a")).layout { #expect(pa.chunksDecoded == 0) }
    }
}

@Suite("quantized packs")
struct QuantizedPackTests {
    /// `pack --quantize` stores exactly the tensors `billa quantize` writes to GGUF (whose bytes QuantTests hold to
    /// llama.cpp's), raw, and the verifier runs the pack directly.
    @Test(arguments: ["q8_0", "q4_0"])
    func quantizedPackHoldsTheGGUFTensors(recipe: String) throws {
        let dir = NSTemporaryDirectory() + "billa-qpack-\(getpid())-\(recipe)"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let source = Fixtures.path("verify/trained")
        let options = GGUFExportOptions(recipe: try #require(QuantRecipe(name: recipe)))
        try Packer.packQuantized(source: source, export: options, options: PackOptions(), to: dir + "/m.billa")
        try GGUFExport.plan(source: source, options: options).write(to: dir + "/m.gguf")
        let pack = try Release.open(dir + "/m.billa"), gguf = try Release.open(dir + "/m.gguf")
        let a = try Checksummer.hashTensors(pack, algorithm: .sha256).map { "\($0.name) \($0.dtype) \($0.digest)" }.sorted()
        let b = try Checksummer.hashTensors(gguf, algorithm: .sha256).map { "\($0.name) \($0.dtype) \($0.digest)" }.sorted()
        #expect(a == b)
        #expect(pack.files[0].tensors.contains { $0.dtype.isQuantized })
        let file = try PackReader.open(dir + "/m.billa")
        #expect(file.metadata.quantization?.hasPrefix(recipe) == true)
        #expect(PackVerifier.verify(file).ok)
        let r = try Verifier.compare(Verifier.Loaded(source), Verifier.Loaded(dir + "/m.billa"), prompts: Verifier.defaultPrompts)
        #expect(r.pass, "\(r.failures)")
    }
}

@Suite("pack: compression levels")
struct PackLevelTests {
    /// A higher --level must never store the exponent planes raw: bf16 N(0, 0.02) weights packed at level 19 are no
    /// larger than at level 3 (they were 1.015 of the raw bytes before the exponent parameters were pinned).
    @Test func higherLevelsKeepTheExponentPlaneCompressed() throws {
        let src = try Release.open(Fixtures.path("dtypes/tiny-bf16.safetensors"))
        var sizes = [Int32: Int]()
        for level: Int32 in [3, 19] {
            let path = NSTemporaryDirectory() + "billa-level-\(getpid())-\(level).billa"
            try? FileManager.default.removeItem(atPath: path)
            try Packer.pack(src, options: PackOptions(level: level), to: path)
            sizes[level] = try PackReader.open(path).file.size
        }
        let raw = src.tensors.reduce(0) { $0 + $1.tensor.byteCount }
        // (the metadata records the level, so a byte or two may differ)
        #expect(sizes[19]! <= sizes[3]! + 16, "level 19 \(sizes[19]!) bytes vs level 3 \(sizes[3]!)")
        #expect(Double(sizes[19]!) < 0.8 * Double(raw), "level 19 pack is \(sizes[19]!) of \(raw) raw bytes")
    }
}
