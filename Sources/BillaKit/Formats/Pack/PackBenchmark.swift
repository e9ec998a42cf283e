import Foundation

/// Measurements for scripts/bench/pack: synthetic N(0, 0.02) weights of LLaMA-7B shapes, per-core encode and
/// decode throughput of the chunk codec, and one-tensor read time. Speed lives here and in the script, never in
/// unit tests.
public enum PackBenchmark {
    /// One LLaMA-7B decoder layer (name, shape), the unit the benchmark packs.
    public static let layerShapes: [(String, [Int])] = [
        ("self_attn.q_proj.weight", [4096, 4096]), ("self_attn.k_proj.weight", [4096, 4096]),
        ("self_attn.v_proj.weight", [4096, 4096]), ("self_attn.o_proj.weight", [4096, 4096]),
        ("mlp.gate_proj.weight", [11008, 4096]), ("mlp.up_proj.weight", [11008, 4096]),
        ("mlp.down_proj.weight", [4096, 11008]), ("input_layernorm.weight", [4096]), ("post_attention_layernorm.weight", [4096]),
    ]

    /// Deterministic N(0, 0.02) values in `dtype` (Box-Muller over SplitMix64); norms are ~1.0 like real ones.
    public static func synthetic(_ dtype: DType, count: Int, seed: UInt64, mean: Float = 0) -> [UInt8] {
        var state = seed
        func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        var out = [UInt8](repeating: 0, count: count * dtype.size)
        out.withUnsafeMutableBytes { buf in
            var i = 0
            while i < count {
                let u1 = Double(next() >> 11) / Double(1 << 53) + 1e-300, u2 = Double(next() >> 11) / Double(1 << 53)
                let r = (-2 * log(u1)).squareRoot()
                for v in [r * cos(2 * .pi * u2), r * sin(2 * .pi * u2)] where i < count {
                    let f = mean + Float(0.02 * v)
                    switch dtype {
                    case .f32: buf.storeBytes(of: f.bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self)
                    case .bf16:
                        // Round to nearest even, as torch's .to(bfloat16) does.
                        let b = f.bitPattern
                        let rounded = (b &+ 0x7FFF &+ ((b >> 16) & 1)) >> 16
                        buf.storeBytes(of: UInt16(rounded).littleEndian, toByteOffset: 2 * i, as: UInt16.self)
                    default: buf.storeBytes(of: Float16(f).bitPattern.littleEndian, toByteOffset: 2 * i, as: UInt16.self)
                    }
                    i += 1
                }
            }
        }
        return out
    }

    public struct CodecResult: Codable, Sendable {
        public var bytes: Int
        public var storedBytes: Int
        public var encodeSeconds: Double
        public var decodeSeconds: Double
        /// CPU time of the measuring thread: on a shared 2-core machine wall time also counts other people's work.
        public var encodeCPUSeconds: Double
        public var decodeCPUSeconds: Double
    }

    static func threadCPU() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Compresses then decodes `data` chunk by chunk on the calling thread only: per-core codec speed without I/O.
    public static func codecOneCore(_ data: [UInt8], dtype: DType, options: PackOptions) throws -> CodecResult {
        let chunk = options.chunkBytes / dtype.size * dtype.size
        let transform = PlaneTransform.preferred(for: dtype)
        var storedBytes = 0
        let t0 = Date(), c0 = threadCPU()
        try data.withUnsafeBytes { src in
            var at = 0
            while at < src.count {
                let end = min(src.count, at + chunk)
                let c = try PackWriter.compressChunk(UnsafeRawBufferPointer(rebasing: src[at..<end]), transform: transform,
                                                     elementSize: dtype.size, level: options.level)
                // Released as the writer does once a chunk is written: it holds at most two windows of chunks, so
                // keeping all of them here would time page faults on fresh memory, not the codec.
                storedBytes += c.count
                c.release()
                at = end
            }
        }
        let encode = Date().timeIntervalSince(t0), encodeCPU = threadCPU() - c0
        // Decode through the reader's path: lay the chunks out as a pack would and decode from a map.
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("billa-bench-\(getpid()).billa").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let plan = TensorPlan(name: "t", dtype: dtype, shape: [data.count / dtype.size], provenance: "bench") { body in
            try data.withUnsafeBytes { try body($0) }
        }
        var o = options
        o.window = 1
        try PackWriter.write([PackInput(plan: plan, group: 0)], blobs: [], metadata: benchMetadata, options: o, to: path)
        let pack = try PackReader.open(path)
        guard case .packed(let packed) = pack.tensors[0].layout else {
            throw BillaError(.invalidArgument, "the benchmark tensor was stored raw", remedy: "")
        }
        let records = try packed.index()
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 64)
        defer { buffer.deallocate() }
        let t1 = Date(), c1 = threadCPU()
        for i in 0..<records.count { try packed.decodeChunk(i, records, into: buffer) }
        let decode = Date().timeIntervalSince(t1), decodeCPU = threadCPU() - c1
        return CodecResult(bytes: data.count, storedBytes: storedBytes, encodeSeconds: encode, decodeSeconds: decode,
                           encodeCPUSeconds: encodeCPU, decodeCPUSeconds: decodeCPU)
    }

    static let benchMetadata = PackMetadata(billaVersion: BillaVersion.string, source: .init(layout: "file", name: "synthetic", files: []),
                                            groups: [.init(name: "synthetic", format: "synthetic", safetensorsMetadata: nil)],
                                            model: nil, vocab: nil, compression: .init(raw: false))

    /// Writes `layers` synthetic LLaMA-7B layers of `dtype` as safetensors (the input for `billa pack` and zstd).
    /// Every layer reuses one set of tensors so memory stays at one layer.
    public static func writeLayers(_ dtype: DType, layers: Int, to path: String) throws {
        var plans = [TensorPlan]()
        let data = layerShapes.enumerated().map { i, s in
            synthetic(dtype, count: s.1.reduce(1, *), seed: UInt64(i + 1), mean: s.1.count == 1 ? 1 : 0)
        }
        for l in 0..<layers {
            for (i, s) in layerShapes.enumerated() {
                let d = data[i]
                plans.append(TensorPlan(name: "model.layers.\(l).\(s.0)", dtype: dtype, shape: s.1, provenance: "synthetic") { body in
                    try d.withUnsafeBytes { try body($0) }
                })
            }
        }
        try SafetensorsWriter.write(plans, metadata: ["format": "pt"], to: path)
    }

    /// Seconds to open a pack and decode one tensor, best of `repeats`.
    public static func oneTensorSeconds(_ path: String, tensor: String, repeats: Int = 5) throws -> Double {
        var best = Double.infinity
        for _ in 0..<repeats {
            let t0 = Date()
            let pack = try PackReader.open(path)
            guard let t = pack.tensors.first(where: { $0.name == tensor }) else {
                throw BillaError(.notFound, file: path, tensor: tensor, "no such tensor", remedy: "")
            }
            try t.withBytes { _ in }
            best = min(best, Date().timeIntervalSince(t0))
        }
        return best
    }
}

#if canImport(Glibc)
import Glibc
#endif
