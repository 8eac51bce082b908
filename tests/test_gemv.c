/* Every plain-weight GEMV this build has and the CPU runs
 * (neon/gemv_neon.h: portable C, AVX2 on x86-64, NEON on aarch64) against
 * nb_gemv_ref and a float64 sum, for f32, f16 and bf16
 * weights, on shapes with every tail (rows not a multiple of 4, columns
 * not a multiple of 8), row ranges that start anywhere, and rows outside
 * the range left untouched. Both differ from the exact sum by fp32
 * rounding only: |diff| <= 1e-5 * sum |w x| + 1e-30.
 * The prefill GEMM of each (and nb_gemm_ref) on 1 to 11 tokens
 * (token tile tails), rows past a cache block and the same shapes: each token's outputs equal the
 * same variant's GEMV of that token bit for bit, so the two GEMMs differ
 * by fp32 rounding only: |diff| <= 2e-5 * sum |w x| + 1e-30; outputs
 * outside the rows and the padding between tokens (ldy > rows) are left
 * untouched. */
#include <math.h>
#include <stdio.h>
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

static float *random_floats(size_t n, float scale)
{
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = scale * tu_randf(&rng);
    return v;
}

/* sum_c |W[r, c] x[c]| in float64. */
static double magnitude(const void *w, int wtype, const float *x, size_t r, size_t cols)
{
    double mag = 0;
    for (size_t c = 0; c < cols; c++)
        mag += fabs((double)value(w, wtype, r * cols + c) * x[c]);
    return mag;
}

/* Whether token t's GEMM outputs y + t * ldy equal the GEMV's of that token
 * bit for bit in [r0, r1), and hold SENTINEL elsewhere in [0, ldy). */
static int same_as_gemv(const float *y, size_t ldy, nb_gemv_fn *gemv, const void *w, int wtype,
                        const float *x, size_t r0, size_t r1, size_t cols)
{
    float *g = malloc(ldy * sizeof *g);
    gemv(g, w, wtype, x, r0, r1, cols);
    int bad = memcmp(y + r0, g + r0, (r1 - r0) * sizeof *g) != 0;
    for (size_t r = 0; r < ldy; r++)
        bad |= (r < r0 || r >= r1) && y[r] != SENTINEL;
    free(g);
    return !bad;
}

static void check_gemm(const nb_plain_set *k, int wtype, size_t rows, size_t cols, size_t ntok,
                       size_t r0, size_t r1)
{
    size_t ldy = rows + 3, n = ntok * ldy;
    float *v = random_floats(rows * cols, 1.0f), *x = random_floats(ntok * cols, 3.0f);
    float *y = malloc(n * sizeof *y), *yr = malloc(n * sizeof *yr);
    void *w = weights(wtype, v, rows * cols);
    for (size_t i = 0; i < n; i++)
        y[i] = yr[i] = SENTINEL;
    k->gemm(y, ldy, w, wtype, x, ntok, r0, r1, cols);
    nb_gemm_ref(yr, ldy, w, wtype, x, ntok, r0, r1, cols);
    int exact = 1, close = 1;
    for (size_t t = 0; t < ntok; t++) {
        const float *xt = x + t * cols, *yt = y + t * ldy, *yrt = yr + t * ldy;
        exact &= same_as_gemv(yt, ldy, k->gemv, w, wtype, xt, r0, r1, cols);
        exact &= same_as_gemv(yrt, ldy, nb_gemv_ref, w, wtype, xt, r0, r1, cols);
        for (size_t r = r0; r < r1; r++)
            close &= fabs((double)yt[r] - yrt[r]) <= 2e-5 * magnitude(w, wtype, xt, r, cols) + 1e-30;
    }
    CHECK(exact, "%s gemm != gemv: wtype %d, %zu x %zu, %zu tokens, rows [%zu, %zu)", k->name,
          wtype, rows, cols, ntok, r0, r1);
    CHECK(close, "%s gemm vs ref: wtype %d, %zu x %zu, %zu tokens, rows [%zu, %zu)", k->name,
          wtype, rows, cols, ntok, r0, r1);
    free(v), free(x), free(y), free(yr), free(w);
}

static void check(const nb_plain_set *k, int wtype, size_t rows, size_t cols, size_t r0,
                  size_t r1)
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
    k->gemv(y, w, wtype, x, r0, r1, cols);
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
    CHECK(!bad, "%s: wtype %d, %zu x %zu, rows [%zu, %zu)", k->name, wtype, rows, cols, r0, r1);
    free(v), free(x), free(y), free(yr), free(w);
}

int main(void)
{
    size_t shapes[][2] = {{1, 1}, {3, 7}, {4, 8}, {5, 9}, {9, 31}, {13, 64}, {8, 100}, {33, 2048},
                          {5, 17001}};
    size_t ntoks[] = {1, 2, 3, 4, 5, 7, 8, 11};
    size_t n_sets;
    const nb_plain_set *sets = nb_plain_sets(&n_sets);
    for (size_t k = 0; k < n_sets; k++) {
        printf("gemv: %s\n", sets[k].name);
        for (int wtype = NB_W_F32; wtype <= NB_W_BF16; wtype++)
            for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
                size_t rows = shapes[i][0], cols = shapes[i][1];
                check(&sets[k], wtype, rows, cols, 0, rows);
                check(&sets[k], wtype, rows, cols, rows / 3, rows - rows / 4);
                for (size_t j = 0; j < sizeof ntoks / sizeof *ntoks; j++) {
                    check_gemm(&sets[k], wtype, rows, cols, ntoks[j], 0, rows);
                    check_gemm(&sets[k], wtype, rows, cols, ntoks[j], rows / 3, rows - rows / 4);
                }
            }
    }
    CHECK(sets[n_sets - 1].gemv == nb_gemv_plain(), "the plain GEMV in use is not the last");
    return tu_finish("test_gemv");
}
