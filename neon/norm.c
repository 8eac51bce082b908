/* RMSNorm of the fast pass (norm.h): the plain-C reference and the NEON
 * variant, the same operations in the same order. */
#include "norm.h"

#include <math.h>

#include "gemv.h"

#define LANES 8

/* The mean of the lanes' sums of squares, added in norm.h's order. */
static double mean_of(const double s[LANES], size_t n)
{
    double lo = (s[0] + s[4]) + (s[2] + s[6]);
    double hi = (s[1] + s[5]) + (s[3] + s[7]);
    return (lo + hi) / (double)n;
}

/* 1 / sqrt(mean + eps) in float64, rounded once. */
static float inverse_rms(double mean, float eps)
{
    return (float)(1.0 / sqrt(mean + (double)eps));
}

/* Values [i, n) into lanes i % 8: the tails. Each product is exact, so
 * fused or not is the same. */
static void sum_squares_from(double s[LANES], const float *x, size_t i, size_t n)
{
    for (; i < n; i++)
        s[i % LANES] += (double)x[i] * (double)x[i];
}

/* out[i] = (x[i] * inv) * g[i] for i in [i, n), two roundings. */
static void scale_from(float *out, const float *x, const void *g, int gtype, size_t i, size_t n,
                       float inv)
{
    for (; i < n; i++) {
        float xs = x[i] * inv;
        out[i] = xs * nb_weight_at(g, gtype, i);
    }
}

double nb_mean_square_ref(const float *x, size_t n)
{
    double s[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES) /* whole rounds of the lanes: vectorized */
        for (size_t j = 0; j < LANES; j++)
            s[j] += (double)x[i + j] * (double)x[i + j];
    sum_squares_from(s, x, i, n);
    return mean_of(s, n);
}

void nb_rmsnorm_lanes_ref(float *out, const float *x, const void *g, int gtype, size_t n,
                          float eps)
{
    if (n > 0)
        scale_from(out, x, g, gtype, 0, n, inverse_rms(nb_mean_square_ref(x, n), eps));
}

#if defined(__aarch64__)
#include "plain_neon.h"

#define INLINE static inline __attribute__((always_inline))

INLINE float64x2_t add_square(float64x2_t a, float64x2_t d)
{
    return vfmaq_f64(a, d, d);
}

/* x[0..8) squared into lanes 0..7 (a0 holds lanes 0 and 1, a1 2 and 3...).
 * Four named sums, not an array: GCC 12 copies an array's registers every
 * pass. */
INLINE void sum_step(float64x2_t *a0, float64x2_t *a1, float64x2_t *a2, float64x2_t *a3,
                     const float *x)
{
    float32x4_t lo = vld1q_f32(x), hi = vld1q_f32(x + 4);
    *a0 = add_square(*a0, vcvt_f64_f32(vget_low_f32(lo)));
    *a1 = add_square(*a1, vcvt_high_f64_f32(lo));
    *a2 = add_square(*a2, vcvt_f64_f32(vget_low_f32(hi)));
    *a3 = add_square(*a3, vcvt_high_f64_f32(hi));
}

/* Two steps a pass, as in scale_neon: 1.3 instructions per value
 * against 1.5. */
double nb_mean_square_neon(const float *x, size_t n)
{
    float64x2_t a0 = vdupq_n_f64(0.0), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        sum_step(&a0, &a1, &a2, &a3, x + i);
        sum_step(&a0, &a1, &a2, &a3, x + i + 8);
    }
    if (i + 8 <= n) {
        sum_step(&a0, &a1, &a2, &a3, x + i);
        i += 8;
    }
    double s[LANES]; /* lane j in s[j] */
    vst1q_f64(s, a0);
    vst1q_f64(s + 2, a1);
    vst1q_f64(s + 4, a2);
    vst1q_f64(s + 6, a3);
    sum_squares_from(s, x, i, n); /* i is a multiple of 8: lanes i % 8 */
    return mean_of(s, n);
}

/* out[i, i + 8) = (x * inv) * g. */
INLINE void scale_step(float *out, const float *x, const void *g, const int gtype, size_t i,
                       float inv)
{
    float32x4_t glo, ghi;
    nb_plain_load8(g, gtype, i, &glo, &ghi);
    float32x4_t lo = vmulq_n_f32(vld1q_f32(x + i), inv);
    float32x4_t hi = vmulq_n_f32(vld1q_f32(x + i + 4), inv);
    vst1q_f32(out + i, vmulq_f32(lo, glo));
    vst1q_f32(out + i + 4, vmulq_f32(hi, ghi));
}

/* The scaling with a constant gtype, the tail in C: the same fp32
 * products. Two steps a pass pair the loads and stores (ldp, stp) and
 * halve the loop's own instructions: 1.2 instructions per value for f32
 * weights against 1.6 one step a pass (GCC 12). */
INLINE void scale_neon(float *out, const float *x, const void *g, const int gtype, size_t n,
                       float inv)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        scale_step(out, x, g, gtype, i, inv);
        scale_step(out, x, g, gtype, i + 8, inv);
    }
    if (i + 8 <= n) {
        scale_step(out, x, g, gtype, i, inv);
        i += 8;
    }
    scale_from(out, x, g, gtype, i, n, inv);
}

void nb_rmsnorm_lanes_neon(float *out, const float *x, const void *g, int gtype, size_t n,
                           float eps)
{
    if (n == 0)
        return;
    float inv = inverse_rms(nb_mean_square_neon(x, n), eps);
    switch (gtype) { /* one loop per type; any other reads as f32 (nb_weight_at) */
    case NB_W_F16: scale_neon(out, x, g, NB_W_F16, n, inv); break;
    case NB_W_BF16: scale_neon(out, x, g, NB_W_BF16, n, inv); break;
    default: scale_neon(out, x, g, NB_W_F32, n, inv);
    }
}
#endif

void nb_rmsnorm_row(float *out, const float *x, const void *g, int gtype, size_t n, float eps)
{
#if defined(__aarch64__)
    nb_rmsnorm_lanes_neon(out, x, g, gtype, n, eps);
#else
    nb_rmsnorm_lanes_ref(out, x, g, gtype, n, eps);
#endif
}
