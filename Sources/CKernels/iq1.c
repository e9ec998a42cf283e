/* IQ1_S and IQ1_M: ggml's quantize_row_iq1_s_impl (needs importance weights: ggml asserts them) and
 * quantize_row_iq1_m_impl (weights x^2 without), llama.cpp as vendored by llama-cpp-python 0.3.36, and their
 * dequantizers.
 *
 * Values take one of three levels -1, 0, 1 shifted by +-delta (0.125) per group; the best split of a group into the
 * three levels is found exhaustively over the values sorted ascending (prefix sums of weight*x and weight), then the
 * points of 8 are moved onto the 2048-point grid (neighbour lists with the three nearest distances), and the scale
 * refitted. The sort is ggml's: the C library's qsort of (value, index) pairs compared by value only, so equal values
 * keep whatever order qsort leaves them in; billa calls the same qsort with the same pairs and comparison, which
 * gives ggml's order wherever billa and ggml-base use the same C library (glibc here). Every float operation in
 * ggml's order (no FMA). Written from that description, not copied. */
#include "billa_kernels.h"
#include "grid.h"
#include "quant_common.h"
#include <math.h>
#include <stdlib.h>

#pragma STDC FP_CONTRACT OFF

#define BK_G_MAX(a, b) ((a) > (b) ? (a) : (b))

typedef struct { float x; int i; } bk_iq1_pair;

static int bk_iq1_cmp(const void *left, const void *right) {
    const float l = ((const bk_iq1_pair *)left)->x, r = ((const bk_iq1_pair *)right)->x;
    return l < r ? -1 : l > r ? 1 : 0;
}

static void bk_iq1_sort(const float *xb, int n, bk_iq1_pair *pairs) {
    for (int j = 0; j < n; j++) {
        pairs[j].x = xb[j];
        pairs[j].i = j;
    }
    qsort(pairs, (size_t)n, sizeof(bk_iq1_pair), bk_iq1_cmp);
}

/* ggml's iq1_find_best_neighbour2: the neighbour with the least weighted squared error, levels through xg. ggml
 * then scans the whole grid when no neighbour scored below FLT_MAX (NaN or overflowing errors; its scan reads past
 * the 8 values) and asserts; billa keeps the first neighbour there. */
static int bk_iq1_neighbour(const bk_lattice *lat, int u, const float *xval, const float *weight, float scale,
                            const float *xg, int8_t *L) {
    const uint16_t *nb = lat->neighbours - lat->map[u] - 1;
    int gi = bk_lattice_best_neighbour_xg(lat, nb, xval, weight, scale, xg);
    if (gi < 0) gi = nb[1];
    const int8_t *pg = lat->grid + (size_t)gi * 8;
    for (int i = 0; i < 8; i++) L[i] = (int8_t)((pg[i] - 1) / 2);
    return gi;
}

static inline int bk_iq1_pack(const int8_t *L) {
    int u = 0;
    for (int j = 0; j < 8; j++) u |= L[j] << (2 * j);
    return u;
}

static float bk_iq1_sigma2(const float *xbl) {
    float sumx2 = 0;
    for (int i = 0; i < 256; i++) sumx2 += xbl[i] * xbl[i];
    return 2 * sumx2 / 256;
}

/* IQ1_S: f16 d, qs[32] low 8 bits of the 11-bit indices, qh[8] u16: 3 high bits per point, a 3-bit scale in bits
 * 12-14 and the shift's sign in bit 15; groups of 32. */
