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
#include "gemv_neon.h"
#include "qkern_generic.h"

#if defined(__F16C__) || defined(__FMA__)
#include <immintrin.h>
#endif


#define INLINE static inline __attribute__((always_inline))

enum {
    MAX_ROWS = 4,  /* the GEMV's tile: 4 rows share each x load */
    GEMM_ROWS = 2, /* the GEMM's: 2 rows x 4 tokens */
    GEMM_TOKS = 4,
    BLOCK_BYTES = 65536 /* rows of one GEMM block stay in cache meanwhile */
};

/* 8 lanes: one AVX register, two SSE or NEON ones. Arrays of scalars
 * indexed in loops would live on the stack, stored at every step. Every
 * function taking or returning one is inlined, so GCC's note that the
 * ABI of such calls changes with AVX does not apply. */
typedef float v8f __attribute__((vector_size(32)));
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wunknown-warning-option"
#endif
#pragma GCC diagnostic ignored "-Wpsabi"

INLINE v8f load_f32(const float *p)
{
    v8f v;
    memcpy(&v, p, sizeof v);
    return v;
}

INLINE v8f madd(v8f a, v8f b, v8f c)
{
#if defined(__FMA__) && defined(__AVX__)
    return (v8f)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
#else
    return a * b + c;
#endif
}

/* Weights i .. i+7 as fp32. */
INLINE v8f load8(const void *w, const int wtype, size_t i)
{
    if (wtype == NB_W_F32)
        return load_f32((const float *)w + i);
    const uint16_t *h = (const uint16_t *)w + i;
#if defined(__F16C__)
    if (wtype == NB_W_F16)
        return (v8f)_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)h));
#endif
    float f[8];
    for (int l = 0; l < 8; l++)
        f[l] = wtype == NB_W_F16 ? nb_f16_to_f32(h[l]) : nb_bf16_to_f32(h[l]);
    return load_f32(f);
}

/* The 8 lanes summed as NEON's vaddvq_f32(vaddq_f32(lo, hi)) sums them. */
INLINE float lanes_sum(v8f a)
{
    return ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
}

/* y[t * ldy + r + k] for nr rows from r and nt tokens of x (cols apart). */
INLINE void tile(float *y, size_t ldy, const void *w, const int wtype, const float *x, size_t r,
                 size_t cols, const int nr, const int nt)
{
    v8f acc[MAX_ROWS][GEMM_TOKS];
#pragma GCC unroll 16
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
