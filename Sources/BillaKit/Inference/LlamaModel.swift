import CKernels
import Foundation

/// Keys and values of every position seen so far, per layer, so generation costs one token's work per step.
public final class KVCache: @unchecked Sendable {
    let kvDim: Int
    public let capacity: Int
    public private(set) var length = 0
    private let keys: [UnsafeMutablePointer<Float>]
    private let values: [UnsafeMutablePointer<Float>]

    public init(for weights: LlamaWeights, capacity: Int) {
        let p = weights.parameters
        kvDim = p.nKVHeads * p.headDim
        self.capacity = capacity
        keys = (0..<p.nLayers).map { _ in .allocate(capacity: max(1, capacity * p.nKVHeads * p.headDim)) }
        values = (0..<p.nLayers).map { _ in .allocate(capacity: max(1, capacity * p.nKVHeads * p.headDim)) }
    }

    deinit {
        keys.forEach { $0.deallocate() }
        values.forEach { $0.deallocate() }
    }

    func key(_ layer: Int, _ pos: Int) -> UnsafeMutablePointer<Float> { keys[layer] + pos * kvDim }
    func value(_ layer: Int, _ pos: Int) -> UnsafeMutablePointer<Float> { values[layer] + pos * kvDim }
    func advance(_ n: Int) { length += n }
    public func reset() { length = 0 }
}

/// LLaMA's forward pass on the CPU, in f32 activations over weights of any type the kernels read, written to
/// match transformers' LlamaForCausalLM step for step (RMSNorm as x·rsqrt(mean(x²)+eps)·w, rotary angles in f32,
/// grouped-query attention, SwiGLU, the config's rotary scaling) so its logits can be held to transformers' own.
public final class LlamaModel: @unchecked Sendable {
    public let weights: LlamaWeights
    /// The rotary frequencies and cos/sin multiplier (yarn's attention factor) of every call, except under dynamic
    /// NTK scaling, whose frequencies follow the sequence length (`RopeFrequencies.compute`).
    let rope: (invFreq: [Float], attention: Float)

    public init(_ weights: LlamaWeights) {
        self.weights = weights
        rope = RopeFrequencies.compute(weights.parameters, seqLen: 0)
    }

    public var vocabSize: Int { weights.vocabSize }

