/* Internal to the aarch64 kernels (qkern_*.c): the variant entry points,
 * and the parts every variant shares: unpacking a tile to int8 codes,
 * per-group parameters, the tile loop of the int8 kernels, tail stores.
 * Each variant file is compiled with its own -march, so what is shared
 * lives here as static inline code, instantiated once per file. */
#ifndef NIBBLE_QKERN_NEON_H
#define NIBBLE_QKERN_NEON_H

#include <arm_neon.h>
#include <assert.h>
#include <string.h>

#include "qkern.h"
#include "qkern_ld.h"

/* The entry points of the variant files. meson builds each file a second
 * time with NB_LD1_X_FALLBACK (qkern_ld.h), its entry points named with
 * the suffix _ld1fb, for tests/test_kernels.c to compare with the
 * reference: only programs that call them link them in. */
#define NB_DECLARE_KERNELS(sfx)                                                                \
    void nb_qgemv_q8_neon##sfx(const nb_qlayout *l, const void *w, const nb_qact *a, float *y,  \
                               size_t r0, size_t r1);                                          \
    void nb_qgemm_q8_neon##sfx(const nb_qlayout *l, const void *w, const nb_qact *a, float *y,  \
                               size_t ldy, size_t r0, size_t r1);                              \
    void nb_qgemv_f32_neon##sfx(const nb_qlayout *l, const void *w, const float *x, float *y,   \
                                size_t r0, size_t r1);                                         \
    void nb_qgemv_q8_dotprod##sfx(const nb_qlayout *l, const void *w, const nb_qact *a,         \
                                  float *y, size_t r0, size_t r1);                             \
    void nb_qgemm_q8_dotprod##sfx(const nb_qlayout *l, const void *w, const nb_qact *a,         \
                                  float *y, size_t ldy, size_t r0, size_t r1);                 \
    void nb_qgemm_q8_i8mm##sfx(const nb_qlayout *l, const void *w, const nb_qact *a, float *y,  \
                               size_t ldy, size_t r0, size_t r1);
NB_DECLARE_KERNELS()
NB_DECLARE_KERNELS(_ld1fb)

/* The name a variant file gives an entry point in this build of it. */
#if defined(NB_LD1_X_FALLBACK)
#define NB_KERNEL(name) name##_ld1fb
#else
#define NB_KERNEL(name) name
#endif

#define NB_INLINE static inline __attribute__((always_inline))

/* Empty asm statements that make a value opaque to the optimizer. A
 * streamed pointer: otherwise it is rebuilt as base + offset, an add per
 * load since LD1 (multiple structures) has no offset form. A loaded vector:
 * otherwise the load is split into one scalar load per lane used. */
#define NB_OPAQUE_PTR(p) __asm__("" : "+r"(p))
#define NB_OPAQUE_VEC(v) __asm__("" : "+w"(v))
/* A vector whose 16-bit lanes are multiplied by element: the instruction
 * encodes that register in 4 bits, so it must be one of v0-v15. */
#define NB_LOW_VEC(v) __asm__("" : "+x"(v))

/* GCC's first scheduling pass hoists the next tiles' loads and unpacking
 * far ahead of their use and spills the codes: about 20% more
 * instructions in the decode loop. Its expansion of single-use values in
 * place (TER) starts the next tile's zero-point multiply before this
 * tile's last sdot, which then needs a register copy: a copy per tile
 * with groups of 32. Both are off in these files only; NB_WITH_TER turns
 * TER back on for a function where it does better (INT3 unpacking, the
 * fp32 path: 0.2 to 2% fewer instructions). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-schedule-insns", "no-tree-ter")
#define NB_WITH_TER __attribute__((optimize("tree-ter")))
#else
#define NB_WITH_TER
#endif

/* A tile's 128 codes as 8 vectors: c[k] holds columns 4k .. 4k+3 of the
 * tile for rows 0-3, row r in bytes 4r .. 4r+3 (one 32-bit lane per row). */
typedef struct nb_codes {
    int8x16_t c[8];
} nb_codes;

