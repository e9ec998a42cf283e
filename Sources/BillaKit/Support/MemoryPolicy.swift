import CKernels

/// glibc's malloc raises its mmap threshold each time a large block is freed (up to 32 MiB), after which billa's
/// per-tensor write buffers (a few MiB each, sizes varying with the tensor's rows) come from the brk heap, where
/// small allocations settle between them: on a slow disk a 1.7 GB conversion grew the heap to 690 MiB of holes.
/// A fixed threshold sends every block of 1 MiB or more to its own mapping, returned to the system when freed, so
/// peak memory stays at the buffers actually live.
public enum MemoryPolicy {
    public static let largeBlock = 1 << 20

    public static func apply() {
        _ = bk_set_mmap_threshold(largeBlock)
    }
}
