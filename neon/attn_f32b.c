/* The "f32b" attention (attn.h): fp32 arithmetic over an fp16 cache whose
 * keys are in blocks of 8 positions stored column by column, for the
 * int8-activation path of CPUs without fp16 arithmetic (the A72).
 *
 * Why blocks: with keys in rows, a score is a dot product across lanes,
 * so each key row is converted (2 instructions per 8 columns) and then
 * multiplied for each head, and each score's lanes are summed at the end.
 * In blocks, a column of a block holds 8 positions: it is converted once,
 * then one fused multiply-add by an element of q (FMLA .4s by element)
 * per half advances 8 scores of a head, and nothing is summed across
 * lanes. The values stay in rows: each row is converted once for the heads,
 * and the sums stay in registers over a superblock.
 *
 * The plain-C reference nb_attend_f32b_ref does the same operations in
 * the same order, so the two agree bit for bit. */
#include <math.h>

#include "attn.h"
#include "attn_online.h"
#include "f16.h"
#include "vexp.h"

enum { BLOCK = NB_ATTEND_KBLOCK, SUPER = NB_ATTEND_F16H_SUPER };

/* ---- the reference ---- */

/* The score of position t: one chain of fused multiply-adds over the
 * columns in order, of q' = q * scale (each product rounded to fp32, as
 * the kernels scale q once per call) and the key. */
static float score_ref(const float *q, float scale, const uint16_t *k, size_t stride, size_t t,
                       size_t hd)
{
    float s = 0.0f;
    for (size_t c = 0; c < hd; c++)
        s = fmaf(q[c] * scale, nb_f16_to_f32(k[nb_attend_key_at(t, c, stride)]), s);
    return s;
}

/* One head, a superblock at a time: the scores, the maximum
 * raised once, the weights' sum in 4 lanes (lanes L and L+4 of each 8
 * positions into lane L), the values row by row, each product fused. */
void nb_attend_f32b_ref(float *out, const float *q, const uint16_t *k, const uint16_t *v,
                        size_t stride, size_t n, size_t hd, float scale)
{
    online o = {-INFINITY, 0.0f};
    float sum[4] = {0.0f, 0.0f, 0.0f, 0.0f}, s[SUPER];
    for (size_t i = 0; i < hd; i++)
        out[i] = 0.0f;
    for (size_t t = 0; t < n; t += SUPER) {
        size_t m = n - t < SUPER ? n - t : SUPER;
        for (size_t r = 0; r < SUPER; r++)
            s[r] = r < m ? score_ref(q, scale, k, stride, t + r, hd) : -INFINITY;
        weigh_super_ref(&o, sum, s, SUPER, 0, out, hd);
        for (size_t r = 0; r < m; r++)
            for (size_t i = 0; i < hd; i++)
                out[i] = fmaf(s[r], nb_f16_to_f32(v[(t + r) * stride + i]), out[i]);
    }
    o.sum = (sum[0] + sum[1]) + (sum[2] + sum[3]);
    finish(&o, out, hd);
}

void nb_attend_group_f32b_ref(float *out, size_t ldo, const float *q, size_t ldq, size_t g,
                              const uint16_t *k, const uint16_t *v, size_t stride, size_t n,
                              size_t hd, float scale)
{
    for (size_t j = 0; j < g; j++)
        nb_attend_f32b_ref(out + j * ldo, q + j * ldq, k, v, stride, n, hd, scale);
}

#if defined(__aarch64__)
#include <arm_neon.h>

#define EACH1(X, ...) X(0, __VA_ARGS__)
#define EACH2(X, ...) EACH1(X, __VA_ARGS__); X(1, __VA_ARGS__)
#define EACH3(X, ...) EACH2(X, __VA_ARGS__); X(2, __VA_ARGS__)
#define EACH4(X, ...) EACH3(X, __VA_ARGS__); X(3, __VA_ARGS__)
#define EACH5(X, ...) EACH4(X, __VA_ARGS__); X(4, __VA_ARGS__)
#define EACH6(X, ...) EACH5(X, __VA_ARGS__); X(5, __VA_ARGS__)
#define EACH7(X, ...) EACH6(X, __VA_ARGS__); X(6, __VA_ARGS__)
#define EACH8(X, ...) EACH7(X, __VA_ARGS__); X(7, __VA_ARGS__)