NB_INLINE nb_codes nb_unpack4(const uint8_t *p)
{
    const uint8x16_t lo = vdupq_n_u8(0x0F);
    uint8x16x4_t v = nb_ld1q_u8_x4(p);
    nb_codes r;
    for (int i = 0; i < 4; i++) {
        r.c[2 * i] = vreinterpretq_s8_u8(vandq_u8(v.val[i], lo));
        r.c[2 * i + 1] = vreinterpretq_s8_u8(vshrq_n_u8(v.val[i], 4));
    }
    return r;
}

/* INT3 planes back to codes in registers: low 2 bits of code k are bits
 * 2(k % 4) of plane k / 4, the high bit is bit k of the third plane (see
 * qpack.h). SLI puts that bit at bit 2 over the low bits, AND drops what
 * the shifts brought along. Shift counts must be literals, hence spelled out. */
NB_INLINE nb_codes nb_unpack3(const uint8_t *p)
{
    const uint8x16_t m = vdupq_n_u8(7);
    uint8x16x3_t v = nb_ld1q_u8_x3(p);
    uint8x16_t p0 = v.val[0], p1 = v.val[1], h = v.val[2];
    uint8x16_t u[8];
    u[0] = vandq_u8(vsliq_n_u8(p0, h, 2), m);
    u[1] = vandq_u8(vsliq_n_u8(vshrq_n_u8(p0, 2), vshrq_n_u8(h, 1), 2), m);
    u[2] = vandq_u8(vsliq_n_u8(vshrq_n_u8(p0, 4), vshrq_n_u8(h, 2), 2), m);
    u[3] = vandq_u8(vsliq_n_u8(vshrq_n_u8(p0, 6), vshrq_n_u8(h, 3), 2), m);
    u[4] = vandq_u8(vsliq_n_u8(p1, vshrq_n_u8(h, 4), 2), m);
    u[5] = vandq_u8(vsliq_n_u8(vshrq_n_u8(p1, 2), vshrq_n_u8(h, 5), 2), m);
    u[6] = vandq_u8(vsliq_n_u8(vshrq_n_u8(p1, 4), vshrq_n_u8(h, 6), 2), m);
    u[7] = vsliq_n_u8(vshrq_n_u8(p1, 6), vshrq_n_u8(h, 7), 2); /* nothing to drop */
    nb_codes r;
    for (int i = 0; i < 8; i++)
        r.c[i] = vreinterpretq_s8_u8(u[i]);
    return r;
}

NB_INLINE nb_codes nb_unpack(const int bits, const uint8_t *p)
{
    return bits == 4 ? nb_unpack4(p) : nb_unpack3(p);
}

/* The 4 rows' fp16 scales of one group, one 64-bit load. */
NB_INLINE float32x4_t nb_group_scales(const uint8_t *p)
{
    return vcvt_f32_f16(vreinterpret_f16_u8(vld1_u8(p)));
}

/* The 4 rows' zero points of one group as int32 lanes (a lane insert
 * rather than a dup: one LDR with any addressing mode). */
NB_INLINE int32x4_t nb_group_zeros(const uint8_t *p)
{
    uint32_t u;
    memcpy(&u, p, 4);
    uint16x8_t h = vmovl_u8(vreinterpret_u8_u32(vset_lane_u32(u, vdup_n_u32(0), 0)));
    return vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(h)));
}

/* The last row block may have fewer than 4 real rows: y stops at them. */
NB_INLINE void nb_store_rows(float *y, float32x4_t v, size_t n)
{
    switch (n) {
    case 1: vst1q_lane_f32(y, v, 0); break;
    case 2: vst1_f32(y, vget_low_f32(v)); break;
    case 3:
        vst1_f32(y, vget_low_f32(v));
        vst1q_lane_f32(y + 2, v, 2);
        break;
    default: vst1q_f32(y, v);
    }
}

/* What one call of a kernel works on, with the strides spelled out. */
struct nb_qjob {
    const uint8_t *w, *scales, *zeros;
    size_t ntiles, gtiles, n_groups, tile_bytes;
    const int8_t *aq;    /* activation codes */
    const int32_t *ablk; /* activation blocks {scale, nsum} */
    size_t a_step, b_step; /* per tile, all tokens: bytes of aq, entries of ablk */
    size_t ntok;
    float *y;
    size_t ldy, rows_end;
};

