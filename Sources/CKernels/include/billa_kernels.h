#ifndef BILLA_KERNELS_H
#define BILLA_KERNELS_H
/* Dot-product kernels of billa's CPU verifier. The x86-64 entry points dispatch at run time (cpuid) between an
 * AVX2+FMA+F16C body and portable C, so a release build needs no -target-cpu flag to be fast and still runs on
 * any x86-64 (and arm64, where the portable body is used). */
#include <stddef.h>
#include <stdint.h>

/* Weight element types; the numbering is billa's (Inference/KernelType.swift), not ggml's. */
enum {
    BK_F32 = 0, BK_F16 = 1, BK_BF16 = 2,
    BK_Q4_0 = 3, BK_Q4_1 = 4, BK_Q5_0 = 5, BK_Q5_1 = 6, BK_Q8_0 = 7,
    BK_Q4_K = 8, BK_Q5_K = 9, BK_Q6_K = 10,
};

/* 1 when the AVX2+FMA+F16C bodies are in use. */
int bk_fast_path(void);

/* Bodies for the `_using` entry points, which exist for tests. BK_BODY_AUTO is what the library runs (the best body
 * this CPU has). An explicit body runs exactly that body; when the CPU lacks it, the call writes nothing and returns
 * 0 instead of running another body, so a test of a body can never pass by falling back. Tests ask
 * bk_cpu_has_body first and skip, saying so, when it answers 0. */
enum { BK_BODY_AUTO = 0, BK_BODY_PORTABLE = 1, BK_BODY_AVX2 = 2, BK_BODY_AVX512 = 3, BK_BODY_PCLMUL = 4 };
/* 1 when this CPU runs `body`: AVX2 = AVX2+FMA+F16C; AVX512 = AVX-512 F/VL/BW/DQ (what every AVX-512 body needs, and
 * for the prompt tiles BILLA_NO_AVX512 unset); PCLMUL = PCLMULQDQ+SSE4.1; PORTABLE and AUTO always. */
int bk_cpu_has_body(int body);

/* 1 when the CPU (and OS) support AVX-512 F/VL/BW/DQ, which the prompt tiles and the quantizer lanes use. */
int bk_cpu_has_avx512(void);

/* 1 when the CPU also has AVX-512 VNNI, which the int8 prompt products over Q4_0 / Q8_0 use. */
int bk_cpu_has_avx512_vnni(void);

/* 1 when the best body runs Q4_0 / Q8_0 prompts in int8: the CPU has AVX-512 VNNI and BILLA_NO_AVX512 is not set. */
int bk_prompt_int8(void);

/* The int8 prompt products (int8gemm.c): rows in groups of sixteen for Q4_0 / Q8_0 weights, ntok >= 2 tokens,
 * activations quantized to Q8 blocks as llama.cpp does. Returns the rows done (0 when the type, shape or CPU does not
 * allow it); the caller finishes the rest. */
int64_t bk_rows_prompt_vnni(int type, const uint8_t *w, size_t row_bytes, int64_t rows, int64_t cols,
                            const float *x, int64_t ldx, int64_t ntok, float *y, int64_t ldy);

/* The outer-product prompt products (panel.c): rows in groups of 32 for f16 / bf16 / f32 weights, ntok >= 2, on
 * AVX-512; returns the rows done (0 when the type, shape or CPU does not allow it). */
int64_t bk_rows_prompt_panel(int type, const uint8_t *w, size_t row_bytes, int64_t rows, int64_t cols,
                             const float *x, int64_t ldx, int64_t ntok, float *y, int64_t ldy);

/* One token against Q4_0 rows (four at a time, two blocks per AVX-512 vector, VNNI), x quantized to Q8 blocks;
 * returns the rows done (0 when the shape or CPU does not allow it). */
int64_t bk_rows_token_q4_0_vnni(const uint8_t *w, size_t row_bytes, int64_t rows, int64_t cols, const float *x, float *y);

