/* ggml's reference quantizers for the low-bit types llama-quantize writes without an importance matrix: Q2_K and
 * Q3_K (256-element super-blocks of 16-element groups) and the non-linear IQ4_NL (32) / IQ4_XS (256), with their
 * dequantizers and a row product for the verifier.
 *
 * llama-quantize's bytes depend on the exact order of the float operations in its scale searches (comparisons of
 * error sums pick the levels), so every search below performs the same operations in the same order as
 * ggml-quants.c's quantize_row_q2_K_ref / quantize_row_q3_K_ref / quantize_row_iq4_nl_impl (written from that
 * description, not copied), each product rounded before it is added (ggml-base is built without FMA). Q2_K's and
 * Q3_K's sixteen independent group searches run eight at a time in AVX2 lanes where the CPU has AVX2, IQ4's eight
 * groups of 32 in AVX-512VL lanes, each lane in the scalar order (bk_quantize_*_using compares the bodies). The
 * importance-weighted Q2_K searches and IQ4 (importance.c) run through the same code with the imatrix's weights. */
#include "billa_kernels.h"
#include "quant_common.h"
#include <string.h>

#pragma STDC FP_CONTRACT OFF

/* The 16 levels of IQ4_NL and IQ4_XS, ascending: ggml-common.h's kvalues_iq4nl (llama.cpp as vendored by
 * llama-cpp-python 0.3.36). The one copy of this table in billa. */
static const int8_t bk_iq4nl_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

/* ggml's make_q3_quants with do_rmse: a symmetric group with levels -nmax..nmax-1, weights x^2, then up to five
 * passes that move single levels while the weighted fit improves. L gets levels offset by nmax. */
static float bk_lb_q3(int n, int nmax, const float *x, int8_t *L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        float ax = __builtin_fabsf(x[i]);
        if (ax > amax) { amax = ax; max = x[i]; }
    }
    if (amax < 1e-15f) {
        for (int i = 0; i < n; i++) L[i] = 0;
        return 0;
    }
    const float iscale = (float)(-nmax) / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = bk_qc_clamp(bk_qc_nearest(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)l;
        float w = x[i] * x[i], fl = (float)l;
        sumlx += w * x[i] * fl;
        suml2 += w * fl * fl;
    }
    for (int itry = 0; itry < 5; itry++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            float w = x[i] * x[i], li = (float)L[i];
            float slx = sumlx - w * x[i] * li;
            if (slx > 0) {
                float sl2 = suml2 - w * li * li;
                int nl = bk_qc_clamp(bk_qc_nearest(x[i] * sl2 / slx), -nmax, nmax - 1);
                if (nl != L[i]) {
                    float fnl = (float)nl;
                    slx += w * x[i] * fnl;
                    sl2 += w * fnl * fnl;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)nl;
                        sumlx = slx;
                        suml2 = sl2;
                        changed++;
                    }
                }
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0 ? sumlx / suml2 : 0;
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BK_LB_AVX2 __attribute__((target("avx2")))

/* Q2_K's 16 searches (make_qkx2_quants, 16 values, levels 0..3) for 8 groups at a time, one group per AVX2 lane,
 * each lane in bk_qkx2_group's order: bit for bit the scalar result. The groups are independent, so only the lanes'
 * latency chains remain. The reference quantizer: weights |x| (given NULL), absolute error, rmin -0.5, rdelta 0.1,
 * 15 steps; the importance-weighted one: the given weights, squared error, -0.9, 0.05, 36. */
BK_LB_AVX2 static inline __m256i bk_lb_levels8(__m256 iscale, __m256 x, __m256 min) {
    const __m256 v = _mm256_add_ps(_mm256_mul_ps(iscale, _mm256_sub_ps(x, min)), _mm256_set1_ps(12582912.f));
    const __m256i i = _mm256_sub_epi32(_mm256_and_si256(_mm256_castps_si256(v), _mm256_set1_epi32(0x007fffff)),
                                       _mm256_set1_epi32(0x00400000));
    return _mm256_min_epi32(_mm256_max_epi32(i, _mm256_setzero_si256()), _mm256_set1_epi32(3));
}

BK_LB_AVX2 static inline __m256 bk_lb_err8(__m256 d, int use_mad) {
    return use_mad ? _mm256_andnot_ps(_mm256_set1_ps(-0.0f), d) : _mm256_mul_ps(d, d);
}

