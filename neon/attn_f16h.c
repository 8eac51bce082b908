/* The "f16h" attention (attn.h) in fp16 arithmetic, for CPUs with
 * FEAT_FP16 (asimdhp: Cortex-A76 and later, not the A72). Built with
 * -march=armv8.2-a+fp16 and called only where the CPU reports it
 * (attn.c), as the dotprod and i8mm kernels are.
 *
 * Scores: q' . k with q' = q * scale rounded to fp16 once per call: each
 * 8 columns of a key row are one fused fp16 multiply-add (FMLA .8h) into
 * 8 fp16 lanes, without converting the key, where the fp32 kernels
 * convert it (2 instructions) and multiply-add twice. Lane L sums columns
 * L, L+8, ... (16 products for head_dim 128), then the lanes are widened
 * to fp32 and added as in attn.c (low half + high half, then pairwise);
 * the last head_dim % 8 columns are added in fp32 (the products of two
 * fp16 numbers are exact there).
 *
 * Values: a superblock's weights, scaled and rounded to fp16, multiply
 * each value row in place (FMLA .8h by element, 8 columns per
 * instruction, no conversion), into fp16 partial sums that are added to
 * the fp32 output once per superblock. nb_attend_f16h_ref in attn.c does
 * the same operations in the same order in portable C. */
#include <arm_neon.h>
#include <math.h>

#include "attn.h"
#include "attn_online.h"
#include "f16.h"
#include "vexp.h"

enum { BLOCK = 8 }; /* positions per block of scores, as in attn.c */
enum { SUPER = NB_ATTEND_F16H_SUPER }; /* positions per softmax step and value partial */
#define V_SCALE NB_ATTEND_F16H_VSCALE
#define V_UNSCALE (1.0f / NB_ATTEND_F16H_VSCALE)

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
#define H_Q(J, i) float16x8_t x##J = load_h(qi + (i) * gq + J * 8)
#define H_FMA(J, r) a##J##r = vfmaq_f16(a##J##r, x##J, k_)
#define H_ROW(M, r, p)                                                                         \
    do {                                                                                       \
        float16x8_t k_ = load_h(p);                                                            \
        EACH##M(H_FMA, r);                                                                     \
    } while (0)