/* Runs fn(ctx, 0..<n) on this thread and the pool's spinning workers (pool.c); returns when every index is done.
 * A call made while another job runs (from another thread, or nested) runs its indices serially instead. */
typedef void (*bk_job_fn)(void *ctx, int64_t i);
void bk_pool_run(int64_t n, bk_job_fn fn, void *ctx);

/* A 64-byte-aligned buffer of at least `bytes` owned by the calling thread and kept for its next call with the same
 * slot (pool.c); NULL when out of memory. Slots: 0-1 panel.c, 2-3 int8gemm.c prompts, 4 int8gemm.c generation. */
#define BK_SCRATCH_SLOTS 5
void *bk_thread_scratch(int slot, size_t bytes);

/* Elements per block and bytes per block of a type (1 and the element size for plain types). */
int bk_block_elems(int type);
int bk_block_bytes(int type);

/* Converts n elements (whole blocks) of `type` at src to f32. */
void bk_to_f32(int type, const void *src, float *dst, int64_t n);

/* Dot product of two f32 vectors. */
float bk_dot_f32(const float *a, const float *b, int64_t n);

/* Floats of scratch bk_rows_dot needs per column: prompts widen four weight rows at a time. */
#define BK_SCRATCH_ROWS 4

/* y[t * ldy + r] = sum_c W[r][c] * x[t * ldx + c] for r < rows, t < ntok. W rows are `row_bytes` apart.
 * `scratch` holds BK_SCRATCH_ROWS * `cols` floats (rows are widened to f32 once for all tokens). */
void bk_rows_dot(int type, const void *w, size_t row_bytes, int64_t rows, int64_t cols,
                 const float *x, int64_t ldx, int64_t ntok, float *y, int64_t ldy, float *scratch);

/* The same entry points with the body chosen by the caller (BK_BODY_*; for rows_dot AVX2 means without the AVX-512
 * prompt tiles, AVX512 with them), so tests can compare the bodies without global state. 1 when the body ran. */
int bk_to_f32_using(int body, int type, const void *src, float *dst, int64_t n);
int bk_rows_dot_using(int body, int type, const void *w, size_t row_bytes, int64_t rows, int64_t cols,
                      const float *x, int64_t ldx, int64_t ntok, float *y, int64_t ldy, float *scratch);

/* f32 -> f16 with round-to-nearest-even (torch's `.half()`; NaN becomes sign | 0x7E00). */
void bk_f32_to_f16(const float *src, uint16_t *dst, int64_t n);
/* body: BK_BODY_PORTABLE or BK_BODY_AVX2 (F16C); 1 when it ran. */
int bk_f32_to_f16_using(int body, const float *src, uint16_t *dst, int64_t n);
/* The same conversion, checked in the same pass: returns how many finite inputs round beyond f16's largest finite
 * value 65504 (|x| >= 65520, which the plain conversion turns into inf) and raises *max_abs to the largest |x| of
 * them. With clamp != 0 those are written as +-65504 instead of +-inf. */
int64_t bk_f32_to_f16_checked(const float *src, uint16_t *dst, int64_t n, int clamp, float *max_abs);
/* body: BK_BODY_AUTO, BK_BODY_PORTABLE or BK_BODY_AVX2; returns -1, writing nothing, when this CPU lacks it. */
int64_t bk_f32_to_f16_checked_using(int body, const float *src, uint16_t *dst, int64_t n, int clamp, float *max_abs);
/* Sum of n floats, accumulated in double. */
double bk_sum_f64(const float *a, int64_t n);

/* ggml's make_qx_quants (rmse_type 1, no importance weights) for 16 consecutive groups of 16 values (a Q6_K block):
 * L[256] gets levels offset by nmax, scales[16] each group's scale. Bit-identical to ggml's reference; the AVX-512
 * body runs the groups in parallel lanes. `_using(body)`: BK_BODY_PORTABLE (scalar) or BK_BODY_AVX512; 1 when it ran. */
