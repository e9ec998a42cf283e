/* Prompt matrix products over Q4_0 and Q8_0 weights in int8, with AVX-512 VNNI (vpdpbusd).
 *
 * The f32 prompt tiles widen every weight to f32 and reach ~72 GFLOPS per core; llama.cpp runs these types as int8
 * products of the weights with activations quantized to Q8 blocks (32 int8 and one scale), which does four times
 * the multiply-adds per instruction. This does the same, without repacking the model in memory:
 *
 *   - each token's activations are quantized once per call to Q8 blocks, exactly as the generation kernel does
 *     (amax / 127, round to nearest even), with the block's offset term (see below);
 *   - sixteen weight rows at a time are gathered into a panel whose 32-bit lanes are the rows: for block b and
 *     group k (elements 4k..4k+3), 64 bytes hold those four elements of each of the sixteen rows as unsigned bytes.
 *     One vpdpbusd with the token's four int8 values broadcast then adds four products to every row at once, so no
 *     horizontal sums are needed, and the sixteen row scales of a block are one vector;
 *   - unsigned weight bytes make the product biased: Q4_0 nibbles n stand for n - 8 and Q8_0 bytes are stored as
 *     q + 128, so every block's dot product starts from -8 (or -128) times the sum of the token's int8 values.
 *
 * The panel (576 bytes per block: 16 x 32 weights and 16 scales) is built once per sixteen rows and token block, and
 * stays in L1/L2 while up to eight tokens at a time sweep over it. */
#include "billa_kernels.h"
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#define BK_VNNI __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx512vnni,avx2,fma,f16c")))

int bk_cpu_has_avx512_vnni(void) {
    static int detected = -1;   /* a benign race: every thread computes the same answer */
    if (detected < 0) {
        __builtin_cpu_init();
        detected = bk_cpu_has_avx512() && __builtin_cpu_supports("avx512vnni");
    }
    return detected;
}

/* One token's n activations as Q8 blocks: q (n int8), d (scale per block) and off (minus `bias` times the block's
 * sum of q). The rounding is the generation kernel's: x * (127 / amax), rounded to nearest even. */
