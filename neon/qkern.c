/* Run-time choice of the kernel set: one aarch64 binary (built for plain
 * armv8-a) runs sdot and smmla where the CPU has them, which the kernel
 * reports through the auxiliary vector; one x86-64 binary runs the AVX2
 * build of the portable kernels where cpuid reports AVX2, FMA and F16C. */
#include <stdatomic.h>
#include <string.h>

#include "qkern.h"
#include "qkern_generic.h"

#if defined(__aarch64__)
#include <sys/auxv.h>

#include "qkern_neon.h"

#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1ul << 20)
#endif
#ifndef HWCAP2_I8MM
#define HWCAP2_I8MM (1ul << 13)
#endif
#endif
#if defined(__x86_64__)
#include <cpuid.h>
#endif

static const nb_qkernels ref_set = {
    .name = "ref", .gemv_form = NB_ACT_PLAIN, .gemm_form = NB_ACT_PLAIN,
    .gemv = nb_qgemv_q8_ref, .gemm = nb_qgemm_q8_ref, .gemv_f32 = nb_qgemv_f32_ref};

static const nb_qkernels generic_set = {
    .name = "generic", .gemv_form = NB_ACT_WIDE, .gemm_form = NB_ACT_WIDE,
    .gemv = nb_qgemv_q8_generic, .gemm = nb_qgemm_q8_generic, .gemv_f32 = nb_qgemv_f32_generic};

#if defined(__x86_64__)
static const nb_qkernels avx2_set = {
    .name = "avx2", .gemv_form = NB_ACT_WIDE, .gemm_form = NB_ACT_WIDE,
    .gemv = nb_qgemv_q8_avx2, .gemm = nb_qgemm_q8_avx2, .gemv_f32 = nb_qgemv_f32_avx2,
    .needs = NB_CPU_AVX2};
#endif

#if defined(__aarch64__)
static const nb_qkernels neon_set = {
    .name = "neon", .gemv_form = NB_ACT_WIDE, .gemm_form = NB_ACT_WIDE,
    .gemv = nb_qgemv_q8_neon, .gemm = nb_qgemm_q8_neon, .gemv_f32 = nb_qgemv_f32_neon};
static const nb_qkernels dotprod_set = {
    .name = "dotprod", .gemv_form = NB_ACT_PLAIN, .gemm_form = NB_ACT_PLAIN,
    .gemv = nb_qgemv_q8_dotprod, .gemm = nb_qgemm_q8_dotprod, .gemv_f32 = nb_qgemv_f32_neon,
    .needs = NB_CPU_DOTPROD};
static const nb_qkernels i8mm_set = {
    .name = "i8mm", .gemv_form = NB_ACT_PLAIN, .gemm_form = NB_ACT_PAIRS,
    .gemv = nb_qgemv_q8_dotprod, .gemm = nb_qgemm_q8_i8mm, .gemv_f32 = nb_qgemv_f32_neon,
    .needs = NB_CPU_DOTPROD | NB_CPU_I8MM};
#endif

/* Slowest to fastest: "auto" takes the last one the CPU runs. */
static const nb_qkernels *const all_sets[] = {
    &ref_set, &generic_set,
#if defined(__x86_64__)
    &avx2_set,
#endif
#if defined(__aarch64__)
    &neon_set, &dotprod_set, &i8mm_set,
#endif
};
enum { N_SETS = sizeof all_sets / sizeof all_sets[0] };

unsigned nb_cpu_features(void)
{
    unsigned f = 0;
#if defined(__aarch64__)
    if (getauxval(AT_HWCAP) & HWCAP_ASIMDDP)
        f |= NB_CPU_DOTPROD;
    if (getauxval(AT_HWCAP2) & HWCAP2_I8MM)
        f |= NB_CPU_I8MM;
#elif defined(__x86_64__)
    unsigned a, b, c, d;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
        __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C))
        f |= NB_CPU_AVX2;
#endif
    return f;
}

size_t nb_runnable_variants(size_t compiled)
{
#if defined(__x86_64__)
    if (!(nb_cpu_features() & NB_CPU_AVX2))
        return compiled - 1;
#endif
    return compiled;
}

const nb_qkernels *const *nb_kernels_all(size_t *count)
{
    *count = N_SETS;
    return all_sets;
}

const nb_qkernels *nb_kernels_get(const char *name)
{
    unsigned have = nb_cpu_features();
    const nb_qkernels *best = NULL;
    for (size_t i = 0; i < N_SETS; i++) {
        if ((all_sets[i]->needs & have) != all_sets[i]->needs)
            continue;
        if (!strcmp(name, all_sets[i]->name))
            return all_sets[i];
        best = all_sets[i];
    }
    return strcmp(name, "auto") ? NULL : best;
}

/* Threads may ask for the set while another selects one. */
static _Atomic(const nb_qkernels *) current;

const nb_qkernels *nb_kernels(void)
{
    const nb_qkernels *k = atomic_load_explicit(&current, memory_order_acquire);
    if (!k) {
        k = nb_kernels_get("auto");
        atomic_store_explicit(&current, k, memory_order_release);
    }
    return k;
}

int nb_kernels_select(const char *name)
{
    const nb_qkernels *k = nb_kernels_get(name);
    if (!k)
        return -1;
    atomic_store_explicit(&current, k, memory_order_release);
    return 0;
}
