/* Prompt matrix products over f16, bf16 and f32 weights as outer products on k-major panels (AVX-512).
 *
 * The 4-row x 6-token dot-product tiles keep one accumulator per (row, token) along k: every k step loads ten
 * vectors for 24 FMAs, mostly from L2, and every tile ends in 24 horizontal sums. In place they reached ~64-72
 * GFLOPS per core, where llama.cpp's f16 prompt products reach ~89. Here 32 rows are first transposed into a panel
 * whose k-th 128 bytes are element k of the 32 rows (widened to f32 once, 16 x 16 blocks transposed in registers,
 * ~0.4 instructions per element). A tile of 32 rows x 12 tokens then needs per k two panel loads and twelve
 * broadcasts of the tokens' k-th activations for 24 FMAs, has no horizontal sums, and writes each token's 32
 * results as two vectors. The panel (128 bytes per column, 256-704 KiB for LLaMA widths) stays in L2 while every
 * token tile sweeps over it; each panel vector is used 12 times per tile.
 *
 * Activations stay f32: the verifier proves conversions lossless, so it does not round them to f16 as llama.cpp's
 * f16 products do. */
#include "billa_kernels.h"
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#define BK_PANEL __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,f16c")))
#define BK_PANEL_ROWS 32
#define BK_PANEL_TOKENS 12

/* 16 elements of a weight row as f32; `m` masks a short last step. */
BK_PANEL static inline __m512 bk_panel_load(int type, const uint8_t *row, int64_t k, __mmask16 m) {
    switch (type) {
    case BK_F16: return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, row + 2 * k));
    case BK_BF16: return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, row + 2 * k)), 16));
    default: return _mm512_maskz_loadu_ps(m, row + 4 * k);
    }
}

