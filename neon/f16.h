/* Half and bfloat16 conversions in portable C (no F16C/NEON needed), so
 * files convert and run identically on every host. */
#ifndef NIBBLE_F16_H
#define NIBBLE_F16_H

#include <stdint.h>
#include <string.h>

static inline float nb_bits_to_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint32_t nb_f32_to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float nb_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f) /* inf / nan */
        return nb_bits_to_f32(sign | 0x7f800000u | (man << 13));
    if (exp == 0) { /* zero / subnormal: exact as man * 2^-24 */
        float v = (float)man * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    return nb_bits_to_f32(sign | ((exp + 112) << 23) | (man << 13));
}

/* Round to nearest, ties to even; overflow goes to infinity. */
static inline uint16_t nb_f32_to_f16(float f)
{
    uint32_t u = nb_f32_to_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7fffffffu;
    if (a >= 0x7f800000u) /* inf / nan (keep nan quiet) */
        return sign | 0x7c00 | (a > 0x7f800000u ? 0x200 : 0);
    if (a >= 0x477ff000u) /* rounds past 65504 */
        return sign | 0x7c00;
    if (a < 0x38800000u) { /* subnormal half: scale so rounding is the FPU's */
        float v = nb_bits_to_f32(a) * 16777216.0f; /* exact */
        uint32_t m = (uint32_t)v;
        float r = v - (float)m;
        if (r > 0.5f || (r == 0.5f && (m & 1)))
            m++;
        return sign | (uint16_t)m;
    }
    uint32_t m = a + 0xfffu + ((a >> 13) & 1); /* RNE on the 13 dropped bits */
    return sign | (uint16_t)((m - 0x38000000u) >> 13);
}

static inline float nb_bf16_to_f32(uint16_t b)
{
    return nb_bits_to_f32((uint32_t)b << 16);
}

static inline uint16_t nb_f32_to_bf16(float f)
{
    uint32_t u = nb_f32_to_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

#endif
