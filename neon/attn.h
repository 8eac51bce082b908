/* Attention of one query head over a KV cache stored as fp16, in one
 * pass over the positions: score, online softmax (a running maximum and
 * sum; the partial output is rescaled when the maximum grows), weighted
 * values. Nothing of size n is stored, so a head needs no scratch and
 * heads run in parallel without sharing any.
 *   out[i] = sum_t softmax_t(scale * q . k_t) * v_t[i],  t < n
 * Keys and values of position t start at k + t * stride, v + t * stride
 * (stride = the cache row, so grouped-query heads read their kv head in
 * place). The weights' exp is neon/vexp.h's, 4 lanes at a time in the
 * NEON variant, one at a time in the reference and the portable variants
 * (same algorithm, same bits). The NEON variant keeps 4 lanes of partial
 * sums, the portable ones 8; the reference adds in column order: they
 * differ by fp32 rounding only. A head's result depends
 * on nothing but its inputs, whichever thread runs it. */
#ifndef NIBBLE_ATTN_H
#define NIBBLE_ATTN_H

#include <stddef.h>
#include <stdint.h>

typedef void nb_attend_fn(float *out, const float *q, const uint16_t *k, const uint16_t *v,
                          size_t stride, size_t n, size_t hd, float scale);

nb_attend_fn nb_attend_f16_ref;
nb_attend_fn nb_attend_f16_neon; /* aarch64 only */
/* Portable C (attn_generic.c), and its x86-64 build for AVX2, FMA, F16C. */
nb_attend_fn nb_attend_f16_generic, nb_attend_f16_avx2;

/* Grouped-query attention: the g query heads q + j * ldq (j < g) that
 * share one kv head, each into out + j * ldo. Every block of keys and
 * values is loaded (and converted from fp16) once for all of them, where
 * single-head calls read each cache row once per query head: 4 times for
 * Llama-3.2, 6 or 7 for Qwen2.5, from memory once the cache outgrows the
 * caches. Each head's result is bit for bit what the same variant's
 * nb_attend_fn gives it: the same operations in the same order per head,
 * only the loads shared, so outputs never depend on how heads are grouped
 * or spread over threads. Any g; the state of 16 heads is kept at once
 * (NB_ATTEND_GROUP), more are taken 16 at a time. */
typedef void nb_attend_group_fn(float *out, size_t ldo, const float *q, size_t ldq, size_t g,
                                const uint16_t *k, const uint16_t *v, size_t stride, size_t n,
                                size_t hd, float scale);

#define NB_ATTEND_GROUP 16

nb_attend_group_fn nb_attend_group_f16_ref;
nb_attend_group_fn nb_attend_group_f16_neon; /* aarch64 only */
nb_attend_group_fn nb_attend_group_f16_generic, nb_attend_group_f16_avx2;

/* A variant: its single-head and grouped forms (the same bits per head),
 * and how it reads the cache: the keys in rows (key_block 0) or in blocks
 * of positions (NB_ATTEND_KBLOCK: nb_attend_key_at), the values in rows
 * (val_block 0) or in tiles where head_dim allows (NB_ATTEND_VBLOCK:
 * nb_attend_val_at). */
typedef struct nb_attend_set {
    const char *name;
    nb_attend_fn *attend;
    nb_attend_group_fn *group;
    int key_block, val_block;
} nb_attend_set;

/* Keys in blocks of 8 positions, each block column by column: column c of
 * position t (c < stride, the cache row) at nb_attend_key_at(t, c,
 * stride), so that the 8 positions of a block sit side by side in one
 * vector of each column (the f16h scores multiply a whole block by one
 * element of q). A kv head's keys start at its first column's offset; a
 * cache of n positions takes n rounded up to 8 rows. */
#define NB_ATTEND_KBLOCK 8
static inline size_t nb_attend_key_at(size_t t, size_t c, size_t stride)
{
    return t / NB_ATTEND_KBLOCK * NB_ATTEND_KBLOCK * stride + c * NB_ATTEND_KBLOCK +
           t % NB_ATTEND_KBLOCK;
}

