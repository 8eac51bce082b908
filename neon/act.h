/* SwiGLU's gate over a row, in place: g[i] <- silu(g[i]) * u[i], where
 * silu(g) = g * sigmoid(g) = g / (1 + e^-g). The fast pass's FFN
 * (models/fast.c) runs it on each token's rows; the reference pass keeps
 * libm's expf (nb_silu_mul_libm below).
 *
 * With e = exp(-|g|) from neon/vexp.h (its domain x <= 0, so e is in
 * [0, 1] and 1 + e in [1, 2]):
 *   sigmoid = 1 / (1 + e)  for g >= 0,   e / (1 + e)  for g < 0,
 * the numerator picked by the sign (g < 0) and one real division, then
 * (g * sigmoid) * u: no step cancels, and nothing overflows before the
 * final product with u. NEON 8 lanes at a time (the tail of n % 8
 * values through the same 4-lane operations on a zero-padded copy), and a
 * plain-C reference of the same operations in the same order, one
 * rounding each (vexp.h's fmaf / vfmaq, no other fused step; the project
 * builds C as -std=c11, where GCC does not contract a * b + c, and every
 * add here is its own statement, which clang's default contraction
 * keeps apart): the two agree bit for bit on every input, NaN payloads
 * aside (tests/test_act.c).
 *
 * Accuracy against the exact silu(g) * u (tests/test_act.c, against
 * float64): relative error below 5 x 2^-24 (so within 5 ulp, 3.13 ulp
 * the largest seen) wherever exp(-|g|) and g * sigmoid(g) are normal
 * floats, i.e. -87.3 <= g and 2.4e-38 <= |g|: the exp's 1 ulp, 1 + e,
 * the division and the product with g each round once (3.75 x 2^-24
 * the measured maximum over every such float g, u = 1), the product with u
 * once more (2^-24). Below g = -87.3, e is subnormal (absolute error up to 2^-149);
 * where g * sigmoid is subnormal it is rounded to a multiple of 2^-149:
 * there add (|g| + 1) * |u| * 2^-148 in absolute terms; a subnormal
 * result rounds by up to 2^-150.
 * Edges (u finite and nonzero):
 *   g = +0 or -0:   sigmoid 1/2, result g * 0.5 * u (a signed zero);
 *   g subnormal:    the same, g * 0.5 rounded to a multiple of 2^-149
 *                   (2^-149 gives 0): the absolute bound above;
 *   g >= 17:        1 + e rounds to 1, result g * u rounded once;
 *   g < -103.97, down to -FLT_MAX: e = 0 (vexp.h's clamp at -104),
 *                   result -0 * u (a signed zero); from -103.97 to -87.3
 *                   a tiny g * e * u (libm's version gives 0 below -88.7,
 *                   where expf(-g) overflows);
 *   g = +inf:       +inf * u;
 *   g = -inf:       NaN (-inf * 0), as libm's g / (1 + expf(-g)) gives;
 *   g or u NaN:     NaN.
 * With u = 0 the result is a signed zero, NaN where g * sigmoid is
 * infinite; with u infinite, infinite or NaN as g * sigmoid * u in IEEE
 * arithmetic. |g * sigmoid| <= |g| never overflows; the product with u
 * overflows to infinity as any float product does. No subnormal is flushed (the default FPCR on Linux). */
#ifndef NIBBLE_ACT_H
#define NIBBLE_ACT_H

#include <math.h>
#include <stddef.h>

/* silu(g) * u with libm's expf: the reference pass's (models/ref.c), and
 * nb_silu_mul_row's on hosts without NEON. */
static inline float nb_silu_mul_libm(float g, float u)
{
    return g / (1.0f + expf(-g)) * u;
}

/* g[i] <- silu(g[i]) * u[i] for i < n, in plain C. */
void nb_silu_mul_ref(float *g, const float *u, size_t n);

/* The same, 8 lanes at a time (aarch64 only). */
void nb_silu_mul_neon(float *g, const float *u, size_t n);

/* NEON on aarch64; elsewhere g / (1 + expf(-g)) * u with libm's expf
 * (the reference pass's formula): the reference's fmaf is a library call
 * on x86-64 builds without FMA. */
void nb_silu_mul_row(float *g, const float *u, size_t n);

#endif
