/* The plain-weight GEMV and GEMM of gemv_neon.c in portable C, for hosts
 * without NEON: the same tiles, and each output summed the same way
 * (column c in lane c mod 8, lanes added pairwise at the end), written as
 * fixed-length loops the compiler turns into SIMD code. meson builds it
 * once per set, as qkern_generic.c; the AVX2 build converts fp16 with F16C
 * and fuses its multiply-adds as NEON does. NB_GENERIC_SET names the set
 * this build defines. */
#include <math.h>
#include <string.h>

#include "f16.h"
#include "gemv.h"
#include "generic_vec.h"
#include "gemv_neon.h"
#include "qkern_generic.h"

enum {
    MAX_ROWS = 4,  /* the GEMV's tile: 4 rows share each x load */
    GEMM_ROWS = 2, /* the GEMM's: 2 rows x 4 tokens */
    GEMM_TOKS = 4,
    BLOCK_BYTES = 65536 /* rows of one GEMM block stay in cache meanwhile */
};

/* y[t * ldy + r + k] for nr rows from r and nt tokens of x (cols apart). */
INLINE void tile(float *y, size_t ldy, const void *w, const int wtype, const float *x, size_t r,
                 size_t cols, const int nr, const int nt)
{
    v8f acc[MAX_ROWS][GEMM_TOKS];
#pragma GCC unroll 4
    for (int k = 0; k < nr; k++)
#pragma GCC unroll 4
        for (int j = 0; j < nt; j++)
            acc[k][j] = (v8f){0.0f};
    size_t c = 0;
    for (; c + 8 <= cols; c += 8) {
        v8f xv[GEMM_TOKS];
#pragma GCC unroll 4
        for (int j = 0; j < nt; j++)
            xv[j] = load_f32(x + (size_t)j * cols + c);
#pragma GCC unroll 4
        for (int k = 0; k < nr; k++) {
            v8f wv = load8(w, wtype, (r + (size_t)k) * cols + c);
#pragma GCC unroll 4
            for (int j = 0; j < nt; j++)
                acc[k][j] = madd(wv, xv[j], acc[k][j]);
        }
    }
    for (int k = 0; k < nr; k++)
        for (int j = 0; j < nt; j++) {
            float s = lanes_sum(acc[k][j]);
            const float *xj = x + (size_t)j * cols;
            for (size_t t = c; t < cols; t++)
                s += nb_weight_at(w, wtype, (r + (size_t)k) * cols + t) * xj[t];
            y[(size_t)j * ldy + r + (size_t)k] = s;
        }
}

#define GEMV_NAME KERNEL(nb_gemv_)
#define GEMM_NAME KERNEL(nb_gemm_)
#include "gemv_tiles.h"
