/* The AWQ pieces (tools/awq.c, models/awq_layer.c):
 * - the statistics and scale formulas of awq-spec.md §4 on hand-computed
 *   cases (x-only, duo, the 1e-4 floor, the normalization, inf/NaN -> 1);
 * - the batched product against a double-precision reference;
 * - the clip search picks the best shrink: a hand-made outlier that no
 *   input sees is clipped to the limit, one that carries the output is
 *   kept, and random groups (ragged last group, per-row) agree with a
 *   brute-force search written here;
 * - the output layer's loss through the Gram matrix of its input equals
 *   the direct sum over the tokens;
 * - on random models of each family: tests/test_awq_family.c;
 * - on stories260K: folding the searched scales into the norms and linears
 *   (and the output layer) leaves the full-precision logits unchanged, and
 *   a quantization gives the same file bytes for 1 and 3 threads.
 * usage: test_awq STORIES260K.bin TOK512.model CALIB.txt */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../models/net.h"
#include "../neon/gemv.h"
#include "../tokenizer/tokenizer.h"
#include "../tools/awq/awq.h"
#include "../tools/import/convert.h"
#include "test_awq.h"
#include "testutil.h"

static int near(double a, double b, double rel)
{
    return fabs(a - b) <= rel * fmax(fabs(b), 1e-30);
}

/* Largest |a - b| (a plain compare: GCC 12's aarch64 vectorizer crashes
 * on an fmax reduction here). */
double max_gap(const float *a, const float *b, size_t n)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > worst)
            worst = d;
    }
    return worst;
}

static void test_scales(void)
{
    float s[3];
    nb_awq_scales((const float[]){1, 4, 16}, NULL, 3, 0.5f, s);
    CHECK(near(s[0], 0.5, 1e-6) && near(s[1], 1, 1e-6) && near(s[2], 2, 1e-6),
          "x-only: %g %g %g, want 0.5 1 2", s[0], s[1], s[2]);
    nb_awq_scales((const float[]){1, 4, 16}, NULL, 3, 0.0f, s);
    CHECK(s[0] == 1 && s[1] == 1 && s[2] == 1, "alpha 0 is s = 1: %g %g %g", s[0], s[1], s[2]);
    nb_awq_scales((const float[]){1, 4}, (const float[]){0.25f, 1}, 2, 0.5f, s);
    double v0 = 1 / (0.5 + 1e-4), v1 = 2 / (1 + 1e-4), n = sqrt(v0 * v1);
    CHECK(near(s[0], v0 / n, 1e-5) && near(s[1], v1 / n, 1e-5), "duo: %g %g, want %g %g", s[0],
          s[1], v0 / n, v1 / n);
    nb_awq_scales((const float[]){0, 1}, NULL, 2, 0.5f, s);
    CHECK(near(s[0], 0.01, 1e-5) && near(s[1], 100, 1e-5), "floor 1e-4: %g %g", s[0], s[1]);
    nb_awq_scales((const float[]){NAN, 1}, NULL, 2, 0.5f, s);
    CHECK(s[0] == 1 && s[1] == 1, "NaN: %g %g, want 1 1", s[0], s[1]);
    nb_awq_scales((const float[]){INFINITY, 1}, NULL, 2, 0.5f, s);
    CHECK(s[0] == 1, "inf: %g, want 1", s[0]);
}

static void test_statistics(void)
{
    float m[5];
    nb_awq_act_mean((const float[]){1, -2, 3, 4}, 2, 2, m);
    CHECK(m[0] == 2 && m[1] == 3, "activation mean %g %g", m[0], m[1]);
    const float a[] = {1, -2, 3, 0.5f, 7, 0, 4, -1, 1, 0};
    const float *w[2] = {a, a + 5};
    size_t rows[2] = {1, 1};
    nb_qspec q = {.bits = 4, .group = 2};
    nb_awq_weight_mean(w, rows, 2, 5, &q, m);
    /* groups of 2 along each row, the last one ragged (1 column) */
    double want[5] = {0.25, 1, 1, (1.0 / 6 + 1) / 2, 0.5};
    for (int c = 0; c < 5; c++)
        CHECK(fabs(m[c] - want[c]) < 1e-5, "weight mean [%d] %g, want %g", c, m[c], want[c]);
    q.group = 0; /* one group per row */
    nb_awq_weight_mean(w, rows, 2, 5, &q, m);
    CHECK(fabs(m[0] - (1.0 / 7 + 0) / 2) < 1e-5, "per-row weight mean %g", m[0]);
}

