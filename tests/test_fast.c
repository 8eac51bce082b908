/* The fast forward path (models/fast.c) against the reference
 * (models/ref.c) on tiny random LLaMA models: packed INT4 with groups,
 * plain f32, INT3, and an odd shape (head_dim 6, rows that are not
 * multiples of 4, a ragged group, tied embeddings).
 *
 * What must hold, and how close:
 * - every kernel set this CPU runs, and 1, 2 or 3 threads, give the same
 *   logits bit for bit (the kernels compute each row in a fixed order and
 *   a chunk of rows never depends on the split);
 * - prefill(n) gives bit for bit the last logits of n single forwards,
 *   and prefill_each every position's (the GEMM kernels compute each
 *   token as the GEMV does, qkern.h);
 * - several sequences batched (a server's slots: prompts of different
 *   lengths, then decode steps of all of them in one pass, a prompt
 *   beside decoding sequences) give each sequence bit for bit what it
 *   gets alone;
 * - against the reference (fp32 KV cache, fp32 activations), the exact
 *   path (W4A16) differs by the fp16 KV cache and summation order only:
 *   max |diff| <= TOL_EXACT * max(1, max |logit|) over a 48-token run
 *   (measured 0.7e-3 .. 1.4e-3; with the reference's K and V rounded to
 *   fp16 as well, 1e-6 .. 8e-5). int8 activations (W4A8) add their
 *   rounding, 0.5% RMS per GEMV here, through 15 quantized linears of a
 *   random model that amplifies differences: measured 3.0e-2 .. 3.8e-2
 *   max, 2.4e-2 RMS; TOL_INT8 leaves room for other compilers.
 * usage: test_fast */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../models/net.h"
#include "../neon/qkern.h"
#include "../neon/qpack.h"
#include "../neon/quant.h"
#include "../runtime/qtensor.h"
#include "../runtime/writer.h"
#include "testutil.h"

#define TOL_EXACT 2e-3f
#define TOL_INT8 6e-2f
#define N_POS 48

/* One random linear, plain f32 (bits 0) or quantized and packed. */
static int add_linear(nb_writer *w, const char *name, uint64_t rows, uint64_t cols, int bits,
                      int group, uint64_t *seed, nb_err *e)
{
    size_t n = (size_t)(rows * cols);
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = 0.3f * tu_randf(seed);
    int rc;
    if (!bits) {
        uint64_t shape[2] = {rows, cols};
        rc = nb_writer_add(w, name, NB_F32, 2, shape, v, n * sizeof *v, e);
        free(v);
        return rc;
    }
    nb_qspec q = {bits, group, 0};
    nb_qlayout l;
    size_t ng = nb_qgroups((size_t)cols, &q);
    uint8_t *codes = malloc(n), *zeros = malloc(rows * ng);
    float *scales = malloc(rows * ng * sizeof *scales);
    for (size_t r = 0; r < rows; r++)
        nb_quant_row(v + r * cols, (size_t)cols, &q, codes + r * cols, scales + r * ng,
                     zeros + r * ng);
    nb_qlayout_init(&l, rows, cols, bits, group);
    void *data = malloc(l.total_bytes);
    nb_qpack(&l, codes, scales, zeros, data);
    struct nb_tensor_entry t;
    rc = nb_qentry_init(&t, name, &l, e) || nb_writer_add_entry(w, &t, data, e);
    free(v);
    free(codes);
    free(zeros);
    free(scales);
    free(data);
    return rc;
}

static int add_vector(nb_writer *w, const char *name, uint64_t n, uint64_t *seed, nb_err *e)
{
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = 1.0f + 0.1f * tu_randf(seed);
    int rc = nb_writer_add(w, name, NB_F32, 1, &n, v, n * sizeof *v, e);
    free(v);
    return rc;
}