void bk_make_qx_16x16(int nmax, const float *x, int8_t *L, float *scales);
int bk_make_qx_16x16_using(int body, int nmax, const float *x, int8_t *L, float *scales);
/* make_qx_quants (rmse_type 1) for 16 consecutive groups of n <= 32 values with the caller's weights (16 n values;
 * NULL: x^2, as above), L[16 n], scales[16]: the importance-weighted Q6_K and Q3_K (n 16) and Q4_0/Q5_0 (n 32, sixteen
 * blocks at a time). Bodies as above; 0 also for n outside 1...32. */
int bk_make_qx_16xn_weighted_using(int body, int n, int nmax, const float *x, const float *weights, int8_t *L,
                                   float *scales);

/* ggml's make_qx_quants (rmse_type 1) for one group of n values, levels -nmax..nmax-1 stored offset by nmax in L[n]:
 * weights qw[n], or x^2 when qw is NULL (the reference quantizers). Returns the scale. The one scalar copy: the
 * portable body of the 16-group searches below, and the importance-weighted Q3_K's scale of scales. */
float bk_qx_group(int n, int nmax, const float *x, const float *qw, int8_t *L);

/* ggml's make_qkx2_quants for one group of n <= 32 values with the caller's weights, squared or (use_mad) absolute
 * errors: the one scalar copy, used by the Q4_K/Q5_K and Q2_K quantizers with and without importance weights (and
 * Q4_1/Q5_1 with them). Returns the scale; *the_min gets the
 * negated minimum; L[n] the levels 0..nmax. */
float bk_qkx2_group(int n, int nmax, const float *x, const float *weights, uint8_t *L, float *the_min,
                    float rmin, float rdelta, int nstep, int use_mad);

/* ggml's make_qkx2_quants with Q4_K/Q5_K's weights for the 8 groups of 32 of one block: L[256] levels, scales[8],
 * mins[8] (negated minimum, as ggml returns it). Bit-identical to ggml's reference; lanes as above. */
void bk_make_qkx2_8x32(int nmax, const float *x, float rmin, float rdelta, int nstep, uint8_t *L, float *scales, float *mins);
int bk_make_qkx2_8x32_using(int body, int nmax, const float *x, float rmin, float rdelta, int nstep,
                            uint8_t *L, float *scales, float *mins);
/* The same search with the caller's 256 weights (NULL: Q4_K/Q5_K's, as above): the importance-weighted Q4_K/Q5_K
 * (and Q4_1/Q5_1, eight 32-blocks at a time) run it with rmin -0.9, rdelta 0.05, nstep 36 (ggml's make_qkx3_quants,
 * which with weights given performs make_qkx2's operations). */
int bk_make_qkx2_8x32_weighted_using(int body, int nmax, const float *x, const float *weights, float rmin,
                                     float rdelta, int nstep, uint8_t *L, float *scales, float *mins);

/* ggml's quantize_row_q8_0_ref over n values (whole blocks): bit-identical output. Bodies as above. */
void bk_quantize_q8_0(const float *x, void *y, int64_t n);
int bk_quantize_q8_0_using(int body, const float *x, void *y, int64_t n);

/* copy_file_range(2) with explicit offsets (advanced by the bytes copied); -1 and errno ENOSYS where it does not
 * exist. */
int64_t bk_copy_file_range(int fd_in, int64_t *off_in, int fd_out, int64_t *off_out, size_t len);

/* Starts writeback of a written range without waiting for it (sync_file_range(2) with SYNC_FILE_RANGE_WRITE); 0
 * on success, and a no-op where there is no such call. */
int bk_start_writeback(int fd, int64_t offset, int64_t len);

/* Fixes glibc malloc's mmap threshold (blocks of `bytes` or more get their own mapping); 1 on success, 0 where
 * there is no such setting. */
