/* The "i8mm" set's prefill GEMM (Armv8.6 i8mm, recent phone cores):
 * smmla multiplies a 2x8 int8 matrix by the transpose of another 2x8 one.
 * Zipping the 32-bit lanes of a tile's low-nibble and high-nibble codes
 * gives rows (0, 1) x 8 columns and rows (2, 3) x 8 columns; the PAIRS
 * activation form gives 2 tokens x the same 8 columns. So one smmla is 2
 * rows x 2 tokens, lanes [r0 t0, r0 t1, r1 t0, r1 t1]. Decode uses the
 * dotprod GEMV (every i8mm core has dotprod). */
#include "qkern_neon.h"

/* Token pairs per pass: 4 (8 tokens) shares each tile's unpacking and
 * zips among the most tokens that still fit the registers. */
#define MM_PAIRS 4

#if !defined(__ARM_FEATURE_MATMUL_INT8)
#error "qkern_i8mm.c needs -march=armv8.2-a+dotprod+i8mm (see meson.build)"
#endif

/* Tiles as smmla operands: m[v] rows 0-1, m[4 + v] rows 2-3, columns 8v..8v+7. */
NB_INLINE void mm_operands(const nb_codes *c, int8x16_t m[8])
{
#pragma GCC unroll 4
    for (int v = 0; v < 4; v++) {
        int32x4_t lo = vreinterpretq_s32_s8(c->c[2 * v]);
        int32x4_t hi = vreinterpretq_s32_s8(c->c[2 * v + 1]);
        m[v] = vreinterpretq_s8_s32(vzip1q_s32(lo, hi));
        m[4 + v] = vreinterpretq_s8_s32(vzip2q_s32(lo, hi));
    }
}

struct mm_state {
    const uint8_t *w;
    const int8_t *a;
    const int32_t *b;
    int32x4_t z[2];     /* zero points, rows 0 0 1 1 and 2 2 3 3 */
    float32x4_t f[2][4]; /* [row half][token pair]: lanes r t0, r t1, r' t0, r' t1 */
};

/* One tile for np token pairs (pairs side by side in the PAIRS form). */
NB_INLINE void mm_tile(struct mm_state *st, const int first, const int np, const int bits)
{
    int8x16_t m[8];
    nb_codes c = nb_unpack(bits, st->w);
    st->w += bits == 4 ? 64 : 48;
    NB_OPAQUE_PTR(st->w);
    mm_operands(&c, m);
#pragma GCC unroll 4
    for (int p = 0; p < np; p++) {
        const int8_t *x = st->a + 64 * p;
        const int32_t *b = st->b + 8 * p;
        int32x4_t ns = vld1q_s32(b + 4);
        float32x4_t sc = vreinterpretq_f32_s32(vld1q_s32(b));
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            int32x4_t acc = vmulq_s32(st->z[h], ns);
#pragma GCC unroll 4
            for (int v = 0; v < 4; v++)
                acc = vmmlaq_s32(acc, m[4 * h + v], vld1q_s8(x + 16 * v));
            float32x4_t sum = vcvtq_f32_s32(acc);
            /* first tile: multiply, as nb_q8_tile does */
            st->f[h][p] = first ? vmulq_f32(sum, sc) : vfmaq_f32(st->f[h][p], sum, sc);
        }
    }
}

NB_INLINE void mm_group(const struct nb_qjob *j, struct mm_state *st, float32x4_t y[2][4],
                        size_t rb, size_t g, size_t len, const int np, const int bits)
{
    size_t at = rb * j->n_groups + g;
    int32x4_t z = nb_group_zeros(j->zeros + 4 * at);
    st->z[0] = vzip1q_s32(z, z);
    st->z[1] = vzip2q_s32(z, z);
    const int known = __builtin_constant_p(len);
    if (!known)
#pragma GCC unroll 4
        for (int p = 0; p < np; p++)
            st->f[0][p] = st->f[1][p] = vdupq_n_f32(0.0f);
    size_t n = len;
#pragma GCC unroll 4
    for (size_t q = 0; q < n; q++) {
        mm_tile(st, known && q == 0, np, bits);
        st->a += j->a_step;
        st->b += j->b_step;
    }
    float32x4_t s = nb_group_scales(j->scales + 8 * at);
    float32x4_t sh[2] = {vzip1q_f32(s, s), vzip2q_f32(s, s)};
#pragma GCC unroll 4
    for (int p = 0; p < np; p++)
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++)
            y[h][p] = vfmaq_f32(y[h][p], st->f[h][p], sh[h]);
}

/* One row block times np token pairs from pair; the arithmetic per (row,
 * token) is that of nb_q8_rows, so the results are the same bits. */
NB_INLINE void mm_rows(const struct nb_qjob *j, size_t rb, size_t pair, size_t ntok,
                       const int np, const int bits, const size_t gt)
{
    struct mm_state st;
    float32x4_t y[2][4];
#pragma GCC unroll 4
    for (int p = 0; p < np; p++)
        y[0][p] = y[1][p] = vdupq_n_f32(0.0f);
    st.w = nb_rb_tiles(j, rb);
    st.a = j->aq + 64 * pair;
    st.b = j->ablk + 8 * pair;
    size_t g = 0;
    if (gt)
        for (size_t full = j->ntiles / gt; g < full; g++)
            mm_group(j, &st, y, rb, g, gt, np, bits);
    for (; g < j->n_groups; g++)
        mm_group(j, &st, y, rb, g, nb_group_len(j, g), np, bits);
    size_t nrows = nb_rb_rows(j, rb);
#pragma GCC unroll 4
    for (int p = 0; p < np; p++) {
        size_t t = 2 * (pair + (size_t)p);
        float *out = j->y + t * j->ldy + 4 * rb;
        nb_store_rows(out, vuzp1q_f32(y[0][p], y[1][p]), nrows);
        if (t + 1 < ntok)
            nb_store_rows(out + j->ldy, vuzp2q_f32(y[0][p], y[1][p]), nrows);
    }
}

NB_INLINE void mm_rb(const struct nb_qjob *j, size_t ntok, size_t rb, size_t re, const int bits,
                     const size_t gt)
{
    size_t npairs = (ntok + 1) / 2;
    for (; rb < re; rb++) {
        size_t p = 0;
        for (; p + MM_PAIRS <= npairs; p += MM_PAIRS)
            mm_rows(j, rb, p, ntok, MM_PAIRS, bits, gt);
        for (; p + 2 <= npairs; p += 2)
            mm_rows(j, rb, p, ntok, 2, bits, gt);
        if (p < npairs)
            mm_rows(j, rb, p, ntok, 1, bits, gt);
    }
}

void NB_KERNEL(nb_qgemm_q8_i8mm)(const nb_qlayout *l, const void *w, const nb_qact *a, float *y,
                                 size_t ldy, size_t r0, size_t r1)
{
    nb_check_args(l, a, NB_ACT_PAIRS, r0, r1);
    struct nb_qjob j = nb_qjob_make(l, w, a, y, ldy, r1, 64, 8, (a->ntok + 1) / 2);
    if (l->bits == 4)
        NB_WITH_GT(&j, mm_rb, &j, a->ntok, nb_first_block(r0), (r1 + 3) / 4, 4);
    else
        NB_WITH_GT(&j, mm_rb, &j, a->ntok, nb_first_block(r0), (r1 + 3) / 4, 3);
}
