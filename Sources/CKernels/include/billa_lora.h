#ifndef BILLA_LORA_H
#define BILLA_LORA_H
#include <stdint.h>

/* LoRA merge rows (lora.c): for each of `rows` rows i and each column j,
 *   w[i][j] = w[i][j] + (scale * sum_k B[i][k] * A[k][j])
 * where the sum is accumulated in float32 with one fused multiply-add per k in increasing k from 0 (torch's CPU
 * float32 matmul through MKL gives these bits for LoRA's small inner dimension), the product by `scale` and the
 * addition each rounded to float32 separately, as torch's `W += (B @ A) * scaling` does. B is rows x r, A is
 * r x cols, w is rows x cols, all row-major. Rows are spread over the thread pool. */
void bk_lora_add(const float *B, const float *A, float *w, int64_t rows, int64_t r, int64_t cols, float scale);
void bk_lora_add_using(int portable, const float *B, const float *A, float *w, int64_t rows, int64_t r, int64_t cols,
                       float scale);

#endif
