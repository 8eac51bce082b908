/* SwiGLU's gate (neon/act.h): g <- silu(g) * u over a row.
 *
 * bits:     the NEON variant against the plain-C reference, bit for bit
 *           (NaN payloads aside), on every length 0..67 (the 8-lane body
 *           and each tail) at unaligned starts, on random values over
 *           several magnitudes and on random bit patterns (any float:
 *           NaN, infinities, subnormals); nothing written past the row;
 *           nb_silu_mul_row is the NEON variant on aarch64, libm's
 *           formula elsewhere.
 * accuracy: the reference against float64 x = g / (1 + exp(-g)) * u,
 *           within ACT_REL |x| (+ 2^-150 for a subnormal x) where
 *           exp(-|g|) and g * sigmoid(g) are normal floats, plus
 *           (|g| + 1) |u| 2^-148 elsewhere (the subnormal exp or product),
 *           on a sweep of g over every 4099th float of +-[1e-38, 104]
 *           with u = 1, and random g and u; the maximum must use more
 *           than half the bound, and a result one float outside it is
 *           rejected.
 * edges:    +-0, +-1e-40 (subnormal), +-20, +-50, +-88, -103, -104,
 *           +-1e30, +-FLT_MAX, +-inf, NaN: exact results where act.h
 *           states them, the accuracy bound for the rest.
 * With no argument every section runs; an unknown section fails. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../neon/act.h"
#include "../neon/f16.h"
#include "testutil.h"

/* act.h's bound, relative: 5 x 2^-24. Measured: 3.75 x 2^-24 for every
 * float g of the relative regime with u = 1 (a one-off exhaustive run,
 * x86-64), to which the product with u adds at most 2^-24; the sections
 * below print their maximum. */
#define ACT_REL (5.0 * 0x1p-24)

static uint64_t rng = 2024;

/* The variant under test: NEON on aarch64, else the reference (then the
 * bit-exact comparison is the reference against itself). */
static void vec(float *g, const float *u, size_t n)
{
#if defined(__aarch64__)
    nb_silu_mul_neon(g, u, n);
#else
    nb_silu_mul_ref(g, u, n);
#endif
}

static float any_value(void)
{
    switch (tu_rand(&rng) % 4) {
    case 0: return tu_magnitude(&rng, -3, 2.1); /* where silu bends */
    case 1: return tu_magnitude(&rng, -45, 38);
    case 2: return nb_bits_to_f32((uint32_t)tu_rand(&rng)); /* anything */
    default: return 25.0f * tu_randf(&rng);
    }
}

/* ---- bits ---- */

#define GUARD 12345.0f

static long bit_mismatches, bit_values;

/* The row g[0..n) at a start off floats into the buffers, both variants,
 * compared; the guards after the row must stay. */
static void bits_row(const float *g, const float *u, size_t n, size_t off)
{
    float a[80 + 8], b[80 + 8], uu[80 + 8];
    for (size_t i = 0; i < sizeof a / sizeof *a; i++)
        a[i] = b[i] = GUARD, uu[i] = 1.0f;
    memcpy(a + off, g, n * sizeof *g);
    memcpy(b + off, g, n * sizeof *g);
    memcpy(uu + off, u, n * sizeof *u);
    vec(a + off, uu + off, n);
    nb_silu_mul_ref(b + off, uu + off, n);
    for (size_t i = 0; i < n; i++, bit_values++)
        if (!tu_same_float(a[off + i], b[off + i]) && bit_mismatches++ < 5)
            fprintf(stderr, "silu(%a) * %a: vector %a, reference %a (n %zu, i %zu)\n", g[i],
                    u[i], a[off + i], b[off + i], n, i);
    for (size_t i = 0; i < sizeof a / sizeof *a; i++)
        if (i < off || i >= off + n)
            CHECK(a[i] == GUARD && b[i] == GUARD, "n %zu: written at %zu outside [%zu, %zu)", n,
                  i, off, off + n);
}