static int write_model(const char *path, const struct nb_meta *m, int bits, int group)
{
    uint64_t seed = 42 + (uint64_t)bits;
    nb_err e = {{0}};
    char zeros[8] = {0}, name[64];
    nb_writer *w = nb_writer_open(path, m, zeros, sizeof zeros, &e);
    if (!w)
        return fprintf(stderr, "%s\n", e.msg), -1;
    uint64_t d = m->dim, q = (uint64_t)m->n_heads * m->head_dim;
    uint64_t kv = (uint64_t)m->n_kv_heads * m->head_dim, f = m->ffn_dim;
    int rc = add_linear(w, NB_T_EMBED, m->vocab_size, d, 0, 0, &seed, &e) ||
             add_vector(w, NB_T_OUT_NORM, d, &seed, &e);
    if (!m->tied_embeddings)
        rc = rc || add_linear(w, NB_T_OUTPUT, m->vocab_size, d, bits, group, &seed, &e);
    struct { const char *fmt; uint64_t rows, cols; } lin[] = {
        {NB_T_Q, q, d}, {NB_T_K, kv, d},   {NB_T_V, kv, d},   {NB_T_O, d, q},
        {NB_T_GATE, f, d}, {NB_T_UP, f, d}, {NB_T_DOWN, d, f},
    };
    for (uint32_t l = 0; l < m->n_layers && !rc; l++) {
        snprintf(name, sizeof name, NB_T_ATTN_NORM, (int)l);
        rc = add_vector(w, name, d, &seed, &e);
        snprintf(name, sizeof name, NB_T_FFN_NORM, (int)l);
        rc = rc || add_vector(w, name, d, &seed, &e);
        for (size_t i = 0; i < sizeof lin / sizeof *lin && !rc; i++) {
            snprintf(name, sizeof name, lin[i].fmt, (int)l);
            rc = add_linear(w, name, lin[i].rows, lin[i].cols, bits, group, &seed, &e);
        }
    }
    if (rc || nb_writer_commit(w, &e)) {
        if (rc)
            nb_writer_abort(w);
        return fprintf(stderr, "write_model: %s\n", e.msg), -1;
    }
    return 0;
}

struct kind {
    const char *name;
    int bits, group;
    struct nb_meta meta;
};

static struct nb_meta shape(uint32_t dim, uint32_t heads, uint32_t kv_heads, uint32_t hd,
                            uint32_t ffn, uint32_t vocab, int tied, int halves)
{
    struct nb_meta m = tu_tiny_meta();
    m.dim = dim, m.n_heads = heads, m.n_kv_heads = kv_heads, m.head_dim = hd;
    m.ffn_dim = ffn, m.vocab_size = vocab, m.max_ctx = 160, m.n_layers = 2;
    m.tied_embeddings = (uint32_t)tied;
    m.rope_pairs = halves ? NB_ROPE_HALVES : NB_ROPE_INTERLEAVED;
    return m;
}

/* The logits of a run of n tokens, [n][vocab]. */
static float *run_forward(nb_net *L, const int32_t *ids, int n)
{
    size_t v = L->cfg.vocab_size;
    float *out = malloc((size_t)n * v * sizeof *out);
    for (int pos = 0; pos < n; pos++)
        memcpy(out + (size_t)pos * v, nb_net_forward(L, ids[pos], pos), v * sizeof *out);
    return out;
}

static float *run_model(const nb_model *m, const int32_t *ids, int n, const nb_run_opts *o)
{
    nb_net L;
    nb_err e = {{0}};
    int rc = o ? nb_net_init_fast(&L, m, 0, o, &e) : nb_net_init(&L, m, 0, &e);
    if (rc) {
        tu_failures++;
        fprintf(stderr, "init: %s\n", e.msg);
        return NULL;
    }
    float *out = run_forward(&L, ids, n);
    nb_net_free(&L);
    return out;
}

/* max |a - b| / max(1, max |b|) */
static float rel_diff(const float *a, const float *b, size_t n)
{
    float d = 0.0f, big = 1.0f;
    for (size_t i = 0; i < n; i++) {
        d = fmaxf(d, fabsf(a[i] - b[i]));
        big = fmaxf(big, fabsf(b[i]));
    }
    return isfinite(d) ? d / big : INFINITY;
}

static void check_threads_and_sets(const struct kind *k, const nb_model *m, const int32_t *ids,
                                   const float *want, int exact)
{
    size_t count, n = (size_t)N_POS * m->meta.vocab_size;
    const nb_qkernels *const *sets = nb_kernels_all(&count);
    for (size_t s = 0; s < count; s++) {
        if (!nb_kernels_get(sets[s]->name))
            continue; /* this CPU cannot run it */
        for (int threads = 1; threads <= 3; threads++) {
            nb_run_opts o = {.threads = threads, .kernels = sets[s]->name, .exact = exact,
                             .min_chunk = 1}; /* split the tiny model as much as it goes */
            float *got = run_model(m, ids, N_POS, &o);
            CHECK(got && !memcmp(got, want, n * sizeof *got),
                  "%s %s: kernels %s, %d threads: logits differ from auto, 1 thread", k->name,
                  exact ? "exact" : "int8", sets[s]->name, threads);
            free(got);
        }
    }
}

struct collect {
    float *out;
    size_t vocab;
    int calls;
};

static void collect(void *ctx, int i, const float *logits)
{
    struct collect *c = ctx;
    memcpy(c->out + (size_t)i * c->vocab, logits, c->vocab * sizeof *logits);
    c->calls++;
}

