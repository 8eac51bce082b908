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
 * normal results.
 *
 * nb_exp_w_ref / nb_exp_w_neon, further down: a cheaper exp for weights
 * that are rounded to fp16 next, correct to 2^-17 where that rounding
 * errs by up to 2^-12. */
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

/* exp(x) for softmax weights rounded to fp16 next (an 11-bit significand:
 * up to 2^-12 relative), with nb_exp's reduction, clamp, 2^-64 scaling
 * and exponent bits, and the accuracy fp16 cannot tell cut away:
 *
 *   ln2 in one part: r is off by 1.9e-9 |n|, and exp by as much relative:
 *     at most 2.9e-7 (n >= -150);
 *   degree 4: minimax for relative error on [-0.34658, 0.34658] with
 *     c0 = 1, 3.56e-6 before rounding. c0 = 1 keeps exp(0) = 1 exactly, so
 *     the maximum's weight, or a rescale by exp(0), changes nothing (with
 *     c0 free the worst error is 2.9e-6 instead of 3.9e-6).
 *
 * The polynomial is (c0 + r^2 ((c2 + c3 r) + c4 r^2)) + c1 r. FMLA
 * overwrites its addend, so a step whose addend is a constant costs a
 * register copy: Horner's form pays one per step, this one two (c2, c0).
 * c1 r comes last, not in Estrin's usual c0 + c1 r, because r's last use
 * in the last step lets GCC sum in place; the usual form costs GCC 12 a
 * copy more. 14 instructions per 4 lanes against nb_exp_neon's 20 (GCC 12
 * and Clang 14, -O2 and -O3). Each step rounds once in both variants
 * (fmaf where NEON fuses; no product feeds a separate addition, which
 * contraction could fuse in one variant and not the other): they agree
 * bit for bit.
 *
 * Accuracy (tests/test_vexp.c): relative error below 2^-17 for normal
 * results, at most 3.89e-6 = 2^-17.97 over every float of [-87.34, 0]; a
 * subnormal result is within 2^-17 exp(x) + 2^-150 (one rounding).
 * Domain x <= 0 (up to 44 works, as for nb_exp); -inf gives +0, NaN gives
 * NaN. */
#define NB_EXP_W_C0 (1.0f * 0x1p-64f)
#define NB_EXP_W_C1 (0.999951541f * 0x1p-64f)
#define NB_EXP_W_C2 (0.499959618f * 0x1p-64f)
#define NB_EXP_W_C3 (0.168086335f * 0x1p-64f)
#define NB_EXP_W_C4 (0.0423805378f * 0x1p-64f)

/* nb_exp_w_ref(x) * 2^-e (0 <= e <= 40), as cheap: n's exponent bias in
 * the shift constant lowered by e, which leaves n and r as they were (the
 * constant stays an integer). For weights that are scaled next anyway. */
static inline float nb_exp_ws_ref(float x, int e)
{
    x = x < NB_EXP_MIN ? NB_EXP_MIN : x;
    float z = fmaf(x, NB_EXP_LOG2E, NB_EXP_SHIFT - (float)e);
    float n = z - (NB_EXP_SHIFT - (float)e);
    float r = fmaf(-n, NB_EXP_LN2_HI, x);
    float r2 = r * r;
    float b = fmaf(NB_EXP_W_C3, r, NB_EXP_W_C2);
    b = fmaf(NB_EXP_W_C4, r2, b);
    float q = fmaf(b, r2, NB_EXP_W_C0);
    q = fmaf(NB_EXP_W_C1, r, q);
    return q * nb_bits_to_f32(nb_f32_to_bits(z) << 23); /* 2^(n + 64 - e) */
}

static inline float nb_exp_w_ref(float x)
{
    return nb_exp_ws_ref(x, 0);
}

#if defined(__aarch64__)
static inline float32x4_t nb_exp_ws_neon(float32x4_t x, int e)
{
    const float shift = NB_EXP_SHIFT - (float)e;
    x = vmaxq_f32(x, vdupq_n_f32(NB_EXP_MIN)); /* keeps a NaN, as the reference */
    float32x4_t z = vfmaq_f32(vdupq_n_f32(shift), x, vdupq_n_f32(NB_EXP_LOG2E));
    float32x4_t n = vsubq_f32(z, vdupq_n_f32(shift));
    float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(NB_EXP_LN2_HI));
    float32x4_t r2 = vmulq_f32(r, r);
    float32x4_t b = vfmaq_f32(vdupq_n_f32(NB_EXP_W_C2), vdupq_n_f32(NB_EXP_W_C3), r);
    b = vfmaq_f32(b, vdupq_n_f32(NB_EXP_W_C4), r2);
    float32x4_t q = vfmaq_f32(vdupq_n_f32(NB_EXP_W_C0), b, r2);
    q = vfmaq_f32(q, vdupq_n_f32(NB_EXP_W_C1), r);
    uint32x4_t p = vshlq_n_u32(vreinterpretq_u32_f32(z), 23);
    return vmulq_f32(q, vreinterpretq_f32_u32(p));
}

static inline float32x4_t nb_exp_w_neon(float32x4_t x)
{
    return nb_exp_ws_neon(x, 0);
}
#endif

#endif