/* a_tok: activation bytes per token (or token pair) and tile; b_tok the
 * same in int32 block entries. */
NB_INLINE struct nb_qjob nb_qjob_make(const nb_qlayout *l, const void *w, const nb_qact *a,
                                      float *y, size_t ldy, size_t r1, size_t a_tok,
                                      size_t b_tok, size_t units)
{
    struct nb_qjob j;
    j.w = w;
    j.scales = j.w + l->scale_offset;
    j.zeros = j.w + l->zero_offset;
    j.ntiles = l->cols_p / NB_QTILE_COLS;
    j.gtiles = l->group ? (size_t)l->group / NB_QTILE_COLS : j.ntiles;
    j.n_groups = l->n_groups;
    j.tile_bytes = l->tile_bytes;
    j.aq = a->q;
    j.ablk = a->blk;
    j.a_step = units * a_tok;
    j.b_step = units * b_tok;
    j.ntok = a->ntok;
    j.y = y;
    j.ldy = ldy;
    j.rows_end = r1;
    return j;
}

/* Tiles in group g (the last one may be short). */
NB_INLINE size_t nb_group_len(const struct nb_qjob *j, size_t g)
{
    size_t left = j->ntiles - g * j->gtiles;
    return left < j->gtiles ? left : j->gtiles;
}

NB_INLINE const uint8_t *nb_rb_tiles(const struct nb_qjob *j, size_t rb)
{
    return j->w + rb * j->ntiles * j->tile_bytes;
}

NB_INLINE size_t nb_rb_rows(const struct nb_qjob *j, size_t rb)
{
    size_t left = j->rows_end - 4 * rb;
    return left < 4 ? left : 4;
}

enum { NB_K_SMULL, NB_K_SDOT };

#define NB_ACT_TILE(kind) ((kind) == NB_K_SDOT ? (size_t)32 : (size_t)128)

/* Activation codes of one tile for one token: SDOT reads v[0..1] (32
 * PLAIN codes), SMULL all 8 (the 128 bytes of the WIDE form). */
typedef struct nb_acts {
    int8x16_t v[8];
} nb_acts;

/* Decode streams a token's activations, two SDOT tiles (64 bytes) per
 * load; SMULL tiles already fill 8 registers, one is loaded at a time. */
#define NB_ACT_PER_LOAD(kind) ((kind) == NB_K_SDOT ? 2 : 1)

/* The activations of one tile at p, single loads at constant offsets
 * from p (several-register loads come in register tuples, whose copies
 * cost more than they save unless the pointer streams). */
NB_INLINE void nb_load_acts(const int kind, const int8_t *p, nb_acts *x)
{
    const int n = kind == NB_K_SDOT ? 2 : 8;
#pragma GCC unroll 8
    for (int k = 0; k < n; k++)
        x->v[k] = vld1q_s8(p + 16 * k);
}

/* Decode: NB_ACT_PER_LOAD(kind) tiles' activations from *p, which is
 * advanced past them. */
NB_INLINE void nb_stream_acts(const int kind, const int8_t **p, nb_acts *x)
{
    if (kind == NB_K_SDOT) {
        int8x16x4_t v = nb_ld1q_s8_x4(*p);
        x[0].v[0] = v.val[0], x[0].v[1] = v.val[1];
        x[1].v[0] = v.val[2], x[1].v[1] = v.val[3];
    } else {
        nb_load_acts(kind, *p, x);
    }
    *p += NB_ACT_PER_LOAD(kind) * NB_ACT_TILE(kind);
    NB_OPAQUE_PTR(*p);
}

/* acc[r] += sum over the tile's 32 columns of code[r][c] * a[c].
 * SDOT: a is 32 plain codes; each 4-column vector of codes meets one
 * 32-bit lane of a, rows stay in their lanes.
 * SMULL (no dotprod): a is the WIDE form, each 4 columns repeated for the
 * 4 rows, so a plain lane-wise multiply lines up. The 8 products of a lane
 * fit int16 (8 * 15 * 127), and so does the sum of two lanes: one pairwise
 * add, then one widening pairwise add into acc. */