static void bk_iq1_s_block(const bk_lattice *lat, const float *xbl, const float *qwb, uint8_t *y) {
    static const float x_p[3] = {-1 + 0.125f, 0.125f, 1 + 0.125f};
    static const float x_m[3] = {-1 - 0.125f, -0.125f, 1 - 0.125f};
    float scales[8], weight[32], sumx[33], sumw[33];
    int8_t L[32], shifts[8];
    uint16_t index[4], qh[8] = {0};
    bk_iq1_pair pairs[32];
    float max_scale = 0;
    memset(y, 0, 50);
    const float sigma2 = bk_iq1_sigma2(xbl);
    for (int ib = 0; ib < 8; ib++) {
        const float *xb = xbl + 32 * ib, *qw = qwb + 32 * ib;
        for (int i = 0; i < 32; i++) weight[i] = qw[i] * __builtin_sqrtf(sigma2 + xb[i] * xb[i]);
        float max = fabsf(xb[0]);
        for (int i = 1; i < 32; i++) max = BK_G_MAX(max, fabsf(xb[i]));
        if (max < 1e-12f) {
            scales[ib] = 0;
            shifts[ib] = 1;
            continue;
        }
        bk_iq1_sort(xb, 32, pairs);
        sumx[0] = sumw[0] = 0;
        for (int j = 0; j < 32; j++) {
            const int i = pairs[j].i;
            sumx[j + 1] = sumx[j] + weight[i] * xb[i];
            sumw[j + 1] = sumw[j] + weight[i];
        }
        float best_score = -3.402823466e+38f, scale = max;
        int besti1 = -1, besti2 = -1, best_shift = 0;
        for (int i1 = 0; i1 <= 32; i1++) {
            for (int i2 = i1; i2 <= 32; i2++) {
                float sumqx = (sumx[i1] - sumx[0]) * x_p[0] + (sumx[i2] - sumx[i1]) * x_p[1] + (sumx[32] - sumx[i2]) * x_p[2];
                float sumq2 = (sumw[i1] - sumw[0]) * x_p[0] * x_p[0] + (sumw[i2] - sumw[i1]) * x_p[1] * x_p[1] +
                              (sumw[32] - sumw[i2]) * x_p[2] * x_p[2];
                if (sumq2 > 0 && sumqx * sumqx > best_score * sumq2) {
                    scale = sumqx / sumq2;
                    best_score = scale * sumqx;
                    besti1 = i1;
                    besti2 = i2;
                    best_shift = 1;
                }
                sumqx = (sumx[i1] - sumx[0]) * x_m[0] + (sumx[i2] - sumx[i1]) * x_m[1] + (sumx[32] - sumx[i2]) * x_m[2];
                sumq2 = (sumw[i1] - sumw[0]) * x_m[0] * x_m[0] + (sumw[i2] - sumw[i1]) * x_m[1] * x_m[1] +
                        (sumw[32] - sumw[i2]) * x_m[2] * x_m[2];
                if (sumq2 > 0 && sumqx * sumqx > best_score * sumq2) {
                    scale = sumqx / sumq2;
                    best_score = scale * sumqx;
                    besti1 = i1;
                    besti2 = i2;
                    best_shift = -1;
                }
            }
        }
        if (besti1 < 0 || besti2 < 0 || best_shift == 0) {
            scales[ib] = 0;
            shifts[ib] = 1;
            continue;
        }
        for (int j = 0; j < besti1; j++) L[pairs[j].i] = 0;
        for (int j = besti1; j < besti2; j++) L[pairs[j].i] = 1;
        for (int j = besti2; j < 32; j++) L[pairs[j].i] = 2;
        if (scale < 0) {
            for (int j = 0; j < 32; j++) L[j] = (int8_t)(2 - L[j]);
            scale = -scale;
            best_shift = -best_shift;
        }
        int all_on_grid = 1;
        const float *xx = best_shift == 1 ? x_p : x_m;
        for (int k = 0; k < 4; k++) {
            const int u = bk_iq1_pack(L + 8 * k);
            int gi = lat->map[u];
            if (gi < 0) {
                all_on_grid = 0;
                gi = bk_iq1_neighbour(lat, u, xb + 8 * k, weight + 8 * k, scale, xx, L + 8 * k);
            }
            index[k] = (uint16_t)gi;
        }
        if (!all_on_grid) {
            float sumqx = 0, sumq2 = 0;
            for (int k = 0; k < 4; k++) {
                const int8_t *pg = lat->grid + (size_t)index[k] * 8;
                for (int j = 0; j < 8; j++) {
                    const float w = weight[8 * k + j];
                    const float q = xx[(pg[j] - 1) / 2];
                    sumqx += w * q * xb[8 * k + j];
                    sumq2 += w * q * q;
                }
            }
            if (sumqx > 0 && sumq2 > 0) scale = sumqx / sumq2;
        }
        uint16_t h = 0;
        for (int k = 0; k < 4; k++) {
            y[2 + 4 * ib + k] = (uint8_t)(index[k] & 255);
            h |= (uint16_t)((index[k] >> 8) << (3 * k));
        }
        qh[ib] = h;
        scales[ib] = scale;
        shifts[ib] = (int8_t)best_shift;
        max_scale = BK_G_MAX(max_scale, scale);
    }
    if (max_scale) {
        const float d = max_scale / 15;
        bk_qc_put_half(y, d * 1.125f);
        const float id = 1 / d;
        for (int ib = 0; ib < 8; ib++) {
            int l = bk_qc_clamp(bk_qc_nearest(0.5f * (id * scales[ib] - 1)), 0, 7);
            if (shifts[ib] == -1) l |= 8;
            qh[ib] |= (uint16_t)(l << 12);
        }
    }
    for (int ib = 0; ib < 8; ib++) {
        y[34 + 2 * ib] = (uint8_t)qh[ib];
        y[35 + 2 * ib] = (uint8_t)(qh[ib] >> 8);
    }
}

