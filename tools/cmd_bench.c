/* nibble bench: prefill and decode speed, measured as llama-bench does.
 * ppN prefills N tokens into an empty context; tgN decodes N tokens one
 * at a time from an empty context; with --depth D both start at position
 * D instead (named "ppN @ dD"). Each test runs once to warm up, then
 * -r times; the table shows the mean and standard deviation of tokens per
 * second, and the effective bandwidth: weight bytes read per token times
 * tokens per second. The model is a file, or a random one of a known
 * shape built in memory (tools/synth.c), so a 7B needs no download. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli.h"
#include "ppl.h"
#include "progress.h"
#include "synth.h"

static const char help[] =
    "usage: nibble bench (-m MODEL.nib | --shape SHAPE) [options]\n"
    "\n"
    "Measures prefill (ppN: N prompt tokens) and decode (tgN: N tokens one at a\n"
    "time) speed from an empty context (or from --depth), like llama-bench: tokens\n"
    "per second as mean +- standard deviation over the repetitions, after one\n"
    "warm-up.\n"
    "  -m, --model FILE     a .nib model\n"
    "  --shape SHAPE        instead, a random model built in memory: tinyllama-1.1b,\n"
    "                       llama2-7b, llama2-13b, mistral-7b, llama3.2-1b, llama3.2-3b,\n"
    "                       qwen2.5-0.5b, qwen2.5-1.5b, qwen2.5-3b, qwen3-0.6b, qwen3-1.7b,\n"
    "                       smollm2-135m, smollm2-1.7b, or DIM,LAYERS,HEADS,KV_HEADS,FFN,VOCAB\n"
    "  --layers N           run only the first N layers (quick runs of big shapes)\n"
    "  --bits B             random model: 4 or 3 (default 4)\n"
    "  --group G            random model: 32, 64, 128, or 0 for one group per row\n"
    "                       (default 128)\n"
    "  --output-f16         random model: the output layer in f16 (tied to the\n"
    "                       embedding where the model ties them); default: INT4 in\n"
    "                       groups of 32, as nibble quantize writes it\n"
    "  -p, --n-prompt N     prompt tokens of the prefill test, 0 = skip it (default 512)\n"
    "  -n, --n-gen N        tokens of the decode test, 0 = skip it (default 128)\n"
    "  -r, --repetitions N  measured runs of each test (default 5)\n"
    "  -d, --depth N        both tests start at position N of the context, as after\n"
    "                       an N-token prompt (default 0); the cache rows before are\n"
    "                       zeros, not a prefilled text: attending to them costs the\n"
    "                       same, and a long context is measured without prefilling it\n"
    "  -c, --ctx-size N     context (default: DEPTH + N-PROMPT + N-GEN)\n"
    "  -o, --output FORMAT  md (default), a markdown table, or json\n"
    "\n"
    "Quality of the int8 activations (-m only): after the speed tests, the\n"
    "perplexity on a text (as nibble ppl) of the fast path with int8 activations\n"
    "and with fp32 ones (--exact), and their relative difference, flagged when\n"
    "it is over 0.5%. Both use the -t, --cpus and --kernels given; --exact and\n"
    "--reference apply to the speed tests only.\n"
    "  --ppl FILE           the text (e.g. wiki.test.raw); -p 0 -n 0 skips the\n"
    "                       speed tests\n"
    "  --ppl-ctx N          window length in tokens (default: 512, or the model's\n"
    "                       maximum if smaller)\n"
    "  --ppl-windows W      the first W windows only (default: all)\n"
    "  -q, --quiet          no progress on stderr\n"
    "\n";

struct bench_opts {
    const char *model, *shape, *format, *ppl_text;
    long layers, bits, group, n_prompt, n_gen, reps, ctx, depth;
    int output_f16;
    nb_ppl_opts ppl;
    nb_session_opts run;
};

/* The perplexities of the two activation paths. */
struct ppl_pair {
    nb_ppl int8, exact;
    double diff; /* int8 relative to exact, in percent */
};

/* The int8 path's bound: its perplexity within 0.5% of the exact path's. */
static const double ppl_limit_pct = 0.5;

/* One test: its samples in tokens per second. */
struct test {
    char name[32];
    int n_prompt, n_gen;
    double *tps;
    int count;
    double mean, sd;
};

/* The model under test and what it weighs. */
struct subject {
    nb_model model;
    nb_net llama;
    char name[128];
    uint64_t size, params, bytes_per_token;
    uint64_t layer_bytes, output_bytes; /* of bytes_per_token: the decoder, the output layer */
    double rss; /* peak resident bytes after the speed tests */
};