static void section_bits(void)
{
    float g[80], u[80];
    for (int rep = 0; rep < 300; rep++)
        for (size_t n = 0; n <= 67; n++) {
            for (size_t i = 0; i < n; i++)
                g[i] = any_value(), u[i] = rep % 3 ? tu_magnitude(&rng, -6, 6) : any_value();
            bits_row(g, u, n, (size_t)rep % 4);
        }
    float edges[] = {0.0f,    -0.0f,    1e-40f,   -1e-40f,  20.0f,    -20.0f,   50.0f,
                     -50.0f,  88.0f,    -88.0f,   -87.3f,   -103.0f,  -104.0f,  -1e4f,
                     1e30f,   -1e30f,   FLT_MAX,  -FLT_MAX, INFINITY, -INFINITY, NAN,
                     -NAN,    FLT_MIN,  -FLT_MIN, 1.0f,     -1.0f,    0x1p-149f, -0x1p-149f};
    size_t ne = sizeof edges / sizeof *edges;
    float us[] = {1.0f, -1.0f, 0.0f, -0.0f, 3.0f, 1e30f, 1e-30f, INFINITY, NAN};
    for (size_t j = 0; j < sizeof us / sizeof *us; j++) {
        for (size_t i = 0; i < ne; i++)
            u[i] = us[j];
        bits_row(edges, u, ne, j % 4);
        for (size_t i = 0; i < ne; i++) /* each edge in every lane and the tail */
            for (size_t n = 1; n <= 13; n++) {
                float gg[13];
                for (size_t k = 0; k < n; k++)
                    gg[k] = edges[(i + k) % ne];
                bits_row(gg, u, n, 0);
            }
    }
    CHECK(bit_mismatches == 0, "%ld of %ld vector results differ from the reference",
          bit_mismatches, bit_values);

    /* the row in use */
    float a[67], b[67], c[67], g0[67];
    for (size_t i = 0; i < 67; i++)
        a[i] = b[i] = c[i] = g0[i] = any_value(), u[i] = tu_magnitude(&rng, -3, 3);
    nb_silu_mul_row(a, u, 67);
    vec(b, u, 67);
    nb_silu_mul_ref(c, u, 67);
    int row_vec = 1, row_ref = 1;
    for (size_t i = 0; i < 67; i++) {
#if defined(__aarch64__)
        row_vec &= nb_f32_to_bits(a[i]) == nb_f32_to_bits(b[i]);
        row_ref &= nb_f32_to_bits(a[i]) == nb_f32_to_bits(c[i]);
#else /* libm's formula there (act.h) */
        float x = nb_silu_mul_libm(g0[i], u[i]);
        row_vec &= nb_f32_to_bits(a[i]) == nb_f32_to_bits(x) || (a[i] != a[i] && x != x);
#endif
    }
    CHECK(row_vec, "nb_silu_mul_row is not the variant act.h names");
    CHECK(row_ref, "nb_silu_mul_row differs from the reference");
#if defined(__aarch64__)
    const char *what = "NEON = reference bit for bit";
#else
    const char *what = "reference only (no vector variant on this host)";
#endif
    printf("bits: %ld values, lengths 0..67, %s\n", bit_values, what);
}

/* ---- accuracy ---- */

/* The spacing of floats at |x| (2^-149 below FLT_MIN). */
static double ulp_at(double x)
{
    x = fabs(x);
    if (x < FLT_MIN)
        return 0x1p-149;
    int e;
    frexp(x, &e); /* x = m 2^e, m in [0.5, 1) */
    return ldexp(1.0, e - 24);
}

static double silu_exact(float g, float u)
{
    return (double)g / (1.0 + exp(-(double)g)) * (double)u;
}

/* Whether exp(-|g|) and g * sigmoid(g) are normal floats: there the
 * bound is relative. */
