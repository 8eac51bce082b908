/* Portable 8-lane float vectors for the generic kernel files
 * (gemv_generic.c, attn_generic.c), in GCC/Clang vector types: one AVX
 * register, two SSE or NEON ones. Arrays of scalars indexed in loops would
 * live on the stack, stored at every step. Every function taking or
 * returning one is inlined, so GCC's note that the ABI of such calls
 * changes with AVX does not apply. The AVX2 build converts fp16 with F16C
 * and fuses multiply-adds; elsewhere a multiply and an add (ISO C: never
 * contracted by GCC). */
#ifndef NIBBLE_GENERIC_VEC_H
#define NIBBLE_GENERIC_VEC_H

#include <stdint.h>
#include <string.h>

#include "f16.h"
#include "gemv.h"

#if defined(__F16C__) || defined(__FMA__)
#include <immintrin.h>
#endif

#define INLINE static inline __attribute__((always_inline))

typedef float v8f __attribute__((vector_size(32)));
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wunknown-warning-option"
#endif
#pragma GCC diagnostic ignored "-Wpsabi"

INLINE v8f load_f32(const float *p)
{
    v8f v;
    memcpy(&v, p, sizeof v);
    return v;
}

INLINE v8f madd(v8f a, v8f b, v8f c)
{
#if defined(__FMA__) && defined(__AVX__)
    return (v8f)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
#else
    return a * b + c;
#endif
}

/* fp16 values h[0..7] as fp32. */
INLINE v8f load_f16(const uint16_t *h)
{
#if defined(__F16C__)
    return (v8f)_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)h));
#else
    float f[8];
    for (int l = 0; l < 8; l++)
        f[l] = nb_f16_to_f32(h[l]);
    return load_f32(f);
#endif
}

/* Weights i .. i+7 as fp32. */
INLINE v8f load8(const void *w, const int wtype, size_t i)
{
    if (wtype == NB_W_F32)
        return load_f32((const float *)w + i);
    const uint16_t *h = (const uint16_t *)w + i;
    if (wtype == NB_W_F16)
        return load_f16(h);
    float f[8];
    for (int l = 0; l < 8; l++)
        f[l] = nb_bf16_to_f32(h[l]);
    return load_f32(f);
}

/* The 8 lanes summed as NEON's vaddvq_f32(vaddq_f32(lo, hi)) sums them. */
INLINE float lanes_sum(v8f a)
{
    return ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
}

#endif
