import CKernels
import Foundation
import Testing
@testable import BillaKit

/// Runs the built billa binary (as CLITests does).
private func billa(_ args: String...) throws -> CLITests.Run { try CLITests().billa(args, stdin: nil) }

/// A fresh copy of a fixture directory.
private func copyFixture(_ name: String, tag: String) throws -> String {
    let dir = try Fixtures.tempDir(tag)
    let dst = dir + "/" + name
    try FileManager.default.copyItem(atPath: Fixtures.path(name), toPath: dst)
    return dst
}

/// A bf16 tensor's bytes from f32 values (exact for the values used here).
private func bf16Bytes(_ values: [Float]) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: values.count * 2)
    for (i, v) in values.enumerated() {
        let b = UInt16(v.bitPattern >> 16)
        out[2 * i] = UInt8(b & 0xFF); out[2 * i + 1] = UInt8(b >> 8)
    }
    return out
}

@Suite("checked narrowing")
struct NarrowingTests {
    /// Swift's Float16(Float) is an independent round-to-nearest-even: a finite input that it turns into inf is
    /// exactly an overflow. Each body must agree with it on values, count and largest |value|, and clamp to 0x7BFF.
    /// One test per body, so a CPU without AVX2 reports the AVX2 test as skipped instead of passing it unseen.
    @Test("f32 -> f16 checked, portable body: agrees with Float16 on a bit-pattern sweep, counting every overflow")
    func portableBody() { Self.checkBody(KernelBodies.portable, "portable") }

    @Test("f32 -> f16 checked, AVX2 body: agrees with Float16 on a bit-pattern sweep, counting every overflow",
          .enabled(if: KernelBodies.hasAVX2, KernelBodies.noAVX2))
    func avx2Body() { Self.checkBody(KernelBodies.avx2, "AVX2") }

    static func checkBody(_ body: Int32, _ label: String) {
        var bits: [UInt32] = [0x477F_E000, 0x477F_EFFF, 0x477F_F000, 0x477F_F001, 0x4780_0000, 0xC77F_F000, 0x7F7F_FFFF,
                              0xFF7F_FFFF, 0x7F80_0000, 0x7FC0_0000, 0x4788_B800 /* 70000 */]
        var u: UInt32 = 7
        while true { bits.append(u); let (next, o) = u.addingReportingOverflow(65_537); if o { break }; u = next }
        let floats = bits.map { Float(bitPattern: $0) }
        var wantCount = 0
        var wantMax: Float = 0
        for f in floats where f.isFinite && Float16(f).isInfinite { wantCount += 1; wantMax = max(wantMax, abs(f)) }
        #expect(wantCount > 1000, "the sweep must hold overflowing values")
        for clamp: Int32 in [0, 1] {
            var out = [UInt16](repeating: 0, count: floats.count)
            var m: Float = 0
            let n = floats.withUnsafeBufferPointer { src in
                out.withUnsafeMutableBufferPointer { bk_f32_to_f16_checked_using(body, src.baseAddress, $0.baseAddress, Int64(src.count), clamp, &m) }
            }
            #expect(Int(n) == wantCount && m == wantMax, "\(label) body, clamp \(clamp): \(n) overflows, max \(m); want \(wantCount), \(wantMax)")
            var first: String? = nil
            for (i, f) in floats.enumerated() where first == nil {
                var want: UInt16 = f.isNaN ? UInt16((f.bitPattern >> 16) & 0x8000) | 0x7E00 : Float16(f).bitPattern
                if clamp == 1, f.isFinite, Float16(f).isInfinite { want = f < 0 ? 0xFBFF : 0x7BFF }
                if out[i] != want { first = "element \(i): 0x\(String(bits[i], radix: 16)) gave 0x\(String(out[i], radix: 16)), want 0x\(String(want, radix: 16))" }
            }
            #expect(first == nil, "\(label) body, clamp \(clamp): \(first ?? "")")
        }
    }

