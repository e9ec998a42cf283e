/* ggml's quantizers with an importance matrix: what ggml_quantize_chunk(type, src, dst, 0, nrows, n_per_row,
 * imatrix) writes for one row when imatrix is not NULL (ggml-quants.c's quantize_row_*_impl with quant_weights,
 * llama.cpp as vendored by llama-cpp-python 0.3.36). `qw` is one weight per column of the row: llama-quantize
 * passes the imatrix entry of the tensor (its mean squared activation per input column) unchanged to every row.
 *
 * Written from that description, not copied. The searches compare float error sums, so each follows ggml's
 * operations in ggml's order, every product rounded before it is added (ggml-base is built without FMA); the
 * weights are qw[j] * sqrt(sigma2 + x[j]^2), sigma2 the row's or super-block's mean square as each type defines it.
 * The group searches are most of the work (make_qkx3: Q4_1/Q5_1/Q4_K/Q5_K 8 groups of 32 at a time, Q2_K 16 of 16,
 * 37 candidate scales each; make_qx: Q4_0/Q5_0 16 groups of 32, Q3_K/Q6_K 16 of 16, 19 scales); they run in
 * quantize.c's / lowbit.c's lanes (one group per lane, each lane in the scalar order) when the CPU has them, and
 * bk_quantize_row_importance_using compares those bodies with the scalar ones. */
#include "billa_kernels.h"
#include "quant_common.h"
#include "grid.h"

#pragma STDC FP_CONTRACT OFF

/* ggml's make_qp_quants: the non-negative scales (or mins) of a super-block's groups on levels 0..nmax, weighted by
 * each group's weight sum: a 9-point scale search, then up to five passes moving single levels. L gets the levels
 * as ggml stores them (uint8_t: an unclamped negative level wraps, as in ggml). Returns the scale. */
float bk_iw_qp(int n, int nmax, const float *x, uint8_t *L, const float *qw) {
    float max = 0;
    for (int i = 0; i < n; i++) max = max > x[i] ? max : x[i];
    if (max < 1e-15f) {
        for (int i = 0; i < n; i++) L[i] = 0;
        return 0;
    }
    float iscale = (float)nmax / max;
    for (int i = 0; i < n; i++) L[i] = (uint8_t)bk_qc_nearest(iscale * x[i]);
    const float scale = 1 / iscale;
    float best_mse = 0;
    for (int i = 0; i < n; i++) {
        const float diff = x[i] - scale * (float)L[i];
        best_mse += qw[i] * diff * diff;
    }
    for (int is = -4; is <= 4; is++) {
        if (is == 0) continue;
        const float iscale_is = (0.1f * (float)is + (float)nmax) / max;
        const float scale_is = 1 / iscale_is;
        float mse = 0;
        for (int i = 0; i < n; i++) {
            int l = bk_qc_nearest(iscale_is * x[i]);
            l = l < nmax ? l : nmax;
            const float diff = x[i] - scale_is * (float)l;
            mse += qw[i] * diff * diff;
        }
        if (mse < best_mse) {
            best_mse = mse;
            iscale = iscale_is;
        }
    }
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = bk_qc_nearest(iscale * x[i]);
        l = l < nmax ? l : nmax;
        L[i] = (uint8_t)l;
        const float w = qw[i], fl = (float)l;   /* the sums take the int level, before it is stored */
        sumlx += w * x[i] * fl;
        suml2 += w * fl * fl;
    }
    for (int itry = 0; itry < 5; itry++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            const float w = qw[i], li = (float)L[i];
            float slx = sumlx - w * x[i] * li;
            float sl2 = suml2 - w * li * li;
            if (slx > 0 && sl2 > 0) {
                int nl = bk_qc_nearest(x[i] * sl2 / slx);
                nl = nl < nmax ? nl : nmax;
                if (nl != (int)L[i]) {
                    const float fnl = (float)nl;
                    slx += w * x[i] * fnl;
                    sl2 += w * fnl * fnl;
                    if (slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (uint8_t)nl;
                        sumlx = slx;
                        suml2 = sl2;
                        changed++;
                    }
                }
            }
        }
        if (!changed) break;
    }
    return suml2 > 0 ? sumlx / suml2 : 0;
}

/* ggml's make_qkx3_quants with weights (squared error, rmin -0.9, rdelta 0.05, 37 candidate scales). With
 * weights given it performs make_qkx2_quants' operations exactly (its `max <= min` test and make_qkx2's
 * `max == min` agree for every input, NaN included: min <= max whenever both are numbers), so it is that one copy. */
