/// sentencepiece's unigram segmentation as the pinned release runs it (unigram_model.cc: PopulateNodes + Lattice::
/// Viterbi): one lattice node per piece starting at each character, user-defined pieces scored
/// `chars * max_score - 0.1`, an unknown character `min_score - 10`; each node keeps the first best predecessor in
/// float arithmetic. Ties are common (equal piece scores), so the float sums and the first-wins order matter: the
/// "optimized" encoder of newer sources breaks them differently and does not reproduce 0.2.3's ids.
struct UnigramNode {
    var begin: Int32
    var end: Int32
    var id: Int32
    var backtrace: Float
    var prev: Int32
    var nextEnding: Int32   // next node with the same end, in insertion order
}

/// The lattice being built. Nodes are added in order of their start, so every node ending where a new one begins
/// is final: Viterbi's best predecessor is chosen as the node is added, in the same order and with the same float
/// sums as the reference's separate pass.
struct UnigramLattice {
    var nodes: UnsafeMutablePointer<UnigramNode>
    var capacity: Int
    var count = 0
    let endHead: UnsafeMutablePointer<Int32>
    let endTail: UnsafeMutablePointer<Int32>

    init(_ work: SegmentBuffers, size: Int) {
        nodes = work.nodes.reserve(2 * size + 2)
        capacity = work.nodes.capacity
        endHead = work.endHead.reserve(size + 1)
        endTail = work.endTail.reserve(size + 1)
        endHead.update(repeating: -1, count: size + 1)
        endTail.update(repeating: -1, count: size + 1)
        nodes[0] = UnigramNode(begin: -1, end: 0, id: -1, backtrace: 0, prev: -1, nextEnding: -1)   // BOS
        endHead[0] = 0
        endTail[0] = 0
        count = 1
    }

    /// The first predecessor ending at `position` with the highest `backtrace + score` (node -1: none).
    @inline(__always)
    func best(endingAt position: Int, plus score: Float) -> (node: Int32, score: Float) {
        var best: Int32 = -1
        var bestScore: Float = 0
        var l = endHead[position]
        while l >= 0 {
            let candidate = nodes[Int(l)].backtrace + score
            if best < 0 || candidate > bestScore { best = l; bestScore = candidate }
            l = nodes[Int(l)].nextEnding
        }
        return (best, bestScore)
    }

    @inline(__always)
    mutating func add(begin: Int, end: Int, id: Int32, score: Float, _ work: SegmentBuffers) {
        if count == capacity {
            nodes = work.nodes.reserve(2 * capacity, keeping: count)
            capacity = work.nodes.capacity
        }
        let (prev, backtrace) = best(endingAt: begin, plus: score)
        let k = Int32(count)
        nodes[count] = UnigramNode(begin: Int32(begin), end: Int32(end), id: id, backtrace: backtrace, prev: prev,
                                   nextEnding: -1)
        count += 1
        if endTail[end] >= 0 { nodes[Int(endTail[end])].nextEnding = k } else { endHead[end] = k }
        endTail[end] = k
    }
}

extension Tokenizer {
    func unigramSegment(_ norm: UnsafeBufferPointer<UInt8>, _ work: SegmentBuffers,
                        _ out: inout [(start: Int32, end: Int32, id: Int32)]) {
        guard let text = norm.baseAddress else { return }
        let size = norm.count
        var lattice = UnigramLattice(work, size: size)
        let unkScore: Float = minScore - 10.0
        var pos = 0
        while pos < size {
            let mblen = min(UTF8Length.of(text[pos]), size - pos)
            var hasSingle = false
            var node = PieceTrie.root
            var end = pos
            // every piece starting here, shortest first
            while end < size {
                let len = min(UTF8Length.of(text[end]), size - end)
                guard let step = trie.step(node, PieceTrie.code(text + end, len)) else { break }
                end += len
                node = step.child
                if step.piece >= 0 {
                    lattice.add(begin: pos, end: end, id: step.piece, score: latticeScores[Int(step.piece)], work)
                    if end - pos == mblen { hasSingle = true }
                }
                if node < 0 { break }   // no piece is longer
            }
            if !hasSingle {
                lattice.add(begin: pos, end: pos + mblen, id: Int32(unkID), score: unkScore, work)
            }
            pos += mblen
        }
        let first = out.count
        var k = lattice.best(endingAt: size, plus: 0).node   // EOS
        while k > 0 {
            let n = lattice.nodes[Int(k)]
            out.append((n.begin, n.end, n.id))
            k = n.prev
        }
        out[first...].reverse()
    }
}