static int parse_value(struct bench_opts *b, const char *a, const char *v)
{
    int r = nb_run_flag(&b->run, a, v);
    if (r <= 0)
        return r;
    if (!strcmp(a, "-m") || !strcmp(a, "--model"))
        b->model = v;
    else if (!strcmp(a, "--shape"))
        b->shape = v;
    else if (!strcmp(a, "-o") || !strcmp(a, "--output"))
        b->format = v;
    else if (!strcmp(a, "--layers"))
        return nb_parse_int(a, v, 1, 4096, &b->layers);
    else if (!strcmp(a, "--bits"))
        return nb_parse_int(a, v, 3, 4, &b->bits);
    else if (!strcmp(a, "--group"))
        return nb_parse_int(a, v, 0, 4096, &b->group);
    else if (!strcmp(a, "-p") || !strcmp(a, "--n-prompt"))
        return nb_parse_int(a, v, 0, 1 << 20, &b->n_prompt);
    else if (!strcmp(a, "-n") || !strcmp(a, "--n-gen"))
        return nb_parse_int(a, v, 0, 1 << 20, &b->n_gen);
    else if (!strcmp(a, "-r") || !strcmp(a, "--repetitions"))
        return nb_parse_int(a, v, 1, 1000, &b->reps);
    else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size"))
        return nb_parse_int(a, v, 1, 1 << 22, &b->ctx);
    else if (!strcmp(a, "-d") || !strcmp(a, "--depth"))
        return nb_parse_int(a, v, 0, 1 << 22, &b->depth);
    else if (!strcmp(a, "--ppl"))
        b->ppl_text = v;
    else if (!strcmp(a, "--ppl-ctx"))
        return nb_parse_int(a, v, 2, 1 << 22, &b->ppl.ctx);
    else if (!strcmp(a, "--ppl-windows"))
        return nb_parse_int(a, v, 1, 1L << 30, &b->ppl.windows);
    else
        return nb_error("bench: unknown option '%s' (see --help)", a), -1;
    return 0;
}

/* 0 to go on, 1 when --help was printed, -1 on a bad argument. */
static int parse(struct bench_opts *b, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (nb_is_help(a))
            return fputs(help, stdout), nb_run_help(stdout), 1;
        if (!strcmp(a, "-q") || !strcmp(a, "--quiet"))
            b->ppl.quiet = 1;
        else if (!strcmp(a, "--output-f16"))
            b->output_f16 = 1;
        else if (!nb_run_switch(&b->run, a) &&
            (!(v = nb_arg(argc, argv, &i)) || parse_value(b, a, v)))
            return -1;
    }
    if (!b->model == !b->shape)
        return nb_error("bench needs -m MODEL or --shape SHAPE (see nibble bench --help)"), -1;
    if (strcmp(b->format, "md") && strcmp(b->format, "json"))
        return nb_error("-o expects md or json, got '%s'", b->format), -1;
    if (b->group % 32)
        return nb_error("--group must be 0 or a multiple of 32, got %ld", b->group), -1;
    if (!b->n_prompt && !b->n_gen && !b->ppl_text)
        return nb_error("-p and -n are both 0: nothing to measure"), -1;
    if (b->ppl_text && !b->model)
        return nb_error("--ppl needs -m MODEL: a random --shape model has no text to score"), -1;
    FILE *f = b->ppl_text ? fopen(b->ppl_text, "rb") : NULL;
    if (b->ppl_text && !f)
        return nb_error("cannot read %s: %s", b->ppl_text, strerror(errno)), -1;
    if (f)
        fclose(f);
    return 0;
}

/* ---- the model ---- */

static int load(struct subject *s, const struct bench_opts *b, nb_err *e)
{
    if (b->model)
        return nb_model_open(&s->model, b->model, e);
    nb_shape shape;
    if (nb_shape_parse(b->shape, &shape, e))
        return -1;
    if (b->layers && (uint32_t)b->layers < shape.meta.n_layers)
        shape.meta.n_layers = (uint32_t)b->layers; /* only those are built */
    nb_synth_opts o = {.bits = (int)b->bits, .group = (int)b->group,
                       .output_bits = b->output_f16 ? 0 : 4, .output_group = 32};
    return nb_synth_model(&s->model, &shape, &o, e);
}

