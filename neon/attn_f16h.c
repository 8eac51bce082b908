/* The "f16h" attention (attn.h) in fp16 arithmetic, for CPUs with
 * FEAT_FP16 (asimdhp: Cortex-A76 and later, not the A72). Built with
 * -march=armv8.2-a+fp16 and called only where the CPU reports it
 * (attn.c), as the dotprod and i8mm kernels are.
 *
 * Scores: q' . k with q' = q * scale rounded to fp16 once per call. The
 * keys come in blocks of 8 positions stored column by column (attn.h), so
 * a column of a block is one vector, and one fused fp16 multiply-add by
 * an element of q' (FMLA .8h by element) advances the 8 positions'
 * scores: no conversion of the key, no sum across lanes, and each column
 * loaded once for all the heads that share it. Chains of 16 columns (or
 * pairs of chains of 8) are summed in fp16 and then added to fp32 scores.
 *
 * Values: a superblock's weights, scaled and rounded to fp16, multiply
 * each value row in place (FMLA .8h by element, 8 columns per
 * instruction, no conversion), into fp16 partial sums of 8 rows, added
 * in pairs, then into fp32 sums kept in registers over the superblock;
 * where head_dim allows the rows come from tiles (attn.h), 4 at a load.
 * nb_attend_f16h_ref in attn.c does the same operations in the same order
 * in portable C. */
#include <arm_neon.h>
#include <math.h>

#include "attn.h"
#include "attn_online.h"
#include "f16.h"
#include "qkern_ld.h"
#include "vexp.h"

enum { BLOCK = 8 }; /* positions per block of scores, as in attn.c */
enum { SUPER = NB_ATTEND_F16H_SUPER }; /* positions per softmax step and value partial */
enum { V_SHIFT = NB_ATTEND_F16H_VSHIFT }; /* the weights times 2^-V_SHIFT */

static inline float16x8_t load_h(const uint16_t *p)
{
    return vreinterpretq_f16_u16(vld1q_u16(p));
}

