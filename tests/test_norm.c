/* RMSNorm of the fast pass (neon/norm.h): out = x / sqrt(mean(x^2) + eps) * g.
 *
 * bits:     the NEON variant against the plain-C reference, bit for bit
 *           (NaN payloads aside), and their float64 mean squares (where a
 *           change of summation order shows: the norm, rounded to fp32,
 *           hides it), for f32, f16 and bf16 weights, on every
 *           length 0..70 (the 8-value body and each tail) and on 1536,
 *           2048, 8960 and random lengths up to 10000, at unaligned
 *           starts, on values of several magnitudes and on random bit
 *           patterns (NaN, infinities, subnormals); in place (out = x)
 *           the same; nothing written outside the row; nb_rmsnorm_row is
 *           the NEON variant on aarch64, the reference elsewhere.
 * accuracy: the reference against float64, within NORM_REL |exact| +
 *           (|g| + 1) 2^-150 (norm.h), on those lengths, the three weight
 *           types, eps 1e-5, 1e-6, 0 and 1, and rows of uniform values,
 *           of values over 12 decades, with outliers, of 1e-30 (eps 0:
 *           the squares underflow in fp32) and of 1e25 (they overflow);
 *           the maximum must use more than half the bound, and a result
 *           one float outside it is rejected. nb_rmsnorm_ref's maximum
 *           (one fp32 sum) on the uniform, wide and outlier rows is
 *           printed beside it, not checked.
 * edges:    through both variants: a zero row (eps > 0: signed zeros;
 *           eps = 0: NaN), eps that dominates the mean or equals it, a
 *           constant row, an infinity and a NaN at every position of a
 *           row, n = 0.
 * With no argument every section runs; an unknown section fails. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../neon/f16.h"
#include "../neon/gemv.h"
#include "../neon/norm.h"
#include "testutil.h"

/* norm.h's bound, relative: three fp32 roundings and the float64 rest. */
#define NORM_REL (3.0 * 0x1p-24 + 0x1p-33)

#define MAX_N 10000
#define GUARD 12345.0f

static uint64_t rng = 1536;

static const int gtypes[] = {NB_W_F32, NB_W_F16, NB_W_BF16};
static const char *const gnames[] = {"f32", "f16", "bf16"};
static const size_t long_lengths[] = {1536, 2048, 8960, 896, 3584, 4103, 8967};

/* The variant under test: NEON on aarch64, else the reference (then the
 * bit-exact comparison is the reference against itself). */
static void vec(float *out, const float *x, const void *g, int gtype, size_t n, float eps)
{
#if defined(__aarch64__)
    nb_rmsnorm_lanes_neon(out, x, g, gtype, n, eps);
#else
    nb_rmsnorm_lanes_ref(out, x, g, gtype, n, eps);
#endif
}

static double vec_mean(const float *x, size_t n)
{
#if defined(__aarch64__)
    return nb_mean_square_neon(x, n);
#else
    return nb_mean_square_ref(x, n);
#endif
}

/* A row's values of kind k: 0 uniform, 1 12 decades, 2 outliers, 3 any bits. */
static float value_of(int kind)
{
    switch (kind) {
    case 0: return tu_randf(&rng);
    case 1: return tu_magnitude(&rng, -6, 6);
    case 2: return tu_rand(&rng) % 64 ? tu_randf(&rng) : 300.0f * tu_randf(&rng);
    default: return nb_bits_to_f32((uint32_t)tu_rand(&rng));
    }
}

/* Weights around 1 (norm weights are), some negative, of type gtype;
 * gv gets them back as fp32. The buffer has room for MAX_N + 8. */
static void *weights(int gtype, float *gv, size_t n)
{
    static uint32_t buf[MAX_N + 8];
    for (size_t i = 0; i < n; i++) {
        float v = tu_rand(&rng) % 16 ? 1.0f + 0.5f * tu_randf(&rng) : 4.0f * tu_randf(&rng);
        if (gtype == NB_W_F32)
            buf[i] = nb_f32_to_bits(v);
        else
            ((uint16_t *)buf)[i] = gtype == NB_W_F16 ? nb_f32_to_f16(v) : nb_f32_to_bf16(v);
    }
    for (size_t i = 0; i < n; i++)
        gv[i] = nb_weight_at(buf, gtype, i);
    return buf;
}

/* ---- bits ---- */

static long bit_mismatches, bit_values, mean_mismatches, means;

/* Both variants on x[0..n) at a start off floats into the buffers, and
 * the vector one in place; the guards around the row must stay. */
