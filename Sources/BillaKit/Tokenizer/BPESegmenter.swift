/// sentencepiece's BPE (bpe_model.cc): start from characters (user-defined pieces matched longest-first and frozen),
/// repeatedly merge the adjacent pair whose concatenation is the highest-scoring piece, leftmost on ties, and split
/// merged UNUSED pieces back into their parts. The merge runs over the whole normalized text, not per word.
struct BPESymbol {
    var start: Int32
    var length: Int32   // 0 once merged into its left neighbour
    var prev: Int32
    var next: Int32
    var id: Int32       // the segmentable piece the symbol spells, or -1 (a character that is no piece)
    var freeze: Bool
}

/// A candidate merge. It is stale once either symbol has changed, which `size` detects: symbols only grow.
struct BPEPair {
    var score: Float
    var left: Int32
    var right: Int32
    var size: Int32
    var id: Int32
}

/// The candidate merges, best first: highest score, then leftmost (SymbolPairComparator). Only valid pairs are
/// ever merged and no two valid pairs compare equal, so the heap's own tie order cannot change the result.
struct PairHeap {
    let base: UnsafeMutablePointer<BPEPair>
    var count = 0

    @inline(__always)
    static func better(_ a: BPEPair, _ b: BPEPair) -> Bool {
        a.score > b.score || (a.score == b.score && a.left < b.left)
    }

    @inline(__always)
    mutating func push(_ p: BPEPair) {
        var i = count
        count += 1
        while i > 0 {
            let parent = (i - 1) >> 1
            if !PairHeap.better(p, base[parent]) { break }
            base[i] = base[parent]
            i = parent
        }
        base[i] = p
    }

    @inline(__always)
    mutating func pop() -> BPEPair {
        let top = base[0]
        count -= 1
        if count > 0 {
            let last = base[count]
            var i = 0
            while true {
                let l = 2 * i + 1
                if l >= count { break }
                var m = l
                if l + 1 < count, PairHeap.better(base[l + 1], base[l]) { m = l + 1 }
                if !PairHeap.better(base[m], last) { break }
                base[i] = base[m]
                i = m
            }
            base[i] = last
        }
        return top
    }
}

/// Room for a text of n bytes: n symbols at most, and n - 1 starting pairs plus at most two new ones per merge.
struct BPEBuffers {
    let symbols: UnsafeMutablePointer<BPESymbol>
    let pairs: UnsafeMutablePointer<BPEPair>
    let memo: MergeMemo
}

extension Tokenizer {
    /// Where the merge loop may be cut: before a whitespace symbol that follows another character, provided no
    /// segmentable piece holds such a pair inside it (none of the LLaMA family's does). No merge can then cross a
    /// cut, and merges on either side never meet, so merging each word alone gives the pieces of merging the whole
    /// text, with heaps of a word's size instead of a line's. A model with UNUSED pieces merges whole texts: their
    /// split is the last one recorded anywhere in the text.
    static func bpeWordSeparator(_ pieces: [(bytes: [UInt8], id: Int32)], escapeWhitespaces: Bool,
                                 hasUnused: Bool) -> [UInt8]? {
        if hasUnused { return nil }
        let space = escapeWhitespaces ? Normalizer.spaceSymbol : [0x20]
        for p in pieces {
            var prev = 0, i = UTF8Length.of(p.bytes[0])
            while i < p.bytes.count {
                let len = UTF8Length.of(p.bytes[i])
                let isSpace = p.bytes[i..<min(i + len, p.bytes.count)].elementsEqual(space)
                if isSpace, !p.bytes[prev..<i].elementsEqual(space) { return nil }
                prev = i
                i += len
            }
        }
        return space
    }

    func bpeSegment(_ norm: UnsafeBufferPointer<UInt8>, _ work: SegmentBuffers,
                    _ out: inout [(start: Int32, end: Int32, id: Int32)]) {
        guard let text = norm.baseAddress else { return }
        let n = norm.count
        // taken once per text: a class's stored properties are checked for exclusive access at run time
        let buffers = BPEBuffers(symbols: work.symbols.reserve(n), pairs: work.pairs.reserve(3 * n),
                                 memo: work.mergeMemo(for: self))
        guard let space = bpeWordSeparator, let first = space.first else {
            bpeMerge(text, n, at: 0, buffers, &out)
            return
        }
        let w = space.count
        @inline(__always) func isSpace(_ p: Int) -> Bool {
            if p + w > n || text[p] != first { return false }
            for k in 1..<max(w, 1) where text[p + k] != space[k] { return false }
            return true
        }
        var start = 0
        var p = 1
        while p < n {
            // text[p] == first only at a character start: a space symbol begins with a lead byte
            if text[p] == first, isSpace(p), !(p >= w && isSpace(p - w)) {
                bpeMerge(text + start, p - start, at: start, buffers, &out)
                start = p
                p += w
            } else {
                p += 1
            }
        }
        bpeMerge(text + start, n - start, at: start, buffers, &out)
    }