/* IQ1_M: qs[32] low 8 bits, qh[16] (per group of 16: two 3-bit high parts and two shift-sign bits 0x08/0x80),
 * scales[8] as four u16: four 3-bit group scales each, and the f16 super-block scale in their top nibbles. */
static void bk_iq1_m_block(const bk_lattice *lat, const float *xbl, const float *qwb, uint8_t *y) {
    static const float x_p[3] = {-1 + 0.125f, 0.125f, 1 + 0.125f};
    static const float x_m[3] = {-1 - 0.125f, -0.125f, 1 - 0.125f};
    static const uint8_t masks[4] = {0x00, 0x80, 0x08, 0x88};
    float scales[16], weight[16], sumqx[4], sumq2[4];
    int8_t L[16], shifts[16];
    uint16_t index[2], sc[4] = {0};
    bk_iq1_pair pairs[16];
    uint8_t *qs = y, *qh = y + 32;
    float max_scale = 0;
    memset(y, 0, 56);
    const float sigma2 = bk_iq1_sigma2(xbl);
    for (int ib = 0; ib < 16; ib++) {
        const float *xb = xbl + 16 * ib;
        if (qwb) {
            const float *qw = qwb + 16 * ib;
            for (int i = 0; i < 16; i++) weight[i] = qw[i] * __builtin_sqrtf(sigma2 + xb[i] * xb[i]);
        } else {
            for (int i = 0; i < 16; i++) weight[i] = xb[i] * xb[i];
        }
        float max = fabsf(xb[0]);
        for (int i = 1; i < 16; i++) max = BK_G_MAX(max, fabsf(xb[i]));
        if (max < 1e-7f) {
            scales[ib] = 0;
            shifts[ib] = 0;
            continue;
        }
        bk_iq1_sort(xb, 16, pairs);
        float best_score = -3.402823466e+38f, scale = max;
        int besti1 = -1, besti2 = -1, best_k = -1;
        /* prefix sums per half (each half has its own shift sign) */
        float px[2][17], pw[2][17];
        px[0][0] = px[1][0] = 0;
        pw[0][0] = pw[1][0] = 0;
        for (int j = 0; j < 16; j++) {
            const int i = pairs[j].i, h = i < 8 ? 0 : 1;
            px[h][j + 1] = px[h][j] + weight[i] * xb[i];
            px[1 - h][j + 1] = px[1 - h][j];
            pw[h][j + 1] = pw[h][j] + weight[i];
            pw[1 - h][j + 1] = pw[1 - h][j];
        }
        const float txs[2] = {px[0][16], px[1][16]}, tws[2] = {pw[0][16], pw[1][16]};
        const float p2 = x_p[2], m2 = x_m[2];
        const float cp1 = x_p[0] * x_p[0] - x_p[1] * x_p[1], cp2 = x_p[1] * x_p[1] - x_p[2] * x_p[2];
        const float cm1 = x_m[0] * x_m[0] - x_m[1] * x_m[1], cm2 = x_m[1] * x_m[1] - x_m[2] * x_m[2];
        for (int i1 = 0; i1 <= 16; i1++) {
            for (int i2 = i1; i2 <= 16; i2++) {
                float qx_p[2], qx_m[2], q2_p[2], q2_m[2];
                for (int h = 0; h < 2; h++) {
                    const float sx = px[h][i1] + px[h][i2];
                    qx_p[h] = txs[h] * p2 - sx;
                    qx_m[h] = txs[h] * m2 - sx;
                    q2_p[h] = tws[h] * p2 * p2 + pw[h][i1] * cp1 + pw[h][i2] * cp2;
                    q2_m[h] = tws[h] * m2 * m2 + pw[h][i1] * cm1 + pw[h][i2] * cm2;
                }
                sumqx[0] = qx_p[0] + qx_p[1];
                sumqx[1] = qx_p[0] + qx_m[1];
                sumqx[2] = qx_m[0] + qx_p[1];
                sumqx[3] = qx_m[0] + qx_m[1];
                sumq2[0] = q2_p[0] + q2_p[1];
                sumq2[1] = q2_p[0] + q2_m[1];
                sumq2[2] = q2_m[0] + q2_p[1];
                sumq2[3] = q2_m[0] + q2_m[1];
                for (int k = 0; k < 4; k++) {
                    if (sumq2[k] > 0 && sumqx[k] * sumqx[k] > best_score * sumq2[k]) {
                        scale = sumqx[k] / sumq2[k];
                        best_score = scale * sumqx[k];
                        besti1 = i1;
                        besti2 = i2;
                        best_k = k;
                    }
                }
            }
        }
        if (besti1 < 0 || besti2 < 0 || best_k < 0) {
            scales[ib] = 0;
            shifts[ib] = 0;
            continue;
        }
        for (int j = 0; j < besti1; j++) L[pairs[j].i] = 0;
        for (int j = besti1; j < besti2; j++) L[pairs[j].i] = 1;
        for (int j = besti2; j < 16; j++) L[pairs[j].i] = 2;
        if (scale < 0) {
            for (int j = 0; j < 16; j++) L[j] = (int8_t)(2 - L[j]);
            scale = -scale;
            best_k = 3 - best_k;
        }
        int all_on_grid = 1;
        for (int k = 0; k < 2; k++) {
            const float *xx = k == 0 ? (best_k < 2 ? x_p : x_m) : (best_k % 2 == 0 ? x_p : x_m);
            const int u = bk_iq1_pack(L + 8 * k);
            int gi = lat->map[u];
            if (gi < 0) {
                all_on_grid = 0;
                gi = bk_iq1_neighbour(lat, u, xb + 8 * k, weight + 8 * k, scale, xx, L + 8 * k);
            }
            index[k] = (uint16_t)gi;
        }
        if (!all_on_grid) {
            float sqx = 0, sq2 = 0;
            for (int k = 0; k < 2; k++) {
                const float *xx = k == 0 ? (best_k < 2 ? x_p : x_m) : (best_k % 2 == 0 ? x_p : x_m);
                const int8_t *pg = lat->grid + (size_t)index[k] * 8;
                for (int j = 0; j < 8; j++) {
                    const float w = weight[8 * k + j];
                    const float q = xx[(pg[j] - 1) / 2];
                    sqx += w * q * xb[8 * k + j];
                    sq2 += w * q * q;
                }
            }
            if (sqx > 0 && sq2 > 0) scale = sqx / sq2;
        }
        qs[2 * ib + 0] = (uint8_t)(index[0] & 255);
        qs[2 * ib + 1] = (uint8_t)(index[1] & 255);
        qh[ib] = (uint8_t)((index[0] >> 8) | ((index[1] >> 8) << 4));
        scales[ib] = scale;
        shifts[ib] = (int8_t)best_k;
        max_scale = BK_G_MAX(max_scale, scale);
    }
    if (!max_scale) return;
    float d = max_scale / 15;
    const float id = 1 / d;
    float sqx = 0, sq2 = 0;
    for (int ib = 0; ib < 16; ib++) {
        const int l = bk_qc_clamp(bk_qc_nearest(0.5f * (id * scales[ib] - 1)), 0, 7);
        sc[ib / 4] |= (uint16_t)(l << (3 * (ib % 4)));
        qh[ib] |= masks[shifts[ib]];
        const float *xb = xbl + 16 * ib;
        if (qwb) {
            const float *qw = qwb + 16 * ib;
            for (int i = 0; i < 16; i++) weight[i] = qw[i] * __builtin_sqrtf(sigma2 + xb[i] * xb[i]);
        } else {
            for (int i = 0; i < 16; i++) weight[i] = xb[i] * xb[i];
        }
        for (int k = 0; k < 2; k++) {
            const float *xx = k == 0 ? (shifts[ib] < 2 ? x_p : x_m) : (shifts[ib] % 2 == 0 ? x_p : x_m);
            const int8_t *pg = lat->grid + (size_t)(qs[2 * ib + k] + ((qh[ib] << (8 - 4 * k)) & 0x700)) * 8;
            for (int j = 0; j < 8; j++) {
                const float w = weight[8 * k + j];
                const float q = xx[(pg[j] - 1) / 2] * (float)(2 * l + 1);
                sqx += w * q * xb[8 * k + j];
                sq2 += w * q * q;
            }
        }
    }
    if (sq2 > 0) d = sqx / sq2;
    const uint16_t h = bk_qc_f2h(d * 1.1125f);
    sc[0] |= (uint16_t)((h & 0x000f) << 12);
    sc[1] |= (uint16_t)((h & 0x00f0) << 8);
    sc[2] |= (uint16_t)((h & 0x0f00) << 4);
    sc[3] |= (uint16_t)(h & 0xf000);
    for (int j = 0; j < 4; j++) {
        y[48 + 2 * j] = (uint8_t)sc[j];
        y[49 + 2 * j] = (uint8_t)(sc[j] >> 8);
    }
}