BK_VNNI static void bk_vnni_quantize(const float *x, int64_t n, int bias, int8_t *q, float *d, int32_t *off) {
    for (int64_t b = 0; b < n / 32; b++) {
        const __m512 v0 = _mm512_loadu_ps(x + 32 * b), v1 = _mm512_loadu_ps(x + 32 * b + 16);
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        d[b] = amax / 127.0f;
        const __m512 m = _mm512_set1_ps(id);
        const __m512i i0 = _mm512_cvtps_epi32(_mm512_roundscale_ps(_mm512_mul_ps(v0, m), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        const __m512i i1 = _mm512_cvtps_epi32(_mm512_roundscale_ps(_mm512_mul_ps(v1, m), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        _mm_storeu_si128((__m128i *)(q + 32 * b), _mm512_cvtepi32_epi8(i0));
        _mm_storeu_si128((__m128i *)(q + 32 * b + 16), _mm512_cvtepi32_epi8(i1));
        off[b] = -bias * _mm512_reduce_add_epi32(_mm512_add_epi32(i0, i1));
    }
}

/* Sixteen rows (row_bytes apart) of nb blocks into the panel layout above, and their scales as f32. */
BK_VNNI static void bk_vnni_pack(int type, const uint8_t *w, size_t row_bytes, int64_t nb, uint8_t *panel, float *scales) {
    const __m512i rows = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                            _mm512_set1_epi32((int)row_bytes));
    const __m512i low = _mm512_set1_epi32(0x0F0F0F0F), flip = _mm512_set1_epi32((int)0x80808080u);
    const int block = type == BK_Q4_0 ? 18 : 34;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = w + (size_t)b * block;
        __m512i *p = (__m512i *)(panel + 512 * b);
        /* the f16 scale is the block's first two bytes; the gathered dword's upper half is the next two */
        const __m512i s = _mm512_i32gather_epi32(rows, blk, 1);
        _mm512_store_ps(scales + 16 * b, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(s)));
        if (type == BK_Q4_0) {
            /* byte i holds element i (low nibble) and element i + 16 (high nibble) */
            for (int k = 0; k < 4; k++) {
                const __m512i g = _mm512_i32gather_epi32(rows, blk + 2 + 4 * k, 1);
                _mm512_store_si512(p + k, _mm512_and_si512(g, low));
                _mm512_store_si512(p + k + 4, _mm512_and_si512(_mm512_srli_epi32(g, 4), low));
            }
        } else {
            for (int k = 0; k < 8; k++)
                _mm512_store_si512(p + k, _mm512_xor_si512(_mm512_i32gather_epi32(rows, blk + 2 + 4 * k, 1), flip));
        }
    }
}

/* Sixteen rows against nt <= 8 tokens: y[t * ldy + 0..15]. The eight panel vectors of a block are loaded once for
 * all tokens; each token's block sum is a chain of eight vpdpbusd starting from its offset term. */
BK_VNNI static inline __attribute__((always_inline)) void bk_vnni_tile(
        const uint8_t *panel, const float *scales, int64_t nb, const int8_t *q, const float *d, const int32_t *off,
        int64_t cols, float *y, int64_t ldy, const int nt) {
    __m512 acc[8];
    for (int t = 0; t < nt; t++) acc[t] = _mm512_setzero_ps();
    const int64_t nbt = cols / 32;   /* blocks per token row of q, d and off */
    for (int64_t b = 0; b < nb; b++) {
        const __m512i *p = (const __m512i *)(panel + 512 * b);
        const __m512i p0 = _mm512_load_si512(p), p1 = _mm512_load_si512(p + 1), p2 = _mm512_load_si512(p + 2), p3 = _mm512_load_si512(p + 3);
        const __m512i p4 = _mm512_load_si512(p + 4), p5 = _mm512_load_si512(p + 5), p6 = _mm512_load_si512(p + 6), p7 = _mm512_load_si512(p + 7);
        const __m512 ws = _mm512_load_ps(scales + 16 * b);
#pragma clang loop unroll(full)
        for (int t = 0; t < nt; t++) {
            const int32_t *xb = (const int32_t *)(q + t * cols + 32 * b);
            __m512i s = _mm512_set1_epi32(off[t * nbt + b]);
            s = _mm512_dpbusd_epi32(s, p0, _mm512_set1_epi32(xb[0]));
            s = _mm512_dpbusd_epi32(s, p1, _mm512_set1_epi32(xb[1]));
            s = _mm512_dpbusd_epi32(s, p2, _mm512_set1_epi32(xb[2]));
            s = _mm512_dpbusd_epi32(s, p3, _mm512_set1_epi32(xb[3]));
            s = _mm512_dpbusd_epi32(s, p4, _mm512_set1_epi32(xb[4]));
            s = _mm512_dpbusd_epi32(s, p5, _mm512_set1_epi32(xb[5]));
            s = _mm512_dpbusd_epi32(s, p6, _mm512_set1_epi32(xb[6]));
            s = _mm512_dpbusd_epi32(s, p7, _mm512_set1_epi32(xb[7]));
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(ws, _mm512_set1_ps(d[t * nbt + b])), acc[t]);
        }
    }
    for (int t = 0; t < nt; t++) _mm512_storeu_ps(y + t * ldy, acc[t]);
}

BK_VNNI static void bk_vnni_tiles(const uint8_t *panel, const float *scales, int64_t nb, const int8_t *q, const float *d,
                                  const int32_t *off, int64_t cols, float *y, int64_t ldy, int nt) {
    switch (nt) {
    case 8: bk_vnni_tile(panel, scales, nb, q, d, off, cols, y, ldy, 8); break;
    case 7: bk_vnni_tile(panel, scales, nb, q, d, off, cols, y, ldy, 7); break;
    case 6: bk_vnni_tile(panel, scales, nb, q, d, off, cols, y, ldy, 6); break;
    case 5: bk_vnni_tile(panel, scales, nb, q, d, off, cols, y, ldy, 5); break;
    case 4: bk_vnni_tile(panel, scales, nb, q, d, off, cols, y, ldy, 4); break;
    case 3: bk_vnni_tile(panel, scales, nb, q, d, off, cols, y, ldy, 3); break;
    case 2: bk_vnni_tile(panel, scales, nb, q, d, off, cols, y, ldy, 2); break;
    default: bk_vnni_tile(panel, scales, nb, q, d, off, cols, y, ldy, 1); break;
    }
}

