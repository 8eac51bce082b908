/* Plain weights (f32, f16, bf16: gemv.h's nb_wtype) as fp32 NEON
 * vectors, for the kernels that read them: the plain-weight GEMV
 * (gemv_neon.c) and the fast pass's RMSNorm (norm.c). aarch64 only. */
#ifndef NIBBLE_PLAIN_NEON_H
#define NIBBLE_PLAIN_NEON_H

#include <arm_neon.h>
#include <stddef.h>
#include <stdint.h>

#include "gemv.h"

/* Weights i .. i+7 of w as two fp32 vectors, exactly (every f16 and bf16
 * is an fp32). Always inlined, so that a constant wtype leaves one case. */
static inline __attribute__((always_inline)) void nb_plain_load8(const void *w, const int wtype,
                                                                 size_t i, float32x4_t *lo,
                                                                 float32x4_t *hi)
{
    if (wtype == NB_W_F16) {
        float16x8_t f = vreinterpretq_f16_u16(vld1q_u16((const uint16_t *)w + i));
        *lo = vcvt_f32_f16(vget_low_f16(f));
        *hi = vcvt_high_f32_f16(f);
    } else if (wtype == NB_W_BF16) { /* the upper half of an fp32 */
        uint16x8_t h = vld1q_u16((const uint16_t *)w + i);
        *lo = vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h), 16));
        *hi = vreinterpretq_f32_u32(vshll_high_n_u16(h, 16));
    } else { /* f32, and any other value as nb_weight_at reads it */
        *lo = vld1q_f32((const float *)w + i);
        *hi = vld1q_f32((const float *)w + i + 4);
    }
}

#endif