static int normal_regime(float g)
{
    double gs = (double)g / (1.0 + exp(-(double)g));
    return exp(-fabs((double)g)) >= FLT_MIN && fabs(gs) >= FLT_MIN;
}

/* act.h's bound for r = silu(g) * u (g, u finite, the exact result within
 * the float range): ACT_REL relative, 2^-150 for a subnormal result's
 * rounding, and outside the normal regime the subnormal exp's or product's
 * last place carried by u. */
static double bound_of(float g, float u)
{
    double x = silu_exact(g, u), b = ACT_REL * fabs(x) + 0x1p-150;
    if (!normal_regime(g))
        b += (fabs((double)g) + 1.0) * fabs((double)u) * 0x1p-148;
    return b;
}

static int within(float g, float u, float r)
{
    return fabs((double)r - silu_exact(g, u)) <= bound_of(g, u); /* false for NaN, inf */
}

struct acc {
    long count;
    double worst_rel, worst_ulp; /* where the bound is relative */
    float worst_g, worst_u;
    double worst_sub; /* elsewhere: the share of the bound used (up to 1 where a
                       * subnormal result rounds by 2^-150, the whole of its term) */
};

static void acc_check(struct acc *a, float g, float u)
{
    float r = g;
    nb_silu_mul_ref(&r, &u, 1);
    double x = silu_exact(g, u), d = fabs((double)r - x);
    a->count++;
    CHECK(within(g, u, r), "silu(%a) * %a = %a, exact %a: %.3g relative", g, u, r, x,
          d / fabs(x));
    if (normal_regime(g) && fabs(x) >= FLT_MIN) {
        if (d / fabs(x) > a->worst_rel)
            a->worst_rel = d / fabs(x), a->worst_g = g, a->worst_u = u;
        a->worst_ulp = fmax(a->worst_ulp, d / ulp_at(x));
    } else {
        a->worst_sub = fmax(a->worst_sub, d / bound_of(g, u));
    }
}

static void section_accuracy(void)
{
    struct acc a = {0};
    /* every 4099th float of [1e-38, 104], both signs, u = 1 */
    for (uint32_t b = nb_f32_to_bits(1e-38f); b <= nb_f32_to_bits(104.0f); b += 4099) {
        acc_check(&a, nb_bits_to_f32(b), 1.0f);
        acc_check(&a, -nb_bits_to_f32(b), 1.0f);
    }
    for (int i = 0; i < 200000; i++) {
        float g = i % 2 ? tu_magnitude(&rng, -3, 2.1) : tu_magnitude(&rng, -40, 30);
        acc_check(&a, g, tu_magnitude(&rng, -6, 6));
    }
    CHECK(a.worst_rel > 0.5 * ACT_REL, "max relative error %g: the bound %g is loose",
          a.worst_rel, ACT_REL);
    /* the check rejects a result just outside the bound */
    float probe[] = {0.75f, -0.75f, 3.0f, -3.0f, -20.0f, 1e-3f, -80.0f};
    for (size_t i = 0; i < sizeof probe / sizeof *probe; i++) {
        double x = silu_exact(probe[i], 1.0f);
        float r = (float)x, away = copysignf(INFINITY, r);
        while (fabs((double)r - x) <= bound_of(probe[i], 1.0f))
            r = nextafterf(r, away);
        float in = nextafterf(r, 0.0f);
        CHECK(!within(probe[i], 1.0f, r) && within(probe[i], 1.0f, in) &&
                  fabs((double)r - x) < 2 * bound_of(probe[i], 1.0f),
              "the bound at silu(%g): %a accepted or %a rejected", probe[i], r, in);
    }
    printf("accuracy: %ld values against float64: max relative error %.3f x 2^-24 (%.2f ulp; "
           "at silu(%a) * %a; bound %.1f x 2^-24) where the exp and g * sigmoid(g) are "
           "normal, elsewhere %.3f of the bound\n",
           a.count, a.worst_rel * 0x1p24, a.worst_ulp, a.worst_g, a.worst_u, ACT_REL * 0x1p24,
           a.worst_sub);
}

