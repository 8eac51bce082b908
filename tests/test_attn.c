/* The attention kernel over an fp16 KV cache (neon/attn.h): the variant
 * this build runs against the plain-C reference and against a float64
 * two-pass softmax, on head sizes with tails (6, 8, 12, 64, 128, and
 * random even ones), grouped-query strides, one position and many, and
 * scores large enough that the online maximum moves or that weights
 * underflow. The variants differ by fp32 rounding: |diff| <= 1e-5 *
 * (1 + max |v|) against the reference and 2e-5 against float64 (the cache
 * values are the same fp16 numbers in all three).
 *
 * The softmax's exp (neon/vexp.h): the NEON variant against the plain-C
 * reference, bit for bit (same algorithm), and both against libm's expf:
 * within 1 ulp (so within 2^-23 relative for normal results, and within
 * 2^-149 absolute below FLT_MIN), on a sweep of every 1009th float from 0
 * down to -104, random values, and the edges: 0, -0, tiny, -87.3 (FLT_MIN
 * near), -88, -103.97 (the last nonzero result), -104 and below (0), -inf
 * (0, no NaN), up to 44 above 0. An exhaustive run over all floats in
 * [-104, 0] (one-off, x86 and aarch64) found the same 1 ulp maximum.
 *
 * The grouped forms (g query heads sharing a kv head, each key and value
 * loaded once for all): each head bit for bit the same variant's
 * single-head result, whatever g (1 to 40, odd ones, past the 16 heads
 * kept at once), head size (64, 128, 80, 16, 32 and tails of 8 and 4
 * columns) and length (tails of the 8-position blocks); within the
 * tolerance above of the reference; nothing written between the heads'
 * output rows (ldo > hd) and q read at its own row stride.
 *
 * The variants of the int8 path that read the keys in blocks of 8
 * positions (attn.h: f16h in fp16 arithmetic, f32b in fp32): each vector
 * form bit for bit its plain-C reference, grouped or not, on the same
 * kind of grid (head sizes 2 to 160, lengths with tails of blocks and of
 * 64-position superblocks, 1 to 40 heads, values near 65504), with NaN
 * and infinities in the unused lanes of the last block; each reference
 * within its bound of the fp32 one (F16H_BOUND, F32B_BOUND).
 *
 * The cache rows' conversion (nb_f32_to_f16_row: FCVTN on aarch64) bit
 * for bit nb_f32_to_f16 on every float of 6 low halves, the specials
 * (NaNs with payloads, 65504 against inf, subnormals) and random ones, at
 * lengths 0 to 40 and unaligned.
 *
 *   test_attn [section ...]   (all of them with none: see sections[]) */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../neon/attn.h"
#include "../neon/f16.h"
#include "../neon/vexp.h"
#include "testutil.h"

static uint64_t rng = 99;

/* The f16h variant's distance from the fp32 one, relative to the values'
 * size: the fp16 rounding of q * scale and of the scores' chains (up to
 * 16 products) moves a score by about 2^-11 of its terms' size, a weight
 * by that much relative. Measured: see check_blocked_all's line. */
#define F16H_BOUND 1e-2
/* f32b's: fp32 sums in another order, and weights by nb_exp_w (2^-17). */
#define F32B_BOUND 1e-5

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
    nb_attend_f16_ref(b, q, k + h * hd, v + h * hd, stride, n, hd, scale);
    exact(c, q, k + h * hd, v + h * hd, stride, n, hd, scale);
    double *bd = malloc(hd * sizeof *bd);
    for (size_t i = 0; i < hd; i++)
        bd[i] = b[i];
    size_t n_sets;
    const nb_attend_set *sets = nb_attend_sets(&n_sets);
    for (size_t si = 0; si < n_sets; si++) {
        sets[si].attend(a, q, k + h * hd, v + h * hd, stride, n, hd, scale);
        double d_ref = max_diff(a, bd, hd), d_exact = fmax(max_diff(a, c, hd), max_diff(b, c, hd));
        CHECK(d_ref <= 1e-5 * 2 && d_exact <= 2e-5 * 2,
              "%s: hd %zu, n %zu, q scale %g: vs reference %g, vs float64 %g", sets[si].name, hd,
              n, qscale, d_ref, d_exact);
    }
    free(bd);
    free(q), free(kf), free(a), free(b), free(c), free(k), free(v);
}