/* prefill across tiles (64 tokens) against single forwards. */
static void check_prefill(const struct kind *k, const nb_model *m, const int32_t *ids,
                          int exact)
{
    const int n = 150;
    size_t v = m->meta.vocab_size;
    nb_run_opts o = {.threads = 2, .exact = exact, .min_chunk = 1};
    nb_net L;
    nb_err e = {{0}};
    if (nb_net_init_fast(&L, m, 0, &o, &e)) {
        tu_failures++;
        fprintf(stderr, "init: %s\n", e.msg);
        return;
    }
    float *want = run_forward(&L, ids, n), *last = malloc(v * sizeof *last);
    memcpy(last, nb_net_prefill(&L, ids, n, 0), v * sizeof *last);
    CHECK(!memcmp(last, want + (size_t)(n - 1) * v, v * sizeof *last),
          "%s %s: prefill(%d) differs from %d forwards (max %g)", k->name,
          exact ? "exact" : "int8", n, n, rel_diff(last, want + (size_t)(n - 1) * v, v));
    /* split prefills continue the cache where the last one stopped */
    nb_net_prefill(&L, ids, 70, 0);
    memcpy(last, nb_net_prefill(&L, ids + 70, n - 70, 70), v * sizeof *last);
    CHECK(!memcmp(last, want + (size_t)(n - 1) * v, v * sizeof *last),
          "%s: prefill(70) + prefill(80) differs", k->name);
    struct collect c = {malloc((size_t)n * v * sizeof(float)), v, 0};
    CHECK(nb_net_prefill_each(&L, ids, n, 0, collect, &c, &e) == 0, "%s", e.msg);
    CHECK(c.calls == n && !memcmp(c.out, want, (size_t)n * v * sizeof(float)),
          "%s %s: prefill_each differs from forwards", k->name, exact ? "exact" : "int8");
    free(c.out);
    free(want);
    free(last);
    nb_net_free(&L);
}

/* Four sequences of one model: prompts of 5, 9, 1 and 13 tokens, each in
 * its own sequence, then 12 batched steps in which every sequence gets
 * its next token (and sequence 3 a second prompt in the middle, so that
 * one pass mixes a prompt with decode steps). Each sequence's logits
 * must be those of its tokens run alone in a one-sequence model. */
static void check_batch(const struct kind *k, const nb_model *m, const int32_t *ids, int exact)
{
    enum { SEQS = 4, STEPS = 12 };
    const int start[SEQS] = {5, 9, 1, 13};
    size_t v = m->meta.vocab_size;
    nb_run_opts o = {.threads = 2, .exact = exact, .min_chunk = 1, .n_seq = SEQS};
    nb_net L;
    nb_err e = {{0}};
    if (nb_net_init_fast(&L, m, 0, &o, &e)) {
        CHECK(0, "init with %d sequences: %s", SEQS, e.msg);
        return;
    }
    float *want[SEQS], *out = malloc((size_t)(SEQS + 8) * v * sizeof *out);
    int32_t seq_ids[SEQS][N_POS];
    for (int s = 0; s < SEQS; s++) { /* each sequence its own tokens */
        for (int i = 0; i < N_POS; i++)
            seq_ids[s][i] = ids[(i * (s + 1) + s) % N_POS];
        want[s] = run_model(m, seq_ids[s], start[s] + STEPS + 8, &(nb_run_opts){.threads = 1,
                                                                     .exact = exact});
        nb_net_prefill_seq(&L, s, seq_ids[s], start[s], 0);
    }
    int pos[SEQS], mismatch = 0;
    memcpy(pos, start, sizeof pos);
    for (int step = 0; step < STEPS && want[0] && want[1] && want[2] && want[3]; step++) {
        int32_t tok[SEQS + 8];
        int seq[SEQS + 8], at[SEQS + 8], n = 0;
        uint8_t wanted[SEQS + 8];
        for (int s = 0; s < SEQS; s++) {
            int len = s == 3 && step == 4 ? 8 : 1; /* a prompt among decode steps */
            for (int i = 0; i < len; i++, n++) {
                tok[n] = seq_ids[s][pos[s] + i], seq[n] = s, at[n] = pos[s] + i;
                wanted[n] = i == len - 1;
            }
            pos[s] += len;
        }
        nb_batch b = {n, tok, seq, at, wanted};
        CHECK(!nb_net_batch(&L, &b, out, &e), "batch: %s", e.msg);
        for (int s = 0; s < SEQS; s++)
            mismatch += memcmp(out + (size_t)s * v, want[s] + (size_t)(pos[s] - 1) * v,
                               v * sizeof *out) != 0;
    }
    CHECK(!mismatch, "%s %s: %d batched logits differ from the sequences run alone", k->name,
          exact ? "exact" : "int8", mismatch);
    nb_batch bad = {1, (int32_t[]){0}, (int[]){SEQS}, (int[]){0}, NULL};
    CHECK(nb_net_batch(&L, &bad, out, &e) == -1 && strstr(e.msg, "sequence 4"),
          "sequence out of range: '%s'", e.msg);
    for (int s = 0; s < SEQS; s++)
        free(want[s]);
    free(out);
    nb_net_free(&L);
}

