import Foundation
import Testing
@testable import BillaKit

@Suite("safetensors")
struct SafetensorsTests {
    static let files = Fixtures.weightFiles.filter { $0.hasSuffix(".safetensors") }

    @Test("every tensor matches torch's dtype, shape and bytes", arguments: files)
    func matchesManifest(_ relative: String) throws {
        let file = try SafetensorsReader.open(Fixtures.path(relative))
        let expected = try #require(Fixtures.manifest.files[relative]?.tensors)
        #expect(Set(file.tensors.map(\.name)) == Set(expected.keys))
        for t in file.tensors {
            let e = try #require(expected[t.name])
            #expect(t.dtype.rawValue == e.dtype && t.shape == e.shape, "\(relative) \(t.name)")
            #expect(try t.withBytes(sha256Hex) == e.sha256, "\(relative) \(t.name)")
        }
    }

    @Test("writing the tensors back gives the reference library's exact bytes", arguments: files)
    func writerIsByteIdentical(_ relative: String) throws {
        let source = try SafetensorsReader.open(Fixtures.path(relative))
        let dir = try TemporaryDirectory()
        let out = dir.path + "/out.safetensors"
        try SafetensorsWriter.write(source.tensors.map { TensorPlan(copying: $0) }, metadata: source.metadata, to: out)
        let a = try MappedFile(path: Fixtures.path(relative))
        let b = try MappedFile(path: out)
        let diff = firstDifference(a.all, b.all, elementSize: 1)
        #expect(diff == nil, "\(relative): \(diff ?? "")")
    }

    @Test("a failed write leaves nothing behind")
    func atomicWrite() throws {
        let dir = try TemporaryDirectory()
        let out = dir.path + "/out.safetensors"
        let bad = TensorPlan(name: "x", dtype: .f32, shape: [4], provenance: "test") { body in
            try [UInt8](repeating: 0, count: 8).withUnsafeBytes { try body($0) }   // 8 bytes where 16 are due
        }
        #expect(throws: BillaError.self) { try SafetensorsWriter.write([bad], to: out) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
    }
}

/// A directory removed when the test ends.
final class TemporaryDirectory {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "billa-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}
