/* The "dotprod" set (Armv8.2 dotprod: Cortex-A76/A78, Raspberry Pi 5,
 * Jetson Orin): int8 kernels with sdot by lane over the PLAIN activation
 * form. Built with -march=armv8.2-a+dotprod; only called when the CPU
 * has it (qkern.c). */
#include "qkern_neon.h"

#if !defined(__ARM_FEATURE_DOTPROD)
#error "qkern_dotprod.c needs -march=armv8.2-a+dotprod (see meson.build)"
#endif

void NB_KERNEL(nb_qgemv_q8_dotprod)(const nb_qlayout *l, const void *w, const nb_qact *a,
                                    float *y, size_t r0, size_t r1)
{
    nb_q8_gemv(NB_K_SDOT, l, w, a, y, r0, r1);
}

void NB_KERNEL(nb_qgemm_q8_dotprod)(const nb_qlayout *l, const void *w, const nb_qact *a,
                                    float *y, size_t ldy, size_t r0, size_t r1)
{
    nb_q8_gemm(NB_K_SDOT, l, w, a, y, ldy, r0, r1);
}
