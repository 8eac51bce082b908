/* The portable kernel sets (qkern_generic.c): plain C shaped for the
 * compiler's vectorizer, for hosts without NEON kernels (x86-64, RISC-V,
 * ...). meson builds the file once per target: "generic" with the
 * baseline flags everywhere, and on x86-64 "avx2" again with -mavx2
 * -mfma, chosen at run time when the CPU has both. Both read int8
 * activations in the WIDE form and match the references bit for bit. */
#ifndef NIBBLE_QKERN_GENERIC_H
#define NIBBLE_QKERN_GENERIC_H

#include "qkern.h"

#define NB_DECLARE_GENERIC(set)                                                                \
    void nb_qgemv_q8_##set(const nb_qlayout *l, const void *w, const nb_qact *a, float *y,      \
                           size_t r0, size_t r1);                                              \
    void nb_qgemm_q8_##set(const nb_qlayout *l, const void *w, const nb_qact *a, float *y,      \
                           size_t ldy, size_t r0, size_t r1);                                  \
    void nb_qgemv_f32_##set(const nb_qlayout *l, const void *w, const float *x, float *y,       \
                            size_t r0, size_t r1);
NB_DECLARE_GENERIC(generic)
NB_DECLARE_GENERIC(avx2)

/* Inside the generic files: name##set for the set being built. */
#ifndef NB_GENERIC_SET
#define NB_GENERIC_SET generic
#endif
#define NB_CAT2(a, b) a##b
#define NB_CAT(a, b) NB_CAT2(a, b)
#define KERNEL(name) NB_CAT(name, NB_GENERIC_SET)

#endif