    /// A real-shape bf16 tensor with one value past f16's range at its very last element (index 16,777,215): the
    /// cast to f16 refuses naming the tensor and the value; with clamping it writes 65504 there and counts one.
    @Test("4096x4096 bf16 -> f16: one 7e4 at the end is refused by name, or clamped and counted")
    func realShape() throws {
        let rows = 4096, cols = 4096
        // bf16 values 0.5, -0.25, 1.5, ... repeating, and 70144 (exact in bf16) as the very last element
        var halves = [UInt16](repeating: 0x3F00, count: rows * cols)
        for i in stride(from: 0, to: halves.count, by: 3) { halves[i] = 0xBE80 }
        for i in stride(from: 1, to: halves.count, by: 7) { halves[i] = 0x3FC0 }
        halves[halves.count - 1] = 0x4789
        let bytes = halves.withUnsafeBytes { Array($0) }
        let values = halves
        let rowBytes = cols * 2
        func source() -> RowSource {
            RowSource(dtype: .bf16, shape: [rows, cols], provenance: "test", fill: { r, dst in
                bytes.withUnsafeBytes { dst.copyMemory(from: $0.baseAddress! + r.lowerBound * rowBytes, byteCount: r.count * rowBytes) }
            })
        }
        let refuse = Narrowing()
        let plan = source().casting(to: .f16, named: "blk.31.ffn_down.weight", file: "model.safetensors", narrowing: refuse).plan(named: "w")
        var written = 0
        do {
            try plan.bytes { written += $0.count }
            Issue.record("the cast wrote \(written) bytes and did not refuse")
        } catch let e as BillaError {
            #expect(e.tensor == "blk.31.ffn_down.weight" && e.file == "model.safetensors", "\(e)")
            #expect(e.message.contains("70144") && e.message.contains("65504") && e.remedy.contains("--clamp-overflow"), "\(e)")
        }
        let clamp = Narrowing(clamp: true)
        var out = [UInt8]()
        out.reserveCapacity(rows * cols * 2)
        let start = Date()
        try source().casting(to: .f16, named: "w", file: nil, narrowing: clamp).plan(named: "w").bytes { out.append(contentsOf: $0) }
        let seconds = Date().timeIntervalSince(start)
        #expect(out.count == rows * cols * 2)
        #expect(out[out.count - 2] == 0xFF && out[out.count - 1] == 0x7B, "last value is 0x\(String(out[out.count - 1], radix: 16))\(String(out[out.count - 2], radix: 16)), want 0x7bff")
        #expect(clamp.clampedReport.count == 1 && clamp.clampedReport[0].contains("clamped 1 value of w"), "\(clamp.clampedReport)")
        // every other value equals Float16's rounding of the bf16 value
        var bad: String? = nil
        for i in stride(from: 0, to: values.count - 1, by: 9973) where bad == nil {
            let want = Float16(Float(bitPattern: UInt32(values[i]) << 16)).bitPattern
            let got = UInt16(out[2 * i]) | UInt16(out[2 * i + 1]) << 8
            if got != want { bad = "element \(i): 0x\(String(got, radix: 16)) vs 0x\(String(want, radix: 16))" }
        }
        #expect(bad == nil, "\(bad ?? "")")
        print("4096x4096 bf16 -> f16 checked cast (debug build): \(String(format: "%.3f", seconds)) s")
    }

    /// quantize --type f16 (and its f16 fallbacks) from a bf16 GGUF: the explicit narrowing refuses an overflow.
    @Test("GGUF export to f16 from a bf16 source refuses a value beyond 65504, clamps with the option")
    func ggufExportRefuses() throws {
        let dir = try Fixtures.tempDir("narrow-gguf")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let src = dir + "/bf16.gguf"
        var m = GGUFMetadata()
        m["general.architecture"] = .text("llama")
        var values = [Float](repeating: 0.5, count: 64 * 64)
        values[64 * 64 - 1] = -79872
        let bytes = bf16Bytes(values)
        let t = TensorPlan(name: "blk.0.attn_q.weight", dtype: .bf16, shape: [64, 64], provenance: "test") { body in
            try bytes.withUnsafeBytes { try body($0) }
        }
        try GGUFWriter.write(metadata: m, tensors: [t], to: src)
        #expect(throws: BillaError.self) { try GGUFExport.plan(source: src, options: GGUFExportOptions(recipe: .f16)).write(to: dir + "/f16.gguf") }
        #expect(!FileManager.default.fileExists(atPath: dir + "/f16.gguf"))
        var o = GGUFExportOptions(recipe: .f16)
        o.narrowing = Narrowing(clamp: true)
        let plan = try GGUFExport.plan(source: src, options: o)
        #expect(plan.losses.contains { $0.contains("narrowing 1 tensor") && $0.contains("bf16 -> f16") }, "\(plan.losses)")
        try plan.write(to: dir + "/f16.gguf")
        let g = try GGUFReader.open(dir + "/f16.gguf")
        let info = try #require(g.tensor(named: "blk.0.attn_q.weight"))
        let last = try g.file.bytes(at: g.dataOffset + info.offset + info.byteCount - 2, count: 2, what: "last")
        #expect(last[0] == 0xFF && last[1] == 0xFB, "want -65504 (0xfbff)")
        #expect(o.narrowing.clampedReport.first?.contains("79872") == true, "\(o.narrowing.clampedReport)")
    }