static inline float bk_iw_qkx3(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min) {
    return bk_qkx2_group(n, nmax, x, w, L, the_min, -0.9f, 0.05f, 36, 0);
}

/* Sum of x^2 over n values in order. */
static inline float bk_iw_sumsq(const float *x, int64_t n) {
    float s = 0;
    for (int64_t j = 0; j < n; j++) s += x[j] * x[j];
    return s;
}

/* weight[j] = qw[j] * sqrt(sigma2 + x[j]^2) for n values; returns their sum in order. */
static inline float bk_iw_weights(int n, const float *x, const float *qw, float sigma2, float *weight) {
    float sum = 0;
    for (int j = 0; j < n; j++) {
        weight[j] = qw[j] * __builtin_sqrtf(sigma2 + x[j] * x[j]);
        sum += weight[j];
    }
    return sum;
}

/* ---- 32-element types: sigma2 is the mean square of the whole row ---- */

/* One Q4_0 (18 bytes: f16 d, qs[16]) or Q5_0 (22: f16 d, u32 qh, qs[16]) block from its levels. */
static void bk_iw_put_q4_0_q5_0(int five, uint8_t *b, float d, const int8_t *L) {
    bk_qc_put_half(b, d);
    if (!five) {
        for (int j = 0; j < 16; j++) b[2 + j] = (uint8_t)(L[j] | (L[j + 16] << 4));
        return;
    }
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        const uint8_t l0 = (uint8_t)L[j], l1 = (uint8_t)L[j + 16];
        b[6 + j] = (uint8_t)((l0 & 0x0F) | ((l1 & 0x0F) << 4));
        qh |= ((l0 & 0x10u) >> 4) << j;
        qh |= ((l1 & 0x10u) >> 4) << (j + 16);
    }
    for (int k = 0; k < 4; k++) b[2 + k] = (uint8_t)(qh >> (8 * k));
}

/* Q4_0 and Q5_0: make_qx_quants per 32-block, levels -nmax..nmax-1; sixteen blocks per lane call. */
static void bk_iw_q4_0_q5_0(int body, int five, const float *x, uint8_t *y, int64_t n, const float *qw) {
    const float sigma2 = bk_iw_sumsq(x, n) / (float)n;
    const int nmax = five ? 16 : 8, bytes = five ? 22 : 18;
    float weight[512], scales[16];
    int8_t L[512];
    const int64_t nb = n / 32;
    int64_t ib = 0;
    for (; ib + 16 <= nb; ib += 16) {
        for (int k = 0; k < 16; k++) bk_iw_weights(32, x + 32 * (ib + k), qw + 32 * (ib + k), sigma2, weight + 32 * k);
        bk_make_qx_16xn_weighted_using(body, 32, nmax, x + 32 * ib, weight, L, scales);
        for (int k = 0; k < 16; k++) bk_iw_put_q4_0_q5_0(five, y + bytes * (ib + k), scales[k], L + 32 * k);
    }
    for (; ib < nb; ib++) {
        const float *xb = x + 32 * ib;
        bk_iw_weights(32, xb, qw + 32 * ib, sigma2, weight);
        bk_iw_put_q4_0_q5_0(five, y + bytes * ib, bk_qx_group(32, nmax, xb, weight, L), L);
    }
}

/* One Q4_1 (20 bytes: f16 d, f16 m, qs[16]) or Q5_1 (24: f16 d, f16 m, u32 qh, qs[16]) block from its levels. */
static void bk_iw_put_q4_1_q5_1(int five, uint8_t *b, float d, float min, const uint8_t *L) {
    bk_qc_put_half(b, d);
    bk_qc_put_half(b + 2, -min);
    if (!five) {
        for (int j = 0; j < 16; j++) b[4 + j] = (uint8_t)(L[j] | (L[j + 16] << 4));
        return;
    }
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        const uint8_t l0 = L[j], l1 = L[j + 16];
        b[8 + j] = (uint8_t)((l0 & 0x0F) | ((l1 & 0x0F) << 4));
        qh |= ((l0 & 0x10u) >> 4) << j;
        qh |= ((l1 & 0x10u) >> 4) << (j + 16);
    }
    for (int k = 0; k < 4; k++) b[4 + k] = (uint8_t)(qh >> (8 * k));
}

