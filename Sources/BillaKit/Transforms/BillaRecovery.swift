import CKernels
import Foundation

/// BiLLa's release scheme (Neutralzz/BiLLa embedding_convert.py): rows [0, n) of the released
/// `model.embed_tokens.weight` hold trained + LLaMA's `tok_embeddings`, n being LLaMA's vocabulary. Decrypting
/// computes fp32(released) - fp32(LLaMA) on those rows and casts the whole embedding to fp16 (round to nearest
/// even); encrypting adds instead and keeps fp32, exactly as that script does. Only the embedding of the LLaMA
/// file is read, and only the shard holding the embedding is rewritten.
public enum BillaRecovery {
    public static let embeddingName = "model.embed_tokens.weight"
    /// embedding_convert.py's EMBED_SUM: the fp32 sum of BiLLa-7B-SFT's recovered embedding.
    public static let billa7BSFTSum = -3756.942626953125
    public static let billa7BSFTShape = [46943, 4096]

    public struct Options: Sendable {
        public var release: String
        public var llama: String
        public var output: String?
        public var inPlace = false
        public var encrypt = false
        public var expectSum: Double? = nil
        public init(release: String, llama: String) { self.release = release; self.llama = llama }
    }

    /// The plan plus the running sum its execution fills in.
    public struct Job: Sendable {
        public let plan: OutputPlan
        public let shard: String
        public let rows: Int
        public let changedRows: Int
        public let expectedSum: Double?
        public let sum: SumBox
    }

    /// Accumulates the recovered values in double as the writer streams them.
    public final class SumBox: @unchecked Sendable {
        public private(set) var value = 0.0
        public private(set) var count = 0
        private let lock = NSLock()
        func add(_ v: Double, _ n: Int) { lock.lock(); value += v; count += n; lock.unlock() }
    }

    /// Finds LLaMA's embedding in consolidated.00.pth (or a Meta dir), an HF dir, or a single file.
    public static func llamaEmbedding(_ path: String) throws -> RowSource {
        let release = try Release.open(path)
        switch release.layout {
        case .meta:
            guard let m = try MetaMerge.merged(release).first(where: { $0.name == "tok_embeddings.weight" }) else { break }
            return m.source
        default:
            for (_, t) in release.tensors where t.name == "tok_embeddings.weight" || t.name == embeddingName {
                return RowSource(t)
            }
        }
        throw BillaError(.notFound, file: path, tensor: "tok_embeddings.weight", "LLaMA's token embedding is not in this file",
                         remedy: "pass LLaMA-7B's consolidated.00.pth (tok_embeddings.weight) or an HF LLaMA directory (model.embed_tokens.weight)")
    }

