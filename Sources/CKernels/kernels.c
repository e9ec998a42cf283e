/* billa's verifier kernels: widening of every weight type billa reads to f32, and row-by-vector dot products.
 * Block layouts are ggml's (ggml-common.h: block_q4_0 ... block_q6_K); the dequantization follows ggml's
 * dequantize_row_* so a quantized model is evaluated exactly as llama.cpp stores it. */
#include "billa_kernels.h"
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BK_X86 1
#define BK_FAST __attribute__((target("avx2,fma,f16c")))
#else
#define BK_X86 0
#endif

/* ---- scalar conversions --------------------------------------------------------------------------------- */

static inline float bk_bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* IEEE half to float, exact (subnormals, infinities and NaN included). */
static inline float bk_h2f(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0) {
        float f = (float)man * (1.0f / 16777216.0f); /* man * 2^-24, exact */
        return sign ? -f : f;
    }
    if (exp == 31) return bk_bits_f32(sign | 0x7f800000u | (man << 13));
    return bk_bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

static inline float bk_bf2f(uint16_t b) { return bk_bits_f32((uint32_t)b << 16); }

static inline uint16_t bk_u16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }

/* ---- block facts ------------------------------------------------------------------------------------------ */

int bk_block_elems(int type) {
    switch (type) {
    case BK_F32: case BK_F16: case BK_BF16: return 1;
    case BK_Q4_K: case BK_Q5_K: case BK_Q6_K: return 256;
    default: return 32;
    }
}

int bk_block_bytes(int type) {
    switch (type) {
    case BK_F32: return 4;
    case BK_F16: case BK_BF16: return 2;
    case BK_Q4_0: return 18;
    case BK_Q4_1: return 20;
    case BK_Q5_0: return 22;
    case BK_Q5_1: return 24;
    case BK_Q8_0: return 34;
    case BK_Q4_K: return 144;
    case BK_Q5_K: return 176;
    case BK_Q6_K: return 210;
    default: return 0;
    }
}

/* ---- dequantization of one block (ggml's dequantize_row_*), inlined into both bodies ---------------------- */

static inline void bk_deq_q4_0(const uint8_t *b, float *y) {
    const float d = bk_h2f(bk_u16(b));
    const uint8_t *qs = b + 2;
    for (int j = 0; j < 16; j++) {
        y[j] = (float)((qs[j] & 0x0F) - 8) * d;
        y[j + 16] = (float)((qs[j] >> 4) - 8) * d;
    }
}

static inline void bk_deq_q4_1(const uint8_t *b, float *y) {
    const float d = bk_h2f(bk_u16(b)), m = bk_h2f(bk_u16(b + 2));
    const uint8_t *qs = b + 4;
    for (int j = 0; j < 16; j++) {
        y[j] = (float)(qs[j] & 0x0F) * d + m;
        y[j + 16] = (float)(qs[j] >> 4) * d + m;
    }
}

static inline void bk_deq_q5_0(const uint8_t *b, float *y) {
    const float d = bk_h2f(bk_u16(b));
    uint32_t qh; memcpy(&qh, b + 2, 4);
    const uint8_t *qs = b + 6;
    for (int j = 0; j < 16; j++) {
        const uint8_t xh0 = (uint8_t)(((qh >> (j + 0)) << 4) & 0x10);
        const uint8_t xh1 = (uint8_t)(((qh >> (j + 12))) & 0x10);
        y[j] = (float)(((qs[j] & 0x0F) | xh0) - 16) * d;
        y[j + 16] = (float)(((qs[j] >> 4) | xh1) - 16) * d;
    }
}

static inline void bk_deq_q5_1(const uint8_t *b, float *y) {
    const float d = bk_h2f(bk_u16(b)), m = bk_h2f(bk_u16(b + 2));
    uint32_t qh; memcpy(&qh, b + 4, 4);
    const uint8_t *qs = b + 8;
    for (int j = 0; j < 16; j++) {
        const uint8_t xh0 = (uint8_t)(((qh >> (j + 0)) << 4) & 0x10);
        const uint8_t xh1 = (uint8_t)(((qh >> (j + 12))) & 0x10);
        y[j] = (float)((qs[j] & 0x0F) | xh0) * d + m;
        y[j + 16] = (float)((qs[j] >> 4) | xh1) * d + m;
    }
}

static inline void bk_deq_q8_0(const uint8_t *b, float *y) {
    const float d = bk_h2f(bk_u16(b));
    const int8_t *qs = (const int8_t *)(b + 2);
    for (int j = 0; j < 32; j++) y[j] = (float)qs[j] * d;
}

static inline void bk_scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63; *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4);
    }
}

static inline void bk_deq_q4_K(const uint8_t *b, float *y) {
    const float d = bk_h2f(bk_u16(b)), dmin = bk_h2f(bk_u16(b + 2));
    const uint8_t *scales = b + 4, *q = b + 16;
    int is = 0;
    for (int j = 0; j < 256; j += 64) {
        uint8_t sc, m;
        bk_scale_min_k4(is + 0, scales, &sc, &m);
        const float d1 = d * sc, m1 = dmin * m;
        bk_scale_min_k4(is + 1, scales, &sc, &m);
        const float d2 = d * sc, m2 = dmin * m;
        for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
        for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
        q += 32; is += 2;
    }
}