static void bits_row(const float *x, const void *g, int gtype, size_t n, float eps, size_t off)
{
    static float a[MAX_N + 16], b[MAX_N + 16], c[MAX_N + 16];
    for (size_t i = 0; i < n + 16; i++)
        a[i] = b[i] = GUARD;
    memcpy(c + off, x, n * sizeof *x);
    vec(a + off, x, g, gtype, n, eps);
    nb_rmsnorm_lanes_ref(b + off, x, g, gtype, n, eps);
    vec(c + off, c + off, g, gtype, n, eps);
    for (size_t i = 0; i < n; i++, bit_values++)
        if ((!tu_same_float(a[off + i], b[off + i]) || !tu_same_float(a[off + i], c[off + i])) &&
            bit_mismatches++ < 5)
            fprintf(stderr, "n %zu, %s, eps %g, x[%zu] = %a: vector %a, in place %a, "
                    "reference %a\n", n, gnames[gtype], eps, i, x[i], a[off + i], c[off + i],
                    b[off + i]);
    for (size_t i = 0; i < n + 16; i++)
        if (i < off || i >= off + n)
            CHECK(a[i] == GUARD && b[i] == GUARD, "n %zu: written at %zu outside [%zu, %zu)", n,
                  i, off, off + n);
}

/* The two mean squares of x, compared. */
static void bits_mean(const float *x, size_t n)
{
    double mv = vec_mean(x, n), mr = nb_mean_square_ref(x, n);
    means++;
    if (memcmp(&mv, &mr, sizeof mv) != 0 && !(isnan(mv) && isnan(mr)) && mean_mismatches++ < 5)
        fprintf(stderr, "n %zu: mean square: vector %a, reference %a\n", n, mv, mr);
}

static void bits_random(size_t n, int rep)
{
    static float x[MAX_N], gv[MAX_N];
    int kind = rep % 4;
    for (size_t i = 0; i < n; i++)
        x[i] = kind == 3 && tu_rand(&rng) % 4 ? tu_randf(&rng) : value_of(kind);
    bits_mean(x, n);
    for (size_t t = 0; t < 3; t++) {
        const void *g = weights(gtypes[t], gv, n);
        bits_row(x, g, gtypes[t], n, rep % 3 ? 1e-5f : 1e-6f, (size_t)(rep + (int)t) % 4);
    }
}

static void section_bits(void)
{
    for (int rep = 0; rep < 40; rep++)
        for (size_t n = 0; n <= 70; n++)
            bits_random(n, rep);
    for (int rep = 0; rep < 8; rep++)
        for (size_t k = 0; k < sizeof long_lengths / sizeof *long_lengths; k++)
            bits_random(long_lengths[k], rep);
    for (int rep = 0; rep < 40; rep++)
        bits_random(1 + tu_rand(&rng) % MAX_N, rep);
    CHECK(bit_mismatches == 0, "%ld of %ld vector results differ from the reference",
          bit_mismatches, bit_values);
    CHECK(mean_mismatches == 0, "%ld of %ld vector mean squares differ from the reference",
          mean_mismatches, means);

    /* the row in use */
    static float x[67], gv[67], a[67], b[67];
    for (size_t i = 0; i < 67; i++)
        x[i] = value_of(2);
    for (size_t t = 0; t < 3; t++) {
        const void *g = weights(gtypes[t], gv, 67);
        nb_rmsnorm_row(a, x, g, gtypes[t], 67, 1e-6f);
#if defined(__aarch64__)
        nb_rmsnorm_lanes_neon(b, x, g, gtypes[t], 67, 1e-6f);
#else
        nb_rmsnorm_lanes_ref(b, x, g, gtypes[t], 67, 1e-6f);
#endif
        CHECK(memcmp(a, b, sizeof a) == 0, "%s: nb_rmsnorm_row is not the variant norm.h names",
              gnames[t]);
    }
#if defined(__aarch64__)
    const char *what = "NEON = reference bit for bit";
#else
    const char *what = "reference only (no vector variant on this host)";
#endif
    printf("bits: %ld values and %ld mean squares, lengths 0..70, 1536, 2048, 8960 and "
           "random, f32/f16/bf16 weights, %s\n", bit_values, means, what);
}

/* ---- accuracy ---- */

/* x[i] / sqrt(mean(x^2) + eps) * g[i] in float64: a sum of squares in
 * order, off by (n + 4) 2^-53 relative at most, under NORM_REL's float64
 * share. */
static void exact_row(double *e, const float *x, const float *gv, size_t n, float eps)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)x[i] * (double)x[i];
    double inv = 1.0 / sqrt(s / (double)n + (double)eps);
    for (size_t i = 0; i < n; i++)
        e[i] = (double)x[i] * inv * (double)gv[i];
}

static double bound_of(double exact, float g)
{
    return NORM_REL * fabs(exact) + (fabs((double)g) + 1.0) * 0x1p-150;
}

