/* IQ3_XXS and IQ3_S: ggml's quantize_row_iq3_xxs_impl (grid of 256) and quantize_row_iq3_s_impl (grid of 512,
 * groups of 32) of llama.cpp as vendored by llama-cpp-python 0.3.36, with importance weights or without (then the
 * weights are x^2, as ggml's reference quantizers use), and their dequantizers.
 *
 * Points are 4 values on the 3-bit D4-like lattice; a group of 32 takes its signs off (IQ3_XXS: 7 bits per 8 values
 * with the parity trick of IQ2_XXS; IQ3_S: all 8 bits), searches 31 (IQ3_XXS) or 19 (IQ3_S) candidate scales, moves
 * off-grid points to their best neighbour, and refits. Written from that description, every float operation in
 * ggml's order (no FMA), not copied. */
#include "billa_kernels.h"
#include "grid.h"
#include "quant_common.h"

#pragma STDC FP_CONTRACT OFF

#define BK_G_MAX(a, b) ((a) > (b) ? (a) : (b))

static inline int bk_iq3_round(const float *xval, float id, int8_t *L) {
    int u = 0;
    for (int i = 0; i < 4; i++) {
        const int l = bk_qc_clamp(bk_qc_nearest(0.5f * (id * xval[i] - 1)), 0, 7);
        L[i] = (int8_t)l;
        u |= l << (3 * i);
    }
    return u;
}

static inline int bk_iq3_pack(const int8_t *L) {
    int u = 0;
    for (int i = 0; i < 4; i++) u |= L[i] << (3 * i);
    return u;
}

static inline void bk_iq3_sums(const float *weight, const float *xval, const int8_t *L, float *sumqx, float *sumq2) {
    float a = 0, b = 0;
    for (int i = 0; i < 32; i++) {
        const float w = weight[i], q = (float)(2 * L[i] + 1);
        a += w * xval[i] * q;
        b += w * q * q;
    }
    *sumqx = a;
    *sumq2 = b;
}

/* The search of one group of 32 magnitudes whose largest is `max` (not negligible): returns the scale, L the grid
 * levels. `xxs` selects IQ3_XXS's rules (31 candidates, a refit of the off-grid points only) over IQ3_S's (19
 * candidates, a refit of every point). */
static float bk_iq3_search(const bk_lattice *lat, int xxs, float max, const float *xval, const float *weight,
                           const float *waux, int8_t *L) {
    int8_t Laux[32];
    int is_on_grid[8], is_on_grid_aux[8];
    memset(L, 0, 32);
    float best = 0;
    float scale = max / 15;
    for (int k = 0; k < 8; k++) is_on_grid[k] = xxs;
    const int nis = xxs ? 15 : 9;
    for (int is = -nis; is <= nis; is++) {
        const float id = (15 + (float)is * 0.2f) / max;
        const float this_scale = 1 / id;
        for (int k = 0; k < 8; k++) {
            const int u = bk_iq3_round(xval + 4 * k, id, Laux + 4 * k);
            is_on_grid_aux[k] = lat->map[u] >= 0;
            if (!is_on_grid_aux[k])
                bk_lattice_best_neighbour(lat, lat->neighbours - lat->map[u] - 1, xval + 4 * k, waux + 4 * k, this_scale,
                                          Laux + 4 * k);
        }
        float sumqx, sumq2;
        bk_iq3_sums(weight, xval, Laux, &sumqx, &sumq2);
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
            scale = sumqx / sumq2;
            best = scale * sumqx;
            memcpy(L, Laux, 32);
            for (int k = 0; k < 8; k++) is_on_grid[k] = is_on_grid_aux[k];
        }
    }
    int n_not_ongrid = 0;
    for (int k = 0; k < 8; k++) n_not_ongrid += !is_on_grid[k];
    if (n_not_ongrid > 0 && scale > 0) {
        const float id = 1 / scale;
        for (int k = 0; k < 8; k++) {
            if (xxs && is_on_grid[k]) continue;
            int8_t Lr[4];
            const int u = bk_iq3_round(xval + 4 * k, id, Lr);
            int gi = lat->map[u];
            if (gi < 0)
                gi = bk_lattice_best_neighbour(lat, lat->neighbours - lat->map[u] - 1, xval + 4 * k, waux + 4 * k, scale,
                                               L + 4 * k);
            const int8_t *pg = lat->grid + (size_t)gi * 4;
            for (int i = 0; i < 4; i++) L[4 * k + i] = (int8_t)((pg[i] - 1) / 2);
        }
        float sumqx, sumq2;
        bk_iq3_sums(weight, xval, L, &sumqx, &sumq2);
        if (sumq2 > 0) scale = sumqx / sumq2;
    }
    return scale;
}