static inline void bk_deq_q5_K(const uint8_t *b, float *y) {
    const float d = bk_h2f(bk_u16(b)), dmin = bk_h2f(bk_u16(b + 2));
    const uint8_t *scales = b + 4, *qh = b + 16, *ql = b + 48;
    int is = 0;
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0; j < 256; j += 64) {
        uint8_t sc, m;
        bk_scale_min_k4(is + 0, scales, &sc, &m);
        const float d1 = d * sc, m1 = dmin * m;
        bk_scale_min_k4(is + 1, scales, &sc, &m);
        const float d2 = d * sc, m2 = dmin * m;
        for (int l = 0; l < 32; ++l) *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
        for (int l = 0; l < 32; ++l) *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
        ql += 32; is += 2;
        u1 <<= 2; u2 <<= 2;
    }
}

static inline void bk_deq_q6_K(const uint8_t *b, float *y) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    const float d = bk_h2f(bk_u16(b + 208));
    for (int n = 0; n < 256; n += 128) {
        for (int l = 0; l < 32; ++l) {
            const int is = l / 16;
            const int8_t q1 = (int8_t)((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
            const int8_t q2 = (int8_t)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            const int8_t q3 = (int8_t)((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            const int8_t q4 = (int8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l + 0] = d * sc[is + 0] * q1;
            y[l + 32] = d * sc[is + 2] * q2;
            y[l + 64] = d * sc[is + 4] * q3;
            y[l + 96] = d * sc[is + 6] * q4;
        }
        y += 128; ql += 64; qh += 32; sc += 8;
    }
}

/* The conversion body, inlined into each instruction-set variant so the compiler vectorizes it for that set. */
static inline __attribute__((always_inline)) void bk_to_f32_body(int type, const void *src, float *dst, int64_t n) {
    const uint8_t *s = (const uint8_t *)src;
    switch (type) {
    case BK_F32: memcpy(dst, src, (size_t)n * 4); return;
    case BK_F16: for (int64_t i = 0; i < n; i++) dst[i] = bk_h2f(bk_u16(s + 2 * i)); return;
    case BK_BF16: for (int64_t i = 0; i < n; i++) dst[i] = bk_bf2f(bk_u16(s + 2 * i)); return;
    default: break;
    }
    const int be = bk_block_elems(type), bb = bk_block_bytes(type);
    for (int64_t i = 0; i < n / be; i++, s += bb, dst += be) {
        switch (type) {
        case BK_Q4_0: bk_deq_q4_0(s, dst); break;
        case BK_Q4_1: bk_deq_q4_1(s, dst); break;
        case BK_Q5_0: bk_deq_q5_0(s, dst); break;
        case BK_Q5_1: bk_deq_q5_1(s, dst); break;
        case BK_Q8_0: bk_deq_q8_0(s, dst); break;
        case BK_Q4_K: bk_deq_q4_K(s, dst); break;
        case BK_Q5_K: bk_deq_q5_K(s, dst); break;
        case BK_Q6_K: bk_deq_q6_K(s, dst); break;
        default: memset(dst, 0, (size_t)be * 4); break;
        }
    }
}

/* ---- portable bodies --------------------------------------------------------------------------------------- */

static void bk_to_f32_portable(int type, const void *src, float *dst, int64_t n) { bk_to_f32_body(type, src, dst, n); }

static float bk_dot_f32_portable(const float *a, const float *b, int64_t n) {
    /* eight partial sums, as the vector body keeps, so both bodies round alike on long rows */
    float s[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) s[k] += a[i + k] * b[i + k];
    float t = ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
    for (; i < n; i++) t += a[i] * b[i];
    return t;
}

static float bk_dot_f16_portable(const uint8_t *w, const float *x, int64_t n) {
    float s[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) s[k] += bk_h2f(bk_u16(w + 2 * (i + k))) * x[i + k];
    float t = ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
    for (; i < n; i++) t += bk_h2f(bk_u16(w + 2 * i)) * x[i];
    return t;
}

/* ---- AVX2 + FMA + F16C bodies -------------------------------------------------------------------------------- */

#if BK_X86
BK_FAST static inline float bk_hsum256(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    __m128 sh = _mm_movehdup_ps(lo);
    __m128 sums = _mm_add_ps(lo, sh);
    sh = _mm_movehl_ps(sh, sums);
    sums = _mm_add_ss(sums, sh);
    return _mm_cvtss_f32(sums);
}

BK_FAST static void bk_to_f32_fast(int type, const void *src, float *dst, int64_t n) {
    if (type == BK_F16) {
        const uint8_t *s = (const uint8_t *)src;
        int64_t i = 0;
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + 2 * i))));
        for (; i < n; i++) dst[i] = bk_h2f(bk_u16(s + 2 * i));
        return;
    }
    if (type == BK_BF16) {
        const uint8_t *s = (const uint8_t *)src;
        int64_t i = 0;
        for (; i + 8 <= n; i += 8) {
            __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(s + 2 * i)));
            _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
        }
        for (; i < n; i++) dst[i] = bk_bf2f(bk_u16(s + 2 * i));
        return;
    }
    bk_to_f32_body(type, src, dst, n);
}

BK_FAST static float bk_dot_f32_fast(const float *a, const float *b, int64_t n) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    }
    for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    float t = bk_hsum256(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++) t += a[i] * b[i];
    return t;
}

