/* IQ2_XXS, IQ2_XS and IQ2_S: ggml's quantize_row_iq2_xxs_impl / _xs_impl / _s_impl (llama.cpp as vendored by
 * llama-cpp-python 0.3.36) and their dequantizers. IQ2_XXS and IQ2_XS need importance weights (ggml asserts them);
 * IQ2_S has an unweighted form (llama-quantize refuses all three without an imatrix, except for token_embd/output).
 *
 * A super-block of 256 is cut into groups of 32 (IQ2_XXS) or 16 (IQ2_XS), each into points of 8 values. Signs are
 * taken off (7 sign bits per point: an odd count of negatives flips the value of least weighted error back, so the
 * eighth sign is the parity), the magnitudes are searched over candidate scales, each candidate's rounded point
 * replaced by its best grid neighbour when it is off the grid, and the scale of the best candidate refitted. Written
 * from that description, every float operation in ggml's order (ggml-base is built without FMA), not copied. */
#include "billa_kernels.h"
#include "grid.h"
#include "quant_common.h"

#pragma STDC FP_CONTRACT OFF

#define BK_G_MAX(a, b) ((a) > (b) ? (a) : (b))

/* The magnitudes and 7-bit signs of one point of 8: an odd number of negatives keeps the least weighted x^2 negative. */
static uint8_t bk_iq2_signs(const float *xb, const float *weight, float *xval) {
    int nflip = 0;
    uint8_t s = 0;
    for (int i = 0; i < 8; i++) {
        if (xb[i] >= 0) {
            xval[i] = xb[i];
        } else {
            xval[i] = -xb[i];
            nflip++;
            s |= (uint8_t)(1 << i);
        }
    }
    if (nflip % 2) {
        int imin = 0;
        float min = weight[0] * xb[0] * xb[0];
        for (int i = 1; i < 8; i++) {
            const float ax = weight[i] * xb[i] * xb[i];
            if (ax < min) {
                min = ax;
                imin = i;
            }
        }
        xval[imin] = -xval[imin];
        s ^= (uint8_t)(1 << imin);
    }
    return s & 127;
}

/* Rounds 8 magnitudes at inverse scale id to levels 0..2 and packs them (2 bits each). */
static inline int bk_iq2_round(const float *xval, float id, int8_t *L) {
    int u = 0;
    for (int i = 0; i < 8; i++) {
        const int l = bk_qc_clamp(bk_qc_nearest(0.5f * (id * xval[i] - 1)), 0, 2);
        L[i] = (int8_t)l;
        u |= l << (2 * i);
    }
    return u;
}

/* The point's grid index, moving L to the best neighbour (at `scale`) when it is off the grid; *on says which. */
static inline int bk_iq2_on_grid(const bk_lattice *lat, int u, const float *xval, const float *waux, float scale,
                                 int8_t *L, int *on) {
    int gi = lat->map[u];
    *on = gi >= 0;
    if (gi < 0) gi = bk_lattice_best_neighbour(lat, lat->neighbours - lat->map[u] - 1, xval, waux, scale, L);
    return gi;
}

static inline void bk_iq2_sums(int n, const float *weight, const float *xval, const int8_t *L, float *sumqx, float *sumq2) {
    float a = 0, b = 0;
    for (int i = 0; i < n; i++) {
        const float w = weight[i], q = (float)(2 * L[i] + 1);
        a += w * xval[i] * q;
        b += w * q * q;
    }
    *sumqx = a;
    *sumq2 = b;
}

static inline int bk_iq2_pack(const int8_t *L) {
    int u = 0;
    for (int i = 0; i < 8; i++) u |= L[i] << (2 * i);
    return u;
}

static float bk_iq2_sigma2_sum(const float *xbl) {
    float sumx2 = 0;
    for (int i = 0; i < 256; i++) sumx2 += xbl[i] * xbl[i];
    return sumx2;
}

/* One IQ2_XXS super-block: f16 d, then per group of 32 two u32: four 8-bit grid indices, then four 7-bit signs and
 * a 4-bit scale in the top bits. */
