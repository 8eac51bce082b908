/* The softmax weights' exp (neon/vexp.h): nb_exp_w_neon and nb_exp_w_ref,
 * and their scaled form nb_exp_ws.
 *
 * bits:     the NEON variant against the plain-C reference, bit for bit
 *           (NaN payloads aside): every 61st float of [-110, 0], 2^20
 *           evenly spaced values of [-110, 0], every 4099th float of
 *           [0, 44], 4096 consecutive floats at each edge (from
 *           +-0 on, around the result's subnormal boundary ln FLT_MIN,
 *           the last nonzero result at -150 ln2 = -103.972, the clamp at
 *           -104, the reduction's switch from n to n - 1 at
 *           -(k + 1/2) ln2), random values of [-110, 0] and random bit
 *           patterns (NaNs, infinities, subnormals, huge values), with
 *           the special values in every lane.
 * accuracy: the reference against float64 exp: within VEXP_W_REL exp(x)
 *           where exp(x) >= FLT_MIN, plus 2^-150 below (the subnormal
 *           result's one rounding), on every 257th float of [-110, 44] and
 *           random values; rounded to fp16 (as the attention does), at
 *           most one fp16 step from the rounding of float64 exp. The
 *           maximum printed; a sweep whose maximum stays under a quarter of
 *           the bound fails (it would not be meeting the polynomial's
 *           error).
 * scaled:   nb_exp_ws(x, e) for e = 1, 4, 40: NEON bit for bit the
 *           reference, which is exactly nb_exp_w_ref(x) * 2^-e wherever
 *           that is normal.
 * edges:    exact results: exp(+-0) = 1 and 1 for tiny x, +0 from -104
 *           down to -inf, NaN for NaN; subnormal results below ln FLT_MIN.
 * With no argument every section runs; an unknown section fails. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../neon/f16.h"
#include "../neon/vexp.h"
#include "testutil.h"

/* vexp.h's bound: 2^-17, against 3.89e-6 = 2^-17.97 measured over every
 * float of [-87.34, 0] (a one-off exhaustive run, x86-64); fp16 rounds by
 * up to 2^-12. */
#define VEXP_W_REL 0x1p-17

#define LN_FLT_MIN (-87.3365447f) /* exp(x) = FLT_MIN */

static uint64_t rng = 2025;

/* The variant under test on 4 values: NEON on aarch64, else the
 * reference (then the bit-exact comparison is the reference against
 * itself). */
static void vec4(float *y, const float *x)
{
#if defined(__aarch64__)
    vst1q_f32(y, nb_exp_w_neon(vld1q_f32(x)));
#else
    for (int i = 0; i < 4; i++)
        y[i] = nb_exp_w_ref(x[i]);
#endif
}

/* ---- bits ---- */

static long bit_mismatches, bit_values;
static float lanes[4];
static int nlanes;

static void bits_flush(void)
{
    float y[4];
    vec4(y, lanes);
    for (int i = 0; i < nlanes; i++, bit_values++) {
        float r = nb_exp_w_ref(lanes[i]);
        if (!tu_same_float(y[i], r) && bit_mismatches++ < 5)
            fprintf(stderr, "exp_w(%a): vector %a, reference %a (lane %d)\n", lanes[i], y[i], r,
                    i);
    }
    nlanes = 0;
}

/* Queues x for the next 4-lane call. */
static void bits_one(float x)
{
    lanes[nlanes++] = x;
    if (nlanes == 4)
        bits_flush();
}

/* Every step-th float from bit pattern a to b (one sign). */
static void bits_patterns(uint32_t a, uint32_t b, uint32_t step)
{
    for (uint64_t u = a; u <= b; u += step)
        bits_one(nb_bits_to_f32((uint32_t)u));
}

/* The 4096 floats around x < 0. */
static void bits_around(float x)
{
    bits_patterns(nb_f32_to_bits(x) - 2048, nb_f32_to_bits(x) + 2047, 1);
}