    /// Runs `tokens` at the cache's next positions and returns logits, `vocab` floats per token, for every token
    /// (`allLogits`) or only the last. `observer` sees every product's input and the residual stream (imatrix, trace).
    public func forward(_ tokens: [Int], cache: KVCache, allLogits: Bool = true, observer: ForwardObserver? = nil) throws -> [Float] {
        let p = weights.parameters
        let T = tokens.count
        guard T > 0 else { return [] }
        let pos0 = cache.length
        guard pos0 + T <= cache.capacity else {
            throw BillaError(.invalidArgument, "the prompt and generation need \(pos0 + T) positions but the cache holds \(cache.capacity)",
                             remedy: "use a shorter prompt or fewer new tokens")
        }
        for t in tokens where t < 0 || t >= weights.vocabSize {
            throw BillaError(.invalidArgument, tensor: weights.embedding.name, "token id \(t) is outside the embedding's \(weights.vocabSize) rows",
                             remedy: "the tokenizer does not belong to this model; pair the weights with the tokenizer they were trained with")
        }
        let dim = p.dim, hd = p.headDim, kvDim = p.nKVHeads * hd, ffn = p.ffnDim ?? 0, eps = Float(p.normEps)
        var x = [Float](repeating: 0, count: T * dim)
        var xb = [Float](repeating: 0, count: T * dim)
        var q = [Float](repeating: 0, count: T * dim)
        var k = [Float](repeating: 0, count: T * kvDim)
        var v = [Float](repeating: 0, count: T * kvDim)
        var att = [Float](repeating: 0, count: T * dim)
        var h1 = [Float](repeating: 0, count: T * ffn)
        var h3 = [Float](repeating: 0, count: T * ffn)
        // transformers' dynamic NTK recomputes the frequencies for max(position) + 1 on every call.
        let rope = p.ropeScaling?.type == .dynamic ? RopeFrequencies.compute(p, seqLen: pos0 + T) : self.rope
        x.withUnsafeMutableBufferPointer { xp in
            for (t, id) in tokens.enumerated() { weights.embedding.row(id, into: xp.baseAddress! + t * dim) }
        }
        for (l, layer) in weights.layers.enumerated() {
            rmsNorm(x, layer.attnNorm, eps: eps, tokens: T, dim: dim, into: &xb)
            if let observer { for m in [layer.wq, layer.wk, layer.wv] { watch(observer, m, l, xb, T) } }
            mul(layer.wq, xb, T, into: &q)
            mul(layer.wk, xb, T, into: &k)
            mul(layer.wv, xb, T, into: &v)
            if let b = layer.bq { addBias(&q, b, tokens: T) }
            if let b = layer.bk { addBias(&k, b, tokens: T) }
            if let b = layer.bv { addBias(&v, b, tokens: T) }
            rotate(&q, heads: p.nHeads, tokens: T, pos0: pos0, rope: rope)
            rotate(&k, heads: p.nKVHeads, tokens: T, pos0: pos0, rope: rope)
            for t in 0..<T {
                k.withUnsafeBufferPointer { cache.key(l, pos0 + t).update(from: $0.baseAddress! + t * kvDim, count: kvDim) }
                v.withUnsafeBufferPointer { cache.value(l, pos0 + t).update(from: $0.baseAddress! + t * kvDim, count: kvDim) }
            }
            attention(q, layer: l, cache: cache, tokens: T, pos0: pos0, window: p.window(layer: l), into: &att)
            if let observer { watch(observer, layer.wo, l, att, T) }
            mul(layer.wo, att, T, into: &xb)
            for i in 0..<(T * dim) { x[i] += xb[i] }
            if let observer { x.withUnsafeBufferPointer { observer.residual(layer: l, after: .attention, $0.baseAddress!, tokens: T, dim: dim) } }
            rmsNorm(x, layer.ffnNorm, eps: eps, tokens: T, dim: dim, into: &xb)
            if let observer { for m in [layer.w1, layer.w3] { watch(observer, m, l, xb, T) } }
            mul(layer.w1, xb, T, into: &h1)
            mul(layer.w3, xb, T, into: &h3)
            for i in 0..<(T * ffn) {
                let g = h1[i]
                h1[i] = g / (1 + Foundation.exp(-g)) * h3[i]   // SiLU(gate) · up
            }
            if let observer { watch(observer, layer.w2, l, h1, T) }
            mul(layer.w2, h1, T, into: &xb)
            for i in 0..<(T * dim) { x[i] += xb[i] }
            if let observer { x.withUnsafeBufferPointer { observer.residual(layer: l, after: .mlp, $0.baseAddress!, tokens: T, dim: dim) } }
        }
        cache.advance(T)
        let first = allLogits ? 0 : T - 1
        let n = T - first
        var last = [Float](repeating: 0, count: n * dim)
        let tail = Array(x[(first * dim)...])
        rmsNorm(tail, weights.finalNorm, eps: eps, tokens: n, dim: dim, into: &last)
        var logits = [Float](repeating: 0, count: n * weights.vocabSize)
        if let observer { watch(observer, weights.output, nil, last, n) }
        mul(weights.output, last, n, into: &logits)
        return logits
    }

    private func watch(_ observer: ForwardObserver, _ w: WeightMatrix, _ layer: Int?, _ x: [Float], _ tokens: Int) {
        x.withUnsafeBufferPointer { observer.matmulInput(name: w.name, layer: layer, $0.baseAddress!, tokens: tokens, cols: w.cols) }
    }

