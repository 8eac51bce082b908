#include "attn.h"

#include <math.h>
#if defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDHP
#define HWCAP_ASIMDHP (1ul << 10) /* FEAT_FP16's vector arithmetic */
#endif
#endif

#include "f16.h"
#include "attn_online.h"
#include "qkern.h"
#include "vexp.h"

void nb_attend_f16_ref(float *out, const float *q, const uint16_t *k, const uint16_t *v,
                       size_t stride, size_t n, size_t hd, float scale)
{
    online o = {-INFINITY, 0.0f};
    for (size_t i = 0; i < hd; i++)
        out[i] = 0.0f;
    for (size_t t = 0; t < n; t++) {
        const uint16_t *kt = k + t * stride, *vt = v + t * stride;
        float s = 0.0f;
        for (size_t i = 0; i < hd; i++)
            s += q[i] * nb_f16_to_f32(kt[i]);
        raise_max(&o, s * scale, out, hd);
        float w = weigh(&o, s * scale);
        for (size_t i = 0; i < hd; i++)
            out[i] += w * nb_f16_to_f32(vt[i]);
    }
    finish(&o, out, hd);
}

/* Up to NB_ATTEND_GROUP heads, position by position: each key and value
 * row is read once for all of them, and each head's operations are those
 * of nb_attend_f16_ref in the same order. */
static void group_ref(float *out, size_t ldo, const float *q, size_t ldq, size_t g,
                      const uint16_t *k, const uint16_t *v, size_t stride, size_t n, size_t hd,
                      float scale)
{
    online o[NB_ATTEND_GROUP];
    float s[NB_ATTEND_GROUP];
    start_heads(o, out, ldo, g, hd);
    for (size_t t = 0; t < n; t++) {
        const uint16_t *kt = k + t * stride, *vt = v + t * stride;
        for (size_t j = 0; j < g; j++)
            s[j] = 0.0f;
        for (size_t i = 0; i < hd; i++) {
            float kf = nb_f16_to_f32(kt[i]);
            for (size_t j = 0; j < g; j++)
                s[j] += q[j * ldq + i] * kf;
        }
        for (size_t j = 0; j < g; j++) {
            raise_max(&o[j], s[j] * scale, out + j * ldo, hd);
            s[j] = weigh(&o[j], s[j] * scale);
        }
        for (size_t i = 0; i < hd; i++) {
            float vf = nb_f16_to_f32(vt[i]);
            for (size_t j = 0; j < g; j++)
                out[j * ldo + i] += s[j] * vf;
        }
    }
    for (size_t j = 0; j < g; j++)
        finish(&o[j], out + j * ldo, hd);
}

void nb_attend_group_f16_ref(float *out, size_t ldo, const float *q, size_t ldq, size_t g,
                             const uint16_t *k, const uint16_t *v, size_t stride, size_t n,
                             size_t hd, float scale)
{
    for (size_t j = 0; j < g; j += NB_ATTEND_GROUP)
        group_ref(out + j * ldo, ldo, q + j * ldq, ldq,
                  g - j < NB_ATTEND_GROUP ? g - j : NB_ATTEND_GROUP, k, v, stride, n, hd, scale);
}

/* ---- f16h: the scores and the value sums in fp16 arithmetic ---- */

/* a * b + c to fp16 with one rounding. The product is exact in double (11
 * by 11 bits) but the sum may not be (it spans up to 81 bits, products
 * from 2^-48 to 2^32), and rounding it to double and then to fp16 could
 * round twice. So the sum is rounded to odd at float precision (24 bits,
 * more than the 11 + 2 that makes the later rounding to nearest of the
 * result the correct one): its error comes from TwoSum; a float that is
 * not exact and even moves one step towards the exact value. */
uint16_t nb_f16_fma_ref(uint16_t a, uint16_t b, uint16_t c)
{
    double p = (double)nb_f16_to_f32(a) * nb_f16_to_f32(b), x = nb_f16_to_f32(c);
    double s = p + x;
    if (!isfinite(s)) /* an infinite or NaN input: no rounding to keep */
        return nb_f32_to_f16((float)s);
    double bb = s - p, e = (p - (s - bb)) + (x - bb); /* p + x = s + e exactly */
    float f = (float)s;
    /* s - f is exact and, when not 0, larger than |e|: it has the sign of
     * p + x - f */
    double r = s - (double)f != 0.0 ? s - (double)f : e;
    if (r != 0.0 && !(nb_f32_to_bits(f) & 1))
        f = nextafterf(f, r > 0.0 ? INFINITY : -INFINITY);
    return nb_f32_to_f16(f);
}