NB_INLINE int32x4_t nb_dot_tile(const int kind, int32x4_t acc, const nb_codes *c,
                                const nb_acts *x)
{
#if defined(__ARM_FEATURE_DOTPROD)
    if (kind == NB_K_SDOT) { /* lanes must be literals (clang) */
        acc = vdotq_laneq_s32(acc, c->c[0], x->v[0], 0);
        acc = vdotq_laneq_s32(acc, c->c[1], x->v[0], 1);
        acc = vdotq_laneq_s32(acc, c->c[2], x->v[0], 2);
        acc = vdotq_laneq_s32(acc, c->c[3], x->v[0], 3);
        acc = vdotq_laneq_s32(acc, c->c[4], x->v[1], 0);
        acc = vdotq_laneq_s32(acc, c->c[5], x->v[1], 1);
        acc = vdotq_laneq_s32(acc, c->c[6], x->v[1], 2);
        return vdotq_laneq_s32(acc, c->c[7], x->v[1], 3);
    }
#endif
    (void)kind;
    int16x8_t lo = vmull_s8(vget_low_s8(c->c[0]), vget_low_s8(x->v[0]));
    int16x8_t hi = vmull_high_s8(c->c[0], x->v[0]);
#pragma GCC unroll 8
    for (int k = 1; k < 8; k++) {
        lo = vmlal_s8(lo, vget_low_s8(c->c[k]), vget_low_s8(x->v[k]));
        hi = vmlal_high_s8(hi, c->c[k], x->v[k]);
    }
    return vpadalq_s16(acc, vpaddq_s16(lo, hi));
}

/* Two activation block entries {scale bits, nsum}, or one (two = 0). */
NB_INLINE int32x4_t nb_load_blk(const int32_t *b, const int two)
{
    int32x4_t v = two ? vld1q_s32(b) : vcombine_s32(vld1_s32(b), vdup_n_s32(0));
    NB_OPAQUE_VEC(v);
    return v;
}

/* Zero points of ng (1, 2 or 4) consecutive groups of one row block
 * (4 bytes each, qpack.h) widened to int16: group k's 4 rows are the low
 * (k even) or high half of z[k / 2]. int16 rather than int32 saves a
 * widening step: the zero-point term is one widening multiply by the
 * block's nsum (nb_zterm). */
NB_INLINE void nb_load_zeros(const uint8_t *p, const int ng, int16x8_t z[2])
{
    if (ng == 4) {
        uint8x16_t v = vld1q_u8(p);
        z[0] = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(v)));
        z[1] = vreinterpretq_s16_u16(vmovl_high_u8(v));
    } else if (ng == 2) {
        z[0] = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(p)));
    } else { /* a lane insert rather than a dup: one LDR, any addressing mode */
        uint32_t u;
        memcpy(&u, p, 4);
        uint8x8_t v = vreinterpret_u8_u32(vset_lane_u32(u, vdup_n_u32(0), 0));
        z[0] = vreinterpretq_s16_u16(vmovl_u8(v));
    }
}

/* z * nsum for the 4 rows, the int32 sum's start (qkern.h): z from half
 * zhi of a nb_load_zeros vector, nsum from entry bhi of two block entries
 * {scale, nsum}, read as the low int16 of that nsum: |nsum| <= 32 * 127
 * fits, and AArch64 Linux is little-endian. Exact like the int32 multiply. */
NB_INLINE int32x4_t nb_zterm(int16x8_t z, const int zhi, int32x4_t blk, const int bhi)
{
    int16x8_t b = vreinterpretq_s16_s32(blk);
    if (zhi)
        return bhi ? vmull_high_laneq_s16(z, b, 6) : vmull_high_laneq_s16(z, b, 2);
    return bhi ? vmull_laneq_s16(vget_low_s16(z), b, 6) : vmull_laneq_s16(vget_low_s16(z), b, 2);
}

/* The same with zero points as int32 lanes (nb_group_zeros), where a
 * group's zero points serve many tiles: no register constraint. */