static void test_matmul(void)
{
    enum { N = 7, ROWS = 37, K = 300, LDX = 301, LDW = 303, LDY = 40 };
    uint64_t seed = 1;
    float *x = malloc(N * LDX * sizeof *x), *w = malloc(ROWS * LDW * sizeof *w);
    float *y = malloc(N * LDY * sizeof *y);
    for (int i = 0; i < N * LDX; i++)
        x[i] = tu_randf(&seed);
    for (int i = 0; i < ROWS * LDW; i++)
        w[i] = tu_randf(&seed);
    nb_awq_matmul(y, LDY, x, LDX, N, w, LDW, ROWS, K);
    double worst = 0;
    for (int t = 0; t < N; t++)
        for (int r = 0; r < ROWS; r++) {
            double ref = 0;
            for (int c = 0; c < K; c++)
                ref += (double)x[t * LDX + c] * w[r * LDW + c];
            if (fabs(y[t * LDY + r] - ref) > worst)
                worst = fabs(y[t * LDY + r] - ref);
        }
    CHECK(worst < 1e-4, "matmul differs from the double reference by %g", worst);
    nb_awq_matmul(y, LDY, x, LDX, N, w, LDW, ROWS, 0);
    CHECK(y[0] == 0 && y[(N - 1) * LDY + ROWS - 1] == 0, "an empty sum is zero");
    free(x);
    free(w);
    free(y);
}

/* The clip search written out plainly, errors in double: the shrink index
 * with the lowest error (first wins) for columns [c0, c0+len) of row w. */
static int brute_clip(const float *w, const float *x, size_t n, size_t cols, size_t c0,
                      size_t len, const nb_qspec *q)
{
    nb_qspec one = *q;
    one.group = 0;
    float m0 = 0, wc[128];
    for (size_t c = 0; c < len; c++)
        m0 = fmaxf(m0, fabsf(w[c0 + c]));
    double best = INFINITY;
    int best_i = 0;
    for (int i = 0; i < 10; i++) {
        float m = m0 * (float)(1.0 - i / 20.0);
        for (size_t c = 0; c < len; c++)
            wc[c] = fminf(fmaxf(w[c0 + c], -m), m);
        nb_fake_quant_row(wc, len, &one);
        double err = 0;
        for (size_t t = 0; t < n; t++) {
            double d = 0;
            for (size_t c = 0; c < len; c++)
                d += (double)x[t * cols + c0 + c] * ((double)wc[c] - w[c0 + c]);
            err += d * d;
        }
        if (err / (double)n < best) {
            best = err / (double)n;
            best_i = i;
        }
    }
    return best_i;
}

/* One row of 32 with an outlier in column 0; x is random except column 0,
 * which is zero (the outlier does not matter) or the only live input. */
static float outlier_case(int outlier_live)
{
    enum { C = 32, T = 64 };
    uint64_t seed = 7;
    float w[C], x[T * C], ratio;
    for (int c = 0; c < C; c++)
        w[c] = 0.1f * tu_randf(&seed);
    w[0] = 1.0f;
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++)
            x[t * C + c] = (c == 0) == outlier_live ? tu_randf(&seed) : 0.0f;
    nb_qspec q = {.bits = 3, .group = 32};
    nb_awq_clip(w, 1, C, x, T, &q, NULL, &ratio);
    return ratio;
}

static void test_clip(void)
{
    float r = outlier_case(0);
    CHECK(fabsf(r - 0.55f) < 1e-6f, "an outlier no input sees is clipped to 0.55, got %g", r);
    r = outlier_case(1);
    CHECK(r == 1.0f, "an outlier that carries the output is kept, got %g", r);
    enum { ROWS = 20, C = 72, T = 96 };
    uint64_t seed = 3;
    static float w[ROWS * C], orig[ROWS * C], x[T * C], ratio[ROWS * 3];
    for (int i = 0; i < ROWS * C; i++)
        orig[i] = tu_randf(&seed) * (i % 13 == 0 ? 3.0f : 0.3f);
    for (int i = 0; i < T * C; i++)
        x[i] = tu_randf(&seed) * (i % C < 8 ? 4.0f : 1.0f);
    int groups[2] = {32, 0}, bad = 0;
    for (int k = 0; k < 2; k++) {
        nb_qspec q = {.bits = 3, .group = groups[k]};
        size_t step = groups[k] ? (size_t)groups[k] : C, ng = (C + step - 1) / step;
        nb_pool *pool = nb_pool_create(3);
        memcpy(w, orig, sizeof w);
        nb_awq_clip(w, ROWS, C, x, T, &q, pool, ratio);
        nb_pool_free(pool);
        for (int row = 0; row < ROWS; row++)
            for (size_t g = 0; g < ng; g++) {
                size_t c0 = g * step, len = C - c0 < step ? C - c0 : step;
                int i = brute_clip(orig + row * C, x, T, C, c0, len, &q);
                bad += fabsf(ratio[row * ng + g] - (float)(1.0 - i / 20.0)) > 1e-6f;
            }
    }
    CHECK(!bad, "%d (row, group) clip choices differ from the brute-force search", bad);
}