/* weight = qw * sqrt(sigma2 + x^2) (sigma2 = 2 * mean square of the super-block), or x^2 without importance. */
static void bk_iq3_weights(const float *xb, const float *qw, float sigma2, float *weight, float *waux) {
    if (qw) {
        for (int i = 0; i < 32; i++) weight[i] = qw[i] * __builtin_sqrtf(sigma2 + xb[i] * xb[i]);
    } else {
        for (int i = 0; i < 32; i++) weight[i] = xb[i] * xb[i];
    }
    for (int i = 0; i < 32; i++) waux[i] = __builtin_sqrtf(weight[i]);
}

static float bk_iq3_sigma2(const float *xbl) {
    float sumx2 = 0;
    for (int i = 0; i < 256; i++) sumx2 += xbl[i] * xbl[i];
    return 2 * sumx2 / 256;
}

/* IQ3_XXS: f16 d, 64 grid indices (8 per group), then per group a u32 of four 7-bit signs and a 4-bit scale. */
static void bk_iq3_xxs_block(const bk_lattice *lat, const float *xbl, const float *qwb, uint8_t *y) {
    float scales[8], weight[32], xval[32], waux[32];
    int8_t L[32];
    uint8_t q3[64] = {0};
    uint32_t ss[8] = {0};
    uint8_t block_signs[4];
    float max_scale = 0;
    bk_qc_put_half(y, 0.f);
    const float sigma2 = bk_iq3_sigma2(xbl);
    for (int ib = 0; ib < 8; ib++) {
        const float *xb = xbl + 32 * ib;
        bk_iq3_weights(xb, qwb ? qwb + 32 * ib : NULL, sigma2, weight, waux);
        for (int k = 0; k < 4; k++) {
            /* IQ2_XXS's sign rule: an odd count of negatives keeps the least weighted x^2 negative */
            int nflip = 0;
            uint8_t s = 0;
            for (int i = 0; i < 8; i++) {
                if (xb[8 * k + i] >= 0) {
                    xval[8 * k + i] = xb[8 * k + i];
                } else {
                    xval[8 * k + i] = -xb[8 * k + i];
                    nflip++;
                    s |= (uint8_t)(1 << i);
                }
            }
            if (nflip % 2) {
                int imin = 0;
                float min = weight[8 * k] * xb[8 * k] * xb[8 * k];
                for (int i = 1; i < 8; i++) {
                    const float ax = weight[8 * k + i] * xb[8 * k + i] * xb[8 * k + i];
                    if (ax < min) {
                        min = ax;
                        imin = i;
                    }
                }
                xval[8 * k + imin] = -xval[8 * k + imin];
                s ^= (uint8_t)(1 << imin);
            }
            block_signs[k] = s & 127;
        }
        float max = xval[0];
        for (int i = 1; i < 32; i++) max = BK_G_MAX(max, xval[i]);
        if (max < 1e-8f) {
            scales[ib] = 0;
            continue;
        }
        float scale = bk_iq3_search(lat, 1, max, xval, weight, waux, L);
        if (scale < 0) {
            scale = -scale;
            for (int k = 0; k < 4; k++) block_signs[k] = (uint8_t)(~block_signs[k] & 127);
        }
        for (int k = 0; k < 8; k++) {
            const int gi = lat->map[bk_iq3_pack(L + 4 * k)];
            q3[8 * ib + k] = (uint8_t)(gi < 0 ? 0 : gi);
        }
        ss[ib] = (uint32_t)block_signs[0] | ((uint32_t)block_signs[1] << 7) | ((uint32_t)block_signs[2] << 14) |
                 ((uint32_t)block_signs[3] << 21);
        scales[ib] = scale;
        max_scale = BK_G_MAX(max_scale, scale);
    }
    if (!max_scale) {
        memset(y + 2, 0, 96);
        return;
    }
    const float d = max_scale / 31;
    bk_qc_put_half(y, d * 1.0125f);
    const float id = 1 / d;
    for (int ib = 0; ib < 8; ib++) {
        const int l = bk_qc_clamp(bk_qc_nearest(0.5f * (id * scales[ib] - 1)), 0, 15);
        ss[ib] |= (uint32_t)l << 28;
    }
    memcpy(y + 2, q3, 64);
    for (int j = 0; j < 8; j++)
        for (int b = 0; b < 4; b++) y[66 + 4 * j + b] = (uint8_t)(ss[j] >> (8 * b));
}