BK_LB_AVX2 static void bk_lb_q2_search8(const float *x, const float *given, int use_mad, float rmin, float rdelta,
                                        int nstep, uint8_t *L, float *scales, float *mins) {
    const __m256 sign = _mm256_set1_ps(-0.0f), zero = _mm256_setzero_ps();
    const __m256i idx = _mm256_setr_epi32(0, 16, 32, 48, 64, 80, 96, 112);
    __m256 xt[16], w[16];
    for (int i = 0; i < 16; i++) {
        xt[i] = _mm256_i32gather_ps(x + i, idx, 4);
        w[i] = given ? _mm256_i32gather_ps(given + i, idx, 4) : _mm256_andnot_ps(sign, xt[i]);
    }
    __m256 min = xt[0], max = xt[0], sum_w = w[0], sum_x = _mm256_mul_ps(w[0], xt[0]);
    for (int i = 1; i < 16; i++) {
        min = _mm256_blendv_ps(min, xt[i], _mm256_cmp_ps(xt[i], min, _CMP_LT_OQ));
        max = _mm256_blendv_ps(max, xt[i], _mm256_cmp_ps(xt[i], max, _CMP_GT_OQ));
        sum_w = _mm256_add_ps(sum_w, w[i]);
        sum_x = _mm256_add_ps(sum_x, _mm256_mul_ps(w[i], xt[i]));
    }
    min = _mm256_blendv_ps(min, zero, _mm256_cmp_ps(min, zero, _CMP_GT_OQ));
    const __m256 flat = _mm256_cmp_ps(max, min, _CMP_EQ_OQ);
    __m256 iscale = _mm256_div_ps(_mm256_set1_ps(3.f), _mm256_sub_ps(max, min));
    __m256 scale = _mm256_div_ps(_mm256_set1_ps(1.f), iscale);
    __m256i Lt[16];
    __m256 best = zero;
    for (int i = 0; i < 16; i++) {
        Lt[i] = bk_lb_levels8(iscale, xt[i], min);
        const __m256 d = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(scale, _mm256_cvtepi32_ps(Lt[i])), min), xt[i]);
        best = _mm256_add_ps(best, _mm256_mul_ps(w[i], bk_lb_err8(d, use_mad)));
    }
    for (int step = 0; step <= nstep; step++) {
        iscale = _mm256_div_ps(_mm256_set1_ps(rmin + rdelta * (float)step + 3.f), _mm256_sub_ps(max, min));
        __m256i la[16];
        __m256 sum_l = zero, sum_l2 = zero, sum_xl = zero;
        for (int i = 0; i < 16; i++) {
            la[i] = bk_lb_levels8(iscale, xt[i], min);
            const __m256 fl = _mm256_cvtepi32_ps(la[i]), wl = _mm256_mul_ps(w[i], fl);
            sum_l = _mm256_add_ps(sum_l, wl);
            sum_l2 = _mm256_add_ps(sum_l2, _mm256_mul_ps(wl, fl));
            sum_xl = _mm256_add_ps(sum_xl, _mm256_mul_ps(wl, xt[i]));
        }
        const __m256 D = _mm256_sub_ps(_mm256_mul_ps(sum_w, sum_l2), _mm256_mul_ps(sum_l, sum_l));
        const __m256 pos = _mm256_andnot_ps(flat, _mm256_cmp_ps(D, zero, _CMP_GT_OQ));
        if (_mm256_movemask_ps(pos) == 0) continue;
        __m256 this_scale = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sum_w, sum_xl), _mm256_mul_ps(sum_x, sum_l)), D);
        __m256 this_min = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sum_l2, sum_x), _mm256_mul_ps(sum_l, sum_xl)), D);
        const __m256 up = _mm256_cmp_ps(this_min, zero, _CMP_GT_OQ);
        this_min = _mm256_blendv_ps(this_min, zero, up);
        this_scale = _mm256_blendv_ps(this_scale, _mm256_div_ps(sum_xl, sum_l2), up);
        __m256 cur = zero;
        for (int i = 0; i < 16; i++) {
            const __m256 d = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(this_scale, _mm256_cvtepi32_ps(la[i])), this_min), xt[i]);
            cur = _mm256_add_ps(cur, _mm256_mul_ps(w[i], bk_lb_err8(d, use_mad)));
        }
        const __m256 better = _mm256_and_ps(pos, _mm256_cmp_ps(cur, best, _CMP_LT_OQ));
        if (_mm256_movemask_ps(better) == 0) continue;
        const __m256i bi = _mm256_castps_si256(better);
        for (int i = 0; i < 16; i++) Lt[i] = _mm256_blendv_epi8(Lt[i], la[i], bi);
        best = _mm256_blendv_ps(best, cur, better);
        scale = _mm256_blendv_ps(scale, this_scale, better);
        min = _mm256_blendv_ps(min, this_min, better);
    }
    _mm256_storeu_ps(scales, _mm256_blendv_ps(scale, zero, flat));
    _mm256_storeu_ps(mins, _mm256_xor_ps(min, sign));   /* -min, as the scalar returns it */
    const int flats = _mm256_movemask_ps(flat);
    int32_t lv[16][8];
    for (int i = 0; i < 16; i++) _mm256_storeu_si256((__m256i *)lv[i], Lt[i]);
    for (int j = 0; j < 8; j++)
        for (int i = 0; i < 16; i++) L[16 * j + i] = (flats >> j) & 1 ? 0 : (uint8_t)lv[i][j];
}

/* make_q3_quants (16 values, nmax 4, do_rmse) for 8 groups at a time, one group per AVX2 lane. A lane whose pass
 * changed nothing would change nothing in a further pass either (the pass depends only on its state), so running
 * every lane for as many passes as the busiest one needs gives each lane the scalar result. */
BK_LB_AVX2 static inline __m256i bk_lb_near8(__m256 v, int lo, int hi) {
    const __m256 t = _mm256_add_ps(v, _mm256_set1_ps(12582912.f));
    const __m256i i = _mm256_sub_epi32(_mm256_and_si256(_mm256_castps_si256(t), _mm256_set1_epi32(0x007fffff)),
                                       _mm256_set1_epi32(0x00400000));
    return _mm256_min_epi32(_mm256_max_epi32(i, _mm256_set1_epi32(lo)), _mm256_set1_epi32(hi));
}