/* As attn.c's grouped kernels (the same GCC passes cost copies there). */
#if defined(__GNUC__) && !defined(__clang__)
#define GROUP_KERNEL __attribute__((noinline, optimize("no-schedule-insns", "no-tree-ter")))
#else
#define GROUP_KERNEL __attribute__((noinline))
#endif

/* a += x * lane L of w, by element. In asm: GCC may turn the intrinsic
 * into a broadcast and a vector FMLA when it sees w's load. */
#define FMLA_LANE(a, x, w, L) __asm__("fmla %0.4s, %1.4s, %2.s[" #L "]" : "+w"(a) : "w"(x), "w"(w))

/* Head J's scores are lJ (positions 0-3) and hJ (4-7), its 4 columns of
 * q xJ; lo_, hi_ are one column of the block, converted. */
#define B_SUMS(J, z) float32x4_t l##J = z, h##J = z
#define B_Q(J, _) float32x4_t x##J = vld1q_f32(qi + J * 4)
#define B_FMA(J, L) FMLA_LANE(l##J, lo_, x##J, L); FMLA_LANE(h##J, hi_, x##J, L)
/* Columns c and c + 1 of the block at kp, loaded side by side (one LDP),
 * into the sums of FMA (B_FMA: the first block's, B2_FMA: the second's). */
#define B_COL2X(M, kp, FMA, c, L, L1)                                                          \
    do {                                                                                       \
        uint16x8_t k0_ = vld1q_u16(kp + (c) * 8), k1_ = vld1q_u16(kp + (c) * 8 + 8);           \
        float16x8_t h_ = vreinterpretq_f16_u16(k0_);                                           \
        float32x4_t lo_ = vcvt_f32_f16(vget_low_f16(h_)), hi_ = vcvt_high_f32_f16(h_);         \
        EACH##M(FMA, L);                                                                       \
        h_ = vreinterpretq_f16_u16(k1_);                                                       \
        lo_ = vcvt_f32_f16(vget_low_f16(h_)), hi_ = vcvt_high_f32_f16(h_);                     \
        EACH##M(FMA, L1);                                                                      \
    } while (0)
#define B_COL2(M, c, L, L1) B_COL2X(M, k, B_FMA, c, L, L1)
/* 4 columns, then q and k move past them. */
#define B_FOUR(M)                                                                              \
    do {                                                                                       \
        EACH##M(B_Q, 0);                                                                       \
        B_COL2(M, 0, 0, 1); B_COL2(M, 2, 2, 3);                                                \
        qi += 4 * gq, k += 4 * 8;                                                              \
    } while (0)
#define B_STORE(J, _) vst1q_f32(s + J * lds, l##J), vst1q_f32(s + J * lds + 4, h##J)
/* The second block of a pair (dots2_M): head J's scores in mJ and nJ. */
#define B2_SUMS(J, z) float32x4_t m##J = z, n##J = z
#define B2_FMA(J, L) FMLA_LANE(m##J, lo_, x##J, L); FMLA_LANE(n##J, hi_, x##J, L)
#define B2_STORE(J, _) vst1q_f32(s + J * lds + 8, m##J), vst1q_f32(s + J * lds + 12, n##J)
/* 4 columns of both blocks (k and k2), then q and the keys move past them. */
#define B2_FOUR(M)                                                                             \
    do {                                                                                       \
        EACH##M(B_Q, 0);                                                                       \
        B_COL2X(M, k, B_FMA, 0, 0, 1); B_COL2X(M, k2, B2_FMA, 0, 0, 1);                        \
        B_COL2X(M, k, B_FMA, 2, 2, 3); B_COL2X(M, k2, B2_FMA, 2, 2, 3);                        \
        qi += 4 * gq, k += 4 * 8, k2 += 4 * 8;                                                 \
    } while (0)

/* dots_M(s, lds, qi, gq, k, c4, kb, nb): the scores of nb key blocks
 * (k + b * kb: 8 positions each) over their columns [0, c4), a multiple
 * of 4, for M heads (q' interleaved at qi: scale_interleave()), head j's
 * into s[j * lds + 8 * b ..]; the blocks in one call, as a call per block
 * cost 30 instructions. 2 M
 * sums, M vectors of q and a column's 4 registers: 28 for M = 8; per 4
 * columns, 2 paired loads and 8 conversions of keys, M loads of q
 * (paired) and 8 M multiply-adds; 8 columns a pass, so that the loop's
 * own instructions stay few where M is. */
