/* RMSNorm of the fast pass (models/fast.c): out = x / sqrt(mean(x^2) + eps)
 * * g over a row of n values, g of type gtype as gemv.h's nb_weight_at
 * reads it (f16, bf16, anything else f32). The reference pass, the AWQ
 * code and the per-head q/k norms keep gemv.h's nb_rmsnorm_ref, whose
 * one fp32 sum in element order cost 7 instructions per value under qemu
 * (cortex-a76, n = 1536).
 *
 * The sum of squares is in float64, in 8 lanes (value i in lane i % 8),
 * the lanes added as ((0 + 4) + (2 + 6)) + ((1 + 5) + (3 + 7)); then in
 * float64 the mean, + eps, 1 / sqrt, rounded once to a float inv; then
 * out[i] = (x[i] * inv) * g[i] in fp32, nb_rmsnorm_ref's order. The
 * square of a float is exact in float64, so a fused and an unfused
 * multiply-add give the same bits: the NEON variant (fmla .2d) and the
 * plain-C reference agree bit for bit whatever a compiler contracts, on
 * every input, NaN payloads aside (tests/test_norm.c). Under qemu
 * (cortex-a76, n = 1536, f32 weights) the NEON variant runs 2.56
 * instructions per value, its sum's loop 21 per 16 values where fp32
 * lanes would take 9 (GCC 12). In exchange the error does not grow with n
 * (an fp32 sum's does: 8 fp32 lanes err by up to 10 x 2^-24 at n = 8960,
 * measured), and no sum overflows or underflows (nb_rmsnorm_ref's fp32
 * squares overflow beyond 1.8e19 and turn subnormal below 1.1e-19).
 *
 * Accuracy against x / sqrt(mean(x^2) + eps) * g in exact arithmetic:
 * relative error within 3 x 2^-24 + 2^-33 wherever inv, x * inv and the
 * result are normal floats: inv, x * inv and the product with g round
 * once each (2^-24 relative); the float64 sum and steps add at most
 * (n / 16 + 8) 2^-53, the products of those terms 2^-46: together under
 * 2^-33 for n <= 2^23. Measured: 2.67 x 2^-24. A subnormal x * inv or
 * result adds (|g| + 1) 2^-150 in absolute terms. inv is normal while
 * mean(x^2) + eps <= 2^252 (a root mean square up to 8.5e37); above, up
 * to FLT_MAX, it is subnormal, with up to 2 bits fewer.
 * Edges: a zero row gives zeros (signed as x * g) for eps > 0, NaN for
 * eps = 0 (1 / sqrt(0) = inf, times 0), as nb_rmsnorm_ref does; an
 * infinite x gives NaN there and zeros elsewhere (inv = 0); a NaN x, NaN
 * throughout; n = 0 writes nothing. out may be x; otherwise the two do not
 * overlap. */
#ifndef NIBBLE_NORM_H
#define NIBBLE_NORM_H

#include <stddef.h>

/* mean(x^2) in float64, the lanes added in the order above: the norm's
 * first half, apart for tests/test_norm.c (a change of summation order
 * shows in its bits, and hardly ever in the norm's). NaN for n = 0. */
double nb_mean_square_ref(const float *x, size_t n);
double nb_mean_square_neon(const float *x, size_t n); /* aarch64 only */

/* out = rmsnorm(x) * g in plain C. */
void nb_rmsnorm_lanes_ref(float *out, const float *x, const void *g, int gtype, size_t n,
                          float eps);

/* The same, 8 values at a time (aarch64 only). */
void nb_rmsnorm_lanes_neon(float *out, const float *x, const void *g, int gtype, size_t n,
                           float eps);

/* NEON on aarch64; elsewhere the plain-C reference (no library call in
 * it, and the compiler vectorizes its lanes). */
void nb_rmsnorm_row(float *out, const float *x, const void *g, int gtype, size_t n, float eps);

#endif
