#include "attn.h"

#include <math.h>

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
    for (; i < hd; i++)
        for (size_t j = 0; j < m; j++)
            out[i] += w[j] * nb_f16_to_f32(v[j * stride + i]);
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

#endif

/* Slowest first; on x86-64 avx2 is last, dropped when the CPU lacks it. */
static const nb_attend_set attend_sets[] = {
    {"generic", nb_attend_f16_generic},
#if defined(__x86_64__)
    {"avx2", nb_attend_f16_avx2},
#endif
#if defined(__aarch64__)
    {"neon", nb_attend_f16_neon},
#endif
};

const nb_attend_set *nb_attend_sets(size_t *count)
{
    *count = nb_runnable_variants(sizeof attend_sets / sizeof *attend_sets);
    return attend_sets;
}

nb_attend_fn *nb_attend_f16(void)
{
    size_t n;
    return nb_attend_sets(&n)[n - 1].attend;
}

void nb_f32_to_f16_row(uint16_t *out, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = nb_f32_to_f16(x[i]);
}
