import Foundation

/// `billa vocab resize`: make a Hugging Face model's embedding and head as tall as its (new) tokenizer, the step
/// between `vocab merge` and training. Existing rows are kept bit for bit; new rows are the mean of the existing ones
/// (so new tokens start as an "average" token rather than noise) or zero. Only the shards holding the two tensors
/// are rewritten, streaming; the rest are hard-linked.
public enum VocabResize {
    public enum Initialisation: String, Sendable, CaseIterable { case mean, zero }

    public struct Options: Sendable {
        public var model: String
        public var tokenizer: String
        public var output: String
        public var initialisation: Initialisation
        public init(model: String, tokenizer: String, output: String, initialisation: Initialisation) {
            self.model = model
            self.tokenizer = tokenizer
            self.output = output
            self.initialisation = initialisation
        }
    }

    static let resized: Set<String> = ["model.embed_tokens.weight", "lm_head.weight"]

    public static func plan(_ o: Options) throws -> OutputPlan {
        let release = try Release.open(o.model)
        guard release.layout == .huggingFace else {
            throw BillaError(.unsupported, file: o.model, "vocab resize works on Hugging Face directories",
                             remedy: "convert a Meta release first: billa convert DIR -o HF --to hf")
        }
        let pieces = try SentencePieceModel.load(o.tokenizer).pieceCount
        var files = [PlannedFile]()
        var handled = Set<String>()
        var delta = 0
        var notes = [String]()
        for file in release.files where file.tensors.contains(where: { resized.contains($0.name) }) {
            let name = (file.path as NSString).lastPathComponent
            var plans = [TensorPlan]()
            for t in file.tensors {
                guard resized.contains(t.name) else { plans.append(RowSource(t).plan(named: t.name)); continue }
                guard t.shape.count == 2, DTypeCast.supports(t.dtype) else {
                    throw BillaError(.unsupported, file: file.path, tensor: t.name, "is \(t.dtype.rawValue) \(Shape.describe(t.shape))",
                                     remedy: "only 2-D f32, f16 and bf16 embeddings can be resized")
                }
                let src = try resize(RowSource(t), to: pieces, initialisation: o.initialisation)
                delta += (pieces - t.shape[0]) * t.shape[1] * t.dtype.size
                notes.append("\(t.name): \(t.shape[0]) -> \(pieces) rows" + (pieces > t.shape[0] ? " (new rows: \(o.initialisation.rawValue))" : " (rows past \(pieces) dropped)"))
                plans.append(src.plan(named: t.name))
            }
            files.append(PlannedFile(name: name, content: file.format == .safetensors ? .safetensors(plans, metadata: file.metadata) : .torch(plans)))
            handled.insert(name)
        }
        guard !handled.isEmpty else {
            throw BillaError(.notFound, file: o.model, tensor: "model.embed_tokens.weight", "no shard holds the embedding",
                             remedy: "download every shard of the model")
        }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: release.path)) ?? []
        for name in names.sorted() where !handled.contains(name) && !name.hasPrefix(".") {
            let p = release.path + "/" + name
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: p, isDirectory: &isDir), !isDir.boolValue else { continue }
            if name == "config.json" {
                files.append(PlannedFile(name: name, content: .text(try replacingInteger("vocab_size", in: p, with: { _ in pieces }))))
            } else if name.hasSuffix(".index.json") {
                files.append(PlannedFile(name: name, content: .text(try replacingInteger("total_size", in: p, with: { $0 + delta }))))
            } else if name == "tokenizer.model" {
                continue
            } else if name == "tokenizer.json" || name == "added_tokens.json" {
                // the fast tokenizer's own copy of the old vocabulary: transformers would read it before
                // tokenizer.model and tokenize with the old pieces
                notes.append("\(name) left out: it describes the old vocabulary (transformers rebuilds it from tokenizer.model)")
                continue
            } else {
                files.append(PlannedFile(name: name, content: .link(from: p)))
            }
        }
        files.append(PlannedFile(name: "tokenizer.model", content: .link(from: o.tokenizer)))
        return OutputPlan(destination: o.output, files: files, notes: notes)
    }

    /// The first min(rows, n) rows of `src`, then the new rows.
    static func resize(_ src: RowSource, to n: Int, initialisation: Initialisation) throws -> RowSource {
        let keep = min(src.rows, n)
        guard n > src.rows else { return src.rowSlice(0, keep) }
        var row = [UInt8](repeating: 0, count: src.rowBytes)
        if initialisation == .mean { row = try meanRow(src) }
        let extra = n - src.rows
        let fillRow = row
        let added = RowSource(dtype: src.dtype, shape: [extra, src.shape[1]], provenance: "\(initialisation.rawValue) row × \(extra)",
                              fill: { r, dst in
                                  fillRow.withUnsafeBytes { b in
                                      for i in 0..<r.count { (dst + i * b.count).copyMemory(from: b.baseAddress!, byteCount: b.count) }
                                  }
                              })
        return try RowSource.concatRows([src.rowSlice(0, keep), added])
    }

    /// The mean of every row, accumulated in double, rounded to the tensor's dtype (nearest even).
    static func meanRow(_ src: RowSource) throws -> [UInt8] {
        let width = src.shape[1]
        var sum = [Double](repeating: 0, count: width)
        let step = max(1, (8 << 20) / max(1, src.rowBytes))
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: step * src.rowBytes, alignment: 64)
        defer { buffer.deallocate() }
        let wide = UnsafeMutablePointer<Float>.allocate(capacity: step * width)
        defer { wide.deallocate() }
        var lo = 0
        while lo < src.rows {
            let r = lo..<min(src.rows, lo + step)
            try src.fill(r, buffer)
            DTypeCast.widen(buffer, src.dtype, count: r.count * width, into: wide)
            for i in 0..<r.count { for c in 0..<width { sum[c] += Double(wide[i * width + c]) } }
            src.release(r)
            lo = r.upperBound
        }
        var mean = sum.map { Float($0 / Double(max(1, src.rows))) }
        var out = [UInt8](repeating: 0, count: src.rowBytes)
        // A mean lies within the values' range, so this narrowing cannot overflow; it is checked all the same.
        let o = mean.withUnsafeMutableBytes { m in out.withUnsafeMutableBytes { DTypeCast.convert(m.baseAddress!, from: .f32, to: $0.baseAddress!, src.dtype, count: width) } }
        if o.count > 0 { throw Narrowing.overflowError(o, tensor: "mean row", file: nil, from: .f32, to: src.dtype) }
        return out
    }

    /// The file's text with the first `"key": <integer>` replaced, everything else byte for byte as it was.
    static func replacingInteger(_ key: String, in path: String, with f: (Int) -> Int) throws -> String {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw BillaError(.io, file: path, "cannot read: \(error.localizedDescription)", remedy: "check the file")
        }
        guard let re = try? NSRegularExpression(pattern: "\"\(key)\"\\s*:\\s*(-?\\d+)"),
              let m = re.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)),
              let r = Range(m.range(at: 1), in: text), let v = Int(text[r]) else {
            throw BillaError(.invalidHeader, file: path, "has no integer \"\(key)\"", remedy: "the file is not a Hugging Face config or index; download it again")
        }
        return text.replacingCharacters(in: r, with: String(f(v)))
    }
}
