/* The pack format's chunk codec kernels (formats/pack.md 5.1, 5.2): byte-plane split and merge, and XXH64.
 *
 * Every split is a bit permutation of the element followed by a byte transpose. For bf16 the permuted word
 * w = (v & 0x7F) | ((v >> 8) & 0x80) | ((v << 1) & 0xFF00) has the exponent in its high byte and sign|mantissa in its
 * low byte; for f32 w = (v & 0x007FFFFF) | ((v >> 8) & 0x00800000) | ((v << 1) & 0xFF000000) holds planes 0..3 in
 * bytes 3..0. Plane p is byte (size - 1 - p) of w. Merging transposes back and inverts the permutation.
 *
 * Dispatch as in kernels.c: bodies for AVX-512BW and AVX2 behind __attribute__((target)), chosen at run time, and
 * a portable body; `_using(level)` picks one for tests (BK_PLANES_*). Merge can hash the bytes it writes block by
 * block while they are in L1, so decoding reads its output once. */
#include "billa_kernels.h"
#include <math.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BK_PL_X86 1
#define BK_PL_AVX2 __attribute__((target("avx2")))
#define BK_PL_AVX512 __attribute__((target("avx512f,avx512bw,avx2")))
#else
#define BK_PL_X86 0
#endif

/* ---- XXH64 ------------------------------------------------------------------------------------------------ */

#define XP1 0x9E3779B185EBCA87ULL
#define XP2 0xC2B2AE3D27D4EB4FULL
#define XP3 0x165667B19E3779F9ULL
#define XP4 0x85EBCA77C2B2AE63ULL
#define XP5 0x27D4EB2F165667C5ULL

static inline uint64_t bk_rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
static inline uint64_t bk_rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; } /* little-endian hosts */
static inline uint32_t bk_rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t bk_xround(uint64_t acc, uint64_t in) { return bk_rotl64(acc + in * XP2, 31) * XP1; }
static inline uint64_t bk_xmerge(uint64_t h, uint64_t v) { return (h ^ bk_xround(0, v)) * XP1 + XP4; }

/* Streaming state over whole 32-byte stripes; the tail goes to bk_xxh_final. */
typedef struct { uint64_t v[4]; uint64_t seed; uint64_t total; } bk_xxh_state;

static inline void bk_xxh_init(bk_xxh_state *s, uint64_t seed) {
    s->v[0] = seed + XP1 + XP2; s->v[1] = seed + XP2; s->v[2] = seed; s->v[3] = seed - XP1;
    s->seed = seed; s->total = 0;
}

/* Consumes n bytes, n a multiple of 32. */
static inline void bk_xxh_stripes(bk_xxh_state *s, const uint8_t *p, size_t n) {
    uint64_t v1 = s->v[0], v2 = s->v[1], v3 = s->v[2], v4 = s->v[3];
    for (size_t i = 0; i < n; i += 32) {
        v1 = bk_xround(v1, bk_rd64(p + i));
        v2 = bk_xround(v2, bk_rd64(p + i + 8));
        v3 = bk_xround(v3, bk_rd64(p + i + 16));
        v4 = bk_xround(v4, bk_rd64(p + i + 24));
        __asm__("" : "+r"(v1), "+r"(v2), "+r"(v3), "+r"(v4)); /* scalar lanes (see BK_HASH) */
    }
    s->v[0] = v1; s->v[1] = v2; s->v[2] = v3; s->v[3] = v4;
    s->total += n;
}

/* Finishes with the last `n` (< 32) bytes at p. */
static uint64_t bk_xxh_final(const bk_xxh_state *s, const uint8_t *p, size_t n) {
    uint64_t total = s->total + n, h;
    if (s->total > 0) {
        h = bk_rotl64(s->v[0], 1) + bk_rotl64(s->v[1], 7) + bk_rotl64(s->v[2], 12) + bk_rotl64(s->v[3], 18);
        for (int k = 0; k < 4; k++) h = bk_xmerge(h, s->v[k]);
    } else {
        h = s->seed + XP5;
    }
    h += total;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) { h ^= bk_xround(0, bk_rd64(p + i)); h = bk_rotl64(h, 27) * XP1 + XP4; }
    if (i + 4 <= n) { h ^= (uint64_t)bk_rd32(p + i) * XP1; h = bk_rotl64(h, 23) * XP2 + XP3; i += 4; }
    for (; i < n; i++) { h ^= (uint64_t)p[i] * XP5; h = bk_rotl64(h, 11) * XP1; }
    h ^= h >> 33; h *= XP2; h ^= h >> 29; h *= XP3; h ^= h >> 32;
    return h;
}

