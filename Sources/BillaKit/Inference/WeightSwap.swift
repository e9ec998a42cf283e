/// The tensors `verify --trace` exchanges between two models to find which one makes a block diverge, by the
/// short names GGUF gives them (the same whatever layout either file uses). `token_embd` feeds every block,
/// `output_norm` and `output` come after the last; the other nine belong to one block.
public enum SwapTensor: String, CaseIterable, Sendable, Codable {
    case tokenEmbd = "token_embd"
    case attnNorm = "attn_norm", attnQ = "attn_q", attnK = "attn_k", attnV = "attn_v", attnOutput = "attn_output"
    case ffnNorm = "ffn_norm", ffnGate = "ffn_gate", ffnUp = "ffn_up", ffnDown = "ffn_down"
    case outputNorm = "output_norm", output

    /// token_embd, output_norm and output belong to no layer.
    var perLayer: Bool { self != .tokenEmbd && self != .outputNorm && self != .output }

    /// The tensors of a block whose swap can change its residual after `stage`: after the attention addition only
    /// the attention's own five can (the MLP comes later); after the MLP all nine.
    static func ofBlock(upTo stage: BlockStage) -> [SwapTensor] {
        let attention: [SwapTensor] = [.attnNorm, .attnQ, .attnK, .attnV, .attnOutput]
        return stage == .attention ? attention : attention + [.ffnNorm, .ffnGate, .ffnUp, .ffnDown]
    }
}

/// One tensor of the reference put in place of the candidate's: `layer` is nil for the tensors of no layer.
public struct WeightSwap: Hashable, Sendable {
    public let layer: Int?
    public let tensor: SwapTensor
    public init(layer: Int?, _ tensor: SwapTensor) { self.layer = layer; self.tensor = tensor }
}

extension LlamaWeights {
    /// The candidate (`self`) with the reference's tensors in place of its own where `swaps` says, and only its
    /// first `keepLayers` blocks (a trace that looks at block L need not run the blocks after it). Matrices are
    /// the reference's own, in its own element type and mapping, not copies: the forward pass multiplies any type.
    /// attn_q / attn_k between files of different rotary layouts (Meta or GGUF against Hugging Face) are views of
    /// the reference's rows in the candidate's order (`inRotaryLayout`).
    func swapping(_ swaps: some Collection<WeightSwap>, from ref: LlamaWeights, keepLayers: Int? = nil) throws -> LlamaWeights {
        let n = min(keepLayers ?? parameters.nLayers, parameters.nLayers)
        var layers = Array(self.layers.prefix(n))
        var (embedding, finalNorm, output) = (self.embedding, self.finalNorm, self.output)
        for s in swaps {
            guard let l = s.layer else {
                switch s.tensor {
                case .tokenEmbd: embedding = ref.embedding
                case .outputNorm: finalNorm = ref.finalNorm
                case .output: output = ref.output
                default: break
                }
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
        case .tokenEmbd, .outputNorm, .output: break
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
        var out = LlamaLayerWeights(attnNorm: an, ffnNorm: fn, wq: wq, wk: wk, wv: wv, wo: wo, w1: w1, w2: w2, w3: w3)
        (out.bq, out.bk, out.bv) = (bq, bk, bv)   // biases stay the candidate's: no rotary layout billa reads permutes them
        return out
    }
}

extension WeightMatrix {
    /// This q or k matrix with its rows in `layout` (it is in `source`): within each head of `headDim` rows,
    /// interleaved row 2i + j is halves row j·headDim/2 + i (j = 0, 1), the permutation
    /// convert_llama_weights_to_hf.py applies. Nothing is copied: the result's pieces point at this matrix's rows.
    /// Into halves, each half of a head is one piece whose rows are every other source row (twice the stride);
    /// into interleaved, consecutive rows alternate between the halves, so each row is a piece of its own.
    func inRotaryLayout(_ layout: RopeLayout, from source: RopeLayout, headDim: Int) throws -> WeightMatrix {
        if layout == source { return self }
        guard pieces.allSatisfy({ $0.colStart == 0 && $0.cols == cols }), headDim % 2 == 0, rows % headDim == 0 else {
            throw BillaError(.unsupported, tensor: name, "its rows cannot be put in the \(layout.rawValue) rotary order (its pieces split columns, or its rows are not whole heads)",
                             remedy: "convert the reference to the candidate's format first (billa convert), then trace again")
        }
        let half = headDim / 2
        // runs of target rows whose source rows are evenly spaced: (target start, count, source start, source step)
        var runs = [(Int, Int, Int, Int)]()
        for h in stride(from: 0, to: rows, by: headDim) {
            if layout == .halves {
                runs += [(h, half, h, 2), (h + half, half, h + 1, 2)]
            } else {
                for k in 0..<headDim { runs.append((h + k, 1, h + (k % 2) * half + k / 2, 1)) }
            }
        }
        var out = [Piece]()
        for (target, count, start, step) in runs {
            // a Meta shard boundary inside a run splits it into single rows
            let contained = pieces.first { start >= $0.rowStart && start + (count - 1) * step < $0.rowStart + $0.rows }
            for (t, s, n) in contained != nil ? [(target, start, count)] : (0..<count).map({ (target + $0, start + $0 * step, 1) }) {
                let p = contained ?? pieces.first { s >= $0.rowStart && s < $0.rowStart + $0.rows }!
                out.append(Piece(rowStart: t, colStart: 0, rows: n, cols: cols, kernel: p.kernel,
                                 base: p.base + (s - p.rowStart) * p.rowBytes, rowBytes: n > 1 ? p.rowBytes * step : p.rowBytes))
            }
        }
        return WeightMatrix(name: name, rows: rows, cols: cols, dtype: dtype, pieces: out, owners: owners)
    }
}