int bk_iq1_quantize_row(int type, const float *x, void *vy, int64_t n, const float *qw) {
    uint8_t *y = (uint8_t *)vy;
    const bk_lattice *lat = bk_lattice_get(BK_LAT_IQ1S);
    if (type == BK_IQ1_S && qw) {
        for (int64_t b = 0; b < n / 256; b++) bk_iq1_s_block(lat, x + 256 * b, qw + 256 * b, y + 50 * b);
        return 1;
    }
    if (type == BK_IQ1_M) {
        for (int64_t b = 0; b < n / 256; b++) bk_iq1_m_block(lat, x + 256 * b, qw ? qw + 256 * b : NULL, y + 56 * b);
        return 1;
    }
    return 0;
}

/* ggml's dequantize_row_iq1_s: d * (2 s + 1) * (grid value + delta). */
void bk_iq1_s_dequant(const uint8_t *b, float *y) {
    const float d = bk_qc_half(b);
    const uint8_t *qs = b + 2;
    for (int ib = 0; ib < 8; ib++) {
        const uint16_t qh = (uint16_t)(b[34 + 2 * ib] | (b[35 + 2 * ib] << 8));
        const float dl = d * (float)(2 * ((qh >> 12) & 7) + 1);
        const float delta = qh & 0x8000 ? -0.125f : 0.125f;
        for (int l = 0; l < 4; l++) {
            const uint64_t g = bk_iq1s_grid[qs[l] | (((qh >> (3 * l)) & 7) << 8)];
            for (int j = 0; j < 8; j++) y[j] = dl * ((float)(int8_t)(uint8_t)(g >> (8 * j)) + delta);
            y += 8;
        }
        qs += 4;
    }
}

