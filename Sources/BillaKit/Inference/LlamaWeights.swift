/// How a file orders the rows of wq and wk, which decides how rotary embeddings pair up dimensions. Meta's
/// checkpoints and GGUF rotate interleaved pairs (2i, 2i+1); Hugging Face files were permuted by
/// convert_llama_weights_to_hf.py to rotate halves (i, i + d/2). Running a file in its own layout is what lets the
/// verifier catch a conversion that permuted wrongly.
public enum RopeLayout: String, Sendable, Codable {
    case interleaved
    case halves
}

/// A layout's naming scheme (names from the one table, `TensorName.table`), and the rotary layout it implies.
public enum WeightNaming: String, Sendable {
    case meta, hf, gguf

    /// Meta's files rotate interleaved pairs; HF's halves; a GGUF as its architecture runs (llama: interleaved,
    /// qwen2: NEOX, i.e. halves).
    func rope(_ family: ModelFamily) -> RopeLayout { self == .hf ? .halves : self == .meta ? .interleaved : family.ggufRope }
    func name(_ role: TensorRole, layer: Int = 0) -> String { TensorName.of(role).name(in: self, layer: layer) ?? "" }
    var embedding: String { name(.tokenEmbedding) }
    var finalNorm: String { name(.outputNorm) }
    var output: String { name(.output) }

    /// Per-layer names: attention norm, q, k, v, o, ffn norm, gate (w1), down (w2), up (w3).
    static let layerRoles: [TensorRole] = [.attnNorm, .attnQ, .attnK, .attnV, .attnOutput, .ffnNorm, .ffnGate, .ffnDown, .ffnUp]
    func layer(_ i: Int) -> [String] { Self.layerRoles.map { name($0, layer: i) } }

    static func detect(_ names: Set<String>) -> WeightNaming? {
        if names.contains("token_embd.weight") { return .gguf }
        if names.contains("model.embed_tokens.weight") || names.contains("model.layers.0.self_attn.q_proj.weight") { return .hf }
        if names.contains("tok_embeddings.weight") || names.contains("layers.0.attention.wq.weight") { return .meta }
        return nil
    }
}

public struct LlamaLayerWeights: Sendable {
    let attnNorm: [Float], ffnNorm: [Float]
    let wq: WeightMatrix, wk: WeightMatrix, wv: WeightMatrix, wo: WeightMatrix
    let w1: WeightMatrix, w2: WeightMatrix, w3: WeightMatrix
    /// Qwen2's q/k/v biases, added after the products; nil for families without them.
    var bq: [Float]? = nil, bk: [Float]? = nil, bv: [Float]? = nil
}

/// Every weight of a LLaMA model, found in a release of any layout billa reads and left in place (mmap), with the
/// architecture and rotary layout needed to run it.
public struct LlamaWeights: Sendable {
    public let parameters: ModelParameters
    public let rope: RopeLayout
    public let vocabSize: Int
    let embedding: WeightMatrix
    let layers: [LlamaLayerWeights]
    let finalNorm: [Float]
    let output: WeightMatrix
    /// The element types of the matrices, for choosing pass/fail thresholds.
    public let matrixDTypes: Set<DType>
    /// Tensors the forward pass does not read that the user allowed to ignore, one line each with its size.
    public let ignored: [String]

    var matrices: [WeightMatrix] {
        [embedding, output] + layers.flatMap { [$0.wq, $0.wk, $0.wv, $0.wo, $0.w1, $0.w2, $0.w3] }
    }

    /// `unused`: when given, every tensor of the release must be one the forward pass reads (or a known buffer such
    /// as rope.freqs), else the model is refused by name unless the policy allows ignoring it: comparing two models
    /// that both carry (or both lost) a tensor the pass ignores would prove nothing about it. Conversions pass nil:
    /// they account for tensors themselves (`TensorAccounting`).
    public init(_ release: Release, unused: DropPolicy? = nil) throws {
        try self.init(release, unused: unused, shapesOnly: false)
    }

    /// Checks every matrix and norm of `release` against its architecture, as loading it would, without reading a
    /// matrix that is not already mapped (a compressed pack's tensors, strided views): conversions validate before
    /// they plan, and decoding a 13 GB pack whole for a shape check would hold it all in memory.
    public static func validateShapes(_ release: Release) throws {
        _ = try LlamaWeights(release, unused: nil, shapesOnly: true)
    }