/* Quantized activations of a token block stay in L2 (~768 KiB) while every panel sweeps over them. */
#define BK_VNNI_L2_BYTES (768 << 10)

int64_t bk_rows_prompt_vnni(int type, const uint8_t *w, size_t row_bytes, int64_t rows, int64_t cols,
                            const float *x, int64_t ldx, int64_t ntok, float *y, int64_t ldy) {
    if ((type != BK_Q4_0 && type != BK_Q8_0) || cols % 32 != 0 || rows < 16 || ntok < 2 || !bk_cpu_has_avx512_vnni()) return 0;
    const int64_t nb = cols / 32, groups = rows / 16 * 16;
    if ((int64_t)row_bytes * 15 > 0x7FFFFFFF) return 0;   /* gather offsets are 32-bit */
    int64_t block = BK_VNNI_L2_BYTES / cols / 8 * 8;
    if (block < 8) block = 8;
    if (block > ntok) block = ntok;
    uint8_t *panel = bk_thread_scratch(2, (size_t)nb * 576);
    /* the token block's q (block * cols int8), then d and off (block * nb each) */
    int8_t *q = bk_thread_scratch(3, (size_t)block * cols + 8 * (size_t)block * nb);
    if (!panel || !q) return 0;
    float *d = (float *)(q + (size_t)block * cols);
    int32_t *off = (int32_t *)(d + (size_t)block * nb);
    float *scales = (float *)(panel + (size_t)nb * 512);
    const int bias = type == BK_Q4_0 ? 8 : 128;
    for (int64_t t0 = 0; t0 < ntok; t0 += block) {
        const int64_t t1 = t0 + block < ntok ? t0 + block : ntok;
        for (int64_t t = t0; t < t1; t++)
            bk_vnni_quantize(x + t * ldx, cols, bias, q + (t - t0) * cols, d + (t - t0) * nb, off + (t - t0) * nb);
        for (int64_t r = 0; r < groups; r += 16) {
            bk_vnni_pack(type, w + (size_t)r * row_bytes, row_bytes, nb, panel, scales);
            for (int64_t t = t0; t < t1; t += 8) {
                const int64_t i = t - t0;
                bk_vnni_tiles(panel, scales, nb, q + i * cols, d + i * nb, off + i * nb, cols, y + t * ldy + r, ldy,
                              (int)(t1 - t < 8 ? t1 - t : 8));
            }
        }
    }
    return groups;
}

/* ---- generation: one token against Q4_0 rows, two blocks per zmm ------------------------------------------

 * With one token there is nothing to share a panel with, so rows are read as they lie, four at a time (four
 * independent streams, prefetched ahead). The AVX2 kernel spends ~13 instructions per row and block, and Q4_0
 * generation was bound by them rather than by memory (9 GB/s where Q8_0 reached 16). Here a zmm holds two blocks:
 * the 32 raw bytes of blocks A and B, then the same shifted right by four, masked to nibbles, so its bytes are
 * [A 0-15 | B 0-15 | A 16-31 | B 16-31]; the token's int8 values are stored once in that order. One vpdpbusd does
 * both blocks' products, starting from the offset terms (-8 sum x) in lanes 0 and 4; the int32 lanes are scaled by
 * [dA x4 | dB x4 | dA x4 | dB x4]. */

/* The token's Q8 blocks rearranged per pair of blocks: 64 bytes of values in the order above, 16 int32 offset
 * lanes and 16 float scale lanes. */
BK_VNNI static void bk_vnni_token_pairs(const int8_t *q, const float *d, const int32_t *off, int64_t pairs,
                                        int8_t *xp, int32_t *cv, float *dv) {
    for (int64_t p = 0; p < pairs; p++) {
        const int8_t *a = q + 64 * p, *b = a + 32;
        memcpy(xp + 64 * p, a, 16); memcpy(xp + 64 * p + 16, b, 16);
        memcpy(xp + 64 * p + 32, a + 16, 16); memcpy(xp + 64 * p + 48, b + 16, 16);
        for (int k = 0; k < 16; k++) {
            cv[16 * p + k] = k == 0 ? off[2 * p] : k == 4 ? off[2 * p + 1] : 0;
            dv[16 * p + k] = (k / 4) % 2 == 0 ? d[2 * p] : d[2 * p + 1];
        }
    }
}