/* IQ3_S: f16 d, qs[64] low 8 bits of the 9-bit grid indices, qh[8] their high bits, signs[32] (8 per 8 values),
 * scales[4] (two 4-bit scales each, groups of 32). */
static void bk_iq3_s_block(const bk_lattice *lat, const float *xbl, const float *qwb, uint8_t *y) {
    float scales[8], weight[32], xval[32], waux[32];
    int8_t L[32];
    uint8_t block_signs[4];
    float max_scale = 0;
    memset(y, 0, 110);
    uint8_t *qs = y + 2, *qh = y + 66, *signs = y + 74, *sc = y + 106;
    const float sigma2 = bk_iq3_sigma2(xbl);
    for (int ib = 0; ib < 8; ib++) {
        const float *xb = xbl + 32 * ib;
        bk_iq3_weights(xb, qwb ? qwb + 32 * ib : NULL, sigma2, weight, waux);
        for (int k = 0; k < 4; k++) {
            uint8_t s = 0;
            for (int i = 0; i < 8; i++) {
                if (xb[8 * k + i] >= 0) {
                    xval[8 * k + i] = xb[8 * k + i];
                } else {
                    xval[8 * k + i] = -xb[8 * k + i];
                    s |= (uint8_t)(1 << i);
                }
            }
            block_signs[k] = s;
        }
        float max = xval[0];
        for (int i = 1; i < 32; i++) max = BK_G_MAX(max, xval[i]);
        if (!max) {
            /* ggml leaves this group's qs/signs as zero and does not advance them: the next group writes here */
            scales[ib] = 0;
            continue;
        }
        float scale = bk_iq3_search(lat, 0, max, xval, weight, waux, L);
        if (scale < 0) {
            scale = -scale;
            for (int k = 0; k < 4; k++) block_signs[k] = (uint8_t)~block_signs[k];
        }
        for (int k = 0; k < 8; k++) {
            const int gi = lat->map[bk_iq3_pack(L + 4 * k)];
            const int g = gi < 0 ? 0 : gi;
            qs[k] = (uint8_t)(g & 255);
            qh[(ib * 8 + k) / 8] |= (uint8_t)((g >> 8) << ((ib * 8 + k) % 8));
        }
        qs += 8;
        for (int k = 0; k < 4; k++) signs[k] = block_signs[k];
        signs += 4;
        scales[ib] = scale;
        max_scale = BK_G_MAX(max_scale, scale);
    }
    if (!max_scale) return;
    const float d = max_scale / 31;
    bk_qc_put_half(y, d * 1.033f);
    const float id = 1 / d;
    for (int ib = 0; ib < 8; ib += 2) {
        const int l1 = bk_qc_clamp(bk_qc_nearest(0.5f * (id * scales[ib] - 1)), 0, 15);
        const int l2 = bk_qc_clamp(bk_qc_nearest(0.5f * (id * scales[ib + 1] - 1)), 0, 15);
        sc[ib / 2] = (uint8_t)(l1 | (l2 << 4));
    }
}