static void weigh(struct subject *s, const nb_tensor *t, int read_per_token)
{
    const struct nb_tensor_entry *x = t->entry;
    if (!x)
        return; /* an optional block this family has not */
    s->size += x->size;
    s->params += x->shape[0] * (x->n_dims > 1 ? x->shape[1] : 1);
    if (read_per_token)
        s->bytes_per_token += x->size;
}

/* Size and parameters of the tensors the run uses; a decode step reads
 * every one of them but the embedding, of which it reads one row. */
static void weigh_all(struct subject *s)
{
    const nb_net *m = &s->llama;
    weigh(s, &m->embed, 0);
    s->bytes_per_token += m->embed.entry->size / m->cfg.vocab_size;
    weigh(s, &m->out_norm, 1);
    uint64_t before = s->bytes_per_token;
    if (m->cfg.tied_embeddings)
        s->bytes_per_token += m->embed.entry->size;
    else
        weigh(s, &m->output, 1);
    s->output_bytes = s->bytes_per_token - before;
    before = s->bytes_per_token;
    for (uint32_t l = 0; l < m->cfg.n_layers; l++) {
        const nb_net_layer *L = &m->layers[l];
        const nb_tensor *ts[] = {&L->attn_norm, &L->q,    &L->k,      &L->v,      &L->o,
                                 &L->ffn_norm,  &L->gate, &L->up,     &L->down,   &L->q_bias,
                                 &L->k_bias,    &L->v_bias, &L->q_norm, &L->k_norm};
        for (size_t i = 0; i < sizeof ts / sizeof *ts; i++)
            weigh(s, ts[i], 1);
    }
    s->layer_bytes = s->bytes_per_token - before;
}

/* Bytes of fp16 keys and values one token reads at position pos. */
static uint64_t kv_bytes_at(const nb_net *m, long pos)
{
    const struct nb_meta *c = &m->cfg;
    return 2ull * c->n_layers * (uint64_t)pos * c->n_kv_heads * c->head_dim * 2;
}

static void describe(struct subject *s, const struct bench_opts *b, uint32_t layers_in_file)
{
    const struct nb_meta *c = &s->llama.cfg;
    char quant[32] = "";
    const struct nb_tensor_entry *q = s->llama.layers[0].q.entry;
    if (q->dtype == NB_Q4 || q->dtype == NB_Q3)
        snprintf(quant, sizeof quant, " %s g%u", nb_dtype_name(q->dtype), q->group_size);
    else
        snprintf(quant, sizeof quant, " %s", nb_dtype_name(q->dtype));
    const char *base = b->model ? strrchr(b->model, '/') : NULL;
    base = b->model ? (base ? base + 1 : b->model) : b->shape;
    int n = snprintf(s->name, sizeof s->name, "%s%s", base, quant);
    if (c->n_layers < layers_in_file && n > 0 && (size_t)n < sizeof s->name)
        snprintf(s->name + n, sizeof s->name - (size_t)n, ", %u/%u layers", c->n_layers,
                 layers_in_file);
}

static int open_subject(struct subject *s, const struct bench_opts *b, nb_err *e)
{
    memset(s, 0, sizeof *s);
    if (load(s, b, e))
        return -1;
    uint32_t in_file = s->model.meta.n_layers;
    if (b->shape) {
        nb_shape named;
        nb_shape_parse(b->shape, &named, e);
        in_file = named.meta.n_layers;
    } else if (b->layers && (uint32_t)b->layers < in_file) {
        s->model.meta.n_layers = (uint32_t)b->layers; /* bind the first ones only */
    }
    long need = b->depth + (b->n_prompt > b->n_gen ? b->n_prompt : b->n_gen);
    int ctx = (int)(b->ctx ? b->ctx : b->depth + b->n_prompt + b->n_gen);
    if (ctx < need)
        return nb_fail(e, "-c %d is shorter than the longest test (%ld tokens, depth included)",
                       ctx, need);
    if (b->ppl.ctx > (long)s->model.meta.max_ctx)
        return nb_fail(e, "--ppl-ctx %ld is longer than the model's context of %u", b->ppl.ctx,
                       s->model.meta.max_ctx);
    if ((uint32_t)ctx > s->model.meta.max_ctx)
        return nb_fail(e, "a context of %d tokens (-c, or -d + -p + -n) is more than the "
                          "model's %u", ctx, s->model.meta.max_ctx);
    int rc = b->run.reference ? nb_net_init(&s->llama, &s->model, ctx, e)
                              : nb_net_init_fast(&s->llama, &s->model, ctx, &b->run.run, e);
    if (rc)
        return -1;
    weigh_all(s);
    describe(s, b, in_file);
    return 0;
}

