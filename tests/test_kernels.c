/* The packed-weight kernels (neon/qkern.h): every variant this CPU runs
 * against its plain-C reference on shapes with every kind of tail, the
 * references against qpack.c's nb_qgemv_ref and an independent double
 * computation, row splits, writes outside the row range, run-time
 * selection, and how far int8 activations move the GEMV from the exact
 * fp32 path on realistic data. On aarch64 also the copies of the variants
 * built with single-vector loads (neon/qkern_ld.h's fallback).
 *
 * Tolerances: the int8 variants do the same integer sums and the same
 * fused fp32 operations in the same order as nb_qgemv_q8_ref, and the
 * exact variant the same as nb_qgemv_f32_ref, so those comparisons are
 * bit for bit. The references against nb_qgemv_ref and the double sums
 * differ by fp32 rounding only: |diff| <= 1e-5 * sum |terms|. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../neon/qkern.h"
#include "../neon/qpack.h"
#include "../neon/quant.h"
#include "testutil.h"

#if defined(__aarch64__)
#include <sys/auxv.h>

#include "../neon/qkern_neon.h"

/* The variant files again, built with neon/qkern_ld.h's single-vector
 * loads forced (what compilers without vld1q_u8_x4 and kin get): checked
 * like the sets they copy, so both spellings are compiled and compared on
 * every aarch64 build. */
static const nb_qkernels ld1fb_sets[] = {
    {.name = "neon-ld1fb", .gemv_form = NB_ACT_WIDE, .gemm_form = NB_ACT_WIDE,
     .gemv = nb_qgemv_q8_neon_ld1fb, .gemm = nb_qgemm_q8_neon_ld1fb,
     .gemv_f32 = nb_qgemv_f32_neon_ld1fb},
    {.name = "dotprod-ld1fb", .gemv_form = NB_ACT_PLAIN, .gemm_form = NB_ACT_PLAIN,
     .gemv = nb_qgemv_q8_dotprod_ld1fb, .gemm = nb_qgemm_q8_dotprod_ld1fb,
     .gemv_f32 = nb_qgemv_f32_neon_ld1fb, .needs = NB_CPU_DOTPROD},
    {.name = "i8mm-ld1fb", .gemv_form = NB_ACT_PLAIN, .gemm_form = NB_ACT_PAIRS,
     .gemv = nb_qgemv_q8_dotprod_ld1fb, .gemm = nb_qgemm_q8_i8mm_ld1fb,
     .gemv_f32 = nb_qgemv_f32_neon_ld1fb, .needs = NB_CPU_DOTPROD | NB_CPU_I8MM},
};
#endif

#define SENTINEL (-1234.5f)
#define MAX_TOK 11

static uint64_t rng = 0x5eed;

struct tensor {
    nb_qlayout l;
    uint8_t *data;
    float *w; /* dequantized rows [rows][cols], from nb_qrow_ref */
};

/* Weights with a per-row spread and a few outliers, as trained layers
 * have; some rows symmetric, most with zero points (AWQ's default). */
static void make_tensor(struct tensor *t, size_t rows, size_t cols, int bits, int group)
{
    CHECK(nb_qlayout_init(&t->l, rows, cols, bits, group) == 0, "layout %zux%zu", rows, cols);
    nb_qspec q = {bits, group, 0};
    size_t ng = nb_qgroups(cols, &q);
    float *w = malloc(cols * sizeof *w), *scales = malloc(rows * ng * sizeof *scales);
    uint8_t *codes = malloc(rows * cols), *zeros = malloc(rows * ng);
    for (size_t r = 0; r < rows; r++) {
        float spread = 0.01f + 0.05f * (tu_randf(&rng) + 1.0f);
        for (size_t c = 0; c < cols; c++) {
            w[c] = spread * tu_randf(&rng);
            if (tu_rand(&rng) % 97 == 0)
                w[c] *= 8.0f;
        }
        q.symmetric = r % 5 == 3;
        nb_quant_row(w, cols, &q, codes + r * cols, scales + r * ng, zeros + r * ng);
    }
    t->data = malloc(t->l.total_bytes);
    nb_qpack(&t->l, codes, scales, zeros, t->data);
    t->w = malloc(rows * cols * sizeof *t->w);
    for (size_t r = 0; r < rows; r++)
        nb_qrow_ref(&t->l, t->data, r, t->w + r * cols);
    free(w);
    free(scales);
    free(codes);
    free(zeros);
}

