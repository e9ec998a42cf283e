/* TQ1_0 and TQ2_0: ggml's ternary types (quantize_row_tq1_0_ref / quantize_row_tq2_0_ref of llama.cpp as vendored by
 * llama-cpp-python 0.3.36; quantize_tq*_0 ignore importance weights), and their dequantizers. Each value of a 256
 * block becomes round(x / amax) in {-1, 0, 1} (lroundf: halves away from zero), stored as trits: TQ1_0 packs five per
 * byte as a base-3 fraction (byte = ceil(t * 256 / 243)), qs[48] then qh[4] (four per byte), f16 d = amax last;
 * TQ2_0 two bits per value, qs[64] then f16 d. Written from that description, not copied. */
#include "billa_kernels.h"
#include "grid.h"
#include "quant_common.h"
#include <math.h>

#pragma STDC FP_CONTRACT OFF

static float bk_tq_amax(const float *x) {
    float amax = 0.0f;
    for (int j = 0; j < 256; j++) {
        const float a = fabsf(x[j]);
        amax = amax > a ? amax : a;
    }
    return amax;
}

static inline int bk_tq_trit(float v, float id) { return (int)lroundf(v * id) + 1; }

static void bk_tq1_0_block(const float *x, uint8_t *y) {
    const float d = bk_tq_amax(x);
    const float id = d ? 1.0f / d : 0.0f;
    bk_qc_put_half(y + 52, d);
    /* 5 values per byte: 32 bytes of values m + 32 n, then 16 bytes of values m + 16 n */
    for (int m = 0; m < 32; m++) {
        uint8_t q = 0;
        for (int n = 0; n < 5; n++) q = (uint8_t)(q * 3 + bk_tq_trit(x[m + n * 32], id));
        y[m] = (uint8_t)(((uint16_t)q * 256 + 242) / 243);
    }
    x += 160;
    for (int m = 0; m < 16; m++) {
        uint8_t q = 0;
        for (int n = 0; n < 5; n++) q = (uint8_t)(q * 3 + bk_tq_trit(x[m + n * 16], id));
        y[32 + m] = (uint8_t)(((uint16_t)q * 256 + 242) / 243);
    }
    x += 80;
    /* 4 values per byte, the first in the most significant trit */
    for (int j = 0; j < 4; j++) {
        uint8_t q = 0;
        for (int m = 0; m < 4; m++) q = (uint8_t)(q * 3 + bk_tq_trit(x[j + m * 4], id));
        q = (uint8_t)(q * 3);
        y[48 + j] = (uint8_t)(((uint16_t)q * 256 + 242) / 243);
    }
}

static void bk_tq2_0_block(const float *x, uint8_t *y) {
    const float d = bk_tq_amax(x);
    const float id = d ? 1.0f / d : 0.0f;
    bk_qc_put_half(y + 64, d);
    for (int j = 0; j < 64; j += 32) {
        for (int m = 0; m < 32; m++) {
            uint8_t q = 0;
            for (int n = 0; n < 4; n++) q = (uint8_t)(q + ((bk_tq_trit(x[m + n * 32], id) & 3) << (2 * n)));
            y[j + m] = q;
        }
        x += 128;
    }
}

int bk_ternary_quantize_row(int type, const float *x, void *vy, int64_t n) {
    uint8_t *y = (uint8_t *)vy;
    if (type == BK_TQ1_0) {
        for (int64_t b = 0; b < n / 256; b++) bk_tq1_0_block(x + 256 * b, y + 54 * b);
        return 1;
    }
    if (type == BK_TQ2_0) {
        for (int64_t b = 0; b < n / 256; b++) bk_tq2_0_block(x + 256 * b, y + 66 * b);
        return 1;
    }
    return 0;
}

/* A stored base-3 fraction's n-th trit: (q * 3^n mod 256) * 3 >> 8, as ggml reads it. */
static inline float bk_tq1_value(uint8_t q, int n, float d) {
    static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
    const uint8_t s = (uint8_t)(q * pow3[n]);
    const int16_t xi = (int16_t)(((uint16_t)s * 3) >> 8);
    return (float)(xi - 1) * d;
}

void bk_tq1_0_dequant(const uint8_t *b, float *y) {
    const float d = bk_qc_half(b + 52);
    for (int n = 0; n < 5; n++)
        for (int m = 0; m < 32; m++) *y++ = bk_tq1_value(b[m], n, d);
    for (int n = 0; n < 5; n++)
        for (int m = 0; m < 16; m++) *y++ = bk_tq1_value(b[32 + m], n, d);
    for (int n = 0; n < 4; n++)
        for (int j = 0; j < 4; j++) *y++ = bk_tq1_value(b[48 + j], n, d);
}

void bk_tq2_0_dequant(const uint8_t *b, float *y) {
    const float d = bk_qc_half(b + 64);
    for (int j = 0; j < 64; j += 32)
        for (int l = 0; l < 4; l++)
            for (int m = 0; m < 32; m++) *y++ = (float)(((b[j + m] >> (2 * l)) & 3) - 1) * d;
}