    /// Fails on the code before: a bf16 checkpoint became F16 GGUF without a word.
    @Test("convert --to gguf keeps a bf16 checkpoint BF16; --dtype f16 states the narrowing on stderr")
    func convertKeepsBF16() throws {
        let dir = try Fixtures.tempDir("narrow-cli")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let hf = dir + "/hf-bf16"
        let r0 = try billa("convert", Fixtures.path("tiny-meta"), "-o", hf, "--to", "hf", "--dtype", "bf16", "--quiet")
        #expect(r0.status == 0, "\(r0.stderr)")
        #expect(r0.stderr.contains("narrowing") && r0.stderr.contains("f16 -> bf16") || r0.stderr.contains("f32 -> bf16"), "\(r0.stderr)")
        let r1 = try billa("convert", hf, "-o", dir + "/auto.gguf", "--to", "gguf", "--quiet")
        #expect(r1.status == 0, "\(r1.stderr)")
        let g = try GGUFReader.open(dir + "/auto.gguf")
        let matrices = g.tensors.filter { $0.shape.count == 2 }
        #expect(!matrices.isEmpty && matrices.allSatisfy { $0.dtype == .bf16 }, "\(Set(matrices.map(\.dtype)))")
        #expect(g.tensors.filter { $0.shape.count == 1 }.allSatisfy { $0.dtype == .f32 })
        #expect(g.metadata["general.file_type"] == .u32(32), "MOSTLY_BF16, as convert_hf_to_gguf's guess")
        #expect(!r1.stderr.contains("narrowing"), "\(r1.stderr)")
        let r2 = try billa("convert", hf, "-o", dir + "/f16.gguf", "--to", "gguf", "--dtype", "f16", "--quiet")
        #expect(r2.status == 0 && r2.stderr.contains("bf16 -> f16"), "\(r2.stderr)")
    }
}

@Suite("gguf-split sets")
struct GGUFSplitTests {
    static let dir = Fixtures.path("gguf-split")
    static let names = (1...3).map { String(format: "q8_0-%05d-of-00003.gguf", $0) }

    /// Fails on the code before: reading one file of a set gave that file's tensors only.
    @Test("reading any file of the set gives every tensor of the single file, byte for byte")
    func readsWholeSet() throws {
        let single = try GGUFReader.open(Fixtures.path("quant/fallback/q8_0.gguf"))
        for name in Self.names {
            let release = try Release.open(Self.dir + "/" + name)
            let tensors = release.tensors.map(\.tensor)
            #expect(tensors.count == single.tensors.count, "\(name): \(tensors.count) tensors, want \(single.tensors.count)")
            for want in single.tensors {
                guard let got = tensors.first(where: { $0.name == want.name }) else { Issue.record("\(name): \(want.name) missing"); continue }
                let a = try got.withBytes { Array($0) }
                let b = Array(try single.file.bytes(at: single.dataOffset + want.offset, count: want.byteCount, what: want.name))
                let diff = a.withUnsafeBytes { x in b.withUnsafeBytes { firstDifference(x, $0, elementSize: 1) } }
                #expect(diff == nil, "\(name) \(want.name): \(diff ?? "")")
            }
            #expect(release.parameters?.dim == 64)
        }
    }

    /// Fails on the code before (no such option): billa's split equals llama-gguf-split's split of billa's single file.
    @Test("quantize --split-max-tensors 5 writes llama-gguf-split's three files byte for byte")
    func writesGGUFSplitBytes() throws {
        let out = try Fixtures.tempDir("split-write")
        defer { try? FileManager.default.removeItem(atPath: out) }
        var o = GGUFExportOptions(recipe: .q8_0)
        o.split = .maxTensors(5)
        let paths = try GGUFExport.plan(source: Fixtures.path("quant/fallback/src.gguf"), options: o).write(to: out + "/q8_0.gguf")
        #expect(paths.map { ($0 as NSString).lastPathComponent } == Self.names)
        for (p, name) in zip(paths, Self.names) {
            let diff = try ggufDifference(p, Self.dir + "/" + name)
            #expect(diff == nil, "\(name): \(diff ?? "")")
        }
    }