    /// The merge loop over `text[0..<n]`, which begins at byte `offset` of the normalized text.
    private func bpeMerge(_ text: UnsafePointer<UInt8>, _ n: Int, at offset: Int, _ buffers: BPEBuffers,
                          _ out: inout [(start: Int32, end: Int32, id: Int32)]) {
        guard n > 0 else { return }
        let merges = buffers.memo
        let symbols = buffers.symbols
        var heap = PairHeap(base: buffers.pairs)
        var count = 0
        var pos = 0
        while pos < n {
            var len = min(n - pos, UTF8Length.of(text[pos]))
            var freeze = false
            var id: Int32 = -1
            if let userDefined, let m = userDefined.longestMatch(text + pos, n - pos) {
                len = m
                freeze = true
                id = normal.lookup(text + pos, len) ?? -1
            } else if let step = trie.step(PieceTrie.root, PieceTrie.code(text + pos, len)) {
                id = step.piece
            }
            symbols[count] = BPESymbol(start: Int32(pos), length: Int32(len), prev: Int32(count - 1),
                                       next: pos + len >= n ? -1 : Int32(count + 1), id: id, freeze: freeze)
            count += 1
            pos += len
        }
        if count == 0 { return }

        // bytes of a merged UNUSED piece → the two parts it was last made of (rev_merge)
        var revMerge: [[UInt8]: ([UInt8], [UInt8])]? = hasUnused ? [:] : nil
        for i in 1..<count { bpeCandidate(Int32(i - 1), Int32(i), text, symbols, merges, &heap, &revMerge) }

        while heap.count > 0 {
            let top = heap.pop()
            let li = Int(top.left), ri = Int(top.right)
            let ll = symbols[li].length, rl = symbols[ri].length
            if ll == 0 || rl == 0 || ll + rl != top.size { continue }
            symbols[li].length = top.size
            symbols[li].id = top.id
            let rnext = symbols[ri].next
            symbols[li].next = rnext
            if rnext >= 0 { symbols[Int(rnext)].prev = top.left }
            symbols[ri].length = 0
            bpeCandidate(symbols[li].prev, top.left, text, symbols, merges, &heap, &revMerge)
            bpeCandidate(top.left, rnext, text, symbols, merges, &heap, &revMerge)
        }

        var index: Int32 = 0
        while index != -1 {
            let s = symbols[Int(index)]
            let start = Int(s.start), len = Int(s.length)
            // PieceToId looks among the reserved pieces first; only a model where one shadows a segmentable piece
            // needs the lookup by bytes
            let id = s.id >= 0 && !reservedShadowsNormal ? s.id : pieceID(text + start, len)
            if let revMerge, types[Int(id)] == .unused {
                resegment(Array(UnsafeBufferPointer(start: text + start, count: len)), at: offset + start, revMerge, &out)
            } else {
                out.append((Int32(offset + start), Int32(offset + start + len), id))
            }
            index = s.next
        }
    }

    /// MaybeAddNewSymbolPair: queues the merge of two adjacent symbols when their concatenation is a piece.
    @inline(__always)
    private func bpeCandidate(_ left: Int32, _ right: Int32, _ text: UnsafePointer<UInt8>,
                              _ symbols: UnsafeMutablePointer<BPESymbol>, _ merges: MergeMemo,
                              _ heap: inout PairHeap, _ revMerge: inout [[UInt8]: ([UInt8], [UInt8])]?) {
        if left < 0 || right < 0 { return }
        let l = symbols[Int(left)], r = symbols[Int(right)]
        if l.freeze || r.freeze { return }
        let size = l.length + r.length
        var pair = BPEPair(score: 0, left: left, right: right, size: size, id: -1)
        if l.id >= 0, r.id >= 0 {
            let key = MergeMemo.key(l.id, r.id)
            let slot = MergeMemo.slot(key)
            var m = merges.entries[slot]
            if m.key != key {
                let id = normal.lookup(text + Int(l.start), Int(size)) ?? -1
                m = MergeMemo.Entry(key: key, id: id, score: id >= 0 ? scores[Int(id)] : 0)
                merges.entries[slot] = m
            }
            if m.id < 0 { return }
            pair.id = m.id
            pair.score = m.score
        } else {
            // a character that is no piece on its own can still begin or end one
            guard let id = normal.lookup(text + Int(l.start), Int(size)) else { return }
            pair.id = id
            pair.score = scores[Int(id)]
        }
        heap.push(pair)
        if revMerge != nil, types[Int(pair.id)] == .unused {
            let s = Int(l.start), cut = s + Int(l.length), e = s + Int(size)
            revMerge?[Array(UnsafeBufferPointer(start: text + s, count: e - s))] =
                (Array(UnsafeBufferPointer(start: text + s, count: cut - s)),
                 Array(UnsafeBufferPointer(start: text + cut, count: e - cut)))
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
