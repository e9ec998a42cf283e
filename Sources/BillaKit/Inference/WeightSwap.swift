/// The tensors `verify --trace` exchanges between two models to find which one makes a block diverge, by the
/// short names GGUF gives them (the same whatever layout either file uses). `token_embd` feeds every block; the
/// other nine belong to one block.
public enum SwapTensor: String, CaseIterable, Sendable, Codable {
    case tokenEmbd = "token_embd"
    case attnNorm = "attn_norm", attnQ = "attn_q", attnK = "attn_k", attnV = "attn_v", attnOutput = "attn_output"
    case ffnNorm = "ffn_norm", ffnGate = "ffn_gate", ffnUp = "ffn_up", ffnDown = "ffn_down"

    /// The tensors of a block whose swap can change its residual after `stage`: after the attention addition only
    /// the attention's own five can (the MLP comes later); after the MLP all nine.
    static func ofBlock(upTo stage: BlockStage) -> [SwapTensor] {
        let attention: [SwapTensor] = [.attnNorm, .attnQ, .attnK, .attnV, .attnOutput]
        return stage == .attention ? attention : attention + [.ffnNorm, .ffnGate, .ffnUp, .ffnDown]
    }
}

/// One tensor of the reference put in place of the candidate's: `layer` is nil for `token_embd`.
public struct WeightSwap: Hashable, Sendable {
    public let layer: Int?
    public let tensor: SwapTensor
    public init(layer: Int?, _ tensor: SwapTensor) { self.layer = layer; self.tensor = tensor }
}

extension LlamaWeights {
    /// The candidate (`self`) with the reference's tensors in place of its own where `swaps` says, and only its
    /// first `keepLayers` blocks (a trace that looks at block L need not run the blocks after it). Matrices are
    /// the reference's own, in its own element type and mapping, not copies: the forward pass multiplies any type.
    /// The one exception is attn_q / attn_k between files of different rotary layouts (Meta or GGUF against
    /// Hugging Face), whose rows are put in the candidate's order, one tensor copied.
    func swapping(_ swaps: some Collection<WeightSwap>, from ref: LlamaWeights, keepLayers: Int? = nil) throws -> LlamaWeights {
        let n = min(keepLayers ?? parameters.nLayers, parameters.nLayers)
        var layers = Array(self.layers.prefix(n))
        var embedding = self.embedding
        for s in swaps {
            guard let l = s.layer else {
                if s.tensor == .tokenEmbd { embedding = ref.embedding }
                continue
            }
            guard l < n else { continue }
            layers[l] = try layers[l].replacing(s.tensor, from: ref.layers[l], refRope: ref.rope, rope: rope, headDim: parameters.headDim)
        }
        var p = parameters
        p.nLayers = n
        return LlamaWeights(parameters: p, rope: rope, vocabSize: vocabSize, embedding: embedding, layers: layers,
                            finalNorm: finalNorm, output: output, matrixDTypes: matrixDTypes, ignored: ignored)
    }

    /// Every stored property given, for `swapping` (an initializer in an extension may set a struct's lets only
    /// when it sets them all).
    private init(parameters: ModelParameters, rope: RopeLayout, vocabSize: Int, embedding: WeightMatrix, layers: [LlamaLayerWeights],
                 finalNorm: [Float], output: WeightMatrix, matrixDTypes: Set<DType>, ignored: [String]) {
        self.parameters = parameters
        self.rope = rope
        self.vocabSize = vocabSize
        self.embedding = embedding
        self.layers = layers
        self.finalNorm = finalNorm
        self.output = output
        self.matrixDTypes = matrixDTypes
        self.ignored = ignored
    }
}

extension LlamaLayerWeights {
    /// This block with `tensor` taken from `ref`'s block, q/k rows reordered when the two rotary layouts differ.
    func replacing(_ tensor: SwapTensor, from ref: LlamaLayerWeights, refRope: RopeLayout, rope: RopeLayout, headDim: Int) throws -> LlamaLayerWeights {
        var (an, fn, wq, wk, wv, wo, w1, w2, w3) = (attnNorm, ffnNorm, self.wq, self.wk, self.wv, self.wo, self.w1, self.w2, self.w3)
        switch tensor {
        case .tokenEmbd: break
        case .attnNorm: an = ref.attnNorm
        case .ffnNorm: fn = ref.ffnNorm
        case .attnQ: wq = try ref.wq.inRotaryLayout(rope, from: refRope, headDim: headDim)
        case .attnK: wk = try ref.wk.inRotaryLayout(rope, from: refRope, headDim: headDim)
        case .attnV: wv = ref.wv
        case .attnOutput: wo = ref.wo
        case .ffnGate: w1 = ref.w1
        case .ffnUp: w3 = ref.w3
        case .ffnDown: w2 = ref.w2
        }
        return LlamaLayerWeights(attnNorm: an, ffnNorm: fn, wq: wq, wk: wk, wv: wv, wo: wo, w1: w1, w2: w2, w3: w3)
    }
}

extension WeightMatrix {
    /// This q or k matrix with its rows in `layout` (it is in `source`): within each head of `headDim` rows,
    /// interleaved row 2i + j is halves row j·headDim/2 + i (j = 0, 1), the permutation
    /// convert_llama_weights_to_hf.py applies. Unchanged (not copied) when the layouts agree; otherwise the rows'
    /// bytes are copied once into memory of its own, whatever their type, since whole rows move.
    func inRotaryLayout(_ layout: RopeLayout, from source: RopeLayout, headDim: Int) throws -> WeightMatrix {
        if layout == source { return self }
        guard let kernel = pieces.first?.kernel, pieces.allSatisfy({ $0.colStart == 0 && $0.cols == cols && $0.kernel == kernel }),
              rows % headDim == 0, headDim % 2 == 0 else {
            throw BillaError(.unsupported, tensor: name, "its rows cannot be put in the \(layout.rawValue) rotary order (pieces of several types or split by columns)",
                             remedy: "convert the reference to the candidate's format first (billa convert), then trace again")
        }
        let rowBytes = pieces[0].rowBytes, half = headDim / 2
        var bytes = [UInt8](repeating: 0, count: rows * rowBytes)
        bytes.withUnsafeMutableBytes { dst in
            for r in 0..<rows {
                let h = r / headDim, k = r % headDim
                // the source row that holds target row r's values
                let s = h * headDim + (layout == .halves ? 2 * (k % half) + k / half : (k % 2) * half + k / 2)
                let p = pieces.first { s >= $0.rowStart && s < $0.rowStart + $0.rows }!
                (dst.baseAddress! + r * rowBytes).copyMemory(from: p.base + (s - p.rowStart) * p.rowBytes, byteCount: rowBytes)
            }
        }
        let owned = bytes.withUnsafeBytes { OwnedBytes(copying: $0) }
        let piece = Piece(rowStart: 0, colStart: 0, rows: rows, cols: cols, kernel: kernel, base: UnsafeRawPointer(owned.pointer), rowBytes: rowBytes)
        return WeightMatrix(name: name, rows: rows, cols: cols, dtype: dtype, pieces: [piece], owners: owners + [owned])
    }
}