uint64_t bk_xxh64(const void *data, size_t n, uint64_t seed) {
    const uint8_t *p = (const uint8_t *)data;
    bk_xxh_state s;
    bk_xxh_init(&s, seed);
    if (n == 0 || p == NULL) return bk_xxh_final(&s, p, 0);
    size_t whole = n & ~(size_t)31;
    if (whole) bk_xxh_stripes(&s, p, whole);
    return bk_xxh_final(&s, p + whole, n - whole);
}

/* ---- portable bodies (element range [k0, n)) -------------------------------------------------------------- */

static inline uint16_t bk_bf16_fwd(uint16_t v) { return (uint16_t)((v & 0x7F) | ((v >> 8) & 0x80) | ((v << 1) & 0xFF00)); }
static inline uint16_t bk_bf16_inv(uint16_t w) { return (uint16_t)((w & 0x7F) | ((w << 8) & 0x8000) | ((w >> 1) & 0x7F80)); }
static inline uint32_t bk_f32_fwd(uint32_t v) { return (v & 0x007FFFFFu) | ((v >> 8) & 0x00800000u) | ((v << 1) & 0xFF000000u); }
static inline uint32_t bk_f32_inv(uint32_t w) { return (w & 0x007FFFFFu) | ((w << 8) & 0x80000000u) | ((w >> 1) & 0x7F800000u); }

static void bk_split_portable(int t, const uint8_t *src, size_t k0, size_t n, uint8_t *const *pl) {
    switch (t) {
    case BK_PLANES_BYTES16:
        for (size_t k = k0; k < n; k++) { pl[0][k] = src[2 * k + 1]; pl[1][k] = src[2 * k]; }
        break;
    case BK_PLANES_BF16:
        for (size_t k = k0; k < n; k++) {
            uint16_t v; memcpy(&v, src + 2 * k, 2);
            uint16_t w = bk_bf16_fwd(v);
            pl[0][k] = (uint8_t)(w >> 8); pl[1][k] = (uint8_t)w;
        }
        break;
    case BK_PLANES_F32:
        for (size_t k = k0; k < n; k++) {
            uint32_t w = bk_f32_fwd(bk_rd32(src + 4 * k));
            pl[0][k] = (uint8_t)(w >> 24); pl[1][k] = (uint8_t)(w >> 16); pl[2][k] = (uint8_t)(w >> 8); pl[3][k] = (uint8_t)w;
        }
        break;
    }
}

static void bk_merge_portable(int t, const uint8_t *const *pl, size_t k0, size_t n, uint8_t *dst) {
    switch (t) {
    case BK_PLANES_BYTES16:
        for (size_t k = k0; k < n; k++) { dst[2 * k] = pl[1][k]; dst[2 * k + 1] = pl[0][k]; }
        break;
    case BK_PLANES_BF16:
        for (size_t k = k0; k < n; k++) {
            uint16_t v = bk_bf16_inv((uint16_t)((pl[0][k] << 8) | pl[1][k]));
            memcpy(dst + 2 * k, &v, 2);
        }
        break;
    case BK_PLANES_F32:
        for (size_t k = k0; k < n; k++) {
            uint32_t w = ((uint32_t)pl[0][k] << 24) | ((uint32_t)pl[1][k] << 16) | ((uint32_t)pl[2][k] << 8) | pl[3][k];
            uint32_t v = bk_f32_inv(w);
            memcpy(dst + 4 * k, &v, 4);
        }
        break;
    }
}

/* ---- AVX2 bodies: return the number of elements done (a multiple of 32); the caller finishes the tail -------- */

