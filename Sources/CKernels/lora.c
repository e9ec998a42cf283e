/* The LoRA delta, added to rows of a base weight in float32 (see billa_kernels.h for the exact arithmetic). Runtime
 * dispatch as in kernels.c: an AVX2+FMA body when the CPU has it, portable C (fmaf) otherwise; both give the same
 * bits, because both perform the same correctly rounded operations in the same order. */
#include "billa_kernels.h"
#include "billa_kernels.h"
#include <math.h>

#pragma STDC FP_CONTRACT OFF

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BK_LORA_X86 1
#define BK_LORA_FAST __attribute__((target("avx2,fma")))
#else
#define BK_LORA_X86 0
#endif

static void bk_lora_row_portable(const float *b, const float *A, float *w, int64_t r, int64_t cols, float scale) {
    for (int64_t j = 0; j < cols; j++) {
        float acc = 0.0f;
        for (int64_t k = 0; k < r; k++) acc = fmaf(b[k], A[k * cols + j], acc);
        float d = acc * scale;
        w[j] = w[j] + d;
    }
}

#if BK_LORA_X86
BK_LORA_FAST static void bk_lora_row_avx2(const float *b, const float *A, float *w, int64_t r, int64_t cols, float scale) {
    const __m256 s = _mm256_set1_ps(scale);
    int64_t j = 0;
    for (; j + 32 <= cols; j += 32) {
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
        for (int64_t k = 0; k < r; k++) {
            const __m256 bk = _mm256_set1_ps(b[k]);
            const float *row = A + k * cols + j;
            a0 = _mm256_fmadd_ps(bk, _mm256_loadu_ps(row), a0);
            a1 = _mm256_fmadd_ps(bk, _mm256_loadu_ps(row + 8), a1);
            a2 = _mm256_fmadd_ps(bk, _mm256_loadu_ps(row + 16), a2);
            a3 = _mm256_fmadd_ps(bk, _mm256_loadu_ps(row + 24), a3);
        }
        _mm256_storeu_ps(w + j, _mm256_add_ps(_mm256_loadu_ps(w + j), _mm256_mul_ps(a0, s)));
        _mm256_storeu_ps(w + j + 8, _mm256_add_ps(_mm256_loadu_ps(w + j + 8), _mm256_mul_ps(a1, s)));
        _mm256_storeu_ps(w + j + 16, _mm256_add_ps(_mm256_loadu_ps(w + j + 16), _mm256_mul_ps(a2, s)));
        _mm256_storeu_ps(w + j + 24, _mm256_add_ps(_mm256_loadu_ps(w + j + 24), _mm256_mul_ps(a3, s)));
    }
    for (; j + 8 <= cols; j += 8) {
        __m256 a0 = _mm256_setzero_ps();
        for (int64_t k = 0; k < r; k++) a0 = _mm256_fmadd_ps(_mm256_set1_ps(b[k]), _mm256_loadu_ps(A + k * cols + j), a0);
        _mm256_storeu_ps(w + j, _mm256_add_ps(_mm256_loadu_ps(w + j), _mm256_mul_ps(a0, s)));
    }
    for (; j < cols; j++) {
        float acc = 0.0f;
        for (int64_t k = 0; k < r; k++) acc = _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(b[k]), _mm_set_ss(A[k * cols + j]), _mm_set_ss(acc)));
        float d = acc * scale;
        w[j] = w[j] + d;
    }
}

static int bk_lora_has_fma(void) {
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    return cached;
}
#endif

typedef struct {
    const float *B, *A;
    float *w;
    int64_t rows, r, cols;
    float scale;
    int portable;
} bk_lora_job;

enum { BK_LORA_ROWS_PER_JOB = 16 };

static void bk_lora_run(void *ctx, int64_t job) {
    const bk_lora_job *t = (const bk_lora_job *)ctx;
    int64_t lo = job * BK_LORA_ROWS_PER_JOB, hi = lo + BK_LORA_ROWS_PER_JOB;
    if (hi > t->rows) hi = t->rows;
    for (int64_t i = lo; i < hi; i++) {
#if BK_LORA_X86
        if (!t->portable) { bk_lora_row_avx2(t->B + i * t->r, t->A, t->w + i * t->cols, t->r, t->cols, t->scale); continue; }
#endif
        bk_lora_row_portable(t->B + i * t->r, t->A, t->w + i * t->cols, t->r, t->cols, t->scale);
    }
}

int bk_lora_add_using(int body, const float *B, const float *A, float *w, int64_t rows, int64_t r, int64_t cols,
                      float scale) {
    if (body != BK_BODY_AUTO && body != BK_BODY_PORTABLE && body != BK_BODY_AVX2) return 0;
    int portable = body == BK_BODY_PORTABLE;
#if BK_LORA_X86
    if (!bk_lora_has_fma()) {
        if (body == BK_BODY_AVX2) return 0;   /* asked for a body this CPU lacks: run nothing else */
        portable = 1;
    }
#else
    if (body == BK_BODY_AVX2) return 0;
    portable = 1;
#endif
    bk_lora_job t = {B, A, w, rows, r, cols, scale, portable};
    int64_t jobs = (rows + BK_LORA_ROWS_PER_JOB - 1) / BK_LORA_ROWS_PER_JOB;
    if (jobs <= 1 || rows * r * cols < (1 << 16)) {
        for (int64_t j = 0; j < jobs; j++) bk_lora_run(&t, j);
    } else {
        bk_pool_run(jobs, bk_lora_run, &t);
    }
    return 1;
}

void bk_lora_add(const float *B, const float *A, float *w, int64_t rows, int64_t r, int64_t cols, float scale) {
    (void)bk_lora_add_using(BK_BODY_AUTO, B, A, w, rows, r, cols, scale);
}