static void section_bits(void)
{
    bits_patterns(0x80000000u, nb_f32_to_bits(-110.0f), 61);
    for (int i = 0; i <= 1 << 20; i++)
        bits_one(-110.0f * (float)i / (float)(1 << 20));
    bits_patterns(0, nb_f32_to_bits(44.0f), 4099);
    bits_patterns(0x80000000u, 0x80000fffu, 1); /* -0 and the smallest x */
    bits_patterns(0, 0xfff, 1);
    float around[] = {LN_FLT_MIN, -103.972077f, -104.0f};
    for (size_t i = 0; i < sizeof around / sizeof *around; i++)
        bits_around(around[i]);
    int ks[] = {0, 1, 2, 20, 100, 125, 126, 127, 148, 149};
    for (size_t i = 0; i < sizeof ks / sizeof *ks; i++)
        bits_around(-(float)(ks[i] + 0.5) * 0.6931472f);
    for (int i = 0; i < 400000; i++) {
        bits_one(55.0f * (tu_randf(&rng) - 1.0f)); /* [-110, 0) */
        bits_one(nb_bits_to_f32((uint32_t)tu_rand(&rng) | 0x80000000u));
        bits_one(nb_bits_to_f32((uint32_t)tu_rand(&rng)));
    }
    float special[] = {-0.0f, 0.0f, -INFINITY, NAN, -NAN, -FLT_MAX, -FLT_MIN, -0x1p-149f,
                       -104.0f, -104.5f, -110.0f, LN_FLT_MIN, -1.0f};
    size_t ns = sizeof special / sizeof *special;
    for (size_t i = 0; i < ns; i++) /* each in every lane, beside the others */
        for (size_t k = 0; k < 4; k++)
            bits_one(special[(i + k) % ns]);
    bits_flush();
    CHECK(bit_mismatches == 0, "%ld of %ld vector results differ from the reference",
          bit_mismatches, bit_values);
#if defined(__aarch64__)
    const char *what = "NEON against the reference bit for bit";
#else
    const char *what = "the reference only (no vector variant on this host)";
#endif
    printf("bits: %ld values, %s: %ld differ\n", bit_values, what, bit_mismatches);
}

/* ---- accuracy ---- */

static double bound_of(double l)
{
    return VEXP_W_REL * l + (l < FLT_MIN ? 0x1p-150 : 0.0);
}

struct acc {
    long count, fails, f16_off;
    double worst_rel, worst_sub; /* relative where normal, else share of the bound */
    float worst_x;
};

static void acc_check(struct acc *a, float x)
{
    float r = nb_exp_w_ref(x);
    double l = exp((double)x), d = fabs((double)r - l);
    a->count++;
    if (!(d <= bound_of(l)) && a->fails++ < 5)
        fprintf(stderr, "exp_w(%a) = %a, exact %a: %.3g relative\n", x, r, l, d / l);
    if (l >= FLT_MIN) {
        if (d / l > a->worst_rel)
            a->worst_rel = d / l, a->worst_x = x;
    } else {
        a->worst_sub = fmax(a->worst_sub, d / bound_of(l));
    }
    /* fp16 bit patterns of positive values are ordered */
    int h = nb_f32_to_f16(r), e = nb_f32_to_f16((float)l);
    if (abs(h - e) > 1 && a->fails++ < 5)
        fprintf(stderr, "exp_w(%a) = %a: fp16 %#x, exact's %#x\n", x, r, h, e);
    a->f16_off += h != e;
}

static void section_accuracy(void)
{
    struct acc a = {0};
    for (uint32_t u = 0x80000000u; u <= nb_f32_to_bits(-110.0f); u += 257)
        acc_check(&a, nb_bits_to_f32(u));
    for (uint32_t u = 0; u <= nb_f32_to_bits(44.0f); u += 257)
        acc_check(&a, nb_bits_to_f32(u));
    for (int i = 0; i < 200000; i++)
        acc_check(&a, 55.0f * (tu_randf(&rng) - 1.0f));
    CHECK(a.fails == 0, "%ld of %ld results outside the bound", a.fails, a.count);
    CHECK(a.worst_rel > VEXP_W_REL / 4, "max relative error %g: not the polynomial's",
          a.worst_rel);
    printf("accuracy: %ld values against float64: max relative error %.3g = 2^%.2f (at "
           "exp(%a); bound 2^-17) where exp(x) >= FLT_MIN, elsewhere %.5f of the bound; "
           "rounded to fp16, %ld differ from float64 exp's by one step\n",
           a.count, a.worst_rel, log2(a.worst_rel), a.worst_x, a.worst_sub, a.f16_off);
}

