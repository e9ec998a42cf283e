import Foundation
import Testing
@testable import BillaKit

/// Large tensors that sit in a mapped file are written with sendfile(2) instead of through user space; the bytes
/// must be the same as the bytes a plain write gives, at any source offset.
@Suite struct KernelCopyTests {
    @Test func mappedTensorsCopyByteForByte() throws {
        let dir = NSTemporaryDirectory() + "billa-sendfile-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        // an odd-sized first tensor puts the big one at an offset that is not page aligned
        var values = [UInt8](repeating: 0, count: 3 << 20)
        var x: UInt32 = 12345
        for i in values.indices { x = x &* 1664525 &+ 1013904223; values[i] = UInt8(truncatingIfNeeded: x >> 24) }
        let big = values, small = [UInt8](repeating: 7, count: 6)
        func plan(_ name: String, _ bytes: [UInt8]) -> TensorPlan {
            TensorPlan(name: name, dtype: .u8, shape: [bytes.count], provenance: "memory") { body in try bytes.withUnsafeBytes { try body($0) } }
        }
        // written from memory: no mapping, the ordinary path
        try SafetensorsWriter.write([plan("a", small), plan("b", big)], to: dir + "/a.safetensors")
        // copied from the mapped file: the big tensor goes through sendfile
        let a = try SafetensorsReader.open(MappedFile(path: dir + "/a.safetensors"))
        try SafetensorsWriter.write(a.tensors.map { TensorPlan(copying: $0) }, to: dir + "/b.safetensors")
        let fa = try Data(contentsOf: URL(fileURLWithPath: dir + "/a.safetensors"))
        let fb = try Data(contentsOf: URL(fileURLWithPath: dir + "/b.safetensors"))
        #expect(fa.count == fb.count)
        if let i = zip(fa, fb).enumerated().first(where: { $0.element.0 != $0.element.1 })?.offset {
            Issue.record("first differing byte at \(i)")
        }
        // and the in-kernel path was really taken: the tensor's bytes are found inside the mapping
        let t = try #require(a.tensor(named: "b"))
        try t.withBytes { b in #expect(MappedRegions.locate(b.baseAddress!, count: b.count) != nil) }
    }
}