/* One weight row against four token vectors at once: the row is loaded once for all four. */
BK_FAST static void bk_dot4_f32_fast(const float *w, const float *x, int64_t ldx, int64_t n, float *out) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 wv = _mm256_loadu_ps(w + i);
        a0 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + ldx + i), a1);
        a2 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + 2 * ldx + i), a2);
        a3 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + 3 * ldx + i), a3);
    }
    out[0] = bk_hsum256(a0); out[1] = bk_hsum256(a1); out[2] = bk_hsum256(a2); out[3] = bk_hsum256(a3);
    for (; i < n; i++) {
        out[0] += w[i] * x[i]; out[1] += w[i] * x[ldx + i];
        out[2] += w[i] * x[2 * ldx + i]; out[3] += w[i] * x[3 * ldx + i];
    }
}

BK_FAST static float bk_dot_f16_fast(const uint8_t *w, const float *x, int64_t n) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 w0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + 2 * i)));
        __m256 w1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + 2 * i + 16)));
        acc0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + i), acc0);
        acc1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + i + 8), acc1);
    }
    for (; i + 8 <= n; i += 8)
        acc0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + 2 * i))), _mm256_loadu_ps(x + i), acc0);
    float t = bk_hsum256(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++) t += bk_h2f(bk_u16(w + 2 * i)) * x[i];
    return t;
}

/* Four f16 rows against one token, each row summed exactly as bk_dot_f16_fast sums it (so a row gives the same bits
 * whichever kernel ran it): the token's vectors are loaded once for four rows, and each row's stream is prefetched
 * ahead, as in the Q8_0 / Q4_0 generation kernels. */
BK_FAST static void bk_dot4_f16_fast(const uint8_t *w, size_t row_bytes, const float *x, int64_t n, float out[4]) {
    __m256 a0[4], a1[4];
    for (int r = 0; r < 4; r++) { a0[r] = _mm256_setzero_ps(); a1[r] = _mm256_setzero_ps(); }
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 x0 = _mm256_loadu_ps(x + i), x1 = _mm256_loadu_ps(x + i + 8);
        for (int r = 0; r < 4; r++) {
            const uint8_t *row = w + (size_t)r * row_bytes + 2 * i;
            _mm_prefetch((const char *)row + 640, _MM_HINT_T0);
            a0[r] = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)row)), x0, a0[r]);
            a1[r] = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + 16))), x1, a1[r]);
        }
    }
    for (; i + 8 <= n; i += 8)
        for (int r = 0; r < 4; r++)
            a0[r] = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + (size_t)r * row_bytes + 2 * i))), _mm256_loadu_ps(x + i), a0[r]);
    for (int r = 0; r < 4; r++) {
        float t = bk_hsum256(_mm256_add_ps(a0[r], a1[r]));
        for (int64_t k = i; k < n; k++) t += bk_h2f(bk_u16(w + (size_t)r * row_bytes + 2 * k)) * x[k];
        out[r] = t;
    }
}

/* The activation vector as Q8 blocks (32 int8 and an f32 scale each), as llama.cpp quantizes it before its
 * integer dot products: generation over Q8_0/Q4_0 weights then runs in int8 (maddubs) at memory speed. */
BK_FAST static void bk_quantize_x_q8_fast(const float *x, int64_t n, int8_t *q, float *d) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t b = 0; b < n / 32; b++) {
        const float *xb = x + b * 32;
        __m256 v0 = _mm256_loadu_ps(xb), v1 = _mm256_loadu_ps(xb + 8), v2 = _mm256_loadu_ps(xb + 16), v3 = _mm256_loadu_ps(xb + 24);
        __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
                                 _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        h = _mm_max_ss(h, _mm_movehdup_ps(h));
        const float amax = _mm_cvtss_f32(h);
        const float db = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
        d[b] = db;
        const __m256 mul = _mm256_set1_ps(id);
        __m256i i0 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v0, mul), _MM_FROUND_TO_NEAREST_INT));
        __m256i i1 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v1, mul), _MM_FROUND_TO_NEAREST_INT));
        __m256i i2 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v2, mul), _MM_FROUND_TO_NEAREST_INT));
        __m256i i3 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v3, mul), _MM_FROUND_TO_NEAREST_INT));
        /* pack 32-bit -> 16-bit -> 8-bit; the packs interleave 128-bit lanes, so put them back in order */
        __m256i p16a = _mm256_packs_epi32(i0, i1), p16b = _mm256_packs_epi32(i2, i3);
        __m256i p8 = _mm256_packs_epi16(p16a, p16b);
        p8 = _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)(q + b * 32), p8);
    }
}

BK_FAST static inline __m256 bk_dot_i8_block(__m256i w, __m256i x, __m256 acc, float scale) {
    const __m256i ax = _mm256_sign_epi8(w, w), sy = _mm256_sign_epi8(x, w);
    const __m256i dot = _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), _mm256_set1_epi16(1));
    return _mm256_fmadd_ps(_mm256_set1_ps(scale), _mm256_cvtepi32_ps(dot), acc);
}

BK_FAST static float bk_dot_q8_0_q8_fast(const uint8_t *w, const int8_t *q, const float *d, int64_t nb) {
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++, w += 34) {
        __m256i qw = _mm256_loadu_si256((const __m256i *)(w + 2));
        acc = bk_dot_i8_block(qw, _mm256_loadu_si256((const __m256i *)(q + b * 32)), acc, _cvtsh_ss(bk_u16(w)) * d[b]);
    }
    return bk_hsum256(acc);
}

