/* Element-wise arithmetic of the recovery schemes (BiLLa's embedding, deltas): narrowing to f16 and sums in double,
 * at memory speed. Runtime dispatch as in kernels.c: AVX2+F16C bodies when the CPU has them, portable C otherwise;
 * both give the same bits. */
#include "billa_kernels.h"
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BK_ARITH_X86 1
#define BK_ARITH_FAST __attribute__((target("avx2,fma,f16c")))
#else
#define BK_ARITH_X86 0
#endif

static inline uint32_t bk_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float bk_bits_to_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* binary32 -> binary16, round to nearest even, by c10's (FP16 library's) method: the float unit rounds. NaN becomes
 * sign | 0x7E00, as torch's scalar `.half()` writes it. */
static inline uint16_t bk_f2h(float f) {
    float base = (__builtin_fabsf(f) * bk_bits_to_f32(0x77800000u)) * bk_bits_to_f32(0x08800000u);
    uint32_t w = bk_f32_bits(f), shl1 = w + w, sign = w & 0x80000000u;
    uint32_t bias = shl1 & 0xFF000000u;
    if (bias < 0x71000000u) bias = 0x71000000u;
    base = bk_bits_to_f32((bias >> 1) + 0x07800000u) + base;
    uint32_t bits = bk_f32_bits(base);
    uint32_t nonsign = ((bits >> 13) & 0x7C00u) + (bits & 0x0FFFu);
    return (uint16_t)((sign >> 16) | (shl1 > 0xFF000000u ? 0x7E00u : nonsign));
}

static void bk_narrow_portable(const float *src, uint16_t *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = bk_f2h(src[i]);
}

/* f16's largest finite value and the smallest |x| that rounds to infinity under round-to-nearest-even (65504 plus
 * half an ulp of 32). */
#define BK_F16_MAX 65504.0f
#define BK_F16_INF_FROM 65520.0f

/* One checked element: a finite |x| >= 65520 would become inf; count it, keep the largest, clamp when asked. */
static inline uint16_t bk_f2h_checked(float x, int clamp, int64_t *over, float *max_abs) {
    float a = __builtin_fabsf(x);
    if (a >= BK_F16_INF_FROM && a <= 3.4028234663852886e38f) {
        (*over)++;
        if (a > *max_abs) *max_abs = a;
        if (clamp) return x < 0 ? 0xFBFFu : 0x7BFFu;
    }
    return bk_f2h(x);
}

/* Blocks of 16: a branch-free test of the block (which the compiler vectorizes), and the per-element check only for
 * a block holding a value at or beyond 65520 (or a NaN). */
static int64_t bk_narrow_checked_portable(const float *src, uint16_t *dst, int64_t n, int clamp, float *max_abs) {
    int64_t over = 0, i = 0;
    for (; i + 16 <= n; i += 16) {
        int odd = 0;
        for (int k = 0; k < 16; k++) odd |= !(__builtin_fabsf(src[i + k]) < BK_F16_INF_FROM);
        if (odd) {
            for (int k = 0; k < 16; k++) dst[i + k] = bk_f2h_checked(src[i + k], clamp, &over, max_abs);
        } else {
            for (int k = 0; k < 16; k++) dst[i + k] = bk_f2h(src[i + k]);
        }
    }
    for (; i < n; i++) dst[i] = bk_f2h_checked(src[i], clamp, &over, max_abs);
    return over;
}

static double bk_sum_portable(const float *a, int64_t n) {
    double s[4] = {0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int k = 0; k < 4; k++) s[k] += (double)a[i + k];
    for (; i < n; i++) s[0] += (double)a[i];
    return (s[0] + s[1]) + (s[2] + s[3]);
}

#if BK_ARITH_X86
/* F16C rounds to nearest even exactly as bk_f2h does for every non-NaN input; a block holding a NaN goes through the
 * scalar rule so NaN payloads come out as torch writes them. */
