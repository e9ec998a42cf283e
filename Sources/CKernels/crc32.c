/* CRC-32 (ISO-HDLC: reflected, polynomial 0x04C11DB7, the ZIP and torch.save checksum).
 *
 * Writing a .bin/.pth means checksumming every byte written, so the CRC must run at memory speed or it becomes the
 * cost of the conversion. On x86-64 with PCLMULQDQ the bulk is folded 64 bytes at a time with carry-less
 * multiplications (Intel, "Fast CRC Computation for Generic Polynomials Using PCLMULQDQ Instruction", 2009); the
 * last 16-byte residue and the tail go through slicing-by-8 tables, which also serve as the portable body. */
#include "billa_kernels.h"
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BK_CRC_X86 1
#define BK_CLMUL __attribute__((target("pclmul,sse4.1")))
#else
#define BK_CRC_X86 0
#endif

static uint32_t bk_crc_table[8][256];

static void bk_crc_init_tables(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
        bk_crc_table[0][i] = c;
    }
    for (int i = 0; i < 256; i++)
        for (int k = 1; k < 8; k++)
            bk_crc_table[k][i] = (bk_crc_table[k - 1][i] >> 8) ^ bk_crc_table[0][bk_crc_table[k - 1][i] & 0xFF];
}

static int bk_crc_ready = 0;

static inline void bk_crc_tables(void) {
    /* Idempotent: two threads racing here write the same values. */
    if (!__atomic_load_n(&bk_crc_ready, __ATOMIC_ACQUIRE)) {
        bk_crc_init_tables();
        __atomic_store_n(&bk_crc_ready, 1, __ATOMIC_RELEASE);
    }
}

/* `state` is the running register (before the final inversion). */
static uint32_t bk_crc_slice8(uint32_t state, const uint8_t *p, size_t n) {
    uint32_t c = state;
    while (n >= 8) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + 4, 4);
        lo ^= c;
        c = bk_crc_table[7][lo & 0xFF] ^ bk_crc_table[6][(lo >> 8) & 0xFF] ^ bk_crc_table[5][(lo >> 16) & 0xFF] ^
            bk_crc_table[4][lo >> 24] ^ bk_crc_table[3][hi & 0xFF] ^ bk_crc_table[2][(hi >> 8) & 0xFF] ^
            bk_crc_table[1][(hi >> 16) & 0xFF] ^ bk_crc_table[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--) c = (c >> 8) ^ bk_crc_table[0][(c ^ *p++) & 0xFF];
    return c;
}

#if BK_CRC_X86
/* Folding constants for the reflected polynomial: x^(4*128+32) and x^(4*128-32) mod P (fold by 64 bytes), x^(128+32)
 * and x^(128-32) mod P (fold by 16 bytes), each bit-reflected and shifted left by one as PCLMULQDQ's reflected
 * product needs. They are the constants of the Intel paper and of zlib's and Linux's PCLMUL CRC-32. */
BK_CLMUL static uint32_t bk_crc_clmul(uint32_t state, const uint8_t *p, size_t n) {
    const __m128i k1k2 = _mm_set_epi64x(0x01c6e41596LL, 0x0154442bd4LL);
    const __m128i k3k4 = _mm_set_epi64x(0x00ccaa009eLL, 0x01751997d0LL);
    __m128i x0 = _mm_loadu_si128((const __m128i *)(p + 0));
    __m128i x1 = _mm_loadu_si128((const __m128i *)(p + 16));
    __m128i x2 = _mm_loadu_si128((const __m128i *)(p + 32));
    __m128i x3 = _mm_loadu_si128((const __m128i *)(p + 48));
    x0 = _mm_xor_si128(x0, _mm_cvtsi32_si128((int)state));
    p += 64;
    n -= 64;
#define BK_FOLD(x, k, next)                                                                                        \
    _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11)), next)
    while (n >= 64) {
        x0 = BK_FOLD(x0, k1k2, _mm_loadu_si128((const __m128i *)(p + 0)));
        x1 = BK_FOLD(x1, k1k2, _mm_loadu_si128((const __m128i *)(p + 16)));
        x2 = BK_FOLD(x2, k1k2, _mm_loadu_si128((const __m128i *)(p + 32)));
        x3 = BK_FOLD(x3, k1k2, _mm_loadu_si128((const __m128i *)(p + 48)));
        p += 64;
        n -= 64;
    }
    x1 = BK_FOLD(x0, k3k4, x1);
    x2 = BK_FOLD(x1, k3k4, x2);
    x0 = BK_FOLD(x2, k3k4, x3);
    while (n >= 16) {
        x0 = BK_FOLD(x0, k3k4, _mm_loadu_si128((const __m128i *)p));
        p += 16;
        n -= 16;
    }
#undef BK_FOLD
    /* x0 is congruent to everything folded so far, aligned to end where the tail begins: its CRC from a zero
     * register is the register the whole prefix would have left. */
    uint8_t residue[16];
    _mm_storeu_si128((__m128i *)residue, x0);
    return bk_crc_slice8(bk_crc_slice8(0, residue, 16), p, n);
}

static int bk_crc_has_clmul(void) {
    static int cached = -1;
    int v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (v < 0) {
        __builtin_cpu_init();
        v = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
        __atomic_store_n(&cached, v, __ATOMIC_RELAXED);
    }
    return v;
}
#endif

/* Under 128 bytes the PCLMUL body hands the bytes to slicing-by-8: it folds only whole 64-byte strips. */
static uint32_t bk_crc_body(int clmul, uint32_t state, const uint8_t *p, size_t n) {
#if BK_CRC_X86
    if (clmul && n >= 128) return bk_crc_clmul(state, p, n);
#else
    (void)clmul;
#endif
    return bk_crc_slice8(state, p, n);
}

int bk_crc32_update_using(int body, uint32_t *state, const void *data, size_t n) {
    bk_crc_tables();
    if (body == BK_BODY_PCLMUL && !bk_crc32_fast_path()) return 0;
    if (body != BK_BODY_PCLMUL && body != BK_BODY_PORTABLE && body != BK_BODY_AUTO) return 0;
    *state = bk_crc_body(body != BK_BODY_PORTABLE && bk_crc32_fast_path(), *state, (const uint8_t *)data, n);
    return 1;
}

uint32_t bk_crc32_update(uint32_t state, const void *data, size_t n) {
    bk_crc_tables();
    return bk_crc_body(bk_crc32_fast_path(), state, (const uint8_t *)data, n);
}

int bk_crc32_fast_path(void) {
#if BK_CRC_X86
    return bk_crc_has_clmul();
#else
    return 0;
#endif
}