BK_FAST static float bk_dot_q4_0_q8_fast(const uint8_t *w, const int8_t *q, const float *d, int64_t nb) {
    __m256 acc = _mm256_setzero_ps();
    const __m128i m4 = _mm_set1_epi8(0x0F);
    for (int64_t b = 0; b < nb; b++, w += 18) {
        __m128i raw = _mm_loadu_si128((const __m128i *)(w + 2));
        __m256i qw = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(raw, 4), m4), _mm_and_si128(raw, m4));
        qw = _mm256_sub_epi8(qw, _mm256_set1_epi8(8));
        acc = bk_dot_i8_block(qw, _mm256_loadu_si256((const __m256i *)(q + b * 32)), acc, _cvtsh_ss(bk_u16(w)) * d[b]);
    }
    return bk_hsum256(acc);
}

/* Generation reads four rows at once, four streams 18 or 34 bytes a block apart, which the hardware prefetcher
 * follows poorly: the loads stalled on DRAM (7.6 GB/s on a Q4_0 model where llama.cpp's one repacked stream reaches
 * 14). Asking for each row's block this many blocks ahead gave +20-40 % tokens/s (Q4_0 and Q8_0, interleaved A/B
 * over distances of 8-40 blocks; ~20 was best for both). */
#define BK_PREFETCH_BLOCKS 20
/* Four Q4_0 / Q8_0 rows against the Q8 activation at once: the activation block is loaded once for four rows, and
 * four independent accumulators (and four weight streams in flight) hide the load latency that bound the one-row
 * loop at ~9 GB/s. */
BK_FAST static void bk_dot4_q4_0_q8_fast(const uint8_t *w, size_t row_bytes, const int8_t *q, const float *d,
                                         const int32_t *sx8, int64_t nb, float out[4]) {
    /* The nibbles n (0..15) go into maddubs unsigned as they are: sum n*x - 8*sum x = sum (n - 8)*x, with 8*sum x
     * per block precomputed (sx8), so no sign juggling per row. */
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    const __m128i m4 = _mm_set1_epi8(0x0F);
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t b = 0; b < nb; b++) {
        const __m256i qx = _mm256_loadu_si256((const __m256i *)(q + b * 32));
        const __m256i corr = _mm256_zextsi128_si256(_mm_cvtsi32_si128(-sx8[b]));
        const float dx = d[b];
        for (int r = 0; r < 4; r++) {
            const uint8_t *blk = w + (size_t)r * row_bytes + (size_t)b * 18;
            _mm_prefetch((const char *)blk + BK_PREFETCH_BLOCKS * 18, _MM_HINT_T0);
            const __m128i raw = _mm_loadu_si128((const __m128i *)(blk + 2));
            const __m256i n = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(raw, 4), m4), _mm_and_si128(raw, m4));
            const __m256i dot = _mm256_add_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(n, qx), ones), corr);
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(bk_u16(blk)) * dx), _mm256_cvtepi32_ps(dot), acc[r]);
        }
    }
    for (int r = 0; r < 4; r++) out[r] = bk_hsum256(acc[r]);
}

BK_FAST static void bk_dot4_q8_0_q8_fast(const uint8_t *w, size_t row_bytes, const int8_t *q, const float *d, int64_t nb, float out[4]) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t b = 0; b < nb; b++) {
        const __m256i qx = _mm256_loadu_si256((const __m256i *)(q + b * 32));
        const float dx = d[b];
        for (int r = 0; r < 4; r++) {
            const uint8_t *blk = w + (size_t)r * row_bytes + (size_t)b * 34;
            _mm_prefetch((const char *)blk + BK_PREFETCH_BLOCKS * 34, _MM_HINT_T0);
            acc[r] = bk_dot_i8_block(_mm256_loadu_si256((const __m256i *)(blk + 2)), qx, acc[r], _cvtsh_ss(bk_u16(blk)) * dx);
        }
    }
    for (int r = 0; r < 4; r++) out[r] = bk_hsum256(acc[r]);
}

/* Q6_K row · Q8 x: each 32-element run of a 256-block is unpacked to int8 in registers (ggml's layout: low
 * nibbles from ql, two high bits from qh), multiplied in int8, and the two 16-element halves scaled by their own
 * sub-block scales. This is the output head of llama-quantize's Q4_0/Q4_K_M recipes, 6 % of a 1B model. */
BK_FAST static float bk_dot_q6_K_q8_fast(const uint8_t *w, const int8_t *q, const float *dx, int64_t nsb) {
    __m256 acc = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(3), off = _mm256_set1_epi8(32);
    for (int64_t sb = 0; sb < nsb; sb++, w += 210) {
        const uint8_t *ql = w, *qh = w + 128;
        const int8_t *sc = (const int8_t *)(w + 192);
        const float d = _cvtsh_ss(bk_u16(w + 208));
        /* the superblock four ahead: +4-7 % Q4_0-model generation, whose Q6_K output head this is (A/B, 3 runs) */
        for (int l = 0; l < 210; l += 64) _mm_prefetch((const char *)w + 4 * 210 + l, _MM_HINT_T0);
        for (int half = 0; half < 2; half++) {
            const __m256i l0 = _mm256_loadu_si256((const __m256i *)(ql + 64 * half));
            const __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 64 * half + 32));
            const __m256i h = _mm256_loadu_si256((const __m256i *)(qh + 32 * half));
            __m256i v[4];
            v[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(h, m3), 4));
            v[1] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2), m3), 4));
            v[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 4), m3), 4));
            v[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 6), m3), 4));
            for (int k = 0; k < 4; k++) {
                const int64_t e = sb * 256 + half * 128 + k * 32;          /* first element of this run */
                const __m256i qw = _mm256_sub_epi8(v[k], off);
                const __m256i qx = _mm256_loadu_si256((const __m256i *)(q + e));
                const __m256i ax = _mm256_sign_epi8(qw, qw), sy = _mm256_sign_epi8(qx, qw);
                const __m256i dot = _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), _mm256_set1_epi16(1));
                const int s = half * 8 + k * 2;                               /* sub-block of the run's first 16 */
                const float f = d * dx[e / 32];
                const __m256 scale = _mm256_set_m128(_mm_set1_ps(f * sc[s + 1]), _mm_set1_ps(f * sc[s]));
                acc = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(dot), acc);
            }
        }
    }
    return bk_hsum256(acc);
}