static void bk_iq2_xxs_block(const bk_lattice *lat, const float *xbl, const float *qwb, uint8_t *y) {
    float scales[8], weight[32], xval[32], waux[32];
    int8_t L[32], Laux[32];
    uint8_t block_signs[4];
    uint32_t q2[16] = {0};
    float max_scale = 0;
    const float sigma2 = bk_iq2_sigma2_sum(xbl) / 256;
    bk_qc_put_half(y, 0.f);
    for (int ib = 0; ib < 8; ib++) {
        const float *xb = xbl + 32 * ib, *qw = qwb + 32 * ib;
        for (int i = 0; i < 32; i++) weight[i] = qw[i] * __builtin_sqrtf(sigma2 + xb[i] * xb[i]);
        for (int i = 0; i < 32; i++) waux[i] = __builtin_sqrtf(weight[i]);
        for (int k = 0; k < 4; k++) block_signs[k] = bk_iq2_signs(xb + 8 * k, weight + 8 * k, xval + 8 * k);
        float max = xval[0];
        for (int i = 1; i < 32; i++) max = BK_G_MAX(max, xval[i]);
        if (max < 1e-15f) {
            scales[ib] = 0;
            memset(L, 0, 32);
            continue;
        }
        float scale = bk_iw_qp(32, 4, xval, (uint8_t *)L, weight);
        const float eff_max = scale * 3;
        if (eff_max <= 0) {
            scales[ib] = 0;
            memset(L, 0, 32);
            continue;
        }
        float best = 0;
        for (int is = -6; is <= 6; is++) {
            const float id = (5 + (float)is * 0.1f) / eff_max;
            const float this_scale = 1 / id;
            for (int k = 0; k < 4; k++) {
                int on;
                const int u = bk_iq2_round(xval + 8 * k, id, Laux + 8 * k);
                bk_iq2_on_grid(lat, u, xval + 8 * k, waux + 8 * k, this_scale, Laux + 8 * k, &on);
            }
            float sumqx, sumq2;
            bk_iq2_sums(32, weight, xval, Laux, &sumqx, &sumq2);
            if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
                scale = sumqx / sumq2;
                best = scale * sumqx;
                memcpy(L, Laux, 32);
            }
        }
        if (scale > 0) {
            const float id = 1 / scale;
            for (int k = 0; k < 4; k++) {
                int on;
                const int u = bk_iq2_round(xval + 8 * k, id, L + 8 * k);
                const int gi = bk_iq2_on_grid(lat, u, xval + 8 * k, waux + 8 * k, scale, L + 8 * k, &on);
                const int8_t *pg = lat->grid + (size_t)gi * 8;
                for (int i = 0; i < 8; i++) L[8 * k + i] = (int8_t)((pg[i] - 1) / 2);
            }
            float sumqx, sumq2;
            bk_iq2_sums(32, weight, xval, L, &sumqx, &sumq2);
            if (sumq2 > 0) scale = sumqx / sumq2;
        }
        if (scale < 0) {
            scale = -scale;
            for (int k = 0; k < 4; k++) block_signs[k] = (uint8_t)(~block_signs[k] & 127);
        }
        for (int k = 0; k < 4; k++) {
            /* ggml aborts when a point is off the grid here (it cannot be: every L above comes from the grid) */
            const int gi = lat->map[bk_iq2_pack(L + 8 * k)];
            q2[2 * ib + 0] |= (uint32_t)(gi < 0 ? 0 : gi) << (8 * k);
            q2[2 * ib + 1] |= (uint32_t)block_signs[k] << (7 * k);
        }
        scales[ib] = scale;
        max_scale = BK_G_MAX(max_scale, scale);
    }
    if (!max_scale) {
        memset(y + 2, 0, 64);
        return;
    }
    const float d = max_scale / 31;
    bk_qc_put_half(y, d);
    const float id = 1 / d;
    for (int ib = 0; ib < 8; ib++) {
        const int l = bk_qc_clamp(bk_qc_nearest(0.5f * (id * scales[ib] - 1)), 0, 15);
        q2[2 * ib + 1] |= (uint32_t)l << 28;
    }
    for (int j = 0; j < 16; j++)
        for (int b = 0; b < 4; b++) y[2 + 4 * j + b] = (uint8_t)(q2[j] >> (8 * b));
}

/* One IQ2_XS or IQ2_S super-block (groups of 16, two points each). IQ2_XS: f16 d, 32 u16 (9-bit grid index,
 * 7-bit signs with the parity rule), then 8 bytes of two 4-bit scales. IQ2_S (`s`): f16 d, qs[32] low 8 bits of the
 * 10-bit indices, qs[32..64) the 8-bit signs of each point, qh[8] the high bits (2 per point), scales[8]; its
 * sigma2 is twice the mean square, its weights without importance 0.25 sigma2 + x^2, its d scaled by 0.9875. */
