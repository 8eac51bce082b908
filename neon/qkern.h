/* Kernels over packed INT4/INT3 weights (qpack.h): decode GEMV and
 * prefill GEMM with int8 activations (W4A8), an exact GEMV with fp32
 * activations (W4A16), their plain-C references, and run-time selection
 * of the variant the CPU can run.
 *
 * int8 activations: each token is quantized once (nb_qact_quantize) in
 * blocks of NB_QACT_BLOCK = 32 columns, symmetric, scale amax / 127, codes
 * in -127..127, round to nearest even; every block also keeps -sum(codes)
 * so the weight zero point costs one multiply per block:
 *     sum_c (q - z) a_c = sum_c q a_c + z * (-sum_c a_c).
 * One quantized token is shared by every row, thread and tensor with the
 * same input. What a kernel computes for row r (exactly, in this order,
 * which is why every variant matches its reference bit for bit):
 *     for each weight group g:  f = 0
 *         for each 32-column tile b of g:
 *             i = z_g * nsum_b + sum_c q_c a_c          (int32, exact)
 *             f = fmaf((float)i, scale_b, f)
 *         y = fmaf(f, s_g, y)                             (y starts at 0)
 *
 * Row ranges: every kernel computes rows [r0, r1) and writes y only
 * there; r0 must be a multiple of 4 and r1 a multiple of 4 or `rows`, so
 * a thread pool can split a tensor between threads. A row's result does
 * not depend on the split. An empty range writes nothing, wherever it
 * starts (a split's last piece can be [rows, rows) with rows not a
 * multiple of 4): kernels walk the 4-row blocks [nb_first_block(r0),
 * (r1 + 3) / 4), which is empty then. */
#ifndef NIBBLE_QKERN_H
#define NIBBLE_QKERN_H

#include <stddef.h>
#include <stdint.h>

#include "qpack.h"

#define NB_QACT_BLOCK 32

/* The first 4-row block of rows [r0, r1): r0 / 4 for the ranges above,
 * and past the last block of an empty range. */
static inline size_t nb_first_block(size_t r0)
{
    return (r0 + 3) / 4;
}

/* How a kernel set wants quantized activations laid out in memory. All
 * forms are block-major (block b of every token, then block b + 1), so a
 * kernel pass over a few tokens finds them side by side. */
enum nb_qact_form {
    NB_ACT_PLAIN, /* codes [block][tok][32]: for sdot and the references */
    NB_ACT_WIDE,  /* codes [block][tok][8][4 copies of 4 columns]: for the
                     smull kernels on cores without dotprod (4x the memory) */
    NB_ACT_PAIRS  /* [block][tok / 2][4][2 tokens][8 columns]: the operand
                     shape of smmla (i8mm); an odd last token gets a zero twin */
};

typedef struct nb_qact {
    size_t cols, cols_p, n_blocks; /* n_blocks = cols_p / 32 */
    size_t ntok, max_tok;
    int form;
    int8_t *q;
    /* per block: PLAIN and WIDE: [block][tok][2] = {scale bits, nsum};
     * PAIRS: [block][tok / 2][8] = {scale t0, t1, t0, t1 bits, nsum t0, t1,
     * t0, t1}. Scales are fp32 stored by their bits. */
    int32_t *blk;
} nb_qact;

/* Buffers for up to max_tok tokens of cols columns (any form): 0, or -1
 * when out of memory. nb_qact_free releases them. */
int nb_qact_init(nb_qact *a, size_t cols, size_t max_tok);
void nb_qact_free(nb_qact *a);

/* Quantizes tokens x[t * ldx .. + cols) for t < ntok (<= max_tok) into
 * the given form. Columns past cols are zero. */
void nb_qact_quantize(nb_qact *a, const float *x, size_t ldx, size_t ntok, int form);

/* The parts of token t's quantization, whatever the form: code of column
 * c, and block b's scale and -sum(codes). */
int nb_qact_code(const nb_qact *a, size_t t, size_t c);
float nb_qact_scale(const nb_qact *a, size_t t, size_t b);
int32_t nb_qact_nsum(const nb_qact *a, size_t t, size_t b);

/* y[r] for r in [r0, r1); a holds one token (ntok 1, form gemv_form). */
typedef void nb_qgemv_fn(const nb_qlayout *l, const void *w, const nb_qact *a, float *y,
                         size_t r0, size_t r1);
/* y[t * ldy + r] for every token t of a (form gemm_form), r in [r0, r1). */
typedef void nb_qgemm_fn(const nb_qlayout *l, const void *w, const nb_qact *a, float *y,
                         size_t ldy, size_t r0, size_t r1);
/* Exact path: y[r] = sum_g s_g * sum_c (q_c - z_g) * x[c] in fp32, x[cols]
 * (nothing past cols is read). */
typedef void nb_qgemv_f32_fn(const nb_qlayout *l, const void *w, const float *x, float *y,
                             size_t r0, size_t r1);

typedef struct nb_qkernels {
    const char *name;  /* "ref", "generic", "avx2", "neon", "dotprod", "i8mm" */
    int gemv_form;     /* the activation form gemv reads */
    int gemm_form;     /* the one gemm reads */
    nb_qgemv_fn *gemv; /* decode */
    nb_qgemm_fn *gemm; /* prefill: each weight tile unpacked once per few tokens */
    nb_qgemv_f32_fn *gemv_f32;
    unsigned needs; /* NB_CPU_* features the set requires */
} nb_qkernels;

#define NB_CPU_DOTPROD 1u
#define NB_CPU_I8MM 2u
#define NB_CPU_AVX2 4u /* with FMA and F16C (x86-64-v3) */

/* Features of this CPU (getauxval on aarch64 Linux, cpuid on x86-64, 0
 * elsewhere). */
unsigned nb_cpu_features(void);

/* How many of a list of variants (slowest first, compiled for this host)
 * this CPU runs: on x86-64 the last one is the AVX2 build, which needs
 * AVX2, FMA and F16C; elsewhere all of them. */
size_t nb_runnable_variants(size_t compiled);

/* The set in use: "auto" (the fastest this CPU runs) until selected. */
const nb_qkernels *nb_kernels(void);

/* Selects a set by name (as above) or "auto": 0, or -1 when the
 * name is unknown or this CPU cannot run it (the selection is kept). */
int nb_kernels_select(const char *name);

/* The named set ("auto" included), or NULL when unknown or unsupported. */
const nb_qkernels *nb_kernels_get(const char *name);

/* Every set this build has, supported or not: list[i] for i < count. */
const nb_qkernels *const *nb_kernels_all(size_t *count);

/* Plain-C references (the "ref" set): the int8 ones read any form. */
void nb_qgemv_q8_ref(const nb_qlayout *l, const void *w, const nb_qact *a, float *y, size_t r0,
                     size_t r1);
void nb_qgemm_q8_ref(const nb_qlayout *l, const void *w, const nb_qact *a, float *y, size_t ldy,
                     size_t r0, size_t r1);
/* Exact path in the order of the SIMD one: per row and group, four
 * partial sums by column mod 4, fused multiply-adds in column order,
 * added as (p0 + p1) + (p2 + p3), then y = fmaf(sum, s_g, y). It differs
 * from nb_qgemv_ref (qpack.h) only by fp32 rounding. */
void nb_qgemv_f32_ref(const nb_qlayout *l, const void *w, const float *x, float *y, size_t r0,
                      size_t r1);

#endif
