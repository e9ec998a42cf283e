/* Helpers every ggml-exact quantizer in CKernels shares (quantize.c, lowbit.c, importance.c): ggml's nearest_int,
 * its MIN/MAX clamps, the f16 conversions and the 2-bit packing. One copy, so the three files cannot differ. */
#ifndef BK_QUANT_COMMON_H
#define BK_QUANT_COMMON_H
#include <stdint.h>
#include <string.h>

/* ggml's nearest_int: 1.5 * 2^23 added so the FPU's round-to-nearest-even rounds, low mantissa bits read back.
 * Defined for |f| <= 4194303 (ggml asserts it in debug builds only; larger values give the same bits here). */
static inline int bk_qc_nearest(float f) {
    float v = f + 12582912.f;
    int32_t i;
    memcpy(&i, &v, 4);
    return (i & 0x007fffff) - 0x00400000;
}

static inline int bk_qc_clamp(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* f32 -> f16 bits, round to nearest even (ggml's GGML_FP32_TO_FP16 for finite values); NaN as sign | 0x7E00. */
static inline uint16_t bk_qc_f2h(float f) {
    uint32_t w;
    memcpy(&w, &f, 4);
    if ((w & 0x7fffffffu) > 0x7f800000u) return (uint16_t)(((w >> 16) & 0x8000u) | 0x7E00u);
    _Float16 h = (_Float16)f;
    uint16_t out;
    memcpy(&out, &h, 2);
    return out;
}

/* Little-endian f16 store and load at a byte pointer (block fields are not aligned). */
static inline void bk_qc_put_half(uint8_t *p, float f) {
    const uint16_t h = bk_qc_f2h(f);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

static inline float bk_qc_half(const uint8_t *p) {
    uint16_t u = (uint16_t)(p[0] | (p[1] << 8));
    _Float16 h;
    memcpy(&h, &u, 2);
    return (float)h;
}

/* Packs 256 two-bit levels as Q2_K and Q3_K store them: byte l of each 32-byte half of qs holds elements l, l+32,
 * l+64, l+96 of that half's 128. */
static inline void bk_qc_pack2(const uint8_t *L, uint8_t *qs) {
    for (int j = 0; j < 256; j += 128)
        for (int l = 0; l < 32; l++)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

#endif