static void free_tensor(struct tensor *t)
{
    free(t->data);
    free(t->w);
}

/* Activations like a layer input: mostly small, a few large channels. */
static void make_x(float *x, size_t n, float outlier)
{
    for (size_t c = 0; c < n; c++) {
        x[c] = tu_randf(&rng) + tu_randf(&rng) + tu_randf(&rng);
        if (c % 61 == 7)
            x[c] *= outlier;
    }
}

static int same_bits(float a, float b)
{
    return !memcmp(&a, &b, sizeof a);
}

/* y[0, r0) and y[r1, n) must still hold the sentinel. */
static int untouched(const float *y, size_t r0, size_t r1, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((i < r0 || i >= r1) && !same_bits(y[i], SENTINEL))
            return 0;
    return 1;
}

static void fill(float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = SENTINEL;
}

struct stats {
    unsigned long gemv, gemm, f32, splits;
};
static struct stats ran[8];

/* Row ranges for a split: boundaries at multiples of 4, the last at rows. */
static size_t split_points(size_t rows, size_t *at)
{
    size_t n = 0;
    at[n++] = 0;
    for (size_t r = 4; r < rows; r += 4)
        if (tu_rand(&rng) % 3 == 0)
            at[n++] = r;
    at[n++] = rows;
    return n;
}

/* The int8 reference against a double computation from the dequantized
 * weights and activations: catches a reference that drifted from qpack.h. */
static void check_q8_ref(const struct tensor *t, const nb_qact *a, const float *y, size_t tok)
{
    size_t rows = t->l.rows, cols = t->l.cols;
    for (size_t r = 0; r < rows; r++) {
        double sum = 0, mag = 0;
        for (size_t c = 0; c < cols; c++) {
            double v = (double)t->w[r * cols + c] * nb_qact_code(a, tok, c) *
                       nb_qact_scale(a, tok, c / 32);
            sum += v;
            mag += fabs(v);
        }
        CHECK(fabs(y[r] - sum) <= 1e-5 * mag + 1e-30, "q8 ref row %zu: %g vs %g (%zux%zu b%d g%d)",
              r, y[r], sum, rows, cols, t->l.bits, t->l.group);
    }
}

static void check_f32_ref(const struct tensor *t, const float *x)
{
    size_t rows = t->l.rows, cols = t->l.cols;
    float *y = malloc(rows * sizeof *y), *yq = malloc(rows * sizeof *yq);
    nb_qgemv_f32_ref(&t->l, t->data, x, y, 0, rows);
    nb_qgemv_ref(&t->l, t->data, x, yq, 0, rows);
    for (size_t r = 0; r < rows; r++) {
        double mag = 0;
        for (size_t c = 0; c < cols; c++)
            mag += fabs((double)t->w[r * cols + c] * x[c]);
        CHECK(fabs((double)y[r] - yq[r]) <= 1e-5 * mag + 1e-30,
              "f32 ref row %zu: %g vs nb_qgemv_ref %g", r, y[r], yq[r]);
    }
    free(y);
    free(yq);
}

