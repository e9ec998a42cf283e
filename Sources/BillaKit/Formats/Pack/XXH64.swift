import CKernels

/// XXH64 as the xxHash specification defines it. The pack checks it on every decoded chunk, so it has to cost far
/// less than the decode; SHA-256 would halve decode speed. The body is C (CKernels/planes.c), which the chunk codec
/// also fuses into its split and merge passes.
public enum XXH64 {
    public static func hash(_ bytes: UnsafeRawBufferPointer, seed: UInt64 = 0) -> UInt64 {
        bk_xxh64(bytes.baseAddress, bytes.count, seed)
    }
}