/* ---- grouped heads ---- */

static long group_calls, group_heads;

/* g query heads (rows of q, ldq apart) over the last of kv heads' cache,
 * through every variant's grouped form and the reference's. */
static void check_group(size_t hd, size_t n, size_t g, size_t kv, float qscale)
{
    const float guard = 1234.5f;
    size_t stride = kv * hd, ldq = hd + 3, ldo = hd + 5;
    float *q = malloc(g * ldq * sizeof *q), *kf = malloc(n * stride * sizeof *kf);
    float *grp = malloc(g * ldo * sizeof *grp), *one = malloc(hd * sizeof *one);
    float *ref = malloc(g * hd * sizeof *ref);
    double *refd = malloc(hd * sizeof *refd);
    uint16_t *k = malloc(n * stride * sizeof *k), *v = malloc(n * stride * sizeof *v);
    for (size_t i = 0; i < g * ldq; i++)
        q[i] = qscale * tu_randf(&rng);
    for (size_t i = 0; i < n * stride; i++)
        kf[i] = tu_randf(&rng) * (i % 7 == 0 ? 4.0f : 1.0f);
    nb_f32_to_f16_row(k, kf, n * stride);
    for (size_t i = 0; i < n * stride; i++)
        kf[i] = tu_randf(&rng);
    nb_f32_to_f16_row(v, kf, n * stride);
    const uint16_t *kh = k + (kv - 1) * hd, *vh = v + (kv - 1) * hd;
    float scale = 1.0f / sqrtf((float)hd);
    for (size_t j = 0; j < g; j++)
        nb_attend_f16_ref(ref + j * hd, q + j * ldq, kh, vh, stride, n, hd, scale);
    size_t n_sets;
    const nb_attend_set *sets = nb_attend_sets(&n_sets);
    for (size_t si = 0; si <= n_sets; si++) {
        nb_attend_set set = si < n_sets ? sets[si]
                                        : (nb_attend_set){"ref", nb_attend_f16_ref,
                                                          nb_attend_group_f16_ref, 0, 0};
        for (size_t i = 0; i < g * ldo; i++)
            grp[i] = guard;
        set.group(grp, ldo, q, ldq, g, kh, vh, stride, n, hd, scale);
        size_t differ = 0, first = 0, guards = 0;
        double d_ref = 0;
        for (size_t j = 0; j < g; j++) {
            set.attend(one, q + j * ldq, kh, vh, stride, n, hd, scale);
            if (memcmp(one, grp + j * ldo, hd * sizeof *one) && differ++ == 0)
                first = j;
            for (size_t i = 0; i < hd; i++)
                refd[i] = ref[j * hd + i];
            d_ref = fmax(d_ref, max_diff(grp + j * ldo, refd, hd));
            for (size_t i = hd; i < ldo; i++)
                guards += grp[j * ldo + i] != guard;
        }
        CHECK(differ == 0, "%s grouped: hd %zu, n %zu, g %zu: %zu heads differ from the "
              "single-head kernel (first: head %zu)", set.name, hd, n, g, differ, first);
        CHECK(d_ref <= 1e-5 * 2, "%s grouped: hd %zu, n %zu, g %zu, q scale %g: vs reference %g",
              set.name, hd, n, g, qscale, d_ref);
        CHECK(guards == 0, "%s grouped: hd %zu, n %zu, g %zu: %zu values written between rows",
              set.name, hd, n, g, guards);
        group_calls++;
        group_heads += (long)g;
    }
    free(q), free(kf), free(grp), free(one), free(ref), free(refd), free(k), free(v);
}

