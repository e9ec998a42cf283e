/// sentencepiece's BPE (bpe_model.cc): start from characters (user-defined pieces matched longest-first and frozen),
/// repeatedly merge the adjacent pair whose concatenation is the highest-scoring piece, leftmost on ties, and split
/// merged UNUSED pieces back into their parts. The merge runs over the whole normalized text, not per word.
struct BPESymbol {
    var start: Int32
    var length: Int32   // 0 once merged into its left neighbour
    var prev: Int32
    var next: Int32
    var freeze: Bool
}

struct BPEPair {
    var score: Float
    var left: Int32
    var right: Int32
    var size: Int32
}

extension Tokenizer {
    func bpeSegment(_ norm: UnsafeBufferPointer<UInt8>, _ scratch: inout Scratch,
                    _ out: inout [(start: Int32, end: Int32, id: Int32)]) {
        guard let base = norm.baseAddress else { return }
        let n = norm.count
        var symbols = scratch.symbols
        var heap = scratch.heap
        symbols.removeAll(keepingCapacity: true)
        heap.removeAll(keepingCapacity: true)
        defer { scratch.symbols = symbols; scratch.heap = heap }

        var pos = 0
        while pos < n {
            var len = min(n - pos, UTF8Length.of(base[pos]))
            var freeze = false
            if let userDefined, let m = userDefined.longestMatch(base + pos, n - pos) {
                len = m
                freeze = true
            }
            let index = Int32(symbols.count)
            symbols.append(BPESymbol(start: Int32(pos), length: Int32(len), prev: index - 1,
                                     next: pos + len >= n ? -1 : index + 1, freeze: freeze))
            pos += len
        }
        if symbols.isEmpty { return }

        var revMerge: [[UInt8]: ([UInt8], [UInt8])] = [:]
        let unusedOn = hasUnused

        func better(_ a: BPEPair, _ b: BPEPair) -> Bool {
            a.score > b.score || (a.score == b.score && a.left < b.left)
        }
        func push(_ p: BPEPair) {
            heap.append(p)
            var i = heap.count - 1
            while i > 0 {
                let parent = (i - 1) / 2
                if better(heap[i], heap[parent]) { heap.swapAt(i, parent); i = parent } else { break }
            }
        }
        func pop() -> BPEPair {
            let top = heap[0]
            let last = heap.removeLast()
            if !heap.isEmpty {
                heap[0] = last
                var i = 0
                let c = heap.count
                while true {
                    let l = 2 * i + 1, r = l + 1
                    var m = i
                    if l < c, better(heap[l], heap[m]) { m = l }
                    if r < c, better(heap[r], heap[m]) { m = r }
                    if m == i { break }
                    heap.swapAt(i, m)
                    i = m
                }
            }
            return top
        }
        func maybeAdd(_ left: Int32, _ right: Int32) {
            if left == -1 || right == -1 { return }
            let l = symbols[Int(left)], r = symbols[Int(right)]
            if l.freeze || r.freeze { return }
            let size = Int(l.length + r.length)
            guard let id = normal.lookup(base + Int(l.start), size) else { return }
            push(BPEPair(score: scores[Int(id)], left: left, right: right, size: Int32(size)))
            if unusedOn, types[Int(id)] == .unused {
                let s = Int(l.start)
                revMerge[Array(norm[s..<(s + size)])] = (Array(norm[s..<(s + Int(l.length))]),
                                                         Array(norm[(s + Int(l.length))..<(s + size)]))
            }
        }

        for i in 1..<symbols.count { maybeAdd(Int32(i - 1), Int32(i)) }

        while !heap.isEmpty {
            let top = pop()
            let li = Int(top.left), ri = Int(top.right)
            let ll = symbols[li].length, rl = symbols[ri].length
            if ll == 0 || rl == 0 || ll + rl != top.size { continue }
            symbols[li].length = ll + rl
            let rnext = symbols[ri].next
            symbols[li].next = rnext
            if rnext >= 0 { symbols[Int(rnext)].prev = top.left }
            symbols[ri].length = 0
            maybeAdd(symbols[li].prev, top.left)
            maybeAdd(top.left, symbols[li].next)
        }

        var index: Int32 = 0
        while index != -1 {
            let s = symbols[Int(index)]
            let start = Int(s.start), len = Int(s.length)
            let id = pieceID(base + start, len)
            if unusedOn, types[Int(id)] == .unused {
                resegment(Array(norm[start..<(start + len)]), at: start, revMerge, &out)
            } else {
                out.append((Int32(start), Int32(start + len), id))
            }
            index = s.next
        }
    }

    private func resegment(_ w: [UInt8], at start: Int, _ revMerge: [[UInt8]: ([UInt8], [UInt8])],
                           _ out: inout [(start: Int32, end: Int32, id: Int32)]) {
        let id = w.withUnsafeBufferPointer { b in b.baseAddress.map { pieceID($0, b.count) } ?? Int32(unkID) }
        guard types[Int(id)] == .unused, let (l, r) = revMerge[w] else {
            out.append((Int32(start), Int32(start + w.count), id))
            return
        }
        resegment(l, at: start, revMerge, &out)
        resegment(r, at: start + l.count, revMerge, &out)
    }
}
