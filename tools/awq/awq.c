/* The AWQ search and driver: see awq.h. Per layer (spec §3): run it on
 * the full-precision activations, capturing the input of every linear;
 * search each group's scales on the unmodified layer, then fold them all;
 * search the clipping on the scaled weights and inputs; quantize; write.
 * Work is split into chunks of calibration blocks or of weight rows, each
 * computed in a fixed order, and per-chunk sums are added in chunk order:
 * the output does not depend on the thread count. */
#define _POSIX_C_SOURCE 200809L
#include "awq_impl.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "../../models/net.h"
#include "../../runtime/qtensor.h"
#include "../progress.h"

/* ---- the driver ---------------------------------------------------------- */


int nb_awq_calibrated(const nb_awq_opts *o)
{
    return o->scales || o->clip || (o->out_q.bits && (o->out_scales || o->out_clip));
}

/* The decoder linears' searches (the layer forward runs for the output
 * layer's searches anyway). */
static int layers_searched(const nb_awq_opts *o)
{
    return o->scales || o->clip;
}

const struct nb_tensor_entry *awq_entry_at(const nb_model *m, uint32_t i)
{
    return (const void *)((const uint8_t *)m->table + (size_t)i * m->header->entry_size);
}

static void mark_written(struct run *r, const char *name)
{
    for (uint32_t i = 0; i < r->m->n_tensors; i++)
        if (!strcmp(awq_entry_at(r->m, i)->name, name))
            r->written[i] = 1;
}

void awq_report_scales(const struct run *r, const nb_awq_layer *L, const float *const *s,
                       const struct scale_choice *ch)
{
    int n_grid = r->o->n_grid ? r->o->n_grid : DEFAULT_GRID;
    for (int g = 0; g < L->n_groups; g++) {
        const nb_awq_group *G = &L->group[g];
        fprintf(r->o->report, "  %-20s ", G->label);
        if (G->skip)
            fprintf(r->o->report, "skipped: %s\n", G->skip);
        else if (!s[g] || ch[g].best < 0)
            fprintf(r->o->report, "no finite loss: left unscaled\n");
        else
            fprintf(r->o->report, "alpha %.2f  loss %.4g  (unscaled %.4g, %+.1f%%)\n",
                    (double)ch[g].best / n_grid, ch[g].loss, ch[g].base,
                    ch[g].base > 0 ? 100 * (ch[g].loss / ch[g].base - 1) : 0.0);
    }
}

/* Tests (o->random_scales): e^u per channel, u uniform in [-1, 1). */
void awq_random_scales(struct run *r, float *s, size_t n, struct scale_choice *ch)
{
    for (size_t c = 0; c < n; c++) {
        uint64_t z = (r->rng += 0x9e3779b97f4a7c15ull); /* splitmix64 */
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        s[c] = expf((float)((double)(z >> 11) / 4503599627370496.0 - 1.0));
    }
    *ch = (struct scale_choice){.best = 0};
}

static int find_scales(struct run *r, int g, float *s, struct scale_choice *ch, nb_err *e)
{
    const nb_awq_layer *L = &r->a.layer;
    if (!r->o->random_scales)
        return awq_search_group(L, g, r->o, r->pool, s, ch, e);
    awq_random_scales(r, s, L->lin[L->group[g].scaled[0]].cols, ch);
    return 0;
}

/* Every group's scales on the unmodified layer, then all folded (pitfall 7). */
static int scale_layer(struct run *r, nb_err *e)
{
    nb_awq_layer *L = &r->a.layer;
    float *s[NB_AWQ_MAX_GROUPS] = {0};
    struct scale_choice ch[NB_AWQ_MAX_GROUPS];
    int rc = 0;
    for (int g = 0; g < L->n_groups && !rc; g++) {
        if (L->group[g].skip)
            continue;
        s[g] = malloc(L->lin[L->group[g].scaled[0]].cols * sizeof *s[g]);
        rc = s[g] ? find_scales(r, g, s[g], &ch[g], e) : nb_fail(e, "out of memory");
    }
    for (int g = 0; g < L->n_groups && !rc; g++)
        if (s[g])
            nb_awq_fold(L, g, s[g]);
    if (!rc && r->o->report)
        awq_report_scales(r, L, (const float *const *)s, ch);
    for (int g = 0; g < L->n_groups; g++)
        free(s[g]);
    return rc;
}

/* Every (T / 512)-th calibration row of x [n_tokens, cols]. */
static float *sample_rows(const float *x, size_t n_tokens, size_t cols, size_t *n)
{
    size_t step = n_tokens >= CLIP_TOKENS ? n_tokens / CLIP_TOKENS : 1;
    *n = (n_tokens + step - 1) / step;
    float *xs = malloc(*n * cols * sizeof *xs);
    for (size_t i = 0; xs && i < *n; i++)
        memcpy(xs + i * cols, x + i * step * cols, cols * sizeof *xs);
    return xs;
}