/* Four f32 rows against two token vectors: eight accumulators, each loaded vector used four or two times, so a
 * prompt's matrix product is not bound by loading the tokens from cache as the one-row kernel is. */
BK_FAST static void bk_tile4x2_fast(const float *w, int64_t ldw, const float *x, int64_t ldx, int64_t n, float out[8]) {
    __m256 a00 = _mm256_setzero_ps(), a01 = _mm256_setzero_ps(), a10 = _mm256_setzero_ps(), a11 = _mm256_setzero_ps();
    __m256 a20 = _mm256_setzero_ps(), a21 = _mm256_setzero_ps(), a30 = _mm256_setzero_ps(), a31 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x0 = _mm256_loadu_ps(x + i), x1 = _mm256_loadu_ps(x + ldx + i);
        __m256 w0 = _mm256_loadu_ps(w + i);
        a00 = _mm256_fmadd_ps(w0, x0, a00); a01 = _mm256_fmadd_ps(w0, x1, a01);
        __m256 w1 = _mm256_loadu_ps(w + ldw + i);
        a10 = _mm256_fmadd_ps(w1, x0, a10); a11 = _mm256_fmadd_ps(w1, x1, a11);
        __m256 w2 = _mm256_loadu_ps(w + 2 * ldw + i);
        a20 = _mm256_fmadd_ps(w2, x0, a20); a21 = _mm256_fmadd_ps(w2, x1, a21);
        __m256 w3 = _mm256_loadu_ps(w + 3 * ldw + i);
        a30 = _mm256_fmadd_ps(w3, x0, a30); a31 = _mm256_fmadd_ps(w3, x1, a31);
    }
    out[0] = bk_hsum256(a00); out[1] = bk_hsum256(a01); out[2] = bk_hsum256(a10); out[3] = bk_hsum256(a11);
    out[4] = bk_hsum256(a20); out[5] = bk_hsum256(a21); out[6] = bk_hsum256(a30); out[7] = bk_hsum256(a31);
    for (; i < n; i++)
        for (int r = 0; r < 4; r++) { out[2 * r] += w[r * ldw + i] * x[i]; out[2 * r + 1] += w[r * ldw + i] * x[ldx + i]; }
}

/* Four rows against three tokens: twelve accumulators, three token loads and one row load at a time (16 ymm). */
BK_FAST static void bk_tile4x3_fast(const float *w, int64_t ldw, const float *x, int64_t ldx, int64_t n, float out[12]) {
    __m256 a[4][3];
    for (int r = 0; r < 4; r++) for (int t = 0; t < 3; t++) a[r][t] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x0 = _mm256_loadu_ps(x + i), x1 = _mm256_loadu_ps(x + ldx + i), x2 = _mm256_loadu_ps(x + 2 * ldx + i);
        for (int r = 0; r < 4; r++) {
            const __m256 wv = _mm256_loadu_ps(w + r * ldw + i);
            a[r][0] = _mm256_fmadd_ps(wv, x0, a[r][0]);
            a[r][1] = _mm256_fmadd_ps(wv, x1, a[r][1]);
            a[r][2] = _mm256_fmadd_ps(wv, x2, a[r][2]);
        }
    }
    for (int r = 0; r < 4; r++) for (int t = 0; t < 3; t++) out[r * 3 + t] = bk_hsum256(a[r][t]);
    for (; i < n; i++)
        for (int r = 0; r < 4; r++) for (int t = 0; t < 3; t++) out[r * 3 + t] += w[r * ldw + i] * x[t * ldx + i];
}

/* ---- AVX-512 prompt tiles ----------------------------------------------------------------------------------- */

#define BK_FAST512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,f16c")))

/* The four sums of a0..a3 as one vector: halves of two vectors are added in one step, so the 24 accumulators of a
 * tile cost ~14 instructions per four instead of ~34 for four separate reductions. */
BK_FAST512 static inline __m128 bk_hsum4x512(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
    /* [a0 lo256 + hi256 | a1 lo256 + hi256], and the same for a2, a3 */
    const __m512 u = _mm512_add_ps(_mm512_shuffle_f32x4(a0, a1, 0x44), _mm512_shuffle_f32x4(a0, a1, 0xEE));
    const __m512 v = _mm512_add_ps(_mm512_shuffle_f32x4(a2, a3, 0x44), _mm512_shuffle_f32x4(a2, a3, 0xEE));
    /* 128-bit lane k now holds a partial of row k */
    __m512 w = _mm512_add_ps(_mm512_shuffle_f32x4(u, v, 0x88), _mm512_shuffle_f32x4(u, v, 0xDD));
    w = _mm512_add_ps(w, _mm512_permute_ps(w, 0x4E));   /* [x0+x2, x1+x3, ...] in each lane */
    w = _mm512_add_ps(w, _mm512_permute_ps(w, 0xB1));   /* the lane's sum in every element */
    return _mm512_castps512_ps128(_mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), w));
}