    private func mul(_ w: WeightMatrix, _ x: [Float], _ tokens: Int, into y: inout [Float]) {
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in
                w.multiply(xp.baseAddress!, ldx: w.cols, tokens: tokens, into: yp.baseAddress!, ldy: w.rows)
            }
        }
    }

    /// nn.Linear's bias, added to every token's product in f32.
    private func addBias(_ y: inout [Float], _ b: [Float], tokens: Int) {
        let n = b.count
        for t in 0..<tokens { for i in 0..<n { y[t * n + i] += b[i] } }
    }

    private func rmsNorm(_ x: [Float], _ w: [Float], eps: Float, tokens: Int, dim: Int, into out: inout [Float]) {
        for t in 0..<tokens {
            var ss: Float = 0
            for i in 0..<dim { ss += x[t * dim + i] * x[t * dim + i] }
            let inv = 1 / (ss / Float(dim) + eps).squareRoot()
            for i in 0..<dim { out[t * dim + i] = w[i] * (x[t * dim + i] * inv) }
        }
    }

    /// Rotary embedding of every head of every token, pairing dimensions the way the file's layout does.
    private func rotate(_ a: inout [Float], heads: Int, tokens: Int, pos0: Int, rope: (invFreq: [Float], attention: Float)) {
        let hd = weights.parameters.headDim, half = hd / 2
        let interleaved = weights.rope == .interleaved
        for t in 0..<tokens {
            let pos = Float(pos0 + t)
            for i in 0..<half {
                let angle = pos * rope.invFreq[i]
                let c = Foundation.cos(angle) * rope.attention, s = Foundation.sin(angle) * rope.attention
                for h in 0..<heads {
                    let base = t * heads * hd + h * hd
                    let (ia, ib) = interleaved ? (base + 2 * i, base + 2 * i + 1) : (base + i, base + i + half)
                    let x0 = a[ia], x1 = a[ib]
                    a[ia] = x0 * c - x1 * s
                    a[ib] = x1 * c + x0 * s
                }
            }
        }
    }

    /// Causal grouped-query attention of the new tokens over every cached position, heads spread over the cores.
    /// With a sliding `window` a query at position i sees positions j with i - j < window (transformers'
    /// sliding_window_overlay: kv_idx > q_idx - sliding_window), so it attends to `window` positions at most.
    private func attention(_ q: [Float], layer: Int, cache: KVCache, tokens: Int, pos0: Int, window: Int?, into out: inout [Float]) {
        let p = weights.parameters
        let hd = p.headDim, heads = p.nHeads, group = p.nHeads / p.nKVHeads
        let scale = 1 / Float(hd).squareRoot()
        let total = pos0 + tokens
        q.withUnsafeBufferPointer { qp in
            out.withUnsafeMutableBufferPointer { op in
                nonisolated(unsafe) let qb = qp.baseAddress!, ob = op.baseAddress!
                let jobs = tokens * heads
                let threads = jobs * total * hd >= 1 << 14 ? Parallel.cores : 1
                Parallel.forEachHot(threads) { th in
                    let scores = UnsafeMutablePointer<Float>.allocate(capacity: total)
                    defer { scores.deallocate() }
                    var job = th
                    while job < jobs {
                        let t = job / heads, h = job % heads
                        let kvh = h / group
                        let qv = qb + t * heads * hd + h * hd
                        let n = pos0 + t + 1
                        let j0 = window.map { max(0, n - $0) } ?? 0
                        var mx = -Float.infinity
                        for j in j0..<n {
                            let s = bk_dot_f32(qv, cache.key(layer, j) + kvh * hd, Int64(hd)) * scale
                            scores[j] = s
                            mx = max(mx, s)
                        }
                        var sum: Float = 0
                        for j in j0..<n { scores[j] = Foundation.exp(scores[j] - mx); sum += scores[j] }
                        let o = ob + t * heads * hd + h * hd
                        o.update(repeating: 0, count: hd)
                        for j in j0..<n {
                            let w = scores[j] / sum
                            let vv = cache.value(layer, j) + kvh * hd
                            for d in 0..<hd { o[d] += w * vv[d] }
                        }
                        job += threads
                    }
                }
            }
        }
    }
}