static void check_groups(void)
{
    size_t hds[] = {64, 128, 80, 16, 32, 12, 6, 2};
    size_t ns[] = {1, 3, 8, 13, 16, 33, 63, 64, 65, 130};
    size_t gs[] = {1, 2, 3, 4, 5, 6, 7, 8, 12, 14, 16, 17};
    for (size_t a = 0; a < sizeof hds / sizeof *hds; a++)
        for (size_t b = 0; b < sizeof ns / sizeof *ns; b++)
            for (size_t c = 0; c < sizeof gs / sizeof *gs; c++)
                check_group(hds[a], ns[b], gs[c], 1 + (a + b + c) % 3,
                            c % 4 == 3 ? 16.0f : c % 4 == 1 ? 8.0f : 1.0f);
    for (int i = 0; i < 60; i++) { /* random shapes, some peaked, some past 16 heads */
        size_t hd = i % 2 ? hds[tu_rand(&rng) % 5] : 2 + 2 * (tu_rand(&rng) % 80);
        size_t n = 1 + tu_rand(&rng) % 400, g = 1 + tu_rand(&rng) % (i % 10 ? 16 : 40);
        check_group(hd, n, g, 1 + tu_rand(&rng) % 3, i % 3 == 0 ? 16.0f : 1.0f);
    }
    /* heads wider than the NEON variant's room for 16 interleaved ones:
     * 7 heads at a time, then one at a time */
    check_group(2050, 20, 9, 1, 1.0f);
    check_group(8194, 9, 3, 2, 1.0f);
    printf("grouped: %ld calls over %ld heads, each bit for bit its variant's single-head "
           "result\n",
           group_calls, group_heads);
}

/* ---- the variants with keys in blocks: f16h (fp16 arithmetic), f32b ---- */

/* A variant with keys in blocks: its reference, its set where this build
 * and CPU run it, its values' layout (val_block: tiles or rows), its
 * bound against the fp32 reference (relative to 1 + max |v|), and what
 * the checks saw. */
typedef struct blocked {
    const char *name;
    nb_attend_group_fn *ref;
    const nb_attend_set *(*set)(void);
    int val_block;
    double bound, worst;
    long calls, vector;
} blocked;

static blocked f16h = {.name = "f16h", .ref = nb_attend_group_f16h_ref, .set = nb_attend_f16h,
                       .val_block = NB_ATTEND_VBLOCK, .bound = F16H_BOUND};
static blocked f32b = {.name = "f32b", .ref = nb_attend_group_f32b_ref, .set = nb_attend_f32b,
                       .bound = F32B_BOUND};

/* The n rows of keys k (row length stride) in the blocked variants'
 * layout (attn.h), the rows past n in the last block NaN, +inf and -inf:
 * the lanes they fill must not reach the positions before them. */
static uint16_t *blocked_keys(const uint16_t *k, size_t n, size_t stride)
{
    size_t rows = (n + NB_ATTEND_KBLOCK - 1) / NB_ATTEND_KBLOCK * NB_ATTEND_KBLOCK;
    const uint16_t junk[3] = {0x7e00, 0x7c00, 0xfc00};
    uint16_t *b = malloc(rows * stride * sizeof *b);
    for (size_t t = 0; t < rows; t++)
        for (size_t c = 0; c < stride; c++)
            b[nb_attend_key_at(t, c, stride)] = t < n ? k[t * stride + c] : junk[(t + c) % 3];
    return b;
}

/* The n rows of values v (row length stride) in tiles (attn.h) when hd
 * allows, the rows past n in the last block NaN, +inf and -inf (no
 * weight may reach them); else a copy of the rows. */
static uint16_t *tiled_values(const uint16_t *v, size_t n, size_t stride, size_t hd)
{
    size_t rows = (n + NB_ATTEND_VBLOCK - 1) / NB_ATTEND_VBLOCK * NB_ATTEND_VBLOCK;
    const uint16_t junk[3] = {0x7e00, 0x7c00, 0xfc00};
    uint16_t *b = malloc(rows * stride * sizeof *b);
    for (size_t t = 0; t < rows; t++)
        for (size_t c = 0; c < stride; c++)
            b[nb_attend_val_at(t, c, stride, hd)] = t < n ? v[t * stride + c] : junk[(t + c) % 3];
    return b;
}

/* g heads through variant x's reference and, where this CPU runs it, its
 * vector form: bit for bit, grouped or not, nothing written between
 * output rows; the reference against the fp32 one (worst kept). q and the
 * values are random times qscale and vscale; vscale < 0 makes every value
 * -vscale (with qscale 0, equal weights: the largest sums). */