#define DOTS(M)                                                                                \
    GROUP_KERNEL static void dots_##M(float *s, size_t lds, const float *q0, size_t gq,        \
                                      const uint16_t *k0, size_t c0, size_t kb, size_t nb)     \
    {                                                                                          \
        for (; nb; nb--, s += 8, k0 += kb) {                                                   \
            const float *qi = q0;                                                              \
            const uint16_t *k = k0;                                                            \
            float32x4_t z_ = vdupq_n_f32(0.0f);                                                \
            EACH##M(B_SUMS, z_);                                                               \
            size_t c4 = c0;                                                                    \
            for (; c4 >= 8; c4 -= 8) {                                                         \
                B_FOUR(M);                                                                     \
                B_FOUR(M);                                                                     \
            }                                                                                  \
            if (c4)                                                                            \
                B_FOUR(M);                                                                     \
            EACH##M(B_STORE, 0);                                                               \
        }                                                                                      \
    }
DOTS(1)
DOTS(2)
DOTS(3)
DOTS(4)
DOTS(5)
DOTS(6)
DOTS(7)
DOTS(8)

/* dots2_M: dots_M for M <= 4 heads, two blocks at a time: each load of q
 * serves twice the multiply-adds (4 M sums, M vectors of q and a column's
 * 4 registers: 24 for M = 4); an odd last block through dots_M. */
#define DOTS2(M)                                                                               \
    GROUP_KERNEL static void dots2_##M(float *s, size_t lds, const float *q0, size_t gq,       \
                                       const uint16_t *k0, size_t c0, size_t kb, size_t nb)    \
    {                                                                                          \
        for (; nb >= 2; nb -= 2, s += 16, k0 += 2 * kb) {                                      \
            const float *qi = q0;                                                              \
            const uint16_t *k = k0, *k2 = k0 + kb;                                             \
            float32x4_t z_ = vdupq_n_f32(0.0f);                                                \
            EACH##M(B_SUMS, z_);                                                               \
            EACH##M(B2_SUMS, z_);                                                              \
            for (size_t c4 = c0; c4; c4 -= 4)                                                  \
                B2_FOUR(M);                                                                    \
            EACH##M(B_STORE, 0);                                                               \
            EACH##M(B2_STORE, 0);                                                              \
        }                                                                                      \
        if (nb)                                                                                \
            dots_##M(s, lds, q0, gq, k0, c0, kb, 1);                                           \
    }
DOTS2(1)
DOTS2(2)
DOTS2(3)
DOTS2(4)

/* Up to 8 heads through dots_M, up to 4 through dots2_M. */
static void dots(float *s, size_t lds, const float *qi, size_t gq, size_t g, const uint16_t *k,
                 size_t h4, size_t kb, size_t nb)
{
    switch (g) {
    case 8: dots_8(s, lds, qi, gq, k, h4, kb, nb); break;
    case 7: dots_7(s, lds, qi, gq, k, h4, kb, nb); break;
    case 6: dots_6(s, lds, qi, gq, k, h4, kb, nb); break;
    case 5: dots_5(s, lds, qi, gq, k, h4, kb, nb); break;
    case 4: dots2_4(s, lds, qi, gq, k, h4, kb, nb); break;
    case 3: dots2_3(s, lds, qi, gq, k, h4, kb, nb); break;
    case 2: dots2_2(s, lds, qi, gq, k, h4, kb, nb); break;
    case 1: dots2_1(s, lds, qi, gq, k, h4, kb, nb); break;
    }
}

/* Columns [c0, hd) (fewer than 4) of a block, for g heads (q' + j * ldq),
 * fused into their scores: the same chain, one column at a time,
 * its element of q broadcast (the same operation as by element). */
static void tail_columns(float *s, size_t lds, const float *q, size_t ldq, size_t g,
                         const uint16_t *k, size_t c0, size_t hd)
{
    for (size_t j = 0; j < g; j++) {
        float32x4_t lo = vld1q_f32(s + j * lds), hi = vld1q_f32(s + j * lds + 4);
        for (size_t c = c0; c < hd; c++) {
            float16x8_t k_ = vreinterpretq_f16_u16(vld1q_u16(k + c * 8));
            float32x4_t x = vdupq_n_f32(q[j * ldq + c]);
            lo = vfmaq_f32(lo, vcvt_f32_f16(vget_low_f16(k_)), x);
            hi = vfmaq_f32(hi, vcvt_high_f32_f16(k_), x);
        }
        vst1q_f32(s + j * lds, lo), vst1q_f32(s + j * lds + 4, hi);
    }
}

