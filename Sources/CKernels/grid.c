/* The lattices of llama.cpp's grid types, built as ggml's iq2xs_init_impl / iq3xs_init_impl build them (ggml-quants.c
 * of llama.cpp as vendored by llama-cpp-python 0.3.36), and the grid types' entry points.
 *
 * A lattice point is `dims` levels l (2 bits each for the iq2 family, 3 for iq3) packed into an index; the grid is the
 * subset of points in the packed kgrid table (grid_tables.c). The map sends a packed point to its grid index; a point
 * off the grid gets a neighbour list instead: every grid point whose squared distance (in coordinates 2l+1) is among
 * the `nwant` smallest distinct distances, ordered by (distance, index). ggml sorts all grid points by that key with
 * qsort and keeps the prefix; here the same prefix is found by selecting the nwant smallest distances and listing
 * their points in index order, which gives the same lists (the key has no ties: indices differ). The quantizers only ever compare the listed points, so
 * the lists, not their storage order, decide the bytes. Written from that description, not copied. */
#include "billa_kernels.h"
#include "grid.h"
#include <pthread.h>
#include <stdlib.h>

#pragma STDC FP_CONTRACT OFF

typedef struct {
    int dims, bits, size, nwant, map_size;
    const uint16_t *kgrid;
} bk_lattice_spec;

/* ggml's sizes: kmap_size 43692 for the 8 x 2-bit lattices, 4096 for the 4 x 3-bit ones; nwant 2 for IQ2_XXS/XS,
 * 1 for IQ2_S, 3 for IQ1_S/IQ1_M; 2 for IQ3_XXS's 256 points, 3 for IQ3_S's 512. */
static const bk_lattice_spec bk_lat_specs[BK_LAT_COUNT] = {
    [BK_LAT_IQ2XXS] = {8, 2, 256, 2, 43692, bk_kgrid_2bit_256},
    [BK_LAT_IQ2XS] = {8, 2, 512, 2, 43692, bk_kgrid_2bit_512},
    [BK_LAT_IQ2S] = {8, 2, 1024, 1, 43692, bk_kgrid_2bit_1024},
    [BK_LAT_IQ1S] = {8, 2, 2048, 3, 43692, bk_kgrid_1bit_2048},
    [BK_LAT_IQ3XXS] = {4, 3, 256, 2, 4096, bk_kgrid_256},
    [BK_LAT_IQ3S] = {4, 3, 512, 3, 4096, bk_kgrid_512},
};

static bk_lattice bk_lats[BK_LAT_COUNT];
static pthread_once_t bk_lat_once[BK_LAT_COUNT] = {PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT,
                                                   PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT};

static void bk_lat_build(int which) {
    const bk_lattice_spec *s = &bk_lat_specs[which];
    const int dims = s->dims, bits = s->bits, size = s->size, mask = (1 << bits) - 1;
    int8_t *grid = malloc((size_t)size * dims);
    int *map = malloc((size_t)s->map_size * sizeof(int));
    int *d2 = malloc((size_t)size * sizeof(int));
    if (!grid || !map || !d2) abort();
    for (int k = 0; k < size; k++)
        for (int i = 0; i < dims; i++) grid[k * dims + i] = (int8_t)(2 * ((s->kgrid[k] >> (bits * i)) & mask) + 1);
    for (int i = 0; i < s->map_size; i++) map[i] = -1;
    for (int k = 0; k < size; k++) {
        int index = 0;
        for (int i = 0; i < dims; i++) index |= ((grid[k * dims + i] - 1) / 2) << (bits * i);
        map[index] = k;
    }
    /* Squared distances split by halves of the coordinates: half[h][c * size + j] is the sum over half h's
     * coordinates of (grid j's - point's)^2 for the point whose half h packs to c, so a point's distance to grid j is
     * one addition. */
    const int hbits = bits * dims / 2, hdims = dims / 2, ncomb = 1 << hbits;
    uint16_t *half[2];
    for (int h = 0; h < 2; h++) {
        half[h] = malloc((size_t)ncomb * size * sizeof(uint16_t));
        if (!half[h]) abort();
        for (int c = 0; c < ncomb; c++)
            for (int j = 0; j < size; j++) {
                int d = 0;
                for (int i = 0; i < hdims; i++) {
                    const int e = grid[j * dims + h * hdims + i] - (2 * ((c >> (bits * i)) & mask) + 1);
                    d += e * e;
                }
                half[h][(size_t)c * size + j] = (uint16_t)d;
            }
    }
    size_t cap = 1 << 16, at = 0;
    uint16_t *nb = malloc(cap * sizeof(uint16_t));
    if (!nb) abort();
    for (int p = 0; p < s->map_size; p++) {
        if (map[p] >= 0) continue;   /* on the grid */
        const uint16_t *h0 = half[0] + (size_t)(p & (ncomb - 1)) * size, *h1 = half[1] + (size_t)(p >> hbits) * size;
        /* the nwant smallest distinct distances, ascending */
        int keep[3], nk = 0;
        for (int j = 0; j < size; j++) {
            const int d = d2[j] = h0[j] + h1[j];
            if (nk == s->nwant && d >= keep[nk - 1]) continue;
            int k = 0;
            while (k < nk && keep[k] < d) k++;
            if (k < nk && keep[k] == d) continue;
            if (nk < s->nwant) nk++;
            for (int m = nk - 1; m > k; m--) keep[m] = keep[m - 1];
            keep[k] = d;
        }
        if (at + 1 + (size_t)size > cap) {
            while (at + 1 + (size_t)size > cap) cap *= 2;
            nb = realloc(nb, cap * sizeof(uint16_t));
            if (!nb) abort();
        }
        map[p] = -(int)(at + 1);
        const size_t start = at++;
        for (int k = 0; k < nk; k++)   /* ordered by (distance, index), as ggml's sort leaves them */
            for (int j = 0; j < size; j++)
                if (d2[j] == keep[k]) nb[at++] = (uint16_t)j;
        nb[start] = (uint16_t)(at - start - 1);
    }
    free(half[0]);
    free(half[1]);
    free(d2);
    float *fgrid = malloc((size_t)size * dims * sizeof(float));
    int32_t *lgrid = malloc((size_t)size * dims * sizeof(int32_t));
    if (!fgrid || !lgrid) abort();
    for (int k = 0; k < size * dims; k++) {
        fgrid[k] = (float)grid[k];
        lgrid[k] = (grid[k] - 1) / 2;
    }
    bk_lats[which] = (bk_lattice){dims, size, grid, fgrid, lgrid, map, nb};
}