    /// `shapesOnly`: matrices that would have to be copied get a placeholder instead; the value must never be used
    /// for arithmetic, so this initializer stays private and `validateShapes` drops it at once.
    private init(_ release: Release, unused: DropPolicy?, shapesOnly: Bool) throws {
        let all = release.tensors
        var byName = [String: [Tensor]]()
        for (_, t) in all { byName[t.name, default: []].append(t) }
        guard let naming = WeightNaming.detect(Set(byName.keys)) else {
            throw BillaError(.unsupported, file: release.path, "no LLaMA tensor names found (expected tok_embeddings / model.embed_tokens / token_embd)",
                             remedy: "point billa at a LLaMA-architecture model: a Meta or Hugging Face directory, a GGUF or a billa pack")
        }
        guard let p = release.parameters else {
            if let w = release.warnings.first(where: { $0.hasPrefix("general.architecture") }) {
                throw BillaError(.unsupported, file: release.path, w, remedy: "run the model with llama.cpp, or convert a model of a supported family")
            }
            throw BillaError(.invalidArgument, file: release.path, "the model's architecture (heads, kv heads, norm eps) is unknown for a bare weights file",
                             remedy: "pass the model directory that holds params.json or config.json, or a GGUF or billa pack (they carry it)")
        }
        let family = p.modelFamily
        guard p.nHeads > 0, p.dim % p.nHeads == 0, p.nKVHeads > 0, p.nHeads % p.nKVHeads == 0, p.headDim % 2 == 0 else {
            throw BillaError(.invalidHeader, file: release.path, "inconsistent architecture: dim \(p.dim), heads \(p.nHeads), kv heads \(p.nKVHeads)",
                             remedy: "fix params.json / config.json so dim is a multiple of heads and heads of kv heads")
        }
        let path = release.path
        var used = Set<String>()
        func pieces(_ name: String) throws -> [Tensor] {
            used.insert(name)
            guard let ts = byName[name], !ts.isEmpty else {
                throw BillaError(.notFound, file: path, tensor: name, "missing from the model",
                                 remedy: "the download is incomplete or not a LLaMA model; check it with billa inspect and billa checksum --check")
            }
            return ts
        }
        func matrix(_ name: String, rows: Int, cols: Int) throws -> WeightMatrix {
            try WeightMatrix.resolve(name, pieces(name), rows: rows, cols: cols, metaSplit: naming == .meta, release: path,
                                     shapesOnly: shapesOnly)
        }
        func vector(_ name: String, _ n: Int) throws -> [Float] {
            let t = try pieces(name)[0]
            let m = try WeightMatrix.resolve(name, [t], rows: 1, cols: n, metaSplit: false, release: path, vector: true)
            var out = [Float](repeating: 0, count: n)
            out.withUnsafeMutableBufferPointer { m.row(0, into: $0.baseAddress!) }
            return out
        }
        let kvDim = p.nKVHeads * p.headDim
        let vocab = try pieces(naming.embedding)[0].shape.first ?? 0
        // Meta shards split w1 by rows, so the whole width is the sum of the pieces' rows.
        let ffnDim = try pieces(naming.layer(0)[6]).prefix(naming == .meta ? Int.max : 1).reduce(0) { $0 + ($1.shape.first ?? 0) }
        var params = p
        params.ffnDim = ffnDim
        params.vocabSize = vocab
        self.parameters = params
        self.rope = naming.rope(family)
        self.vocabSize = vocab
        embedding = try matrix(naming.embedding, rows: vocab, cols: p.dim)
        var layers = [LlamaLayerWeights]()
        for i in 0..<p.nLayers {
            let n = naming.layer(i)
            var layer = LlamaLayerWeights(
                attnNorm: try vector(n[0], p.dim), ffnNorm: try vector(n[5], p.dim),
                wq: try matrix(n[1], rows: p.dim, cols: p.dim), wk: try matrix(n[2], rows: kvDim, cols: p.dim),
                wv: try matrix(n[3], rows: kvDim, cols: p.dim), wo: try matrix(n[4], rows: p.dim, cols: p.dim),
                w1: try matrix(n[6], rows: ffnDim, cols: p.dim), w2: try matrix(n[7], rows: p.dim, cols: ffnDim),
                w3: try matrix(n[8], rows: ffnDim, cols: p.dim))
            if family.has(.attnQBias) {
                layer.bq = try vector(naming.name(.attnQBias, layer: i), p.dim)
                layer.bk = try vector(naming.name(.attnKBias, layer: i), kvDim)
                layer.bv = try vector(naming.name(.attnVBias, layer: i), kvDim)
            }
            layers.append(layer)
        }
        self.layers = layers
        finalNorm = try vector(naming.finalNorm, p.dim)
        used.insert(naming.output)
        if byName[naming.output] != nil {
            output = try matrix(naming.output, rows: vocab, cols: p.dim)
        } else {
            output = embedding   // tied embeddings (tie_word_embeddings: true; GGUF without output.weight)
        }
        // GGUF's llama3 factors are read into the parameters (GGUFRope) and used by the rotary embedding.
        if naming == .gguf, byName[GGUFRope.freqsTensor] != nil { used.insert(GGUFRope.freqsTensor) }
        matrixDTypes = Set(([embedding, output] + layers.flatMap { [$0.wq, $0.wk, $0.wv, $0.wo, $0.w1, $0.w2, $0.w3] }).map(\.dtype))
        if let unused {
            let outcome = try TensorAccounting.account(release, consumed: used.contains, policy: unused,
                                                       what: "the LLaMA forward pass does not use it, so verify would not test it",
                                                       bufferNote: "recomputed from the config")
            ignored = outcome.dropped.map { $0.replacingOccurrences(of: "dropped ", with: "ignored ") }
        } else {
            ignored = []
        }
    }
}