#define H_STORE(J, i)                                                                          \
    vst1q_f32(s + J * lds,                                                                     \
              sum4(widen(a##J##0), widen(a##J##1), widen(a##J##2), widen(a##J##3)));           \
    if (i < hd) /* the call costs as much as the scores of a row when there is nothing */     \
        add_tails(qh + J * hd, k, stride, i, hd, s + J * lds, 4)

/* dotsh_M(s, lds, qh, qi, gq, k, stride, hd): the scores of 4 positions
 * (rows of k) for M heads (q' at qh + j * hd, and interleaved at qi: see
 * interleave()), head j's into s[j * lds ..], each as row_score's. 4 M
 * accumulators, M vectors of q' and a key row: 31 of the 32 registers for
 * M = 6; per 8 columns, the M vectors of q' side by side (paired loads),
 * 4 key rows and 4 M multiply-adds. */
#define DOTSH(M)                                                                               \
    GROUP_KERNEL static void dotsh_##M(float *s, size_t lds, const uint16_t *qh,               \
                                       const uint16_t *qi, size_t gq, const uint16_t *k,       \
                                       size_t stride, size_t hd)                               \
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
static void rows4(float *s, size_t lds, const uint16_t *qh, const uint16_t *qi, size_t g,
                  const uint16_t *k, size_t stride, size_t hd)
{
    size_t j = 0;
    for (; j + 6 <= g; j += 6)
        dotsh_6(s + j * lds, lds, qh + j * hd, qi + j * 8, g, k, stride, hd);
    const uint16_t *h = qh + j * hd, *x = qi + j * 8;
    s += j * lds;
    switch (g - j) {
    case 5: dotsh_5(s, lds, h, x, g, k, stride, hd); break;
    case 4: dotsh_4(s, lds, h, x, g, k, stride, hd); break;
    case 3: dotsh_3(s, lds, h, x, g, k, stride, hd); break;
    case 2: dotsh_2(s, lds, h, x, g, k, stride, hd); break;
    case 1: dotsh_1(s, lds, h, x, g, k, stride, hd); break;
    }
}

/* The scores of the m <= 8 positions of a block (rows of k) for g heads,
 * head j's into s[j * lds ..], -inf past m. */
static void score_block(float *s, size_t lds, const uint16_t *qh, const uint16_t *qi, size_t g,
                        const uint16_t *k, size_t stride, size_t m, size_t hd)
{
    if (m == BLOCK) { /* all but the last block */
        rows4(s, lds, qh, qi, g, k, stride, hd);
        rows4(s + 4, lds, qh, qi, g, k + 4 * stride, stride, hd);
        return;
    }
    size_t r = 0;
    for (; r + 4 <= m; r += 4)
        rows4(s + r, lds, qh, qi, g, k + r * stride, stride, hd);
    for (size_t j = 0; j < g; j++) {
        for (size_t i = r; i < m; i++)
            s[j * lds + i] = row_score(qh + j * hd, k + i * stride, hd);
        for (size_t i = m; i < BLOCK; i++)
            s[j * lds + i] = -INFINITY;
    }
}

/* ---- the values: fp16 partial sums over a superblock ---- */

/* vals_M(out, ldo, w, v, stride, m, h8): for M heads, output columns (head
 * j's at out + j * ldo) += the m <= SUPER rows of v weighted by w[j *
 * SUPER + r], a chunk of 8 rows at a time: the chunk's products summed in
 * fp16 (its first row's product, then each next row's fused into its lane
 * by FMLA .8h by element, in row order), times 1 / V_SCALE fused into
 * the fp32 sums, which stay in registers over the superblock. The last m
 * % 8 rows are one more chunk, one weight at a time (the same
 * operations). 2 M fp32 sums, M fp16 sums, M weight vectors and a row:
 * 25 registers for M = 6; columns [0, h8) 8 at a time. */
#define P_SUMS(J, _)                                                                           \
    float32x4_t c##J = vld1q_f32(out + J * ldo), d##J = vld1q_f32(out + J * ldo + 4);          \
    float16x8_t a##J
/* a = x * lane L of w (FMUL) and a += x * lane L of w (FMLA), by element.
 * Spelled in asm: GCC 12 turns vfmaq_laneq_f16 into a DUP and a vector
 * FMLA, or, seeing the weights' load, into 8 scalar loads. The element
 * form takes its vector from v0-v15 ("x"). */
#define FMUL_LANE(a, x, w, L) __asm__("fmul %0.8h, %1.8h, %2.h[" #L "]" : "=w"(a) : "w"(x), "x"(w))
#define FMLA_LANE(a, x, w, L) __asm__("fmla %0.8h, %1.8h, %2.h[" #L "]" : "+w"(a) : "w"(x), "x"(w))
#define P_W(J, r) float16x8_t w##J = load_h(w + J * SUPER + (r))
#define P_MUL(J, L) FMUL_LANE(a##J, x_, w##J, L)
#define P_FMA(J, L) FMLA_LANE(a##J, x_, w##J, L)
#define P_ROW(M, OP, r, L)                                                                     \
    do {                                                                                       \
        float16x8_t x_ = load_h(v + ((r) + L) * stride);                                       \
        EACH##M(OP, L);                                                                        \
    } while (0)
#define P_W1(J, r) vreinterpretq_f16_u16(vld1q_dup_u16(w + J * SUPER + (r)))
#define P_ONE(J, r) a##J = vfmaq_f16(a##J, x_, P_W1(J, r))
#define P_FIRST(J, r) a##J = vmulq_f16(x_, P_W1(J, r))
#define P_WIDEN(J, _)                                                                          \
    c##J = vfmaq_n_f32(c##J, vcvt_f32_f16(vget_low_f16(a##J)), V_UNSCALE);                     \
    d##J = vfmaq_n_f32(d##J, vcvt_high_f32_f16(a##J), V_UNSCALE)
#define P_STORE(J, _) vst1q_f32(out + J * ldo, c##J), vst1q_f32(out + J * ldo + 4, d##J)
#define VALS(M)                                                                                \
    GROUP_KERNEL static void vals_##M(float *out, size_t ldo, const uint16_t *w,               \
                                      const uint16_t *v, size_t stride, size_t m, size_t h8)   \
    {                                                                                          \
        for (size_t i = 0; i < h8; i += 8, out += 8, v += 8) {                                 \
            EACH##M(P_SUMS, 0);                                                                \
            size_t r = 0;                                                                      \
            for (; r + 8 <= m; r += 8) {                                                       \
                EACH##M(P_W, r);                                                               \
                P_ROW(M, P_MUL, r, 0); P_ROW(M, P_FMA, r, 1);                                  \
                P_ROW(M, P_FMA, r, 2); P_ROW(M, P_FMA, r, 3);                                  \
                P_ROW(M, P_FMA, r, 4); P_ROW(M, P_FMA, r, 5);                                  \
                P_ROW(M, P_FMA, r, 6); P_ROW(M, P_FMA, r, 7);                                  \
                EACH##M(P_WIDEN, 0);                                                           \
            }                                                                                  \
            if (r < m) {                                                                       \
                float16x8_t x_ = load_h(v + r * stride);                                       \
                EACH##M(P_FIRST, r);                                                           \
                for (r++; r < m; r++) {                                                        \
                    x_ = load_h(v + r * stride);                                               \
                    EACH##M(P_ONE, r);                                                         \
                }                                                                              \
                EACH##M(P_WIDEN, 0);                                                           \
            }                                                                                  \
            EACH##M(P_STORE, 0);                                                               \
        }                                                                                      \
    }
VALS(1)
VALS(2)
VALS(3)
VALS(4)
VALS(5)
VALS(6)

/* Columns [0, h8) of up to 6 heads, h8 a multiple of 8. */
static void vals_heads(float *out, size_t ldo, size_t g, const uint16_t *w, const uint16_t *v,
                       size_t stride, size_t m, size_t h8)
{
    switch (g) {
    case 6: vals_6(out, ldo, w, v, stride, m, h8); break;
    case 5: vals_5(out, ldo, w, v, stride, m, h8); break;
    case 4: vals_4(out, ldo, w, v, stride, m, h8); break;
    case 3: vals_3(out, ldo, w, v, stride, m, h8); break;
    case 2: vals_2(out, ldo, w, v, stride, m, h8); break;
    case 1: vals_1(out, ldo, w, v, stride, m, h8); break;
    }
}

/* out += the superblock's weighted values for g heads: 8 columns at a
 * time; the last hd % 8 columns through copies padded to 8 (lanes are
 * independent, so the kept lanes get the same operations). */
static void values(float *out, size_t ldo, size_t g, const uint16_t *w, const uint16_t *v,
                   size_t stride, size_t m, size_t hd)
{
    size_t h8 = hd / 8 * 8;
    for (size_t j = 0; j < g; j += 6) {
        size_t gj = g - j < 6 ? g - j : 6;
        vals_heads(out + j * ldo, ldo, gj, w + j * SUPER, v, stride, m, h8);
        if (h8 == hd)
            continue;
        uint16_t vt[SUPER * 8] = {0};
        float ot[6 * 8] = {0};
        for (size_t r = 0; r < m; r++)
            for (size_t c = h8; c < hd; c++)
                vt[r * 8 + c - h8] = v[r * stride + c];
        for (size_t h = 0; h < gj; h++)
            for (size_t c = h8; c < hd; c++)
                ot[h * 8 + c - h8] = out[(j + h) * ldo + c];
        vals_heads(ot, 8, gj, w + j * SUPER, vt, 8, m, 8);
        for (size_t h = 0; h < gj; h++)
            for (size_t c = h8; c < hd; c++)
                out[(j + h) * ldo + c] = ot[h * 8 + c - h8];
    }
}

/* ---- the softmax of a superblock ---- */

/* Head o's weights for a superblock's scores s (SUPER of them, -inf past
 * the last row): the maximum raised once (out and the 4 lanes of sums
 * rescaled), exp in 4 lanes, summed a block at a time (lanes L and L+4 of
 * each block into lane L), stored as fp16(w * V_SCALE) into w16. */
static void weigh_super(online *o, float32x4_t *sum, const float *s, uint16_t *w16, float *out,
                        size_t hd)
{
    float32x4_t x[SUPER / 4], top = vld1q_f32(s);
    for (int b = 0; b < SUPER / 4; b++)
        x[b] = vld1q_f32(s + 4 * b), top = vmaxq_f32(top, x[b]);
    *sum = vmulq_n_f32(*sum, raise_max(o, vmaxvq_f32(top), out, hd));
    top = vdupq_n_f32(o->max);
    for (int b = 0; b < SUPER / 4; b += 2) {
        float32x4_t w0 = nb_exp_neon(vsubq_f32(x[b], top));
        float32x4_t w1 = nb_exp_neon(vsubq_f32(x[b + 1], top));
        *sum = vaddq_f32(*sum, vaddq_f32(w0, w1));
        float16x8_t h = vcombine_f16(vcvt_f16_f32(vmulq_n_f32(w0, V_SCALE)),
                                     vcvt_f16_f32(vmulq_n_f32(w1, V_SCALE)));
        vst1q_u16(w16 + 4 * b, vreinterpretq_u16_f16(h));
    }
}

/* ---- the whole attention ---- */

/* g <= NB_ATTEND_GROUP heads (q' at qh + j * hd and interleaved at qi)
 * over n positions, a superblock at a time: the scores of its blocks for
 * all heads (key rows shared), each head's softmax step, the values of
 * all heads (value rows shared). */
static void group_f16h(float *out, size_t ldo, const uint16_t *qh, const uint16_t *qi, size_t g,
                       const uint16_t *k, const uint16_t *v, size_t stride, size_t n, size_t hd)
{
    online o[NB_ATTEND_GROUP];
    float32x4_t sum[NB_ATTEND_GROUP];
    float s[NB_ATTEND_GROUP * SUPER];
    uint16_t w[NB_ATTEND_GROUP * SUPER];
    start_heads(o, out, ldo, g, hd);
    for (size_t j = 0; j < g; j++)
        sum[j] = vdupq_n_f32(0.0f);
    for (size_t t = 0; t < n; t += SUPER) {
        size_t m = n - t < SUPER ? n - t : SUPER, b = 0;
        for (; b < m; b += BLOCK)
            score_block(s + b, SUPER, qh, qi, g, k + (t + b) * stride, stride,
                        m - b < BLOCK ? m - b : BLOCK, hd);
        for (size_t j = 0; j < g; j++) {
            for (size_t r = b; r < SUPER; r++)
                s[j * SUPER + r] = -INFINITY;
            weigh_super(&o[j], &sum[j], s + j * SUPER, w + j * SUPER, out + j * ldo, hd);
        }
        values(out, ldo, g, w, v + t * stride, stride, m, hd);
    }
    for (size_t j = 0; j < g; j++) {
        o[j].sum = vaddvq_f32(sum[j]);
        finish(&o[j], out + j * ldo, hd);
    }
}

/* q' of the f16h variant: q * scale in fp32, rounded to fp16. */
static void scale_to_f16(uint16_t *qh, const float *q, size_t hd, float scale)
{
    size_t i = 0;
    float32x4_t sc = vdupq_n_f32(scale);
    for (; i + 4 <= hd; i += 4)
        vst1_u16(qh + i, vreinterpret_u16_f16(vcvt_f16_f32(vmulq_f32(vld1q_f32(q + i), sc))));
    for (; i < hd; i++)
        qh[i] = nb_f32_to_f16(q[i] * scale);
}

/* The g heads' q' (qh + j * hd) interleaved into qi, 8 columns at a time:
 * columns i .. i+7 of head j at qi + i * g + j * 8 (i a multiple of 8,
 * below hd / 8 * 8), so that the vectors of consecutive heads are
 * consecutive in memory. */
static void interleave(uint16_t *qi, const uint16_t *qh, size_t g, size_t hd)
{
    for (size_t j = 0; j < g; j++)
        for (size_t i = 0; i + 8 <= hd; i += 8)
            vst1q_u16(qi + i * g + j * 8, vld1q_u16(qh + j * hd + i));
}

/* The heads' q'; 16 heads of 1024 columns at once, fewer when the heads
 * are wider (a head's bits do not depend on it). */
enum { QH_SIZE = NB_ATTEND_GROUP * 1024 };

void nb_attend_group_f16h_neon(float *out, size_t ldo, const float *q, size_t ldq, size_t g,
                               const uint16_t *k, const uint16_t *v, size_t stride, size_t n,
                               size_t hd, float scale)
{
    uint16_t qh[QH_SIZE], qi[QH_SIZE];
    if (hd > NB_ATTEND_F16H_MAX_HD) {
        for (size_t j = 0; j < g; j++)
            for (size_t i = 0; i < hd; i++)
                out[j * ldo + i] = NAN;
        return;
    }
    size_t at_once = QH_SIZE / hd < NB_ATTEND_GROUP ? QH_SIZE / hd : NB_ATTEND_GROUP;
    for (size_t j = 0; j < g; j += at_once) {
        size_t m = g - j < at_once ? g - j : at_once;
        for (size_t h = 0; h < m; h++)
            scale_to_f16(qh + h * hd, q + (j + h) * ldq, hd, scale);
        interleave(qi, qh, m, hd);
        group_f16h(out + j * ldo, ldo, qh, qi, m, k, v, stride, n, hd);
    }
}

void nb_attend_f16h_neon(float *out, const float *q, const uint16_t *k, const uint16_t *v,
                         size_t stride, size_t n, size_t hd, float scale)
{
    nb_attend_group_f16h_neon(out, hd, q, hd, 1, k, v, stride, n, hd, scale);
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
