/* SwiGLU's gate (act.h): the plain-C reference and the NEON variant, the
 * same operations in the same order. */
#include "act.h"

#include <string.h>

#include "vexp.h"

/* Each step its own statement: no a * b + c for a compiler to fuse. */
static inline float silu_mul1(float g, float u)
{
    float e = nb_exp_ref(-fabsf(g));
    float d = 1.0f + e;
    float num = g < 0.0f ? e : 1.0f;
    float s = num / d;
    float gs = g * s;
    return gs * u;
}

void nb_silu_mul_ref(float *g, const float *u, size_t n)
{
    for (size_t i = 0; i < n; i++)
        g[i] = silu_mul1(g[i], u[i]);
}

#if defined(__aarch64__)
static inline float32x4_t silu_mul4(float32x4_t g, float32x4_t u)
{
    float32x4_t one = vdupq_n_f32(1.0f);
    float32x4_t e = nb_exp_neon(vnegq_f32(vabsq_f32(g)));
    float32x4_t d = vaddq_f32(one, e);
    float32x4_t num = vbslq_f32(vcltzq_f32(g), e, one);
    float32x4_t s = vdivq_f32(num, d);
    float32x4_t gs = vmulq_f32(g, s);
    return vmulq_f32(gs, u);
}

void nb_silu_mul_neon(float *g, const float *u, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        float32x4_t a = silu_mul4(vld1q_f32(g + i), vld1q_f32(u + i));
        float32x4_t b = silu_mul4(vld1q_f32(g + i + 4), vld1q_f32(u + i + 4));
        vst1q_f32(g + i, a);
        vst1q_f32(g + i + 4, b);
    }
    for (; i < n; i += 4) { /* the tail: at most 7 values, padded with zeros */
        size_t k = n - i < 4 ? n - i : 4;
        float tg[4] = {0}, tu[4] = {0};
        memcpy(tg, g + i, k * sizeof *g);
        memcpy(tu, u + i, k * sizeof *u);
        vst1q_f32(tg, silu_mul4(vld1q_f32(tg), vld1q_f32(tu)));
        memcpy(g + i, tg, k * sizeof *g);
    }
}
#endif

void nb_silu_mul_row(float *g, const float *u, size_t n)
{
#if defined(__aarch64__)
    nb_silu_mul_neon(g, u, n);
#else
    /* Elsewhere libm's expf: the reference's nine fmaf calls are library
     * calls on an x86-64 build without -mfma, 8 times slower per value. */
    for (size_t i = 0; i < n; i++)
        g[i] = nb_silu_mul_libm(g[i], u[i]);
#endif
}
