import Foundation
import Testing
@testable import BillaKit

/// The reproducers of the fuzzing campaign (Fuzz/, scripts/fuzz; README "Fuzzing"): each trapped, hung or tried a
/// huge allocation before its fix. The files are made by scripts/fixtures/make_fuzz_reproducers.py. CI does not
/// run the fuzzers; it runs these.
@Suite("fuzz reproducers")
struct FuzzReproducerTests {
    static func refusal(_ fixture: String) throws -> BillaError {
        let path = Fixtures.path(fixture)
        do {
            _ = try Release.open(path)
        } catch let e as BillaError {
            #expect(e.file == path, "\(e)")
            #expect(!e.remedy.isEmpty, "\(e)")
            return e
        }
        Issue.record("\(fixture) was accepted")
        throw BillaError(.invalidArgument, "accepted", remedy: "")
    }

    @Test("a 16-byte tokenizer.model whose varint runs past its field is refused, naming the non-UTF-8 piece")
    func varintPastField() throws {
        let path = Fixtures.path("hostile/varint-past-field.model")
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(bytes.count == 16)
        // Before the fix the scan read the key of piece #1 past its 1-byte field and trapped on end - i < 0.
        let bad = RawModelScan.nonUTF8Pieces(bytes)
        #expect(bad.map(\.index) == [0] && bad.map(\.hex) == ["ff"], "\(bad)")
        let e = try #require(throws: BillaError.self) { _ = try SentencePieceModel.load(path) }
        #expect(e.code == .invalidHeader && e.message.contains("piece #0, bytes ff"), "\(e)")
    }

    @Test("the raw scan never reads outside a field, whatever the bytes (every prefix and random tails)")
    func scanSweep() throws {
        var rng = SplitMix64(seed: 12)
        let model = Array(try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("tiny-meta/tokenizer.model"))))
        for cut in stride(from: 0, through: model.count, by: 7) { _ = RawModelScan.nonUTF8Pieces(Array(model.prefix(cut))) }
        for _ in 0..<2000 {
            let n = Int(rng.next() % 40)
            _ = RawModelScan.nonUTF8Pieces((0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
        }
    }

    @Test("an empty tensor at storage offset 2^62 is refused, not an overflow trap")
    func emptyViewOffset() throws {
        let e = try Self.refusal("hostile/empty-view-offset.pth")
        #expect(e.code == .outOfBounds && e.tensor == "w" && e.message.contains("storage offset 4611686018427387904"), "\(e)")
    }

    @Test("stride-0 views that repeat one byte 2^62 times are refused on open (parameterCount overflowed)")
    func stride0Overflow() throws {
        let e = try Self.refusal("hostile/stride0-views-overflow.pth")
        #expect(e.code == .unsupported && e.tensor == "a" && e.message.contains("repeats elements"), "\(e)")
    }

    @Test("a stride-0 view claiming 1 TiB over a 1-byte storage is refused on open, before anything allocates it")
    func stride0Terabyte() throws {
        let e = try Self.refusal("hostile/stride0-terabyte.pth")
        #expect(e.code == .unsupported && e.tensor == "w" && e.message.contains("1099511627776 elements"), "\(e)")
        #expect(e.remedy.contains(".contiguous()"))
    }

    @Test("lists shared through the memo 30 levels deep are refused quickly (the walk was 2^30 visits)")
    func sharedLists() throws {
        let clock = ContinuousClock()
        let start = clock.now
        let e = try Self.refusal("hostile/shared-lists.pth")
        #expect(e.code == .hostilePickle && e.message.contains("shared through the memo"), "\(e)")
        #expect(clock.now - start < .seconds(1), "took \(clock.now - start)")
    }

    @Test("two pack tensors of an unknown dtype with shape [2^62] are refused by Release.open, not an overflow trap")
    func packUnknownDTypeOverflow() throws {
        var s = try PackCorruptionTests.sample()
        let dims = s.tableOffset + 32 + 3 * 128
        for t in 0..<2 {
            PackCorruptionTests.put(UInt16(0x7777), at: s.entry(t) + 14, in: &s.bytes)
            let dimsIndex = Int(s.bytes[s.entry(t) + 8]), ndim = Int(s.bytes[s.entry(t) + 12])
            for d in 0..<ndim { PackCorruptionTests.put(UInt64(d == 0 ? 1 << 62 : 1), at: dims + (dimsIndex + d) * 8, in: &s.bytes) }
        }
        PackCorruptionTests.reseal(&s)
        let path = try PackCorruptionTests.save(s.bytes)
        defer { try? FileManager.default.removeItem(atPath: path) }
        // The pack itself opens (unknown codes fail only on read, formats/pack.md 8) ...
        let pack = try PackReader.open(path)
        #expect(pack.tensors.map(\.shape.first) == [1 << 62, 1 << 62, 0])
        // ... but a release whose tensors add up past Int.max is refused, naming the tensor that overflows.
        do {
            _ = try Release.open(path)
            Issue.record("accepted")
        } catch let e as BillaError {
            #expect(e.code == .shapeMismatch && e.tensor == "b" && e.message.contains("in total"), "\(e)")
        }
    }
}