    @Test("a set with a missing file is refused naming it; a renamed file is refused")
    func missingFile() throws {
        let dir = try Fixtures.tempDir("split-missing")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for n in [Self.names[0], Self.names[2]] { try FileManager.default.copyItem(atPath: Self.dir + "/" + n, toPath: dir + "/" + n) }
        for n in [Self.names[0], Self.names[2]] {
            do {
                _ = try Release.open(dir + "/" + n)
                Issue.record("\(n): a set missing file 2 was read")
            } catch let e as BillaError {
                #expect(e.file == dir + "/" + Self.names[1] && e.message.contains("missing"), "\(e)")
            }
            #expect(throws: BillaError.self) { try GGUFExport.plan(source: dir + "/" + n, options: GGUFExportOptions(recipe: .q8_0)) }
        }
        try FileManager.default.copyItem(atPath: Self.dir + "/" + Self.names[1], toPath: dir + "/renamed.gguf")
        #expect(throws: BillaError.self) { try Release.open(dir + "/renamed.gguf") }
    }

    /// --max-shard-size cuts by padded tensor bytes; the set reads back as the single file's tensors.
    @Test("convert --to gguf --max-shard-size writes a set that reads back as the single file")
    func sizeSplitRoundTrip() throws {
        let dir = try Fixtures.tempDir("split-size")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r1 = try billa("convert", Fixtures.path("tiny-hf-st"), "-o", dir + "/one.gguf", "--to", "gguf", "--quiet")
        let r2 = try billa("convert", Fixtures.path("tiny-hf-st"), "-o", dir + "/set.gguf", "--to", "gguf", "--max-shard-size", "100KB", "--quiet")
        #expect(r1.status == 0 && r2.status == 0, "\(r1.stderr)\(r2.stderr)")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("set-") }.sorted()
        #expect(files.count >= 3, "\(files)")
        let one = try Release.open(dir + "/one.gguf").tensors.map(\.tensor)
        let set = try Release.open(dir + "/" + (files.last ?? "")).tensors.map(\.tensor)
        #expect(one.map(\.name).sorted() == set.map(\.name).sorted())
        for t in one {
            guard let u = set.first(where: { $0.name == t.name }) else { continue }
            let (x, y) = (try t.withBytes { Array($0) }, try u.withBytes { Array($0) })
            #expect(x == y, "\(t.name)")
        }
        for f in files {
            let g = try GGUFReader.open(dir + "/" + f)
            let data = g.tensors.reduce(0) { $0 + ($1.byteCount + 31) / 32 * 32 }
            #expect(data <= 100_000 || g.tensors.count == 1, "\(f): \(data) bytes of tensors")
        }
    }
}