    public static func plan(_ o: Options) throws -> Job {
        let release = try Release.open(o.release)
        guard release.layout == .huggingFace else {
            throw BillaError(.invalidArgument, file: o.release, "the BiLLa release is a Hugging Face directory (config.json + pytorch_model-*.bin)",
                             remedy: "pass the directory you downloaded from the BiLLa release")
        }
        guard let (shard, released) = release.tensors.first(where: { $0.tensor.name == embeddingName }) else {
            throw BillaError(.notFound, file: o.release, tensor: embeddingName, "no shard holds the embedding",
                             remedy: "download every shard of the release (the embedding is in the last one)")
        }
        let llama = try llamaEmbedding(o.llama)
        guard released.shape.count == 2, llama.shape.count == 2, released.shape[1] == llama.shape[1] else {
            throw BillaError(.shapeMismatch, file: o.llama, tensor: "tok_embeddings.weight",
                             "LLaMA's embedding is \(Shape.describe(llama.shape)) but the release's is \(Shape.describe(released.shape)): the widths differ",
                             remedy: "use the LLaMA model of the same size as the release (LLaMA-7B for BiLLa-7B)")
        }
        guard released.dtype.isFloatingPoint, DTypeCast.supports(released.dtype), DTypeCast.supports(llama.dtype) else {
            throw BillaError(.unsupported, file: shard.path, tensor: embeddingName, "the embedding is \(released.dtype.rawValue)",
                             remedy: "only f32, f16 and bf16 embeddings can be recovered")
        }
        let n = llama.rows
        guard n <= released.shape[0] else {
            throw BillaError(.shapeMismatch, file: o.llama, tensor: "tok_embeddings.weight",
                             "LLaMA's vocabulary (\(n) rows) is larger than the release's (\(released.shape[0]) rows)",
                             remedy: "the arguments may be swapped: --release is the BiLLa directory, --llama the original LLaMA weights")
        }
        let sum = SumBox()
        let source = recovered(RowSource(released), llama: llama, encrypt: o.encrypt, sum: sum)
        let shardName = (shard.path as NSString).lastPathComponent
        let tensors = shard.tensors.map { t in t.name == embeddingName ? source.plan(named: t.name) : RowSource(t).plan(named: t.name) }
        let content: PlannedFile.Content = shard.format == .safetensors
            ? .safetensors(tensors, metadata: shard.metadata) : .torch(tensors)
        var expected = o.expectSum
        if expected == nil, !o.encrypt, released.shape == billa7BSFTShape,
           o.release.lowercased().contains("billa-7b-sft") { expected = billa7BSFTSum }

        if o.inPlace {
            // A second in-place run would subtract LLaMA again and ruin the embedding; the first run's backup says
            // it happened.
            let names = (try? FileManager.default.contentsOfDirectory(atPath: release.path)) ?? []
            if let previous = names.sorted().last(where: { $0.hasPrefix(shardName + ".backup-") }) {
                throw BillaError(.invalidArgument, file: shard.path, tensor: embeddingName,
                                 "this shard was already rewritten in place (its backup \(previous) is beside it); running again would \(o.encrypt ? "add" : "subtract") LLaMA a second time",
                                 remedy: "the shard is already recovered; to redo it, first move the backup back: mv \(previous) \(shardName)")
            }
        }
        var files = [PlannedFile(name: shardName, content: content)]
        // What the output's tensors occupy, for the index's total_size (releases are not consistent about it).
        let outputBytes = release.tensors.reduce(0) { $0 + $1.tensor.byteCount } - released.byteCount + source.byteCount
        if !o.inPlace {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: release.path)) ?? []
            for name in names.sorted() where name != shardName && !name.hasPrefix(".") && !name.contains(".backup-") {
                var isDir: ObjCBool = false
                let p = release.path + "/" + name
                guard FileManager.default.fileExists(atPath: p, isDirectory: &isDir), !isDir.boolValue else { continue }
                // Decrypting an fp32 release writes fp16: the index's total_size follows (BiLLa's script leaves it).
                if name.hasSuffix(".index.json"),
                   let text = try? VocabResize.replacingInteger("total_size", in: p, with: { _ in outputBytes }) {
                    files.append(PlannedFile(name: name, content: .text(text)))
                } else {
                    files.append(PlannedFile(name: name, content: .link(from: p)))
                }
            }
        }
        let dest = o.inPlace ? release.path : (o.output ?? "")
        var notes = ["\(o.encrypt ? "encrypt" : "decrypt"): rows [0, \(n)) of \(embeddingName) \(o.encrypt ? "+" : "-") LLaMA's tok_embeddings in fp32, "
                     + (o.encrypt ? "kept fp32" : "then fp16 (round to nearest even)")]
        if let expected { notes.append("expected sum \(expected)") }
        return Job(plan: OutputPlan(destination: dest, files: files, notes: notes), shard: shard.path, rows: released.shape[0],
                   changedRows: n, expectedSum: expected, sum: sum)
    }

    /// Recovers rows `r` into `dst`; returns their sum in double.
    static func recoverRows(_ r: Range<Int>, released: RowSource, llama: RowSource, encrypt: Bool,
                            into dst: UnsafeMutableRawPointer) throws -> Double {
        let width = released.shape[1], n = llama.rows
        guard r.count * width > 0 else { return 0 }
        // Blocks of rows small enough to stay in L2 between the widening, the arithmetic and the narrowing, and to
        // stay below MemoryPolicy's large-block threshold (a fresh mapping per block would cost page faults).
        let blockRows = max(1, (64 << 10) / width)
        let a = UnsafeMutablePointer<Float>.allocate(capacity: blockRows * width)
        defer { a.deallocate() }
        let b = UnsafeMutablePointer<Float>.allocate(capacity: blockRows * width)
        defer { b.deallocate() }
        let outSize = encrypt ? 4 : 2
        var total = 0.0
        var lo = r.lowerBound
        while lo < r.upperBound {
            let block = lo..<min(r.upperBound, lo + blockRows)
            let count = block.count * width
            try widenRows(released, block, into: a)
            let changedEnd = min(block.upperBound, n)
            let changed = max(0, changedEnd - block.lowerBound) * width
            if changed > 0 {
                try widenRows(llama, block.lowerBound..<changedEnd, into: b)
                if encrypt { for i in 0..<changed { a[i] += b[i] } } else { for i in 0..<changed { a[i] -= b[i] } }
            }
            total += bk_sum_f64(a, Int64(count))
            let out = dst + (block.lowerBound - r.lowerBound) * width * outSize
            if encrypt {
                out.copyMemory(from: a, byteCount: count * 4)
            } else {
                // Checked in the same pass: a recovered value beyond f16's range means the wrong LLaMA copy.
                let o = DTypeCast.narrowF32(a, count: count, to: out, .f16, clamp: false, nan: .torch)
                if o.count > 0 {
                    var e = Narrowing.overflowError(o, tensor: "tok_embeddings.weight", file: nil, from: .f32, to: .f16)
                    e.remedy = "the recovered embedding does not fit fp16, as BiLLa's embedding_convert.py would write it; check --llama is the original LLaMA (its sum is compared with --expect-sum), or recover with --encrypt's fp32"
                    throw e
                }
            }
            lo = block.upperBound
        }
        return total
    }

    /// Rows `r` of `src` as f32, read straight from the mapping when they sit there (no staging copy).
    static func widenRows(_ src: RowSource, _ r: Range<Int>, into dst: UnsafeMutablePointer<Float>) throws {
        let count = r.count * src.rowElements
        if let d = try src.direct(r), let base = d.baseAddress {
            DTypeCast.widen(base, src.dtype, count: count, into: dst)
            return
        }
        let raw = UnsafeMutableRawPointer.allocate(byteCount: r.count * src.rowBytes, alignment: 64)
        defer { raw.deallocate() }
        try src.fill(r, raw)
        DTypeCast.widen(raw, src.dtype, count: count, into: dst)
    }

    /// The recovered embedding as a view; its fill adds every recovered fp32 value to `sum`.
    static func recovered(_ released: RowSource, llama: RowSource, encrypt: Bool, sum: SumBox) -> RowSource {
        let width = released.shape[1]
        let n = llama.rows
        let target: DType = encrypt ? .f32 : .f16
        return RowSource(dtype: target, shape: released.shape,
                         provenance: "\(encrypt ? "f32" : "f16")(f32(\(released.provenance)) \(encrypt ? "+" : "-") f32(\(llama.provenance)) on rows [0, \(n)))",
                         fill: { r, dst in
                             // Two halves on two cores; the partial sums are added in a fixed order.
                             let mid = r.lowerBound + r.count / 2
                             let parts = [r.lowerBound..<mid, mid..<r.upperBound]
                             var totals = [0.0, 0.0]
                             try totals.withUnsafeMutableBufferPointer { t in
                                 try Parallel.forEach(2) { k in
                                     t[k] = try recoverRows(parts[k], released: released, llama: llama, encrypt: encrypt,
                                                            into: dst + (parts[k].lowerBound - r.lowerBound) * width * target.size)
                                 }
                             }
                             sum.add(totals[0] + totals[1], r.count * width)
                         },
                         release: { r in
                             released.release(r)
                             let lo = min(r.upperBound, n)
                             if r.lowerBound < lo { llama.release(r.lowerBound..<lo) }
                         })
    }
}