/* Q4_1 and Q5_1: make_qkx3_quants per 32-block, levels 0..nmax above a minimum; eight blocks per lane call. */
static void bk_iw_q4_1_q5_1(int body, int five, const float *x, uint8_t *y, int64_t n, const float *qw) {
    const float sigma2 = bk_iw_sumsq(x, n) / (float)n;
    const int nmax = five ? 31 : 15, bytes = five ? 24 : 20;
    float weight[256], scales[8], mins[8];
    uint8_t L[256];
    const int64_t nb = n / 32;
    int64_t ib = 0;
    for (; ib + 8 <= nb; ib += 8) {
        for (int k = 0; k < 8; k++) bk_iw_weights(32, x + 32 * (ib + k), qw + 32 * (ib + k), sigma2, weight + 32 * k);
        bk_make_qkx2_8x32_weighted_using(body, nmax, x + 32 * ib, weight, -0.9f, 0.05f, 36, L, scales, mins);
        for (int k = 0; k < 8; k++) bk_iw_put_q4_1_q5_1(five, y + bytes * (ib + k), scales[k], mins[k], L + 32 * k);
    }
    for (; ib < nb; ib++) {
        const float *xb = x + 32 * ib;
        bk_iw_weights(32, xb, qw + 32 * ib, sigma2, weight);
        float min;
        const float d = bk_iw_qkx3(32, nmax, xb, weight, L, &min);
        bk_iw_put_q4_1_q5_1(five, y + bytes * ib, d, min, L);
    }
}

/* ---- 256-element K types: sigma2 per super-block ---- */

/* Q2_K (84 bytes: scales[16] (scale | min << 4), qs[64], f16 d, f16 dmin). sigma2 = mean square (no factor 2). */
static void bk_iw_q2_K(int body, const float *x, uint8_t *y, int64_t n, const float *qw) {
    uint8_t L[256], Ls[16], Lm[16];
    float mins[16], scales[16], sw[16], weight[256];
    for (int64_t i = 0; i < n / 256; i++, x += 256, y += 84) {
        const float *q = qw + 256 * i;
        const float sigma2 = bk_iw_sumsq(x, 256) / 256;
        for (int j = 0; j < 16; j++) sw[j] = bk_iw_weights(16, x + 16 * j, q + 16 * j, sigma2, weight + 16 * j);
        bk_q2_K_weighted_searches_using(body, x, weight, L, scales, mins);
        float dm = bk_iw_qp(16, 15, scales, Ls, sw);
        float mm = bk_iw_qp(16, 15, mins, Lm, sw);
        bk_qc_put_half(y + 80, dm);
        bk_qc_put_half(y + 82, mm);
        dm = bk_qc_half(y + 80);
        mm = bk_qc_half(y + 82);
        uint8_t *sc = y;
        for (int j = 0; j < 16; j++) sc[j] = (uint8_t)(Ls[j] | (Lm[j] << 4));
        for (int j = 0; j < 16; j++) {
            const float d = dm * (float)(sc[j] & 0xF);
            if (d == 0) continue;
            const float m = mm * (float)(sc[j] >> 4);
            for (int ii = 0; ii < 16; ii++) L[16 * j + ii] = (uint8_t)bk_qc_clamp(bk_qc_nearest((x[16 * j + ii] + m) / d), 0, 3);
        }
        bk_qc_pack2(L, y + 16);
    }
}