/* The SIMD bodies hash the bytes of each step (the source for split, the output for merge) in the same loop when
 * `st` is not NULL: the XXH64 rounds run on the integer multiplier while the shuffles use the vector ports, so the
 * out-of-order core overlaps them. Steps are whole 32-byte stripes. The empty asm keeps the compiler from
 * vectorising the four lanes, which AVX2/AVX-512F can only multiply in 64 bits with three 32-bit products. */
#define BK_HASH_BEGIN                                                                                              \
    uint64_t hv1 = 0, hv2 = 0, hv3 = 0, hv4 = 0;                                                                   \
    if (st) { hv1 = st->v[0]; hv2 = st->v[1]; hv3 = st->v[2]; hv4 = st->v[3]; }
#define BK_HASH(p, bytes)                                                                                          \
    if (st) {                                                                                                      \
        const uint8_t *q_ = (p);                                                                                   \
        for (int s_ = 0; s_ < (bytes); s_ += 32) {                                                                 \
            hv1 = bk_xround(hv1, bk_rd64(q_ + s_)); hv2 = bk_xround(hv2, bk_rd64(q_ + s_ + 8));                    \
            hv3 = bk_xround(hv3, bk_rd64(q_ + s_ + 16)); hv4 = bk_xround(hv4, bk_rd64(q_ + s_ + 24));              \
            __asm__("" : "+r"(hv1), "+r"(hv2), "+r"(hv3), "+r"(hv4)); /* keep the lanes scalar: no SLP */       \
        }                                                                                                          \
    }
#define BK_HASH_END(done)                                                                                          \
    if (st) { st->v[0] = hv1; st->v[1] = hv2; st->v[2] = hv3; st->v[3] = hv4; st->total += (done); }

#if BK_PL_X86
/* Within each 128-bit lane: dword j = byte (3 - j) of the lane's four elements (plane order), and its inverse. */
#define BK_T4_FWD 3, 7, 11, 15, 2, 6, 10, 14, 1, 5, 9, 13, 0, 4, 8, 12
#define BK_T4_INV 12, 8, 4, 0, 13, 9, 5, 1, 14, 10, 6, 2, 15, 11, 7, 3

BK_PL_AVX2 static size_t bk_split_avx2(int t, const uint8_t *src, size_t n, uint8_t *const *pl, bk_xxh_state *st) {
    size_t k = 0;
    BK_HASH_BEGIN
    if (t == BK_PLANES_F32) {
        const __m256i shuf = _mm256_setr_epi8(BK_T4_FWD, BK_T4_FWD);
        const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        const __m256i m23 = _mm256_set1_epi32(0x007FFFFF), s23 = _mm256_set1_epi32(0x00800000),
                      e = _mm256_set1_epi32((int)0xFF000000u);
        for (; k + 32 <= n; k += 32) {
            __m256i x[4];
            for (int i = 0; i < 4; i++) {
                __m256i v = _mm256_loadu_si256((const __m256i *)(src + 4 * k + 32 * i));
                __m256i w = _mm256_or_si256(_mm256_and_si256(v, m23),
                                            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(v, 8), s23),
                                                            _mm256_and_si256(_mm256_slli_epi32(v, 1), e)));
                /* qword j = plane j's 8 bytes for these 8 elements */
                x[i] = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(w, shuf), perm);
            }
            __m256i ablo = _mm256_unpacklo_epi64(x[0], x[1]), abhi = _mm256_unpackhi_epi64(x[0], x[1]);
            __m256i cdlo = _mm256_unpacklo_epi64(x[2], x[3]), cdhi = _mm256_unpackhi_epi64(x[2], x[3]);
            _mm256_storeu_si256((__m256i *)(pl[0] + k), _mm256_permute2x128_si256(ablo, cdlo, 0x20));
            _mm256_storeu_si256((__m256i *)(pl[1] + k), _mm256_permute2x128_si256(abhi, cdhi, 0x20));
            _mm256_storeu_si256((__m256i *)(pl[2] + k), _mm256_permute2x128_si256(ablo, cdlo, 0x31));
            _mm256_storeu_si256((__m256i *)(pl[3] + k), _mm256_permute2x128_si256(abhi, cdhi, 0x31));
            BK_HASH(src + 4 * k, 128)
        }
        BK_HASH_END(4 * k)
        return k;
    }
    const __m256i ff = _mm256_set1_epi16(0xFF), m7f = _mm256_set1_epi16(0x7F), m80 = _mm256_set1_epi16(0x80);
    const int bf = t == BK_PLANES_BF16;
    for (; k + 32 <= n; k += 32) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(src + 2 * k));
        __m256i b = _mm256_loadu_si256((const __m256i *)(src + 2 * k + 32));
        __m256i ha, hb, la, lb;
        if (bf) {
            ha = _mm256_and_si256(_mm256_srli_epi16(a, 7), ff);
            hb = _mm256_and_si256(_mm256_srli_epi16(b, 7), ff);
            la = _mm256_or_si256(_mm256_and_si256(a, m7f), _mm256_and_si256(_mm256_srli_epi16(a, 8), m80));
            lb = _mm256_or_si256(_mm256_and_si256(b, m7f), _mm256_and_si256(_mm256_srli_epi16(b, 8), m80));
        } else {
            ha = _mm256_srli_epi16(a, 8); hb = _mm256_srli_epi16(b, 8);
            la = _mm256_and_si256(a, ff); lb = _mm256_and_si256(b, ff);
        }
        _mm256_storeu_si256((__m256i *)(pl[0] + k), _mm256_permute4x64_epi64(_mm256_packus_epi16(ha, hb), 0xD8));
        _mm256_storeu_si256((__m256i *)(pl[1] + k), _mm256_permute4x64_epi64(_mm256_packus_epi16(la, lb), 0xD8));
        BK_HASH(src + 2 * k, 64)
    }
    BK_HASH_END(2 * k)
    return k;
}

