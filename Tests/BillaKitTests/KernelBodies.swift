import CKernels
import Testing

/// Which kernel bodies this CPU runs (CKernels' own answer). A test of a body the CPU lacks is disabled with a
/// comment (Swift Testing prints "skipped" with it), never run: the `_using` entry points return 0 instead of
/// running another body, so a body test can never pass by falling back.
enum KernelBodies {
    static let portable = Int32(BK_BODY_PORTABLE)
    static let avx2 = Int32(BK_BODY_AVX2)
    static let avx512 = Int32(BK_BODY_AVX512)
    static let pclmul = Int32(BK_BODY_PCLMUL)

    static let hasAVX2 = bk_cpu_has_body(avx2) == 1
    static let hasAVX512 = bk_cpu_has_body(avx512) == 1
    static let hasPCLMUL = bk_cpu_has_body(pclmul) == 1

    static let noAVX2: Comment = "this CPU has no AVX2+FMA+F16C: the AVX2 body is not tested here"
    static let noAVX512: Comment = "this CPU has no AVX-512 F/VL/BW/DQ (or BILLA_NO_AVX512 is set): the AVX-512 body is not tested here"
    static let noPCLMUL: Comment = "this CPU has no PCLMULQDQ+SSE4.1: the folding body is not tested here"
}