static void close_subject(struct subject *s)
{
    nb_net_free(&s->llama);
    nb_model_close(&s->model);
}

/* ---- measuring ---- */

static double run_prompt(nb_net *m, const int32_t *ids, int n, int depth)
{
    double t0 = nb_now();
    nb_net_prefill(m, ids, n, depth);
    return nb_now() - t0;
}

static double run_decode(nb_net *m, const int32_t *ids, int n, int depth)
{
    double t0 = nb_now();
    for (int i = 0; i < n; i++)
        nb_net_forward(m, ids[i], depth + i);
    return nb_now() - t0;
}

/* ppN, or ppN @ dDEPTH as llama-bench names it. */
static void name_test(struct test *t, const char *kind, long n, long depth)
{
    if (depth)
        snprintf(t->name, sizeof t->name, "%s%ld @ d%ld", kind, n, depth);
    else
        snprintf(t->name, sizeof t->name, "%s%ld", kind, n);
}

static void summarize(struct test *t)
{
    double sum = 0, sq = 0;
    for (int i = 0; i < t->count; i++)
        sum += t->tps[i];
    t->mean = sum / t->count;
    for (int i = 0; i < t->count; i++)
        sq += (t->tps[i] - t->mean) * (t->tps[i] - t->mean);
    t->sd = t->count > 1 ? sqrt(sq / (t->count - 1)) : 0.0;
}

/* The tests asked for, measured: the count of tests, or -1. */
static int measure(struct subject *s, const struct bench_opts *b, struct test *tests)
{
    int n = (int)(b->n_prompt > b->n_gen ? b->n_prompt : b->n_gen), k = 0;
    if (!n)
        return 0;
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    if (!ids)
        return nb_error("out of memory"), -1;
    uint64_t seed = 1;
    for (int i = 0; i < n; i++) /* any tokens: the work does not depend on them */
        ids[i] = (int32_t)((seed = seed * 6364136223846793005ull + 1442695040888963407ull) >>
                           33) % (int32_t)s->llama.cfg.vocab_size;
    int d = (int)b->depth;
    /* A model whose weights hold NaN or Inf gives no speed worth a table. */
    nb_err e = {{0}};
    if (nb_logits_check(nb_net_forward(&s->llama, ids[0], d), s->llama.cfg.vocab_size, d, &e)) {
        free(ids);
        return nb_error("%s", e.msg), -1;
    }
    if (b->n_prompt) {
        struct test *t = &tests[k++];
        name_test(t, "pp", b->n_prompt, b->depth);
        t->n_prompt = (int)b->n_prompt;
        run_prompt(&s->llama, ids, t->n_prompt, d); /* warm-up */
        for (t->count = 0; t->count < b->reps; t->count++)
            t->tps[t->count] = t->n_prompt / run_prompt(&s->llama, ids, t->n_prompt, d);
    }
    if (b->n_gen) {
        struct test *t = &tests[k++];
        name_test(t, "tg", b->n_gen, b->depth);
        t->n_gen = (int)b->n_gen;
        run_decode(&s->llama, ids, 1, d);
        for (t->count = 0; t->count < b->reps; t->count++)
            t->tps[t->count] = t->n_gen / run_decode(&s->llama, ids, t->n_gen, d);
    }
    free(ids);
    for (int i = 0; i < k; i++)
        summarize(&tests[i]);
    return k;
}

/* Perplexity on the fast path with int8 activations, then with fp32 ones:
 * 0, or 1 after an error line. One session at a time; the weights are
 * mapped, so each costs only its state. */
static int measure_ppl(const struct bench_opts *b, struct ppl_pair *p)
{
    nb_ppl_opts o = b->ppl;
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = 0;
    for (int exact = 0; exact < 2 && !rc; exact++) {
        nb_session_opts so = b->run;
        so.reference = 0, so.run.exact = exact;
        nb_session s;
        nb_err e = {{0}};
        if (nb_session_open_with(&s, b->model, 0, &so, &e)) {
            rc = nb_error("%s", e.msg);
            break;
        }
        if (!ids)
            rc = nb_ppl_text(&s, b->ppl_text, &o, &ids, &n);
        if (!rc)
            rc = nb_ppl_eval(&s, ids, n, &o, exact ? "perplexity, exact" : "perplexity, int8",
                             exact ? &p->exact : &p->int8);
        nb_session_close(&s);
    }
    free(ids);
    if (!rc)
        p->diff = 100.0 * (p->int8.ppl - p->exact.ppl) / p->exact.ppl;
    return rc;
}