static void check_set(size_t si, const nb_qkernels *k, const struct tensor *t, const float *x,
                      size_t ntok)
{
    const nb_qlayout *l = &t->l;
    size_t rows = l->rows, ldy = rows + 3;
    nb_qact a, ap;
    nb_qact_init(&a, l->cols, MAX_TOK);
    nb_qact_init(&ap, l->cols, MAX_TOK);
    nb_qact_quantize(&ap, x, l->cols + 1, ntok, NB_ACT_PLAIN);
    float *want = malloc(ntok * ldy * sizeof *want), *y = malloc(ntok * ldy * sizeof *y);
    fill(want, ntok * ldy);
    nb_qgemm_q8_ref(l, t->data, &ap, want, ldy, 0, rows);
    if (si == 0)
        for (size_t tk = 0; tk < ntok; tk++)
            check_q8_ref(t, &ap, want + tk * ldy, tk);

    /* decode, whole range then split */
    nb_qact_quantize(&a, x, l->cols + 1, 1, k->gemv_form);
    fill(y, ldy);
    k->gemv(l, t->data, &a, y, 0, rows);
    for (size_t r = 0; r < rows; r++)
        CHECK(same_bits(y[r], want[r]), "%s gemv row %zu of %zux%zu b%d g%d: %.9g vs ref %.9g",
              k->name, r, rows, l->cols, l->bits, l->group, y[r], want[r]);
    CHECK(untouched(y, 0, rows, ldy), "%s gemv wrote past rows", k->name);
    size_t at[16], n = split_points(rows, at);
    for (size_t i = 0; i + 1 < n; i++) {
        fill(y, ldy);
        k->gemv(l, t->data, &a, y, at[i], at[i + 1]);
        CHECK(untouched(y, at[i], at[i + 1], ldy), "%s gemv [%zu,%zu) wrote outside", k->name,
              at[i], at[i + 1]);
        for (size_t r = at[i]; r < at[i + 1]; r++)
            CHECK(same_bits(y[r], want[r]), "%s gemv split [%zu,%zu) row %zu differs", k->name,
                  at[i], at[i + 1], r);
    }
    ran[si].gemv++;
    ran[si].splits += n - 1;

    /* prefill */
    nb_qact_quantize(&a, x, l->cols + 1, ntok, k->gemm_form);
    fill(y, ntok * ldy);
    size_t mid = rows > 4 ? 4 * (tu_rand(&rng) % (rows / 4) + 1) : rows;
    if (mid > rows)
        mid = rows;
    k->gemm(l, t->data, &a, y, ldy, 0, mid);
    k->gemm(l, t->data, &a, y, ldy, mid, rows);
    for (size_t tk = 0; tk < ntok; tk++) {
        CHECK(untouched(y + tk * ldy, 0, rows, ldy), "%s gemm wrote past rows", k->name);
        for (size_t r = 0; r < rows; r++)
            CHECK(same_bits(y[tk * ldy + r], want[tk * ldy + r]),
                  "%s gemm tok %zu/%zu row %zu of %zux%zu b%d g%d: %.9g vs ref %.9g", k->name,
                  tk, ntok, r, rows, l->cols, l->bits, l->group, y[tk * ldy + r],
                  want[tk * ldy + r]);
    }
    ran[si].gemm++;

    /* the empty last piece of a split, [rows, rows), writes nothing */
    fill(y, ntok * ldy);
    k->gemm(l, t->data, &a, y, ldy, rows, rows);
    for (size_t tk = 0; tk < ntok; tk++)
        CHECK(untouched(y + tk * ldy, 0, 0, ldy), "%s gemm [%zu,%zu) wrote", k->name, rows, rows);
    nb_qact_quantize(&a, x, l->cols + 1, 1, k->gemv_form);
    fill(y, ldy);
    k->gemv(l, t->data, &a, y, rows, rows);
    k->gemv_f32(l, t->data, x, y, rows, rows);
    CHECK(untouched(y, 0, 0, ldy), "%s gemv [%zu,%zu) wrote", k->name, rows, rows);

    /* exact path; x is followed by a NaN that must not be read */
    float *yf = malloc(ldy * sizeof *yf);
    fill(y, ldy);
    k->gemv_f32(l, t->data, x, y, 0, rows);
    nb_qgemv_f32_ref(l, t->data, x, yf, 0, rows);
    for (size_t r = 0; r < rows; r++)
        CHECK(same_bits(y[r], yf[r]), "%s gemv_f32 row %zu of %zux%zu b%d g%d: %.9g vs ref %.9g",
              k->name, r, rows, l->cols, l->bits, l->group, y[r], yf[r]);
    CHECK(untouched(y, 0, rows, ldy), "%s gemv_f32 wrote past rows", k->name);
    ran[si].f32++;
    free(yf);
    free(want);
    free(y);
    nb_qact_free(&a);
    nb_qact_free(&ap);
}

