#include "gemv_neon.h"

#include "f16.h"
#include "gemv.h"

#if defined(__aarch64__)
#include <arm_neon.h>

#define INLINE static inline __attribute__((always_inline))

/* Weights i .. i+7 of w as two fp32 vectors. */
INLINE void load8(const void *w, const int wtype, size_t i, float32x4_t *lo, float32x4_t *hi)
{
    if (wtype == NB_W_F32) {
        *lo = vld1q_f32((const float *)w + i);
        *hi = vld1q_f32((const float *)w + i + 4);
        return;
    }
    uint16x8_t h = vld1q_u16((const uint16_t *)w + i);
    if (wtype == NB_W_F16) {
        float16x8_t f = vreinterpretq_f16_u16(h);
        *lo = vcvt_f32_f16(vget_low_f16(f));
        *hi = vcvt_high_f32_f16(f);
    } else { /* bf16: the upper half of an fp32 */
        *lo = vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h), 16));
        *hi = vreinterpretq_f32_u32(vshll_high_n_u16(h, 16));
    }
}

INLINE float elem(const void *w, const int wtype, size_t i)
{
    if (wtype == NB_W_F16)
        return nb_f16_to_f32(((const uint16_t *)w)[i]);
    if (wtype == NB_W_BF16)
        return nb_bf16_to_f32(((const uint16_t *)w)[i]);
    return ((const float *)w)[i];
}

/* y[r .. r+n) for n = 4 or 1 rows. */
INLINE void rows(float *y, const void *w, const int wtype, const float *x, size_t r,
                 size_t cols, const int n)
{
    float32x4_t acc[4][2];
    for (int k = 0; k < n; k++)
        acc[k][0] = acc[k][1] = vdupq_n_f32(0.0f);
    size_t c = 0;
    for (; c + 8 <= cols; c += 8) {
        float32x4_t x0 = vld1q_f32(x + c), x1 = vld1q_f32(x + c + 4);
        for (int k = 0; k < n; k++) {
            float32x4_t lo, hi;
            load8(w, wtype, (r + (size_t)k) * cols + c, &lo, &hi);
            acc[k][0] = vfmaq_f32(acc[k][0], lo, x0);
            acc[k][1] = vfmaq_f32(acc[k][1], hi, x1);
        }
    }
    for (int k = 0; k < n; k++) {
        float s = vaddvq_f32(vaddq_f32(acc[k][0], acc[k][1]));
        for (size_t t = c; t < cols; t++)
            s += elem(w, wtype, (r + (size_t)k) * cols + t) * x[t];
        y[r + (size_t)k] = s;
    }
}

INLINE void gemv(float *y, const void *w, const int wtype, const float *x, size_t r0, size_t r1,
                 size_t cols)
{
    size_t r = r0;
    for (; r + 4 <= r1; r += 4)
        rows(y, w, wtype, x, r, cols, 4);
    for (; r < r1; r++)
        rows(y, w, wtype, x, r, cols, 1);
}

void nb_gemv_neon(float *y, const void *w, int wtype, const float *x, size_t r0, size_t r1,
                  size_t cols)
{
    switch (wtype) {
    case NB_W_F16: gemv(y, w, NB_W_F16, x, r0, r1, cols); break;
    case NB_W_BF16: gemv(y, w, NB_W_BF16, x, r0, r1, cols); break;
    default: gemv(y, w, NB_W_F32, x, r0, r1, cols);
    }
}

nb_gemv_fn *nb_gemv_plain(void)
{
    return nb_gemv_neon;
}
#else
nb_gemv_fn *nb_gemv_plain(void)
{
    return nb_gemv_ref;
}
#endif
