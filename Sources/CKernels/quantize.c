/* ggml's group scale searches: make_qx_quants (rmse_type 1) for sixteen groups at a time — a Q6_K block's 16 x 16
 * with x^2 weights, and with an importance matrix's weights Q6_K/Q3_K's 16 x 16 and sixteen Q4_0/Q5_0 blocks of 32 —
 * and make_qkx2_quants for the 8 x 32 of a Q4_K/Q5_K block (importance.c runs it as make_qkx3 for Q4_1/Q5_1/Q4_K/
 * Q5_K), plus Q8_0.
 *
 * Each search over its candidate scales is a chain of dependent float additions per group, which no compiler may
 * reorder: llama-quantize's bytes depend on that order. The groups are independent, though, so the fast bodies put
 * one group in each AVX-512 lane and run the chains side by side, each in its own sequential order: bit for bit the
 * scalar result, at a fraction of the latency. */
#include "billa_kernels.h"
#include "quant_common.h"
#include <string.h>

/* Every product is rounded before it is added, as ggml's reference C computes it (and billa's Swift did). */
#pragma STDC FP_CONTRACT OFF

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BK_Q_X86 1
#define BK_Q512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq")))
#else
#define BK_Q_X86 0
#endif

/* ggml's make_qx_quants (rmse_type 1) for one group, as ggml writes it: weights qw, or x^2 when qw is NULL. */
float bk_qx_group(int n, int nmax, const float *x, const float *qw, int8_t *L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        float ax = __builtin_fabsf(x[i]);
        if (ax > amax) { amax = ax; max = x[i]; }
    }
    if (amax < 1e-15f) {
        for (int i = 0; i < n; i++) L[i] = 0;
        return 0;
    }
    const float fnmax = (float)nmax;
    float iscale = (float)(-nmax) / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int32_t l = bk_qc_clamp(bk_qc_nearest(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        float w = qw ? qw[i] : x[i] * x[i], fl = (float)l;
        sumlx += w * x[i] * fl;
        suml2 += w * fl * fl;
    }
    float scale = suml2 != 0 ? sumlx / suml2 : 0;
    float best = scale * sumlx;
    for (int step = -9; step <= 9; step++) {
        if (step == 0) continue;
        iscale = -(fnmax + 0.1f * (float)step) / max;
        sumlx = 0;
        suml2 = 0;
        for (int i = 0; i < n; i++) {
            int32_t l = bk_qc_clamp(bk_qc_nearest(iscale * x[i]), -nmax, nmax - 1);
            float w = qw ? qw[i] : x[i] * x[i], fl = (float)l;
            sumlx += w * x[i] * fl;
            suml2 += w * fl * fl;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) L[i] = (int8_t)(bk_qc_clamp(bk_qc_nearest(iscale * x[i]), -nmax, nmax - 1) + nmax);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* ggml's make_qkx2_quants: the scale and (negated, in *the_min) minimum of an asymmetric group of n values with
 * levels 0..nmax, searched over nstep + 1 candidate scales; errors weighted by `weights`, absolute (use_mad) or
 * squared. Shared by Q4_K/Q5_K (here) and Q2_K/Q3_K (lowbit.c). */
float bk_qkx2_group(int n, int nmax, const float *x, const float *weights, uint8_t *L, float *the_min,
                    float rmin, float rdelta, int nstep, int use_mad) {
    uint8_t Laux[32];
    float min = x[0], max = x[0];
    float sum_w = weights[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        for (int i = 0; i < n; i++) L[i] = 0;
        *the_min = -min;
        return 0;
    }
    const float fnmax = (float)nmax;
    float iscale = fnmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)bk_qc_clamp(bk_qc_nearest(iscale * (x[i] - min)), 0, nmax);
        float diff = scale * (float)L[i] + min - x[i];
        diff = use_mad ? __builtin_fabsf(diff) : diff * diff;
        best_error += weights[i] * diff;
    }
    if (nstep < 1) { *the_min = -min; return scale; }
    for (int step = 0; step <= nstep; step++) {
        iscale = (rmin + rdelta * (float)step + fnmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = bk_qc_clamp(bk_qc_nearest(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = (uint8_t)l;
            float w = weights[i], fl = (float)l;
            sum_l += w * fl;
            sum_l2 += w * fl * fl;
            sum_xl += w * fl * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) { this_min = 0; this_scale = sum_xl / sum_l2; }
            float cur_error = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * (float)Laux[i] + this_min - x[i];
                diff = use_mad ? __builtin_fabsf(diff) : diff * diff;
                cur_error += weights[i] * diff;
            }
            if (cur_error < best_error) {
                for (int i = 0; i < n; i++) L[i] = Laux[i];
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* ggml's make_qkx2_quants for one group of n, with Q4_K/Q5_K's weights (rms of the group + |x|). Returns the scale;
 * *the_min gets the negated minimum. */
static float bk_make_qkx2_one(int n, int nmax, const float *x, const float *given, float rmin, float rdelta, int nstep,
                              uint8_t *L, float *the_min) {
    if (given) return bk_qkx2_group(n, nmax, x, given, L, the_min, rmin, rdelta, nstep, 0);
    float weights[32];
    float sum_x2 = 0;
    for (int l = 0; l < n; l++) sum_x2 += x[l] * x[l];
    const float av_x = __builtin_sqrtf(sum_x2 / 32);
    for (int l = 0; l < n; l++) weights[l] = av_x + __builtin_fabsf(x[l]);
    return bk_qkx2_group(n, nmax, x, weights, L, the_min, rmin, rdelta, nstep, 0);
}

#if BK_Q_X86
BK_Q512 static inline __m512i bk_levels512(__m512 iscale, __m512 x, __m512i lo, __m512i hi) {
    const __m512 v = _mm512_add_ps(_mm512_mul_ps(iscale, x), _mm512_set1_ps(12582912.f));
    __m512i i = _mm512_sub_epi32(_mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(0x007fffff)),
                                 _mm512_set1_epi32(0x00400000));
    return _mm512_min_epi32(_mm512_max_epi32(i, lo), hi);
}

/* One candidate scale for all sixteen groups of n: levels into L, and per lane the sums in ggml's order. */
BK_Q512 static inline void bk_qx_pass512(int n, __m512 iscale, const __m512 *xt, const __m512 *wt, __m512i lo,
                                         __m512i hi, __m512i *L, __m512 *sumlx, __m512 *suml2) {
    __m512 lx = _mm512_setzero_ps(), l2 = _mm512_setzero_ps();
    for (int i = 0; i < n; i++) {
        L[i] = bk_levels512(iscale, xt[i], lo, hi);
        const __m512 fl = _mm512_cvtepi32_ps(L[i]);
        lx = _mm512_add_ps(lx, _mm512_mul_ps(_mm512_mul_ps(wt[i], xt[i]), fl));
        l2 = _mm512_add_ps(l2, _mm512_mul_ps(_mm512_mul_ps(wt[i], fl), fl));
    }
    *sumlx = lx;
    *suml2 = l2;
}

/* Sixteen consecutive groups of n <= 32 values; lane j is group j: xt[i] holds element i of every group. Weights:
 * `given` (16 n values), or x^2 as the reference's make_qx_quants computes them. */
BK_Q512 static void bk_make_qx_16xn_512(int n, int nmax, const float *x, const float *given, int8_t *L, float *scales) {
    __m512 xt[32], wt[32];
    const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32(n));
    for (int i = 0; i < n; i++) {
        xt[i] = _mm512_i32gather_ps(_mm512_add_epi32(idx, _mm512_set1_epi32(i)), x, 4);
        wt[i] = given ? _mm512_i32gather_ps(_mm512_add_epi32(idx, _mm512_set1_epi32(i)), given, 4) : _mm512_mul_ps(xt[i], xt[i]);
    }
    __m512 max = _mm512_setzero_ps(), amax = _mm512_setzero_ps();
    for (int i = 0; i < n; i++) {
        const __m512 ax = _mm512_abs_ps(xt[i]);
        const __mmask16 gt = _mm512_cmp_ps_mask(ax, amax, _CMP_GT_OQ);
        amax = _mm512_mask_mov_ps(amax, gt, ax);
        max = _mm512_mask_mov_ps(max, gt, xt[i]);
    }
    /* groups whose largest |x| is below 1e-15 get scale 0 and levels 0 */
    const __mmask16 small = _mm512_cmp_ps_mask(amax, _mm512_set1_ps(1e-15f), _CMP_LT_OQ);
    const __m512i lo = _mm512_set1_epi32(-nmax), hi = _mm512_set1_epi32(nmax - 1);
    const float fnmax = (float)nmax;
    __m512i Lt[32];
    __m512 iscale = _mm512_div_ps(_mm512_set1_ps((float)(-nmax)), max);
    __m512 sumlx, suml2;
    bk_qx_pass512(n, iscale, xt, wt, lo, hi, Lt, &sumlx, &suml2);
    const __mmask16 nz = _mm512_cmp_ps_mask(suml2, _mm512_setzero_ps(), _CMP_NEQ_UQ);
    __m512 scale = _mm512_maskz_div_ps(nz, sumlx, suml2);
    __m512 best = _mm512_mul_ps(scale, sumlx);
    for (int step = -9; step <= 9; step++) {
        if (step == 0) continue;
        iscale = _mm512_div_ps(_mm512_set1_ps(-(fnmax + 0.1f * (float)step)), max);
        __m512i ls[32];
        bk_qx_pass512(n, iscale, xt, wt, lo, hi, ls, &sumlx, &suml2);
        const __mmask16 better = _mm512_cmp_ps_mask(suml2, _mm512_setzero_ps(), _CMP_GT_OQ) &
                                 _mm512_cmp_ps_mask(_mm512_mul_ps(sumlx, sumlx), _mm512_mul_ps(best, suml2), _CMP_GT_OQ);
        if (better) {
            for (int i = 0; i < n; i++) Lt[i] = _mm512_mask_mov_epi32(Lt[i], better, ls[i]);
            scale = _mm512_mask_div_ps(scale, better, sumlx, suml2);
            best = _mm512_mask_mul_ps(best, better, scale, sumlx);
        }
    }
    scale = _mm512_mask_mov_ps(scale, small, _mm512_setzero_ps());
    _mm512_storeu_ps(scales, scale);
    int32_t lv[32][16];
    for (int i = 0; i < n; i++) _mm512_storeu_si512((void *)lv[i], _mm512_add_epi32(Lt[i], _mm512_set1_epi32(nmax)));
    for (int j = 0; j < 16; j++)
        for (int i = 0; i < n; i++) L[n * j + i] = (small >> j) & 1 ? 0 : (int8_t)lv[i][j];
}


#define BK_Q256 __attribute__((target("avx512f,avx512vl,avx2")))

BK_Q256 static inline __m256i bk_levels256(__m256 v, __m256i lo, __m256i hi) {
    const __m256 t = _mm256_add_ps(v, _mm256_set1_ps(12582912.f));
    __m256i i = _mm256_sub_epi32(_mm256_and_si256(_mm256_castps_si256(t), _mm256_set1_epi32(0x007fffff)),
                                 _mm256_set1_epi32(0x00400000));
    return _mm256_min_epi32(_mm256_max_epi32(i, lo), hi);
}

/* Lane j is group j of a Q4_K/Q5_K block (8 groups of 32); every lane follows bk_make_qkx2_one's order. `given`:
 * the 256 weights, or NULL for Q4_K/Q5_K's rms + |x|. */
BK_Q256 static void bk_make_qkx2_8x32_256(int nmax, const float *x, const float *given, float rmin, float rdelta,
                                          int nstep, uint8_t *L, float *scales, float *mins) {
    __m256 xt[32], w[32];
    const __m256i idx = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(32));
    for (int i = 0; i < 32; i++) xt[i] = _mm256_i32gather_ps(x + i, idx, 4);
    const __m256 sign = _mm256_set1_ps(-0.0f);
    if (given) {
        for (int i = 0; i < 32; i++) w[i] = _mm256_i32gather_ps(given + i, idx, 4);
    } else {
        __m256 sum_x2 = _mm256_setzero_ps();
        for (int i = 0; i < 32; i++) sum_x2 = _mm256_add_ps(sum_x2, _mm256_mul_ps(xt[i], xt[i]));
        const __m256 av_x = _mm256_sqrt_ps(_mm256_div_ps(sum_x2, _mm256_set1_ps(32)));
        for (int i = 0; i < 32; i++) w[i] = _mm256_add_ps(av_x, _mm256_andnot_ps(sign, xt[i]));
    }
    __m256 min = xt[0], max = xt[0], sum_w = w[0], sum_x = _mm256_mul_ps(w[0], xt[0]);
    for (int i = 1; i < 32; i++) {
        min = _mm256_mask_mov_ps(min, _mm256_cmp_ps_mask(xt[i], min, _CMP_LT_OQ), xt[i]);
        max = _mm256_mask_mov_ps(max, _mm256_cmp_ps_mask(xt[i], max, _CMP_GT_OQ), xt[i]);
        sum_w = _mm256_add_ps(sum_w, w[i]);
        sum_x = _mm256_add_ps(sum_x, _mm256_mul_ps(w[i], xt[i]));
    }
    min = _mm256_mask_mov_ps(min, _mm256_cmp_ps_mask(min, _mm256_setzero_ps(), _CMP_GT_OQ), _mm256_setzero_ps());
    const __mmask8 flat = _mm256_cmp_ps_mask(max, min, _CMP_EQ_OQ);
    const __m256 range = _mm256_sub_ps(max, min);
    const __m256i lo = _mm256_setzero_si256(), hi = _mm256_set1_epi32(nmax);
    const float fnmax = (float)nmax;
    __m256 iscale = _mm256_div_ps(_mm256_set1_ps(fnmax), range);
    __m256 scale = _mm256_div_ps(_mm256_set1_ps(1), iscale);
    __m256i Lt[32];
    __m256 best = _mm256_setzero_ps();
    for (int i = 0; i < 32; i++) {
        Lt[i] = bk_levels256(_mm256_mul_ps(iscale, _mm256_sub_ps(xt[i], min)), lo, hi);
        __m256 diff = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(scale, _mm256_cvtepi32_ps(Lt[i])), min), xt[i]);
        diff = _mm256_mul_ps(diff, diff);
        best = _mm256_add_ps(best, _mm256_mul_ps(w[i], diff));
    }
    for (int step = 0; nstep >= 1 && step <= nstep; step++) {
        /* min moves when a step wins, and the next steps measure from it, as ggml's loop does */
        iscale = _mm256_div_ps(_mm256_set1_ps(rmin + rdelta * (float)step + fnmax), _mm256_sub_ps(max, min));
        __m256i la[32];
        __m256 sum_l = _mm256_setzero_ps(), sum_l2 = _mm256_setzero_ps(), sum_xl = _mm256_setzero_ps();
        for (int i = 0; i < 32; i++) {
            la[i] = bk_levels256(_mm256_mul_ps(iscale, _mm256_sub_ps(xt[i], min)), lo, hi);
            const __m256 fl = _mm256_cvtepi32_ps(la[i]);
            sum_l = _mm256_add_ps(sum_l, _mm256_mul_ps(w[i], fl));
            sum_l2 = _mm256_add_ps(sum_l2, _mm256_mul_ps(_mm256_mul_ps(w[i], fl), fl));
            sum_xl = _mm256_add_ps(sum_xl, _mm256_mul_ps(_mm256_mul_ps(w[i], fl), xt[i]));
        }
        const __m256 D = _mm256_sub_ps(_mm256_mul_ps(sum_w, sum_l2), _mm256_mul_ps(sum_l, sum_l));
        const __mmask8 pos = _mm256_cmp_ps_mask(D, _mm256_setzero_ps(), _CMP_GT_OQ);
        if (!pos) continue;
        __m256 this_scale = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sum_w, sum_xl), _mm256_mul_ps(sum_x, sum_l)), D);
        __m256 this_min = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sum_l2, sum_x), _mm256_mul_ps(sum_l, sum_xl)), D);
        const __mmask8 up = _mm256_cmp_ps_mask(this_min, _mm256_setzero_ps(), _CMP_GT_OQ);
        this_min = _mm256_mask_mov_ps(this_min, up, _mm256_setzero_ps());
        this_scale = _mm256_mask_div_ps(this_scale, up, sum_xl, sum_l2);
        __m256 cur = _mm256_setzero_ps();
        for (int i = 0; i < 32; i++) {
            __m256 diff = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(this_scale, _mm256_cvtepi32_ps(la[i])), this_min), xt[i]);
            diff = _mm256_mul_ps(diff, diff);
            cur = _mm256_add_ps(cur, _mm256_mul_ps(w[i], diff));
        }
        const __mmask8 better = pos & (__mmask8)~flat & _mm256_cmp_ps_mask(cur, best, _CMP_LT_OQ);
        if (!better) continue;
        for (int i = 0; i < 32; i++) Lt[i] = _mm256_mask_mov_epi32(Lt[i], better, la[i]);
        best = _mm256_mask_mov_ps(best, better, cur);
        scale = _mm256_mask_mov_ps(scale, better, this_scale);
        min = _mm256_mask_mov_ps(min, better, this_min);
    }
    scale = _mm256_mask_mov_ps(scale, flat, _mm256_setzero_ps());
    _mm256_storeu_ps(scales, scale);
    _mm256_storeu_ps(mins, _mm256_xor_ps(min, sign));   /* -min, -0.0 for 0 as in C */
    int32_t lv[32][8];
    for (int i = 0; i < 32; i++) _mm256_storeu_si256((__m256i *)lv[i], Lt[i]);
    for (int j = 0; j < 8; j++)
        for (int i = 0; i < 32; i++) L[32 * j + i] = (flat >> j) & 1 ? 0 : (uint8_t)lv[i][j];
}

