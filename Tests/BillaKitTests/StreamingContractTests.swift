import Foundation
import Testing
@testable import BillaKit

/// The streaming contract (RowSource.swift, TensorPlan): rows into a caller's buffer at the cost of those rows, and a
/// stream of pieces of any size with an exact total. Tensors here are several MiB, so they cross the ~1 MiB pack
/// chunks; row ranges start and end mid-chunk and rows span chunk boundaries.
enum StreamingSupport {
    /// N(0, 0.02)-like values, fast enough for tens of millions of elements in a debug build: an Irwin-Hall sum of
    /// four 16-bit uniforms from one SplitMix64 draw (mean 2, variance 1/3), scaled.
    static func normals(_ count: Int, seed: UInt64) -> [Float] {
        var state = seed
        var out = [Float](repeating: 0, count: count)
        let scale = Float(0.02 * 3.0.squareRoot() / 65536)
        out.withUnsafeMutableBufferPointer { b in
            for i in 0..<count {
                state &+= 0x9E37_79B9_7F4A_7C15
                var z = state
                z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
                z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
                z ^= z >> 31
                let s = Int(z & 0xFFFF) + Int((z >> 16) & 0xFFFF) + Int((z >> 32) & 0xFFFF) + Int(z >> 48)
                b[i] = Float(s - 131_070) * scale
            }
        }
        return out
    }

    static func f16(_ values: [Float]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: values.count * 2)
        out.withUnsafeMutableBytes { d in
            for (i, v) in values.enumerated() { d.storeBytes(of: Float16(v).bitPattern.littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
        }
        return out
    }

    /// A plan whose body hands `data` over in pieces of the given sizes, cycled (a body called many times).
    static func piecewise(_ name: String, _ dtype: DType, _ shape: [Int], _ data: [UInt8], pieces: [Int]) -> TensorPlan {
        TensorPlan(name: name, dtype: dtype, shape: shape, provenance: "pieces") { body in
            try data.withUnsafeBytes { all in
                var at = 0, k = 0
                while at < all.count {
                    let n = min(pieces[k % pieces.count], all.count - at)
                    try body(UnsafeRawBufferPointer(rebasing: all[at..<(at + n)]))
                    at += n
                    k += 1
                }
            }
        }
    }

    static func collect(_ plan: TensorPlan) throws -> (bytes: [UInt8], calls: Int) {
        var out = [UInt8]()
        var calls = 0
        try plan.bytes { out.append(contentsOf: $0); calls += 1 }
        return (out, calls)
    }

    static func packed(_ t: Tensor) throws -> PackedTensor {
        guard case .packed(let p) = t.layout else { throw BillaError(.invalidArgument, "\(t.name) is not chunked", remedy: "") }
        return p
    }

    static func fileBytes(_ path: String) -> [UInt8] { Array(FileManager.default.contents(atPath: path) ?? Data()) }

    /// Expects equal bytes, reporting the first difference (never the arrays).
    static func expectSame(_ got: [UInt8], _ want: [UInt8], _ label: String, elementSize: Int = 1,
                           sourceLocation: SourceLocation = #_sourceLocation) {
        let d = got.withUnsafeBytes { g in
            want.withUnsafeBytes { w in
                // memcmp first: a byte loop over tens of MB is slow in a debug build
                g.count == w.count && (g.count == 0 || memcmp(g.baseAddress!, w.baseAddress!, g.count) == 0) ? nil : firstDifference(g, w, elementSize: elementSize)
            }
        }
        #expect(d == nil, "\(label): \(d ?? "")", sourceLocation: sourceLocation)
    }
}

@Suite("streaming contract: pack chunks")
struct PackChunkReadTests {
    // 1024 rows of 1500 f32 (6000 bytes): 6 MB, six 1 MiB chunks; a chunk ends mid-row every time.
    static let shape = [1024, 1500]
    static let data = PackTestSupport.bytes(.f32, count: 1024 * 1500, seed: 71)
    static let rowBytes = 6000

    static func pack() throws -> (String, Tensor) {
        let path = try PackTestSupport.write([("w", .f32, shape, data)], options: PackOptions())
        let t = try #require(try PackReader.open(path).tensors.first)
        return (path, t)
    }