BK_LB_AVX2 static void bk_lb_q3_search8(const float *x, int8_t *L, float *scales) {
    const __m256 sign = _mm256_set1_ps(-0.0f), zero = _mm256_setzero_ps();
    const __m256i idx = _mm256_setr_epi32(0, 16, 32, 48, 64, 80, 96, 112);
    __m256 xt[16], w[16], wx[16];
    __m256 max = zero, amax = zero;
    for (int i = 0; i < 16; i++) {
        xt[i] = _mm256_i32gather_ps(x + i, idx, 4);
        const __m256 ax = _mm256_andnot_ps(sign, xt[i]);
        const __m256 gt = _mm256_cmp_ps(ax, amax, _CMP_GT_OQ);
        amax = _mm256_blendv_ps(amax, ax, gt);
        max = _mm256_blendv_ps(max, xt[i], gt);
        w[i] = _mm256_mul_ps(xt[i], xt[i]);
        wx[i] = _mm256_mul_ps(w[i], xt[i]);
    }
    const __m256 small = _mm256_cmp_ps(amax, _mm256_set1_ps(1e-15f), _CMP_LT_OQ);
    const __m256 iscale = _mm256_div_ps(_mm256_set1_ps(-4.f), max);
    __m256i Lt[16];
    __m256 sumlx = zero, suml2 = zero;
    for (int i = 0; i < 16; i++) {
        Lt[i] = bk_lb_near8(_mm256_mul_ps(iscale, xt[i]), -4, 3);
        const __m256 fl = _mm256_cvtepi32_ps(Lt[i]);
        sumlx = _mm256_add_ps(sumlx, _mm256_mul_ps(wx[i], fl));
        suml2 = _mm256_add_ps(suml2, _mm256_mul_ps(_mm256_mul_ps(w[i], fl), fl));
    }
    for (int itry = 0; itry < 5; itry++) {
        __m256 changed = zero;
        for (int i = 0; i < 16; i++) {
            const __m256 li = _mm256_cvtepi32_ps(Lt[i]);
            __m256 slx = _mm256_sub_ps(sumlx, _mm256_mul_ps(wx[i], li));
            const __m256 pos = _mm256_cmp_ps(slx, zero, _CMP_GT_OQ);
            if (_mm256_movemask_ps(pos) == 0) continue;
            __m256 sl2 = _mm256_sub_ps(suml2, _mm256_mul_ps(_mm256_mul_ps(w[i], li), li));
            const __m256i nl = bk_lb_near8(_mm256_div_ps(_mm256_mul_ps(xt[i], sl2), slx), -4, 3);
            const __m256 ne = _mm256_castsi256_ps(_mm256_xor_si256(_mm256_cmpeq_epi32(nl, Lt[i]), _mm256_set1_epi32(-1)));
            const __m256 fnl = _mm256_cvtepi32_ps(nl);
            slx = _mm256_add_ps(slx, _mm256_mul_ps(wx[i], fnl));
            sl2 = _mm256_add_ps(sl2, _mm256_mul_ps(_mm256_mul_ps(w[i], fnl), fnl));
            const __m256 gain = _mm256_cmp_ps(_mm256_mul_ps(_mm256_mul_ps(slx, slx), suml2),
                                              _mm256_mul_ps(_mm256_mul_ps(sumlx, sumlx), sl2), _CMP_GT_OQ);
            const __m256 acc = _mm256_and_ps(_mm256_and_ps(pos, ne), _mm256_and_ps(_mm256_cmp_ps(sl2, zero, _CMP_GT_OQ), gain));
            Lt[i] = _mm256_blendv_epi8(Lt[i], nl, _mm256_castps_si256(acc));
            sumlx = _mm256_blendv_ps(sumlx, slx, acc);
            suml2 = _mm256_blendv_ps(suml2, sl2, acc);
            changed = _mm256_or_ps(changed, acc);
        }
        if (_mm256_movemask_ps(_mm256_andnot_ps(small, changed)) == 0) break;
    }
    const __m256 scale = _mm256_blendv_ps(zero, _mm256_div_ps(sumlx, suml2), _mm256_cmp_ps(suml2, zero, _CMP_GT_OQ));
    _mm256_storeu_ps(scales, _mm256_blendv_ps(scale, zero, small));
    const int smalls = _mm256_movemask_ps(small);
    int32_t lv[16][8];
    for (int i = 0; i < 16; i++) _mm256_storeu_si256((__m256i *)lv[i], Lt[i]);
    for (int j = 0; j < 8; j++)
        for (int i = 0; i < 16; i++) L[16 * j + i] = (smalls >> j) & 1 ? 0 : (int8_t)(lv[i][j] + 4);
}
#endif

static int bk_lb_body(int body);

/* The 16 scale searches of one Q2_K block: lanes (avx2 != 0) or one group after another. */
static void bk_lb_q2_search(int avx2, const float *x, uint8_t *L, float *scales, float *mins) {
#if defined(__x86_64__) || defined(__i386__)
    if (avx2) {
        bk_lb_q2_search8(x, NULL, 1, -0.5f, 0.1f, 15, L, scales, mins);
        bk_lb_q2_search8(x + 128, NULL, 1, -0.5f, 0.1f, 15, L + 128, scales + 8, mins + 8);
        return;
    }
#endif
    float weights[16];
    for (int j = 0; j < 16; j++) {
        for (int l = 0; l < 16; l++) weights[l] = __builtin_fabsf(x[16 * j + l]);
        scales[j] = bk_qkx2_group(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], -0.5f, 0.1f, 15, 1);
    }
}