int bk_iq3_quantize_row(int type, const float *x, void *vy, int64_t n, const float *qw) {
    uint8_t *y = (uint8_t *)vy;
    if (type == BK_IQ3_XXS) {
        const bk_lattice *lat = bk_lattice_get(BK_LAT_IQ3XXS);
        for (int64_t b = 0; b < n / 256; b++) bk_iq3_xxs_block(lat, x + 256 * b, qw ? qw + 256 * b : NULL, y + 98 * b);
        return 1;
    }
    if (type == BK_IQ3_S) {
        const bk_lattice *lat = bk_lattice_get(BK_LAT_IQ3S);
        for (int64_t b = 0; b < n / 256; b++) bk_iq3_s_block(lat, x + 256 * b, qw ? qw + 256 * b : NULL, y + 110 * b);
        return 1;
    }
    return 0;
}

/* ggml's dequantize_row_iq3_xxs: d * (0.5 + s) * 0.5 * grid byte * sign. */
void bk_iq3_xxs_dequant(const uint8_t *b, float *y) {
    const float d = bk_qc_half(b);
    const uint8_t *qs = b + 2, *ss = b + 66;
    for (int ib = 0; ib < 8; ib++) {
        const uint32_t aux = (uint32_t)ss[4 * ib] | ((uint32_t)ss[4 * ib + 1] << 8) | ((uint32_t)ss[4 * ib + 2] << 16) |
                             ((uint32_t)ss[4 * ib + 3] << 24);
        const float db = d * (0.5f + (float)(aux >> 28)) * 0.5f;
        for (int l = 0; l < 4; l++) {
            const uint8_t signs = bk_ksigns_iq2xs[(aux >> (7 * l)) & 127];
            const uint32_t g1 = bk_iq3xxs_grid[qs[2 * l]], g2 = bk_iq3xxs_grid[qs[2 * l + 1]];
            for (int j = 0; j < 4; j++) {
                y[j] = db * (float)(uint8_t)(g1 >> (8 * j)) * (signs & bk_kmask_iq2xs[j] ? -1.f : 1.f);
                y[j + 4] = db * (float)(uint8_t)(g2 >> (8 * j)) * (signs & bk_kmask_iq2xs[j + 4] ? -1.f : 1.f);
            }
            y += 8;
        }
        qs += 8;
    }
}

/* ggml's dequantize_row_iq3_s: d * (1 + 2 s) * grid byte * sign. */
void bk_iq3_s_dequant(const uint8_t *b, float *y) {
    const float d = bk_qc_half(b);
    const uint8_t *qs = b + 2, *qh = b + 66, *signs = b + 74, *sc = b + 106;
    for (int ib = 0; ib < 8; ib += 2) {
        for (int h = 0; h < 2; h++) {
            const float db = d * (float)(1 + 2 * (h == 0 ? (sc[ib / 2] & 0xf) : (sc[ib / 2] >> 4)));
            for (int l = 0; l < 4; l++) {
                const uint32_t g1 = bk_iq3s_grid[qs[2 * l] | ((qh[h] << (8 - 2 * l)) & 256)];
                const uint32_t g2 = bk_iq3s_grid[qs[2 * l + 1] | ((qh[h] << (7 - 2 * l)) & 256)];
                for (int j = 0; j < 4; j++) {
                    y[j] = db * (float)(uint8_t)(g1 >> (8 * j)) * (signs[l] & bk_kmask_iq2xs[j] ? -1.f : 1.f);
                    y[j + 4] = db * (float)(uint8_t)(g2 >> (8 * j)) * (signs[l] & bk_kmask_iq2xs[j + 4] ? -1.f : 1.f);
                }
                y += 8;
            }
            qs += 8;
            signs += 4;
        }
        qh += 2;
    }
}