/* Four f32 rows against nt <= 6 tokens: up to 24 zmm accumulators, the token vectors and one row vector live at a
 * time (31 of the 32 registers): 24 FMAs per 10 loads, so the FMA units, not the loads, set the pace. Instantiated
 * for each nt, so a prompt's last tokens are not left to a load-bound one-token loop. */
BK_FAST512 static inline __attribute__((always_inline)) void bk_tile4xT_512(
        const float *w, int64_t ldw, const float *x, int64_t ldx, int64_t n, float *y, int64_t ldy, const int nt) {
    __m512 a[4][6];
    const float *xp[6];
    for (int t = 0; t < nt; t++) xp[t] = x + t * ldx;
    for (int r = 0; r < 4; r++) for (int t = 0; t < nt; t++) a[r][t] = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v[6];
        for (int t = 0; t < nt; t++) v[t] = _mm512_loadu_ps(xp[t] + i);
        for (int r = 0; r < 4; r++) {
            const __m512 wv = _mm512_loadu_ps(w + r * ldw + i);
            for (int t = 0; t < nt; t++) a[r][t] = _mm512_fmadd_ps(wv, v[t], a[r][t]);
        }
    }
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        __m512 v[6];
        for (int t = 0; t < nt; t++) v[t] = _mm512_maskz_loadu_ps(m, xp[t] + i);
        for (int r = 0; r < 4; r++) {
            const __m512 wv = _mm512_maskz_loadu_ps(m, w + r * ldw + i);
            for (int t = 0; t < nt; t++) a[r][t] = _mm512_fmadd_ps(wv, v[t], a[r][t]);
        }
    }
    for (int t = 0; t < nt; t++) _mm_storeu_ps(y + t * ldy, bk_hsum4x512(a[0][t], a[1][t], a[2][t], a[3][t]));
}

BK_FAST512 static void bk_tile4_512(const float *w, int64_t ldw, const float *x, int64_t ldx, int64_t n, float *y,
                                    int64_t ldy, int nt) {
    switch (nt) {
    case 6: bk_tile4xT_512(w, ldw, x, ldx, n, y, ldy, 6); break;
    case 5: bk_tile4xT_512(w, ldw, x, ldx, n, y, ldy, 5); break;
    case 4: bk_tile4xT_512(w, ldw, x, ldx, n, y, ldy, 4); break;
    case 3: bk_tile4xT_512(w, ldw, x, ldx, n, y, ldy, 3); break;
    case 2: bk_tile4xT_512(w, ldw, x, ldx, n, y, ldy, 2); break;
    default: bk_tile4xT_512(w, ldw, x, ldx, n, y, ldy, 1); break;
    }
}

BK_FAST512 static void bk_widen_row_512(int type, const uint8_t *src, float *dst, int64_t n) {
    if (type == BK_F16) {
        int64_t i = 0;
        for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + 2 * i))));
        for (; i < n; i++) dst[i] = bk_h2f(bk_u16(src + 2 * i));
        return;
    }
    bk_to_f32_fast(type, src, dst, n);
}

/* Tokens in blocks whose activations stay in L2 (36 tokens of a 5632-wide row are 0.8 MB) while every row sweeps
 * over them; rows in groups of four, widened into scratch once per token block. With the rows outside, a prompt's
 * activations were streamed from L3 once per four rows. */
#define BK_TOKEN_BLOCK_512 36

BK_FAST512 static int64_t bk_rows_prompt_512(int type, const uint8_t *w, size_t row_bytes, int64_t rows, int64_t cols,
                                              const float *x, int64_t ldx, int64_t ntok, float *y, int64_t ldy, float *scratch) {
    const int64_t groups = rows / 4 * 4;
    /* as many tokens as fit in ~768 KiB of L2, at least BK_TOKEN_BLOCK_512: fewer re-widenings of the rows */
    int64_t block = (768 << 10) / (cols * 4) / 6 * 6;
    if (block < BK_TOKEN_BLOCK_512) block = BK_TOKEN_BLOCK_512;
    for (int64_t t0 = 0; t0 < ntok; t0 += block) {
        const int64_t t1 = t0 + block < ntok ? t0 + block : ntok;
        for (int64_t r = 0; r < groups; r += 4) {
            const float *wf;
            if (type == BK_F32 && row_bytes == (size_t)cols * 4) {
                wf = (const float *)(w + (size_t)r * row_bytes);
            } else {
                for (int k = 0; k < 4; k++) bk_widen_row_512(type, w + (size_t)(r + k) * row_bytes, scratch + k * cols, cols);
                wf = scratch;
            }
            for (int64_t t = t0; t < t1; t += 6)
                bk_tile4_512(wf, cols, x + t * ldx, ldx, cols, y + t * ldy + r, ldy, (int)(t1 - t < 6 ? t1 - t : 6));
        }
    }
    return groups;   /* rows done; the caller finishes the last rows % 4 */
}