static void check_blocked_v(blocked *x, size_t hd, size_t n, size_t g, size_t kv, float qscale,
                            float vscale)
{
    const float guard = 1234.5f;
    size_t stride = kv * hd, ldq = hd + 3, ldo = hd + 5;
    float *q = malloc(g * ldq * sizeof *q), *kf = malloc(n * stride * sizeof *kf);
    float *grp = malloc(g * ldo * sizeof *grp), *one = malloc(hd * sizeof *one);
    float *ref = malloc(g * hd * sizeof *ref), *f32 = malloc(hd * sizeof *f32);
    uint16_t *k = malloc(n * stride * sizeof *k), *v = malloc(n * stride * sizeof *v);
    for (size_t i = 0; i < g * ldq; i++)
        q[i] = qscale * tu_randf(&rng);
    for (size_t i = 0; i < n * stride; i++)
        kf[i] = tu_randf(&rng) * (i % 7 == 0 ? 4.0f : 1.0f);
    nb_f32_to_f16_row(k, kf, n * stride);
    float vmax = 0.0f;
    for (size_t i = 0; i < n * stride; i++) /* vscale < 0: all -vscale, the largest sums */
        kf[i] = vscale < 0 ? -vscale : vscale * tu_randf(&rng), vmax = fmaxf(vmax, fabsf(kf[i]));
    nb_f32_to_f16_row(v, kf, n * stride);
    const uint16_t *kh = k + (kv - 1) * hd, *vh = v + (kv - 1) * hd;
    uint16_t *kb = blocked_keys(k, n, stride);
    const uint16_t *kbh = kb + nb_attend_key_at(0, (kv - 1) * hd, stride);
    uint16_t *vt = x->val_block ? tiled_values(v, n, stride, hd) : NULL;
    const uint16_t *vth = vt ? vt + nb_attend_val_at(0, (kv - 1) * hd, stride, hd) : vh;
    float scale = 1.0f / sqrtf((float)hd);
    x->ref(ref, hd, q, ldq, g, kbh, vth, stride, n, hd, scale);
    for (size_t j = 0; j < g; j++) {
        nb_attend_f16_ref(f32, q + j * ldq, kh, vh, stride, n, hd, scale);
        for (size_t i = 0; i < hd; i++) {
            double d = fabs((double)ref[j * hd + i] - f32[i]) / (1.0 + vmax);
            x->worst = d > x->worst || d != d ? d : x->worst;
        }
    }
    const nb_attend_set *set = x->set();
    if (set) {
        for (size_t i = 0; i < g * ldo; i++)
            grp[i] = guard;
        set->group(grp, ldo, q, ldq, g, kbh, vth, stride, n, hd, scale);
        size_t differ = 0, single = 0, guards = 0;
        for (size_t j = 0; j < g; j++) {
            differ += memcmp(ref + j * hd, grp + j * ldo, hd * sizeof *grp) != 0;
            set->attend(one, q + j * ldq, kbh, vth, stride, n, hd, scale);
            single += memcmp(one, grp + j * ldo, hd * sizeof *one) != 0;
            for (size_t i = hd; i < ldo; i++)
                guards += grp[j * ldo + i] != guard;
        }
        CHECK(differ == 0 && single == 0 && guards == 0,
              "%s: hd %zu, n %zu, g %zu, q scale %g: %zu heads differ from the reference, "
              "%zu from the single-head call, %zu values written between rows",
              x->name, hd, n, g, qscale, differ, single, guards);
        CHECK(set->key_block == NB_ATTEND_KBLOCK && set->val_block == x->val_block,
              "%s: keys in blocks of %d, values in tiles of %d", x->name, set->key_block,
              set->val_block);
        x->vector++;
    }
    x->calls++;
    free(q), free(kf), free(grp), free(one), free(ref), free(f32), free(k), free(v), free(kb);
    free(vt);
}

/* The fused fp16 multiply-add of the reference against FMLA .8h: random
 * finite operands of every exponent (subnormals, overflow to infinity,
 * cancellation), and products at an fp16 tie nudged by the smallest c. */