/* Values in tiles (val_block NB_ATTEND_VBLOCK) when head_dim is a
 * multiple of 8, else in rows: a block of 8 positions 8 columns at a time,
 * each tile its 8 positions' 8 columns one position after the other, so
 * that the rows a value kernel multiplies are 128 contiguous bytes (4 of
 * them one LD1) instead of 8 loads a cache row apart. Column c (c <
 * stride, the cache row) of position t at nb_attend_val_at(t, c, stride,
 * hd); a kv head's values start at its first column's offset. */
#define NB_ATTEND_VBLOCK 8
static inline size_t nb_attend_val_at(size_t t, size_t c, size_t stride, size_t hd)
{
    if (hd % NB_ATTEND_VBLOCK)
        return t * stride + c;
    return t / NB_ATTEND_VBLOCK * NB_ATTEND_VBLOCK * stride + c / 8 * 8 * NB_ATTEND_VBLOCK +
           t % NB_ATTEND_VBLOCK * 8 + c % 8;
}

/* The variants this build has and this CPU runs, slowest first. */
const nb_attend_set *nb_attend_sets(size_t *count);

/* The fastest of them: NEON on aarch64 (fp16 conversion is part of every
 * ARMv8 core), AVX2 on x86-64 CPUs that have it, else the portable one. */
nb_attend_fn *nb_attend_f16(void);
/* The grouped form of the same variant. */
nb_attend_group_fn *nb_attend_group_f16(void);

/* "f16h": the scores and the value sums in fp16 arithmetic, for the
 * int8-activation path of CPUs with FEAT_FP16 (asimdhp: Cortex-A76 on,
 * not the A72).
 * - Scores: each head's q is scaled and rounded to fp16 once (q' =
 *   fp16(q * scale)). The keys are in blocks of 8 positions
 *   (nb_attend_key_at), so one fp16 vector holds a column of 8 positions
 *   and one fused multiply-add by an element of q' (FMLA .8h by element)
 *   advances 8 scores, with no sum across lanes. Each score sums its
 *   columns in chains (nb_attend_f16h_chain: 16 columns for head_dim
 *   128) in fp16: the first product rounded, then each next one fused, in
 *   column order; each chain is widened to fp32 and added to the score in
 *   chain order (the last chain is shorter when the chain length does not
 *   divide head_dim). Chains of 8 (head_dim 64 to 127) go in pairs over
 *   the first head_dim / 16 * 16 columns: the second added to the first
 *   in fp16 (one rounding) before the pair is widened, one widening (4
 *   instructions per 8 lanes) instead of two, at an error between the
 *   chains' of 8 and of 16.
 * - Softmax, a superblock of NB_ATTEND_F16H_SUPER (64) positions at a
 *   time: the maximum raised once per superblock, the weights by
 *   neon/vexp.h's nb_exp_w in fp32 (to 2^-17: they are rounded to fp16
 *   next), their sum in 4 fp32 lanes (lanes L and L+4
 *   of each 8 positions into lane L, 8 positions at a time in order).
 * - Values: each weight is stored as fp16(w * NB_ATTEND_F16H_VSCALE)
 *   (2^-5: the exp gives it so scaled, and the weights' sum and the fp32
 *   output stay at that scale, whose quotient is the same, bit for bit,
 *   short of fp32 subnormals). Per output column, each 8 rows of the
 *   superblock are summed in fp16 (the first row's product, then fused
 *   multiply-adds in row order), the chunks of 8 in pairs (the second's
 *   sum added to the first's in fp16: one widening a pair), and that sum
 *   is added to the output: 8
 *   lanes per instruction where fp32 takes 4 and a conversion of the
 *   row, with fp16 sums too short to lose much. The scale keeps a pair's
 *   16 rows of the largest fp16 values (65504) at half the fp16 range:
 *   the sums cannot overflow; weights under 2^-9 of the largest lose
 *   relative precision to fp16's subnormals, each then off by at most
 *   2^-20 of the largest weight.
 * The reference does the same operations in the same order in portable
 * C (the fused fp16 multiply-add exactly, nb_f16_fma_ref), so the two
 * agree bit for bit, and a head's result does not depend on how heads
 * are grouped. It differs from the fp32 variants by the fp16 rounding of
 * q', of the scores' chains, of the weights and of the value partials
 * (tests/test_attn.c measures it). Keys in blocks (key_block 8), values
 * in tiles (val_block 8) when head_dim is a multiple of 8, else in rows.
 * head_dim up to NB_ATTEND_F16H_MAX_HD (the format allows 1024): past it,
 * the outputs are NaN. */