int bk_q2_K_weighted_searches_using(int body, const float *x, const float *weights, uint8_t *L, float *scales,
                                    float *mins) {
    const int b = bk_lb_body(body);
    if (b < 0) return 0;
#if defined(__x86_64__) || defined(__i386__)
    if (b) {
        bk_lb_q2_search8(x, weights, 0, -0.9f, 0.05f, 36, L, scales, mins);
        bk_lb_q2_search8(x + 128, weights + 128, 0, -0.9f, 0.05f, 36, L + 128, scales + 8, mins + 8);
        return 1;
    }
#endif
    for (int j = 0; j < 16; j++)
        scales[j] = bk_qkx2_group(16, 3, x + 16 * j, weights + 16 * j, L + 16 * j, &mins[j], -0.9f, 0.05f, 36, 0);
    return 1;
}

/* Q2_K block (84 bytes): scales[16] (low nibble scale, high nibble min), qs[64], f16 d, f16 dmin. */
static void bk_lb_quantize_q2_K(int avx2, const float *x, void *vy, int64_t n) {
    uint8_t *y = (uint8_t *)vy;
    uint8_t L[256];
    float mins[16], scales[16];
    for (int64_t b = 0; b < n / 256; b++, x += 256, y += 84) {
        float max_scale = 0, max_min = 0;
        bk_lb_q2_search(avx2, x, L, scales, mins);
        for (int j = 0; j < 16; j++) {
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        uint8_t *sc = y, *qs = y + 16;
        if (max_scale > 0) {
            const float iscale = 15.f / max_scale;
            for (int j = 0; j < 16; j++) sc[j] = (uint8_t)bk_qc_nearest(iscale * scales[j]);
            bk_qc_put_half(y + 80, max_scale / 15.f);
        } else {
            for (int j = 0; j < 16; j++) sc[j] = 0;
            bk_qc_put_half(y + 80, 0.f);
        }
        if (max_min > 0) {
            const float iscale = 15.f / max_min;
            for (int j = 0; j < 16; j++) sc[j] |= (uint8_t)(bk_qc_nearest(iscale * mins[j]) << 4);
            bk_qc_put_half(y + 82, max_min / 15.f);
        } else {
            bk_qc_put_half(y + 82, 0.f);
        }
        const float dall = bk_qc_half(y + 80), dmall = bk_qc_half(y + 82);
        for (int j = 0; j < 16; j++) {
            const float d = dall * (float)(sc[j] & 0xF);
            if (d == 0) continue;
            const float dm = dmall * (float)(sc[j] >> 4);
            for (int i = 0; i < 16; i++) L[16 * j + i] = (uint8_t)bk_qc_clamp(bk_qc_nearest((x[16 * j + i] + dm) / d), 0, 3);
        }
        bk_qc_pack2(L, qs);
    }
}

int bk_quantize_q2_K_using(int body, const float *x, void *y, int64_t n) {
    const int b = bk_lb_body(body);
    if (b < 0) return 0;
    bk_lb_quantize_q2_K(b, x, y, n);
    return 1;
}

void bk_quantize_q2_K(const float *x, void *y, int64_t n) { bk_quantize_q2_K_using(BK_BODY_AUTO, x, y, n); }

/* Q3_K's 6-bit signed scale j (offset by 32) from its 12 packed bytes: low nibbles in bytes 0-7, top bits in 8-11. */
static inline int bk_lb_q3_scale(const uint8_t *s, int j) {
    int lo = j < 8 ? (s[j] & 0xF) : (s[j - 8] >> 4);
    return (lo | (((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
}

/* Q3_K block (110 bytes): hmask[32] (bit k of byte m: the high bit of element 32k + m), qs[64], scales[12], f16 d. */
static void bk_lb_quantize_q3_K(int avx2, const float *x, void *vy, int64_t n) {
    uint8_t *y = (uint8_t *)vy;
    int8_t L[256];
    float scales[16];
    for (int64_t b = 0; b < n / 256; b++, x += 256, y += 110) {
        uint8_t *hmask = y, *qs = y + 32, *sc = y + 96;
        float max_scale = 0, amax = 0;
#if defined(__x86_64__) || defined(__i386__)
        if (avx2) {
            bk_lb_q3_search8(x, L, scales);
            bk_lb_q3_search8(x + 128, L + 128, scales + 8);
        } else
#endif
        for (int j = 0; j < 16; j++) scales[j] = bk_lb_q3(16, 4, x + 16 * j, L + 16 * j);
        for (int j = 0; j < 16; j++) {
            float a = __builtin_fabsf(scales[j]);
            if (a > amax) { amax = a; max_scale = scales[j]; }
        }
        memset(sc, 0, 12);
        if (max_scale != 0) {
            const float iscale = -32.f / max_scale;
            for (int j = 0; j < 16; j++) {
                int8_t l = (int8_t)bk_qc_nearest(iscale * scales[j]);
                l = (int8_t)(bk_qc_clamp(l, -32, 31) + 32);
                if (j < 8) sc[j] = (uint8_t)(l & 0xF);
                else sc[j - 8] |= (uint8_t)((l & 0xF) << 4);
                l = (int8_t)(l >> 4);
                sc[j % 4 + 8] |= (uint8_t)(l << (2 * (j / 4)));
            }
            bk_qc_put_half(y + 108, 1 / iscale);
        } else {
            bk_qc_put_half(y + 108, 0.f);
        }
        const float dall = bk_qc_half(y + 108);
        for (int j = 0; j < 16; j++) {
            const float d = dall * (float)(int8_t)bk_lb_q3_scale(sc, j);
            if (d == 0) continue;
            for (int i = 0; i < 16; i++) L[16 * j + i] = (int8_t)(bk_qc_clamp(bk_qc_nearest(x[16 * j + i] / d), -4, 3) + 4);
        }
        memset(hmask, 0, 32);
        for (int j = 0; j < 256; j++) {
            if (L[j] > 3) {
                hmask[j % 32] |= (uint8_t)(1 << (j / 32));
                L[j] = (int8_t)(L[j] - 4);
            }
        }
        bk_qc_pack2((const uint8_t *)L, qs);
    }
}

/* Which search a `_using(body)` call runs: 1 the AVX2 lanes, 0 the scalar one, -1 not available. */
static int bk_lb_body(int body) {
    if (body == BK_BODY_PORTABLE) return 0;
    if (body == BK_BODY_AUTO) return bk_cpu_has_body(BK_BODY_AVX2);
    if (body == BK_BODY_AVX2) return bk_cpu_has_body(BK_BODY_AVX2) ? 1 : -1;
    return -1;
}

int bk_quantize_q3_K_using(int body, const float *x, void *y, int64_t n) {
    const int b = bk_lb_body(body);
    if (b < 0) return 0;
    bk_lb_quantize_q3_K(b, x, y, n);
    return 1;
}

void bk_quantize_q3_K(const float *x, void *y, int64_t n) { bk_quantize_q3_K_using(BK_BODY_AUTO, x, y, n); }

/* ggml's best_index_int8: the nearest of the 16 ascending levels (the upper one on a tie... as ggml decides it). */
static inline int bk_lb_best_index(const int8_t *val, float x) {
    if (x <= (float)val[0]) return 0;
    if (x >= (float)val[15]) return 15;
    int ml = 0, mu = 15;
    while (mu - ml > 1) {
        int mav = (ml + mu) / 2;
        if (x < (float)val[mav]) mu = mav; else ml = mav;
    }
    return x - (float)val[mu - 1] < (float)val[mu] - x ? mu - 1 : mu;
}

/* ggml's quantize_row_iq4_nl_impl (ntry 7), split in its two halves: the scale search of each group of 32
 * (bk_lb_iq4_group, or eight groups in AVX-512VL lanes), then the super-block's scale quantization and final levels
 * (bk_lb_iq4_finish). IQ4_NL is a super-block of 32 (one f16 scale), IQ4_XS of 256 (f16 d, 6-bit group scales). */

/* The weights of a super-block of `super` values: without an importance matrix x^2; with one (qw: the super-block's
 * `super` weights) qw[j] * sqrt(sigma2 + x^2), sigma2 twice the super-block's mean square. */
static void bk_lb_iq4_weights(int super, const float *x, const float *qw, float *w) {
    if (!qw) {
        for (int j = 0; j < super; j++) w[j] = x[j] * x[j];
        return;
    }
    float sigma2 = 0;
    for (int j = 0; j < super; j++) sigma2 += x[j] * x[j];
    sigma2 *= 2.f / (float)super;
    for (int j = 0; j < super; j++) w[j] = qw[j] * __builtin_sqrtf(sigma2 + x[j] * x[j]);
}

/* The scale of one group of 32: 15 candidate scales, the weighted best fit of the nearest levels (0 for a group
 * whose largest |x| is below 1e-15). */
static float bk_lb_iq4_group(const float *xb, const float *weight) {
    const int8_t *values = bk_iq4nl_values;
    float amax = 0, max = 0;
    for (int j = 0; j < 32; j++) {
        float ax = __builtin_fabsf(xb[j]);
        if (ax > amax) { amax = ax; max = xb[j]; }
    }
    if (amax < 1e-15f) return 0;
    float d = -max / (float)values[0];
    float id = 1 / d;
    float sumqx = 0, sumq2 = 0;
    for (int j = 0; j < 32; j++) {
        float q = (float)values[bk_lb_best_index(values, id * xb[j])], w = weight[j];
        sumqx += w * q * xb[j];
        sumq2 += w * q * q;
    }
    d = sumq2 > 0 ? sumqx / sumq2 : 0.f;
    float best = d * sumqx;
    for (int itry = -7; itry <= 7; itry++) {
        id = (float)(itry + values[0]) / max;
        sumqx = sumq2 = 0;
        for (int j = 0; j < 32; j++) {
            float q = (float)values[bk_lb_best_index(values, id * xb[j])], w = weight[j];
            sumqx += w * q * xb[j];
            sumq2 += w * q * q;
        }
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) { d = sumqx / sumq2; best = d * sumqx; }
    }
    return d;
}

#if defined(__x86_64__) || defined(__i386__)
#define BK_LB_512 __attribute__((target("avx512f,avx512vl,avx2")))

/* best_index_int8 in 8 lanes: for val[0] < x < val[15] the binary search ends at ml = #{1 <= i <= 14: val[i] <= x}
 * (the values ascend strictly), then takes the nearer of val[ml], val[ml + 1] (the upper on a tie), as ggml does;
 * x <= val[0] gives 0, x >= val[15] (or NaN, where every comparison fails) 15. */
BK_LB_512 static inline __m256i bk_lb_best8(__m256 x, __m256 tlo, __m256 thi, const __m256 *vf) {
    __m256i cnt = _mm256_setzero_si256();
    for (int i = 1; i <= 14; i++) cnt = _mm256_sub_epi32(cnt, _mm256_castps_si256(_mm256_cmp_ps(vf[i], x, _CMP_LE_OQ)));
    const __m256i up = _mm256_add_epi32(cnt, _mm256_set1_epi32(1));
    const __m256 lo = _mm256_permutex2var_ps(tlo, cnt, thi), hi = _mm256_permutex2var_ps(tlo, up, thi);
    const __m256 nearer_lo = _mm256_cmp_ps(_mm256_sub_ps(x, lo), _mm256_sub_ps(hi, x), _CMP_LT_OQ);
    __m256i r = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(up), _mm256_castsi256_ps(cnt), nearer_lo));
    r = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(r), _mm256_setzero_ps(), _mm256_cmp_ps(x, vf[0], _CMP_LE_OQ)));
    const __m256 top = _mm256_or_ps(_mm256_cmp_ps(x, vf[15], _CMP_GE_OQ), _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
    return _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(r), _mm256_castsi256_ps(_mm256_set1_epi32(15)), top));
}