static inline float16x8_t load_h_dup(const uint16_t *p)
{
    return vreinterpretq_f16_u16(vld1q_dup_u16(p));
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

/* a = x * lane L of w (FMUL) and a += x * lane L of w (FMLA), by element.
 * Spelled in asm: GCC 12 turns vfmaq_laneq_f16 into a DUP and a vector
 * FMLA, or, seeing the weights' load, into 8 scalar loads. The element
 * form takes its vector from v0-v15 ("x"). */
#define FMUL_LANE(a, x, w, L) __asm__("fmul %0.8h, %1.8h, %2.h[" #L "]" : "=w"(a) : "w"(x), "x"(w))
#define FMLA_LANE(a, x, w, L) __asm__("fmla %0.8h, %1.8h, %2.h[" #L "]" : "+w"(a) : "w"(x), "x"(w))

/* ---- the scores: a block of 8 positions per vector ---- */

/* Head J's scores are lJ (positions 0-3) and hJ (4-7) in fp32, its chain
 * aJ in fp16, its 8 columns of q' xJ; k_ is one column of the block. */
#define S_SUMS(J, z)                                                                           \
    float32x4_t l##J = z, h##J = z;                                                            \
    float16x8_t a##J
#define S_Q(J, i) float16x8_t x##J = load_h(qp + J * 8)
#define S_MUL(J, L) FMUL_LANE(a##J, k_, x##J, L)
#define S_FMA(J, L) FMLA_LANE(a##J, k_, x##J, L)
/* The second chain of a pair (S_PAIR8): bJ. */
#define S_MULB(J, L) FMUL_LANE(b##J, k_, x##J, L)
#define S_FMAB(J, L) FMLA_LANE(b##J, k_, x##J, L)
#define S_DECLB(J, _) float16x8_t b##J
#define S_SUMB(J, _) a##J = vaddq_f16(a##J, b##J)
/* Columns c and c + 1, their loads side by side (one LDP): the first
 * through OP, the second through OPF. */
#define S_COL2(M, OP, OPF, c, L, L1)                                                           \
    do {                                                                                       \
        float16x8_t k_ = load_h(k + (c) * 8), k1_ = load_h(k + (c) * 8 + 8);                   \
        EACH##M(OP, L);                                                                        \
        k_ = k1_;                                                                              \
        EACH##M(OPF, L1);                                                                      \
    } while (0)
#define S_ADD(J, _)                                                                            \
    l##J = vaddq_f32(l##J, vcvt_f32_f16(vget_low_f16(a##J))),                                  \
    h##J = vaddq_f32(h##J, vcvt_high_f32_f16(a##J))
/* The first chain widened into the scores: the reference's -0 + x. */
#define S_SET(J, _) l##J = vcvt_f32_f16(vget_low_f16(a##J)), h##J = vcvt_high_f32_f16(a##J)
#define S_STORE(J, _) vst1q_f32(s + J * lds, l##J), vst1q_f32(s + J * lds + 4, h##J)

/* Columns i .. i+7 of the block, the first through OP0 (S_MUL starts a
 * chain, S_FMA goes on with one), the others through OPF; q' from qp, its
 * columns i .. i+7. */
#define S_EIGHT(M, OP0, OPF, i)                                                                \
    do {                                                                                       \
        const uint16_t *qp = qi + (i) * gq;                                                    \
        EACH##M(S_Q, 0);                                                                       \
        S_COL2(M, OP0, OPF, (i) + 0, 0, 1); S_COL2(M, OPF, OPF, (i) + 2, 2, 3);                \
        S_COL2(M, OPF, OPF, (i) + 4, 4, 5); S_COL2(M, OPF, OPF, (i) + 6, 6, 7);                \
    } while (0)
/* Columns c .. c+3, loaded by one LD1 of 4 registers: half the loads of
 * S_COL2, for 2 more registers. */
#define S_COL4(M, OP, OPF, c, L, L1, L2, L3)                                                   \
    do {                                                                                       \
        uint8x16x4_t k4_ = nb_ld1q_u8_x4((const uint8_t *)(k + (c) * 8));                      \
        float16x8_t k_ = vreinterpretq_f16_u8(k4_.val[0]);                                     \
        EACH##M(OP, L);                                                                        \
        k_ = vreinterpretq_f16_u8(k4_.val[1]);                                                 \
        EACH##M(OPF, L1);                                                                      \
        k_ = vreinterpretq_f16_u8(k4_.val[2]);                                                 \
        EACH##M(OPF, L2);                                                                      \
        k_ = vreinterpretq_f16_u8(k4_.val[3]);                                                 \
        EACH##M(OPF, L3);                                                                      \
    } while (0)
/* S_EIGHT through S_COL4. */
#define S_EIGHT4(M, OP0, OPF, i)                                                               \
    do {                                                                                       \
        const uint16_t *qp = qi + (i) * gq;                                                    \
        EACH##M(S_Q, 0);                                                                       \
        S_COL4(M, OP0, OPF, (i) + 0, 0, 1, 2, 3); S_COL4(M, OPF, OPF, (i) + 4, 4, 5, 6, 7);    \
    } while (0)
/* 16 columns as one chain, or as a pair of chains of 8 added in fp16;
 * E: S_EIGHT or S_EIGHT4. */
#define S_CHAIN16(M, E, W)                                                                     \
    E(M, S_MUL, S_FMA, 0); E(M, S_FMA, S_FMA, 8); EACH##M(W, 0)
#define S_CHAIN8(M, E, W)                                                                      \
    EACH##M(S_DECLB, 0);                                                                       \
    E(M, S_MUL, S_FMA, 0); E(M, S_MULB, S_FMAB, 8);                                            \
    EACH##M(S_SUMB, 0); EACH##M(W, 0)

/* dots_M_C(s, lds, qi, gq, k, h16, kb, nb): the scores of nb key blocks
 * (k + b * kb: 8 positions each) over their columns [0, h16), a multiple
 * of 16, in chains of C (16 or 8), for M heads (q' interleaved at qi:
 * interleave()), head j's into s[j * lds + 8 * b ..] (the blocks in one
 * call: a call per block cost about 26 instructions): one fp16 chain per head (FMUL by the first
 * column's element of q', FMLA by each next one's), widened into the
 * head's fp32 scores. 2 M fp32 scores, M chains, M vectors of q' and a
 * column: 25 registers for M = 6; per 8 columns, M loads of q' (paired),
 * 8 of keys (paired) and 8 M multiply-adds. */
#define DOTS(M, C, E)                                                                          \
    GROUP_KERNEL static void dots_##M##_##C(float *s, size_t lds, const uint16_t *q0,          \
                                            size_t gq, const uint16_t *k0, size_t cols,        \
                                            size_t kb, size_t nb)                              \
    {                                                                                          \
        for (; nb; nb--, s += 8, k0 += kb) {                                                   \
            const uint16_t *qi = q0, *k = k0;                                                  \
            float32x4_t z_ = vdupq_n_f32(-0.0f);                                               \
            EACH##M(S_SUMS, z_);                                                               \
            size_t h16 = cols;                                                                 \
            if (h16) {                                                                         \
                S_CHAIN##C(M, E, S_SET);                                                       \
                h16 -= 16, qi += 16 * gq, k += 16 * 8;                                         \
            }                                                                                  \
            for (; h16; h16 -= 16, qi += 16 * gq, k += 16 * 8) {                               \
                S_CHAIN##C(M, E, S_ADD);                                                       \
            }                                                                                  \
            EACH##M(S_STORE, 0);                                                               \
        }                                                                                      \
    }