static void bk_iq2_xs_block(const bk_lattice *lat, int s, const float *xbl, const float *qwb, uint8_t *y) {
    float scales[16], weight[16], xval[16], waux[16];
    int8_t L[16], Laux[16];
    int is_on_grid[2], is_on_grid_aux[2];
    uint8_t block_signs[2];
    uint16_t q2[32] = {0};
    float max_scale = 0;
    const int bytes = s ? 82 : 74;
    memset(y, 0, (size_t)bytes);
    uint8_t *sc = y + (s ? 74 : 66);
    const float sigma2 = s ? 2 * bk_iq2_sigma2_sum(xbl) / 256 : bk_iq2_sigma2_sum(xbl) / 256;
    for (int ib = 0; ib < 16; ib++) {
        const float *xb = xbl + 16 * ib;
        if (qwb) {
            const float *qw = qwb + 16 * ib;
            for (int i = 0; i < 16; i++) weight[i] = qw[i] * __builtin_sqrtf(sigma2 + xb[i] * xb[i]);
        } else {
            for (int i = 0; i < 16; i++) weight[i] = 0.25f * sigma2 + xb[i] * xb[i];
        }
        for (int i = 0; i < 16; i++) waux[i] = __builtin_sqrtf(weight[i]);
        for (int k = 0; k < 2; k++) {
            if (s) {
                uint8_t sg = 0;
                for (int i = 0; i < 8; i++) {
                    if (xb[8 * k + i] >= 0) {
                        xval[8 * k + i] = xb[8 * k + i];
                    } else {
                        xval[8 * k + i] = -xb[8 * k + i];
                        sg |= (uint8_t)(1 << i);
                    }
                }
                block_signs[k] = sg;
            } else {
                block_signs[k] = bk_iq2_signs(xb + 8 * k, weight + 8 * k, xval + 8 * k);
            }
        }
        float max = xval[0];
        for (int i = 1; i < 16; i++) max = BK_G_MAX(max, xval[i]);
        memset(L, 0, 16);
        if (max < (s ? 1e-8f : 1e-15f)) {
            scales[ib] = 0;
            continue;
        }
        float best = 0;
        float scale = max / 5;
        is_on_grid[0] = is_on_grid[1] = 1;
        for (int is = -9; is <= 9; is++) {
            const float id = (5 + (float)is * 0.1f) / max;
            const float this_scale = 1 / id;
            for (int k = 0; k < 2; k++) {
                const int u = bk_iq2_round(xval + 8 * k, id, Laux + 8 * k);
                bk_iq2_on_grid(lat, u, xval + 8 * k, waux + 8 * k, this_scale, Laux + 8 * k, &is_on_grid_aux[k]);
            }
            float sumqx, sumq2;
            bk_iq2_sums(16, weight, xval, Laux, &sumqx, &sumq2);
            if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
                scale = sumqx / sumq2;
                best = scale * sumqx;
                memcpy(L, Laux, 16);
                is_on_grid[0] = is_on_grid_aux[0];
                is_on_grid[1] = is_on_grid_aux[1];
            }
        }
        if ((!is_on_grid[0] || !is_on_grid[1]) && scale > 0) {
            const float id = 1 / scale;
            for (int k = 0; k < 2; k++) {
                if (is_on_grid[k]) continue;
                int on;
                const int u = bk_iq2_round(xval + 8 * k, id, L + 8 * k);
                bk_iq2_on_grid(lat, u, xval + 8 * k, waux + 8 * k, scale, L + 8 * k, &on);
            }
            float sumqx, sumq2;
            bk_iq2_sums(16, weight, xval, L, &sumqx, &sumq2);
            if (sumq2 > 0) scale = sumqx / sumq2;
        }
        if (scale < 0) {
            scale = -scale;
            for (int k = 0; k < 2; k++) block_signs[k] = (uint8_t)(s ? ~block_signs[k] : ~block_signs[k] & 127);
        }
        for (int k = 0; k < 2; k++) {
            const int gi0 = lat->map[bk_iq2_pack(L + 8 * k)];
            const int gi = gi0 < 0 ? 0 : gi0;
            if (s) {
                const int i8 = 2 * ib + k;
                y[2 + i8] = (uint8_t)(gi & 255);
                y[66 + i8 / 4] |= (uint8_t)((gi >> 8) << (2 * (i8 % 4)));
                y[2 + 32 + i8] = block_signs[k];
            } else {
                q2[2 * ib + k] = (uint16_t)(gi | (block_signs[k] << 9));
            }
        }
        scales[ib] = scale;
        max_scale = BK_G_MAX(max_scale, scale);
    }
    if (!max_scale) {
        memset(y, 0, (size_t)bytes);
        return;
    }
    const float d = max_scale / 31;
    bk_qc_put_half(y, s ? d * 0.9875f : d);
    const float id = 1 / d;
    for (int ib = 0; ib < 16; ib++) {
        const int l = bk_qc_clamp(bk_qc_nearest(0.5f * (id * scales[ib] - 1)), 0, 15);
        if (ib % 2 == 0) sc[ib / 2] = (uint8_t)l;
        else sc[ib / 2] |= (uint8_t)(l << 4);
    }
    if (!s) {
        for (int j = 0; j < 32; j++) {
            y[2 + 2 * j] = (uint8_t)q2[j];
            y[3 + 2 * j] = (uint8_t)(q2[j] >> 8);
        }
    }
}