    @Test("row ranges that start and end mid-chunk read the right bytes")
    func ranges() throws {
        let (path, t) = try Self.pack()
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(try StreamingSupport.packed(t).chunkCount == 6)
        var seed: UInt64 = 5
        var ranges: [Range<Int>] = [0..<1, 174..<176, 0..<1024, 349..<700, 1023..<1024, 500..<500]
        for _ in 0..<40 {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            let a = Int(seed >> 33) % 1024
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            ranges.append(a..<(a + 1 + Int(seed >> 33) % (1024 - a)))
        }
        for r in ranges {
            var got = [UInt8](repeating: 0, count: r.count * Self.rowBytes)
            try got.withUnsafeMutableBytes { try t.readRows(r, into: $0.baseAddress!) }
            let want = Array(Self.data[(r.lowerBound * Self.rowBytes)..<(r.upperBound * Self.rowBytes)])
            let d = got.withUnsafeBytes { g in want.withUnsafeBytes { firstDifference(g, $0, elementSize: 4) } }
            #expect(d == nil, "rows \(r): \(d ?? "")")
        }
    }

    /// Regression: each row read decoded its chunks again (a row-by-row permutation of one 2304-wide layer took
    /// 109 s). Now the partly read chunk is kept, so reading every row in order decodes each chunk once.
    @Test("reading row by row decodes each chunk once")
    func rowByRow() throws {
        let (path, t) = try Self.pack()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let p = try StreamingSupport.packed(t)
        var all = [UInt8](repeating: 0, count: Self.data.count)
        try all.withUnsafeMutableBytes { b in
            for row in 0..<1024 { try t.readRows(row..<(row + 1), into: b.baseAddress! + row * Self.rowBytes) }
        }
        StreamingSupport.expectSame(all, Self.data, "row by row", elementSize: 4)
        #expect(p.chunksDecoded == p.chunkCount, "\(p.chunksDecoded) chunk decodes for \(p.chunkCount) chunks")
        // The last chunk was read in part (row by row), so it is cached until the rows are released.
        #expect(PackChunkCache.shared.with(ObjectIdentifier(p), chunk: 5) { _ in })
        RowSource(t).release(0..<1024)
        #expect(!PackChunkCache.shared.with(ObjectIdentifier(p), chunk: 5) { _ in })
    }

    /// Regression for the same bug through a conversion: a rotary permutation (as Meta <-> HF applies to wq/wk) over
    /// a pack tensor, streamed in ranges that end mid-head and mid-chunk.
    @Test("a permuted stream over a pack decodes each chunk about once")
    func permutedStream() throws {
        let (path, t) = try Self.pack()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let p = try StreamingSupport.packed(t)
        let order = LlamaNames.metaToHFRows(heads: 8, rows: 1024)
        let plan = RowSource(t).permutingRows(order, note: "rotary").plan(named: "w", chunkBytes: 700_000)
        let (got, calls) = try StreamingSupport.collect(plan)
        #expect(calls > 8)
        var want = [UInt8]()
        for src in order { want += Self.data[(src * Self.rowBytes)..<((src + 1) * Self.rowBytes)] }
        let d = got.withUnsafeBytes { g in want.withUnsafeBytes { firstDifference(g, $0, elementSize: 4) } }
        #expect(d == nil, "\(d ?? "")")
        #expect(p.chunksDecoded <= 2 * p.chunkCount + 2, "\(p.chunksDecoded) chunk decodes for \(p.chunkCount) chunks")
    }

    @Test("a copy of a pack tensor streams in windows and leaves nothing cached")
    func copyStreams() throws {
        let (path, t) = try Self.pack()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let p = try StreamingSupport.packed(t)
        let (got, calls) = try StreamingSupport.collect(TensorPlan(copying: t))
        StreamingSupport.expectSame(got, Self.data, "copy", elementSize: 4)
        #expect(calls >= 1 && calls < 1024)
        #expect(p.chunksDecoded == p.chunkCount)
        // Nothing of this tensor stays in the cache once the stream released it (other tests may hold their own).
        #expect(!PackChunkCache.shared.with(ObjectIdentifier(p), chunk: 5) { _ in })
    }
}

@Suite("streaming contract: writers take any pieces")
struct StreamingWriterTests {
    // > 1M elements each: a chunked f16 tensor of 8 MiB (4096-wide rows) and a raw Q8_0 tensor of 4.5 MB.
    static let f16Shape = [1024, 4096]
    static let f16Data = StreamingSupport.f16(StreamingSupport.normals(1024 * 4096, seed: 3))
    static let q8Shape = [1024, 4096]
    static let q8Data = Quantizer.quantize(StreamingSupport.normals(1024 * 4096, seed: 4), cols: 4096, to: .q8_0)
    static let pieces = [1, 7, 4093, (1 << 20) + 3, 65536, 2, 3 << 20]