/* 4 columns a load up to 4 heads; 5 and 6 have no room for them (6
 * spilled: 611k instructions for qwen2.5-1.5b's layer instead of 607k). */
#define DOTS_C(M, E) DOTS(M, 16, E) DOTS(M, 8, E)
DOTS_C(1, S_EIGHT4)
DOTS_C(2, S_EIGHT4)
DOTS_C(3, S_EIGHT4)
DOTS_C(4, S_EIGHT4)
DOTS_C(5, S_EIGHT)
DOTS_C(6, S_EIGHT)

/* Up to 6 heads through dots_M_C; chain is 16 or 8. */
static void dots(float *s, size_t lds, const uint16_t *qi, size_t gq, size_t g,
                 const uint16_t *k, size_t h16, size_t chain, size_t kb, size_t nb)
{
#define DOTS_CASE(M)                                                                           \
    case M:                                                                                    \
        (chain == 16 ? dots_##M##_16 : dots_##M##_8)(s, lds, qi, gq, k, h16, kb, nb);          \
        break
    switch (g) {
        DOTS_CASE(6);
        DOTS_CASE(5);
        DOTS_CASE(4);
        DOTS_CASE(3);
        DOTS_CASE(2);
        DOTS_CASE(1);
    }
#undef DOTS_CASE
}

/* Columns [c0, hd) of the block, in chains of chain columns (the last
 * shorter), for g heads (q' at qh + j * hd), added to their scores: one
 * column at a time, its element of q' broadcast (the same operation as by
 * element). For the columns dots leaves, and heads too narrow for it. */
static void chains(float *s, size_t lds, const uint16_t *qh, size_t g, const uint16_t *k,
                   size_t c0, size_t hd, size_t chain)
{
    for (size_t j = 0; j < g; j++) {
        const uint16_t *q = qh + j * hd;
        float32x4_t lo = vld1q_f32(s + j * lds), hi = vld1q_f32(s + j * lds + 4);
        for (size_t c = c0; c < hd; c += chain) {
            float16x8_t a = vmulq_f16(load_h(k + c * 8), load_h_dup(q + c));
            for (size_t i = c + 1; i < hd && i < c + chain; i++)
                a = vfmaq_f16(a, load_h(k + i * 8), load_h_dup(q + i));
            lo = vaddq_f32(lo, vcvt_f32_f16(vget_low_f16(a)));
            hi = vaddq_f32(hi, vcvt_high_f32_f16(a));
        }
        vst1q_f32(s + j * lds, lo), vst1q_f32(s + j * lds + 4, hi);
    }
}

/* The scores of a superblock's m positions (key blocks from k) for g
 * heads, head j's into s[j * SUPER ..], -inf past m (the last block's
 * other lanes are whatever the cache holds there, and lanes do not mix). */
static void score_super(float *s, const uint16_t *qh, const uint16_t *qi, size_t g,
                        const uint16_t *k, size_t stride, size_t m, size_t hd)
{
    size_t chain = nb_attend_f16h_chain(hd), h16 = chain >= 8 ? hd / 16 * 16 : 0;
    size_t nb = (m + BLOCK - 1) / BLOCK;
    for (size_t j = 0; j < g; j += 6) /* block b of the superblock at k + b * 8 * stride */
        dots(s + j * SUPER, SUPER, qi + j * 8, g, g - j < 6 ? g - j : 6, k, h16, chain,
             BLOCK * stride, nb);
    for (size_t b = 0; h16 < hd && b < m; b += BLOCK) /* dots stored -0 where it had no columns */
        chains(s + b, SUPER, qh, g, k + b * stride, h16, hd, chain);
    for (size_t j = 0; m < SUPER && j < g; j++)
        for (size_t r = m; r < SUPER; r++)
            s[j * SUPER + r] = -INFINITY;
}

/* ---- the values: fp16 partial sums over a superblock ---- */

/* vals_M(out, ldo, w, v, stride, m, h8): for M heads, output columns (head
 * j's at out + j * ldo) += the m <= SUPER rows of v weighted by w[j *
 * SUPER + r], a chunk of 8 rows at a time: the chunk's products summed in
 * fp16 (its first row's product, then each next row's fused into its lane
 * by FMLA .8h by element, in row order); chunks in pairs, the second's sum
 * added to the first's in fp16; each pair (or lone chunk) widened and
 * added to the fp32 sums (all at the weights' scale, attn.h), which stay
 * in registers over the superblock. The last m % 8 rows are one more
 * chunk, one weight at a time (the same operations). 2 M fp32 sums, 2 M
 * fp16 sums, M weight vectors and a row: 31 registers for M = 6 (16
 * columns at a time would need more: one pair's widening, 4 instructions
 * per 8 lanes, costs less than the loads it would share); columns [0, h8)
 * 8 at a time. */
#define P_SUMS(J, _)                                                                           \
    float32x4_t c##J = vld1q_f32(out + J * ldo), d##J = vld1q_f32(out + J * ldo + 4);          \
    float16x8_t a##J
#define P_W(J, r) float16x8_t w##J = load_h(w + J * SUPER + (r))
#define P_MUL(J, L) FMUL_LANE(a##J, x_, w##J, L)
#define P_FMA(J, L) FMLA_LANE(a##J, x_, w##J, L)
/* Row L of the chunk of 8 at row r (a multiple of 8): rp apart in a
 * chunk, 8 * stride from chunk to chunk (rows or tiles: attn.h). */
#define P_ROW(M, OP, r, L)                                                                     \
    do {                                                                                       \
        float16x8_t x_ = load_h(v + (r) * stride + L * rp);                                    \
        EACH##M(OP, L);                                                                        \
    } while (0)
#define P_W1(J, r) vreinterpretq_f16_u16(vld1q_dup_u16(w + J * SUPER + (r)))
#define P_ONE(J, r) a##J = vfmaq_f16(a##J, x_, P_W1(J, r))
#define P_FIRST(J, r) a##J = vmulq_f16(x_, P_W1(J, r))
/* The second chunk of a pair (rows r + 8 .. r + 15) into bJ, then added
 * to aJ in fp16. */
#define P_DECLB(J, _) float16x8_t b##J
#define P_MULB(J, L) FMUL_LANE(b##J, x_, w##J, L)
#define P_FMAB(J, L) FMLA_LANE(b##J, x_, w##J, L)
#define P_SUMB(J, _) a##J = vaddq_f16(a##J, b##J)
/* Rows r .. r+7 into the chains that MUL starts and FMA goes on with. */
#define P_CHUNK(M, MUL, FMA, r)                                                                \
    do {                                                                                       \
        EACH##M(P_W, r);                                                                       \
        P_ROW(M, MUL, r, 0); P_ROW(M, FMA, r, 1);                                              \
        P_ROW(M, FMA, r, 2); P_ROW(M, FMA, r, 3);                                              \
        P_ROW(M, FMA, r, 4); P_ROW(M, FMA, r, 5);                                              \
        P_ROW(M, FMA, r, 6); P_ROW(M, FMA, r, 7);                                              \
    } while (0)
/* P_CHUNK for values in tiles (rp 8): 4 rows a load. */
#define P_ROWX(M, OP, xv, L)                                                                   \
    do {                                                                                       \
        float16x8_t x_ = vreinterpretq_f16_u8(xv);                                             \
        EACH##M(OP, L);                                                                        \
    } while (0)
#define P_CHUNK4(M, MUL, FMA, r)                                                               \
    do {                                                                                       \
        EACH##M(P_W, r);                                                                       \
        const uint16_t *b_ = v + (r) * stride;                                                 \
        uint8x16x4_t x4_ = nb_ld1q_u8_x4((const uint8_t *)b_);                                 \
        P_ROWX(M, MUL, x4_.val[0], 0); P_ROWX(M, FMA, x4_.val[1], 1);                          \
        P_ROWX(M, FMA, x4_.val[2], 2); P_ROWX(M, FMA, x4_.val[3], 3);                          \
        x4_ = nb_ld1q_u8_x4((const uint8_t *)(b_ + 32));                                       \
        P_ROWX(M, FMA, x4_.val[0], 4); P_ROWX(M, FMA, x4_.val[1], 5);                          \
        P_ROWX(M, FMA, x4_.val[2], 6); P_ROWX(M, FMA, x4_.val[3], 7);                          \
    } while (0)
#define P_WIDEN(J, _)                                                                          \
    c##J = vaddq_f32(c##J, vcvt_f32_f16(vget_low_f16(a##J))),                                  \
    d##J = vaddq_f32(d##J, vcvt_high_f32_f16(a##J))
#define P_STORE(J, _) vst1q_f32(out + J * ldo, c##J), vst1q_f32(out + J * ldo + 4, d##J)
/* NAME(out, ldo, w, v, stride, m, h8, rp, ts): row r's columns i .. i+7
 * at v + r / 8 * 8 * stride + r % 8 * rp + i / 8 * ts (rows: rp stride,
 * ts 8; tiles: rp 8, ts 64), the chunks through CHUNK. */
#define VALS(M, NAME, CHUNK)                                                                   \
    GROUP_KERNEL static void NAME(float *out, size_t ldo, const uint16_t *w, const uint16_t *v, \
                                  size_t stride, size_t m, size_t h8, size_t rp, size_t ts)    \
    {                                                                                          \
        for (size_t i = 0; i < h8; i += 8, out += 8, v += ts) {                                \
            EACH##M(P_SUMS, 0);                                                                \
            size_t r = 0;                                                                      \
            for (; r + 16 <= m; r += 16) {                                                     \
                EACH##M(P_DECLB, 0);                                                           \
                CHUNK(M, P_MUL, P_FMA, r);                                                     \
                CHUNK(M, P_MULB, P_FMAB, r + 8);                                               \
                EACH##M(P_SUMB, 0);                                                            \
                EACH##M(P_WIDEN, 0);                                                           \
            }                                                                                  \
            if (r + 8 <= m) {                                                                  \
                CHUNK(M, P_MUL, P_FMA, r);                                                     \
                EACH##M(P_WIDEN, 0);                                                           \
                r += 8;                                                                        \
            }                                                                                  \
            if (r < m) {                                                                       \
                const uint16_t *b_ = v + r * stride; /* r is a multiple of 8 here */           \
                float16x8_t x_ = load_h(b_);                                                   \
                EACH##M(P_FIRST, r);                                                           \
                for (size_t l = 1; r + l < m; l++) {                                           \
                    x_ = load_h(b_ + l * rp);                                                  \
                    EACH##M(P_ONE, r + l);                                                     \
                }                                                                              \
                EACH##M(P_WIDEN, 0);                                                           \
            }                                                                                  \
            EACH##M(P_STORE, 0);                                                               \
        }                                                                                      \
    }
VALS(1, vals_1, P_CHUNK)
VALS(2, vals_2, P_CHUNK)
VALS(3, vals_3, P_CHUNK)
VALS(4, vals_4, P_CHUNK)
VALS(5, vals_5, P_CHUNK)
VALS(6, vals_6, P_CHUNK)
/* Values in tiles, up to 4 heads: the 4 rows of a load fit beside the
 * sums (24 registers for 4 heads; 5 and 6 take rows one at a time). */
VALS(1, valt_1, P_CHUNK4)
VALS(2, valt_2, P_CHUNK4)
VALS(3, valt_3, P_CHUNK4)
VALS(4, valt_4, P_CHUNK4)


/* Columns [0, h8) of up to 6 heads, h8 a multiple of 8; the values in
 * rows (rp stride, ts 8) or tiles (rp 8, ts 64). */
static void vals_heads(float *out, size_t ldo, size_t g, const uint16_t *w, const uint16_t *v,
                       size_t stride, size_t m, size_t h8, size_t rp, size_t ts)
{
    if (ts == 64 && g <= 4) { /* tiles: 4 rows a load */
        switch (g) {
        case 4: valt_4(out, ldo, w, v, stride, m, h8, rp, ts); break;
        case 3: valt_3(out, ldo, w, v, stride, m, h8, rp, ts); break;
        case 2: valt_2(out, ldo, w, v, stride, m, h8, rp, ts); break;
        case 1: valt_1(out, ldo, w, v, stride, m, h8, rp, ts); break;
        }
        return;
    }
    switch (g) {
    case 6: vals_6(out, ldo, w, v, stride, m, h8, rp, ts); break;
    case 5: vals_5(out, ldo, w, v, stride, m, h8, rp, ts); break;
    case 4: vals_4(out, ldo, w, v, stride, m, h8, rp, ts); break;
    case 3: vals_3(out, ldo, w, v, stride, m, h8, rp, ts); break;
    case 2: vals_2(out, ldo, w, v, stride, m, h8, rp, ts); break;
    case 1: vals_1(out, ldo, w, v, stride, m, h8, rp, ts); break;
    }
}

/* out += the superblock's weighted values for g heads: 8 columns at a
 * time, in tiles when hd is a multiple of 8 (nb_attend_val_at), else in
 * rows, the last hd % 8 columns through copies padded to 8 (lanes are
 * independent, so the kept lanes get the same operations). */
static void values(float *out, size_t ldo, size_t g, const uint16_t *w, const uint16_t *v,
                   size_t stride, size_t m, size_t hd)
{
    size_t h8 = hd / 8 * 8, tiles = h8 == hd; /* tiles whenever hd allows (attn.h) */
    for (size_t j = 0; j < g; j += 6) {
        size_t gj = g - j < 6 ? g - j : 6;
        vals_heads(out + j * ldo, ldo, gj, w + j * SUPER, v, stride, m, h8, tiles ? 8 : stride,
                   tiles ? 64 : 8);
        if (tiles)
            continue;
        uint16_t vt[SUPER * 8] = {0};
        float ot[6 * 8] = {0};
        for (size_t r = 0; r < m; r++)
            for (size_t c = h8; c < hd; c++)
                vt[r * 8 + c - h8] = v[r * stride + c];
        for (size_t h = 0; h < gj; h++)
            for (size_t c = h8; c < hd; c++)
                ot[h * 8 + c - h8] = out[(j + h) * ldo + c];
        vals_heads(ot, 8, gj, w + j * SUPER, vt, 8, m, 8, 8, 8);
        for (size_t h = 0; h < gj; h++)
            for (size_t c = h8; c < hd; c++)
                out[(j + h) * ldo + c] = ot[h * 8 + c - h8];
    }
}

/* ---- the softmax of a superblock ---- */

/* Head o's weights for a superblock's scores s (SUPER of them, -inf past
 * the last row): the maximum raised once (out and the 4 lanes of sums
 * rescaled), exp in 4 lanes, summed a block at a time (lanes L and L+4 of
 * each block into lane L), stored as fp16 into w16: w times
 * NB_ATTEND_F16H_VSCALE, which the exp gives at no cost, as are the sums
 * and out (attn.h). */
static void weigh_super(online *o, float32x4_t *sum, const float *s, uint16_t *w16, float *out,
                        size_t hd)
{
    float32x4_t top = vld1q_f32(s); /* the scores read twice, not kept (they would spill) */
    for (int r = 4; r < SUPER; r += 4)
        top = vmaxq_f32(top, vld1q_f32(s + r));
    float32x4_t sum4 = vmulq_n_f32(*sum, raise_max(o, vmaxvq_f32(top), out, hd));
    top = vdupq_n_f32(o->max);
    /* Rolled: unrolled, GCC keeps all 64 scores and spills the exp's constants. */
#pragma GCC unroll 1
    for (int r = 0; r < SUPER; r += 8) { /* sum4 local: *sum might alias w16's stores */
        float32x4_t w0 = nb_exp_ws_neon(vsubq_f32(vld1q_f32(s + r), top), V_SHIFT);
        float32x4_t w1 = nb_exp_ws_neon(vsubq_f32(vld1q_f32(s + r + 4), top), V_SHIFT);
        sum4 = vaddq_f32(sum4, vaddq_f32(w0, w1));
        float16x8_t h = vcvt_high_f16_f32(vcvt_f16_f32(w0), w1);
        vst1q_u16(w16 + r, vreinterpretq_u16_f16(h));
    }
    *sum = sum4;
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
        size_t m = n - t < SUPER ? n - t : SUPER;
        score_super(s, qh, qi, g, k + t * stride, stride, m, hd); /* block t / 8 on */
        for (size_t j = 0; j < g; j++)
            weigh_super(&o[j], &sum[j], s + j * SUPER, w + j * SUPER, out + j * ldo, hd);
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
