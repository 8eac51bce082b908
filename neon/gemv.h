/* Matrix-vector products and vector helpers over plain (unpacked) weight
 * types. The functions here are the plain-C references; SIMD variants
 * take the same signatures and are tested against them. */
#ifndef NIBBLE_GEMV_H
#define NIBBLE_GEMV_H

#include <stddef.h>
#include <stdint.h>

#include "f16.h"

/* Weight element types understood by the kernels (same values as the
 * file format's dtypes, which the kernels must not know about). */
enum nb_wtype { NB_W_F32 = 0, NB_W_F16 = 1, NB_W_BF16 = 2 };

/* Element i of w as fp32. */
static inline float nb_weight_at(const void *w, int wtype, size_t i)
{
    if (wtype == NB_W_F16)
        return nb_f16_to_f32(((const uint16_t *)w)[i]);
    if (wtype == NB_W_BF16)
        return nb_bf16_to_f32(((const uint16_t *)w)[i]);
    return ((const float *)w)[i];
}

/* y[r] = sum_c W[r, c] * x[c] for rows r in [r0, r1); W is row-major with
 * cols columns, fp32 accumulation in column order. */
void nb_gemv_ref(float *y, const void *w, int wtype, const float *x, size_t r0, size_t r1,
                 size_t cols);

/* y[t * ldy + r] = sum_c W[r, c] * x[t * cols + c] for rows r in [r0, r1)
 * and tokens t in [0, ntok): nb_gemv_ref on each token, bit for bit, with
 * each weight row read for all tokens while it is in cache. */
void nb_gemm_ref(float *y, size_t ldy, const void *w, int wtype, const float *x, size_t ntok,
                 size_t r0, size_t r1, size_t cols);

/* out[c] = W[row, c] as fp32. */
void nb_row_ref(float *out, const void *w, int wtype, size_t row, size_t cols);

/* out = x / sqrt(mean(x^2) + eps) * g, g of type gtype. */
void nb_rmsnorm_ref(float *out, const float *x, const void *g, int gtype, size_t n, float eps);

#endif