#define NB_ATTEND_F16H_MAX_HD 16384
#define NB_ATTEND_F16H_SUPER 64
#define NB_ATTEND_F16H_VSCALE 0x1p-5f /* 1 / (2 * 16): see above */
#define NB_ATTEND_F16H_VSHIFT 5       /* VSCALE = 2^-VSHIFT */

/* The f16h scores' chains: the largest power of 2 up to head_dim / 8,
 * 1 to 16 columns (16 for head_dim 128, 8 for 64), the fp16 sums as long
 * as those of 8 lanes over the columns would be. */
static inline size_t nb_attend_f16h_chain(size_t hd)
{
    size_t c = 1;
    while (c < 16 && 2 * c * 8 <= hd)
        c *= 2;
    return c;
}

nb_attend_fn nb_attend_f16h_ref;
nb_attend_group_fn nb_attend_group_f16h_ref;
nb_attend_fn nb_attend_f16h_neon;             /* aarch64 with FEAT_FP16 only */
nb_attend_group_fn nb_attend_group_f16h_neon; /* aarch64 with FEAT_FP16 only */

/* The f16h variant where this build and CPU have it (the auxiliary
 * vector's HWCAP_ASIMDHP, as qkern.c reads dotprod), else NULL. */
const nb_attend_set *nb_attend_f16h(void);

/* "f32b": fp32 arithmetic with the keys in blocks (nb_attend_key_at), for
 * the int8-activation path of CPUs without FEAT_FP16 (the A72).
 * - Scores: q' = q * scale in fp32, once per call; a block's 8
 *   positions in two vectors, each column of the block converted once and
 *   multiplied by an element of q' (FMLA .4s by element) for every head
 *   that shares it: each score is one chain of fused multiply-adds over
 *   the columns in order. No sum across lanes, and no conversion of a key
 *   per head.
 * - Softmax, a superblock of NB_ATTEND_F16H_SUPER (64) positions at a
 *   time, as f16h's: the maximum raised once per superblock, the weights
 *   by nb_exp_w (vexp.h, to 2^-17), their sum in 4 fp32 lanes (lanes L
 *   and L+4 of each 8 positions into lane L, in order).
 * - Values: per output column, the rows in order, each weight times its
 *   value fused into the fp32 sum.
 * The reference does the same operations in the same order (the two
 * agree bit for bit), and a head's result does not depend on how heads
 * are grouped. Keys in blocks (key_block 8), values in rows. */
nb_attend_fn nb_attend_f32b_ref;
nb_attend_group_fn nb_attend_group_f32b_ref;
nb_attend_fn nb_attend_f32b_neon;             /* aarch64 only */
nb_attend_group_fn nb_attend_group_f32b_neon; /* aarch64 only */

/* The f32b variant where this build has it (aarch64), else NULL. */
const nb_attend_set *nb_attend_f32b(void);

/* The fastest variant with fp32 arithmetic, nb_attend_f16()'s (the
 * --exact path's). */
const nb_attend_set *nb_attend_exact(void);
/* The attention of the int8-activation path: f16h where there is one,
 * else f32b where there is one, else nb_attend_exact(). */
const nb_attend_set *nb_attend_fast(void);

/* fp16 a * b + c rounded once (FMLA .8h), on fp16 bit patterns: the
 * reference's, exact for all finite inputs (NaN payloads aside). */
uint16_t nb_f16_fma_ref(uint16_t a, uint16_t b, uint16_t c);
/* The same through FMLA .8h, n values (aarch64 with FEAT_FP16 only; the
 * test holds the two together). */
void nb_f16h_fma_neon(uint16_t *d, const uint16_t *a, const uint16_t *b, const uint16_t *c,
                      size_t n);
/* out[i] = x[i] rounded to fp16, to nearest even. */
void nb_f32_to_f16_row(uint16_t *out, const float *x, size_t n);

#endif