extension WeightMatrix {
    /// What a shapes-only matrix points at instead of bytes it did not read.
    nonisolated(unsafe) static let shapesOnlyPlaceholder = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64)

    /// Builds the matrix from the tensors holding `name`: one tensor, or (Meta, several shards) the model-parallel
    /// pieces placed by `MetaShardRules`. Shapes are checked against the architecture so a wrong params.json or a
    /// mixed-up shard is an error naming the tensor, not garbage logits.
    static func resolve(_ name: String, _ tensors: [Tensor], rows: Int, cols: Int, metaSplit: Bool, release: String,
                        vector: Bool = false, shapesOnly: Bool = false) throws -> WeightMatrix {
        let axis: Int
        if tensors.count == 1 || !metaSplit {
            axis = -1
        } else {
            switch MetaShardRules.rule(for: name) {
            case .concat(let a)?: axis = a
            default: axis = -1
            }
        }
        let used = axis < 0 ? [tensors[0]] : tensors
        var pieces = [Piece]()
        var owners = [AnyObject]()
        var at = 0
        var dtype = used[0].dtype
        for t in used {
            guard let kernel = KernelType.of(t.dtype) else {
                throw BillaError(.unsupported, file: t.file.path, tensor: name, "the verifier cannot compute with \(t.dtype.rawValue) weights",
                                 remedy: "convert the model to f16, bf16, f32 or a llama.cpp quant type first")
            }
            let shape = vector ? [1, t.elementCount] : (t.shape.count == 2 ? t.shape : [])
            let (pr, pc) = shape.count == 2 ? (shape[0], shape[1]) : (-1, -1)
            let expected: (Int, Int) = axis == 0 ? (pr, cols) : axis == 1 ? (rows, pc) : (rows, cols)
            guard pr == expected.0, pc == expected.1, pr >= 0 else {
                throw BillaError(.shapeMismatch, file: t.file.path, tensor: name,
                                 "has shape \(Shape.describe(t.shape)) where the architecture needs \(axis < 0 ? "[\(rows), \(cols)]" : "a piece of [\(rows), \(cols)]")",
                                 remedy: "params.json / config.json does not describe these weights, or a shard is from another model; check with billa inspect")
            }
            guard let rowBytes = t.dtype.byteCount(elements: pc) else {
                throw BillaError(.shapeMismatch, file: t.file.path, tensor: name, "rows of \(pc) elements are not whole \(t.dtype.rawValue) blocks",
                                 remedy: "re-quantize the model with billa quantize")
            }
            let base: UnsafeRawPointer
            if case .dense(let offset) = t.layout {
                guard let b = try t.file.bytes(at: offset, count: t.byteCount, what: "tensor '\(name)'").baseAddress else {
                    throw BillaError(.outOfBounds, file: t.file.path, tensor: name, "has no bytes", remedy: "download the file again")
                }
                base = b
                owners.append(t.file)
            } else if shapesOnly {
                base = UnsafeRawPointer(WeightMatrix.shapesOnlyPlaceholder)   // never read: see LlamaWeights.validateShapes
            } else {
                let copy = try t.withBytes { OwnedBytes(copying: $0) }
                base = UnsafeRawPointer(copy.pointer)
                owners.append(copy)
            }
            let (rs, cs) = axis == 0 ? (at, 0) : axis == 1 ? (0, at) : (0, 0)
            at += axis == 0 ? pr : axis == 1 ? pc : 0
            pieces.append(Piece(rowStart: rs, colStart: cs, rows: pr, cols: pc, kernel: kernel, base: base, rowBytes: rowBytes))
            if t.dtype != dtype { dtype = t.dtype }
        }
        if axis >= 0, at != (axis == 0 ? rows : cols) {
            throw BillaError(.shapeMismatch, file: release, tensor: name,
                             "the shards' pieces add up to \(at) \(axis == 0 ? "rows" : "columns") where the architecture needs \(axis == 0 ? rows : cols)",
                             remedy: "a consolidated.NN.pth is missing or from another model; download the release again")
        }
        return WeightMatrix(name: name, rows: rows, cols: cols, dtype: dtype, pieces: pieces, owners: owners)
    }
}
