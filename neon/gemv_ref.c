#include "gemv.h"

#include <math.h>

#include "f16.h"

/* Row r of W times x, in column order: the one order of both references. */
static float dot(const void *w, int wtype, const float *x, size_t r, size_t cols)
{
    float acc = 0.0f;
    for (size_t c = 0; c < cols; c++)
        acc += nb_weight_at(w, wtype, r * cols + c) * x[c];
    return acc;
}

void nb_gemv_ref(float *y, const void *w, int wtype, const float *x, size_t r0, size_t r1,
                 size_t cols)
{
    for (size_t r = r0; r < r1; r++)
        y[r] = dot(w, wtype, x, r, cols);
}

void nb_gemm_ref(float *y, size_t ldy, const void *w, int wtype, const float *x, size_t ntok,
                 size_t r0, size_t r1, size_t cols)
{
    for (size_t r = r0; r < r1; r++)
        for (size_t t = 0; t < ntok; t++)
            y[t * ldy + r] = dot(w, wtype, x + t * cols, r, cols);
}

void nb_row_ref(float *out, const void *w, int wtype, size_t row, size_t cols)
{
    for (size_t c = 0; c < cols; c++)
        out[c] = nb_weight_at(w, wtype, row * cols + c);
}

void nb_rmsnorm_ref(float *out, const float *x, const void *g, int gtype, size_t n, float eps)
{
    float ss = 0.0f;
    for (size_t i = 0; i < n; i++)
        ss += x[i] * x[i];
    float inv = 1.0f / sqrtf(ss / (float)n + eps);
    for (size_t i = 0; i < n; i++)
        out[i] = x[i] * inv * nb_weight_at(g, gtype, i);
}