int bk_set_mmap_threshold(size_t bytes);

/* CRC-32 (ISO-HDLC, the ZIP one) of n bytes, continuing from the running register `state` (0xFFFFFFFF at the start;
 * the checksum is the final register XOR 0xFFFFFFFF). PCLMULQDQ folding when the CPU has it, slicing-by-8 otherwise;
 * `_using(body)` (BK_BODY_PORTABLE or BK_BODY_PCLMUL) updates *state with that body, for tests; 1 when it ran. */
uint32_t bk_crc32_update(uint32_t state, const void *data, size_t n);
int bk_crc32_update_using(int body, uint32_t *state, const void *data, size_t n);
/* 1 when bk_crc32_update uses PCLMULQDQ. */
int bk_crc32_fast_path(void);

/* The pack codec (formats/pack.md 5.2; planes.c). Transforms use the format's codes; levels pick a body. */
enum { BK_PLANES_NONE = 0, BK_PLANES_BYTES16 = 1, BK_PLANES_BF16 = 2, BK_PLANES_F32 = 3 };
enum { BK_PLANES_AUTO = 0, BK_PLANES_PORTABLE = 1, BK_PLANES_AVX2 = 2, BK_PLANES_AVX512 = 3 };
/* The body BK_PLANES_AUTO uses on this CPU. */
int bk_planes_best_level(void);
/* Splits `bytes` of elements at src into planes p0..p3 (bytes / element size each; unused planes may be NULL; for
 * BK_PLANES_NONE p0 gets a copy). With `hash` nonzero returns XXH64 (seed 0) of src, computed in the same pass. */
uint64_t bk_planes_split(int transform, const void *src, size_t bytes, uint8_t *p0, uint8_t *p1, uint8_t *p2, uint8_t *p3, int hash);
/* The same with the body chosen by a test: a level above bk_planes_best_level() writes nothing and returns 0; else
 * 1, with the hash in *hash when hash is not NULL. */
int bk_planes_split_using(int level, int transform, const void *src, size_t bytes, uint8_t *p0, uint8_t *p1, uint8_t *p2,
                          uint8_t *p3, uint64_t *hash);
/* The inverse: writes `bytes` bytes to dst (dst may equal p0 for BK_PLANES_NONE); with `hash` nonzero returns XXH64
 * (seed 0) of dst, hashed block by block while it is in cache. */
uint64_t bk_planes_merge(int transform, const uint8_t *p0, const uint8_t *p1, const uint8_t *p2, const uint8_t *p3, void *dst,
                         size_t bytes, int hash);
int bk_planes_merge_using(int level, int transform, const uint8_t *p0, const uint8_t *p1, const uint8_t *p2,
                          const uint8_t *p3, void *dst, size_t bytes, uint64_t *hash);
/* XXH64 as the xxHash specification defines it. */
uint64_t bk_xxh64(const void *data, size_t n, uint64_t seed);
/* Order-0 entropy of n bytes in bits per byte. */
double bk_byte_entropy(const void *data, size_t n);

/* What `billa --version` reports about the binary itself (build_info.c). The git commit scripts/build recorded (with
 * "+dirty" when the work tree had changes), or "unknown" for a build that did not go through scripts/build. */
const char *bk_build_commit(void);
/* 1 when the AVX-512 prompt tiles are in use: the CPU has AVX-512 F/VL/BW/DQ and BILLA_NO_AVX512 is not set. */
int bk_avx512_in_use(void);

/* LoRA merge rows (lora.c): for each of `rows` rows i and each column j,
 *   w[i][j] = w[i][j] + (scale * sum_k B[i][k] * A[k][j])
 * where the sum is accumulated in float32 with one fused multiply-add per k in increasing k from 0 (torch's CPU
 * float32 matmul through MKL gives these bits for LoRA's small inner dimension), the product by `scale` and the
 * addition each rounded to float32 separately, as torch's `W += (B @ A) * scaling` does. B is rows x r, A is
 * r x cols, w is rows x cols, all row-major. Rows are spread over the thread pool. */