/* One candidate scale for the 8 groups: the weighted sums of the nearest levels, in ggml's order per lane. */
BK_LB_512 static inline void bk_lb_iq4_pass8(__m256 id, const __m256 *xt, const __m256 *wt, __m256 tlo, __m256 thi,
                                             const __m256 *vf, __m256 *sumqx, __m256 *sumq2) {
    __m256 qx = _mm256_setzero_ps(), q2 = _mm256_setzero_ps();
    for (int j = 0; j < 32; j++) {
        const __m256 q = _mm256_permutex2var_ps(tlo, bk_lb_best8(_mm256_mul_ps(id, xt[j]), tlo, thi, vf), thi);
        const __m256 wq = _mm256_mul_ps(wt[j], q);
        qx = _mm256_add_ps(qx, _mm256_mul_ps(wq, xt[j]));
        q2 = _mm256_add_ps(q2, _mm256_mul_ps(wq, q));
    }
    *sumqx = qx;
    *sumq2 = q2;
}

/* bk_lb_iq4_group for 8 consecutive groups of 32 (x and w: 256 values), one group per lane: bit for bit the scalar
 * scales. */
BK_LB_512 static void bk_lb_iq4_search8(const float *x, const float *w, float *scales) {
    const __m256i idx = _mm256_setr_epi32(0, 32, 64, 96, 128, 160, 192, 224);
    const __m256 sign = _mm256_set1_ps(-0.0f), zero = _mm256_setzero_ps();
    __m256 xt[32], wt[32], vf[16];
    for (int i = 0; i < 16; i++) vf[i] = _mm256_set1_ps((float)bk_iq4nl_values[i]);
    const __m256 tlo = _mm256_setr_ps(-127, -104, -83, -65, -49, -35, -22, -10);
    const __m256 thi = _mm256_setr_ps(1, 13, 25, 38, 53, 69, 89, 113);
    __m256 amax = zero, max = zero;
    for (int j = 0; j < 32; j++) {
        xt[j] = _mm256_i32gather_ps(x + j, idx, 4);
        wt[j] = _mm256_i32gather_ps(w + j, idx, 4);
        const __m256 ax = _mm256_andnot_ps(sign, xt[j]);
        const __m256 gt = _mm256_cmp_ps(ax, amax, _CMP_GT_OQ);
        amax = _mm256_blendv_ps(amax, ax, gt);
        max = _mm256_blendv_ps(max, xt[j], gt);
    }
    const __m256 small = _mm256_cmp_ps(amax, _mm256_set1_ps(1e-15f), _CMP_LT_OQ);
    __m256 d = _mm256_div_ps(_mm256_xor_ps(max, sign), vf[0]);
    __m256 sumqx, sumq2;
    bk_lb_iq4_pass8(_mm256_div_ps(_mm256_set1_ps(1.f), d), xt, wt, tlo, thi, vf, &sumqx, &sumq2);
    d = _mm256_blendv_ps(zero, _mm256_div_ps(sumqx, sumq2), _mm256_cmp_ps(sumq2, zero, _CMP_GT_OQ));
    __m256 best = _mm256_mul_ps(d, sumqx);
    for (int itry = -7; itry <= 7; itry++) {
        const __m256 id = _mm256_div_ps(_mm256_set1_ps((float)(itry + bk_iq4nl_values[0])), max);
        bk_lb_iq4_pass8(id, xt, wt, tlo, thi, vf, &sumqx, &sumq2);
        const __m256 better = _mm256_and_ps(_mm256_cmp_ps(sumq2, zero, _CMP_GT_OQ),
                                            _mm256_cmp_ps(_mm256_mul_ps(sumqx, sumqx), _mm256_mul_ps(best, sumq2), _CMP_GT_OQ));
        if (_mm256_movemask_ps(better) == 0) continue;
        d = _mm256_blendv_ps(d, _mm256_div_ps(sumqx, sumq2), better);
        best = _mm256_blendv_ps(best, _mm256_mul_ps(d, sumqx), better);
    }
    _mm256_storeu_ps(scales, _mm256_blendv_ps(d, zero, small));
}
#endif