/* Q3_K (110 bytes: hmask[32], qs[64], scales[12], f16 d). sigma2 = twice the mean square. */
static void bk_iw_q3_K(int body, const float *x, uint8_t *y, int64_t n, const float *qw) {
    int8_t L[256], Ls[16];
    float scales[16], sw[16], weight[256];
    for (int64_t i = 0; i < n / 256; i++, x += 256, y += 110) {
        const float *q = qw + 256 * i;
        const float sigma2 = 2 * bk_iw_sumsq(x, 256) / 256;
        for (int j = 0; j < 16; j++) sw[j] = bk_iw_weights(16, x + 16 * j, q + 16 * j, sigma2, weight + 16 * j);
        bk_make_qx_16xn_weighted_using(body, 16, 4, x, weight, L, scales);
        uint8_t *hmask = y, *qs = y + 32, *sc = y + 96;
        memset(sc, 0, 12);
        const float d_block = bk_qx_group(16, 32, scales, sw, Ls);
        for (int j = 0; j < 16; j++) {
            int l = Ls[j];
            if (j < 8) sc[j] = (uint8_t)(l & 0xF);
            else sc[j - 8] |= (uint8_t)((l & 0xF) << 4);
            l >>= 4;
            sc[j % 4 + 8] |= (uint8_t)(l << (2 * (j / 4)));
        }
        bk_qc_put_half(y + 108, d_block);
        const float dall = bk_qc_half(y + 108);
        for (int j = 0; j < 16; j++) {
            int8_t s = (int8_t)(j < 8 ? sc[j] & 0xF : sc[j - 8] >> 4);
            s = (int8_t)((s | (((sc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32);
            const float d = dall * (float)s;
            if (d == 0) continue;
            for (int ii = 0; ii < 16; ii++) L[16 * j + ii] = (int8_t)(bk_qc_clamp(bk_qc_nearest(x[16 * j + ii] / d), -4, 3) + 4);
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

/* Q4_K (144 bytes: f16 d, f16 dmin, scales[12], qs[128]) and Q5_K (176: ..., qh[32], qs[128]): make_qkx3_quants per
 * group of 32, make_qp_quants for the 6-bit scales and mins. sigma2 = twice the mean square. Q5_K clamps the 6-bit
 * values to 63, Q4_K does not (as in ggml). */
static void bk_iw_q4_K_q5_K(int body, int five, const float *x, uint8_t *y, int64_t n, const float *qw) {
    uint8_t L[256], Ls[8], Lm[8];
    float mins[8], scales[8], sw[8], weight[256];
    const int nmax = five ? 31 : 15, bytes = five ? 176 : 144;
    for (int64_t i = 0; i < n / 256; i++, x += 256, y += bytes) {
        const float *q = qw + 256 * i;
        const float sigma2 = 2 * bk_iw_sumsq(x, 256) / 256;
        for (int j = 0; j < 8; j++) sw[j] = bk_iw_weights(32, x + 32 * j, q + 32 * j, sigma2, weight + 32 * j);
        bk_make_qkx2_8x32_weighted_using(body, nmax, x, weight, -0.9f, 0.05f, 36, L, scales, mins);
        const float d_block = bk_iw_qp(8, 63, scales, Ls, sw);
        const float m_block = bk_iw_qp(8, 63, mins, Lm, sw);
        uint8_t *sc = y + 4;
        for (int j = 0; j < 8; j++) {
            uint8_t ls = Ls[j], lm = Lm[j];
            if (five) {
                ls = ls < 63 ? ls : 63;
                lm = lm < 63 ? lm : 63;
            }
            if (j < 4) {
                sc[j] = ls;
                sc[j + 4] = lm;
            } else {
                sc[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
                sc[j - 4] |= (uint8_t)((ls >> 4) << 6);
                sc[j] |= (uint8_t)((lm >> 4) << 6);
            }
        }
        bk_qc_put_half(y, d_block);
        bk_qc_put_half(y + 2, m_block);
        const float dall = bk_qc_half(y), dmall = bk_qc_half(y + 2);
        for (int j = 0; j < 8; j++) {
            uint8_t s, m;
            if (j < 4) {
                s = sc[j] & 63;
                m = sc[j + 4] & 63;
            } else {
                s = (uint8_t)((sc[j + 4] & 0xF) | ((sc[j - 4] >> 6) << 4));
                m = (uint8_t)((sc[j + 4] >> 4) | ((sc[j] >> 6) << 4));
            }
            const float d = dall * (float)s;
            if (d == 0) continue;
            const float dm = dmall * (float)m;
            for (int ii = 0; ii < 32; ii++) L[32 * j + ii] = (uint8_t)bk_qc_clamp(bk_qc_nearest((x[32 * j + ii] + dm) / d), 0, nmax);
        }
        if (!five) {
            uint8_t *qs = y + 16;
            for (int j = 0; j < 256; j += 64, qs += 32)
                for (int l = 0; l < 32; l++) qs[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
            continue;
        }
        uint8_t *qh = y + 16, *ql = y + 48;
        memset(qh, 0, 32);
        uint8_t m1 = 1, m2 = 2;
        for (int j = 0; j < 256; j += 64, ql += 32) {
            for (int l = 0; l < 32; l++) {
                int l1 = L[j + l], l2 = L[j + l + 32];
                if (l1 > 15) { l1 -= 16; qh[l] |= m1; }
                if (l2 > 15) { l2 -= 16; qh[l] |= m2; }
                ql[l] = (uint8_t)(l1 | (l2 << 4));
            }
            m1 = (uint8_t)(m1 << 2);
            m2 = (uint8_t)(m2 << 2);
        }
    }
}

/* Q6_K (210 bytes: ql[128], qh[64], scales[16] (int8), f16 d): make_qx_quants per group of 16 with the imatrix
 * itself as the weights (ggml's sigma2 weighting is commented out for this type). */
static void bk_iw_q6_K(int body, const float *x, uint8_t *y, int64_t n, const float *qw) {
    int8_t L[256];
    float scales[16];
    for (int64_t i = 0; i < n / 256; i++, x += 256, y += 210) {
        float max_scale = 0, max_abs_scale = 0;
        bk_make_qx_16xn_weighted_using(body, 16, 32, x, qw + 256 * i, L, scales);
        for (int ib = 0; ib < 16; ib++) {
            const float a = __builtin_fabsf(scales[ib]);
            if (a > max_abs_scale) { max_abs_scale = a; max_scale = scales[ib]; }
        }
        if (max_abs_scale < 1e-15f) {
            memset(y, 0, 210);
            continue;
        }
        const float iscale = -128.f / max_scale;
        bk_qc_put_half(y + 208, 1 / iscale);
        int8_t *sc = (int8_t *)(y + 192);
        for (int ib = 0; ib < 16; ib++) {
            const int s = bk_qc_nearest(iscale * scales[ib]);
            sc[ib] = (int8_t)(s < 127 ? s : 127);
        }
        const float dall = bk_qc_half(y + 208);
        for (int j = 0; j < 16; j++) {
            const float d = dall * (float)sc[j];
            if (d == 0) continue;
            for (int ii = 0; ii < 16; ii++) L[16 * j + ii] = (int8_t)(bk_qc_clamp(bk_qc_nearest(x[16 * j + ii] / d), -32, 31) + 32);
        }
        uint8_t *ql = y, *qh = y + 128;
        for (int j = 0; j < 256; j += 128, ql += 64, qh += 32) {
            for (int l = 0; l < 32; l++) {
                const uint8_t a = (uint8_t)L[j + l], b = (uint8_t)L[j + l + 32];
                const uint8_t c = (uint8_t)L[j + l + 64], e = (uint8_t)L[j + l + 96];
                ql[l] = (uint8_t)((a & 0xF) | ((c & 0xF) << 4));
                ql[l + 32] = (uint8_t)((b & 0xF) | ((e & 0xF) << 4));
                qh[l] = (uint8_t)((a >> 4) | ((b >> 4) << 2) | ((c >> 4) << 4) | ((e >> 4) << 6));
            }
        }
    }
}

int bk_quantize_row_importance_using(int body, int type, const float *x, void *vy, int64_t n, const float *qw) {
    /* the bodies of the 8 x 32 searches (and Q8_0) and of Q2_K's 16 x 16 */
    int b8 = body, b2 = body;
    if (body == BK_BODY_AVX512) {
        if (!bk_cpu_has_body(BK_BODY_AVX512) || !bk_cpu_has_body(BK_BODY_AVX2)) return 0;
        b2 = BK_BODY_AVX2;
    } else if (body != BK_BODY_AUTO && body != BK_BODY_PORTABLE) {
        return 0;
    }
    uint8_t *y = (uint8_t *)vy;
    switch (type) {
    case BK_Q4_0: bk_iw_q4_0_q5_0(b8, 0, x, y, n, qw); return 1;
    case BK_Q5_0: bk_iw_q4_0_q5_0(b8, 1, x, y, n, qw); return 1;
    case BK_Q4_1: bk_iw_q4_1_q5_1(b8, 0, x, y, n, qw); return 1;
    case BK_Q5_1: bk_iw_q4_1_q5_1(b8, 1, x, y, n, qw); return 1;
    case BK_Q8_0: return bk_quantize_q8_0_using(b8, x, y, n);   /* ggml's quantize_q8_0 ignores quant_weights */
    case BK_Q2_K: bk_iw_q2_K(b2, x, y, n, qw); return 1;
    case BK_Q3_K: bk_iw_q3_K(b8, x, y, n, qw); return 1;
    case BK_Q4_K: bk_iw_q4_K_q5_K(b8, 0, x, y, n, qw); return 1;
    case BK_Q5_K: bk_iw_q4_K_q5_K(b8, 1, x, y, n, qw); return 1;
    case BK_Q6_K: bk_iw_q6_K(b8, x, y, n, qw); return 1;
    case BK_IQ4_NL:
    case BK_IQ4_XS: return bk_quantize_iq4_using(b8, type, x, y, n, qw);
    default: return 0;
    }
}

int bk_quantize_row_importance(int type, const float *x, void *y, int64_t n, const float *qw) {
    return bk_quantize_row_importance_using(BK_BODY_AUTO, type, x, y, n, qw);
}
