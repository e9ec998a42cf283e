#ifndef BILLA_CZSTD_SHIM_H
#define BILLA_CZSTD_SHIM_H
/* The experimental API (ZSTD_compressSequences, ZSTD_c_literalCompressionMode) is exported by libzstd.so since 1.5.1;
 * the pack writer uses it for literal-only exponent planes. */
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>

/* One zstd frame holding `n` bytes as Huffman-coded literals only (no match search: the exponent planes of float
 * weights are order-0 noise over a few symbols, where matches only cost). The frame declares its content size and
 * is an ordinary frame to any decoder. Returns the frame size or a zstd error code (ZSTD_isError). */
static inline size_t billa_zstd_literals_only(ZSTD_CCtx *c, void *dst, size_t capacity, const void *src, size_t n) {
    size_t r = ZSTD_CCtx_reset(c, ZSTD_reset_session_and_parameters);
    if (ZSTD_isError(r)) return r;
    ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 1);
    ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 0);
    ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 3);
    ZSTD_CCtx_setParameter(c, ZSTD_c_literalCompressionMode, ZSTD_ps_enable);
    ZSTD_CCtx_setParameter(c, ZSTD_c_blockDelimiters, ZSTD_sf_noBlockDelimiters);
    return ZSTD_compressSequences(c, dst, capacity, NULL, 0, src, n);
}
#endif