void bk_lora_add(const float *B, const float *A, float *w, int64_t rows, int64_t r, int64_t cols, float scale);
/* body: BK_BODY_AUTO, BK_BODY_PORTABLE or BK_BODY_AVX2 (AVX2+FMA); 1 when it ran, 0 (nothing written) when this CPU
 * lacks it. */
int bk_lora_add_using(int body, const float *B, const float *A, float *w, int64_t rows, int64_t r, int64_t cols,
                      float scale);

/* The low-bit llama.cpp types (lowbit.c), numbered after BK_Q6_K in billa's kernel numbering. kernels.c's entry
 * points do not take them; the verifier widens their rows with bk_lowbit_to_f32 / bk_lowbit_rows_dot. */
enum { BK_Q2_K = 11, BK_Q3_K = 12, BK_IQ4_NL = 13, BK_IQ4_XS = 14 };
/* ggml's reference quantizers (no importance matrix) over n values (whole blocks), bit-identical to ggml-quants.c:
 * quantize_row_q2_K_ref, quantize_row_q3_K_ref, quantize_iq4_nl and quantize_iq4_xs without quant weights. */
void bk_quantize_q2_K(const float *x, void *y, int64_t n);
/* Q2_K with its 16 scale searches one after another (BK_BODY_PORTABLE) or eight per AVX2 step (BK_BODY_AVX2; each
 * lane in the scalar order, so the same bytes); 1 when the body ran. */
int bk_quantize_q2_K_using(int body, const float *x, void *y, int64_t n);
/* The 16 scale searches of an importance-weighted Q2_K block (make_qkx3_quants: the 256 given weights, levels
 * 0..3, squared error, rmin -0.9, rdelta 0.05, 36 steps): L[256], scales[16], mins[16] (negated minima). Bodies as
 * bk_quantize_q2_K_using. */
int bk_q2_K_weighted_searches_using(int body, const float *x, const float *weights, uint8_t *L, float *scales,
                                    float *mins);
/* Q3_K likewise: its 16 make_q3_quants searches one after another or eight per AVX2 step. */
int bk_quantize_q3_K_using(int body, const float *x, void *y, int64_t n);
void bk_quantize_q3_K(const float *x, void *y, int64_t n);
void bk_quantize_iq4_nl(const float *x, void *y, int64_t n);
void bk_quantize_iq4_xs(const float *x, void *y, int64_t n);
/* IQ4_NL or IQ4_XS (type) over n values, with an importance matrix (qw: n weights, the row's column weights) or
 * without (qw NULL: the two functions above). Body: BK_BODY_PORTABLE (each group's scale search in turn),
 * BK_BODY_AVX512 (eight groups per AVX-512VL step, each lane in the scalar order; 0 when the CPU lacks it) or
 * BK_BODY_AUTO. 0 (nothing written) for another type or body. */
int bk_quantize_iq4_using(int body, int type, const float *x, void *y, int64_t n, const float *qw);

/* One row of n values (whole blocks) quantized as ggml_quantize_chunk(type, x, y, 0, 1, n, qw) writes it with an
 * importance matrix: qw holds n weights, one per column (importance.c). `type` is billa's kernel numbering (BK_Q4_0
 * ... BK_IQ4_XS); BK_Q8_0 ignores qw, as ggml does. Returns 1, or 0 (nothing written) for any other type. */
int bk_quantize_row_importance(int type, const float *x, void *y, int64_t n, const float *qw);
/* The same with the searches' body chosen: BK_BODY_PORTABLE (every search scalar), BK_BODY_AVX512 (the lanes: AVX-512
 * for the group searches of Q4_0/Q5_0/Q4_1/Q5_1/Q3_K/Q4_K/Q5_K/Q6_K/IQ4_NL/IQ4_XS and Q8_0, AVX2 for Q2_K's; 0 when the CPU lacks
 * either) or BK_BODY_AUTO; 0 for any other body. */
