/* The scores of the "f16h" attention (attn.h) in fp16 arithmetic, for
 * CPUs with FEAT_FP16 (asimdhp: Cortex-A76 and later, not the A72). Built
 * with -march=armv8.2-a+fp16 and called only where the CPU reports it
 * (attn.c), as the dotprod and i8mm kernels are.
 *
 * A score is q' . k with q' = q * scale rounded to fp16 once per call:
 * each 8 columns of a key row are one fused fp16 multiply-add (FMLA .8h)
 * into 8 fp16 lanes, without converting the key, where the fp32 kernels
 * convert it (2 instructions) and multiply-add twice. Lane L sums columns
 * L, L+8, ... (16 products for head_dim 128), then the lanes are widened
 * to fp32 and added as in attn.c (low half + high half, then pairwise);
 * the last head_dim % 8 columns are added in fp32 (the products of two
 * fp16 numbers are exact there). nb_attend_f16h_ref in attn.c does the
 * same operations in the same order in portable C. */
#include <arm_neon.h>
#include <math.h>

#include "attn.h"
#include "f16.h"

enum { BLOCK = 8 }; /* positions per block, as in attn.c */

/* The 8 fp16 lanes as 4 fp32 sums: lane L + lane L+4. */
static inline float32x4_t widen(float16x8_t a)
{
    return vaddq_f32(vcvt_f32_f16(vget_low_f16(a)), vcvt_high_f32_f16(a));
}

static inline float16x8_t load_h(const uint16_t *p)
{
    return vreinterpretq_f16_u16(vld1q_u16(p));
}

/* Adds columns from .. hd-1 (fewer than 8) to the scores of rows
 * positions, in fp32: each product is exact, so whether a compiler fuses
 * it with the add does not change the sum. */
static void add_tails(const uint16_t *qh, const uint16_t *k, size_t stride, size_t from,
                      size_t hd, float *s, int rows)
{
    for (int r = 0; r < rows; r++)
        for (size_t c = from; c < hd; c++)
            s[r] += nb_f16_to_f32(qh[c]) * nb_f16_to_f32(k[(size_t)r * stride + c]);
}

/* The sums of a, b, c, d's lanes, pairwise (as vaddvq_f32 adds each). */
static inline float32x4_t sum4(float32x4_t a, float32x4_t b, float32x4_t c, float32x4_t d)
{
    return vpaddq_f32(vpaddq_f32(a, b), vpaddq_f32(c, d));
}

/* One score: the lanes of the kernels below for one row and one head. */
static float row_score(const uint16_t *qh, const uint16_t *k, size_t hd)
{
    float16x8_t a = vreinterpretq_f16_u16(vdupq_n_u16(0));
    size_t i = 0;
    for (; i + 8 <= hd; i += 8)
        a = vfmaq_f16(a, load_h(qh + i), load_h(k + i));
    float s = vaddvq_f32(widen(a));
    add_tails(qh, k, 0, i, hd, &s, 1);
    return s;
}

#define EACH1(X, ...) X(0, __VA_ARGS__)
#define EACH2(X, ...) EACH1(X, __VA_ARGS__); X(1, __VA_ARGS__)
#define EACH3(X, ...) EACH2(X, __VA_ARGS__); X(2, __VA_ARGS__)
#define EACH4(X, ...) EACH3(X, __VA_ARGS__); X(3, __VA_ARGS__)
#define EACH5(X, ...) EACH4(X, __VA_ARGS__); X(4, __VA_ARGS__)
#define EACH6(X, ...) EACH5(X, __VA_ARGS__); X(5, __VA_ARGS__)

/* As attn.c's grouped kernels (the same GCC passes cost copies there). */
#if defined(__GNUC__) && !defined(__clang__)
#define GROUP_KERNEL __attribute__((noinline, optimize("no-schedule-insns", "no-tree-ter")))
#else
#define GROUP_KERNEL __attribute__((noinline))
#endif

/* Head J's accumulators for rows 0-3 are aJ0 .. aJ3, its 8 columns of q'
 * xJ; a key row's 8 columns (k_) serve the M heads unconverted. */
#define H_ZERO(J, z) float16x8_t a##J##0 = z, a##J##1 = z, a##J##2 = z, a##J##3 = z
#define H_Q(J, i) float16x8_t x##J = load_h(qh + J * ldq + (i))
#define H_FMA(J, r) a##J##r = vfmaq_f16(a##J##r, x##J, k_)
#define H_ROW(M, r, p)                                                                         \
    do {                                                                                       \
        float16x8_t k_ = load_h(p);                                                            \
        EACH##M(H_FMA, r);                                                                     \
    } while (0)