static void check_shapes(const nb_qkernels *const *sets, size_t nsets)
{
    static const size_t ks[] = {32, 64, 96, 172, 300, 4096};
    static const int groups[] = {0, 32, 64, 128};
    for (int bits = 4; bits >= 3; bits--)
        for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
            for (size_t gi = 0; gi < 4; gi++)
                for (size_t rows = 1; rows <= 13; rows++) {
                    size_t cols = ks[ki];
                    if (cols >= 4096 && rows % 4 != 1) /* keep the big shapes few */
                        continue;
                    struct tensor t;
                    make_tensor(&t, rows, cols, bits, groups[gi]);
                    /* tokens spaced cols + 1 apart, the gap a NaN nobody may read */
                    float *x = malloc((cols + 1) * MAX_TOK * sizeof *x);
                    for (size_t tk = 0; tk < MAX_TOK; tk++) {
                        make_x(x + tk * (cols + 1), cols, 10.0f);
                        x[tk * (cols + 1) + cols] = NAN;
                    }
                    check_f32_ref(&t, x);
                    size_t ntok = 1 + tu_rand(&rng) % MAX_TOK;
                    for (size_t si = 0; si < nsets; si++)
                        check_set(si, sets[si], &t, x, ntok);
                    free(x);
                    free_tensor(&t);
                }
}

/* The quantizer (whichever code path the host takes) against its
 * definition: scale = amax / 127, code = nearbyint(x * (127 / amax)),
 * nsum = -sum(codes), zeros past cols, in every form. */
static void check_quantizer(void)
{
    static const size_t widths[] = {32, 64, 100, 300, 4096};
    static const int forms[] = {NB_ACT_PLAIN, NB_ACT_WIDE, NB_ACT_PAIRS};
    for (size_t wi = 0; wi < 5; wi++) {
        size_t cols = widths[wi], ntok = 3;
        float *x = malloc(cols * ntok * sizeof *x);
        for (size_t tk = 0; tk < ntok; tk++)
            make_x(x + tk * cols, cols, tk == 1 ? 30.0f : 1.0f);
        for (size_t i = 0; i < 32 && i < cols; i++) /* an all-zero block */
            x[cols + i] = 0.0f;
        nb_qact a;
        nb_qact_init(&a, cols, ntok);
        for (size_t fi = 0; fi < 3; fi++) {
            nb_qact_quantize(&a, x, cols, ntok, forms[fi]);
            for (size_t tk = 0; tk < ntok; tk++)
                for (size_t b = 0; b < a.n_blocks; b++) {
                    const float *xb = x + tk * cols + 32 * b;
                    size_t n = cols - 32 * b < 32 ? cols - 32 * b : 32;
                    float amax = 0.0f;
                    for (size_t i = 0; i < n; i++)
                        amax = fmaxf(amax, fabsf(xb[i]));
                    float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
                    int32_t sum = 0, bad = 0;
                    for (size_t i = 0; i < 32; i++) {
                        int want = i < n ? (int)nearbyintf(xb[i] * inv) : 0;
                        int got = nb_qact_code(&a, tk, 32 * b + i);
                        bad += got != want;
                        sum += got;
                    }
                    CHECK(!bad, "form %d cols %zu tok %zu block %zu: %d codes differ", forms[fi],
                          cols, tk, b, bad);
                    CHECK(same_bits(nb_qact_scale(&a, tk, b), amax / 127.0f) &&
                              nb_qact_nsum(&a, tk, b) == -sum,
                          "form %d block %zu: scale or nsum", forms[fi], b);
                }
        }
        nb_qact_free(&a);
        free(x);
    }
}