static void check_f16_fma(void)
{
    enum { N = 1 << 16 };
    static uint16_t a[N], b[N], c[N], d[N];
    long mismatches = 0, count = 0;
    for (int round = 0; round < 16; round++) {
        for (size_t i = 0; i < N; i++) {
            do { /* finite: an exponent field below 31 */
                a[i] = (uint16_t)tu_rand(&rng), b[i] = (uint16_t)tu_rand(&rng);
                c[i] = (uint16_t)tu_rand(&rng);
            } while ((a[i] & 0x7c00) == 0x7c00 || (b[i] & 0x7c00) == 0x7c00 ||
                     (c[i] & 0x7c00) == 0x7c00);
            if (round % 4 == 1) /* near products: the sum cancels or rounds at a tie */
                c[i] = (uint16_t)(nb_f32_to_f16(-nb_f16_to_f32(a[i]) * nb_f16_to_f32(b[i])) ^
                                  (tu_rand(&rng) & 3));
            if (round % 4 == 2) /* tiny c against any product */
                c[i] = (uint16_t)((c[i] & 0x8000) | (tu_rand(&rng) % 4));
        }
        a[0] = 0x3c01, b[0] = 0x3e00, c[0] = 0x8001; /* 1.5 + 1.5 ulp - 2^-24: down */
        a[1] = 0x3c01, b[1] = 0x3e00, c[1] = 0x0001; /* up */
        a[2] = 0x3c01, b[2] = 0x3e00, c[2] = 0x0000; /* the tie: to even */
        for (size_t i = 0; i < N; i++)
            d[i] = nb_f16_fma_ref(a[i], b[i], c[i]);
        CHECK(d[0] == 0x3e01 && d[1] == 0x3e02 && d[2] == 0x3e02, "fma ties: %04x %04x %04x",
              d[0], d[1], d[2]);
#if defined(__aarch64__)
        if (nb_attend_f16h()) {
            static uint16_t h[N];
            nb_f16h_fma_neon(h, a, b, c, N);
            for (size_t i = 0; i < N; i++)
                if (h[i] != d[i] && !((h[i] & 0x7fff) > 0x7c00 && (d[i] & 0x7fff) > 0x7c00) &&
                    mismatches++ < 5)
                    fprintf(stderr, "fma16(%04x, %04x, %04x): FMLA %04x, reference %04x\n",
                            a[i], b[i], c[i], h[i], d[i]);
            count += N;
        }
#endif
    }
    CHECK(mismatches == 0, "%ld of %ld fp16 multiply-adds differ from FMLA", mismatches, count);
    printf("f16h: fp16 fma reference against FMLA .8h on %ld operand triples%s\n", count,
           count ? "" : " (no FEAT_FP16 here: reference only)");
}

/* Variant x on head sizes with and without tails (chains of 16, 8, 4, 2
 * and 1 columns in f16h; 4 and fewer in f32b), lengths with and without
 * tails of blocks and superblocks, groups past the kernels' 6 or 8 heads
 * and past the 16 kept at once, the shapes of the models run on boards,
 * and values near the fp16 maximum (65504: weights near 1 from a q of 0
 * must not overflow f16h's fp16 value partials). */
static void check_blocked_all(blocked *x)
{
    size_t hds[] = {128, 64, 80, 16, 32, 12, 6, 2};
    size_t ns[] = {1, 3, 8, 13, 16, 33, 63, 64, 65, 130};
    size_t gs[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 17};
    for (size_t a = 0; a < sizeof hds / sizeof *hds; a++)
        for (size_t b = 0; b < sizeof ns / sizeof *ns; b++)
            for (size_t c = 0; c < sizeof gs / sizeof *gs; c++)
                check_blocked_v(x, hds[a], ns[b], gs[c], 1 + (a + b + c) % 3,
                                c % 4 == 3 ? 16.0f : c % 4 == 1 ? 8.0f : 1.0f, 1.0f);
    for (int i = 0; i < 30; i++) {
        size_t hd = i % 2 ? hds[tu_rand(&rng) % 5] : 2 + 2 * (tu_rand(&rng) % 80);
        size_t n = 1 + tu_rand(&rng) % 600, g = 1 + tu_rand(&rng) % (i % 10 ? 16 : 40);
        check_blocked_v(x, hd, n, g, 1 + tu_rand(&rng) % 3, i % 3 == 0 ? 16.0f : 1.0f, 1.0f);
    }
    check_blocked_v(x, 128, 2048, 6, 2, 1.0f, 1.0f); /* the qwen2.5-1.5b group, 2048 positions */
    check_blocked_v(x, 64, 2048, 4, 8, 1.0f, 1.0f);  /* llama3.2-1b's */
    check_blocked_v(x, 64, 100, 6, 2, 0.0f, 65000.0f);
    check_blocked_v(x, 16, 67, 3, 1, 1.0f, 65000.0f);
    check_blocked_v(x, 16, 64, 2, 1, 0.0f, -65504.0f); /* equal weights, all values 65504 */
    CHECK(x->worst <= x->bound, "%s against the fp32 reference: %g", x->name, x->worst);
    printf("%s: %ld calls (%ld through the vector form, bit for bit the reference); against "
           "the fp32 reference: max |diff| / (1 + max |v|) = %.3g\n",
           x->name, x->calls, x->vector, x->worst);
}