NB_INLINE int32x4_t nb_zterm32(int32x4_t z, int32x4_t blk, const int bhi)
{
    return bhi ? vmulq_laneq_s32(z, blk, 3) : vmulq_laneq_s32(z, blk, 1);
}

/* fp32 scales of ng (1, 2 or 4) consecutive groups of one row block
 * (8 bytes of fp16 each, qpack.h): group k's in s[k]. */
NB_INLINE void nb_load_scales(const uint8_t *p, const int ng, float32x4_t s[4])
{
    if (ng == 4) { /* as 4 halves: clang converts a high half with 2 instructions */
        uint8x8x4_t v = nb_ld1_u8_x4(p);
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++)
            s[k] = vcvt_f32_f16(vreinterpret_f16_u8(v.val[k]));
    } else if (ng == 2) {
        float16x8_t f = vreinterpretq_f16_u8(vld1q_u8(p));
        s[0] = vcvt_f32_f16(vget_low_f16(f));
        s[1] = vcvt_high_f32_f16(f);
    } else {
        s[0] = vcvt_f32_f16(vreinterpret_f16_u8(vld1_u8(p)));
    }
}

/* One tile of one row block for one token: the int32 sum starts at the
 * zero-point term acc = z * nsum, so no separate correction is needed.
 * blk holds two activation block entries; hi picks the second.
 * The first tile of a group multiplies instead of adding to f = 0: the
 * same value (a zero product is +0 here: a block with scale 0 is all
 * zero codes), one instruction and one register copy less. */
NB_INLINE float32x4_t nb_q8_tile(const int kind, float32x4_t f, int32x4_t acc, const nb_codes *c,
                                 const nb_acts *x, int32x4_t blk, const int hi, const int first)
{
    float32x4_t v = vcvtq_f32_s32(nb_dot_tile(kind, acc, c, x));
    float32x4_t sc = vreinterpretq_f32_s32(blk);
    if (first)
        return hi ? vmulq_laneq_f32(v, sc, 2) : vmulq_laneq_f32(v, sc, 0);
    return hi ? vfmaq_laneq_f32(f, v, sc, 2) : vfmaq_laneq_f32(f, v, sc, 0);
}

/* The running state of nb_q8_rows: nb row blocks x nt tokens. zp and sp
 * stream the row blocks' zero points and scales (decode steps only). */
struct nb_q8state {
    const uint8_t *w[2], *zp[2], *sp[2];
    const int8_t *a;
    const int32_t *b;
    int32x4_t z[2]; /* the group's zero points (not in decode steps) */
    float32x4_t f[2][4];
};

/* Decode: one tile of nb row blocks for the one token, activations x,
 * block entry hi of blk. Weights are streamed. */
NB_INLINE void nb_q8_tile_rows(struct nb_q8state *st, int32x4_t blk, const int hi,
                               const nb_acts *x, const int first, const int nb, const int bits,
                               const int kind)
{
#pragma GCC unroll 2
    for (int i = 0; i < nb; i++) {
        nb_codes c = nb_unpack(bits, st->w[i]);
        st->w[i] += bits == 4 ? 64 : 48;
        NB_OPAQUE_PTR(st->w[i]);
        int32x4_t acc = nb_zterm32(st->z[i], blk, hi);
        st->f[i][0] = nb_q8_tile(kind, st->f[i][0], acc, &c, x, blk, hi, first);
    }
}

/* Prefill: one tile of one row block for nt tokens, whose activations
 * for the tile lie side by side (token k's block entry is entry k of bv,
 * two per vector); they are loaded as the tokens come. */
NB_INLINE void nb_q8_tile_tokens(struct nb_q8state *st, const int32x4_t *bv, const int first,
                                 const int nt, const int bits, const int kind)
{
    nb_codes c = nb_unpack(bits, st->w[0]);
    st->w[0] += bits == 4 ? 64 : 48;
    NB_OPAQUE_PTR(st->w[0]);
#pragma GCC unroll 4
    for (int k = 0; k < nt; k++) {
        nb_acts x;
        nb_load_acts(kind, st->a + (size_t)k * NB_ACT_TILE(kind), &x);
        int32x4_t acc = nb_zterm32(st->z[0], bv[k / 2], k % 2);
        st->f[0][k] = nb_q8_tile(kind, st->f[0][k], acc, &c, &x, bv[k / 2], k % 2, first);
    }
}