@Suite("tensor accounting")
struct TensorAccountingTests {
    /// tiny-hf-st with a Qwen2-style bias added to its first shard by billa's own safetensors writer (and the index).
    static func withExtraTensor() throws -> String {
        let d = try copyFixture("tiny-hf-st", tag: "extra")
        let shard = d + "/model-00001-of-00002.safetensors"
        let f = try SafetensorsReader.open(shard)
        var plans = f.tensors.map { TensorPlan(copying: $0) }
        let bias = [UInt8](repeating: 0x3C, count: 128)   // 64 f16 values
        plans.append(TensorPlan(name: "model.layers.0.self_attn.q_proj.bias", dtype: .f16, shape: [64], provenance: "test") { body in
            try bias.withUnsafeBytes { try body($0) }
        })
        try SafetensorsWriter.write(plans, metadata: ["format": "pt"], to: shard + ".new")
        try FileManager.default.removeItem(atPath: shard)
        try FileManager.default.moveItem(atPath: shard + ".new", toPath: shard)
        let indexPath = d + "/model.safetensors.index.json"
        var index = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: indexPath))) as? [String: Any])
        var map = try #require(index["weight_map"] as? [String: String])
        map["model.layers.0.self_attn.q_proj.bias"] = "model-00001-of-00002.safetensors"
        index["weight_map"] = map
        try JSONSerialization.data(withJSONObject: index).write(to: URL(fileURLWithPath: indexPath))
        return d
    }

    /// Fails on the code before: verify of two models that both carry a tensor the forward pass ignores said PASS.
    @Test("verify refuses a model with a tensor the forward pass does not use, unless told to ignore it")
    func verifyRefuses() throws {
        let d = try Self.withExtraTensor()
        defer { try? FileManager.default.removeItem(atPath: (d as NSString).deletingLastPathComponent) }
        let r = try billa("verify", d, d)
        #expect(r.status == 2 && r.stderr.contains("model.layers.0.self_attn.q_proj.bias") && !r.stdout.contains("PASS"), "\(r.stdout)\(r.stderr)")
        let r2 = try billa("verify", d, Fixtures.path("tiny-hf-st"))
        #expect(r2.status == 2 && r2.stderr.contains("q_proj.bias"), "\(r2.stdout)\(r2.stderr)")
        let ok = try billa("verify", d, Fixtures.path("tiny-hf-st"), "--drop-tensor", "q_proj\\.bias$")
        #expect(ok.status == 0 && ok.stderr.contains("ignored model.layers.0.self_attn.q_proj.bias (128 B"), "\(ok.stdout)\(ok.stderr)")
    }

    /// Each consumer refuses by name; with --drop-tensor / --drop-unknown it writes and lists the drop on stderr
    /// (the options fail on the code before, which had none).
    @Test("convert (meta, gguf), quantize and pack --quantize refuse the extra tensor by name; the option drops it, listed")
    func convertersRefuse() throws {
        let d = try Self.withExtraTensor()
        let tmp = (d as NSString).deletingLastPathComponent
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let runs: [[String]] = [
            ["convert", d, "-o", tmp + "/meta", "--to", "meta"],
            ["convert", d, "-o", tmp + "/x.gguf", "--to", "gguf"],
            ["quantize", d, "-o", tmp + "/q.gguf", "--type", "q8_0"],
            ["pack", d, "-o", tmp + "/q.billa", "--quantize", "q8_0"],
        ]
        for args in runs {
            let r = try CLITests().billa(args, stdin: nil)
            #expect(r.status == 2 && r.stderr.contains("model.layers.0.self_attn.q_proj.bias") && r.stderr.contains("--drop-tensor"),
                    "\(args): \(r.stderr)")
            let out = args[3]
            #expect(!FileManager.default.fileExists(atPath: out), "\(args): wrote \(out)")
            let ok = try CLITests().billa(args + ["--drop-unknown", "--quiet"], stdin: nil)
            #expect(ok.status == 0 && ok.stderr.contains("dropped model.layers.0.self_attn.q_proj.bias (128 B, 128 bytes)"), "\(args): \(ok.stderr)")
        }
        // Meta -> HF: an extra tensor in a consolidated file
        let meta = try copyFixture("tiny-meta", tag: "extra-meta")
        defer { try? FileManager.default.removeItem(atPath: (meta as NSString).deletingLastPathComponent) }
        for k in 0..<2 {
            let p = meta + String(format: "/consolidated.%02d.pth", k)
            let f = try FormatSniffer.openTensorFile(p)
            var plans = f.tensors.map { TensorPlan(copying: $0) }
            let extra = [UInt8](repeating: 0, count: 64)
            plans.append(TensorPlan(name: "layers.0.attention.wq.bias", dtype: .f16, shape: [32], provenance: "test") { body in
                try extra.withUnsafeBytes { try body($0) }
            })
            try TorchWriter.write(plans, to: p + ".new", archiveName: TorchWriter.archiveName(for: p))
            try FileManager.default.removeItem(atPath: p)
            try FileManager.default.moveItem(atPath: p + ".new", toPath: p)
        }
        let r = try billa("convert", meta, "-o", tmp + "/hf", "--to", "hf")
        #expect(r.status == 2 && r.stderr.contains("layers.0.attention.wq.bias"), "\(r.stderr)")
        let ok = try billa("convert", meta, "-o", tmp + "/hf", "--to", "hf", "--drop-tensor", "wq\\.bias", "--quiet")
        #expect(ok.status == 0 && ok.stderr.contains("dropped layers.0.attention.wq.bias (128 B"), "\(ok.stderr)")
    }

    @Test("rotary_emb.inv_freq and rope.freqs are dropped with a note, not refused")
    func knownBuffers() throws {
        #expect(TensorAccounting.isKnownBuffer("model.layers.3.self_attn.rotary_emb.inv_freq"))
        #expect(TensorAccounting.isKnownBuffer("rope.freqs"))
        let o = try TensorAccounting.account([("model.layers.0.self_attn.rotary_emb.inv_freq", 32, "a"), ("x", 4, "a")],
                                             consumed: { $0 == "x" }, policy: DropPolicy(), what: "w", bufferNote: "recomputed")
        #expect(o.skipped == ["model.layers.0.self_attn.rotary_emb.inv_freq"] && o.dropped.isEmpty && o.notes.count == 1)
    }
}