/* ---- exp ---- */

static long ulp_distance(float a, float b)
{
    long d = (long)nb_f32_to_bits(a) - (long)nb_f32_to_bits(b);
    return d < 0 ? -d : d; /* both >= +0 here: the bit patterns are ordered */
}

struct exp_stats {
    long count, worst_ulp, mismatches;
    double worst_rel;
};

/* exp of 4 values: the NEON variant where there is one, else the reference
 * (then the bit-exact comparison is the reference against itself). */
static void exp4(float *y, const float *x)
{
#if defined(__aarch64__)
    vst1q_f32(y, nb_exp_neon(vld1q_f32(x)));
#else
    for (int i = 0; i < 4; i++)
        y[i] = nb_exp_ref(x[i]);
#endif
}

static void exp_check(struct exp_stats *s, const float *x)
{
    float y[4];
    exp4(y, x);
    for (int i = 0; i < 4; i++) {
        float r = nb_exp_ref(x[i]), l = expf(x[i]);
        s->count++;
        if (nb_f32_to_bits(y[i]) != nb_f32_to_bits(r) || isnan(r)) {
            if (s->mismatches++ < 5)
                fprintf(stderr, "exp(%a): vector %a, reference %a\n", x[i], y[i], r);
            continue;
        }
        long u = ulp_distance(r, l);
        s->worst_ulp = u > s->worst_ulp ? u : s->worst_ulp;
        double rel = l >= FLT_MIN ? fabs((double)r - l) / l : 0.0;
        s->worst_rel = rel > s->worst_rel ? rel : s->worst_rel;
        CHECK(u <= 1, "exp(%a) = %a, libm %a: %ld ulp", x[i], r, l, u);
    }
}

static void exp_edges(struct exp_stats *s)
{
    float x[] = {0.0f, -0.0f, -1e-30f, -FLT_MIN, -1e-45f, -0.3466f, -0.3467f, -1.0f,
                 -87.3f, -87.34f, -88.0f, -103.0f, -103.97f, -103.98f, -104.0f, -104.5f,
                 -150.0f, -1e4f, -FLT_MAX, -INFINITY, 1e-30f, 1.0f, 10.0f, 44.0f};
    exp_check(s, x), exp_check(s, x + 4), exp_check(s, x + 8), exp_check(s, x + 12);
    exp_check(s, x + 16), exp_check(s, x + 20);
    float y[4];
    float big[4] = {-104.0f, -200.0f, -FLT_MAX, -INFINITY};
    exp4(y, big);
    for (int i = 0; i < 4; i++)
        CHECK(nb_f32_to_bits(y[i]) == 0, "exp(%g) = %a, not +0", big[i], y[i]);
    float one[4] = {0.0f, -0.0f, -1e-30f, -1e-45f};
    exp4(y, one);
    for (int i = 0; i < 4; i++)
        CHECK(y[i] == 1.0f, "exp(%g) = %a, not 1", one[i], y[i]);
    float low[4] = {-87.3f, -88.0f, -100.0f, -103.9f}; /* normal, then subnormal */
    exp4(y, low);
    CHECK(y[0] >= FLT_MIN && y[1] > 0 && y[1] < FLT_MIN && y[3] == 0x1p-149f,
          "underflow: %a %a %a %a", y[0], y[1], y[2], y[3]);
}