BK_ARITH_FAST static void bk_narrow_fast(const float *src, uint16_t *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(src + i);
        if (_mm256_movemask_ps(_mm256_cmp_ps(x, x, _CMP_UNORD_Q))) {
            for (int k = 0; k < 8; k++) dst[i + k] = bk_f2h(src[i + k]);
            continue;
        }
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
    }
    for (; i < n; i++) dst[i] = bk_f2h(src[i]);
}

/* The same rounding as bk_narrow_fast, with the overflow test in the same pass: two compares and a movemask per
 * eight values, and the slow branch only for a block that holds an overflowing value or a NaN. */
BK_ARITH_FAST static int64_t bk_narrow_checked_fast(const float *src, uint16_t *dst, int64_t n, int clamp, float *max_abs) {
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    const __m256 from = _mm256_set1_ps(BK_F16_INF_FROM), inf = _mm256_set1_ps(__builtin_inff());
    int64_t over = 0, i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(src + i);
        __m256 a = _mm256_and_ps(x, absmask);
        /* a >= 65520 (ordered, so NaN is false) and a < inf; or x is NaN */
        __m256 big = _mm256_and_ps(_mm256_cmp_ps(a, from, _CMP_GE_OQ), _mm256_cmp_ps(a, inf, _CMP_LT_OQ));
        __m256 odd = _mm256_or_ps(big, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
        if (_mm256_movemask_ps(odd)) {
            for (int k = 0; k < 8; k++) dst[i + k] = bk_f2h_checked(src[i + k], clamp, &over, max_abs);
            continue;
        }
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
    }
    for (; i < n; i++) dst[i] = bk_f2h_checked(src[i], clamp, &over, max_abs);
    return over;
}

/* Four lanes of doubles in each of two accumulators: the same per-lane order as the portable body's four scalars
 * is not kept (sums in double of float values differ only in the last bits between orders). */
BK_ARITH_FAST static double bk_sum_fast(const float *a, int64_t n) {
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm_loadu_ps(a + i)));
        s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm_loadu_ps(a + i + 4)));
    }
    double lanes[4];
    _mm256_storeu_pd(lanes, _mm256_add_pd(s0, s1));
    double s = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
    for (; i < n; i++) s += (double)a[i];
    return s;
}
#endif

int bk_f32_to_f16_using(int body, const float *src, uint16_t *dst, int64_t n) {
    if (body != BK_BODY_AUTO && body != BK_BODY_PORTABLE && body != BK_BODY_AVX2) return 0;
#if BK_ARITH_X86
    if (body != BK_BODY_PORTABLE && bk_fast_path()) { bk_narrow_fast(src, dst, n); return 1; }
#endif
    if (body == BK_BODY_AVX2) return 0;
    bk_narrow_portable(src, dst, n);
    return 1;
}

void bk_f32_to_f16(const float *src, uint16_t *dst, int64_t n) { bk_f32_to_f16_using(BK_BODY_AUTO, src, dst, n); }

int64_t bk_f32_to_f16_checked_using(int body, const float *src, uint16_t *dst, int64_t n, int clamp, float *max_abs) {
    if (body != BK_BODY_AUTO && body != BK_BODY_PORTABLE && body != BK_BODY_AVX2) return -1;
    float m = 0;
    int64_t over = -1;
#if BK_ARITH_X86
    if (body != BK_BODY_PORTABLE && bk_fast_path()) over = bk_narrow_checked_fast(src, dst, n, clamp, &m);
#endif
    if (over < 0) {
        if (body == BK_BODY_AVX2) return -1;   /* asked for a body this CPU lacks: run nothing else */
        over = bk_narrow_checked_portable(src, dst, n, clamp, &m);
    }
    if (max_abs && m > *max_abs) *max_abs = m;
    return over;
}

int64_t bk_f32_to_f16_checked(const float *src, uint16_t *dst, int64_t n, int clamp, float *max_abs) {
    return bk_f32_to_f16_checked_using(BK_BODY_AUTO, src, dst, n, clamp, max_abs);
}

double bk_sum_f64(const float *a, int64_t n) {
#if BK_ARITH_X86
    if (bk_fast_path()) return bk_sum_fast(a, n);
#endif
    return bk_sum_portable(a, n);
}