static int within(double exact, float g, float r)
{
    return fabs((double)r - exact) <= bound_of(exact, g); /* false for NaN, inf */
}

struct acc {
    long count, failures;
    double worst, worst_ref; /* relative, where the exact result is normal */
};

/* One row; nb_rmsnorm_ref's error is kept for ordinary rows only (its fp32
 * squares underflow at 1e-30 and overflow at 1e25). */
static void acc_row(struct acc *a, const float *x, int gtype, size_t n, float eps, int ordinary)
{
    static float gv[MAX_N], r[MAX_N], rr[MAX_N];
    static double e[MAX_N];
    const void *g = weights(gtype, gv, n);
    nb_rmsnorm_lanes_ref(r, x, g, gtype, n, eps);
    nb_rmsnorm_ref(rr, x, g, gtype, n, eps);
    exact_row(e, x, gv, n, eps);
    for (size_t i = 0; i < n; i++, a->count++) {
        if (!within(e[i], gv[i], r[i]) && a->failures++ < 5)
            fprintf(stderr, "n %zu, %s, eps %g, x[%zu] = %a, g %a: %a, exact %a (%.3g x 2^-24 "
                    "relative)\n", n, gnames[gtype], eps, i, x[i], gv[i], r[i], e[i],
                    fabs(r[i] - e[i]) / fabs(e[i]) * 0x1p24);
        if (fabs(e[i]) >= FLT_MIN) {
            a->worst = fmax(a->worst, fabs(r[i] - e[i]) / fabs(e[i]));
            if (ordinary)
                a->worst_ref = fmax(a->worst_ref, fabs(rr[i] - e[i]) / fabs(e[i]));
        }
    }
}

/* Rows of each kind at length n, every weight type and eps. */
static void acc_length(struct acc *a, size_t n)
{
    static float x[MAX_N];
    const float epss[] = {1e-5f, 1e-6f, 0.0f, 1.0f};
    for (int kind = 0; kind < 5; kind++) {
        for (size_t i = 0; i < n; i++)
            x[i] = kind < 3 ? value_of(kind) : (kind == 3 ? 1e-30f : 1e25f) * tu_randf(&rng);
        for (size_t t = 0; t < 4; t++) /* the f32 weights twice, another eps */
            acc_row(a, x, gtypes[t % 3], n, kind < 3 ? epss[((size_t)kind + t) % 4] : 0.0f,
                    kind < 3);
    }
}

/* The check rejects a result one float outside the bound. */
static void probe_bound(void)
{
    double exact[] = {0.7, -1.3, 2.9, 1e-3, -5e4};
    for (size_t i = 0; i < sizeof exact / sizeof *exact; i++) {
        float r = (float)exact[i], away = copysignf(INFINITY, r);
        while (within(exact[i], 1.0f, r))
            r = nextafterf(r, away);
        float in = nextafterf(r, 0.0f);
        CHECK(!within(exact[i], 1.0f, r) && within(exact[i], 1.0f, in),
              "the bound at %g: %a accepted or %a rejected", exact[i], r, in);
    }
}

static void section_accuracy(void)
{
    struct acc a = {0};
    for (size_t n = 1; n <= 70; n++)
        for (int rep = 0; rep < 20; rep++)
            acc_length(&a, n);
    for (size_t k = 0; k < sizeof long_lengths / sizeof *long_lengths; k++)
        acc_length(&a, long_lengths[k]);
    for (int rep = 0; rep < 10; rep++)
        acc_length(&a, 1 + tu_rand(&rng) % MAX_N);
    CHECK(a.failures == 0, "%ld of %ld results outside %.3g x 2^-24 of float64", a.failures,
          a.count, NORM_REL * 0x1p24);
    CHECK(a.worst > 0.5 * NORM_REL, "max relative error %.3g x 2^-24: the bound %.3g is loose",
          a.worst * 0x1p24, NORM_REL * 0x1p24);
    probe_bound();
    printf("accuracy: %ld values against float64: max relative error %.3f x 2^-24 (bound %.3f); "
           "nb_rmsnorm_ref %.3f x 2^-24 on the uniform, wide and outlier rows\n",
           a.count, a.worst * 0x1p24, NORM_REL * 0x1p24, a.worst_ref * 0x1p24);
}

/* ---- edges ---- */

/* Rows of 27: a two-step pass, a single step and a tail of 3 in NEON. */
#define EN 27

static float edge_g[EN];

/* Both variants on x (f32 weights edge_g), which must agree; the result in r. */
static void both(float *r, const float *x, float eps)
{
    float s[EN];
    vec(r, x, edge_g, NB_W_F32, EN, eps);
    nb_rmsnorm_lanes_ref(s, x, edge_g, NB_W_F32, EN, eps);
    for (size_t i = 0; i < EN; i++)
        CHECK(tu_same_float(r[i], s[i]), "eps %g, x[%zu] = %a: vector %a, reference %a", eps, i,
              x[i], r[i], s[i]);
}