/* The f16h score of position t (keys in blocks: attn.h): chains of
 * columns summed in fp16 (chains of 8 in pairs, the second added to the
 * first in fp16), each added to the score in fp32 (attn_f16h.c's dots). */
static float score_f16h_ref(const uint16_t *qh, const uint16_t *k, size_t stride, size_t t,
                            size_t hd)
{
    float s = -0.0f; /* -0 + x is x: the kernels store the first chain */
    size_t chain = nb_attend_f16h_chain(hd), pairs = chain == 8 ? hd / 16 * 16 : 0;
    for (size_t c0 = 0; c0 < hd; c0 += chain) {
        uint16_t acc = 0x8000; /* -0: the first product as it is */
        for (size_t c = c0; c < hd && c < c0 + chain; c++)
            acc = nb_f16_fma_ref(qh[c], k[nb_attend_key_at(t, c, stride)], acc);
        if (c0 < pairs && c0 / 8 % 2 == 0) { /* the first of a pair: the second added in fp16 */
            uint16_t acc2 = 0x8000;
            for (size_t c = c0 + 8; c < c0 + 16; c++)
                acc2 = nb_f16_fma_ref(qh[c], k[nb_attend_key_at(t, c, stride)], acc2);
            acc = nb_f16_fma_ref(acc2, 0x3c00, acc);
            c0 += 8;
        }
        s += nb_f16_to_f32(acc);
    }
    return s;
}

/* One head of the f16h variant in its NEON order (attn.h): superblocks of
 * 64 positions, the maximum raised once per superblock, the weights' sum
 * in 4 lanes (lanes L and L+4 of each 8 positions into lane L), the
 * values (in tiles: nb_attend_val_at) summed per column in fp16 over each
 * 8 rows, in pairs (weights, their sum and out scaled by
 * NB_ATTEND_F16H_VSCALE), then added to the fp32 output. */
void nb_attend_f16h_ref(float *out, const float *q, const uint16_t *k, const uint16_t *v,
                        size_t stride, size_t n, size_t hd, float scale)
{
    enum { SUPER = NB_ATTEND_F16H_SUPER };
    if (hd > NB_ATTEND_F16H_MAX_HD) {
        for (size_t i = 0; i < hd; i++)
            out[i] = NAN;
        return;
    }
    uint16_t qh[NB_ATTEND_F16H_MAX_HD], w[SUPER];
    for (size_t i = 0; i < hd; i++)
        qh[i] = nb_f32_to_f16(q[i] * scale);
    online o = {-INFINITY, 0.0f};
    float sum[4] = {0.0f, 0.0f, 0.0f, 0.0f}, s[SUPER];
    for (size_t i = 0; i < hd; i++)
        out[i] = 0.0f;
    for (size_t t = 0; t < n; t += SUPER) {
        size_t m = n - t < SUPER ? n - t : SUPER;
        for (size_t r = 0; r < SUPER; r++)
            s[r] = r < m ? score_f16h_ref(qh, k, stride, t + r, hd) : -INFINITY;
        weigh_super_ref(&o, sum, s, SUPER, NB_ATTEND_F16H_VSHIFT, out, hd);
        for (size_t r = 0; r < m; r++)
            w[r] = nb_f32_to_f16(s[r]);
        for (size_t i = 0; i < hd; i++)
            for (size_t r0 = 0; r0 < m; r0 += 8) { /* chunks of 8 rows */
                uint16_t acc = 0x8000; /* -0: the first product as it is */
                for (size_t r = r0; r < m && r < r0 + 8; r++)
                    acc = nb_f16_fma_ref(w[r], v[nb_attend_val_at(t + r, i, stride, hd)], acc);
                if (r0 % 16 == 0 && r0 + 16 <= m) { /* a pair: the second added in fp16 */
                    uint16_t acc2 = 0x8000;
                    for (size_t r = r0 + 8; r < r0 + 16; r++)
                        acc2 = nb_f16_fma_ref(w[r], v[nb_attend_val_at(t + r, i, stride, hd)], acc2);
                    acc = nb_f16_fma_ref(acc2, 0x3c00, acc);
                    r0 += 8;
                }
                out[i] += nb_f16_to_f32(acc);
            }
    }
    o.sum = (sum[0] + sum[1]) + (sum[2] + sum[3]);
    finish(&o, out, hd);
}

void nb_attend_group_f16h_ref(float *out, size_t ldo, const float *q, size_t ldq, size_t g,
                              const uint16_t *k, const uint16_t *v, size_t stride, size_t n,
                              size_t hd, float scale)
{
    for (size_t j = 0; j < g; j++)
        nb_attend_f16h_ref(out + j * ldo, q + j * ldq, k, v, stride, n, hd, scale);
}

