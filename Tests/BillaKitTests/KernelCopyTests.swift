import Foundation
import Testing
@testable import BillaKit

/// Large tensors that sit in a mapped file are copied file to file in the kernel instead of through user space, and
/// pieces of 4 MiB or more are written as two halves on two threads; the bytes must be the ones a plain sequential
/// write gives, at any source offset.
@Suite struct KernelCopyTests {
    @Test func mappedTensorsCopyByteForByte() throws {
        let dir = NSTemporaryDirectory() + "billa-sendfile-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        // an odd-sized first tensor puts the big one at an offset that is not page aligned
        var values = [UInt8](repeating: 0, count: (9 << 20) + 13)   // above the write buffer and the 4 MiB split
        var x: UInt32 = 12345
        for i in values.indices { x = x &* 1664525 &+ 1013904223; values[i] = UInt8(truncatingIfNeeded: x >> 24) }
        let big = values, small = [UInt8](repeating: 7, count: 6)
        func plan(_ name: String, _ bytes: [UInt8]) -> TensorPlan {
            TensorPlan(name: name, dtype: .u8, shape: [bytes.count], provenance: "memory") { body in try bytes.withUnsafeBytes { try body($0) } }
        }
        // written from memory: no mapping, the ordinary path
        try SafetensorsWriter.write([plan("a", small), plan("b", big)], to: dir + "/a.safetensors")
        // copied from the mapped file: the big tensor goes through copy_file_range
        let a = try SafetensorsReader.open(MappedFile(path: dir + "/a.safetensors"))
        try SafetensorsWriter.write(a.tensors.map { TensorPlan(copying: $0) }, to: dir + "/b.safetensors")
        let fa = try Data(contentsOf: URL(fileURLWithPath: dir + "/a.safetensors"))
        let fb = try Data(contentsOf: URL(fileURLWithPath: dir + "/b.safetensors"))
        #expect(fa.count == fb.count)
        if let i = zip(fa, fb).enumerated().first(where: { $0.element.0 != $0.element.1 })?.offset {
            Issue.record("first differing byte at \(i)")
        }
        // and both files hold exactly the bytes generated above
        let b = try SafetensorsReader.open(MappedFile(path: dir + "/b.safetensors"))
        for reader in [a, b] {
            let t = try #require(reader.tensor(named: "b"))
            try t.withBytes { got in
                let diff = values.withUnsafeBytes { firstDifference(got, $0, elementSize: 1) }
                #expect(diff == nil, "\(diff ?? "")")
            }
        }
        // and the in-kernel path was really taken: the tensor's bytes are found inside the mapping
        let t = try #require(a.tensor(named: "b"))
        try t.withBytes { b in #expect(MappedRegions.locate(b.baseAddress!, count: b.count) != nil) }
    }
}