static void check_exp(void)
{
    struct exp_stats s = {0};
    exp_edges(&s);
    float x[4];
    int k = 0;
    for (uint32_t u = 0x80000000u; u <= 0xc2d00000u; u += 1009) { /* -0 .. -104 */
        x[k++] = nb_bits_to_f32(u);
        if (k == 4)
            exp_check(&s, x), k = 0;
    }
    for (int i = 0; i < 100000; i++) {
        for (k = 0; k < 4; k++)
            x[k] = 55.0f * (tu_randf(&rng) - 1.0f); /* [-110, 0) */
        exp_check(&s, x);
    }
    CHECK(s.mismatches == 0, "%ld of %ld vector exps differ from the reference", s.mismatches,
          s.count);
    CHECK(s.worst_rel <= 0x1p-23, "relative error %g against libm", s.worst_rel);
#if defined(__aarch64__)
    const char *vector = "NEON = reference bit for bit";
#else
    const char *vector = "reference only (no vector variant on this host)";
#endif
    printf("exp: %ld values, %s; against libm expf: max %ld ulp, max relative %.3g (normal "
           "results)\n",
           s.count, vector, s.worst_ulp, s.worst_rel);
}

/* Random even head sizes (tails of 8 and 4 columns), lengths (tails of
 * the 8-position blocks), grouped-query strides and peaks. */
static void check_random_shapes(void)
{
    for (int i = 0; i < 40; i++) {
        size_t hd = 2 + 2 * (tu_rand(&rng) % 80), n = 1 + tu_rand(&rng) % 600;
        size_t kv = 1 + tu_rand(&rng) % 4;
        check(hd, n, kv, i % 3 == 0 ? 16.0f : 1.0f);
    }
}

/* ---- the cache rows' fp16 conversion ---- */

static long row_values, row_bad;

/* x[0, n) through nb_f32_to_f16_row into out + at: each value bit for bit
 * nb_f32_to_f16's, nothing written before out + at or in the 8 after. */
static void row_check(const float *x, size_t n, size_t at)
{
    enum { GUARD = 0x5a5a };
    static _Alignas(16) uint16_t out[(1 << 16) + 16];
    for (size_t i = 0; i < at + n + 8; i++)
        out[i] = GUARD;
    nb_f32_to_f16_row(out + at, x, n);
    for (size_t i = 0; i < n; i++) {
        uint16_t want = nb_f32_to_f16(x[i]);
        if (out[at + i] != want && row_bad++ < 5)
            fprintf(stderr, "f16 row: %08x (value %zu of %zu) to %04x, nb_f32_to_f16 %04x\n",
                    nb_f32_to_bits(x[i]), i, n, out[at + i], want);
    }
    size_t guards = 0;
    for (size_t i = 0; i < at; i++)
        guards += out[i] != GUARD;
    for (size_t i = at + n; i < at + n + 8; i++)
        guards += out[i] != GUARD;
    CHECK(guards == 0, "f16 row of %zu at %zu: %zu values written outside it", n, at, guards);
    row_values += (long)n;
}

/* nb_f32_to_f16_row against nb_f32_to_f16, bit for bit: every sign,
 * exponent and top 7 mantissa bits with low halves that are exact, just
 * under, at and over the tie of the 13 dropped bits, odd kept bits and
 * all ones (NaN payloads, quiet and signalling, in every lane); the
 * specials (zeros, fp32 and fp16 subnormal edges, 65504 against inf,
 * infinities, NaNs); random bit patterns and random values in fp16's
 * range; every length 0 to 40 (8 at a time, 4, and the scalar tail) at
 * 8 offsets of the source and 8 of the destination. */