/* The prompt tiles use AVX-512 when the CPU has it, unless BILLA_NO_AVX512=1 asks for the AVX2 ones (to measure what
 * the wider ones bring). */
static int bk_has_avx512(void) {
    static int use = -1;   /* a benign race: every thread computes the same answer */
    if (use < 0) {
        const char *off = getenv("BILLA_NO_AVX512");
        use = (off && *off && *off != '0') ? 0 : bk_cpu_has_avx512();
    }
    return use;
}

/* Tokens are taken in blocks small enough to stay in L1/L2 while four widened rows sweep over them. */
#define BK_TOKEN_BLOCK 30

BK_FAST static void bk_rows_dot_fast(int type, const uint8_t *w, size_t row_bytes, int64_t rows, int64_t cols,
                                     const float *x, int64_t ldx, int64_t ntok, float *y, int64_t ldy, float *scratch,
                                     int allow512) {
    if (ntok == 1 && type == BK_Q4_0 && allow512 && bk_has_avx512()) {
        const int64_t done = bk_rows_token_q4_0_vnni(w, row_bytes, rows, cols, x, y);
        if (done > 0) {
            if (done < rows) bk_rows_dot_fast(type, w + (size_t)done * row_bytes, row_bytes, rows - done, cols, x, ldx, ntok, y + done, ldy, scratch, 0);
            return;
        }
    }
    if (ntok == 1 && (type == BK_Q8_0 || type == BK_Q4_0 || type == BK_Q6_K) && cols % 32 == 0) {
        /* scratch (4 * cols floats) holds the quantized x: cols int8, then cols / 32 scales, then cols / 32 sums */
        int8_t *q = (int8_t *)scratch;
        float *d = scratch + (cols + 3) / 4;
        bk_quantize_x_q8_fast(x, cols, q, d);
        /* then, for Q4_0, 8 * the sum of each block's quantized x */
        int32_t *sx8 = (int32_t *)(d + cols / 32);
        if (type == BK_Q4_0)
            for (int64_t b = 0; b < cols / 32; b++) {
                int32_t sum = 0;
                for (int i = 0; i < 32; i++) sum += q[b * 32 + i];
                sx8[b] = 8 * sum;
            }
        int64_t r = 0;
        if (type != BK_Q6_K)
            for (; r + 4 <= rows; r += 4) {
                const uint8_t *row = w + (size_t)r * row_bytes;
                if (type == BK_Q8_0) bk_dot4_q8_0_q8_fast(row, row_bytes, q, d, cols / 32, y + r);
                else bk_dot4_q4_0_q8_fast(row, row_bytes, q, d, sx8, cols / 32, y + r);
            }
        for (; r < rows; r++) {
            const uint8_t *row = w + (size_t)r * row_bytes;
            y[r] = type == BK_Q8_0 ? bk_dot_q8_0_q8_fast(row, q, d, cols / 32)
                 : type == BK_Q4_0 ? bk_dot_q4_0_q8_fast(row, q, d, cols / 32)
                 : bk_dot_q6_K_q8_fast(row, q, d, cols / 256);
        }
        return;
    }
    if (ntok == 1 && type == BK_F16) {
        int64_t r = 0;
        for (; r + 4 <= rows; r += 4) bk_dot4_f16_fast(w + (size_t)r * row_bytes, row_bytes, x, cols, y + r);
        for (; r < rows; r++) y[r] = bk_dot_f16_fast(w + (size_t)r * row_bytes, x, cols);
        return;
    }
    int64_t r = 0;
    if (ntok >= 2 && allow512 && bk_has_avx512()) {
        /* Q4_0 / Q8_0 in int8 where the CPU has VNNI (sixteen rows at a time), then f32 tiles for the rest */
        r = bk_rows_prompt_vnni(type, w, row_bytes, rows, cols, x, ldx, ntok, y, ldy);
        /* f16 / bf16 / f32 as outer products on 32-row panels */
        if (r < rows) r += bk_rows_prompt_panel(type, w + (size_t)r * row_bytes, row_bytes, rows - r, cols, x, ldx, ntok, y + r, ldy);
        if (r < rows)
            r += bk_rows_prompt_512(type, w + (size_t)r * row_bytes, row_bytes, rows - r, cols, x, ldx, ntok, y + r, ldy, scratch);
    } else if (ntok >= 2) {
        /* scratch holds four widened rows */
        for (; r + 4 <= rows; r += 4) {
            const float *wf;
            if (type == BK_F32 && row_bytes == (size_t)cols * 4) {
                wf = (const float *)(w + (size_t)r * row_bytes);
            } else {
                for (int k = 0; k < 4; k++) bk_to_f32_fast(type, w + (size_t)(r + k) * row_bytes, scratch + k * cols, cols);
                wf = scratch;
            }
            for (int64_t t0 = 0; t0 < ntok; t0 += BK_TOKEN_BLOCK) {
                int64_t t1 = t0 + BK_TOKEN_BLOCK < ntok ? t0 + BK_TOKEN_BLOCK : ntok, t = t0;
                for (; t + 3 <= t1; t += 3) {
                    float o[12];
                    bk_tile4x3_fast(wf, cols, x + t * ldx, ldx, cols, o);
                    for (int k = 0; k < 4; k++) for (int j = 0; j < 3; j++) y[(t + j) * ldy + r + k] = o[k * 3 + j];
                }
                for (; t + 2 <= t1; t += 2) {
                    float o[8];
                    bk_tile4x2_fast(wf, cols, x + t * ldx, ldx, cols, o);
                    for (int k = 0; k < 4; k++) { y[t * ldy + r + k] = o[2 * k]; y[(t + 1) * ldy + r + k] = o[2 * k + 1]; }
                }
                for (; t < t1; t++)
                    for (int k = 0; k < 4; k++) y[t * ldy + r + k] = bk_dot_f32_fast(wf + k * cols, x + t * ldx, cols);
            }
        }
    }
    for (; r < rows; r++) {
        const uint8_t *row = w + (size_t)r * row_bytes;
        if (ntok == 1 && type == BK_F16) { y[r] = bk_dot_f16_fast(row, x, cols); continue; }
        const float *wf = (const float *)row;
        if (type != BK_F32) { bk_to_f32_fast(type, row, scratch, cols); wf = scratch; }
        int64_t t = 0;
        for (; t + 4 <= ntok; t += 4) {
            float o[4];
            bk_dot4_f32_fast(wf, x + t * ldx, ldx, cols, o);
            for (int k = 0; k < 4; k++) y[(t + k) * ldy + r] = o[k];
        }
        for (; t < ntok; t++) y[t * ldy + r] = bk_dot_f32_fast(wf, x + t * ldx, cols);
    }
}