BK_PL_AVX2 static size_t bk_merge_avx2(int t, const uint8_t *const *pl, size_t k0, size_t n, uint8_t *dst, bk_xxh_state *st) {
    size_t k = k0;
    BK_HASH_BEGIN
    if (t == BK_PLANES_F32) {
        const __m256i shuf = _mm256_setr_epi8(BK_T4_INV, BK_T4_INV);
        const __m256i perm = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
        const __m256i m23 = _mm256_set1_epi32(0x007FFFFF), sg = _mm256_set1_epi32((int)0x80000000u),
                      e = _mm256_set1_epi32(0x7F800000);
        for (; k + 32 <= n; k += 32) {
            __m256i p0 = _mm256_loadu_si256((const __m256i *)(pl[0] + k)), p1 = _mm256_loadu_si256((const __m256i *)(pl[1] + k));
            __m256i p2 = _mm256_loadu_si256((const __m256i *)(pl[2] + k)), p3 = _mm256_loadu_si256((const __m256i *)(pl[3] + k));
            __m256i ablo = _mm256_permute2x128_si256(p0, p2, 0x20), cdlo = _mm256_permute2x128_si256(p0, p2, 0x31);
            __m256i abhi = _mm256_permute2x128_si256(p1, p3, 0x20), cdhi = _mm256_permute2x128_si256(p1, p3, 0x31);
            __m256i x[4] = {_mm256_unpacklo_epi64(ablo, abhi), _mm256_unpackhi_epi64(ablo, abhi),
                            _mm256_unpacklo_epi64(cdlo, cdhi), _mm256_unpackhi_epi64(cdlo, cdhi)};
            for (int i = 0; i < 4; i++) {
                __m256i w = _mm256_shuffle_epi8(_mm256_permutevar8x32_epi32(x[i], perm), shuf);
                __m256i v = _mm256_or_si256(_mm256_and_si256(w, m23),
                                            _mm256_or_si256(_mm256_and_si256(_mm256_slli_epi32(w, 8), sg),
                                                            _mm256_and_si256(_mm256_srli_epi32(w, 1), e)));
                _mm256_storeu_si256((__m256i *)(dst + 4 * k + 32 * i), v);
            }
            BK_HASH(dst + 4 * k, 128)
        }
        BK_HASH_END(4 * (k - k0))
        return k;
    }
    const int bf = t == BK_PLANES_BF16;
    const __m256i m80 = _mm256_set1_epi8((char)0x80), m7f = _mm256_set1_epi8(0x7F);
    for (; k + 32 <= n; k += 32) {
        __m256i hi = _mm256_loadu_si256((const __m256i *)(pl[0] + k)), lo = _mm256_loadu_si256((const __m256i *)(pl[1] + k));
        if (bf) {   /* to high and low bytes first, as in bk_merge_avx512 */
            __m256i e = hi;
            hi = _mm256_or_si256(_mm256_and_si256(lo, m80), _mm256_and_si256(_mm256_srli_epi16(e, 1), m7f));
            lo = _mm256_or_si256(_mm256_and_si256(lo, m7f), _mm256_and_si256(_mm256_slli_epi16(e, 7), m80));
        }
        __m256i ul = _mm256_unpacklo_epi8(lo, hi), uh = _mm256_unpackhi_epi8(lo, hi);
        __m256i a = _mm256_permute2x128_si256(ul, uh, 0x20), b = _mm256_permute2x128_si256(ul, uh, 0x31);
        _mm256_storeu_si256((__m256i *)(dst + 2 * k), a);
        _mm256_storeu_si256((__m256i *)(dst + 2 * k + 32), b);
        BK_HASH(dst + 2 * k, 64)
    }
    BK_HASH_END(2 * (k - k0))
    return k;
}