#if defined(__aarch64__)
static inline float32x4_t load4(const uint16_t *p)
{
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p)));
}

/* Columns 8 at a time, then 4, then one by one (head_dim is even, not
 * always a multiple of 4). */
static float dot_f16(const float *q, const uint16_t *k, size_t hd)
{
    float32x4_t a = vdupq_n_f32(0.0f), b = vdupq_n_f32(0.0f);
    size_t i = 0;
    for (; i + 8 <= hd; i += 8) {
        a = vfmaq_f32(a, vld1q_f32(q + i), load4(k + i));
        b = vfmaq_f32(b, vld1q_f32(q + i + 4), load4(k + i + 4));
    }
    if (i + 4 <= hd) {
        a = vfmaq_f32(a, vld1q_f32(q + i), load4(k + i));
        i += 4;
    }
    float s = vaddvq_f32(vaddq_f32(a, b));
    for (; i < hd; i++)
        s += q[i] * nb_f16_to_f32(k[i]);
    return s;
}

enum { BLOCK = 8 }; /* positions whose weights are applied together: 2 vectors */

static inline float32x4_t low8(uint16x8_t h)
{
    return vcvt_f32_f16(vget_low_f16(vreinterpretq_f16_u16(h)));
}

static inline float32x4_t high8(uint16x8_t h)
{
    return vcvt_high_f32_f16(vreinterpretq_f16_u16(h));
}

static inline float32x4_t fma8(float32x4_t a, const uint16_t *k, float32x4_t q0,
                               float32x4_t q1)
{
    uint16x8_t h = vld1q_u16(k);
    return vfmaq_f32(vfmaq_f32(a, low8(h), q0), high8(h), q1);
}

/* Adds columns from .. hd-1 (the last, fewer than 8) to the scores of
 * rows positions. */
static void add_tails(const float *q, const uint16_t *k, size_t stride, size_t from, size_t hd,
                      float *s, int rows)
{
    for (int r = 0; r < rows; r++)
        for (size_t c = from; c < hd; c++)
            s[r] += q[c] * nb_f16_to_f32(k[(size_t)r * stride + c]);
}

/* The sums of a, b, c, d's lanes, pairwise (as vaddvq_f32 adds each). */
static inline float32x4_t sum4(float32x4_t a, float32x4_t b, float32x4_t c, float32x4_t d)
{
    return vpaddq_f32(vpaddq_f32(a, b), vpaddq_f32(c, d));
}

/* Scores of 4 positions at once: each load of q serves the 4 keys. (The
 * accumulators are named, not an array: GCC stores an array to memory on
 * every iteration.) */
static void dot4_f16(const float *q, const uint16_t *k, size_t stride, size_t hd, float *s)
{
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 8 <= hd; i += 8) {
        float32x4_t q0 = vld1q_f32(q + i), q1 = vld1q_f32(q + i + 4);
        a0 = fma8(a0, k + i, q0, q1);
        a1 = fma8(a1, k + stride + i, q0, q1);
        a2 = fma8(a2, k + 2 * stride + i, q0, q1);
        a3 = fma8(a3, k + 3 * stride + i, q0, q1);
    }
    vst1q_f32(s, sum4(a0, a1, a2, a3));
    add_tails(q, k, stride, i, hd, s, 4);
}

/* The same for the 8 positions of a whole block: a load of q serves 8
 * keys. Each score's bits are dot4_f16's. Not inlined: in the caller, the
 * exp's constants take the registers and accumulators spill to the stack. */
__attribute__((noinline)) static void dot8_f16(const float *q, const uint16_t *k, size_t stride,
                                               size_t hd, float *s)
{
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
    float32x4_t a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    const uint16_t *k4 = k + 4 * stride;
    size_t i = 0;
    for (; i + 8 <= hd; i += 8) {
        float32x4_t q0 = vld1q_f32(q + i), q1 = vld1q_f32(q + i + 4);
        a0 = fma8(a0, k + i, q0, q1);
        a1 = fma8(a1, k + stride + i, q0, q1);
        a2 = fma8(a2, k + 2 * stride + i, q0, q1);
        a3 = fma8(a3, k + 3 * stride + i, q0, q1);
        a4 = fma8(a4, k4 + i, q0, q1);
        a5 = fma8(a5, k4 + stride + i, q0, q1);
        a6 = fma8(a6, k4 + 2 * stride + i, q0, q1);
        a7 = fma8(a7, k4 + 3 * stride + i, q0, q1);
    }
    vst1q_f32(s, sum4(a0, a1, a2, a3));
    vst1q_f32(s + 4, sum4(a4, a5, a6, a7));
    add_tails(q, k, stride, i, hd, s, 8);
}