#define BK_LAT_ONCE(k) static void bk_lat_init_##k(void) { bk_lat_build(k); }
BK_LAT_ONCE(0)
BK_LAT_ONCE(1)
BK_LAT_ONCE(2)
BK_LAT_ONCE(3)
BK_LAT_ONCE(4)
BK_LAT_ONCE(5)
static void (*const bk_lat_inits[BK_LAT_COUNT])(void) = {bk_lat_init_0, bk_lat_init_1, bk_lat_init_2,
                                                         bk_lat_init_3, bk_lat_init_4, bk_lat_init_5};

const bk_lattice *bk_lattice_get(int which) {
    pthread_once(&bk_lat_once[which], bk_lat_inits[which]);
    return &bk_lats[which];
}

_Thread_local int bk_grid_body = -1;

static int bk_grid_lanes(void) {
    if (bk_grid_body < 0) bk_grid_body = bk_cpu_has_body(BK_BODY_AVX2) ? 1 : 0;
    return bk_grid_body;
}

/* The scalar scores: ggml's loops. */
static int bk_nb_scalar(const bk_lattice *lat, const uint16_t *nb, const float *xval, const float *weight, float scale,
                        const float *xg) {
    const int dims = lat->dims, n = nb[0];
    float best_d2 = 3.402823466e+38f;
    int best = -1;
    for (int j = 1; j <= n; j++) {
        const int8_t *pg = lat->grid + (size_t)nb[j] * dims;
        float d2 = 0;
        for (int i = 0; i < dims; i++) {
            const float q = xg ? xg[(pg[i] - 1) / 2] : (float)pg[i];
            const float w = weight[i];
            const float diff = scale * q - xval[i];
            d2 += w * diff * diff;
        }
        if (d2 < best_d2) {
            best_d2 = d2;
            best = nb[j];
        }
    }
    return best;
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
/* Eight neighbours per step, one per lane; each lane sums its dims terms in the scalar order (no FMA), and the lanes
 * are then compared in neighbour order with the scalar's strict <, so the choice is the scalar's. */
__attribute__((target("avx2"))) static int bk_nb_avx2(const bk_lattice *lat, const uint16_t *nb, const float *xval,
                                                      const float *weight, float scale, const float *xg) {
    const int dims = lat->dims, n = nb[0];
    float best_d2 = 3.402823466e+38f;
    int best = -1;
    const __m256 vs = _mm256_set1_ps(scale);
    const __m256 vxg = xg ? _mm256_setr_ps(xg[0], xg[1], xg[2], 0, 0, 0, 0, 0) : _mm256_setzero_ps();
    float d2s[8];
    for (int j0 = 0; j0 < n; j0 += 8) {
        const int cnt = n - j0 < 8 ? n - j0 : 8;
        int32_t ix[8];
        for (int k = 0; k < 8; k++) ix[k] = (int32_t)nb[1 + j0 + (k < cnt ? k : 0)] * dims;
        const __m256i vix = _mm256_loadu_si256((const __m256i *)ix);
        __m256 d2 = _mm256_setzero_ps();
        for (int i = 0; i < dims; i++) {
            __m256 q;
            if (xg) q = _mm256_permutevar8x32_ps(vxg, _mm256_i32gather_epi32(lat->lgrid + i, vix, 4));
            else q = _mm256_i32gather_ps(lat->fgrid + i, vix, 4);
            const __m256 diff = _mm256_sub_ps(_mm256_mul_ps(vs, q), _mm256_set1_ps(xval[i]));
            d2 = _mm256_add_ps(d2, _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(weight[i]), diff), diff));
        }
        _mm256_storeu_ps(d2s, d2);
        for (int k = 0; k < cnt; k++)
            if (d2s[k] < best_d2) {
                best_d2 = d2s[k];
                best = nb[1 + j0 + k];
            }
    }
    return best;
}
#endif