/* ggml's dequantize_row_iq1_m. */
void bk_iq1_m_dequant(const uint8_t *b, float *y) {
    uint16_t sc[4];
    for (int j = 0; j < 4; j++) sc[j] = (uint16_t)(b[48 + 2 * j] | (b[49 + 2 * j] << 8));
    const uint16_t s16 = (uint16_t)((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000));
    uint8_t hb[2] = {(uint8_t)s16, (uint8_t)(s16 >> 8)};
    const float d = bk_qc_half(hb);
    const uint8_t *qs = b, *qh = b + 32;
    for (int ib = 0; ib < 8; ib++) {
        const float dl1 = d * (float)(2 * ((sc[ib / 2] >> (6 * (ib % 2) + 0)) & 0x7) + 1);
        const float dl2 = d * (float)(2 * ((sc[ib / 2] >> (6 * (ib % 2) + 3)) & 0x7) + 1);
        const int idx[4] = {qs[0] | ((qh[0] << 8) & 0x700), qs[1] | ((qh[0] << 4) & 0x700),
                            qs[2] | ((qh[1] << 8) & 0x700), qs[3] | ((qh[1] << 4) & 0x700)};
        const float delta[4] = {qh[0] & 0x08 ? -0.125f : 0.125f, qh[0] & 0x80 ? -0.125f : 0.125f,
                                qh[1] & 0x08 ? -0.125f : 0.125f, qh[1] & 0x80 ? -0.125f : 0.125f};
        for (int l = 0; l < 4; l++) {
            const uint64_t g = bk_iq1s_grid[idx[l]];
            const float dl = l < 2 ? dl1 : dl2;
            for (int j = 0; j < 8; j++) y[j] = dl * ((float)(int8_t)(uint8_t)(g >> (8 * j)) + delta[l]);
            y += 8;
        }
        qs += 4;
        qh += 2;
    }
}