/* One group of len tiles (a constant for the common group sizes, so the
 * tiles are straight-line code) for nb row blocks x nt tokens. Decode
 * (one token, nb row blocks) reads two tiles' block entries with one
 * load; prefill (nt tokens, one row block) reads all theirs for a tile
 * with one or two. */
NB_INLINE void nb_q8_group(const struct nb_qjob *j, struct nb_q8state *st, float32x4_t y[2][4],
                           size_t rb, size_t g, size_t len, const int nb, const int nt,
                           const int decode, const int bits, const int kind)
{
#pragma GCC unroll 2
    for (int i = 0; i < nb; i++)
        st->z[i] = nb_group_zeros(j->zeros + 4 * ((rb + i) * j->n_groups + g));
    /* f starts at the group's first tile: known here only when len is */
    const int known = __builtin_constant_p(len);
    if (!known)
#pragma GCC unroll 2
        for (int i = 0; i < nb; i++)
#pragma GCC unroll 4
            for (int k = 0; k < nt; k++)
                st->f[i][k] = vdupq_n_f32(0.0f);
    size_t n = len;
    int32x4_t bv[2];
    if (decode) {
        const int per = NB_ACT_PER_LOAD(kind);
        nb_acts x[2];
#pragma GCC unroll 2
        for (; n >= 2; n -= 2) {
            bv[0] = nb_load_blk(st->b, 1);
            nb_stream_acts(kind, &st->a, x);
            nb_q8_tile_rows(st, bv[0], 0, &x[0], known && n == len, nb, bits, kind);
            if (per == 1)
                nb_stream_acts(kind, &st->a, x + 1);
            nb_q8_tile_rows(st, bv[0], 1, &x[1], 0, nb, bits, kind);
            st->b += 4;
        }
        if (n) { /* one tile: not streamed, a pair might read past the end */
            bv[0] = nb_load_blk(st->b, 0);
            nb_load_acts(kind, st->a, x);
            nb_q8_tile_rows(st, bv[0], 0, &x[0], known && n == len, nb, bits, kind);
            st->a += NB_ACT_TILE(kind);
            st->b += 2;
        }
    } else {
#pragma GCC unroll 4
        for (size_t q = 0; q < n; q++) {
#pragma GCC unroll 2
            for (int m = 0; m < (nt + 1) / 2; m++)
                bv[m] = nb_load_blk(st->b + 4 * m, 2 * m + 1 < nt);
            nb_q8_tile_tokens(st, bv, known && q == 0, nt, bits, kind);
            st->a += j->a_step;
            st->b += j->b_step;
        }
    }
    /* scales are needed only now: loading them late keeps registers free */
#pragma GCC unroll 2
    for (int i = 0; i < nb; i++) {
        float32x4_t s = nb_group_scales(j->scales + 8 * ((rb + i) * j->n_groups + g));
#pragma GCC unroll 4
        for (int k = 0; k < nt; k++)
            y[i][k] = vfmaq_f32(y[i][k], st->f[i][k], s);
    }
}

/* Decode, groups of gt = 1, 2 or 4 tiles (32, 64 or 128 columns): one
 * step of 4 tiles holds ng = 4 / gt whole groups of nb row blocks. Their
 * zero points and scales come with one load each per row block (the
 * groups of a row block are side by side, qpack.h), the 4 tiles' block
 * entries with two and SDOT activations with one per 64 bytes, all from
 * streamed pointers: with small groups these loads and their address
 * arithmetic, not the multiplies, were what stood above the target. */
NB_INLINE void nb_q8_step(struct nb_q8state *st, float32x4_t y[2][4], const int nb,
                          const int bits, const int kind, const int gt)
{
    const int ng = 4 / gt, per = NB_ACT_PER_LOAD(kind);
    int16x8_t z[2][2];
    float32x4_t s[2][4];
#pragma GCC unroll 2
    for (int i = 0; i < nb; i++) {
        nb_load_zeros(st->zp[i], ng, z[i]);
        st->zp[i] += 4 * ng;
        NB_OPAQUE_PTR(st->zp[i]);
    }
    int32x4_t b[2];
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        b[h] = vld1q_s32(st->b);
        NB_LOW_VEC(b[h]);
        st->b += 4;
        NB_OPAQUE_PTR(st->b);
    }
    nb_acts x[2];