/* The value row's columns i .. i+7, weighted by lane L of w, into a, b. */
#define WEIGH8(a, b, v, w, L)                                                                  \
    do {                                                                                       \
        uint16x8_t h_ = vld1q_u16(v);                                                          \
        a = vfmaq_laneq_f32(a, low8(h_), w, L);                                                \
        b = vfmaq_laneq_f32(b, high8(h_), w, L);                                               \
    } while (0)

/* out += sum_j w[j] * v_j over the m positions of a block: each group of
 * output columns stays in registers while the block's values go past; a
 * whole block keeps its 8 weights in two registers. */
static void accumulate(float *out, const float *w, const uint16_t *v, size_t stride, size_t m,
                       size_t hd)
{
    size_t i = 0;
    if (m == BLOCK) {
        float32x4_t w0 = vld1q_f32(w), w1 = vld1q_f32(w + 4);
        for (; i + 8 <= hd; i += 8) {
            float32x4_t a = vld1q_f32(out + i), b = vld1q_f32(out + i + 4);
            WEIGH8(a, b, v + i, w0, 0);
            WEIGH8(a, b, v + stride + i, w0, 1);
            WEIGH8(a, b, v + 2 * stride + i, w0, 2);
            WEIGH8(a, b, v + 3 * stride + i, w0, 3);
            WEIGH8(a, b, v + 4 * stride + i, w1, 0);
            WEIGH8(a, b, v + 5 * stride + i, w1, 1);
            WEIGH8(a, b, v + 6 * stride + i, w1, 2);
            WEIGH8(a, b, v + 7 * stride + i, w1, 3);
            vst1q_f32(out + i, a);
            vst1q_f32(out + i + 4, b);
        }
    }
    for (; i + 8 <= hd; i += 8) {
        float32x4_t a = vld1q_f32(out + i), b = vld1q_f32(out + i + 4);
        for (size_t j = 0; j < m; j++) {
            uint16x8_t h = vld1q_u16(v + j * stride + i);
            a = vfmaq_n_f32(a, low8(h), w[j]);
            b = vfmaq_n_f32(b, high8(h), w[j]);
        }
        vst1q_f32(out + i, a);
        vst1q_f32(out + i + 4, b);
    }
    for (; i < hd; i++) /* fused, as the vectors: the same bits from every compiler */
        for (size_t j = 0; j < m; j++)
            out[i] = fmaf(w[j], nb_f16_to_f32(v[j * stride + i]), out[i]);
}

/* Unscaled scores of the m positions of a block into w; the lanes past m
 * get -inf, a weight of 0. */
static void score_block(float *w, const float *q, const uint16_t *k, size_t stride, size_t m,
                        size_t hd)
{
    size_t j = 0;
    if (m == BLOCK)
        return dot8_f16(q, k, stride, hd, w);
    for (; j + 4 <= m; j += 4)
        dot4_f16(q, k + j * stride, stride, hd, w + j);
    for (; j < m; j++)
        w[j] = dot_f16(q, k + j * stride, hd);
    for (; j < BLOCK; j++)
        w[j] = -INFINITY;
}

/* Scores of a block of positions: the running maximum moves (and out is
 * rescaled) at most once per block; the block's weights are 2 vectors of
 * exp, summed in 4 lanes (o.sum is their total only at the end). */
void nb_attend_f16_neon(float *out, const float *q, const uint16_t *k, const uint16_t *v,
                        size_t stride, size_t n, size_t hd, float scale)
{
    online o = {-INFINITY, 0.0f};
    float32x4_t sum = vdupq_n_f32(0.0f);
    float w[BLOCK];
    for (size_t i = 0; i < hd; i++)
        out[i] = 0.0f;
    for (size_t t = 0; t < n; t += BLOCK) {
        size_t m = n - t < BLOCK ? n - t : BLOCK;
        score_block(w, q, k + t * stride, stride, m, hd);
        float32x4_t s0 = vmulq_n_f32(vld1q_f32(w), scale);
        float32x4_t s1 = vmulq_n_f32(vld1q_f32(w + 4), scale);
        sum = vmulq_n_f32(sum, raise_max(&o, vmaxvq_f32(vmaxq_f32(s0, s1)), out, hd));
        float32x4_t top = vdupq_n_f32(o.max);
        float32x4_t w0 = nb_exp_neon(vsubq_f32(s0, top)), w1 = nb_exp_neon(vsubq_f32(s1, top));
        sum = vaddq_f32(sum, vaddq_f32(w0, w1));
        vst1q_f32(w, w0);
        vst1q_f32(w + 4, w1);
        accumulate(out, w, v + t * stride, stride, m, hd);
    }
    o.sum = vaddvq_f32(sum);
    finish(&o, out, hd);
}