/* The scores of a superblock's m positions (key blocks from k)
 * for g heads, head j's into s[j * SUPER ..]; -inf past m (the last
 * block's other lanes are whatever the cache holds there, and lanes do
 * not mix). */
static void score_super(float *s, const float *q, size_t ldq, const float *qi, size_t g,
                        const uint16_t *k, size_t stride, size_t m, size_t hd)
{
    size_t h4 = hd / 4 * 4, nb = (m + BLOCK - 1) / BLOCK;
    for (size_t j = 0; j < g; j += 8) /* block b of the superblock at k + b * 8 * stride */
        dots(s + j * SUPER, SUPER, qi + j * 4, g, g - j < 8 ? g - j : 8, k, h4, BLOCK * stride, nb);
    for (size_t b = 0; h4 < hd && b < m; b += BLOCK)
        tail_columns(s + b, SUPER, q, ldq, g, k + b * stride, h4, hd);
    for (size_t j = 0; m < SUPER && j < g; j++)
        for (size_t r = m; r < SUPER; r++)
            s[j * SUPER + r] = -INFINITY;
}

/* Head o's weights in place of its superblock's scores s: the maximum
 * raised once (out and the 4 lanes of sums rescaled), exp in 4 lanes,
 * summed 8 positions at a time (lanes L and L+4 into lane L). */
static void weigh_super(online *o, float32x4_t *sum, float *s, float *out, size_t hd)
{
    float32x4_t top = vld1q_f32(s);
    for (int r = 4; r < SUPER; r += 4)
        top = vmaxq_f32(top, vld1q_f32(s + r));
    float32x4_t sum4 = vmulq_n_f32(*sum, raise_max(o, vmaxvq_f32(top), out, hd));
    top = vdupq_n_f32(o->max);
    /* Rolled: unrolled, GCC keeps all 64 scores and spills the exp's constants. */
#pragma GCC unroll 1
    for (int r = 0; r < SUPER; r += 8) { /* sum4 local: *sum might alias s's stores */
        float32x4_t w0 = nb_exp_w_neon(vsubq_f32(vld1q_f32(s + r), top));
        float32x4_t w1 = nb_exp_w_neon(vsubq_f32(vld1q_f32(s + r + 4), top));
        sum4 = vaddq_f32(sum4, vaddq_f32(w0, w1));
        vst1q_f32(s + r, w0), vst1q_f32(s + r + 4, w1);
    }
    *sum = sum4;
}

/* ---- the values: a superblock's rows, the sums in registers ---- */

/* vals_M_C(out, ldo, w, v, stride, m, hc): for M heads, output columns
 * [0, hc) (head j's at out + j * ldo; hc a multiple of C, 8 or 16) += the
 * m <= SUPER value rows v + r * stride weighted by w[j * SUPER + r]: per
 * column, the rows in order, each product fused, as the reference adds
 * them, so that the sums stay in registers over the superblock instead of
 * going through memory every 8 rows. Per 8 rows, M paired loads of
 * weights; per row, C / 8 loads and C / 4 conversions of values and M C
 * / 4 multiply-adds by element. Registers: M C / 4 sums, 2 M weights and
 * a row's: 27 for M = 6, C = 8 and 30 for M = 4, C = 16. */
#define V_SUMS(J, C)                                                                           \
    float32x4_t c##J[C / 4];                                                                   \
    for (int i_ = 0; i_ < C / 4; i_++)                                                         \
        c##J[i_] = vld1q_f32(out + J * ldo + 4 * i_)
#define V_W(J, r)                                                                              \
    float32x4_t a##J = vld1q_f32(w + J * SUPER + (r)), b##J = vld1q_f32(w + J * SUPER + (r) + 4)