/* ---- AVX-512BW bodies: 64 elements per step ---------------------------------------------------------------- */

BK_PL_AVX512 static size_t bk_split_avx512(int t, const uint8_t *src, size_t n, uint8_t *const *pl, bk_xxh_state *st) {
    size_t k = 0;
    BK_HASH_BEGIN
    if (t == BK_PLANES_F32) {
        const __m512i shuf = _mm512_broadcast_i32x4(_mm_setr_epi8(BK_T4_FWD));
        const __m512i perm = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
        const __m512i m23 = _mm512_set1_epi32(0x007FFFFF), s23 = _mm512_set1_epi32(0x00800000),
                      e = _mm512_set1_epi32((int)0xFF000000u);
        for (; k + 64 <= n; k += 64) {
            __m512i x[4];
            for (int i = 0; i < 4; i++) {
                __m512i v = _mm512_loadu_si512((const void *)(src + 4 * k + 64 * i));
                __m512i w = _mm512_or_si512(_mm512_and_si512(v, m23),
                                            _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(v, 8), s23),
                                                            _mm512_and_si512(_mm512_slli_epi32(v, 1), e)));
                /* 128-bit lane j = plane j's 16 bytes for these 16 elements */
                x[i] = _mm512_permutexvar_epi32(perm, _mm512_shuffle_epi8(w, shuf));
            }
            __m512i t0 = _mm512_shuffle_i64x2(x[0], x[1], _MM_SHUFFLE(1, 0, 1, 0));
            __m512i t1 = _mm512_shuffle_i64x2(x[0], x[1], _MM_SHUFFLE(3, 2, 3, 2));
            __m512i t2 = _mm512_shuffle_i64x2(x[2], x[3], _MM_SHUFFLE(1, 0, 1, 0));
            __m512i t3 = _mm512_shuffle_i64x2(x[2], x[3], _MM_SHUFFLE(3, 2, 3, 2));
            _mm512_storeu_si512((void *)(pl[0] + k), _mm512_shuffle_i64x2(t0, t2, _MM_SHUFFLE(2, 0, 2, 0)));
            _mm512_storeu_si512((void *)(pl[1] + k), _mm512_shuffle_i64x2(t0, t2, _MM_SHUFFLE(3, 1, 3, 1)));
            _mm512_storeu_si512((void *)(pl[2] + k), _mm512_shuffle_i64x2(t1, t3, _MM_SHUFFLE(2, 0, 2, 0)));
            _mm512_storeu_si512((void *)(pl[3] + k), _mm512_shuffle_i64x2(t1, t3, _MM_SHUFFLE(3, 1, 3, 1)));
            BK_HASH(src + 4 * k, 256)
        }
        BK_HASH_END(4 * k)
        return k;
    }
    /* Bytes are split as for bytes16 (H = high bytes, L = low bytes); for bf16 the planes are then fixed per byte:
     * exponent = H << 1 | L >> 7, sign|mantissa = (H & 0x80) | (L & 0x7F). 16-bit shifts are fine: the bits they
     * carry across bytes are the ones the bit-select (vpternlog 0xCA: A ? B : C) drops. */
    const __m512i ff = _mm512_set1_epi16(0xFF), mfe = _mm512_set1_epi8((char)0xFE), m80 = _mm512_set1_epi8((char)0x80);
    const __m512i fix = _mm512_setr_epi64(0, 2, 4, 6, 1, 3, 5, 7);
    const int bf = t == BK_PLANES_BF16;
    for (; k + 64 <= n; k += 64) {
        __m512i a = _mm512_loadu_si512((const void *)(src + 2 * k));
        __m512i b = _mm512_loadu_si512((const void *)(src + 2 * k + 64));
        __m512i h = _mm512_permutexvar_epi64(fix, _mm512_packus_epi16(_mm512_srli_epi16(a, 8), _mm512_srli_epi16(b, 8)));
        __m512i l = _mm512_permutexvar_epi64(fix, _mm512_packus_epi16(_mm512_and_si512(a, ff), _mm512_and_si512(b, ff)));
        if (bf) {
            __m512i e = _mm512_ternarylogic_epi32(mfe, _mm512_slli_epi16(h, 1), _mm512_srli_epi16(l, 7), 0xCA);
            l = _mm512_ternarylogic_epi32(m80, h, l, 0xCA);
            h = e;
        }
        _mm512_storeu_si512((void *)(pl[0] + k), h);
        _mm512_storeu_si512((void *)(pl[1] + k), l);
        BK_HASH(src + 2 * k, 128)
    }
    BK_HASH_END(2 * k)
    return k;
}