/* The output group's loss, through the Gram matrix of the input in steps
 * of 256 tokens (300 tokens: a ragged second step), against the direct
 * mean over tokens and rows of (x . (Q(w s) / s - w))^2, in double. */
static void test_output_loss(void)
{
    enum { ROWS = 37, C = 72, T = 300 };
    uint64_t seed = 5;
    static float w[ROWS * C], x[T * C], d[ROWS * C], s[C];
    for (int i = 0; i < ROWS * C; i++)
        w[i] = tu_randf(&seed) * (i % 11 == 0 ? 2.0f : 0.3f);
    for (int i = 0; i < T * C; i++)
        x[i] = tu_randf(&seed) * (i % C < 8 ? 4.0f : 1.0f);
    for (int c = 0; c < C; c++)
        s[c] = expf(tu_randf(&seed));
    nb_qspec q = {.bits = 4, .group = 32};
    for (int r = 0; r < ROWS; r++) {
        float *o = d + r * C;
        for (int c = 0; c < C; c++)
            o[c] = w[r * C + c] * s[c];
        nb_fake_quant_row(o, C, &q);
        for (int c = 0; c < C; c++)
            o[c] = o[c] / s[c] - w[r * C + c];
    }
    double want = 0, got = -1;
    for (int t = 0; t < T; t++)
        for (int r = 0; r < ROWS; r++) {
            double dot = 0;
            for (int c = 0; c < C; c++)
                dot += (double)x[t * C + c] * d[r * C + c];
            want += dot * dot;
        }
    want /= (double)T * ROWS;
    nb_pool *pool = nb_pool_create(3);
    int rc = nb_awq_output_loss(w, ROWS, C, x, T, s, &q, pool, &got);
    nb_pool_free(pool);
    printf("output loss through the Gram matrix %.9g, directly %.9g\n", got, want);
    CHECK(!rc && near(got, want, 1e-5), "output loss %g, want %g", got, want);
}

/* ---- on real weights ---------------------------------------------------- */

static int32_t *calib_ids(const nb_model *m, const char *path, size_t *n)
{
    size_t size;
    nb_err e = {{0}};
    char *text = tu_read(path, &size);
    nb_tokenizer *tok = nb_tok_load_bytes(m->vocab, m->vocab_size, &e);
    int32_t *ids = NULL;
    if (!text || !tok || nb_tok_encode(tok, text, size, 1, &ids, n, &e))
        fprintf(stderr, "calibration text: %s\n", e.msg);
    free(text);
    nb_tok_free(tok);
    return ids;
}

/* Calibration in blocks of 64 tokens (the command line uses 512): the
 * search is the same, and the test stays quick under qemu. */
enum { BLOCK = 64 };

int quantize_blocks(const nb_model *m, const int32_t *ids, size_t n_tokens, size_t block,
                    const char *out, const nb_awq_opts *o, int threads)
{
    nb_err e = {{0}};
    nb_pool *pool = nb_pool_create(threads);
    int rc = nb_awq_quantize(m, ids, n_tokens, block, out, o, pool, &e);
    nb_pool_free(pool);
    if (rc)
        fprintf(stderr, "quantize: %s\n", e.msg);
    return rc;
}

static int quantize(const nb_model *m, const int32_t *ids, size_t n_tokens, const char *out,
                    const nb_awq_opts *o, int threads)
{
    return quantize_blocks(m, ids, n_tokens, BLOCK, out, o, threads);
}

/* Largest |x|, a plain compare as in max_gap. */
double max_abs(const float *x, size_t n)
{
    double top = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(x[i]) > top)
            top = fabs(x[i]);
    return top;
}

/* Largest logit difference over the first n positions of ids; *top (may
 * be NULL) gets the largest |logit| of a, to make it relative. */
