/* A NEON GEMV over plain weights (f32, f16, bf16), with the signature of
 * nb_gemv_ref (gemv.h). Real AWQ models keep the output layer in f16 or
 * f32: the reference spends 10 (f32) to 21 (f16) instructions per weight
 * there, against 0.2 for packed INT4. Four rows at a time share each load
 * of x; each row sums in 8 lanes (columns mod 8), added at the end, so
 * the result differs from the reference's column order by fp32 rounding
 * only, and is the same for any row range. */
#ifndef NIBBLE_GEMV_NEON_H
#define NIBBLE_GEMV_NEON_H

#include <stddef.h>

typedef void nb_gemv_fn(float *y, const void *w, int wtype, const float *x, size_t r0,
                        size_t r1, size_t cols);

/* The prefill GEMM, with the signature of nb_gemm_ref: tiles of rows x
 * tokens load each weight vector once per tile, and each output is summed
 * exactly as nb_gemv_neon sums it, so prefill and token-by-token decoding
 * give the same logits bit for bit. */
typedef void nb_gemm_fn(float *y, size_t ldy, const void *w, int wtype, const float *x,
                        size_t ntok, size_t r0, size_t r1, size_t cols);

nb_gemv_fn nb_gemv_neon; /* aarch64 only */
nb_gemm_fn nb_gemm_neon; /* aarch64 only */
/* The same tiles in portable C (gemv_generic.c), for other hosts: built
 * with the baseline flags, and on x86-64 again for AVX2, FMA and F16C. */
nb_gemv_fn nb_gemv_generic, nb_gemv_avx2;
nb_gemm_fn nb_gemm_generic, nb_gemm_avx2;

typedef struct nb_plain_set {
    const char *name;
    nb_gemv_fn *gemv;
    nb_gemm_fn *gemm;
} nb_plain_set;

/* The variants this build has and this CPU runs, slowest first. */
const nb_plain_set *nb_plain_sets(size_t *count);

/* The fastest of them: NEON on aarch64, AVX2 on x86-64 CPUs that have
 * it, else the portable one. */
nb_gemv_fn *nb_gemv_plain(void);
nb_gemm_fn *nb_gemm_plain(void);

#endif