#endif

/* Which body a `_using(body)` call of the quantizer lanes runs: 2 the AVX-512 one, 1 the scalar one, 0 none (the CPU
 * lacks the body asked for, or the body is not one of these). */
static int bk_q_body(int body) {
    if (body == BK_BODY_PORTABLE) return 1;
    if (body != BK_BODY_AUTO && body != BK_BODY_AVX512) return 0;
#if BK_Q_X86
    if (bk_cpu_has_avx512()) return 2;
#endif
    return body == BK_BODY_AUTO ? 1 : 0;
}

int bk_make_qx_16xn_weighted_using(int body, int n, int nmax, const float *x, const float *weights, int8_t *L,
                                   float *scales) {
    if (n < 1 || n > 32) return 0;
    const int b = bk_q_body(body);
#if BK_Q_X86
    if (b == 2) { bk_make_qx_16xn_512(n, nmax, x, weights, L, scales); return 1; }
#endif
    if (b != 1) return 0;
    for (int j = 0; j < 16; j++) scales[j] = bk_qx_group(n, nmax, x + n * j, weights ? weights + n * j : NULL, L + n * j);
    return 1;
}

int bk_make_qx_16x16_using(int body, int nmax, const float *x, int8_t *L, float *scales) {
    return bk_make_qx_16xn_weighted_using(body, 16, nmax, x, NULL, L, scales);
}