/* ---- reporting ---- */

static double peak_rss(void)
{
    struct rusage u;
    return getrusage(RUSAGE_SELF, &u) ? 0.0 : (double)u.ru_maxrss * 1024.0; /* KiB on Linux */
}

static void human_bytes(char *out, size_t n, double bytes)
{
    if (bytes >= 1024.0 * 1024 * 1024)
        snprintf(out, n, "%.2f GiB", bytes / (1024.0 * 1024 * 1024));
    else if (bytes >= 1024.0 * 1024)
        snprintf(out, n, "%.2f MiB", bytes / (1024.0 * 1024));
    else
        snprintf(out, n, "%.2f KiB", bytes / 1024.0);
}

static void kernels_label(const struct subject *s, const struct bench_opts *b, char *out,
                          size_t n)
{
    snprintf(out, n, "%s%s", nb_net_kernels(&s->llama),
             b->run.run.exact && !b->run.reference ? " exact" : "");
}

/* Where a decoded token's bytes come from: the decoder's weights, the
 * output layer (often a third of a small model with a large vocabulary),
 * and the KV cache, which grows with the position. */
static void print_bytes_split(const struct subject *s, const struct bench_opts *b)
{
    char layers[32], output[32], kv0[32], kv1[32];
    long pos = b->depth + b->n_gen; /* the last decode step's position */
    human_bytes(layers, sizeof layers, (double)s->layer_bytes);
    human_bytes(output, sizeof output, (double)s->output_bytes);
    human_bytes(kv0, sizeof kv0, (double)kv_bytes_at(&s->llama, pos));
    human_bytes(kv1, sizeof kv1, (double)kv_bytes_at(&s->llama, 2048));
    const struct nb_tensor_entry *o =
        s->llama.cfg.tied_embeddings ? s->llama.embed.entry : s->llama.output.entry;
    printf("bytes per decoded token: layers %s, output layer %s (%s%s), KV cache %s at "
           "position %ld (%s at 2048)\n",
           layers, output, nb_dtype_name(o->dtype),
           s->llama.cfg.tied_embeddings ? ", tied" : "", kv0, pos, kv1);
}

static void print_md(const struct subject *s, const struct bench_opts *b, const struct test *t,
                     int n)
{
    char size[32], kern[32];
    human_bytes(size, sizeof size, (double)s->size);
    kernels_label(s, b, kern, sizeof kern);
    double p = (double)s->params;
    printf("| model | size | params | kernels | threads | test | t/s | GB/s |\n"
           "| --- | ---: | ---: | --- | ---: | --- | ---: | ---: |\n");
    for (int i = 0; i < n; i++)
        printf("| %s | %s | %.2f %s | %s | %d | %s | %.2f ± %.2f | %.2f |\n", s->name, size,
               p >= 1e9 ? p / 1e9 : p / 1e6, p >= 1e9 ? "B" : "M", kern,
               nb_net_threads(&s->llama), t[i].name, t[i].mean, t[i].sd,
               t[i].mean * (double)s->bytes_per_token / 1e9);
    size_t kv, other;
    nb_net_memory(&s->llama, &kv, &other);
    char rss[32], kvs[32], others[32];
    human_bytes(rss, sizeof rss, s->rss);
    human_bytes(kvs, sizeof kvs, (double)kv);
    human_bytes(others, sizeof others, (double)other);
    printf("\npeak RSS %s; context %d: KV cache %s (%s), activations and scratch %s beyond "
           "it\n",
           rss, s->llama.ctx, kvs, s->llama.fast ? "fp16" : "fp32", others);
    print_bytes_split(s, b);
}

static void print_ppl_md(const struct subject *s, const struct bench_opts *b,
                         const struct ppl_pair *p)
{
    const char *text = strrchr(b->ppl_text, '/');
    text = text ? text + 1 : b->ppl_text;
    int ok = fabs(p->diff) <= ppl_limit_pct;
    printf("\n| model | text | windows | ppl int8 | ppl exact | int8 vs exact |\n"
           "| --- | --- | ---: | ---: | ---: | ---: |\n"
           "| %s | %s | %ld × %ld tokens | %.4f ± %.4f | %.4f ± %.4f | %+.3f%% |\n",
           s->name, text, p->int8.windows, p->int8.ctx, p->int8.ppl, p->int8.se, p->exact.ppl,
           p->exact.se, p->diff);
    printf("\nint8 activations: perplexity %s %.1f%% of the exact path's%s\n",
           ok ? "within" : "NOT within", ppl_limit_pct, ok ? "" : " (FLAGGED)");
}

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void print_ppl_json(const nb_ppl *r)
{
    printf("{\"ppl\": %.8g, \"stderr\": %.6g, \"tokens\": %ld}", r->ppl, r->se, r->tokens);
}