/* ---- grouped ---- */

/* The kernels below keep several heads' values in registers, named (an
 * array stays in memory, stored on every iteration) and written once for
 * every head count by these lists: EACH##M(X, ...) is X(0, ...); ...
 * X(M - 1, ...). */
#define EACH1(X, ...) X(0, __VA_ARGS__)
#define EACH2(X, ...) EACH1(X, __VA_ARGS__); X(1, __VA_ARGS__)
#define EACH3(X, ...) EACH2(X, __VA_ARGS__); X(2, __VA_ARGS__)
#define EACH4(X, ...) EACH3(X, __VA_ARGS__); X(3, __VA_ARGS__)
#define EACH5(X, ...) EACH4(X, __VA_ARGS__); X(4, __VA_ARGS__)
#define EACH6(X, ...) EACH5(X, __VA_ARGS__); X(5, __VA_ARGS__)

/* GCC's first scheduling pass and its expansion of single-use values in
 * place (TER) cost these loops register copies every iteration (6 of 61
 * instructions in dots_4), as in the qkern files (qkern_neon.h). */
#if defined(__GNUC__) && !defined(__clang__)
#define GROUP_KERNEL __attribute__((noinline, optimize("no-schedule-insns", "no-tree-ter")))
#else
#define GROUP_KERNEL __attribute__((noinline))
#endif

/* Scores: head J's accumulators for rows 0-3 are aJ0 .. aJ3, its 8
 * columns of q xJ, yJ. A key row's 8 columns are loaded and converted
 * once (lo_, hi_) for the heads. */
#define K_ZERO(J, z) float32x4_t a##J##0 = z, a##J##1 = z, a##J##2 = z, a##J##3 = z
#define K_Q(J, i)                                                                              \
    float32x4_t x##J = vld1q_f32(qi + (i) * gq + J * 8), y##J = vld1q_f32(qi + (i) * gq + J * 8 + 4)
#define K_FMA(J, r) a##J##r = vfmaq_f32(vfmaq_f32(a##J##r, lo_, x##J), hi_, y##J)
#define K_ROW(M, r, p)                                                                         \
    do {                                                                                       \
        uint16x8_t h_ = vld1q_u16(p);                                                          \
        float32x4_t lo_ = low8(h_), hi_ = high8(h_);                                           \
        EACH##M(K_FMA, r);                                                                     \
    } while (0)