#define H_STORE(J, i)                                                                          \
    vst1q_f32(s + J * BLOCK,                                                                   \
              sum4(widen(a##J##0), widen(a##J##1), widen(a##J##2), widen(a##J##3)));           \
    if (i < hd) /* the call costs as much as the scores of a row when there is nothing */     \
        add_tails(qh + J * ldq, k, stride, i, hd, s + J * BLOCK, 4)

/* dotsh_M(s, qh, ldq, k, stride, hd): the scores of 4 positions (rows of
 * k) for M heads (qh + j * ldq), head j's into s[j * BLOCK ..], each as
 * row_score's. 4 M accumulators, M vectors of q' and a key row: 31 of the
 * 32 registers for M = 6, 7 + 4 * 7 instructions per 8 columns. */
#define DOTSH(M)                                                                               \
    GROUP_KERNEL static void dotsh_##M(float *s, const uint16_t *qh, size_t ldq,               \
                                       const uint16_t *k, size_t stride, size_t hd)            \
    {                                                                                          \
        float16x8_t z_ = vreinterpretq_f16_u16(vdupq_n_u16(0));                                \
        EACH##M(H_ZERO, z_);                                                                   \
        size_t i = 0;                                                                          \
        for (; i + 8 <= hd; i += 8) {                                                          \
            EACH##M(H_Q, i);                                                                   \
            H_ROW(M, 0, k + i);                                                                \
            H_ROW(M, 1, k + stride + i);                                                       \
            H_ROW(M, 2, k + 2 * stride + i);                                                   \
            H_ROW(M, 3, k + 3 * stride + i);                                                   \
        }                                                                                      \
        EACH##M(H_STORE, i);                                                                   \
    }
DOTSH(1)
DOTSH(2)
DOTSH(3)
DOTSH(4)
DOTSH(5)
DOTSH(6)

/* Rows r0 .. r0+3 of a block for g heads: 6 at a time, then the rest. */
static void rows4(float *s, const uint16_t *qh, size_t ldq, size_t g, const uint16_t *k,
                  size_t stride, size_t hd)
{
    size_t j = 0;
    for (; j + 6 <= g; j += 6)
        dotsh_6(s + j * BLOCK, qh + j * ldq, ldq, k, stride, hd);
    s += j * BLOCK, qh += j * ldq;
    switch (g - j) {
    case 5: dotsh_5(s, qh, ldq, k, stride, hd); break;
    case 4: dotsh_4(s, qh, ldq, k, stride, hd); break;
    case 3: dotsh_3(s, qh, ldq, k, stride, hd); break;
    case 2: dotsh_2(s, qh, ldq, k, stride, hd); break;
    case 1: dotsh_1(s, qh, ldq, k, stride, hd); break;
    }
}

void nb_attn_f16h_block(float *s, const uint16_t *qh, size_t ldq, size_t g, const uint16_t *k,
                        size_t stride, size_t m, size_t hd)
{
    if (m == BLOCK) { /* all but the last block */
        rows4(s, qh, ldq, g, k, stride, hd);
        rows4(s + 4, qh, ldq, g, k + 4 * stride, stride, hd);
        return;
    }
    size_t r = 0;
    for (; r + 4 <= m; r += 4)
        rows4(s + r, qh, ldq, g, k + r * stride, stride, hd);
    for (size_t j = 0; j < g; j++) {
        for (size_t i = r; i < m; i++)
            s[j * BLOCK + i] = row_score(qh + j * ldq, k + i * stride, hd);
        for (size_t i = m; i < BLOCK; i++)
            s[j * BLOCK + i] = -INFINITY;
    }
}

void nb_f16h_fma_neon(uint16_t *d, const uint16_t *a, const uint16_t *b, const uint16_t *c,
                      size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        vst1q_u16(d + i,
                  vreinterpretq_u16_f16(vfmaq_f16(load_h(c + i), load_h(a + i), load_h(b + i))));
    for (; i < n; i++) { /* through a vector of one: FMLA, not a library call */
        uint16_t x[8] = {a[i]}, y[8] = {b[i]}, z[8] = {c[i]};
        nb_f16h_fma_neon(x, x, y, z, 8);
        d[i] = x[0];
    }
}