static void check_kind(const struct kind *k, const int32_t *ids)
{
    const char *path = tu_tmp("m.nib");
    nb_model m;
    nb_err e = {{0}};
    if (write_model(path, &k->meta, k->bits, k->group) || nb_model_open(&m, path, &e)) {
        tu_failures++;
        fprintf(stderr, "%s: %s\n", k->name, e.msg);
        return;
    }
    size_t n = (size_t)N_POS * m.meta.vocab_size;
    float *ref = run_model(&m, ids, N_POS, NULL);
    nb_run_opts exact = {.threads = 1, .exact = 1}, int8 = {.threads = 1};
    float *fe = run_model(&m, ids, N_POS, &exact), *fi = run_model(&m, ids, N_POS, &int8);
    if (ref && fe && fi) {
        float de = rel_diff(fe, ref, n), di = rel_diff(fi, ref, n);
        printf("%-22s fast vs reference over %d positions: exact %.2e, int8 %.2e "
               "(relative to max |logit|)\n",
               k->name, N_POS, de, di);
        CHECK(de <= TOL_EXACT, "%s: exact path differs by %g (tolerance %g)", k->name, de,
              TOL_EXACT);
        CHECK(di <= TOL_INT8, "%s: int8 path differs by %g (tolerance %g)", k->name, di,
              TOL_INT8);
        check_threads_and_sets(k, &m, ids, fe, 1);
        check_threads_and_sets(k, &m, ids, fi, 0);
    }
    check_prefill(k, &m, ids, 0);
    check_prefill(k, &m, ids, 1);
    check_batch(k, &m, ids, 0);
    check_batch(k, &m, ids, 1);
    free(ref);
    free(fe);
    free(fi);
    nb_model_close(&m);
}

static void check_errors(void)
{
    const char *path = tu_tmp("e.nib");
    struct nb_meta meta = shape(64, 4, 2, 16, 96, 128, 1, 1);
    nb_model m;
    nb_net L;
    nb_err e = {{0}};
    if (write_model(path, &meta, 4, 32) || nb_model_open(&m, path, &e))
        return tu_failures++, (void)0;
    nb_run_opts bogus = {.kernels = "bogus"}, garbage = {.cpus = "0-x"};
    CHECK(nb_net_init_fast(&L, &m, 0, &bogus, &e) == -1 && strstr(e.msg, "--kernels"),
          "bogus kernels: %s", e.msg);
    CHECK(nb_net_init_fast(&L, &m, 0, &garbage, &e) == -1 && strstr(e.msg, "--cpus"),
          "garbage cpus: %s", e.msg);
    CHECK(nb_net_init_fast(&L, &m, 1000, NULL, &e) == -1 && strstr(e.msg, "context"),
          "context: %s", e.msg);
    nb_run_opts pinned = {.cpus = "0"};
    int pinned_rc = nb_net_init_fast(&L, &m, 0, &pinned, &e);
    CHECK(pinned_rc == 0, "--cpus 0: %s", e.msg);
    if (pinned_rc == 0) { /* e.msg still holds the previous check's message */
        CHECK(nb_net_threads(&L) == 1, "--cpus 0 gives %d threads", nb_net_threads(&L));
        nb_net_free(&L);
    }
    nb_model_close(&m);
}

int main(void)
{
    int32_t ids[160];
    uint64_t seed = 7;
    for (int i = 0; i < 160; i++)
        ids[i] = (int32_t)(tu_rand(&seed) % 100);
    const struct kind kinds[] = {
        {"q4 g32", 4, 32, shape(64, 4, 2, 16, 96, 128, 0, 1)},
        {"f32", 0, 0, shape(64, 4, 2, 16, 96, 128, 0, 1)},
        {"q3 g32", 3, 32, shape(64, 4, 2, 16, 96, 128, 0, 0)},
        {"q4 g32, odd shape", 4, 32, shape(48, 3, 1, 6, 72, 100, 1, 0)},
        {"q3 per row, odd shape", 3, 0, shape(48, 3, 1, 6, 72, 100, 0, 1)},
    };
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
        check_kind(&kinds[i], ids);
    check_errors();
    return tu_finish("test_fast");
}