#define V_FMA(J, C, W, L)                                                                      \
    for (int i_ = 0; i_ < C / 4; i_++)                                                         \
        FMLA_LANE(c##J[i_], x_[i_], W##J, L)
#define V_ONE(J, C, r)                                                                         \
    for (int i_ = 0; i_ < C / 4; i_++)                                                         \
        c##J[i_] = vfmaq_f32(c##J[i_], x_[i_], vdupq_n_f32(w[J * SUPER + (r)]))
#define V_STORE(J, C)                                                                          \
    for (int i_ = 0; i_ < C / 4; i_++)                                                         \
        vst1q_f32(out + J * ldo + 4 * i_, c##J[i_])
/* Row r's C values, converted, into x_[0 .. C / 4). */
#define V_ROW(C, r)                                                                            \
    float32x4_t x_[C / 4];                                                                     \
    for (int i_ = 0; i_ < C / 8; i_++) {                                                       \
        float16x8_t h_ = vreinterpretq_f16_u16(vld1q_u16(v + (r) * stride + 8 * i_));          \
        x_[2 * i_] = vcvt_f32_f16(vget_low_f16(h_)), x_[2 * i_ + 1] = vcvt_high_f32_f16(h_);   \
    }
#define V_ROWL(M, C, W, r, L)                                                                  \
    do {                                                                                       \
        V_ROW(C, r);                                                                           \
        EACH##M(V_FMA, C, W, L);                                                               \
    } while (0)
#define VALS(M, C)                                                                             \
    GROUP_KERNEL static void vals_##M##_##C(float *out, size_t ldo, const float *w,            \
                                            const uint16_t *v, size_t stride, size_t m,        \
                                            size_t hc)                                         \
    {                                                                                          \
        for (size_t i = 0; i < hc; i += C, out += C, v += C) {                                 \
            EACH##M(V_SUMS, C);                                                                \
            size_t r = 0;                                                                      \
            for (; r + 8 <= m; r += 8) {                                                       \
                EACH##M(V_W, r);                                                               \
                V_ROWL(M, C, a, r, 0); V_ROWL(M, C, a, r + 1, 1);                              \
                V_ROWL(M, C, a, r + 2, 2); V_ROWL(M, C, a, r + 3, 3);                          \
                V_ROWL(M, C, b, r + 4, 0); V_ROWL(M, C, b, r + 5, 1);                          \
                V_ROWL(M, C, b, r + 6, 2); V_ROWL(M, C, b, r + 7, 3);                          \
            }                                                                                  \
            for (; r < m; r++) {                                                               \
                V_ROW(C, r);                                                                   \
                EACH##M(V_ONE, C, r);                                                          \
            }                                                                                  \
            EACH##M(V_STORE, C);                                                               \
        }                                                                                      \
    }
VALS(1, 8)
VALS(2, 8)
VALS(3, 8)
VALS(4, 8)
VALS(5, 8)
VALS(6, 8)
VALS(1, 16)
VALS(2, 16)
VALS(3, 16)
VALS(4, 16)

/* Columns [0, h8) of up to 6 heads (h8 a multiple of 8): up to 4 heads 16
 * columns at a time, then 8. */
static void vals_heads(float *out, size_t ldo, size_t g, const float *w, const uint16_t *v,
                       size_t stride, size_t m, size_t h8)
{
    size_t h16 = g <= 4 ? h8 / 16 * 16 : 0;
    switch (h16 ? g : 0) {
    case 4: vals_4_16(out, ldo, w, v, stride, m, h16); break;
    case 3: vals_3_16(out, ldo, w, v, stride, m, h16); break;
    case 2: vals_2_16(out, ldo, w, v, stride, m, h16); break;
    case 1: vals_1_16(out, ldo, w, v, stride, m, h16); break;
    }
    out += h16, v += h16, h8 -= h16;
    switch (h8 ? g : 0) {
    case 6: vals_6_8(out, ldo, w, v, stride, m, h8); break;
    case 5: vals_5_8(out, ldo, w, v, stride, m, h8); break;
    case 4: vals_4_8(out, ldo, w, v, stride, m, h8); break;
    case 3: vals_3_8(out, ldo, w, v, stride, m, h8); break;
    case 2: vals_2_8(out, ldo, w, v, stride, m, h8); break;
    case 1: vals_1_8(out, ldo, w, v, stride, m, h8); break;
    }
}

/* out += the superblock's m weighted value rows for g heads (weights of
 * head j at w + j * SUPER), 6 heads at a time; the last hd % 8 columns
 * one at a time, the rows in order (the same operations). */
static void values(float *out, size_t ldo, size_t g, const float *w, const uint16_t *v,
                   size_t stride, size_t m, size_t hd)
{
    size_t h8 = hd / 8 * 8;
    for (size_t j = 0; j < g; j += 6)
        vals_heads(out + j * ldo, ldo, g - j < 6 ? g - j : 6, w + j * SUPER, v, stride, m, h8);
    for (size_t j = 0; j < g; j++)
        for (size_t c = h8; c < hd; c++)
            for (size_t r = 0; r < m; r++)
                out[j * ldo + c] = fmaf(w[j * SUPER + r], nb_f16_to_f32(v[r * stride + c]),
                                        out[j * ldo + c]);
}

/* g <= NB_ATTEND_GROUP heads (q' + j * ldq, interleaved at qi) over n
 * positions, a superblock at a time: the scores of all heads (key columns
 * shared), each head's softmax step, the values of all heads (value rows
 * shared). */
static void group_f32b(float *out, size_t ldo, const float *q, size_t ldq, const float *qi,
                       size_t g, const uint16_t *k, const uint16_t *v, size_t stride, size_t n,
                       size_t hd)
{
    online o[NB_ATTEND_GROUP];
    float32x4_t sum[NB_ATTEND_GROUP];
    float s[NB_ATTEND_GROUP * SUPER];
    start_heads(o, out, ldo, g, hd);
    for (size_t j = 0; j < g; j++)
        sum[j] = vdupq_n_f32(0.0f);
    for (size_t t = 0; t < n; t += SUPER) {
        size_t m = n - t < SUPER ? n - t : SUPER;
        score_super(s, q, ldq, qi, g, k + t * stride, stride, m, hd); /* block t / 8 on */
        for (size_t j = 0; j < g; j++)
            weigh_super(&o[j], &sum[j], s + j * SUPER, out + j * ldo, hd);
        values(out, ldo, g, s, v + t * stride, stride, m, hd);
    }
    for (size_t j = 0; j < g; j++) {
        o[j].sum = vaddvq_f32(sum[j]);
        finish(&o[j], out + j * ldo, hd);
    }
}

/* q' = q * scale of the g heads (q + j * ldq) into qs (rows of hd), and
 * interleaved into qi, 4 columns at a time: columns i .. i+3 of head j at
 * qi + i * g + j * 4 (i a multiple of 4, below hd / 4 * 4), so that
 * consecutive heads' vectors are consecutive in memory. Scaling q once
 * spares a multiply per score. */
static void scale_interleave(float *qs, float *qi, const float *q, size_t ldq, size_t g,
                             size_t hd, float scale)
{
    for (size_t j = 0; j < g; j++)
        for (size_t i = 0; i < hd; i++)
            qs[j * hd + i] = q[j * ldq + i] * scale;
    for (size_t j = 0; j < g; j++)
        for (size_t i = 0; i + 4 <= hd; i += 4)
            vst1q_f32(qi + i * g + j * 4, vld1q_f32(qs + j * hd + i));
}

/* Room for the heads' q': 16 heads of 1024 columns (the format's largest
 * head), fewer heads at once when they are wider. */
enum { QI_SIZE = NB_ATTEND_GROUP * 1024 };

void nb_attend_group_f32b_neon(float *out, size_t ldo, const float *q, size_t ldq, size_t g,
                               const uint16_t *k, const uint16_t *v, size_t stride, size_t n,
                               size_t hd, float scale)
{
    float qs[QI_SIZE], qi[QI_SIZE];
    size_t at_once = QI_SIZE / hd < NB_ATTEND_GROUP ? QI_SIZE / hd : NB_ATTEND_GROUP;
    if (!at_once) { /* wider than the format allows: nothing to share */
        for (size_t j = 0; j < g; j++)
            nb_attend_f32b_ref(out + j * ldo, q + j * ldq, k, v, stride, n, hd, scale);
        return;
    }
    for (size_t j = 0; j < g; j += at_once) {
        size_t m = g - j < at_once ? g - j : at_once;
        scale_interleave(qs, qi, q + j * ldq, ldq, m, hd, scale);
        group_f32b(out + j * ldo, ldo, qs, hd, qi, m, k, v, stride, n, hd);
    }
}

void nb_attend_f32b_neon(float *out, const float *q, const uint16_t *k, const uint16_t *v,
                         size_t stride, size_t n, size_t hd, float scale)
{
    nb_attend_group_f32b_neon(out, hd, q, hd, 1, k, v, stride, n, hd, scale);
}

static const nb_attend_set f32b_set = {"f32b", nb_attend_f32b_neon, nb_attend_group_f32b_neon,
                                       NB_ATTEND_KBLOCK, 0};
#endif

const nb_attend_set *nb_attend_f32b(void)
{
#if defined(__aarch64__)
    return &f32b_set;
#else
    return NULL;
#endif
}