#pragma GCC unroll 4
    for (int t = 0; t < 4; t++) {
        const int g = t / gt, hi = t % 2;
        if (t % per == 0)
            nb_stream_acts(kind, &st->a, x);
#pragma GCC unroll 2
        for (int i = 0; i < nb; i++) {
            nb_codes c = nb_unpack(bits, st->w[i]);
            st->w[i] += bits == 4 ? 64 : 48;
            NB_OPAQUE_PTR(st->w[i]);
            int32x4_t acc = nb_zterm(z[i][g / 2], g % 2, b[t / 2], hi);
            st->f[i][0] = nb_q8_tile(kind, st->f[i][0], acc, &c, &x[t % per], b[t / 2], hi,
                                     t % gt == 0);
            if (t % gt < gt - 1)
                continue;
            if (g == 0) { /* late, as in nb_q8_group */
                nb_load_scales(st->sp[i], ng, s[i]);
                st->sp[i] += 8 * ng;
                NB_OPAQUE_PTR(st->sp[i]);
            }
            y[i][0] = vfmaq_f32(y[i][0], st->f[i][0], s[i][g]);
        }
    }
}

/* nb row blocks from rb times nt tokens from tok (all compile-time small):
 * each tile is unpacked once for the nt tokens, each token's activations
 * loaded once for the nb row blocks. gt is the tiles per group when it is
 * one of the common sizes, else 0; the last group may be short. */
NB_INLINE void nb_q8_rows(const struct nb_qjob *j, size_t rb, size_t tok, const int nb,
                          const int nt, const int decode, const int bits, const int kind,
                          const size_t gt)
{
    struct nb_q8state st;
    float32x4_t y[2][4];
#pragma GCC unroll 2
    for (int i = 0; i < nb; i++) {
        st.w[i] = nb_rb_tiles(j, rb + i);
        st.zp[i] = j->zeros + 4 * (rb + i) * j->n_groups;
        st.sp[i] = j->scales + 8 * (rb + i) * j->n_groups;
#pragma GCC unroll 4
        for (int k = 0; k < nt; k++)
            y[i][k] = st.f[i][k] = vdupq_n_f32(0.0f);
    }
    st.a = j->aq + tok * NB_ACT_TILE(kind);
    st.b = j->ablk + 2 * tok;
    size_t g = 0;
    if (decode && gt && 4 % gt == 0) {
        size_t steps = j->ntiles / 4;
        for (const int32_t *end = st.b + 8 * steps; st.b != end;)
            nb_q8_step(&st, y, nb, bits, kind, (int)gt);
        g = steps * (4 / gt);
    }
    if (gt)
        for (size_t full = j->ntiles / gt; g < full; g++)
            nb_q8_group(j, &st, y, rb, g, gt, nb, nt, decode, bits, kind);
    for (; g < j->n_groups; g++)
        nb_q8_group(j, &st, y, rb, g, nb_group_len(j, g), nb, nt, decode, bits, kind);
#pragma GCC unroll 2
    for (int i = 0; i < nb; i++)
#pragma GCC unroll 4
        for (int k = 0; k < nt; k++)
            nb_store_rows(j->y + (tok + k) * j->ldy + 4 * (rb + i), y[i][k],
                          nb_rb_rows(j, rb + i));
}

/* Calls call(..., gt) with gt a constant for groups of 32, 64 and 128. */
#define NB_WITH_GT(j, call, ...)                                                               \
    do {                                                                                       \
        switch ((j)->gtiles) {                                                                 \
        case 1: call(__VA_ARGS__, 1); break;                                                   \
        case 2: call(__VA_ARGS__, 2); break;                                                   \
        case 4: call(__VA_ARGS__, 4); break;                                                   \
        default: call(__VA_ARGS__, 0);                                                         \
        }                                                                                      \
    } while (0)

