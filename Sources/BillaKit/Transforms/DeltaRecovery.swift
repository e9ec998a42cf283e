import Foundation

/// FastChat's delta releases (lm-sys/FastChat fastchat/model/apply_delta.py): target = base + delta, both loaded as
/// fp16, added in place (`param.data += delta`), so each value is fp16(fp32(base) + fp32(delta)). A delta whose
/// embedding or head has more rows than the base's (Vicuna v0's 32001 tokens) keeps its extra rows as they are.
/// The output mirrors the delta directory: same shard names and format, its config and tokenizer.
public enum DeltaRecovery {
    public static func plan(base: String, delta: String, output: String) throws -> OutputPlan {
        let b = try Release.open(base)
        let d = try Release.open(delta)
        guard d.layout == .huggingFace, b.layout == .huggingFace else {
            throw BillaError(.invalidArgument, file: d.layout == .huggingFace ? base : delta,
                             "apply_delta works on Hugging Face directories",
                             remedy: "convert a Meta base first: billa convert LLAMA -o LLAMA-hf --to hf")
        }
        var baseTensors = [String: Tensor]()
        for (_, t) in b.tensors { baseTensors[t.name] = t }
        var files = [PlannedFile]()
        for f in d.files {
            let plans = try f.tensors.map { t -> TensorPlan in
                guard let bt = baseTensors[t.name] else {
                    throw BillaError(.notFound, file: base, tensor: t.name, "the delta has this tensor but the base does not",
                                     remedy: "use the base model the delta was made from (e.g. LLaMA-7B in HF format for vicuna-7b-delta)")
                }
                return try sum(RowSource(bt), RowSource(t), name: t.name, file: f.path).plan(named: t.name)
            }
            let name = (f.path as NSString).lastPathComponent
            files.append(PlannedFile(name: name, content: f.format == .safetensors ? .safetensors(plans, metadata: f.metadata) : .torch(plans)))
        }
        let weights = Set(d.files.map { ($0.path as NSString).lastPathComponent })
        files += Resharder.companions(d, skip: { weights.contains($0) })
        return OutputPlan(destination: output, files: files,
                          notes: ["target = fp16(fp32(base) + fp32(delta)); rows of the delta beyond the base's are kept"])
    }

    static func sum(_ base: RowSource, _ delta: RowSource, name: String, file: String) throws -> RowSource {
        guard base.shape.count == delta.shape.count, Array(base.shape.dropFirst()) == Array(delta.shape.dropFirst()),
              base.rows <= delta.rows, DTypeCast.supports(base.dtype), DTypeCast.supports(delta.dtype) else {
            throw BillaError(.shapeMismatch, file: file, tensor: name,
                             "the delta is \(Shape.describe(delta.shape)) \(delta.dtype.rawValue) but the base is \(Shape.describe(base.shape)) \(base.dtype.rawValue)",
                             remedy: "use the base model the delta was made from (same size; the delta may only add vocabulary rows)")
        }
        let n = base.rows
        let width = delta.rowElements
        let (bd, dd) = (base.dtype, delta.dtype)
        return RowSource(dtype: .f16, shape: delta.shape, provenance: "f16(\(base.provenance) + \(delta.provenance))", fill: { r, dst in
            let a = UnsafeMutableRawPointer.allocate(byteCount: max(1, r.count * delta.rowBytes), alignment: 64)
            defer { a.deallocate() }
            try delta.fill(r, a)
            let hi = min(r.upperBound, n)
            let b = UnsafeMutableRawPointer.allocate(byteCount: max(1, max(0, hi - r.lowerBound) * base.rowBytes), alignment: 64)
            defer { b.deallocate() }
            if r.lowerBound < hi { try base.fill(r.lowerBound..<hi, b) }
            let sums = UnsafeMutablePointer<Float>.allocate(capacity: max(1, r.count * width))
            defer { sums.deallocate() }
            for row in r {
                let k = row - r.lowerBound
                for c in 0..<width {
                    let i = k * width + c
                    // Both sides are fp16 first (from_pretrained(torch_dtype=float16)), then added in fp32 and rounded.
                    var v = Float(Float16(DTypeCast.load(a, dd, i)))
                    if row < n { v += Float(Float16(DTypeCast.load(b, bd, i))) }
                    sums[i] = v
                }
            }
            // The one checked narrowing: a sum beyond f16's range would silently become inf.
            let o = DTypeCast.narrowF32(sums, count: r.count * width, to: dst, .f16, clamp: false, nan: .torch)
            if o.count > 0 {
                var e = Narrowing.overflowError(o, tensor: name, file: file, from: .f32, to: .f16)
                e.remedy = "base + delta does not fit fp16: the delta is not for this base model; use the base it was made from"
                throw e
            }
        }, release: { r in
            delta.release(r)
            let hi = min(r.upperBound, n)
            if r.lowerBound < hi { base.release(r.lowerBound..<hi) }
        })
    }
}