int bk_iq2_quantize_row(int type, const float *x, void *vy, int64_t n, const float *qw) {
    uint8_t *y = (uint8_t *)vy;
    if (type == BK_IQ2_XXS && qw) {
        const bk_lattice *lat = bk_lattice_get(BK_LAT_IQ2XXS);
        for (int64_t b = 0; b < n / 256; b++) bk_iq2_xxs_block(lat, x + 256 * b, qw + 256 * b, y + 66 * b);
        return 1;
    }
    if (type == BK_IQ2_XS && qw) {
        const bk_lattice *lat = bk_lattice_get(BK_LAT_IQ2XS);
        for (int64_t b = 0; b < n / 256; b++) bk_iq2_xs_block(lat, 0, x + 256 * b, qw + 256 * b, y + 74 * b);
        return 1;
    }
    if (type == BK_IQ2_S) {
        const bk_lattice *lat = bk_lattice_get(BK_LAT_IQ2S);
        for (int64_t b = 0; b < n / 256; b++) bk_iq2_xs_block(lat, 1, x + 256 * b, qw ? qw + 256 * b : NULL, y + 82 * b);
        return 1;
    }
    return 0;
}

/* Dequantization as ggml's dequantize_row_iq2_xxs / _xs: value = d * (0.5 + s) * 0.25 * grid byte * sign. */
void bk_iq2_xxs_dequant(const uint8_t *b, float *y) {
    const float d = bk_qc_half(b);
    for (int ib = 0; ib < 8; ib++) {
        const uint8_t *q = b + 2 + 8 * ib;
        const uint32_t aux1 = (uint32_t)q[4] | ((uint32_t)q[5] << 8) | ((uint32_t)q[6] << 16) | ((uint32_t)q[7] << 24);
        const float db = d * (0.5f + (float)(aux1 >> 28)) * 0.25f;
        for (int l = 0; l < 4; l++) {
            const uint64_t g = bk_iq2xxs_grid[q[l]];
            const uint8_t signs = bk_ksigns_iq2xs[(aux1 >> (7 * l)) & 127];
            for (int j = 0; j < 8; j++) y[j] = db * (float)(uint8_t)(g >> (8 * j)) * (signs & bk_kmask_iq2xs[j] ? -1.f : 1.f);
            y += 8;
        }
    }
}

void bk_iq2_xs_dequant(const uint8_t *b, float *y) {
    const float d = bk_qc_half(b);
    const uint8_t *sc = b + 66;
    for (int ib = 0; ib < 8; ib++) {
        const float db[2] = {d * (0.5f + (float)(sc[ib] & 0xf)) * 0.25f, d * (0.5f + (float)(sc[ib] >> 4)) * 0.25f};
        for (int l = 0; l < 4; l++) {
            const uint16_t q = (uint16_t)(b[2 + 8 * ib + 2 * l] | (b[3 + 8 * ib + 2 * l] << 8));
            const uint64_t g = bk_iq2xs_grid[q & 511];
            const uint8_t signs = bk_ksigns_iq2xs[q >> 9];
            for (int j = 0; j < 8; j++) y[j] = db[l / 2] * (float)(uint8_t)(g >> (8 * j)) * (signs & bk_kmask_iq2xs[j] ? -1.f : 1.f);
            y += 8;
        }
    }
}

/* ggml's dequantize_row_iq2_s: 10-bit indices (qh's two bits per point), 8-bit signs. */
void bk_iq2_s_dequant(const uint8_t *b, float *y) {
    const float d = bk_qc_half(b);
    const uint8_t *qs = b + 2, *signs = b + 34, *qh = b + 66, *sc = b + 74;
    for (int ib = 0; ib < 8; ib++) {
        const float db[2] = {d * (0.5f + (float)(sc[ib] & 0xf)) * 0.25f, d * (0.5f + (float)(sc[ib] >> 4)) * 0.25f};
        for (int l = 0; l < 4; l++) {
            const float dl = db[l / 2];
            const uint64_t g = bk_iq2s_grid[qs[l] | ((qh[ib] << (8 - 2 * l)) & 0x300)];
            for (int j = 0; j < 8; j++) y[j] = dl * (float)(uint8_t)(g >> (8 * j)) * (signs[l] & bk_kmask_iq2xs[j] ? -1.f : 1.f);
            y += 8;
        }
        qs += 4;
        signs += 4;
    }
}