/* Decode: two row blocks at a time share each activation load. */
NB_INLINE void nb_q8_gemv_rb(const struct nb_qjob *j, size_t rb, size_t re, const int bits,
                             const int kind, const size_t gt)
{
    for (; rb + 1 < re; rb += 2)
        nb_q8_rows(j, rb, 0, 2, 1, 1, bits, kind, gt);
    if (rb < re)
        nb_q8_rows(j, rb, 0, 1, 1, 1, bits, kind, gt);
}

/* Prefill: four tokens at a time share each unpacked tile; a row block's
 * tiles stay in cache while the token groups go past. */
NB_INLINE void nb_q8_gemm_rb(const struct nb_qjob *j, size_t rb, size_t re, const int bits,
                             const int kind, const size_t gt)
{
    for (; rb < re; rb++) {
        size_t t = 0;
        for (; t + 4 <= j->ntok; t += 4)
            nb_q8_rows(j, rb, t, 1, 4, 0, bits, kind, gt);
        for (; t < j->ntok; t++)
            nb_q8_rows(j, rb, t, 1, 1, 0, bits, kind, gt);
    }
}

/* What every kernel entry assumes of its arguments (qkern.h). */
NB_INLINE void nb_check_args(const nb_qlayout *l, const nb_qact *a, int form, size_t r0,
                             size_t r1)
{
    assert((r0 % 4 == 0 || r0 == r1) && r0 <= r1 && r1 <= l->rows);
    assert(!a || (a->form == form && a->cols_p == l->cols_p));
    (void)l, (void)a, (void)form, (void)r0, (void)r1;
}

/* Each weight width's decode is a function of its own (kind, the same
 * constant at every call, still reaches it): with both widths inlined in
 * one body, GCC's register allocation of the hot loops got worse (pointer
 * swaps and copies, 4 to 6% more instructions). Named nb_qgemv_* like the
 * entry points, for tests/bench/icount_token.sh's per-function counts. */
#define NB_NOINLINE static __attribute__((noinline, unused))

NB_NOINLINE void nb_qgemv_q8_int4(const int kind, const struct nb_qjob *j, size_t rb, size_t re)
{
    NB_WITH_GT(j, nb_q8_gemv_rb, j, rb, re, 4, kind);
}

NB_WITH_TER NB_NOINLINE void nb_qgemv_q8_int3(const int kind, const struct nb_qjob *j, size_t rb,
                                             size_t re)
{
    NB_WITH_GT(j, nb_q8_gemv_rb, j, rb, re, 3, kind);
}

NB_INLINE void nb_q8_gemv(const int kind, const nb_qlayout *l, const void *w, const nb_qact *a,
                          float *y, size_t r0, size_t r1)
{
    nb_check_args(l, a, kind == NB_K_SDOT ? NB_ACT_PLAIN : NB_ACT_WIDE, r0, r1);
    assert(a->ntok == 1);
    struct nb_qjob j = nb_qjob_make(l, w, a, y, 0, r1, NB_ACT_TILE(kind), 2, 1);
    if (l->bits == 4)
        nb_qgemv_q8_int4(kind, &j, nb_first_block(r0), (r1 + 3) / 4);
    else
        nb_qgemv_q8_int3(kind, &j, nb_first_block(r0), (r1 + 3) / 4);
}

NB_INLINE void nb_q8_gemm(const int kind, const nb_qlayout *l, const void *w, const nb_qact *a,
                          float *y, size_t ldy, size_t r0, size_t r1)
{
    nb_check_args(l, a, kind == NB_K_SDOT ? NB_ACT_PLAIN : NB_ACT_WIDE, r0, r1);
    struct nb_qjob j = nb_qjob_make(l, w, a, y, ldy, r1, NB_ACT_TILE(kind), 2, a->ntok);
    if (l->bits == 4)
        NB_WITH_GT(&j, nb_q8_gemm_rb, &j, nb_first_block(r0), (r1 + 3) / 4, 4, kind);
    else
        NB_WITH_GT(&j, nb_q8_gemm_rb, &j, nb_first_block(r0), (r1 + 3) / 4, 3, kind);
}

#endif