int bk_quantize_row_importance_using(int body, int type, const float *x, void *y, int64_t n, const float *qw);
/* Elements and bytes per block of a low-bit type (0 bytes for any other type). */
int bk_lowbit_block_elems(int type);
int bk_lowbit_block_bytes(int type);
/* Widens n values (whole blocks) of a low-bit type to f32; 0 (nothing written) for any other type. */
int bk_lowbit_to_f32(int type, const void *src, float *dst, int64_t n);
/* Rows widened at a time by bk_lowbit_rows_dot. */
#define BK_LOWBIT_ROWS 16
/* bk_rows_dot for a low-bit type: rows widened to f32 BK_LOWBIT_ROWS at a time, then the f32 products. `scratch`
 * holds (BK_LOWBIT_ROWS + BK_SCRATCH_ROWS) * cols floats. 0 (nothing written) when the type is not one of them. */
int bk_lowbit_rows_dot(int type, const void *w, size_t row_bytes, int64_t rows, int64_t cols, const float *x,
                       int64_t ldx, int64_t ntok, float *y, int64_t ldy, float *scratch);

/* llama.cpp's grid types (grid.c, iq1.c, iq2.c, iq3.c; tables generated into grid_tables.c) and ternary types
 * (ternary.c), numbered after BK_IQ4_XS.
 * bk_lowbit_block_bytes / bk_lowbit_to_f32 / bk_lowbit_rows_dot take them too (rows widened to f32). */
enum { BK_IQ2_XXS = 15, BK_IQ2_XS = 16, BK_IQ3_XXS = 17, BK_IQ3_S = 18, BK_IQ2_S = 19, BK_IQ1_S = 20, BK_IQ1_M = 21,
       BK_TQ1_0 = 22, BK_TQ2_0 = 23 };
/* Bytes of a 256-element block of a grid type; 0 for any other type. */
int bk_grid_block_bytes(int type);
/* 1 for the types ggml cannot quantize without importance weights (it asserts them): IQ2_XXS, IQ2_XS, IQ1_S. */
int bk_grid_requires_importance(int type);
/* One row of n values (whole 256-blocks) as ggml_quantize_chunk(type, x, y, 0, 1, n, qw) writes it: qw holds n
 * weights (one per column), or is NULL for ggml's unweighted search (IQ3_XXS, IQ3_S, IQ2_S, IQ1_M; TQ1_0 and TQ2_0
 * ignore weights, as ggml does). Returns 1, or 0 (nothing
 * written) for another type, a partial block or missing weights a type requires. The first call for a type builds its
 * lattice (thread-safe). */
int bk_quantize_grid(int type, const float *x, void *y, int64_t n, const float *qw);
/* The same with the neighbour searches' body chosen: BK_BODY_PORTABLE (ggml's scalar loops), BK_BODY_AVX2 (eight
 * neighbours per step, each lane in the scalar order; 0 when the CPU lacks it) or BK_BODY_AUTO. The bytes are the
 * same; the tests hold both bodies to ggml's. */
int bk_quantize_grid_using(int body, int type, const float *x, void *y, int64_t n, const float *qw);
/* Widens n values (whole blocks) of a grid type to f32, as ggml's dequantize_row_*; 0 for any other type. */
int bk_grid_to_f32(int type, const void *src, float *dst, int64_t n);
/* A generated table by its llama.cpp name ("iq2xxs_grid", "kgrid_2bit_256", ...) and its size in bytes; NULL (0
 * bytes) for an unknown name. For the hash test against Tests/Fixtures/quant/grid/tables.json. */
const void *bk_grid_table(const char *name, size_t *bytes);

#endif
