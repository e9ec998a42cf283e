import Foundation
import Testing
@testable import BillaKit

@Suite("hostile input")
struct HostileInputTests {
    /// Each hostile fixture and the failure it must produce (see Tests/Fixtures/hostile/README.md).
    static let cases: [(String, BillaError.Code, String)] = [
        ("hostile/pickle-os-system.pth", .hostilePickle, "os.system"),
        ("hostile/pickle-eval.pth", .hostilePickle, "builtins.eval"),
        ("hostile/truncated.pth", .corruptContainer, "truncated"),
        ("hostile/zip-bomb.pth", .unsupported, "compressed"),
        ("hostile/overlapping-entries.pth", .corruptContainer, "overlap"),
        ("hostile/storage-too-small.pth", .corruptContainer, "storage '0'"),
        ("hostile/bad-header-len.safetensors", .invalidHeader, "header claims 1000 bytes"),
        ("hostile/header-too-big.safetensors", .invalidHeader, "limit is 100000000"),
        ("hostile/offsets-past-eof.safetensors", .invalidHeader, "past the end of the file"),
        ("hostile/hole.safetensors", .invalidHeader, "hole"),
        ("hostile/overlap.safetensors", .invalidHeader, "overlaps"),
        ("hostile/overflow-shape.safetensors", .invalidHeader, "overflows"),
        ("hostile/dtype-size-mismatch.safetensors", .invalidHeader, "needs 24 bytes"),
        ("hostile/not-json.safetensors", .invalidHeader, "'{'"),
        ("hostile/empty.safetensors", .unknownFormat, "empty"),
        ("legacy/legacy.pth", .unsupported, "legacy"),
    ]

    @Test("each hostile file gives a clear error naming the file", arguments: cases)
    func refused(_ c: (String, BillaError.Code, String)) throws {
        let path = Fixtures.path(c.0)
        do {
            _ = try Release.open(path)
            Issue.record("\(c.0) was accepted")
        } catch let e as BillaError {
            #expect(e.code == c.1, "\(c.0): \(e)")
            #expect(e.message.contains(c.2), "\(c.0): \(e.message)")
            #expect(e.file == path)
            #expect(!e.remedy.isEmpty)
        }
    }

    @Test("the legacy-format error tells the user how to re-save")
    func legacyRemedy() throws {
        let e = try #require(throws: BillaError.self) { try Release.open(Fixtures.path("legacy/legacy.pth")) }
        #expect(e.remedy.contains("torch.save"))
    }

    @Test("every prefix of a real checkpoint is refused or read, never a crash")
    func truncationSweep() throws {
        let source = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("views/views.pth")))
        let dir = try TemporaryDirectory()
        let path = dir.path + "/cut.pth"
        for length in stride(from: 0, to: source.count, by: 37) {
            try source.prefix(length).write(to: URL(fileURLWithPath: path))
            #expect(throws: BillaError.self) { _ = try FormatSniffer.openTensorFile(path) }
        }
    }

    @Test("random bytes after a valid safetensors length and '{' are refused, never a crash")
    func garbageHeaders() throws {
        var rng = SplitMix64(seed: 42)
        let dir = try TemporaryDirectory()
        let path = dir.path + "/g.safetensors"
        for _ in 0..<200 {
            let n = Int(rng.next() % 64) + 1
            var bytes = [UInt8]()
            withUnsafeBytes(of: UInt64(n).littleEndian) { bytes += $0 }
            bytes.append(UInt8(ascii: "{"))
            for _ in 1..<n { bytes.append(UInt8(truncatingIfNeeded: rng.next())) }
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            #expect(throws: BillaError.self) { _ = try FormatSniffer.openTensorFile(path) }
        }
    }
}

/// A fixed-seed generator, so a failing random test fails the same way on the next run.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