/* ---- edges ---- */

/* x in every lane, through both variants: want's bits (any NaN for NaN). */
static void expect_bits(float x, float want)
{
    float xs[4] = {x, x, x, x}, y[4];
    vec4(y, xs);
    float r = nb_exp_w_ref(x);
    CHECK(tu_same_float(r, want), "exp_w(%a) = %a, want %a", x, r, want);
    for (int i = 0; i < 4; i++)
        CHECK(tu_same_float(y[i], want), "lane %d: exp_w(%a) = %a, want %a", i, x, y[i], want);
}

static void section_edges(void)
{
    float ones[] = {0.0f, -0.0f, -1e-30f, -FLT_MIN, -0x1p-149f, -1e-9f};
    for (size_t i = 0; i < sizeof ones / sizeof *ones; i++)
        expect_bits(ones[i], 1.0f);
    float zeros[] = {-104.0f, -104.5f, -110.0f, -150.0f, -1e4f, -1e30f, -FLT_MAX, -INFINITY};
    for (size_t i = 0; i < sizeof zeros / sizeof *zeros; i++)
        expect_bits(zeros[i], 0.0f);
    expect_bits(NAN, NAN);
    expect_bits(-NAN, NAN);
    expect_bits(-103.9f, 0x1p-149f); /* exact 1.07 x 2^-150 */
    float r = nb_exp_w_ref(LN_FLT_MIN + 0.01f), s = nb_exp_w_ref(LN_FLT_MIN - 0.01f);
    CHECK(r >= FLT_MIN && s > 0 && s < FLT_MIN, "around ln FLT_MIN: %a, %a", r, s);
    printf("edges: checked\n");
}

/* ---- scaled ---- */

/* nb_exp_ws(x, e), the weights of f16h at 2^-e (attn.h), on every 1021st
 * float of [-110, 0] and the 3 floats 13, 26 and 39 after each: NEON bit
 * for bit the reference, and the reference exactly nb_exp_w_ref(x) * 2^-e
 * where that is normal. */
static void section_scaled(void)
{
    const int es[] = {1, 4, 40};
    long values = 0, vec_bad = 0, scale_bad = 0;
    for (size_t i = 0; i < sizeof es / sizeof *es; i++)
        for (uint64_t u = 0x80000000u; u <= nb_f32_to_bits(-110.0f); u += 1021) {
            float x[4], y[4];
            for (int l = 0; l < 4; l++)
                x[l] = nb_bits_to_f32((uint32_t)(u + (uint64_t)l * 13));
#if defined(__aarch64__)
            vst1q_f32(y, nb_exp_ws_neon(vld1q_f32(x), es[i]));
#else
            for (int l = 0; l < 4; l++)
                y[l] = nb_exp_ws_ref(x[l], es[i]);
#endif
            for (int l = 0; l < 4; l++, values++) {
                float r = nb_exp_ws_ref(x[l], es[i]), w = ldexpf(nb_exp_w_ref(x[l]), -es[i]);
                vec_bad += !tu_same_float(y[l], r);
                scale_bad += w >= FLT_MIN && !tu_same_float(r, w);
                if (!tu_same_float(y[l], r) && vec_bad <= 3)
                    fprintf(stderr, "exp_ws(%a, %d): vector %a, reference %a\n", x[l], es[i],
                            y[l], r);
            }
        }
    CHECK(vec_bad == 0, "exp_ws: %ld of %ld values differ between NEON and the reference",
          vec_bad, values);
    CHECK(scale_bad == 0, "exp_ws: %ld of %ld normal results are not exp_w * 2^-e", scale_bad,
          values);
    printf("scaled: %ld values of exp_ws (e = 1, 4, 40), bit for bit and exactly scaled\n",
           values);
}

static const tu_section sections[] = {{"bits", section_bits},
                                      {"accuracy", section_accuracy},
                                      {"edges", section_edges},
                                      {"scaled", section_scaled}};

int main(int argc, char **argv)
{
    return tu_run_sections(sections, sizeof sections / sizeof *sections, argc, argv, "test_vexp");
}