static void check_f16_rows(void)
{
    static _Alignas(16) float x[(1 << 16) + 8];
    const uint32_t lows[] = {0, 0x0fff, 0x1000, 0x1001, 0x2fff, 0xffff};
    for (size_t l = 0; l < sizeof lows / sizeof *lows; l++) {
        for (uint32_t hi = 0; hi < 1 << 16; hi++)
            x[hi] = nb_bits_to_f32(hi << 16 | lows[l]);
        row_check(x, 1 << 16, 0);
        row_check(x + 3, (1 << 16) - 3, 5); /* unaligned both sides */
    }
    const uint32_t specials[] = {
        0x00000000, 0x80000000, 0x00000001, 0x807fffff, 0x00800000, /* zeros, fp32 subnormals */
        0x33000000, 0x33000001, 0xb37fffff, 0x33800000, 0x33c00000, /* 2^-25 (a tie), 2^-24 */
        0x387fc000, 0x387fe000, 0xb87fefff, 0x387ff000, 0x38800000, /* the largest subnormal half */
        0x3f800000, 0xbf801000, 0x3f803000, 0x3f801001, 0x3f800fff, /* 1 and its ties */
        0x477fe000, 0xc77fefff, 0x477ff000, 0x477ff001, 0x477fffff, /* 65504 or inf */
        0x47800000, 0x7f7fffff, 0xff7fffff, 0x7f800000, 0xff800000, /* overflow, infinities */
        0x7f800001, 0xffbfffff, 0x7fa00000, 0x7fc00000, 0xffc00000, /* signalling, quiet NaN */
        0x7fc00001, 0x7fe01000, 0xffffffff, 0x7fffffff, 0xfff00000};
    size_t ns = sizeof specials / sizeof *specials;
    for (size_t i = 0; i < ns; i++)
        x[i] = nb_bits_to_f32(specials[i]);
    for (size_t i = ns; i < 1 << 15; i++) /* random bits: every exponent, some NaNs */
        x[i] = nb_bits_to_f32((uint32_t)tu_rand(&rng));
    for (size_t i = 1 << 15; i < 1 << 16; i++) /* random values from 2^-40 to 2^16 */
        x[i] = ldexpf(tu_randf(&rng), (int)(tu_rand(&rng) % 57) - 40);
    row_check(x, 1 << 16, 0);
    for (size_t from = 0; from < 8; from++)
        for (size_t to = 0; to < 8; to++)
            for (size_t n = 0; n <= 40; n++) {
                row_check(x + from, n, to);        /* the specials in every lane */
                row_check(x + 1000 + from, n, to); /* random bits */
            }
    uint16_t h[3];
    float y[3] = {1.0f, 65504.0f, 1e-8f};
    nb_f32_to_f16_row(h, y, 3);
    CHECK(h[0] == 0x3c00 && h[1] == 0x7bff && h[2] == 0x0000, "f16 row %04x %04x %04x", h[0],
          h[1], h[2]);
    CHECK(row_bad == 0, "%ld of %ld values differ from nb_f32_to_f16", row_bad, row_values);
#if defined(__aarch64__)
    const char *how = "NEON (FCVTN)";
#else
    const char *how = "portable";
#endif
    printf("f16 rows: %ld values, %s bit for bit nb_f32_to_f16\n", row_values, how);
}

/* ---- the sections ---- */

static void section_single(void)
{
    size_t hds[] = {6, 8, 12, 64, 128};
    size_t ns[] = {1, 2, 3, 7, 9, 17, 300};
    for (size_t i = 0; i < sizeof hds / sizeof *hds; i++)
        for (size_t j = 0; j < sizeof ns / sizeof *ns; j++) {
            check(hds[i], ns[j], 2, 1.0f);
            check(hds[i], ns[j], 1, 8.0f);  /* peaked: the maximum moves late */
            check(hds[i], ns[j], 4, 64.0f); /* most weights underflow to 0 */
        }
    check_random_shapes();
}

static void section_f16h(void)
{
    check_blocked_all(&f16h);
}

static void section_f32b(void)
{
    check_blocked_all(&f32b);
}

static void section_variants(void)
{
    size_t n_sets;
    const nb_attend_set *sets = nb_attend_sets(&n_sets);
    printf("test_attn: variants");
    for (size_t i = 0; i < n_sets; i++)
        printf(" %s", sets[i].name);
    printf("\n");
    CHECK(sets[n_sets - 1].attend == nb_attend_f16(), "the attention in use is not the last");
    CHECK(sets[n_sets - 1].group == nb_attend_group_f16(), "the grouped form is not the last's");
}

static const tu_section sections[] = {
    {"exp", check_exp},       {"single", section_single},
    {"groups", check_groups}, {"fma", check_f16_fma},
    {"f16h", section_f16h},   {"f32b", section_f32b},
    {"f16-row", check_f16_rows}, {"variants", section_variants},
};

int main(int argc, char **argv)
{
    return tu_run_sections(sections, sizeof sections / sizeof *sections, argc, argv, "test_attn");
}