/* The second half for one super-block: the group scales quantized (IQ4_XS) or stored (IQ4_NL), the final levels,
 * and the packed codes. */
static void bk_lb_iq4_finish(int super, const float *x, const float *scales, uint8_t *dh, uint8_t *q4,
                             uint8_t *scales_h, uint8_t *scales_l) {
    const int8_t *values = bk_iq4nl_values;
    uint8_t L[256];
    const int nb = super / 32;
    float max_scale = 0, amax_scale = 0;
    for (int ib = 0; ib < nb; ib++) {
        const float ad = __builtin_fabsf(scales[ib]);
        if (ad > amax_scale) { amax_scale = ad; max_scale = scales[ib]; }
    }
    if (nb > 1) {
        scales_h[0] = scales_h[1] = 0;
        const float d = -max_scale / 32;
        bk_qc_put_half(dh, d);
        const float id = d != 0 ? 1 / d : 0.f;
        for (int ib = 0; ib < nb; ib++) {
            int l = bk_qc_clamp(bk_qc_nearest(id * scales[ib]), -32, 31);
            const float dl = d * (float)l;
            const float idl = dl != 0 ? 1 / dl : 0.f;
            for (int j = 0; j < 32; j++) L[32 * ib + j] = (uint8_t)bk_lb_best_index(values, idl * x[32 * ib + j]);
            l += 32;
            const uint8_t ll = (uint8_t)(l & 0xf), lh = (uint8_t)(l >> 4);
            if (ib % 2 == 0) scales_l[ib / 2] = ll; else scales_l[ib / 2] |= (uint8_t)(ll << 4);
            /* scales_h is a little-endian u16: group ib's two bits at 2 * ib */
            const int bit = 2 * (ib % 8);
            scales_h[bit / 8] |= (uint8_t)(lh << (bit % 8));
        }
    } else {
        bk_qc_put_half(dh, scales[0]);
        const float id = scales[0] != 0 ? 1 / scales[0] : 0;
        for (int j = 0; j < super; j++) L[j] = (uint8_t)bk_lb_best_index(values, id * x[j]);
    }
    for (int i = 0; i < super / 32; i++)
        for (int j = 0; j < 16; j++) q4[16 * i + j] = (uint8_t)(L[32 * i + j] | (L[32 * i + 16 + j] << 4));
}

