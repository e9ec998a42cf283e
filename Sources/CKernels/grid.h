/* Internal to CKernels: llama.cpp's grid quantization types (IQ2_XXS, IQ2_XS, IQ3_XXS, IQ3_S, ...). The tables are
 * data generated from the llama.cpp source (grid_tables.c, scripts/fixtures/make_grid_tables.py); the lattices the
 * quantizers search (grid points, the map from a rounded point to its grid index, and the neighbour lists of points
 * off the grid) are built from the packed kgrid tables at first use, as ggml_quantize_init builds them (grid.c). */
#ifndef BK_GRID_H
#define BK_GRID_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>

extern const uint8_t bk_kmask_iq2xs[8];
extern const uint8_t bk_ksigns_iq2xs[128];
extern const uint64_t bk_iq2xxs_grid[256];
extern const uint64_t bk_iq2xs_grid[512];
extern const uint64_t bk_iq2s_grid[1024];
extern const uint32_t bk_iq3xxs_grid[256];
extern const uint32_t bk_iq3s_grid[512];
extern const uint64_t bk_iq1s_grid[2048];
extern const uint16_t bk_kgrid_2bit_256[256];
extern const uint16_t bk_kgrid_2bit_512[512];
extern const uint16_t bk_kgrid_2bit_1024[1024];
extern const uint16_t bk_kgrid_1bit_2048[2048];
extern const uint16_t bk_kgrid_256[256];
extern const uint16_t bk_kgrid_512[512];

/* The lattices, in ggml's terms: iq2 (8 dimensions, 2 bits a coordinate) with 256/512/1024/2048 points for
 * IQ2_XXS/IQ2_XS/IQ2_S/IQ1_S+IQ1_M, iq3 (4 dimensions, 3 bits) with 256/512 for IQ3_XXS/IQ3_S. */
enum { BK_LAT_IQ2XXS = 0, BK_LAT_IQ2XS = 1, BK_LAT_IQ2S = 2, BK_LAT_IQ1S = 3, BK_LAT_IQ3XXS = 4, BK_LAT_IQ3S = 5, BK_LAT_COUNT };

typedef struct {
    int dims;                   /* coordinates per point: 8 or 4 */
    int size;                   /* grid points */
    const int8_t *grid;         /* size * dims coordinates 2l+1, l the packed level */
    const float *fgrid;         /* the same coordinates as floats, and */
    const int32_t *lgrid;       /* the levels l, for the neighbour searches' lanes */
    const int *map;             /* packed point -> grid index, or -(offset + 1): neighbours[offset] = count, then indices */
    const uint16_t *neighbours;
} bk_lattice;

/* The lattice, built on first use (thread-safe). */
const bk_lattice *bk_lattice_get(int which);

/* ggml's iq2_find_best_neighbour / iq3_find_best_neighbour: among the neighbours of an off-grid point, the grid
 * point with the least weighted squared error at `scale`; its levels (coordinate-1)/2 go to L. Returns its index. */
int bk_lattice_best_neighbour(const bk_lattice *lat, const uint16_t *neighbours, const float *xval, const float *weight,
                              float scale, int8_t *L);
/* The same score with the coordinates mapped through xg[level] (IQ1's shifted levels): the neighbour with the least
 * sum of weight * (scale * xg[l] - xval)^2, or -1 when none scores below FLT_MAX. Does not write L. */
int bk_lattice_best_neighbour_xg(const bk_lattice *lat, const uint16_t *neighbours, const float *xval, const float *weight,
                                 float scale, const float *xg);
/* The body the neighbour searches of this thread run: 1 AVX2 lanes (one neighbour per lane, each lane's sum in the
 * scalar order), 0 scalar. Set by bk_quantize_grid_using; defaults to the CPU's best. */
extern _Thread_local int bk_grid_body;

/* importance.c's copy of ggml's make_qp_quants (weights qw; L as uint8 levels). */
float bk_iw_qp(int n, int nmax, const float *x, uint8_t *L, const float *qw);

/* Per-type row quantizers (qw: n weights or NULL where ggml allows it) and block dequantizers. */
int bk_iq2_quantize_row(int type, const float *x, void *y, int64_t n, const float *qw);
int bk_iq3_quantize_row(int type, const float *x, void *y, int64_t n, const float *qw);
int bk_iq1_quantize_row(int type, const float *x, void *y, int64_t n, const float *qw);
int bk_ternary_quantize_row(int type, const float *x, void *y, int64_t n);
void bk_iq1_s_dequant(const uint8_t *b, float *y);
void bk_iq1_m_dequant(const uint8_t *b, float *y);
void bk_tq1_0_dequant(const uint8_t *b, float *y);
void bk_tq2_0_dequant(const uint8_t *b, float *y);
void bk_iq2_xxs_dequant(const uint8_t *b, float *y);
void bk_iq2_xs_dequant(const uint8_t *b, float *y);
void bk_iq2_s_dequant(const uint8_t *b, float *y);
void bk_iq3_xxs_dequant(const uint8_t *b, float *y);
void bk_iq3_s_dequant(const uint8_t *b, float *y);

#endif
