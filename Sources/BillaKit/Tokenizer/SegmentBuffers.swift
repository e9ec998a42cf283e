/// Working memory of the segmenters (BPE symbols and pair heap, unigram lattice), reused from one call to the next
/// so encoding a corpus line by line does not allocate. The hot loops index raw pointers: an Array would check
/// uniqueness and bounds on every store, which showed up as a large share of the encode time.
///
/// The properties are exempt from run-time exclusivity checks: each encode call takes them a few times, and the
/// checks (a thread-local access set) cost more per line than the rest of the setup. A scratch is used by one
/// encode at a time (`Tokenizer.Scratch.buffers()` gives a copied scratch its own), so accesses cannot overlap.
final class SegmentBuffers {
    @exclusivity(unchecked) var symbols = GrowableBuffer<BPESymbol>()
    @exclusivity(unchecked) var pairs = GrowableBuffer<BPEPair>()
    @exclusivity(unchecked) var nodes = GrowableBuffer<UnigramNode>()
    /// Unigram: per byte offset, the first and last lattice node ending there (-1: none).
    @exclusivity(unchecked) var endHead = GrowableBuffer<Int32>()
    @exclusivity(unchecked) var endTail = GrowableBuffer<Int32>()
    /// BPE: see MergeMemo; kept for `memoOwner` only (a strong reference, so its identity cannot be reused).
    @exclusivity(unchecked) var memo = GrowableBuffer<MergeMemo.Entry>()
    @exclusivity(unchecked) var memoOwner: Tokenizer?

    deinit {
        symbols.free(); pairs.free(); nodes.free(); endHead.free(); endTail.free(); memo.free()
    }
}

/// A manually managed array of trivial values; its owner frees it. Contents are not kept when it grows unless
/// asked, since the segmenters refill it on every call.
struct GrowableBuffer<Element: BitwiseCopyable> {
    private(set) var base: UnsafeMutablePointer<Element>?
    private(set) var capacity = 0

    /// A pointer to at least `count` elements; the first `keeping` elements survive a reallocation.
    @inline(__always)
    mutating func reserve(_ count: Int, keeping: Int = 0) -> UnsafeMutablePointer<Element> {
        if let base, count <= capacity { return base }
        return grow(count, keeping: keeping)
    }

    private mutating func grow(_ count: Int, keeping: Int) -> UnsafeMutablePointer<Element> {
        let newCapacity = max(count, capacity * 2, 64)
        let fresh = UnsafeMutablePointer<Element>.allocate(capacity: newCapacity)
        if let base {
            if keeping > 0 { fresh.update(from: base, count: min(keeping, capacity)) }
            base.deallocate()
        }
        base = fresh
        capacity = newCapacity
        return fresh
    }

    mutating func free() {
        base?.deallocate()
        base = nil
        capacity = 0
    }
}
