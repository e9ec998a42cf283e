import Foundation
import Testing
@testable import BillaKit

@Suite("PyTorch zip checkpoints")
struct TorchReaderTests {
    static let torchFiles = Fixtures.weightFiles.filter { $0.hasSuffix(".pth") || $0.hasSuffix(".bin") }

    @Test("every tensor matches torch's own dtype, shape and bytes", arguments: torchFiles)
    func matchesManifest(_ relative: String) throws {
        let file = try TorchCheckpoint.open(Fixtures.path(relative))
        let expected = try #require(Fixtures.manifest.files[relative]?.tensors)
        #expect(Set(file.tensors.map(\.name)) == Set(expected.keys))
        for t in file.tensors {
            let e = try #require(expected[t.name])
            #expect(t.dtype.rawValue == e.dtype, "\(relative) \(t.name)")
            #expect(t.shape == e.shape, "\(relative) \(t.name)")
            let digest = try t.withBytes(sha256Hex)
            #expect(digest == e.sha256, "\(relative) \(t.name): bytes differ from torch's")
        }
    }

    @Test("strided, offset and shared-storage views gather to the same bytes safetensors wrote")
    func viewsMatchContiguousReference() throws {
        let views = try TorchCheckpoint.open(Fixtures.path("views/views.pth"))
        let reference = try SafetensorsReader.open(Fixtures.path("views/views.safetensors"))
        #expect(views.tensor(named: "transposed")?.isDense == false)
        #expect(views.tensor(named: "strided")?.isDense == false)
        #expect(views.tensor(named: "sliced")?.isDense == true)
        for t in views.tensors {
            let r = try #require(reference.tensor(named: t.name), "reference lacks \(t.name)")
            #expect(t.shape == r.shape && t.dtype == r.dtype, "\(t.name)")
            let diff = try t.withBytes { a in try r.withBytes { b in firstDifference(a, b, elementSize: t.dtype.size) } }
            #expect(diff == nil, "\(t.name): \(diff ?? "")")
        }
    }

    @Test("ZIP64 archives (64-bit sizes in extra fields and end records) read like any other")
    func zip64() throws {
        let file = try TorchCheckpoint.open(Fixtures.path("zip64/zip64.pth"))
        #expect(!file.tensors.isEmpty)
        // torch writes a ZIP64 end record even for small files; the rewritten one also has 0xFFFFFFFF markers.
        let archive = try ZipArchive(file: try MappedFile(path: Fixtures.path("zip64/zip64.pth")))
        #expect(archive.entries.contains { $0.name.hasSuffix("data.pkl") })
    }

    @Test("dense tensors are zero-copy slices of the map at 64-byte aligned offsets")
    func zeroCopy() throws {
        let file = try TorchCheckpoint.open(Fixtures.path("tiny-meta/consolidated.00.pth"))
        for t in file.tensors {
            guard case .dense(let offset) = t.layout else { Issue.record("\(t.name) is not dense"); continue }
            #expect(offset % 64 == 0, "\(t.name) at \(offset)")
            try t.withBytes { bytes in
                #expect(bytes.baseAddress == t.file.all.baseAddress.map { $0 + offset })
            }
        }
    }
}
