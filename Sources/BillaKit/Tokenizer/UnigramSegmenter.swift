/// sentencepiece's unigram segmentation as the pinned release runs it (unigram_model.cc: PopulateNodes + Lattice::
/// Viterbi): one lattice node per piece starting at each character, user-defined pieces scored
/// `chars * max_score - 0.1`, an unknown character `min_score - 10`; each node keeps the first best predecessor in
/// float arithmetic. Ties are common (equal piece scores), so the float sums and the first-wins order matter: the
/// "optimized" encoder of newer sources breaks them differently and does not reproduce 0.2.3's ids.
struct UnigramNode {
    var begin: Int32
    var end: Int32
    var id: Int32
    var score: Float
    var backtrace: Float = 0
    var prev: Int32 = -1
    var nextEnding: Int32 = -1   // next node with the same end, in insertion order
}

extension Tokenizer {
    func unigramSegment(_ norm: UnsafeBufferPointer<UInt8>, _ scratch: inout Scratch,
                        _ out: inout [(start: Int32, end: Int32, id: Int32)]) {
        guard let base = norm.baseAddress else { return }
        let size = norm.count
        var nodes = scratch.best
        nodes.removeAll(keepingCapacity: true)
        defer { scratch.best = nodes }
        var endHead = [Int32](repeating: -1, count: size + 1)
        var endTail = [Int32](repeating: -1, count: size + 1)
        func add(_ node: UnigramNode) {
            let k = Int32(nodes.count)
            nodes.append(node)
            let e = Int(node.end)
            if endTail[e] >= 0 { nodes[Int(endTail[e])].nextEnding = k } else { endHead[e] = k }
            endTail[e] = k
        }
        // BOS ends at 0.
        add(UnigramNode(begin: -1, end: 0, id: -1, score: 0))
        let unkScore: Float = minScore - 10.0
        var pos = 0
        while pos < size {
            let mblen = min(UTF8Length.of(base[pos]), size - pos)
            var hasSingle = false
            var length = 1
            while length <= min(maxPieceBytes, size - pos) {
                defer { length += 1 }
                guard let id32 = normal.lookup(base + pos, length) else {
                    if let prefixes, prefixes.lookup(base + pos, length) == nil { break }   // no piece goes on from here
                    continue
                }
                defer { if let prefixes, prefixes.lookup(base + pos, length) == nil { length = Int.max - 1 } }
                let id = Int(id32)
                if types[id] == .unused { continue }
                var score = scores[id]
                if types[id] == .userDefined {
                    var chars = 0
                    var i = pos
                    while i < pos + length { i += UTF8Length.of(base[i]); chars += 1 }
                    score = Float(Double(Float(chars) * maxScore) - 0.1)
                }
                add(UnigramNode(begin: Int32(pos), end: Int32(pos + length), id: id32, score: score))
                if length == mblen { hasSingle = true }
            }
            if !hasSingle {
                add(UnigramNode(begin: Int32(pos), end: Int32(pos + mblen), id: Int32(unkID), score: unkScore))
            }
            pos += mblen
        }
        // Viterbi: nodes are stored by begin, so every predecessor is final before its successors are visited.
        var eosPrev: Int32 = -1
        for k in 1..<nodes.count {
            var bestScore: Float = 0
            var best: Int32 = -1
            var l = endHead[Int(nodes[k].begin)]
            let s = nodes[k].score
            while l >= 0 {
                let candidate = nodes[Int(l)].backtrace + s
                if best < 0 || candidate > bestScore { best = l; bestScore = candidate }
                l = nodes[Int(l)].nextEnding
            }
            nodes[k].prev = best
            nodes[k].backtrace = bestScore
        }
        do {
            var bestScore: Float = 0
            var l = endHead[size]
            while l >= 0 {
                let candidate = nodes[Int(l)].backtrace + 0
                if eosPrev < 0 || candidate > bestScore { eosPrev = l; bestScore = candidate }
                l = nodes[Int(l)].nextEnding
            }
        }
        let first = out.count
        var k = eosPrev
        while k > 0 {
            let n = nodes[Int(k)]
            out.append((n.begin, n.end, n.id))
            k = n.prev
        }
        out[first...].reverse()
    }
}
