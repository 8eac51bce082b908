/* The plain-weight GEMV this build runs (neon/gemv_neon.h: NEON on
 * aarch64) against nb_gemv_ref and a float64 sum, for f32, f16 and bf16
 * weights, on shapes with every tail (rows not a multiple of 4, columns
 * not a multiple of 8), row ranges that start anywhere, and rows outside
 * the range left untouched. Both differ from the exact sum by fp32
 * rounding only: |diff| <= 1e-5 * sum |w x| + 1e-30. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../neon/f16.h"
#include "../neon/gemv.h"
#include "../neon/gemv_neon.h"
#include "testutil.h"

#define SENTINEL (-777.0f)

static uint64_t rng = 5;

static void *weights(int wtype, const float *v, size_t n)
{
    if (wtype == NB_W_F32) {
        float *w = malloc(n * sizeof *w);
        memcpy(w, v, n * sizeof *w);
        return w;
    }
    uint16_t *h = malloc(n * sizeof *h);
    for (size_t i = 0; i < n; i++)
        h[i] = wtype == NB_W_F16 ? nb_f32_to_f16(v[i]) : nb_f32_to_bf16(v[i]);
    return h;
}

static float value(const void *w, int wtype, size_t i)
{
    if (wtype == NB_W_F16)
        return nb_f16_to_f32(((const uint16_t *)w)[i]);
    if (wtype == NB_W_BF16)
        return nb_bf16_to_f32(((const uint16_t *)w)[i]);
    return ((const float *)w)[i];
}

static void check(int wtype, size_t rows, size_t cols, size_t r0, size_t r1)
{
    float *v = malloc(rows * cols * sizeof *v), *x = malloc(cols * sizeof *x);
    float *y = malloc(rows * sizeof *y), *yr = malloc(rows * sizeof *yr);
    for (size_t i = 0; i < rows * cols; i++)
        v[i] = tu_randf(&rng);
    for (size_t c = 0; c < cols; c++)
        x[c] = 3.0f * tu_randf(&rng);
    void *w = weights(wtype, v, rows * cols);
    for (size_t r = 0; r < rows; r++)
        y[r] = SENTINEL;
    nb_gemv_plain()(y, w, wtype, x, r0, r1, cols);
    nb_gemv_ref(yr, w, wtype, x, r0, r1, cols);
    int bad = 0;
    for (size_t r = 0; r < rows && !bad; r++) {
        if (r < r0 || r >= r1) {
            bad = y[r] != SENTINEL;
            continue;
        }
        double sum = 0, mag = 0;
        for (size_t c = 0; c < cols; c++) {
            double t = (double)value(w, wtype, r * cols + c) * x[c];
            sum += t;
            mag += fabs(t);
        }
        double tol = 1e-5 * mag + 1e-30;
        bad = fabs(y[r] - sum) > tol || fabs(yr[r] - sum) > tol;
    }
    CHECK(!bad, "wtype %d, %zu x %zu, rows [%zu, %zu)", wtype, rows, cols, r0, r1);
    free(v), free(x), free(y), free(yr), free(w);
}

int main(void)
{
    size_t shapes[][2] = {{1, 1}, {3, 7}, {4, 8}, {5, 9}, {9, 31}, {13, 64}, {8, 100}, {33, 2048}};
    for (int wtype = NB_W_F32; wtype <= NB_W_BF16; wtype++)
        for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
            size_t rows = shapes[i][0], cols = shapes[i][1];
            check(wtype, rows, cols, 0, rows);
            check(wtype, rows, cols, rows / 3, rows - rows / 4);
        }
    return tu_finish("test_gemv");
}