static int bk_nb_best(const bk_lattice *lat, const uint16_t *nb, const float *xval, const float *weight, float scale,
                      const float *xg) {
#if defined(__x86_64__) || defined(__i386__)
    if (bk_grid_lanes()) return bk_nb_avx2(lat, nb, xval, weight, scale, xg);
#endif
    return bk_nb_scalar(lat, nb, xval, weight, scale, xg);
}

int bk_lattice_best_neighbour(const bk_lattice *lat, const uint16_t *neighbours, const float *xval, const float *weight,
                              float scale, int8_t *L) {
    int best = bk_nb_best(lat, neighbours, xval, weight, scale, NULL);
    /* ggml asserts a choice (no neighbour scores below FLT_MAX only for NaN or overflowing errors); billa keeps the
     * first neighbour there */
    if (best < 0) best = neighbours[1];
    const int8_t *pg = lat->grid + (size_t)best * lat->dims;
    for (int i = 0; i < lat->dims; i++) L[i] = (int8_t)((pg[i] - 1) / 2);
    return best;
}

int bk_lattice_best_neighbour_xg(const bk_lattice *lat, const uint16_t *neighbours, const float *xval, const float *weight,
                                 float scale, const float *xg) {
    return bk_nb_best(lat, neighbours, xval, weight, scale, xg);
}

int bk_grid_block_bytes(int type) {
    switch (type) {
    case BK_IQ2_XXS: return 66;
    case BK_IQ2_XS: return 74;
    case BK_IQ3_XXS: return 98;
    case BK_IQ3_S: return 110;
    case BK_IQ2_S: return 82;
    case BK_IQ1_S: return 50;
    case BK_IQ1_M: return 56;
    case BK_TQ1_0: return 54;
    case BK_TQ2_0: return 66;
    default: return 0;
    }
}

int bk_grid_requires_importance(int type) { return type == BK_IQ2_XXS || type == BK_IQ2_XS || type == BK_IQ1_S; }

int bk_quantize_grid(int type, const float *x, void *y, int64_t n, const float *qw) {
    if (bk_grid_block_bytes(type) == 0 || n % 256 != 0) return 0;
    if (!qw && bk_grid_requires_importance(type)) return 0;
    switch (type) {
    case BK_IQ2_XXS:
    case BK_IQ2_XS:
    case BK_IQ2_S: return bk_iq2_quantize_row(type, x, y, n, qw);
    case BK_IQ1_S:
    case BK_IQ1_M: return bk_iq1_quantize_row(type, x, y, n, qw);
    case BK_TQ1_0:
    case BK_TQ2_0: return bk_ternary_quantize_row(type, x, y, n);   /* ggml ignores the weights */
    default: return bk_iq3_quantize_row(type, x, y, n, qw);
    }
}

int bk_quantize_grid_using(int body, int type, const float *x, void *y, int64_t n, const float *qw) {
    int lanes;
    if (body == BK_BODY_PORTABLE) lanes = 0;
    else if (body == BK_BODY_AUTO) lanes = bk_cpu_has_body(BK_BODY_AVX2) ? 1 : 0;
    else if (body == BK_BODY_AVX2 && bk_cpu_has_body(BK_BODY_AVX2)) lanes = 1;
    else return 0;
    const int saved = bk_grid_body;
    bk_grid_body = lanes;
    const int r = bk_quantize_grid(type, x, y, n, qw);
    bk_grid_body = saved;
    return r;
}

int bk_grid_to_f32(int type, const void *src, float *dst, int64_t n) {
    const int bb = bk_grid_block_bytes(type);
    if (bb == 0) return 0;
    const uint8_t *s = (const uint8_t *)src;
    for (int64_t i = 0; i < n / 256; i++, s += bb, dst += 256) {
        switch (type) {
        case BK_IQ2_XXS: bk_iq2_xxs_dequant(s, dst); break;
        case BK_IQ2_XS: bk_iq2_xs_dequant(s, dst); break;
        case BK_IQ3_XXS: bk_iq3_xxs_dequant(s, dst); break;
        case BK_IQ2_S: bk_iq2_s_dequant(s, dst); break;
        case BK_IQ1_S: bk_iq1_s_dequant(s, dst); break;
        case BK_IQ1_M: bk_iq1_m_dequant(s, dst); break;
        case BK_TQ1_0: bk_tq1_0_dequant(s, dst); break;
        case BK_TQ2_0: bk_tq2_0_dequant(s, dst); break;
        default: bk_iq3_s_dequant(s, dst); break;
        }
    }
    return 1;
}