BK_VNNI static void bk_vnni_q4_0_rows4(const uint8_t *w, size_t row_bytes, const int8_t *xp, const int32_t *cv,
                                       const float *dv, int64_t pairs, float out[4]) {
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    const __m512i low = _mm512_set1_epi8(0x0F);
    const __m512i spread = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1);
    for (int64_t p = 0; p < pairs; p++) {
        const __m512i x = _mm512_loadu_si512(xp + 64 * p);
        const __m512i c = _mm512_loadu_si512(cv + 16 * p);
        const __m512 dx = _mm512_loadu_ps(dv + 16 * p);
        for (int r = 0; r < 4; r++) {
            const uint8_t *blk = w + (size_t)r * row_bytes + (size_t)p * 36;
            _mm_prefetch((const char *)blk + 20 * 18, _MM_HINT_T0);   /* as the AVX2 kernel: 20 blocks ahead */
            const __m256i raw = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(blk + 2))),
                                                        _mm_loadu_si128((const __m128i *)(blk + 20)), 1);
            const __m512i n = _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(raw), _mm256_srli_epi16(raw, 4), 1), low);
            const __m512i s = _mm512_dpbusd_epi32(c, n, x);
            const uint32_t ab = (uint32_t)*(const uint16_t *)blk | (uint32_t)*(const uint16_t *)(blk + 18) << 16;
            const __m512 dw = _mm512_permutexvar_ps(spread, _mm512_castps128_ps512(_mm_cvtph_ps(_mm_cvtsi32_si128((int)ab))));
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, dx), acc[r]);
        }
    }
    for (int r = 0; r < 4; r++) out[r] = _mm512_reduce_add_ps(acc[r]);
}

int64_t bk_rows_token_q4_0_vnni(const uint8_t *w, size_t row_bytes, int64_t rows, int64_t cols, const float *x, float *y) {
    if (cols % 64 != 0 || rows < 4 || !bk_cpu_has_avx512_vnni()) return 0;
    const int64_t nb = cols / 32, pairs = nb / 2;
    /* one allocation: q, d, off, then the pair layout (64 + 64 + 64 bytes per pair) */
    uint8_t *mem = bk_thread_scratch(4, (size_t)cols + (size_t)nb * 8 + (size_t)pairs * 192 + 64);
    if (!mem) return 0;
    int8_t *q = (int8_t *)mem;
    float *d = (float *)(mem + cols);
    int32_t *off = (int32_t *)(d + nb);
    int8_t *xp = (int8_t *)(off + nb);
    int32_t *cv = (int32_t *)(xp + 64 * pairs);
    float *dv = (float *)(cv + 16 * pairs);
    bk_vnni_quantize(x, cols, 8, q, d, off);
    bk_vnni_token_pairs(q, d, off, pairs, xp, cv, dv);
    const int64_t groups = rows / 4 * 4;
    for (int64_t r = 0; r < groups; r += 4) bk_vnni_q4_0_rows4(w + (size_t)r * row_bytes, row_bytes, xp, cv, dv, pairs, y + r);
    return groups;
}

#else
int bk_cpu_has_avx512_vnni(void) { return 0; }
int64_t bk_rows_prompt_vnni(int type, const uint8_t *w, size_t row_bytes, int64_t rows, int64_t cols,
                            const float *x, int64_t ldx, int64_t ntok, float *y, int64_t ldy) {
    (void)type; (void)w; (void)row_bytes; (void)rows; (void)cols; (void)x; (void)ldx; (void)ntok; (void)y; (void)ldy;
    return 0;
}
int64_t bk_rows_token_q4_0_vnni(const uint8_t *w, size_t row_bytes, int64_t rows, int64_t cols, const float *x, float *y) {
    (void)w; (void)row_bytes; (void)rows; (void)cols; (void)x; (void)y;
    return 0;
}
#endif