#define K_STORE(J, i)                                                                          \
    vst1q_f32(s + J * BLOCK, sum4(a##J##0, a##J##1, a##J##2, a##J##3));                        \
    add_tails(q + J * ldq, k, stride, i, hd, s + J * BLOCK, 4)

/* dots_M(s, q, ldq, qi, gq, k, stride, hd): the unscaled scores of 4
 * positions (rows of k) for M heads (q + j * ldq, and interleaved at qi:
 * see interleave()), head j's into s[j * BLOCK ..]: each score fma8's
 * chain, sum4's pairwise sum, add_tails' columns, as in dot4_f16 and
 * dot8_f16: the same bits. Each key row is loaded once for the M heads,
 * each 8 columns of q once for the 4 rows, a head's two vectors by one
 * paired load. 4 M accumulators, 2 M vectors of q and a row's 3: 27 of
 * the 32 registers for M = 4. */
#define DOTS(M)                                                                                \
    GROUP_KERNEL static void dots_##M(float *s, const float *q, size_t ldq, const float *qi,   \
                                      size_t gq, const uint16_t *k, size_t stride, size_t hd)  \
    {                                                                                          \
        float32x4_t z_ = vdupq_n_f32(0.0f);                                                    \
        EACH##M(K_ZERO, z_);                                                                   \
        size_t i = 0;                                                                          \
        for (; i + 8 <= hd; i += 8) {                                                          \
            EACH##M(K_Q, i);                                                                   \
            K_ROW(M, 0, k + i);                                                                \
            K_ROW(M, 1, k + stride + i);                                                       \
            K_ROW(M, 2, k + 2 * stride + i);                                                   \
            K_ROW(M, 3, k + 3 * stride + i);                                                   \
        }                                                                                      \
        EACH##M(K_STORE, i);                                                                   \
    }
DOTS(2)
DOTS(3)
DOTS(4)

/* The scores of a whole block for g heads: 4 heads at a time, then the 1
 * to 3 left, each call over 4 of the 8 rows. */
static void score_block_heads(float *s, const float *q, size_t ldq, const float *qi, size_t g,
                              const uint16_t *k, size_t stride, size_t hd)
{
    const uint16_t *k4 = k + 4 * stride;
    size_t j = 0;
    for (; j + 4 <= g; j += 4) {
        dots_4(s + j * BLOCK, q + j * ldq, ldq, qi + j * 8, g, k, stride, hd);
        dots_4(s + j * BLOCK + 4, q + j * ldq, ldq, qi + j * 8, g, k4, stride, hd);
    }
    const float *x = qi + j * 8;
    s += j * BLOCK, q += j * ldq;
    switch (g - j) {
    case 3:
        dots_3(s, q, ldq, x, g, k, stride, hd), dots_3(s + 4, q, ldq, x, g, k4, stride, hd);
        break;
    case 2:
        dots_2(s, q, ldq, x, g, k, stride, hd), dots_2(s + 4, q, ldq, x, g, k4, stride, hd);
        break;
    case 1: dot8_f16(q, k, stride, hd, s); break;
    }
}

/* The g heads' q (q + j * ldq) interleaved into qi, 8 columns at a time:
 * columns i .. i+7 of head j at qi + i * g + j * 8 (i a multiple of 8,
 * below hd / 8 * 8), so that consecutive heads' vectors are consecutive
 * in memory. */
static void interleave(float *qi, const float *q, size_t ldq, size_t g, size_t hd)
{
    for (size_t j = 0; j < g; j++)
        for (size_t i = 0; i + 8 <= hd; i += 8) {
            vst1q_f32(qi + i * g + j * 8, vld1q_f32(q + j * ldq + i));
            vst1q_f32(qi + i * g + j * 8 + 4, vld1q_f32(q + j * ldq + i + 4));
        }
}

/* An empty asm: the weights may have changed, as far as the compiler
 * knows, so it multiplies by their lanes (fmla by element) instead of
 * hoisting 8 broadcast copies per head out of the loop, which spill. */
#define OPAQUE_VEC(v) __asm__("" : "+w"(v))

/* Values: head J's weights for rows 0-3 in uJ, 4-7 in wJ, its 8 output
 * columns in cJ, dJ. A value row's 8 columns are loaded and converted
 * once (lo_, hi_) for the heads. */
#define V_W(J, w_)                                                                             \
    float32x4_t u##J = vld1q_f32(w_ + J * ldw), w##J = vld1q_f32(w_ + J * ldw + 4)
#define V_OPAQUE(J, _) OPAQUE_VEC(u##J); OPAQUE_VEC(w##J)
#define V_LOAD(J, i)                                                                           \
    float32x4_t c##J = vld1q_f32(out + J * ldo + (i)), d##J = vld1q_f32(out + J * ldo + (i) + 4)
#define V_FMA(J, W, L)                                                                         \
    c##J = vfmaq_laneq_f32(c##J, lo_, W##J, L), d##J = vfmaq_laneq_f32(d##J, hi_, W##J, L)
#define V_ROW(M, p, W, L)                                                                      \
    do {                                                                                       \
        uint16x8_t h_ = vld1q_u16(p);                                                          \
        float32x4_t lo_ = low8(h_), hi_ = high8(h_);                                           \
        EACH##M(V_FMA, W, L);                                                                  \
    } while (0)
#define V_STORE(J, i) vst1q_f32(out + J * ldo + (i), c##J), vst1q_f32(out + J * ldo + (i) + 4, d##J)

/* accumulate_M(out, ldo, w, ldw, v, stride, hd): accumulate() of a whole
 * block for M heads, head j's weights at w + j * ldw and its output at out +
 * j * ldo: each value row loaded and converted once for the M heads, each
 * head's sums in accumulate()'s order (rows in order, fused), the last
 * columns (fewer than 8) as there. 4 M registers and a row's 3: 27 for M
 * = 6. */
#define ACCUMULATE(M)                                                                          \
    GROUP_KERNEL static void accumulate_##M(float *out, size_t ldo, const float *w, size_t ldw, \
                                            const uint16_t *v, size_t stride, size_t hd)       \
    {                                                                                          \
        EACH##M(V_W, w);                                                                       \
        size_t i = 0;                                                                          \
        for (; i + 8 <= hd; i += 8) {                                                          \
            EACH##M(V_OPAQUE, 0);                                                              \
            EACH##M(V_LOAD, i);                                                                \
            V_ROW(M, v + i, u, 0);                                                             \
            V_ROW(M, v + stride + i, u, 1);                                                    \
            V_ROW(M, v + 2 * stride + i, u, 2);                                                \
            V_ROW(M, v + 3 * stride + i, u, 3);                                                \
            V_ROW(M, v + 4 * stride + i, w, 0);                                                \
            V_ROW(M, v + 5 * stride + i, w, 1);                                                \
            V_ROW(M, v + 6 * stride + i, w, 2);                                                \
            V_ROW(M, v + 7 * stride + i, w, 3);                                                \
            EACH##M(V_STORE, i);                                                               \
        }                                                                                      \
        for (size_t j = 0; j < M; j++)                                                         \
            for (size_t c = i; c < hd; c++)                                                    \
                for (size_t r = 0; r < BLOCK; r++)                                             \
                    out[j * ldo + c] = fmaf(w[j * ldw + r], nb_f16_to_f32(v[r * stride + c]),   \
                                            out[j * ldo + c]);                                 \
    }
