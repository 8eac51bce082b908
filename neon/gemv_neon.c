#include "gemv_neon.h"

#include "f16.h"
#include "gemv.h"
#include "qkern.h"

#if defined(__aarch64__)
#include "plain_neon.h"

#define INLINE static inline __attribute__((always_inline))

/* The GEMM's tile, rows x tokens: per 8 columns it loads 2 weight and
 * 2 x vectors per row and token, for 2 * GEMM_ROWS * GEMM_TOKS
 * multiply-adds into as many accumulators (16 of the 32 registers).
 * Instructions per weight per token under qemu (f16, 2048 x 2048, 8
 * tokens, before the unrolling below): 2 x 4 0.54, 4 x 2 0.57, 2 x 6 0.63,
 * 3 x 4 0.65, 2 x 8 0.65, 1 x 8 0.67 (the larger ones spill). */
#define GEMM_ROWS 2
#define GEMM_TOKS 4 /* a power of 2 up to 8: gemm_block's rest */
#define MAX_ROWS 4 /* the GEMV's tile: 4 rows share each x load */

/* Rows of one block of the GEMM: their weights stay in cache (L2 at
 * worst) while every token tile passes over them. */
#define BLOCK_BYTES 65536

/* One output: s (its 8 lanes summed) plus the tail columns in order. */
INLINE float tail(float s, const void *w, const int wtype, const float *x, size_t row, size_t c,
                  size_t cols)
{
    for (; c < cols; c++)
        s += nb_weight_at(w, wtype, row * cols + c) * x[c];
    return s;
}

/* y[t * ldy + r + k] for nr rows from r and nt tokens of x (cols apart).
 * Each output sums column c in lane c mod 8 whatever the tile, so the
 * shape only decides how often each weight and x vector is loaded. */
INLINE void tile(float *y, size_t ldy, const void *w, const int wtype, const float *x, size_t r,
                 size_t cols, const int nr, const int nt)
{
    float32x4_t acc[MAX_ROWS][GEMM_TOKS][2];
    for (int k = 0; k < nr; k++)
        for (int j = 0; j < nt; j++)
            acc[k][j][0] = acc[k][j][1] = vdupq_n_f32(0.0f);
    size_t c = 0;
    /* Four steps a pass halve the loop's own instructions (measured under
     * qemu: f16 GEMV 0.83 -> 0.77 per weight, GEMM 0.54 -> 0.52). */
#pragma GCC unroll 4
    for (; c + 8 <= cols; c += 8) {
        float32x4_t xv[GEMM_TOKS][2];
        for (int j = 0; j < nt; j++) {
            xv[j][0] = vld1q_f32(x + (size_t)j * cols + c);
            xv[j][1] = vld1q_f32(x + (size_t)j * cols + c + 4);
        }
        for (int k = 0; k < nr; k++) {
            float32x4_t lo, hi;
            nb_plain_load8(w, wtype, (r + (size_t)k) * cols + c, &lo, &hi);
            for (int j = 0; j < nt; j++) {
                acc[k][j][0] = vfmaq_f32(acc[k][j][0], lo, xv[j][0]);
                acc[k][j][1] = vfmaq_f32(acc[k][j][1], hi, xv[j][1]);
            }
        }
    }
    /* Lanes summed in a loop of its own, which unrolls whole: indexed in
     * the tail loop, acc would live on the stack, stored every step. */
    float s[MAX_ROWS][GEMM_TOKS];
    for (int k = 0; k < nr; k++)
        for (int j = 0; j < nt; j++)
            s[k][j] = vaddvq_f32(vaddq_f32(acc[k][j][0], acc[k][j][1]));
    for (int k = 0; k < nr; k++)
        for (int j = 0; j < nt; j++)
            y[(size_t)j * ldy + r + (size_t)k] =
                tail(s[k][j], w, wtype, x + (size_t)j * cols, r + (size_t)k, c, cols);
}

#define GEMV_NAME nb_gemv_neon
#define GEMM_NAME nb_gemm_neon
#include "gemv_tiles.h"

#endif

/* Slowest first; on x86-64 avx2 is last, dropped when the CPU lacks it. */
static const nb_plain_set plain_sets[] = {
    {"generic", nb_gemv_generic, nb_gemm_generic},
#if defined(__x86_64__)
    {"avx2", nb_gemv_avx2, nb_gemm_avx2},
#endif
#if defined(__aarch64__)
    {"neon", nb_gemv_neon, nb_gemm_neon},
#endif
};

const nb_plain_set *nb_plain_sets(size_t *count)
{
    *count = nb_runnable_variants(sizeof plain_sets / sizeof *plain_sets);
    return plain_sets;
}

nb_gemv_fn *nb_gemv_plain(void)
{
    size_t n;
    return nb_plain_sets(&n)[n - 1].gemv;
}

nb_gemm_fn *nb_gemm_plain(void)
{
    size_t n;
    return nb_plain_sets(&n)[n - 1].gemm;
}
