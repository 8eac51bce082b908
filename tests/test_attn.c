/* The attention kernel over an fp16 KV cache (neon/attn.h): the variant
 * this build runs against the plain-C reference and against a float64
 * two-pass softmax, on head sizes with tails (6, 8, 12, 64, 128),
 * grouped-query strides, one position and many, and scores large enough
 * that the online maximum moves. The variants differ by fp32 rounding:
 * |diff| <= 1e-5 * (1 + max |v|) against the reference and 2e-5 against
 * float64 (the cache values are the same fp16 numbers in all three). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../neon/attn.h"
#include "../neon/f16.h"
#include "testutil.h"

static uint64_t rng = 99;

static void exact(double *out, const float *q, const uint16_t *k, const uint16_t *v,
                  size_t stride, size_t n, size_t hd, float scale)
{
    double *s = malloc(n * sizeof *s), max = -INFINITY, sum = 0;
    for (size_t t = 0; t < n; t++) {
        double d = 0;
        for (size_t i = 0; i < hd; i++)
            d += (double)q[i] * nb_f16_to_f32(k[t * stride + i]);
        s[t] = d * scale;
        max = fmax(max, s[t]);
    }
    for (size_t i = 0; i < hd; i++)
        out[i] = 0;
    for (size_t t = 0; t < n; t++) {
        double w = exp(s[t] - max);
        sum += w;
        for (size_t i = 0; i < hd; i++)
            out[i] += w * nb_f16_to_f32(v[t * stride + i]);
    }
    for (size_t i = 0; i < hd; i++)
        out[i] /= sum;
    free(s);
}

/* max |x - y| in double, written with a comparison: GCC 12.2 for aarch64
 * crashes (internal compiler error in vect_transform_reduction) when it
 * vectorizes this loop written with fmax. */
static double max_diff(const float *x, const double *y, size_t n)
{
    double d = 0;
    for (size_t i = 0; i < n; i++) {
        double a = fabs((double)x[i] - y[i]);
        if (a > d || a != a)
            d = a; /* a NaN stays */
    }
    return d;
}

static void check(size_t hd, size_t n, size_t heads, float qscale)
{
    size_t stride = heads * hd;
    float *q = malloc(hd * sizeof *q), *kf = malloc(n * stride * sizeof *kf);
    float *a = malloc(hd * sizeof *a), *b = malloc(hd * sizeof *b);
    double *c = malloc(hd * sizeof *c);
    uint16_t *k = malloc(n * stride * sizeof *k), *v = malloc(n * stride * sizeof *v);
    for (size_t i = 0; i < hd; i++)
        q[i] = qscale * tu_randf(&rng);
    for (size_t i = 0; i < n * stride; i++)
        kf[i] = tu_randf(&rng) * (i % 7 == 0 ? 4.0f : 1.0f);
    nb_f32_to_f16_row(k, kf, n * stride);
    for (size_t i = 0; i < n * stride; i++)
        kf[i] = tu_randf(&rng);
    nb_f32_to_f16_row(v, kf, n * stride);
    size_t h = heads - 1; /* the last kv head: the stride matters */
    float scale = 1.0f / sqrtf((float)hd);
    nb_attend_f16()(a, q, k + h * hd, v + h * hd, stride, n, hd, scale);
    nb_attend_f16_ref(b, q, k + h * hd, v + h * hd, stride, n, hd, scale);
    exact(c, q, k + h * hd, v + h * hd, stride, n, hd, scale);
    double *bd = malloc(hd * sizeof *bd);
    for (size_t i = 0; i < hd; i++)
        bd[i] = b[i];
    double d_ref = max_diff(a, bd, hd), d_exact = fmax(max_diff(a, c, hd), max_diff(b, c, hd));
    free(bd);
    CHECK(d_ref <= 1e-5 * 2 && d_exact <= 2e-5 * 2,
          "hd %zu, n %zu, q scale %g: vs reference %g, vs float64 %g", hd, n, qscale, d_ref,
          d_exact);
    free(q), free(kf), free(a), free(b), free(c), free(k), free(v);
}

int main(void)
{
    size_t hds[] = {6, 8, 12, 64, 128};
    size_t ns[] = {1, 2, 17, 300};
    for (size_t i = 0; i < sizeof hds / sizeof *hds; i++)
        for (size_t j = 0; j < sizeof ns / sizeof *ns; j++) {
            check(hds[i], ns[j], 2, 1.0f);
            check(hds[i], ns[j], 1, 8.0f); /* peaked: the maximum moves late */
        }
    uint16_t h[3];
    float x[3] = {1.0f, 65504.0f, 1e-8f};
    nb_f32_to_f16_row(h, x, 3);
    CHECK(h[0] == 0x3c00 && h[1] == 0x7bff && h[2] == 0x0000, "f16 row %04x %04x %04x", h[0],
          h[1], h[2]);
    return tu_finish("test_attn");
}