static int bk_detect(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}
#endif

static void bk_rows_dot_portable(int type, const uint8_t *w, size_t row_bytes, int64_t rows, int64_t cols,
                                 const float *x, int64_t ldx, int64_t ntok, float *y, int64_t ldy, float *scratch) {
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *row = w + (size_t)r * row_bytes;
        if (ntok == 1 && type == BK_F16) { y[r] = bk_dot_f16_portable(row, x, cols); continue; }
        const float *wf = (const float *)row;
        if (type != BK_F32) { bk_to_f32_portable(type, row, scratch, cols); wf = scratch; }
        for (int64_t t = 0; t < ntok; t++) y[t * ldy + r] = bk_dot_f32_portable(wf, x + t * ldx, cols);
    }
}

/* ---- dispatch ---------------------------------------------------------------------------------------------- */

int bk_cpu_has_avx512(void) {
#if BK_X86
    static int detected = -1;   /* a benign race: every thread computes the same answer */
    if (detected < 0) {
        __builtin_cpu_init();
        detected = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                   __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
    }
    return detected;
#else
    return 0;
#endif
}

int bk_avx512_in_use(void) {
#if BK_X86
    return bk_has_avx512();
#else
    return 0;
#endif
}

int bk_prompt_int8(void) {
#if BK_X86
    return bk_has_avx512() && bk_cpu_has_avx512_vnni();
#else
    return 0;
#endif
}

int bk_fast_path(void) {
#if BK_X86
    static int detected = -1;   /* a benign race: every thread computes the same answer */
    if (detected < 0) detected = bk_detect();
    return detected;
#else
    return 0;
#endif
}

int bk_cpu_has_body(int body) {
    switch (body) {
    case BK_BODY_AUTO: case BK_BODY_PORTABLE: return 1;
    case BK_BODY_AVX2: return bk_fast_path();
#if BK_X86
    case BK_BODY_AVX512: return bk_fast_path() && bk_has_avx512();
#endif
    case BK_BODY_PCLMUL: return bk_crc32_fast_path();
    default: return 0;
    }
}

int bk_to_f32_using(int body, int type, const void *src, float *dst, int64_t n) {
    if (body != BK_BODY_AUTO && body != BK_BODY_PORTABLE && body != BK_BODY_AVX2) return 0;
#if BK_X86
    if (body != BK_BODY_PORTABLE && bk_fast_path()) { bk_to_f32_fast(type, src, dst, n); return 1; }
#endif
    if (body == BK_BODY_AVX2) return 0;
    bk_to_f32_portable(type, src, dst, n);
    return 1;
}

void bk_to_f32(int type, const void *src, float *dst, int64_t n) { bk_to_f32_using(BK_BODY_AUTO, type, src, dst, n); }

float bk_dot_f32(const float *a, const float *b, int64_t n) {
#if BK_X86
    if (bk_fast_path()) return bk_dot_f32_fast(a, b, n);
#endif
    return bk_dot_f32_portable(a, b, n);
}

int bk_rows_dot_using(int body, int type, const void *w, size_t row_bytes, int64_t rows, int64_t cols,
                      const float *x, int64_t ldx, int64_t ntok, float *y, int64_t ldy, float *scratch) {
    if (!bk_cpu_has_body(body) || body == BK_BODY_PCLMUL) return 0;
#if BK_X86
    if (body != BK_BODY_PORTABLE && bk_fast_path()) {
        bk_rows_dot_fast(type, (const uint8_t *)w, row_bytes, rows, cols, x, ldx, ntok, y, ldy, scratch, body != BK_BODY_AVX2);
        return 1;
    }
#endif
    bk_rows_dot_portable(type, (const uint8_t *)w, row_bytes, rows, cols, x, ldx, ntok, y, ldy, scratch);
    return 1;
}

void bk_rows_dot(int type, const void *w, size_t row_bytes, int64_t rows, int64_t cols,
                 const float *x, int64_t ldx, int64_t ntok, float *y, int64_t ldy, float *scratch) {
    bk_rows_dot_using(BK_BODY_AUTO, type, w, row_bytes, rows, cols, x, ldx, ntok, y, ldy, scratch);
}