void bk_make_qx_16x16(int nmax, const float *x, int8_t *L, float *scales) { bk_make_qx_16x16_using(BK_BODY_AUTO, nmax, x, L, scales); }

int bk_make_qkx2_8x32_weighted_using(int body, int nmax, const float *x, const float *weights, float rmin,
                                     float rdelta, int nstep, uint8_t *L, float *scales, float *mins) {
    const int b = bk_q_body(body);
#if BK_Q_X86
    if (b == 2) { bk_make_qkx2_8x32_256(nmax, x, weights, rmin, rdelta, nstep, L, scales, mins); return 1; }
#endif
    if (b != 1) return 0;
    for (int j = 0; j < 8; j++)
        scales[j] = bk_make_qkx2_one(32, nmax, x + 32 * j, weights ? weights + 32 * j : NULL, rmin, rdelta, nstep,
                                     L + 32 * j, mins + j);
    return 1;
}

int bk_make_qkx2_8x32_using(int body, int nmax, const float *x, float rmin, float rdelta, int nstep,
                            uint8_t *L, float *scales, float *mins) {
    return bk_make_qkx2_8x32_weighted_using(body, nmax, x, NULL, rmin, rdelta, nstep, L, scales, mins);
}

void bk_make_qkx2_8x32(int nmax, const float *x, float rmin, float rdelta, int nstep, uint8_t *L, float *scales, float *mins) {
    bk_make_qkx2_8x32_using(BK_BODY_AUTO, nmax, x, rmin, rdelta, nstep, L, scales, mins);
}