/* The scales of 8 consecutive groups of 32: lanes or one after another. */
static void bk_lb_iq4_search(int lanes, const float *x, const float *w, float *scales) {
#if defined(__x86_64__) || defined(__i386__)
    if (lanes) { bk_lb_iq4_search8(x, w, scales); return; }
#endif
    for (int ib = 0; ib < 8; ib++) scales[ib] = bk_lb_iq4_group(x + 32 * ib, w + 32 * ib);
}

int bk_quantize_iq4_using(int body, int type, const float *x, void *vy, int64_t n, const float *qw) {
    int lanes = 0;
    if (body == BK_BODY_AUTO || body == BK_BODY_AVX512) {
#if defined(__x86_64__) || defined(__i386__)
        lanes = bk_cpu_has_avx512();
#endif
        if (body == BK_BODY_AVX512 && !lanes) return 0;
    } else if (body != BK_BODY_PORTABLE) {
        return 0;
    }
    uint8_t *y = (uint8_t *)vy;
    float w[256], scales[8];
    if (type == BK_IQ4_XS) {
        /* block (136 bytes): f16 d, u16 scales_h, scales_l[4], qs[128] */
        for (int64_t b = 0; b < n / 256; b++) {
            const float *xb = x + 256 * b;
            uint8_t *yb = y + 136 * b;
            bk_lb_iq4_weights(256, xb, qw ? qw + 256 * b : NULL, w);
            bk_lb_iq4_search(lanes, xb, w, scales);
            bk_lb_iq4_finish(256, xb, scales, yb, yb + 8, yb + 2, yb + 4);
        }
        return 1;
    }
    if (type != BK_IQ4_NL) return 0;
    /* block (18 bytes): f16 d, qs[16] (element j low nibble, j + 16 high nibble, of byte j); eight blocks per search
     * call, the rest one by one */
    const int64_t nb = n / 32;
    int64_t b = 0;
    for (; b + 8 <= nb; b += 8) {
        for (int k = 0; k < 8; k++) bk_lb_iq4_weights(32, x + 32 * (b + k), qw ? qw + 32 * (b + k) : NULL, w + 32 * k);
        bk_lb_iq4_search(lanes, x + 32 * b, w, scales);
        for (int k = 0; k < 8; k++) bk_lb_iq4_finish(32, x + 32 * (b + k), scales + k, y + 18 * (b + k), y + 18 * (b + k) + 2, NULL, NULL);
    }
    for (; b < nb; b++) {
        bk_lb_iq4_weights(32, x + 32 * b, qw ? qw + 32 * b : NULL, w);
        scales[0] = bk_lb_iq4_group(x + 32 * b, w);
        bk_lb_iq4_finish(32, x + 32 * b, scales, y + 18 * b, y + 18 * b + 2, NULL, NULL);
    }
    return 1;
}

void bk_quantize_iq4_nl(const float *x, void *y, int64_t n) { bk_quantize_iq4_using(BK_BODY_AUTO, BK_IQ4_NL, x, y, n, NULL); }