static void report_clip(const struct run *r, const nb_awq_linear *l, const float *ratio, size_t n)
{
    double sum = 0;
    float min = 1.0f;
    for (size_t i = 0; i < n; i++) {
        sum += ratio[i];
        min = fminf(min, ratio[i]);
    }
    fprintf(r->o->report, " %s %.3f/%.2f", l->label, sum / (double)n, (double)min);
}

/* The clip search of one linear on a sample of its n_tokens inputs. */
int awq_clip_linear(struct run *r, nb_awq_linear *l, size_t n_tokens, const nb_qspec *q,
                    nb_err *e)
{
    size_t n, n_ratio = l->rows * nb_qgroups(l->cols, q);
    float *xs = sample_rows(l->x, n_tokens, l->cols, &n);
    float *ratio = malloc(n_ratio * sizeof *ratio);
    int rc = !xs || !ratio || nb_awq_clip(l->w, l->rows, l->cols, xs, n, q, r->pool, ratio);
    if (!rc && r->o->report)
        report_clip(r, l, ratio, n_ratio);
    free(xs);
    free(ratio);
    return rc ? nb_fail(e, "out of memory in the clip search of %s", l->name) : 0;
}

static int clip_layer(struct run *r, nb_err *e)
{
    nb_awq_layer *L = &r->a.layer;
    if (r->o->report)
        fprintf(r->o->report, "  clip m*/m0 mean/min:");
    for (int i = 0; i < L->n_lin; i++)
        if (L->lin[i].clip && awq_clip_linear(r, &L->lin[i], L->n_tokens, &r->o->q, e))
            return -1;
    if (r->o->report)
        fputc('\n', r->o->report);
    return 0;
}

struct quant_job {
    const nb_awq_linear *l;
    const nb_qspec *q;
    size_t n_groups;
    uint8_t *codes, *zeros;
    float *scales;
};

static void quant_rows(void *p, size_t r0, size_t r1)
{
    const struct quant_job *j = p;
    size_t cols = j->l->cols;
    for (size_t r = r0; r < r1; r++) {
        if (j->codes)
            nb_quant_row(j->l->w + r * cols, cols, j->q, j->codes + r * cols,
                         j->scales + r * j->n_groups, j->zeros + r * j->n_groups);
        else
            nb_fake_quant_row(j->l->w + r * cols, cols, j->q);
    }
}

int awq_write_f32(struct run *r, const char *name, int n_dims, size_t rows, size_t cols,
                  const float *w, nb_err *e)
{
    uint64_t shape[2] = {rows, cols};
    mark_written(r, name);
    return nb_writer_add(r->w, name, NB_F32, n_dims, shape, w, rows * cols * sizeof *w, e);
}

static int write_packed(struct run *r, const nb_awq_linear *l, const nb_qspec *q, nb_err *e)
{
    nb_qlayout lay;
    struct nb_tensor_entry t;
    if (nb_qlayout_init(&lay, l->rows, l->cols, q->bits, q->group))
        return nb_fail(e, "%s: %d-bit groups of %d cannot be packed", l->name, q->bits,
                       q->group);
    struct quant_job j = {.l = l, .q = q, .n_groups = lay.n_groups,
                          .codes = malloc(l->rows * l->cols),
                          .zeros = malloc(l->rows * lay.n_groups),
                          .scales = malloc(l->rows * lay.n_groups * sizeof *j.scales)};
    void *data = malloc(lay.total_bytes);
    int rc = -1;
    if (j.codes && j.zeros && j.scales && data) {
        awq_for_rows(r->pool, l->rows, quant_rows, &j);
        nb_qpack(&lay, j.codes, j.scales, j.zeros, data);
        mark_written(r, l->name);
        rc = nb_qentry_init(&t, l->name, &lay, e) || nb_writer_add_entry(r->w, &t, data, e);
    } else
        nb_fail(e, "out of memory packing %s", l->name);
    free(j.codes);
    free(j.zeros);
    free(j.scales);
    free(data);
    return rc ? -1 : 0;
}

/* A linear as r->o->output says: packed with q, dequantized (f32), or as
 * it is (f32, folding only). */
int awq_write_linear(struct run *r, nb_awq_linear *l, const nb_qspec *q, nb_err *e)
{
    if (r->o->output == NB_AWQ_PACKED)
        return write_packed(r, l, q, e);
    if (r->o->output == NB_AWQ_DEQUANT) {
        struct quant_job j = {.l = l, .q = q};
        awq_for_rows(r->pool, l->rows, quant_rows, &j);
    }
    return awq_write_f32(r, l->name, 2, l->rows, l->cols, l->w, e);
}

/* A linear's bias, never quantized: as folding left it (v's divided by
 * the v -> o scales), in place of the file's. */
static int write_bias(struct run *r, const nb_awq_linear *l, nb_err *e)
{
    return l->b ? awq_write_f32(r, l->bias_name, 1, l->rows, 1, l->b, e) : 0;
}

/* The layer's norms, linears and biases, as the search left them; what
 * the view does not hold (Qwen3's q/k norms: never scaled) is copied by
 * copy_rest. */