/* ---- Q8_0 (ggml's quantize_row_q8_0_ref) ------------------------------------------------------------------- */

static void bk_q8_0_portable(const float *x, uint8_t *y, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, x += 32, y += 34) {
        float amax = 0;
        for (int j = 0; j < 32; j++) { float a = __builtin_fabsf(x[j]); amax = amax > a ? amax : a; }
        const float d = amax / 127, id = d != 0 ? 1 / d : 0;
        const uint16_t h = bk_qc_f2h(d);
        memcpy(y, &h, 2);
        for (int j = 0; j < 32; j++) y[2 + j] = (uint8_t)(int8_t)(int32_t)__builtin_roundf(x[j] * id);
    }
}

#if BK_Q_X86
/* Per block: |x| max (order-free for non-NaN input), then every lane rounds x * id half away from zero exactly:
 * truncate, and step away from zero when the dropped fraction is at least one half. */
BK_Q512 static void bk_q8_0_512(const float *x, uint8_t *y, int64_t nb) {
    const __m512 sign = _mm512_set1_ps(-0.0f), half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
    for (int64_t b = 0; b < nb; b++, x += 32, y += 34) {
        const __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
        const __m512 m = _mm512_max_ps(_mm512_andnot_ps(sign, v0), _mm512_andnot_ps(sign, v1));
        const float amax = _mm512_reduce_max_ps(m);
        if (amax != amax) { bk_q8_0_portable(x, y, 1); continue; }   /* NaN: keep the scalar order's answer */
        const float d = amax / 127, id = d != 0 ? 1 / d : 0;
        const uint16_t h = bk_qc_f2h(d);
        memcpy(y, &h, 2);
        const __m512 vid = _mm512_set1_ps(id);
        for (int k = 0; k < 2; k++) {
            const __m512 v = _mm512_mul_ps(k ? v1 : v0, vid);
            const __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
            const __mmask16 up = _mm512_cmp_ps_mask(_mm512_andnot_ps(sign, _mm512_sub_ps(v, t)), half, _CMP_GE_OQ);
            const __m512 r = _mm512_mask_add_ps(t, up, t, _mm512_or_ps(one, _mm512_and_ps(v, sign)));
            _mm_storeu_si128((__m128i *)(y + 2 + 16 * k), _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(r)));
        }
    }
}
#endif

int bk_quantize_q8_0_using(int body, const float *x, void *y, int64_t n) {
    const int b = bk_q_body(body);
#if BK_Q_X86
    if (b == 2) { bk_q8_0_512(x, (uint8_t *)y, n / 32); return 1; }
#endif
    if (b != 1) return 0;
    bk_q8_0_portable(x, (uint8_t *)y, n / 32);
    return 1;
}

void bk_quantize_q8_0(const float *x, void *y, int64_t n) { bk_quantize_q8_0_using(BK_BODY_AUTO, x, y, n); }