void bk_quantize_iq4_xs(const float *x, void *y, int64_t n) { bk_quantize_iq4_using(BK_BODY_AUTO, BK_IQ4_XS, x, y, n, NULL); }

/* ---- dequantization (ggml's dequantize_row_*) ---- */

static void bk_lb_deq_q2_K(const uint8_t *b, float *y) {
    const float d = bk_qc_half(b + 80), min = bk_qc_half(b + 82);
    const uint8_t *q = b + 16;
    int is = 0;
    for (int n = 0; n < 256; n += 128, q += 32) {
        for (int shift = 0; shift < 8; shift += 2) {
            for (int h = 0; h < 2; h++) {
                const uint8_t sc = b[is++];
                const float dl = d * (float)(sc & 0xF), ml = min * (float)(sc >> 4);
                for (int l = 0; l < 16; l++) *y++ = dl * (float)((q[l + 16 * h] >> shift) & 3) - ml;
            }
        }
    }
}

static void bk_lb_deq_q3_K(const uint8_t *b, float *y) {
    const float dall = bk_qc_half(b + 108);
    const uint8_t *hm = b, *q = b + 32, *sc = b + 96;
    int is = 0;
    uint8_t m = 1;
    for (int n = 0; n < 256; n += 128, q += 32) {
        for (int shift = 0; shift < 8; shift += 2, m = (uint8_t)(m << 1)) {
            for (int h = 0; h < 2; h++) {
                const float dl = dall * (float)bk_lb_q3_scale(sc, is++);
                for (int l = 0; l < 16; l++)
                    *y++ = dl * (float)(((q[l + 16 * h] >> shift) & 3) - ((hm[l + 16 * h] & m) ? 0 : 4));
            }
        }
    }
}

static void bk_lb_deq_iq4_nl(const uint8_t *b, float *y) {
    const float d = bk_qc_half(b);
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)bk_iq4nl_values[b[2 + j] & 0xf];
        y[j + 16] = d * (float)bk_iq4nl_values[b[2 + j] >> 4];
    }
}

static void bk_lb_deq_iq4_xs(const uint8_t *b, float *y) {
    const float d = bk_qc_half(b);
    const uint16_t sh = (uint16_t)(b[2] | (b[3] << 8));
    const uint8_t *qs = b + 8;
    for (int ib = 0; ib < 8; ib++, y += 32, qs += 16) {
        const int ls = ((b[4 + ib / 2] >> (4 * (ib % 2))) & 0xf) | (((sh >> (2 * ib)) & 3) << 4);
        const float dl = d * (float)(ls - 32);
        for (int j = 0; j < 16; j++) {
            y[j] = dl * (float)bk_iq4nl_values[qs[j] & 0xf];
            y[j + 16] = dl * (float)bk_iq4nl_values[qs[j] >> 4];
        }
    }
}

int bk_lowbit_block_elems(int type) { return type == BK_IQ4_NL ? 32 : 256; }

int bk_lowbit_block_bytes(int type) {
    if (bk_grid_block_bytes(type) > 0) return bk_grid_block_bytes(type);   /* the grid types (grid.c) */
    switch (type) {
    case BK_Q2_K: return 84;
    case BK_Q3_K: return 110;
    case BK_IQ4_NL: return 18;
    case BK_IQ4_XS: return 136;
    default: return 0;
    }
}

int bk_lowbit_to_f32(int type, const void *src, float *dst, int64_t n) {
    const uint8_t *s = (const uint8_t *)src;
    const int be = bk_lowbit_block_elems(type), bb = bk_lowbit_block_bytes(type);
    if (bb == 0) return 0;
    if (bk_grid_block_bytes(type) > 0) return bk_grid_to_f32(type, src, dst, n);
    for (int64_t i = 0; i < n / be; i++, s += bb, dst += be) {
        switch (type) {
        case BK_Q2_K: bk_lb_deq_q2_K(s, dst); break;
        case BK_Q3_K: bk_lb_deq_q3_K(s, dst); break;
        case BK_IQ4_NL: bk_lb_deq_iq4_nl(s, dst); break;
        default: bk_lb_deq_iq4_xs(s, dst); break;
        }
    }
    return 1;
}

/* Rows widened BK_LOWBIT_ROWS at a time into f32, then multiplied with the f32 kernels (their AVX-512 panels when
 * there are many tokens). */
int bk_lowbit_rows_dot(int type, const void *w, size_t row_bytes, int64_t rows, int64_t cols, const float *x,
                       int64_t ldx, int64_t ntok, float *y, int64_t ldy, float *buf) {
    if (bk_lowbit_block_bytes(type) == 0) return 0;
    float *scratch = buf + (size_t)cols * BK_LOWBIT_ROWS;
    const uint8_t *wb = (const uint8_t *)w;
    for (int64_t r = 0; r < rows; r += BK_LOWBIT_ROWS) {
        const int64_t nr = rows - r < BK_LOWBIT_ROWS ? rows - r : BK_LOWBIT_ROWS;
        for (int64_t k = 0; k < nr; k++) bk_lowbit_to_f32(type, wb + (size_t)(r + k) * row_bytes, buf + k * cols, cols);
        bk_rows_dot(BK_F32, buf, (size_t)cols * 4, nr, cols, x, ldx, ntok, y + r, ldy, scratch);
    }
    return 1;
}