double logit_gap_top(const char *a_path, const char *b_path, const int32_t *ids, int n,
                     double *top)
{
    nb_model ma, mb;
    nb_net a, b;
    nb_err e = {{0}};
    if (top)
        *top = 0;
    if (nb_model_open(&ma, a_path, &e) || nb_net_init(&a, &ma, n, &e) ||
        nb_model_open(&mb, b_path, &e) || nb_net_init(&b, &mb, n, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return INFINITY;
    }
    double worst = 0, big = 0;
    for (int pos = 0; pos < n; pos++) {
        const float *la = nb_net_forward(&a, ids[pos], pos);
        big = fmax(big, max_abs(la, ma.meta.vocab_size));
        worst = fmax(worst, max_gap(la, nb_net_forward(&b, ids[pos], pos), ma.meta.vocab_size));
    }
    if (top)
        *top = big;
    nb_net_free(&a);
    nb_net_free(&b);
    nb_model_close(&ma);
    nb_model_close(&mb);
    return worst;
}

static double logit_gap(const char *a_path, const char *b_path, const int32_t *ids, int n)
{
    return logit_gap_top(a_path, b_path, ids, n, NULL);
}

/* The layer-by-layer batched forward of T tokens of ids in blocks of B,
 * finished with the final norm and the output, against the reference
 * forward run token by token from position 0 in each block: the largest
 * logit difference (INFINITY on failure), *top the largest |logit|. */
double forward_gap(const nb_model *m, const int32_t *ids, size_t B, size_t T, double *top)
{
    const struct nb_meta *c = &m->meta;
    nb_layer_awq a = {0};
    nb_net ref = {0};
    nb_tensor norm, out;
    nb_err e = {{0}};
    float *x = malloc(T * c->dim * sizeof *x), *h = malloc(c->dim * sizeof *h);
    float *logits = malloc(c->vocab_size * sizeof *logits);
    double worst = INFINITY;
    *top = 0;
    if (!x || !h || !logits || nb_layer_awq_init(&a, m, T, B, &e) ||
        nb_net_init(&ref, m, (int)B, &e) || nb_layer_awq_embed(m, ids, T, x, &e))
        goto done;
    for (uint32_t l = 0; l < c->n_layers; l++)
        if (nb_layer_awq_load(&a, m, (int)l, &e) || nb_layer_awq_forward(&a, x, NULL, &e))
            goto done;
    nb_model_find(m, NB_T_OUT_NORM, &norm);
    nb_model_find(m, c->tied_embeddings ? NB_T_EMBED : NB_T_OUTPUT, &out);
    worst = 0;
    for (size_t t = 0; t < T; t++) {
        const float *want = nb_net_forward(&ref, ids[t], (int)(t % B));
        nb_rmsnorm_ref(h, x + t * c->dim, norm.data, NB_W_F32, c->dim, c->norm_eps);
        nb_gemv_ref(logits, out.data, (int)out.entry->dtype, h, 0, c->vocab_size, c->dim);
        worst = fmax(worst, max_gap(logits, want, c->vocab_size));
        *top = fmax(*top, max_abs(want, c->vocab_size));
    }
done:
    if (worst == INFINITY)
        fprintf(stderr, "forward: %s\n", e.msg);
    nb_layer_awq_free(&a);
    nb_net_free(&ref);
    free(x);
    free(h);
    free(logits);
    return worst;
}

static void test_forward(const nb_model *m, const int32_t *ids)
{
    double top, worst = forward_gap(m, ids, BLOCK, 2 * BLOCK, &top);
    printf("batched calibration forward: largest logit difference %.3g\n", worst);
    CHECK(worst < 1e-4, "the batched forward differs from the reference by %g", worst);
}

static float first_norm_weight(const char *path)
{
    nb_model m;
    nb_tensor t;
    nb_err e = {{0}};
    float v = NAN;
    if (!nb_model_open(&m, path, &e) && nb_model_find(&m, "blk.0.attn_norm", &t))
        v = ((const float *)t.data)[0];
    nb_model_close(&m);
    return v;
}

static void test_fold(const nb_model *m, const char *path, const int32_t *ids)
{
    char out[512];
    snprintf(out, sizeof out, "%s", tu_tmp("folded.nib"));
    nb_awq_opts o = {.q = {.bits = 3, .group = 32}, .scales = 1, .duo = 1,
                     .output = NB_AWQ_FOLD_ONLY, .out_q = {.bits = 4, .group = 32},
                     .out_scales = 1, .quiet = 1};
    if (quantize(m, ids, 2 * BLOCK, out, &o, 2))
        return tu_failures++, (void)0;
    double gap = logit_gap(path, out, ids, 128);
    printf("folded scales: largest logit difference %.3g over 128 positions\n", gap);
    CHECK(gap < 2e-4, "folding changed the logits by %g", gap); /* rounding only */
    float before = first_norm_weight(path), after = first_norm_weight(out);
    CHECK(before != after, "the scales were all 1 (blk.0.attn_norm unchanged: %g)", before);
}

static void test_threads(const nb_model *m, const int32_t *ids)
{
    char a[512], b[512];
    snprintf(a, sizeof a, "%s", tu_tmp("t1.nib"));
    snprintf(b, sizeof b, "%s", tu_tmp("t3.nib"));
    nb_awq_opts o = {.q = {.bits = 4, .group = 32}, .scales = 1, .duo = 1, .clip = 1,
                     .out_q = {.bits = 4, .group = 32}, .out_scales = 1, .out_clip = 1,
                     .quiet = 1};
    if (quantize(m, ids, 2 * BLOCK, a, &o, 1) || quantize(m, ids, 2 * BLOCK, b, &o, 3))
        return tu_failures++, (void)0;
    size_t na, nb;
    void *fa = tu_read(a, &na), *fb = tu_read(b, &nb);
    CHECK(fa && fb && na == nb && !memcmp(fa, fb, na), "1 and 3 threads wrote different files");
    free(fa);
    free(fb);
}

/* The scale losses on a subset of blocks: counts, and a subset that
 * covers every block computes what the whole set does. */
static void test_search_tokens(const nb_model *m, const int32_t *ids)
{
    CHECK(nb_awq_search_blocks(32768, 512, 16384) == 32, "16384 of 32768 tokens: not 32 blocks");
    CHECK(nb_awq_search_blocks(32768, 512, 0) == 64, "0 is not every block");
    CHECK(nb_awq_search_blocks(32768, 512, 100) == 1, "a part of a block is not one block");
    CHECK(nb_awq_search_blocks(1024, 512, 1 << 20) == 2, "more than the set is not the set");
    char a[512], b[512];
    snprintf(a, sizeof a, "%s", tu_tmp("all.nib"));
    snprintf(b, sizeof b, "%s", tu_tmp("sub.nib"));
    nb_awq_opts o = {.q = {.bits = 4, .group = 32}, .scales = 1, .duo = 1, .quiet = 1};
    if (quantize(m, ids, 2 * BLOCK, a, &o, 2))
        return tu_failures++, (void)0;
    o.search_tokens = 2 * BLOCK;
    if (quantize(m, ids, 2 * BLOCK, b, &o, 2))
        return tu_failures++, (void)0;
    size_t na, nb;
    void *fa = tu_read(a, &na), *fb = tu_read(b, &nb);
    CHECK(fa && fb && na == nb && !memcmp(fa, fb, na), "search_tokens = all blocks differs from 0");
    free(fa);
    free(fb);
}

static void test_real(const char *ckpt, const char *tokenizer, const char *calib)
{
    char path[512];
    snprintf(path, sizeof path, "%s", tu_tmp("s260k.nib"));
    nb_convert_opts co = {.out_dtype = -1, .tokenizer_path = tokenizer, .quiet = 1};
    nb_model m;
    nb_err e = {{0}};
    size_t n = 0;
    if (nb_import_llama2c(ckpt, path, &co, &e) || nb_model_open(&m, path, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        tu_failures++;
        return;
    }
    int32_t *ids = calib_ids(&m, calib, &n);
    CHECK(ids && n >= 4 * BLOCK, "calibration text too short: %zu tokens", n);
    if (ids && n >= 4 * BLOCK) {
        test_forward(&m, ids);
        test_fold(&m, path, ids);
        test_threads(&m, ids);
        test_search_tokens(&m, ids);
    }
    free(ids);
    nb_model_close(&m);
}

int main(int argc, char **argv)
{
    test_scales();
    test_statistics();
    test_matmul();
    test_clip();
    test_output_loss();
    test_families();
    if (argc == 4)
        test_real(argv[1], argv[2], argv[3]);
    else
        CHECK(0, "usage: test_awq STORIES260K.bin TOK512.model CALIB.txt");
    return tu_finish("test_awq");
}