    /// Regression: the pack writer took the body's first piece as the whole tensor, so a quantized plan (which
    /// streams 1M values at a time) failed with "the source gave 1113840 bytes, expected 1410048".
    @Test("the pack writer takes a body called many times, chunked and raw")
    func packWriter() throws {
        let path = PackTestSupport.temporaryPath("pieces.billa")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try PackWriter.write([PackInput(plan: StreamingSupport.piecewise("a", .f16, Self.f16Shape, Self.f16Data, pieces: Self.pieces), group: 0),
                              PackInput(plan: StreamingSupport.piecewise("q", .q8_0, Self.q8Shape, Self.q8Data, pieces: Self.pieces), group: 0)],
                             blobs: [], metadata: PackTestSupport.metadata, options: PackOptions(), to: path)
        let pack = try PackReader.open(path)
        #expect(PackVerifier.verify(pack).ok)
        try PackTestSupport.expectEqual(pack.tensors[0], Self.f16Data, "f16")
        try PackTestSupport.expectEqual(pack.tensors[1], Self.q8Data, "q8_0")
        #expect(!pack.tensors[0].isDense && pack.tensors[1].isDense)
        // The same file as from one-piece bodies.
        let whole = PackTestSupport.temporaryPath("whole.billa")
        defer { try? FileManager.default.removeItem(atPath: whole) }
        try PackWriter.write([PackInput(plan: PackTestSupport.plan("a", .f16, Self.f16Shape, Self.f16Data), group: 0),
                              PackInput(plan: PackTestSupport.plan("q", .q8_0, Self.q8Shape, Self.q8Data), group: 0)],
                             blobs: [], metadata: PackTestSupport.metadata, options: PackOptions(), to: whole)
        StreamingSupport.expectSame(StreamingSupport.fileBytes(path), StreamingSupport.fileBytes(whole), "pack from pieces vs one piece")
    }

    @Test("a stream of the wrong length is refused by every writer", arguments: [-1, 1])
    func wrongLength(delta: Int) throws {
        let data = Array(Self.f16Data.prefix(Self.f16Data.count + min(0, delta))) + (delta > 0 ? [0] : [])
        let plan = StreamingSupport.piecewise("a", .f16, Self.f16Shape, data, pieces: Self.pieces)
        let dir = PackTestSupport.temporaryPath("wrong")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for raw in [false, true] {
            #expect(throws: BillaError.self) {
                try PackWriter.write([PackInput(plan: plan, group: 0)], blobs: [], metadata: PackTestSupport.metadata,
                                     options: PackOptions(raw: raw), to: dir + "/p.billa")
            }
        }
        #expect(throws: BillaError.self) { try SafetensorsWriter.write([plan], to: dir + "/a.safetensors") }
        #expect(throws: BillaError.self) { try TorchWriter.write([plan], to: dir + "/a.pth") }
        #expect(throws: BillaError.self) { try GGUFWriter.write(metadata: GGUFMetadata(), tensors: [plan], to: dir + "/a.gguf") }
        let left = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        #expect(left.isEmpty, "left behind: \(left)")
    }

    @Test("safetensors, torch and GGUF files are the same from one piece or many")
    func otherWriters() throws {
        let dir = PackTestSupport.temporaryPath("writers")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let one = PackTestSupport.plan("a", .f16, Self.f16Shape, Self.f16Data)
        let many = StreamingSupport.piecewise("a", .f16, Self.f16Shape, Self.f16Data, pieces: Self.pieces)
        let q1 = PackTestSupport.plan("q", .q8_0, Self.q8Shape, Self.q8Data)
        let qn = StreamingSupport.piecewise("q", .q8_0, Self.q8Shape, Self.q8Data, pieces: Self.pieces)
        try SafetensorsWriter.write([one], to: dir + "/1.safetensors")
        try SafetensorsWriter.write([many], to: dir + "/n.safetensors")
        try TorchWriter.write([one], to: dir + "/1.pth", archiveName: "x")
        try TorchWriter.write([many], to: dir + "/n.pth", archiveName: "x")
        try GGUFWriter.write(metadata: GGUFMetadata(), tensors: [one, q1], to: dir + "/1.gguf")
        try GGUFWriter.write(metadata: GGUFMetadata(), tensors: [many, qn], to: dir + "/n.gguf")
        for ext in ["safetensors", "pth", "gguf"] {
            StreamingSupport.expectSame(StreamingSupport.fileBytes(dir + "/n.\(ext)"), StreamingSupport.fileBytes(dir + "/1.\(ext)"), ext)
        }
    }
}