/* ---- edges ---- */

static float silu1(float g, float u)
{
    float r = g;
    vec(&r, &u, 1);
    float s = g;
    nb_silu_mul_ref(&s, &u, 1);
    CHECK(tu_same_float(r, s), "silu(%a) * %a: vector %a, reference %a", g, u, r, s);
    return r;
}

static void expect_bits(float g, float u, float want)
{
    float r = silu1(g, u);
    CHECK(tu_same_float(r, want), "silu(%a) * %a = %a, want %a", g, u, r, want);
}

static void section_edges(void)
{
    expect_bits(0.0f, 3.0f, 0.0f);
    expect_bits(-0.0f, 3.0f, -0.0f);
    expect_bits(-0.0f, -3.0f, 0.0f);
    expect_bits(0.0f, -3.0f, -0.0f);
    expect_bits(1e-40f, 1.0f, nb_bits_to_f32(nb_f32_to_bits(1e-40f) / 2)); /* even: exact */
    expect_bits(-1e-40f, 1.0f, -nb_bits_to_f32(nb_f32_to_bits(1e-40f) / 2));
    expect_bits(0x1p-149f, 1.0f, 0.0f); /* half the smallest subnormal: ties to even */
    expect_bits(20.0f, 1.0f, 20.0f);
    expect_bits(50.0f, -2.0f, -100.0f);
    expect_bits(88.0f, 1.0f, 88.0f);
    expect_bits(-104.0f, 1.0f, -0.0f);
    expect_bits(-1e30f, 1.0f, -0.0f);
    expect_bits(-1e30f, -1.0f, 0.0f);
    expect_bits(-FLT_MAX, 1e30f, -0.0f);
    expect_bits(1e30f, 2.0f, 2e30f);
    expect_bits(FLT_MAX, 1.0f, FLT_MAX);
    expect_bits(FLT_MAX, 2.0f, INFINITY);
    expect_bits(INFINITY, 2.0f, INFINITY);
    expect_bits(INFINITY, -2.0f, -INFINITY);
    expect_bits(-INFINITY, 1.0f, NAN);
    expect_bits(NAN, 1.0f, NAN);
    expect_bits(1.0f, NAN, NAN);
    expect_bits(INFINITY, 0.0f, NAN);
    expect_bits(2.0f, INFINITY, INFINITY);
    expect_bits(-2.0f, INFINITY, -INFINITY);
    /* finite edges: the accuracy bound, through the variant under test */
    float fin[] = {1e-40f, -1e-40f, 20.0f, -20.0f, 50.0f, -50.0f, 88.0f, -88.0f, -87.3f,
                   -100.0f, -103.0f, -103.5f, 1e30f, -1e30f, FLT_MAX, -FLT_MAX, FLT_MIN,
                   -FLT_MIN};
    float us[] = {1.0f, -0.5f, 1e-20f, 1e20f, 1e37f};
    for (size_t i = 0; i < sizeof fin / sizeof *fin; i++)
        for (size_t j = 0; j < sizeof us / sizeof *us; j++) {
            double x = silu_exact(fin[i], us[j]);
            if (!(fabs(x) < FLT_MAX))
                continue; /* the product overflows: FLT_MAX * 2 above */
            float r = silu1(fin[i], us[j]);
            CHECK(within(fin[i], us[j], r), "silu(%a) * %a = %a, exact %a", fin[i], us[j], r, x);
        }
    printf("edges: checked\n");
}

static const tu_section sections[] = {
    {"bits", section_bits}, {"accuracy", section_accuracy}, {"edges", section_edges}};

int main(int argc, char **argv)
{
    return tu_run_sections(sections, sizeof sections / sizeof *sections, argc, argv, "test_act");
}