static int write_layer(struct run *r, nb_err *e)
{
    nb_awq_layer *L = &r->a.layer;
    for (int i = 0; i < L->n_norms; i++)
        if (awq_write_f32(r, L->norm[i].name, 1, L->norm[i].n, 1, L->norm[i].w, e))
            return -1;
    for (int i = 0; i < L->n_lin; i++)
        if (write_bias(r, &L->lin[i], e) || awq_write_linear(r, &L->lin[i], &r->o->q, e))
            return -1;
    return 0;
}

/* Adds the time since *t to *acc and restarts the clock. */
void awq_lap(double *acc, double *t)
{
    double now = nb_now();
    *acc += now - *t;
    *t = now;
}

static int do_layer(struct run *r, int l, nb_err *e)
{
    double t = nb_now(), t0 = t;
    if (nb_layer_awq_load(&r->a, r->m, l, e))
        return -1;
    if (r->x && nb_layer_awq_forward(&r->a, r->x, r->pool, e))
        return -1;
    awq_lap(&r->t_forward, &t);
    if (r->o->report && layers_searched(r->o))
        fprintf(r->o->report, "layer %d/%u\n", l + 1, r->m->meta.n_layers);
    if (r->o->scales && scale_layer(r, e))
        return -1;
    awq_lap(&r->t_scales, &t);
    if (r->o->clip && r->o->output != NB_AWQ_FOLD_ONLY && clip_layer(r, e))
        return -1;
    awq_lap(&r->t_clip, &t);
    int rc = write_layer(r, e);
    awq_lap(&r->t_write, &t);
    if (r->o->report && layers_searched(r->o))
        fprintf(r->o->report, "  done in %.1f s\n", t - t0);
    return rc;
}

static int copy_rest(struct run *r, nb_err *e)
{
    for (uint32_t i = 0; i < r->m->n_tensors; i++) {
        const struct nb_tensor_entry *t = awq_entry_at(r->m, i);
        if (!r->written[i] && nb_writer_add_entry(r->w, t, r->m->base + t->offset, e))
            return -1;
    }
    return 0;
}

static int run_layers(struct run *r, nb_err *e)
{
    nb_progress p;
    uint32_t n = r->m->meta.n_layers;
    nb_progress_start(&p, "quantize", n + (r->o->out_q.bits != 0), r->o->quiet);
    for (uint32_t l = 0; l < n; l++) {
        if (do_layer(r, (int)l, e))
            return -1;
        nb_progress_update(&p, l + 1);
    }
    if (r->o->out_q.bits) {
        if (awq_quantize_output(r, e))
            return -1;
        nb_progress_update(&p, n + 1);
    }
    nb_progress_done(&p);
    return copy_rest(r, e);
}

static int start(struct run *r, const int32_t *ids, size_t n_tokens, size_t block,
                 const char *out, nb_err *e)
{
    struct nb_meta meta = r->m->meta, *c = &meta;
    if (r->o->out_q.bits)
        meta.tied_embeddings = 0; /* the quantized output is a tensor of its own */
    if (!nb_awq_calibrated(r->o))
        n_tokens = 0;
    else if (!n_tokens)
        return nb_fail(e, "the scale and clip searches need calibration tokens");
    r->n_tokens = n_tokens;
    if (nb_layer_awq_init(&r->a, r->m, n_tokens, block, e))
        return -1;
    if (n_tokens && !(r->x = calloc(n_tokens, c->dim * sizeof *r->x)))
        return nb_fail(e, "out of memory for %zu calibration tokens", n_tokens);
    if (r->x && nb_layer_awq_embed(r->m, ids, n_tokens, r->x, e))
        return -1;
    if (!(r->written = calloc(r->m->n_tensors, 1)))
        return nb_fail(e, "out of memory");
    /* The key/value metadata goes along: the family and RoPE scaling. */
    r->w = nb_writer_open_kv(out, c, r->m->kv, r->m->kv_size, r->m->vocab, r->m->vocab_size, e);
    return r->w ? 0 : -1;
}

int nb_awq_quantize(const nb_model *m, const int32_t *ids, size_t n_tokens, size_t block,
                    const char *out, const nb_awq_opts *o, nb_pool *pool, nb_err *e)
{
    struct run r = {.m = m, .o = o, .pool = pool, .rng = o->random_scales};
    int rc = start(&r, ids, n_tokens, block, out, e) || run_layers(&r, e);
    if (!rc)
        rc = nb_writer_commit(r.w, e);
    else
        nb_writer_abort(r.w);
    if (!rc && o->report && nb_awq_calibrated(o))
        fprintf(o->report, "time: forward %.1f s, scale search %.1f s, clip search %.1f s, "
                           "quantize and write %.1f s, output layer %.1f s\n",
                r.t_forward, r.t_scales, r.t_clip, r.t_write, r.t_output);
    nb_layer_awq_free(&r.a);
    free(r.x);
    free(r.written);
    return rc ? -1 : 0;
}