@Suite("streaming contract: strided and quantized sources")
struct StridedAndQuantizedSourceTests {
    /// A file holding `bytes` at offset 0, mapped.
    static func mapped(_ bytes: [UInt8]) throws -> (String, MappedFile) {
        let path = PackTestSupport.temporaryPath("storage.bin")
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        return (path, try MappedFile(path: path))
    }

    @Test("a strided view reads its rows, in ranges and one by one")
    func strided() throws {
        // Storage: a [600, 700] f32 matrix. Views: its transpose [700, 600], and a [3, 200, 350] view with an offset.
        let storage = PackTestSupport.bytes(.f32, count: 600 * 700, seed: 9)
        let (path, file) = try Self.mapped(storage)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let views = [
            Tensor(name: "t", dtype: .f32, shape: [700, 600], file: file, layout: .strided(storageByteOffset: 0, elementOffset: 0, strides: [1, 700])),
            Tensor(name: "s", dtype: .f32, shape: [3, 200, 340], file: file,
                   layout: .strided(storageByteOffset: 0, elementOffset: 7, strides: [140_000, 700, 2])),   // reaches element 419985
        ]
        for t in views {
            let whole = try t.withBytes { Array($0) }   // Tensor's own gather: an independent reading of the view
            let rb = t.rowBytes
            for r in [0..<t.rows, 1..<2, (t.rows - 1)..<t.rows, 0..<(t.rows / 2)] {
                StreamingSupport.expectSame(try t.readRows(r), Array(whole[(r.lowerBound * rb)..<(r.upperBound * rb)]), "\(t.name) rows \(r)", elementSize: 4)
            }
            let (streamed, calls) = try StreamingSupport.collect(RowSource(t).plan(named: t.name, chunkBytes: 100_000))
            StreamingSupport.expectSame(streamed, whole, "\(t.name) streamed", elementSize: 4)
            #expect(calls > 1)
        }
    }

    /// Regression: a row of a block-quantized tensor was counted as elements x block bytes, so a RowSource over a
    /// GGUF or quantized-pack tensor read 32 times too much.
    @Test("rows of quantized blocks are whole blocks")
    func quantizedRows() throws {
        let q = StreamingWriterTests.q8Data   // [1024, 4096] Q8_0: 128 blocks of 34 bytes per row
        let (path, file) = try Self.mapped(q)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let t = Tensor(name: "q", dtype: .q8_0, shape: [1024, 4096], file: file, layout: .dense(byteOffset: 0))
        let src = RowSource(t)
        #expect(src.rowBytes == 128 * 34 && t.rowBytes == 128 * 34)
        #expect(src.byteCount == q.count)
        let (streamed, _) = try StreamingSupport.collect(src.rowSlice(100, 924).plan(named: "q", chunkBytes: 1 << 20))
        StreamingSupport.expectSame(streamed, Array(q[(100 * 4352)...]), "rows 100..<1024")
        let one = Tensor(name: "v", dtype: .q8_0, shape: [4096], file: file, layout: .dense(byteOffset: 0))
        #expect(RowSource(one).rows == 1 && RowSource(one).byteCount == 128 * 34)
        StreamingSupport.expectSame(try StreamingSupport.collect(TensorPlan(copying: one)).bytes, Array(q.prefix(128 * 34)), "1-D")
    }
}

/// Regression: the model check every conversion runs first built the forward pass's weights, which copies every
/// tensor that is not mapped, so `convert PACK --to hf` decoded the whole pack into memory before writing a byte
/// (3081 MiB peak on a 1.7 GB model). The check reads shapes only: no matrix chunk is decoded.
@Suite struct ModelCheckReadsNoMatrix {
    @Test func validatingAPackDecodesNoMatrixChunk() throws {
        let pack = try PackConsumerTests.packed("tiny-hf-st")
        defer { try? FileManager.default.removeItem(atPath: pack) }
        let release = try Release.open(pack)
        try ModelCheck.validate(release)
        var matrices = 0
        for (_, t) in release.tensors where t.shape.count == 2 {
            guard case .packed(let p) = t.layout else { continue }
            matrices += 1
            #expect(p.chunksDecoded == 0, "\(t.name): \(p.chunksDecoded) chunks decoded by a shape check")
        }
        #expect(matrices > 0, "the pack must hold compressed matrices for this test to mean anything")
    }
}