/* Sixteen rows (row_bytes apart), columns k0..k0+15, transposed into panel + k * 32 + half * 16. */
BK_PANEL static void bk_panel_transpose16(int type, const uint8_t *w, size_t row_bytes, int64_t k0, __mmask16 m, float *dst) {
    __m512 r[16], a[16];
    for (int i = 0; i < 16; i++) r[i] = bk_panel_load(type, w + (size_t)i * row_bytes, k0, m);
    for (int i = 0; i < 8; i++) {
        a[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);       /* lane: [x0_0 x1_0 x0_1 x1_1] */
        a[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);   /* lane: [x0_2 x1_2 x0_3 x1_3] */
    }
    __m512 c[4][4];   /* c[g][j]: lane l holds rows 4g..4g+3 of column 4l + j */
    for (int g = 0; g < 4; g++) {
        const __m512d a0 = _mm512_castps_pd(a[4 * g]), a1 = _mm512_castps_pd(a[4 * g + 1]);
        const __m512d a2 = _mm512_castps_pd(a[4 * g + 2]), a3 = _mm512_castps_pd(a[4 * g + 3]);
        c[g][0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
        c[g][1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
        c[g][2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
        c[g][3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
    }
    for (int j = 0; j < 4; j++) {
        /* a 4 x 4 transpose of 128-bit lanes: column 4l + j gets lane l of c[0..3][j] */
        const __m512 d0 = _mm512_shuffle_f32x4(c[0][j], c[1][j], 0x44), d1 = _mm512_shuffle_f32x4(c[0][j], c[1][j], 0xEE);
        const __m512 d2 = _mm512_shuffle_f32x4(c[2][j], c[3][j], 0x44), d3 = _mm512_shuffle_f32x4(c[2][j], c[3][j], 0xEE);
        _mm512_store_ps(dst + (0 + j) * BK_PANEL_ROWS, _mm512_shuffle_f32x4(d0, d2, 0x88));
        _mm512_store_ps(dst + (4 + j) * BK_PANEL_ROWS, _mm512_shuffle_f32x4(d0, d2, 0xDD));
        _mm512_store_ps(dst + (8 + j) * BK_PANEL_ROWS, _mm512_shuffle_f32x4(d1, d3, 0x88));
        _mm512_store_ps(dst + (12 + j) * BK_PANEL_ROWS, _mm512_shuffle_f32x4(d1, d3, 0xDD));
    }
}

/* 32 rows x nt tokens over all k: y[t * ldy + 0..31]. x is the token tile k-major (12 floats per k, see
 * bk_rows_prompt_panel), so the broadcasts of one k share a cache line. */
BK_PANEL static inline __attribute__((always_inline)) void bk_panel_tile(const float *panel, int64_t cols, const float *x,
                                                                         float *y, int64_t ldy, const int nt) {
    __m512 lo[BK_PANEL_TOKENS], hi[BK_PANEL_TOKENS];
#pragma clang loop unroll(full)
    for (int t = 0; t < nt; t++) { lo[t] = _mm512_setzero_ps(); hi[t] = _mm512_setzero_ps(); }
    for (int64_t k = 0; k < cols; k++) {
        const __m512 w0 = _mm512_load_ps(panel + k * BK_PANEL_ROWS), w1 = _mm512_load_ps(panel + k * BK_PANEL_ROWS + 16);
        /* unrolled, so the 24 accumulators live in registers (left rolled, clang kept them on the stack) */
#pragma clang loop unroll(full)
        for (int t = 0; t < nt; t++) {
            const __m512 xv = _mm512_set1_ps(x[k * BK_PANEL_TOKENS + t]);
            lo[t] = _mm512_fmadd_ps(w0, xv, lo[t]);
            hi[t] = _mm512_fmadd_ps(w1, xv, hi[t]);
        }
    }
#pragma clang loop unroll(full)
    for (int t = 0; t < nt; t++) { _mm512_storeu_ps(y + t * ldy, lo[t]); _mm512_storeu_ps(y + t * ldy + 16, hi[t]); }
}

BK_PANEL static void bk_panel_tiles(const float *panel, int64_t cols, const float *x, float *y, int64_t ldy, int nt) {
    switch (nt) {
    case 12: bk_panel_tile(panel, cols, x, y, ldy, 12); break;
    case 11: bk_panel_tile(panel, cols, x, y, ldy, 11); break;
    case 10: bk_panel_tile(panel, cols, x, y, ldy, 10); break;
    case 9: bk_panel_tile(panel, cols, x, y, ldy, 9); break;
    case 8: bk_panel_tile(panel, cols, x, y, ldy, 8); break;
    case 7: bk_panel_tile(panel, cols, x, y, ldy, 7); break;
    case 6: bk_panel_tile(panel, cols, x, y, ldy, 6); break;
    case 5: bk_panel_tile(panel, cols, x, y, ldy, 5); break;
    case 4: bk_panel_tile(panel, cols, x, y, ldy, 4); break;
    case 3: bk_panel_tile(panel, cols, x, y, ldy, 3); break;
    case 2: bk_panel_tile(panel, cols, x, y, ldy, 2); break;
    default: bk_panel_tile(panel, cols, x, y, ldy, 1); break;
    }
}

BK_PANEL static void bk_panel_pack(int type, const uint8_t *w, size_t row_bytes, int64_t cols, float *panel) {
    for (int64_t k0 = 0; k0 < cols; k0 += 16) {
        const __mmask16 m = cols - k0 >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (cols - k0)) - 1);
        bk_panel_transpose16(type, w, row_bytes, k0, m, panel + k0 * BK_PANEL_ROWS);
        bk_panel_transpose16(type, w + 16 * row_bytes, row_bytes, k0, m, panel + k0 * BK_PANEL_ROWS + 16);
    }
}

int64_t bk_rows_prompt_panel(int type, const uint8_t *w, size_t row_bytes, int64_t rows, int64_t cols,
                             const float *x, int64_t ldx, int64_t ntok, float *y, int64_t ldy) {
    if ((type != BK_F16 && type != BK_BF16 && type != BK_F32) || rows < BK_PANEL_ROWS || ntok < 2 || !bk_cpu_has_avx512()) return 0;
    const int64_t padded = (cols + 15) / 16 * 16, groups = rows / BK_PANEL_ROWS * BK_PANEL_ROWS;
    const int64_t tiles = (ntok + BK_PANEL_TOKENS - 1) / BK_PANEL_TOKENS;
    float *panel = bk_thread_scratch(0, (size_t)padded * BK_PANEL_ROWS * sizeof(float));
    /* the tokens, tile by tile, k-major: xt[(tile * cols + k) * 12 + t], so a k step's twelve broadcasts share one
     * cache line. Read straight from x, the twelve rows are ldx * 4 bytes apart, a multiple of 4 KiB for LLaMA widths,
     * so their lines would share one L1 set (not measured alone: the first version also kept its accumulators on the
     * stack, see bk_panel_tile). */
    float *xt = bk_thread_scratch(1, (size_t)tiles * cols * BK_PANEL_TOKENS * sizeof(float));
    if (!panel || !xt) return 0;
    for (int64_t tile = 0; tile < tiles; tile++)
        for (int t = 0; t < BK_PANEL_TOKENS; t++) {
            float *dst = xt + (size_t)tile * cols * BK_PANEL_TOKENS + t;
            const int64_t token = tile * BK_PANEL_TOKENS + t;
            if (token < ntok) { const float *src = x + token * ldx; for (int64_t k = 0; k < cols; k++) dst[k * BK_PANEL_TOKENS] = src[k]; }
            else for (int64_t k = 0; k < cols; k++) dst[k * BK_PANEL_TOKENS] = 0;
        }
    for (int64_t r = 0; r < groups; r += BK_PANEL_ROWS) {
        bk_panel_pack(type, w + (size_t)r * row_bytes, row_bytes, cols, panel);
        for (int64_t tile = 0; tile < tiles; tile++) {
            const int64_t t = tile * BK_PANEL_TOKENS;
            bk_panel_tiles(panel, cols, xt + (size_t)tile * cols * BK_PANEL_TOKENS, y + t * ldy + r, ldy,
                           (int)(ntok - t < BK_PANEL_TOKENS ? ntok - t : BK_PANEL_TOKENS));
        }
    }
    return groups;
}

#else
int64_t bk_rows_prompt_panel(int type, const uint8_t *w, size_t row_bytes, int64_t rows, int64_t cols,
                             const float *x, int64_t ldx, int64_t ntok, float *y, int64_t ldy) {
    (void)type; (void)w; (void)row_bytes; (void)rows; (void)cols; (void)x; (void)ldx; (void)ntok; (void)y; (void)ldy;
    return 0;
}
#endif