ACCUMULATE(2)
ACCUMULATE(3)
ACCUMULATE(4)
ACCUMULATE(5)
ACCUMULATE(6)

/* A whole block's values for g heads, 6 at a time, then what is left. */
static void accumulate_heads(float *out, size_t ldo, size_t g, const float *w, size_t ldw,
                             const uint16_t *v, size_t stride, size_t hd)
{
    size_t j = 0;
    for (; j + 6 <= g; j += 6)
        accumulate_6(out + j * ldo, ldo, w + j * ldw, ldw, v, stride, hd);
    out += j * ldo, w += j * ldw;
    switch (g - j) {
    case 5: accumulate_5(out, ldo, w, ldw, v, stride, hd); break;
    case 4: accumulate_4(out, ldo, w, ldw, v, stride, hd); break;
    case 3: accumulate_3(out, ldo, w, ldw, v, stride, hd); break;
    case 2: accumulate_2(out, ldo, w, ldw, v, stride, hd); break;
    case 1: accumulate(out, w, v, stride, BLOCK, hd); break;
    }
}

/* out + j * ldo += sum_r w[j * ldw + r] * v_r over the m <= 8 value rows of
 * a block (v + r * stride), for g heads: per output column, the rows in
 * order, each product fused into the sum (fmaf). Each value row is loaded
 * and converted once for up to 6 heads. */
static void values_f32(float *out, size_t ldo, size_t g, const float *w, size_t ldw,
                       const uint16_t *v, size_t stride, size_t m, size_t hd)
{
    if (m == BLOCK)
        accumulate_heads(out, ldo, g, w, ldw, v, stride, hd);
    else
        for (size_t j = 0; j < g; j++)
            accumulate(out + j * ldo, w + j * ldw, v, stride, m, hd);
}

/* nb_attend_f16_neon for up to NB_ATTEND_GROUP heads: per block, the
 * scores of all heads (keys shared), each head's softmax step exactly as
 * there, the values of all heads (shared). The last block, shorter than
 * 8 positions, goes head by head through the single-head functions. qi:
 * room for the heads' interleaved q (g * hd floats). */
static void group_neon(float *out, size_t ldo, const float *q, size_t ldq, size_t g,
                       const uint16_t *k, const uint16_t *v, size_t stride, size_t n, size_t hd,
                       float scale, float *qi)
{
    interleave(qi, q, ldq, g, hd);
    online o[NB_ATTEND_GROUP];
    float32x4_t sum[NB_ATTEND_GROUP];
    float w[NB_ATTEND_GROUP * BLOCK];
    start_heads(o, out, ldo, g, hd);
    for (size_t j = 0; j < g; j++)
        sum[j] = vdupq_n_f32(0.0f);
    for (size_t t = 0; t < n; t += BLOCK) {
        size_t m = n - t < BLOCK ? n - t : BLOCK;
        if (m == BLOCK)
            score_block_heads(w, q, ldq, qi, g, k + t * stride, stride, hd);
        else
            for (size_t j = 0; j < g; j++)
                score_block(w + j * BLOCK, q + j * ldq, k + t * stride, stride, m, hd);
        for (size_t j = 0; j < g; j++) {
            float *wj = w + j * BLOCK;
            float32x4_t s0 = vmulq_n_f32(vld1q_f32(wj), scale);
            float32x4_t s1 = vmulq_n_f32(vld1q_f32(wj + 4), scale);
            sum[j] = vmulq_n_f32(sum[j], raise_max(&o[j], vmaxvq_f32(vmaxq_f32(s0, s1)),
                                                   out + j * ldo, hd));
            float32x4_t top = vdupq_n_f32(o[j].max);
            float32x4_t w0 = nb_exp_neon(vsubq_f32(s0, top)), w1 = nb_exp_neon(vsubq_f32(s1, top));
            sum[j] = vaddq_f32(sum[j], vaddq_f32(w0, w1));
            vst1q_f32(wj, w0);
            vst1q_f32(wj + 4, w1);
        }
        values_f32(out, ldo, g, w, BLOCK, v + t * stride, stride, m, hd);
    }
    for (size_t j = 0; j < g; j++) {
        o[j].sum = vaddvq_f32(sum[j]);
        finish(&o[j], out + j * ldo, hd);
    }
}