/* Values no healthy model produces, which a damaged or crafted file can
 * (NaN or Inf weights, huge scales): codes stay in [-127, 127] without
 * undefined behaviour (UBSan builds check the conversions), NaN codes
 * are 0, a block under 1e-30 is all zero with scale 0, and an infinite
 * block keeps an infinite scale so that the output shows it. Full
 * blocks take the NEON quantizer on aarch64, the 20-column tail the C one. */
static void check_quantizer_hostile(void)
{
    enum { COLS = 180 };
    const float inf = INFINITY, nan_v = NAN, tiny = 1e-38f, huge = 3e38f;
    float x[COLS];
    for (size_t c = 0; c < COLS; c++) /* block b: one hostile value among ordinary ones */
        x[c] = (float)(c % 7) - 3.0f;
    x[0] = nan_v, x[1] = nan_v;        /* block 0: NaN twice (the sums once overflowed) */
    x[33] = inf, x[40] = -inf;         /* block 1: Inf */
    for (size_t c = 64; c < 96; c++)   /* block 2: all tiny */
        x[c] = c % 2 ? tiny : -tiny;
    x[100] = huge, x[101] = -huge;     /* block 3: huge */
    x[165] = nan_v, x[170] = inf;      /* block 5, the tail: NaN and Inf */
    static const int forms[] = {NB_ACT_PLAIN, NB_ACT_WIDE, NB_ACT_PAIRS};
    nb_qact a;
    nb_qact_init(&a, COLS, 1);
    for (size_t fi = 0; fi < 3; fi++) {
        nb_qact_quantize(&a, x, COLS, 1, forms[fi]);
        int bad = 0;
        for (size_t c = 0; c < a.cols_p; c++) {
            int q = nb_qact_code(&a, 0, c);
            bad += q < -127 || q > 127 || (c < COLS && x[c] != x[c] && q != 0);
        }
        CHECK(!bad, "form %d: %d hostile codes out of range or NaN not 0", forms[fi], bad);
        CHECK(nb_qact_code(&a, 0, 2) == (int)nearbyintf(x[2] * (127.0f / 3.0f)),
              "form %d: NaN changed the block's scale",
              forms[fi]);
        CHECK(isinf(nb_qact_scale(&a, 0, 1)) && isinf(nb_qact_scale(&a, 0, 5)),
              "form %d: an infinite block must keep an infinite scale", forms[fi]);
        CHECK(nb_qact_scale(&a, 0, 2) == 0.0f && nb_qact_nsum(&a, 0, 2) == 0,
              "form %d: a tiny block must be all zero", forms[fi]);
        CHECK(nb_qact_code(&a, 0, 100) == 127 && nb_qact_code(&a, 0, 101) == -127,
              "form %d: huge values", forms[fi]);
    }
    nb_qact_free(&a);
}

/* ||y_int8 - y_exact|| / ||y_exact|| on a realistic layer: 4-bit g128
 * zero-point weights, activations with a few outlier channels. */
static void report_error(void)
{
    size_t rows = 256, cols = 4096;
    rng = 0xacc; /* the same data whatever ran before */
    struct tensor t;
    make_tensor(&t, rows, cols, 4, 128);
    float *x = malloc(cols * sizeof *x), *y8 = malloc(rows * sizeof *y8),
          *yf = malloc(rows * sizeof *yf);
    const float outliers[] = {1.0f, 20.0f, 50.0f};
    nb_qact a;
    nb_qact_init(&a, cols, 1);
    for (size_t i = 0; i < 3; i++) {
        make_x(x, cols, outliers[i]);
        nb_qact_quantize(&a, x, cols, 1, NB_ACT_PLAIN);
        nb_qgemv_q8_ref(&t.l, t.data, &a, y8, 0, rows);
        nb_qgemv_ref(&t.l, t.data, x, yf, 0, rows);
        double e = 0, n = 0;
        for (size_t r = 0; r < rows; r++) {
            e += ((double)y8[r] - yf[r]) * ((double)y8[r] - yf[r]);
            n += (double)yf[r] * yf[r];
        }
        double rel = sqrt(e / n);
        printf("kernels: int8 vs exact GEMV, %zux%zu g128, outlier channels x%g: rel err %.4f%%\n",
               rows, cols, outliers[i], 100 * rel);
        CHECK(rel < 0.02, "int8 activations too far from exact: %g", rel);
    }
    nb_qact_free(&a);
    free(x);
    free(y8);
    free(yf);
    free_tensor(&t);
}