static void expect_row(const char *what, const float *x, float eps, const float *want)
{
    float r[EN];
    both(r, x, eps);
    for (size_t i = 0; i < EN; i++)
        CHECK(tu_same_float(r[i], want[i]), "%s: out[%zu] = %a, want %a", what, i, r[i], want[i]);
}

static void expect_near(const char *what, const float *x, float eps)
{
    float r[EN];
    double e[EN];
    both(r, x, eps);
    exact_row(e, x, edge_g, EN, eps);
    for (size_t i = 0; i < EN; i++)
        CHECK(within(e[i], edge_g[i], r[i]), "%s: out[%zu] = %a, exact %a", what, i, r[i], e[i]);
}

/* 0 * inv * g: zeros signed as x * g when eps > 0; NaN (0 * inf) at eps 0. */
static void edges_zero(void)
{
    float zero[EN], want[EN];
    for (size_t i = 0; i < EN; i++) {
        zero[i] = i % 3 ? 0.0f : -0.0f;
        want[i] = !signbit(zero[i]) != !signbit(edge_g[i]) ? -0.0f : 0.0f;
    }
    expect_row("zero row, eps 1e-6", zero, 1e-6f, want);
    for (size_t i = 0; i < EN; i++)
        want[i] = NAN;
    expect_row("zero row, eps 0", zero, 0.0f, want);
}

/* eps inside the root: it dominates a mean of 1e-12; a mean equal to it
 * (a factor sqrt(2) if it were left out, or added to the root); a
 * constant row; a row of 4 with eps 0 (inv = 1/4: exactly 1 with g = 1). */
static void edges_eps(void)
{
    float tiny[EN], even[EN], con[EN], r[EN];
    for (size_t i = 0; i < EN; i++) {
        tiny[i] = i % 2 ? 1e-6f : -1e-6f;
        even[i] = i % 2 ? 0x1p-8f : -0x1p-8f;
        con[i] = 3.7f;
    }
    expect_near("eps 1e-5 over a mean of 1e-12", tiny, 1e-5f);
    expect_near("mean = eps", even, 0x1p-16f);
    expect_near("constant row", con, 0.0f);
    float four[EN], ones[EN];
    for (size_t i = 0; i < EN; i++)
        four[i] = 4.0f, ones[i] = 1.0f;
    vec(r, four, ones, NB_W_F32, EN, 0.0f);
    for (size_t i = 0; i < EN; i++)
        CHECK(r[i] == 1.0f, "a row of 4, eps 0: out[%zu] = %a, want 1", i, r[i]);
    nb_rmsnorm_lanes_ref(r, four, ones, NB_W_F32, EN, 0.0f);
    for (size_t i = 0; i < EN; i++)
        CHECK(r[i] == 1.0f, "a row of 4, eps 0: reference out[%zu] = %a, want 1", i, r[i]);
}

/* An infinity at each position: NaN there, zeros elsewhere (inv = 0); a
 * NaN: NaN throughout. */
static void edges_nonfinite(void)
{
    for (size_t p = 0; p < EN; p++) {
        float x[EN], want[EN];
        for (size_t i = 0; i < EN; i++) {
            x[i] = i == p ? INFINITY : 3.7f;
            want[i] = i == p ? NAN : (signbit(edge_g[i]) ? -0.0f : 0.0f);
        }
        expect_row("an infinite value", x, 1e-6f, want);
        x[p] = NAN;
        for (size_t i = 0; i < EN; i++)
            want[i] = NAN;
        expect_row("a NaN value", x, 1e-6f, want);
    }
}

static void section_edges(void)
{
    const float gs[] = {1, -1, 2, 0.5f, -3};
    for (size_t i = 0; i < EN; i++)
        edge_g[i] = gs[i % 5];
    edges_zero();
    edges_eps();
    edges_nonfinite();
    float out[2] = {GUARD, GUARD}, x[1] = {1.0f}; /* n = 0 writes nothing */
    vec(out, x, edge_g, NB_W_F32, 0, 1e-6f);
    nb_rmsnorm_lanes_ref(out + 1, x, edge_g, NB_W_F32, 0, 1e-6f);
    CHECK(out[0] == GUARD && out[1] == GUARD, "n = 0 wrote %a, %a", out[0], out[1]);
    printf("edges: checked\n");
}

static const tu_section sections[] = {
    {"bits", section_bits}, {"accuracy", section_accuracy}, {"edges", section_edges}};

int main(int argc, char **argv)
{
    return tu_run_sections(sections, sizeof sections / sizeof *sections, argc, argv, "test_norm");
}