/* Room for the heads' interleaved q: 16 heads of 1024 columns (the
 * format's largest head), fewer heads at once when they are wider. */
enum { QI_SIZE = NB_ATTEND_GROUP * 1024 };

void nb_attend_group_f16_neon(float *out, size_t ldo, const float *q, size_t ldq, size_t g,
                              const uint16_t *k, const uint16_t *v, size_t stride, size_t n,
                              size_t hd, float scale)
{
    size_t at_once = QI_SIZE / hd < NB_ATTEND_GROUP ? QI_SIZE / hd : NB_ATTEND_GROUP;
    if (g == 1 || at_once < 2) { /* nothing to share: the single-head kernel, the same bits */
        for (size_t j = 0; j < g; j++)
            nb_attend_f16_neon(out + j * ldo, q + j * ldq, k, v, stride, n, hd, scale);
        return;
    }
    float qi[QI_SIZE];
    for (size_t j = 0; j < g; j += at_once)
        group_neon(out + j * ldo, ldo, q + j * ldq, ldq, g - j < at_once ? g - j : at_once, k,
                   v, stride, n, hd, scale, qi);
}

#endif

/* Slowest first; on x86-64 avx2 is last, dropped when the CPU lacks it. */
static const nb_attend_set attend_sets[] = {
    {"generic", nb_attend_f16_generic, nb_attend_group_f16_generic, 0, 0},
#if defined(__x86_64__)
    {"avx2", nb_attend_f16_avx2, nb_attend_group_f16_avx2, 0, 0},
#endif
#if defined(__aarch64__)
    {"neon", nb_attend_f16_neon, nb_attend_group_f16_neon, 0, 0},
#endif
};

const nb_attend_set *nb_attend_sets(size_t *count)
{
    *count = nb_runnable_variants(sizeof attend_sets / sizeof *attend_sets);
    return attend_sets;
}

#if defined(__aarch64__)
static const nb_attend_set f16h_set = {"f16h", nb_attend_f16h_neon, nb_attend_group_f16h_neon,
                                       NB_ATTEND_KBLOCK, NB_ATTEND_VBLOCK};
#endif

const nb_attend_set *nb_attend_f16h(void)
{
#if defined(__aarch64__)
    if (getauxval(AT_HWCAP) & HWCAP_ASIMDHP)
        return &f16h_set;
#endif
    return NULL;
}

const nb_attend_set *nb_attend_exact(void)
{
    size_t n;
    return &nb_attend_sets(&n)[n - 1];
}

const nb_attend_set *nb_attend_fast(void)
{
    const nb_attend_set *h = nb_attend_f16h(), *b = nb_attend_f32b();
    return h ? h : b ? b : nb_attend_exact();
}

nb_attend_fn *nb_attend_f16(void)
{
    return nb_attend_exact()->attend;
}

nb_attend_group_fn *nb_attend_group_f16(void)
{
    return nb_attend_exact()->group;
}

#if defined(__aarch64__)
/* FCVTN rounds as nb_f32_to_f16 does (to nearest even under the FPCR
 * every thread starts with; overflow to inf, subnormal halves, -0) but
 * keeps the top of a NaN's payload, which nb_f32_to_f16 drops: NaN
 * results (above inf once the sign is shifted out) keep only sign,
 * exponent and quiet bit. Found on the fp16 bits rather than by x == x,
 * which clang turns into two compares and an or. */
static inline uint16x8_t half8(float32x4_t lo, float32x4_t hi)
{
    uint16x8_t h = vreinterpretq_u16_f16(vcvt_high_f16_f32(vcvt_f16_f32(lo), hi));
    uint16x8_t nan = vcgtq_u16(vshlq_n_u16(h, 1), vdupq_n_u16(0xf800));
    return vbicq_u16(h, vshrq_n_u16(nan, 7)); /* 0x01ff of NaN lanes: the payload */
}

/* 8 values at a time, then 4, then one by one. */
void nb_f32_to_f16_row(uint16_t *out, const float *x, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        vst1q_u16(out + i, half8(vld1q_f32(x + i), vld1q_f32(x + i + 4)));
    if (i + 4 <= n) {
        float32x4_t v = vld1q_f32(x + i);
        vst1_u16(out + i, vget_low_u16(half8(v, v)));
        i += 4;
    }
    for (; i < n; i++)
        out[i] = nb_f32_to_f16(x[i]);
}
#else
void nb_f32_to_f16_row(uint16_t *out, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = nb_f32_to_f16(x[i]);
}
#endif
