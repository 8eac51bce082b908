/* Loads of two to four vectors with one instruction (LD1 of several
 * registers), the only way the kernels use the vld1*_x3/_x4
 * intrinsics. Older toolchains lack these (GCC before 8 or 9, as on old
 * Jetson and Ubuntu images): meson defines NB_HAVE_LD1_X only when they
 * compile, and otherwise each load here is spelled as single-vector loads
 * into the same structure (the compiler may or may not pair them again).
 * NB_LD1_X_FALLBACK forces that spelling: meson builds every variant file
 * a second time so, and tests/test_kernels.c compares those copies with
 * the reference too. */
#ifndef NIBBLE_QKERN_LD_H
#define NIBBLE_QKERN_LD_H

#include <arm_neon.h>

#if defined(NB_HAVE_LD1_X) && !defined(NB_LD1_X_FALLBACK)
#define NB_LD1_X 1
#else
#define NB_LD1_X 0
#endif

static inline __attribute__((always_inline)) uint8x16x4_t nb_ld1q_u8_x4(const uint8_t *p)
{
#if NB_LD1_X
    return vld1q_u8_x4(p);
#else
    uint8x16x4_t v = {{vld1q_u8(p), vld1q_u8(p + 16), vld1q_u8(p + 32), vld1q_u8(p + 48)}};
    return v;
#endif
}

static inline __attribute__((always_inline)) uint8x16x3_t nb_ld1q_u8_x3(const uint8_t *p)
{
#if NB_LD1_X
    return vld1q_u8_x3(p);
#else
    uint8x16x3_t v = {{vld1q_u8(p), vld1q_u8(p + 16), vld1q_u8(p + 32)}};
    return v;
#endif
}

static inline __attribute__((always_inline)) uint8x8x4_t nb_ld1_u8_x4(const uint8_t *p)
{
#if NB_LD1_X
    return vld1_u8_x4(p);
#else
    uint8x8x4_t v = {{vld1_u8(p), vld1_u8(p + 8), vld1_u8(p + 16), vld1_u8(p + 24)}};
    return v;
#endif
}

static inline __attribute__((always_inline)) int8x16x4_t nb_ld1q_s8_x4(const int8_t *p)
{
#if NB_LD1_X
    return vld1q_s8_x4(p);
#else
    int8x16x4_t v = {{vld1q_s8(p), vld1q_s8(p + 16), vld1q_s8(p + 32), vld1q_s8(p + 48)}};
    return v;
#endif
}

#endif