/* p: the perplexities, or NULL when not asked for. */
static void print_json(const struct subject *s, const struct bench_opts *b,
                       const struct test *t, int n, const struct ppl_pair *p)
{
    char kern[32];
    size_t kv, other;
    kernels_label(s, b, kern, sizeof kern);
    nb_net_memory(&s->llama, &kv, &other);
    printf("{\"model\": ");
    json_string(s->name);
    printf(", \"size_bytes\": %llu, \"params\": %llu, \"layers\": %u, \"kernels\": ",
           (unsigned long long)s->size, (unsigned long long)s->params, s->llama.cfg.n_layers);
    json_string(kern);
    printf(", \"layer_bytes_per_token\": %llu, \"output_bytes_per_token\": %llu",
           (unsigned long long)s->layer_bytes, (unsigned long long)s->output_bytes);
    printf(", \"threads\": %d, \"n_ctx\": %d, \"weight_bytes_per_token\": %llu, "
           "\"peak_rss_bytes\": %.0f, \"kv_cache_bytes\": %zu, \"other_state_bytes\": %zu,\n"
           " \"tests\": [",
           nb_net_threads(&s->llama), s->llama.ctx, (unsigned long long)s->bytes_per_token,
           s->rss, kv, other);
    for (int i = 0; i < n; i++) {
        printf("%s\n  {\"test\": \"%s\", \"n_prompt\": %d, \"n_gen\": %d, \"n_depth\": %ld, "
               "\"avg_ts\": %.6g, \"stddev_ts\": %.6g, \"gb_per_s\": %.6g, \"samples_ts\": [",
               i ? "," : "", t[i].name, t[i].n_prompt, t[i].n_gen, b->depth, t[i].mean, t[i].sd,
               t[i].mean * (double)s->bytes_per_token / 1e9);
        for (int k = 0; k < t[i].count; k++)
            printf("%s%.6g", k ? ", " : "", t[i].tps[k]);
        printf("]}");
    }
    printf("]");
    if (p) {
        printf(",\n \"ppl\": {\"text\": ");
        json_string(b->ppl_text);
        printf(", \"ctx\": %ld, \"windows\": %ld, \"int8\": ", p->int8.ctx, p->int8.windows);
        print_ppl_json(&p->int8);
        printf(", \"exact\": ");
        print_ppl_json(&p->exact);
        printf(", \"diff_pct\": %.6g, \"limit_pct\": %g, \"within_limit\": %s}", p->diff,
               ppl_limit_pct, fabs(p->diff) <= ppl_limit_pct ? "true" : "false");
    }
    printf("}\n");
}

int cmd_bench(int argc, char **argv)
{
    struct bench_opts b = {.format = "md", .bits = 4, .group = 128, .n_prompt = 512,
                           .n_gen = 128, .reps = 5};
    int rc = parse(&b, argc, argv);
    if (rc)
        return rc < 0;
    struct subject s;
    nb_err e = {{0}};
    if (open_subject(&s, &b, &e)) {
        close_subject(&s);
        return nb_error("%s", e.msg);
    }
    struct test tests[2];
    double samples[2][1000];
    memset(tests, 0, sizeof tests);
    tests[0].tps = samples[0], tests[1].tps = samples[1];
    int n = measure(&s, &b, tests), md = !strcmp(b.format, "md");
    s.rss = peak_rss();
    if (n > 0 && md)
        print_md(&s, &b, tests, n);
    fflush(stdout); /* the speed table shows while the perplexity runs */
    struct ppl_pair ppl;
    int failed = n < 0 || (b.ppl_text && measure_ppl(&b, &ppl));
    if (!failed && b.ppl_text && md)
        print_ppl_md(&s, &b, &ppl);
    else if (!failed && !md)
        print_json(&s, &b, tests, n, b.ppl_text ? &ppl : NULL);
    close_subject(&s);
    /* ferror: the table's write may have failed at the flush above */
    return failed ? 1 : fflush(stdout) || ferror(stdout) ? nb_error("cannot write the output") : 0;
}