BK_PL_AVX512 static size_t bk_merge_avx512(int t, const uint8_t *const *pl, size_t k0, size_t n, uint8_t *dst, bk_xxh_state *st) {
    size_t k = k0;
    BK_HASH_BEGIN
    if (t == BK_PLANES_F32) {
        const __m512i shuf = _mm512_broadcast_i32x4(_mm_setr_epi8(BK_T4_INV));
        const __m512i perm = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
        const __m512i m23 = _mm512_set1_epi32(0x007FFFFF), sg = _mm512_set1_epi32((int)0x80000000u),
                      e = _mm512_set1_epi32(0x7F800000);
        for (; k + 64 <= n; k += 64) {
            __m512i p0 = _mm512_loadu_si512((const void *)(pl[0] + k)), p1 = _mm512_loadu_si512((const void *)(pl[1] + k));
            __m512i p2 = _mm512_loadu_si512((const void *)(pl[2] + k)), p3 = _mm512_loadu_si512((const void *)(pl[3] + k));
            __m512i t0 = _mm512_shuffle_i64x2(p0, p1, _MM_SHUFFLE(1, 0, 1, 0));
            __m512i t1 = _mm512_shuffle_i64x2(p0, p1, _MM_SHUFFLE(3, 2, 3, 2));
            __m512i t2 = _mm512_shuffle_i64x2(p2, p3, _MM_SHUFFLE(1, 0, 1, 0));
            __m512i t3 = _mm512_shuffle_i64x2(p2, p3, _MM_SHUFFLE(3, 2, 3, 2));
            __m512i x[4] = {_mm512_shuffle_i64x2(t0, t2, _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_i64x2(t0, t2, _MM_SHUFFLE(3, 1, 3, 1)),
                            _mm512_shuffle_i64x2(t1, t3, _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_i64x2(t1, t3, _MM_SHUFFLE(3, 1, 3, 1))};
            for (int i = 0; i < 4; i++) {
                __m512i w = _mm512_shuffle_epi8(_mm512_permutexvar_epi32(perm, x[i]), shuf);
                __m512i v = _mm512_or_si512(_mm512_and_si512(w, m23),
                                            _mm512_or_si512(_mm512_and_si512(_mm512_slli_epi32(w, 8), sg),
                                                            _mm512_and_si512(_mm512_srli_epi32(w, 1), e)));
                _mm512_storeu_si512((void *)(dst + 4 * k + 64 * i), v);
            }
            BK_HASH(dst + 4 * k, 256)
        }
        BK_HASH_END(4 * (k - k0))
        return k;
    }
    const int bf = t == BK_PLANES_BF16;
    /* bf16: the planes become the high and low bytes first (H = (p1 & 0x80) | p0 >> 1, L = p0 << 7 | (p1 & 0x7F)),
     * then interleave as bytes16. */
    const __m512i m80 = _mm512_set1_epi8((char)0x80), m7f = _mm512_set1_epi8(0x7F);
    const __m512i i0 = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11), i1 = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
    for (; k + 64 <= n; k += 64) {
        __m512i hi = _mm512_loadu_si512((const void *)(pl[0] + k)), lo = _mm512_loadu_si512((const void *)(pl[1] + k));
        if (bf) {
            __m512i e = hi;
            hi = _mm512_ternarylogic_epi32(m80, lo, _mm512_srli_epi16(e, 1), 0xCA);
            lo = _mm512_ternarylogic_epi32(m7f, lo, _mm512_slli_epi16(e, 7), 0xCA);
        }
        __m512i ul = _mm512_unpacklo_epi8(lo, hi), uh = _mm512_unpackhi_epi8(lo, hi);
        __m512i a = _mm512_permutex2var_epi64(ul, i0, uh), b = _mm512_permutex2var_epi64(ul, i1, uh);
        _mm512_storeu_si512((void *)(dst + 2 * k), a);
        _mm512_storeu_si512((void *)(dst + 2 * k + 64), b);
        BK_HASH(dst + 2 * k, 128)
    }
    BK_HASH_END(2 * (k - k0))
    return k;
}

static int bk_planes_detect(void) {
    static int cached = -1;   /* a benign race: every thread computes the same answer */
    int v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (v < 0) {
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")) v = BK_PLANES_AVX512;
        else if (__builtin_cpu_supports("avx2")) v = BK_PLANES_AVX2;
        else v = BK_PLANES_PORTABLE;
        __atomic_store_n(&cached, v, __ATOMIC_RELAXED);
    }
    return v;
}
#endif

int bk_planes_best_level(void) {
#if BK_PL_X86
    return bk_planes_detect();
#else
    return BK_PLANES_PORTABLE;
#endif
}

/* The body a level runs: AUTO is the best this CPU has; -1 for a level it lacks (never a silent fallback). */
static int bk_planes_level(int level) {
    int best = bk_planes_best_level();
    if (level == BK_PLANES_AUTO) return best;
    return (level < BK_PLANES_PORTABLE || level > best) ? -1 : level;
}

static size_t bk_esize(int t) { return t == BK_PLANES_F32 ? 4 : t == BK_PLANES_NONE ? 1 : 2; }

/* Blocks of this many bytes are split/merged by the portable body, then hashed while in L1; a multiple of 32 and of
 * every element size. */
#define BK_PL_BLOCK 8192

static uint64_t bk_planes_split_level(int level, int t, const void *src, size_t bytes, uint8_t *p0, uint8_t *p1, uint8_t *p2,
                                      uint8_t *p3, int hash) {
    const uint8_t *s = (const uint8_t *)src;
    if (t == BK_PLANES_NONE) {
        if (bytes) memcpy(p0, s, bytes);
        return hash ? bk_xxh64(s, bytes, 0) : 0;
    }
    const size_t es = bk_esize(t), n = bytes / es, per = BK_PL_BLOCK / es;
    uint8_t *pl[4] = {p0, p1, p2, p3};
    bk_xxh_state st;
    bk_xxh_init(&st, 0);
    bk_xxh_state *sp = hash ? &st : NULL;
    size_t k = 0;
#if BK_PL_X86
    if (level == BK_PLANES_AVX512) k = bk_split_avx512(t, s, n, pl, sp);
    else if (level == BK_PLANES_AVX2) k = bk_split_avx2(t, s, n, pl, sp);
#else
    (void)level;
#endif
    size_t done = k * es;   /* bytes hashed */
    while (k < n) {
        size_t m = n - k < per ? n - k : per;
        uint8_t *q[4] = {p0 + k, p1 ? p1 + k : 0, p2 ? p2 + k : 0, p3 ? p3 + k : 0};
        bk_split_portable(t, s + k * es, 0, m, q);
        if (hash) {
            size_t whole = (m * es) & ~(size_t)31;
            if (whole) bk_xxh_stripes(&st, s + done, whole);
            done += whole;
        }
        k += m;
    }
    if (!hash) return 0;
    size_t whole = (bytes - done) & ~(size_t)31;
    if (whole) bk_xxh_stripes(&st, s + done, whole);
    return bk_xxh_final(&st, s + done + whole, bytes - done - whole);
}

static uint64_t bk_planes_merge_level(int level, int t, const uint8_t *p0, const uint8_t *p1, const uint8_t *p2,
                                      const uint8_t *p3, void *dst, size_t bytes, int hash) {
    uint8_t *d = (uint8_t *)dst;
    if (t == BK_PLANES_NONE) {
        if (bytes && d != p0) memcpy(d, p0, bytes);
        return hash ? bk_xxh64(d, bytes, 0) : 0;
    }
    const size_t es = bk_esize(t), n = bytes / es, per = BK_PL_BLOCK / es;
    const uint8_t *pl[4] = {p0, p1, p2, p3};
    bk_xxh_state st;
    bk_xxh_init(&st, 0);
    bk_xxh_state *sp = hash ? &st : NULL;
    size_t k = 0;
#if BK_PL_X86
    if (level == BK_PLANES_AVX512) k = bk_merge_avx512(t, pl, 0, n, d, sp);
    else if (level == BK_PLANES_AVX2) k = bk_merge_avx2(t, pl, 0, n, d, sp);
#else
    (void)level;
#endif
    size_t done = k * es;
    while (k < n) {
        size_t m = n - k < per ? n - k : per;
        bk_merge_portable(t, pl, k, k + m, d);
        if (hash) {
            size_t whole = (m * es) & ~(size_t)31;
            if (whole) bk_xxh_stripes(&st, d + done, whole);
            done += whole;
        }
        k += m;
    }
    if (!hash) return 0;
    size_t whole = (bytes - done) & ~(size_t)31;
    if (whole) bk_xxh_stripes(&st, d + done, whole);
    return bk_xxh_final(&st, d + done + whole, bytes - done - whole);
}

int bk_planes_split_using(int level, int t, const void *src, size_t bytes, uint8_t *p0, uint8_t *p1, uint8_t *p2,
                          uint8_t *p3, uint64_t *hash) {
    level = bk_planes_level(level);
    if (level < 0) return 0;
    const uint64_t h = bk_planes_split_level(level, t, src, bytes, p0, p1, p2, p3, hash != NULL);
    if (hash) *hash = h;
    return 1;
}

int bk_planes_merge_using(int level, int t, const uint8_t *p0, const uint8_t *p1, const uint8_t *p2,
                          const uint8_t *p3, void *dst, size_t bytes, uint64_t *hash) {
    level = bk_planes_level(level);
    if (level < 0) return 0;
    const uint64_t h = bk_planes_merge_level(level, t, p0, p1, p2, p3, dst, bytes, hash != NULL);
    if (hash) *hash = h;
    return 1;
}

uint64_t bk_planes_split(int t, const void *src, size_t bytes, uint8_t *p0, uint8_t *p1, uint8_t *p2, uint8_t *p3, int hash) {
    return bk_planes_split_level(bk_planes_level(BK_PLANES_AUTO), t, src, bytes, p0, p1, p2, p3, hash);
}

uint64_t bk_planes_merge(int t, const uint8_t *p0, const uint8_t *p1, const uint8_t *p2, const uint8_t *p3, void *dst,
                         size_t bytes, int hash) {
    return bk_planes_merge_level(bk_planes_level(BK_PLANES_AUTO), t, p0, p1, p2, p3, dst, bytes, hash);
}

/* Order-0 entropy in bits per byte of n bytes. */
double bk_byte_entropy(const void *data, size_t n) {
    if (n == 0) return 0;
    uint32_t h[4][256];
    memset(h, 0, sizeof h);
    const uint8_t *b = (const uint8_t *)data;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) { h[0][b[i]]++; h[1][b[i + 1]]++; h[2][b[i + 2]]++; h[3][b[i + 3]]++; }
    for (; i < n; i++) h[0][b[i]]++;
    double e = 0, total = (double)n;
    for (int k = 0; k < 256; k++) {
        uint32_t c = h[0][k] + h[1][k] + h[2][k] + h[3][k];
        if (c) { double q = (double)c / total; e -= q * log2(q); }
    }
    return e;
}
