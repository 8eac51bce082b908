/* exp(x) for the attention's online softmax, where x = score - maximum
 * <= 0: four lanes at a time in NEON, and a plain-C reference of the same
 * operations (the attention of other hosts, and the tests' oracle: the two
 * agree bit for bit, NaN payloads aside).
 *
 * x = n ln2 + r with n = round(x / ln2) and |r| <= ln2 / 2 (ln2 in two
 * parts, each product fused), exp(r) by a degree-6 polynomial (minimax
 * for relative error on [-0.3466, 0.3466], 2e-9 before rounding), times
 * 2^n built in the exponent bits. The coefficients carry a factor 2^-64
 * and the power is 2^(n + 64): that power is a normal number down to
 * x = -104, so results below FLT_MIN come out of a single rounding (a
 * correct gradual underflow) instead of a separate subnormal case, and
 * the product is exact wherever the result is normal. x is clamped to
 * -104 first, where exp rounds to 0: -inf gives 0, not NaN. Domain: x <= 44
 * (2^(n + 64) overflows the exponent beyond); NaN gives NaN. Accuracy
 * (tests/test_attn.c): within 1 ulp of the correctly rounded exp for
 * normal results. */
#ifndef NIBBLE_VEXP_H
#define NIBBLE_VEXP_H

#include <math.h>
#include <stdint.h>

#include "f16.h"

#if defined(__aarch64__)
#include <arm_neon.h>
#endif

#define NB_EXP_MIN (-104.0f)
#define NB_EXP_LOG2E 1.44269502f
/* 1.5 * 2^23 rounds x / ln2 to an integer in the low mantissa bits; the
 * 191 added there is n's exponent bias, 127 + 64. */
#define NB_EXP_SHIFT (12582912.0f + 191.0f)
#define NB_EXP_LN2_HI 0.693147182f
#define NB_EXP_LN2_LO (-1.90465421e-09f)
#define NB_EXP_C0 (1.0f * 0x1p-64f)
#define NB_EXP_C1 (1.0f * 0x1p-64f)
#define NB_EXP_C2 (0.499999911f * 0x1p-64f)
#define NB_EXP_C3 (0.166664198f * 0x1p-64f)
#define NB_EXP_C4 (0.0416682251f * 0x1p-64f)
#define NB_EXP_C5 (0.00837482233f * 0x1p-64f)
#define NB_EXP_C6 (0.00138368376f * 0x1p-64f)

/* fmaf, never a multiply and an add: the two variants agree because every
 * step rounds once in both. */
static inline float nb_exp_ref(float x)
{
    x = x < NB_EXP_MIN ? NB_EXP_MIN : x;
    float z = fmaf(x, NB_EXP_LOG2E, NB_EXP_SHIFT);
    float n = z - NB_EXP_SHIFT;
    float r = fmaf(-n, NB_EXP_LN2_HI, x);
    r = fmaf(-n, NB_EXP_LN2_LO, r);
    float q = fmaf(NB_EXP_C6, r, NB_EXP_C5);
    q = fmaf(q, r, NB_EXP_C4);
    q = fmaf(q, r, NB_EXP_C3);
    q = fmaf(q, r, NB_EXP_C2);
    q = fmaf(q, r, NB_EXP_C1);
    q = fmaf(q, r, NB_EXP_C0);
    return q * nb_bits_to_f32(nb_f32_to_bits(z) << 23); /* 2^(n + 64) */
}

#if defined(__aarch64__)
static inline float32x4_t nb_exp_neon(float32x4_t x)
{
    x = vmaxq_f32(x, vdupq_n_f32(NB_EXP_MIN)); /* keeps a NaN, as the reference */
    float32x4_t z = vfmaq_f32(vdupq_n_f32(NB_EXP_SHIFT), x, vdupq_n_f32(NB_EXP_LOG2E));
    float32x4_t n = vsubq_f32(z, vdupq_n_f32(NB_EXP_SHIFT));
    float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(NB_EXP_LN2_HI));
    r = vfmsq_f32(r, n, vdupq_n_f32(NB_EXP_LN2_LO));
    float32x4_t q = vfmaq_f32(vdupq_n_f32(NB_EXP_C5), vdupq_n_f32(NB_EXP_C6), r);
    q = vfmaq_f32(vdupq_n_f32(NB_EXP_C4), q, r);
    q = vfmaq_f32(vdupq_n_f32(NB_EXP_C3), q, r);
    q = vfmaq_f32(vdupq_n_f32(NB_EXP_C2), q, r);
    q = vfmaq_f32(vdupq_n_f32(NB_EXP_C1), q, r);
    q = vfmaq_f32(vdupq_n_f32(NB_EXP_C0), q, r);
    uint32x4_t p = vshlq_n_u32(vreinterpretq_u32_f32(z), 23);
    return vmulq_f32(q, vreinterpretq_f32_u32(p));
}
#endif

#endif