/* "auto" must pick sdot on a CPU that has it: read the CPU independently. */
static void check_selection(void)
{
    const nb_qkernels *k = nb_kernels_get("auto");
    CHECK(k != NULL, "no auto set");
    printf("kernels: auto = %s\n", k->name);
#if defined(__aarch64__)
    int dotprod = (getauxval(AT_HWCAP) & (1ul << 20)) != 0; /* HWCAP_ASIMDDP */
    int i8mm = (getauxval(AT_HWCAP2) & (1ul << 13)) != 0;   /* HWCAP2_I8MM */
    printf("kernels: cpu dotprod %d i8mm %d\n", dotprod, i8mm);
    if (dotprod)
        CHECK(!strcmp(k->name, "dotprod") || !strcmp(k->name, "i8mm"),
              "CPU has dotprod but auto chose %s", k->name);
    if (i8mm)
        CHECK(!strcmp(k->name, "i8mm"), "CPU has i8mm but auto chose %s", k->name);
    if (!dotprod)
        CHECK(nb_kernels_get("dotprod") == NULL, "dotprod offered on a CPU without it");
    CHECK(!strcmp(k->name, dotprod ? (i8mm ? "i8mm" : "dotprod") : "neon"), "auto is %s",
          k->name);
#elif defined(__x86_64__)
    __builtin_cpu_init();
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    printf("kernels: cpu avx2+fma %d\n", avx2);
    CHECK(!strcmp(k->name, avx2 ? "avx2" : "generic"), "auto is %s", k->name);
    if (!avx2)
        CHECK(nb_kernels_get("avx2") == NULL, "avx2 offered on a CPU without it");
#else
    CHECK(!strcmp(k->name, "generic"), "auto is %s off ARM and x86", k->name);
#endif
    CHECK(nb_kernels_select("no-such") == -1, "unknown name accepted");
    CHECK(nb_kernels_select("ref") == 0 && !strcmp(nb_kernels()->name, "ref"), "select ref");
    CHECK(nb_kernels_select("auto") == 0 && nb_kernels() == k, "select auto");
}

int main(void)
{
    check_selection();
    check_quantizer();
    check_quantizer_hostile();
    size_t n_all, nsets = 0;
    const nb_qkernels *const *all = nb_kernels_all(&n_all);
    const nb_qkernels *sets[8];
    for (size_t i = 0; i < n_all && nsets < 8; i++)
        if (nb_kernels_get(all[i]->name))
            sets[nsets++] = all[i];
#if defined(__aarch64__)
    for (size_t i = 0; i < sizeof ld1fb_sets / sizeof ld1fb_sets[0] && nsets < 8; i++)
        if ((ld1fb_sets[i].needs & nb_cpu_features()) == ld1fb_sets[i].needs)
            sets[nsets++] = &ld1fb_sets[i];
#endif
    printf("kernels: variants run here:");
    for (size_t i = 0; i < nsets; i++)
        printf(" %s", sets[i]->name);
    printf("\n");
    check_shapes(sets, nsets);
    for (size_t i = 0; i < nsets; i++)
        printf("kernels: %-8s gemv %lu shapes (%lu row ranges), gemm %lu, gemv_f32 %lu: all "
               "compared bit for bit\n",
               sets[i]->name, ran[i].gemv, ran[i].splits, ran[i].gemm, ran[i].f32);
    report_error();
    return tu_finish("kernels");
}
