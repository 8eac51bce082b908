/* The AWQ search and driver: see awq.h. Per layer (spec §3): run it on
 * the full-precision activations, capturing the input of every linear;
 * search each group's scales on the unmodified layer, then fold them all;
 * search the clipping on the scaled weights and inputs; quantize; write.
 * Work is split into chunks of calibration blocks or of weight rows, each
 * computed in a fixed order, and per-chunk sums are added in chunk order:
 * the output does not depend on the thread count. */
#define _POSIX_C_SOURCE 200809L
#include "awq.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "../models/net.h"
#include "../neon/gemv.h"
#include "../runtime/qtensor.h"
#include "../runtime/writer.h"
#include "progress.h"

enum {
    CLIP_TOKENS = 512, /* calibration rows the clip search samples */
    CLIP_GRID = 20,    /* shrink step 1/20 ... */
    CLIP_STEPS = 10,   /* ... down to half the original max */
    DEFAULT_GRID = 20,
    ROW_CHUNK = 16, /* weight rows per parallel chunk */
    COL_BLOCK = 64, /* columns whose sums are kept on the stack */
};

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

/* ---- parallel loops over weight rows ----------------------------------- */

struct rows_job {
    void (*fn)(void *ctx, size_t r0, size_t r1);
    void *ctx;
    size_t rows, chunk;
};

static void rows_chunk(void *p, size_t c)
{
    struct rows_job *j = p;
    size_t r0 = c * j->chunk;
    j->fn(j->ctx, r0, min_size(r0 + j->chunk, j->rows));
}

/* fn over rows [0, rows) in chunks of chunk rows, chunk c = [c * chunk, ...). */
static void for_chunks(nb_pool *pool, size_t rows, size_t chunk,
                       void (*fn)(void *, size_t, size_t), void *ctx)
{
    struct rows_job j = {fn, ctx, rows, chunk};
    nb_pool_run(pool, (rows + chunk - 1) / chunk, rows_chunk, &j);
}

static void for_rows(nb_pool *pool, size_t rows, void (*fn)(void *, size_t, size_t), void *ctx)
{
    for_chunks(pool, rows, ROW_CHUNK, fn, ctx);
}

/* ---- statistics and scales --------------------------------------------- */

void nb_awq_act_mean(const float *x, size_t n, size_t cols, float *out)
{
    for (size_t c0 = 0; c0 < cols; c0 += COL_BLOCK) {
        size_t nc = min_size(COL_BLOCK, cols - c0);
        double sum[COL_BLOCK] = {0};
        for (size_t t = 0; t < n; t++)
            for (size_t j = 0; j < nc; j++)
                sum[j] += fabsf(x[t * cols + c0 + j]);
        for (size_t j = 0; j < nc; j++)
            out[c0 + j] = (float)(sum[j] / (double)n);
    }
}

/* max |w| over the quantization group (of width step) holding column c. */
static float group_absmax(const float *row, size_t c, size_t cols, size_t step)
{
    size_t g0 = c / step * step, end = min_size(g0 + step, cols);
    float m = 0.0f;
    for (size_t i = g0; i < end; i++)
        m = fmaxf(m, fabsf(row[i]));
    return m;
}

void nb_awq_weight_mean(const float *const *w, const size_t *rows, int n_mats, size_t cols,
                        const nb_qspec *q, float *out)
{
    size_t step = q->group > 0 ? (size_t)q->group : cols, total = 0;
    for (int i = 0; i < n_mats; i++)
        total += rows[i];
    for (size_t c0 = 0; c0 < cols; c0 += COL_BLOCK) {
        size_t nc = min_size(COL_BLOCK, cols - c0);
        double sum[COL_BLOCK] = {0};
        for (int i = 0; i < n_mats; i++)
            for (size_t r = 0; r < rows[i]; r++) {
                const float *row = w[i] + r * cols;
                float gmax = 0.0f;
                for (size_t j = 0; j < nc; j++) {
                    size_t c = c0 + j;
                    if (j == 0 || c % step == 0)
                        gmax = group_absmax(row, c, cols, step);
                    sum[j] += fabsf(row[c]) / (gmax + 1e-6f);
                }
            }
        for (size_t j = 0; j < nc; j++)
            out[c0 + j] = (float)(sum[j] / (double)total);
    }
}

void nb_awq_scales(const float *x_mean, const float *w_mean, size_t n, float alpha, float *s)
{
    float max = -INFINITY, min = INFINITY;
    int nan = 0;
    for (size_t c = 0; c < n; c++) {
        float v = powf(x_mean[c], alpha);
        if (w_mean)
            v = v / (powf(w_mean[c], 1.0f - alpha) + 1e-4f);
        v = v < 1e-4f ? 1e-4f : v; /* a NaN stays NaN, as in torch's clamp */
        nan |= isnan(v);
        max = fmaxf(max, v);
        min = fminf(min, v);
        s[c] = v;
    }
    float norm = nan ? NAN : sqrtf(max * min); /* torch's max/min propagate NaN */
    for (size_t c = 0; c < n; c++) {
        s[c] /= norm;
        if (!isfinite(s[c]))
            s[c] = 1.0f;
    }
}

/* ---- scale search ------------------------------------------------------- */

struct group_search {
    const nb_awq_layer *L;
    int g;
    size_t out; /* module output width */
    const float *const *w; /* the trial weights */
    float *yref;           /* the module's output with the original weights */
    double *partial;       /* per searched block: sum of squared differences */
    size_t *blocks;        /* the calibration blocks the losses are measured on */
    size_t n_blocks;
    atomic_int failed;
};

static void ref_block(void *p, size_t i)
{
    struct group_search *s = p;
    size_t B = s->L->block;
    if (s->L->module(s->L, s->g, NULL, s->blocks[i] * B, B, s->yref + i * B * s->out))
        atomic_store(&s->failed, 1);
}

static void loss_block(void *p, size_t i)
{
    struct group_search *s = p;
    size_t B = s->L->block, n = B * s->out;
    float *y = malloc(n * sizeof *y);
    if (!y || s->L->module(s->L, s->g, s->w, s->blocks[i] * B, B, y)) {
        free(y);
        atomic_store(&s->failed, 1);
        return;
    }
    const float *ref = s->yref + i * n;
    double sum = 0;
    for (size_t k = 0; k < n; k++) {
        float d = ref[k] - y[k]; /* the difference in fp32, its square summed in double */
        sum += (double)d * d;
    }
    s->partial[i] = sum;
    free(y);
}

/* Mean squared difference of the module's output with weights w. */
static int trial_loss(struct group_search *s, const float *const *w, nb_pool *pool, double *loss)
{
    s->w = w;
    nb_pool_run(pool, s->n_blocks, loss_block, s);
    double sum = 0;
    for (size_t i = 0; i < s->n_blocks; i++)
        sum += s->partial[i];
    *loss = sum / ((double)(s->n_blocks * s->L->block) * (double)s->out);
    return atomic_load(&s->failed) ? -1 : 0;
}

struct trial_job {
    const nb_awq_linear *lin;
    const float *s;
    float *out;
    const nb_qspec *q;
};

/* out = Q(W * s) / s, column by column (spec §4). */
static void trial_rows(void *p, size_t r0, size_t r1)
{
    const struct trial_job *j = p;
    size_t cols = j->lin->cols;
    for (size_t r = r0; r < r1; r++) {
        const float *w = j->lin->w + r * cols;
        float *o = j->out + r * cols;
        for (size_t c = 0; c < cols; c++)
            o[c] = w[c] * j->s[c];
        nb_fake_quant_row(o, cols, j->q);
        for (size_t c = 0; c < cols; c++)
            o[c] /= j->s[c];
    }
}

/* What the search found for one group, for the report. */
struct scale_choice {
    int best;    /* grid index, -1 when no trial gave a finite loss */
    double loss; /* at the best alpha */
    double base; /* with s = 1 (plain rounding) */
};

/* Buffers of one group's search, carved from one allocation. */
struct search_bufs {
    float *x_mean, *w_mean, *s, *trial[NB_AWQ_MAX_SCALED];
    float *mem;
};

static int alloc_search(struct search_bufs *b, const nb_awq_layer *L, const nb_awq_group *G)
{
    size_t cols = L->lin[G->scaled[0]].cols, n = 3 * cols;
    for (int i = 0; i < G->n_scaled; i++)
        n += L->lin[G->scaled[i]].rows * cols;
    if (!(b->mem = malloc(n * sizeof *b->mem)))
        return -1;
    b->x_mean = b->mem;
    b->w_mean = b->x_mean + cols;
    b->s = b->w_mean + cols;
    float *next = b->s + cols;
    for (int i = 0; i < G->n_scaled; i++) {
        b->trial[i] = next;
        next += L->lin[G->scaled[i]].rows * cols;
    }
    return 0;
}

/* The loss of one set of scales s: every scaled linear becomes Q(W*s)/s. */
struct layer_loss {
    struct group_search *gs;
    struct search_bufs *b;
    const nb_awq_opts *o;
    nb_pool *pool;
};

static int scales_loss(void *ctx, const float *s, double *loss)
{
    struct layer_loss *c = ctx;
    const nb_awq_group *G = &c->gs->L->group[c->gs->g];
    for (int i = 0; i < G->n_scaled; i++) {
        struct trial_job j = {&c->gs->L->lin[G->scaled[i]], s, c->b->trial[i], &c->o->q};
        for_rows(c->pool, j.lin->rows, trial_rows, &j);
    }
    return trial_loss(c->gs, (const float *const *)c->b->trial, c->pool, loss);
}

typedef int (*loss_fn)(void *ctx, const float *s, double *loss);

static void duo_statistic(const nb_awq_layer *L, const nb_awq_group *G, const nb_qspec *q,
                          float *out)
{
    const float *w[NB_AWQ_MAX_SCALED];
    size_t rows[NB_AWQ_MAX_SCALED];
    for (int i = 0; i < G->n_scaled; i++) {
        w[i] = L->lin[G->scaled[i]].w;
        rows[i] = L->lin[G->scaled[i]].rows;
    }
    nb_awq_weight_mean(w, rows, G->n_scaled, L->lin[G->scaled[0]].cols, q, out);
}

/* The grid (spec §4) over scales of cols channels from the statistics in
 * b (w_mean unused unless o->duo), b->s as scratch: the first alpha with
 * the lowest loss(s) wins. */
static int run_grid(loss_fn loss_of, void *ctx, struct search_bufs *b, size_t cols,
                    const nb_awq_opts *o, float *best_s, struct scale_choice *ch)
{
    int n_grid = o->n_grid ? o->n_grid : DEFAULT_GRID;
    double best = INFINITY, loss;
    ch->best = -1;
    for (size_t c = 0; c < cols; c++)
        best_s[c] = 1.0f;
    if (o->duo) { /* alpha 0 is not s = 1 here: measure plain rounding apart */
        memcpy(b->s, best_s, cols * sizeof *b->s);
        if (loss_of(ctx, b->s, &ch->base))
            return -1;
    }
    for (int i = 0; i < n_grid; i++) {
        nb_awq_scales(b->x_mean, o->duo ? b->w_mean : NULL, cols, (float)i / (float)n_grid, b->s);
        if (loss_of(ctx, b->s, &loss))
            return -1;
        if (!o->duo && i == 0)
            ch->base = loss; /* x^0 = 1: alpha 0 is plain rounding */
        if (loss < best) {
            best = loss;
            ch->best = i;
            memcpy(best_s, b->s, cols * sizeof *b->s);
        }
    }
    ch->loss = best;
    return 0;
}

size_t nb_awq_search_blocks(size_t n_tokens, size_t block, size_t search_tokens)
{
    size_t all = n_tokens / block;
    return search_tokens ? min_size(all, (search_tokens + block - 1) / block) : all;
}

/* The blocks the losses are measured on, spread evenly over the set, so a
 * long calibration text costs the grid only search_tokens (the activation
 * statistic still uses every token). */
static size_t *search_blocks(const nb_awq_layer *L, size_t search_tokens, size_t *n)
{
    size_t all = L->n_tokens / L->block;
    *n = nb_awq_search_blocks(L->n_tokens, L->block, search_tokens);
    size_t *b = malloc(*n * sizeof *b);
    for (size_t i = 0; b && i < *n; i++)
        b[i] = i * all / *n;
    return b;
}

static int search_group(const nb_awq_layer *L, int g, const nb_awq_opts *o, nb_pool *pool,
                        float *best_s, struct scale_choice *ch, nb_err *e)
{
    const nb_awq_group *G = &L->group[g];
    const nb_awq_linear *first = &L->lin[G->scaled[0]];
    struct group_search gs = {.L = L, .g = g, .out = G->out_cols};
    struct search_bufs b = {0};
    atomic_init(&gs.failed, 0);
    gs.blocks = search_blocks(L, o->search_tokens, &gs.n_blocks);
    gs.yref = malloc(gs.n_blocks * L->block * G->out_cols * sizeof *gs.yref);
    gs.partial = malloc(gs.n_blocks * sizeof *gs.partial);
    int rc = -1;
    if (gs.blocks && gs.yref && gs.partial && !alloc_search(&b, L, G)) {
        nb_awq_act_mean(first->x, L->n_tokens, first->cols, b.x_mean);
        if (o->duo)
            duo_statistic(L, G, &o->q, b.w_mean);
        nb_pool_run(pool, gs.n_blocks, ref_block, &gs);
        struct layer_loss ctx = {&gs, &b, o, pool};
        if (!atomic_load(&gs.failed))
            rc = run_grid(scales_loss, &ctx, &b, first->cols, o, best_s, ch);
    }
    free(b.mem);
    free(gs.blocks);
    free(gs.yref);
    free(gs.partial);
    return rc ? nb_fail(e, "out of memory in the scale search of %s", G->label) : 0;
}

/* ---- clip search ------------------------------------------------------ */

struct clip_job {
    float *w;
    size_t rows, cols;
    const float *x;
    size_t n;
    const nb_qspec *q;
    float *ratio;
    atomic_int failed;
};

/* Scratch of one chunk of rows: the weight error d [ROW_CHUNK][len] and
 * its output e [n][ROW_CHUNK]. */
struct clip_scratch {
    float *d, *e;
};

static float absmax(const float *w, size_t n)
{
    float m = 0.0f;
    for (size_t i = 0; i < n; i++)
        m = fmaxf(m, fabsf(w[i]));
    return m;
}

/* d = Q(clamp(w, -m, m)) - w over one group of len columns. */
static void clip_error(const float *w, size_t len, float m, const nb_qspec *one, float *d)
{
    for (size_t c = 0; c < len; c++)
        d[c] = fminf(fmaxf(w[c], -m), m);
    nb_fake_quant_row(d, len, one);
    for (size_t c = 0; c < len; c++)
        d[c] -= w[c];
}

/* Rows [r0, r0+nr), columns [c0, c0+len): one quantization group. */
static void clip_group(struct clip_job *j, struct clip_scratch *s, size_t r0, size_t nr,
                       size_t c0, size_t len, size_t g)
{
    float m0[ROW_CHUNK], best_m[ROW_CHUNK];
    double best[ROW_CHUNK];
    nb_qspec one = *j->q;
    one.group = 0; /* the segment is the whole group */
    for (size_t r = 0; r < nr; r++) {
        m0[r] = best_m[r] = absmax(j->w + (r0 + r) * j->cols + c0, len);
        best[r] = INFINITY;
    }
    for (int i = 0; i < CLIP_STEPS; i++) {
        float f = (float)(1.0 - (double)i / CLIP_GRID);
        for (size_t r = 0; r < nr; r++)
            clip_error(j->w + (r0 + r) * j->cols + c0, len, m0[r] * f, &one, s->d + r * len);
        nb_awq_matmul(s->e, nr, j->x + c0, j->cols, j->n, s->d, len, nr, len);
        for (size_t r = 0; r < nr; r++) {
            double err = 0;
            for (size_t t = 0; t < j->n; t++)
                err += (double)s->e[t * nr + r] * s->e[t * nr + r];
            if (err / (double)j->n < best[r]) {
                best[r] = err / (double)j->n;
                best_m[r] = m0[r] * f;
            }
        }
    }
    size_t n_groups = nb_qgroups(j->cols, j->q);
    for (size_t r = 0; r < nr; r++) {
        float *w = j->w + (r0 + r) * j->cols + c0;
        for (size_t c = 0; c < len; c++)
            w[c] = fminf(fmaxf(w[c], -best_m[r]), best_m[r]);
        if (j->ratio)
            j->ratio[(r0 + r) * n_groups + g] = m0[r] > 0 ? best_m[r] / m0[r] : 1.0f;
    }
}

static void clip_rows(void *p, size_t r0, size_t r1)
{
    struct clip_job *j = p;
    size_t step = j->q->group > 0 ? (size_t)j->q->group : j->cols;
    size_t width = min_size(step, j->cols);
    struct clip_scratch s = {malloc(ROW_CHUNK * width * sizeof *s.d),
                             malloc(j->n * ROW_CHUNK * sizeof *s.e)};
    if (!s.d || !s.e)
        atomic_store(&j->failed, 1);
    for (size_t c0 = 0, g = 0; s.d && s.e && c0 < j->cols; c0 += step, g++)
        clip_group(j, &s, r0, r1 - r0, c0, min_size(step, j->cols - c0), g);
    free(s.d);
    free(s.e);
}

int nb_awq_clip(float *w, size_t rows, size_t cols, const float *x, size_t n, const nb_qspec *q,
                nb_pool *pool, float *ratio)
{
    struct clip_job j = {.w = w, .rows = rows, .cols = cols, .x = x, .n = n, .q = q,
                         .ratio = ratio};
    atomic_init(&j.failed, 0);
    for_rows(pool, rows, clip_rows, &j);
    return atomic_load(&j.failed) ? -1 : 0;
}

/* ---- the driver ---------------------------------------------------------- */

struct run {
    const nb_model *m;
    const nb_awq_opts *o;
    nb_pool *pool;
    nb_writer *w;
    uint8_t *written; /* per tensor of m: already in the output */
    nb_layer_awq a;
    float *x; /* the current layer's input [n_tokens, dim] */
    size_t n_tokens; /* calibration tokens, 0 when nothing is searched */
    uint64_t rng; /* o->random_scales' generator state */
    double t_forward, t_scales, t_clip, t_write, t_output;
};

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

static const struct nb_tensor_entry *entry_at(const nb_model *m, uint32_t i)
{
    return (const void *)((const uint8_t *)m->table + (size_t)i * m->header->entry_size);
}

static void mark_written(struct run *r, const char *name)
{
    for (uint32_t i = 0; i < r->m->n_tensors; i++)
        if (!strcmp(entry_at(r->m, i)->name, name))
            r->written[i] = 1;
}

static void report_scales(const struct run *r, const nb_awq_layer *L, const float *const *s,
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
static void random_scales(struct run *r, float *s, size_t n, struct scale_choice *ch)
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
        return search_group(L, g, r->o, r->pool, s, ch, e);
    random_scales(r, s, L->lin[L->group[g].scaled[0]].cols, ch);
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
        report_scales(r, L, (const float *const *)s, ch);
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
static int clip_linear(struct run *r, nb_awq_linear *l, size_t n_tokens, const nb_qspec *q,
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
        if (L->lin[i].clip && clip_linear(r, &L->lin[i], L->n_tokens, &r->o->q, e))
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

static int write_f32(struct run *r, const char *name, int n_dims, size_t rows, size_t cols,
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
        for_rows(r->pool, l->rows, quant_rows, &j);
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
static int write_linear(struct run *r, nb_awq_linear *l, const nb_qspec *q, nb_err *e)
{
    if (r->o->output == NB_AWQ_PACKED)
        return write_packed(r, l, q, e);
    if (r->o->output == NB_AWQ_DEQUANT) {
        struct quant_job j = {.l = l, .q = q};
        for_rows(r->pool, l->rows, quant_rows, &j);
    }
    return write_f32(r, l->name, 2, l->rows, l->cols, l->w, e);
}

/* A linear's bias, never quantized: as folding left it (v's divided by
 * the v -> o scales), in place of the file's. */
static int write_bias(struct run *r, const nb_awq_linear *l, nb_err *e)
{
    return l->b ? write_f32(r, l->bias_name, 1, l->rows, 1, l->b, e) : 0;
}

/* The layer's norms, linears and biases, as the search left them; what
 * the view does not hold (Qwen3's q/k norms: never scaled) is copied by
 * copy_rest. */
static int write_layer(struct run *r, nb_err *e)
{
    nb_awq_layer *L = &r->a.layer;
    for (int i = 0; i < L->n_norms; i++)
        if (write_f32(r, L->norm[i].name, 1, L->norm[i].n, 1, L->norm[i].w, e))
            return -1;
    for (int i = 0; i < L->n_lin; i++)
        if (write_bias(r, &L->lin[i], e) || write_linear(r, &L->lin[i], &r->o->q, e))
            return -1;
    return 0;
}

/* Adds the time since *t to *acc and restarts the clock. */
static void lap(double *acc, double *t)
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
    lap(&r->t_forward, &t);
    if (r->o->report && layers_searched(r->o))
        fprintf(r->o->report, "layer %d/%u\n", l + 1, r->m->meta.n_layers);
    if (r->o->scales && scale_layer(r, e))
        return -1;
    lap(&r->t_scales, &t);
    if (r->o->clip && r->o->output != NB_AWQ_FOLD_ONLY && clip_layer(r, e))
        return -1;
    lap(&r->t_clip, &t);
    int rc = write_layer(r, e);
    lap(&r->t_write, &t);
    if (r->o->report && layers_searched(r->o))
        fprintf(r->o->report, "  done in %.1f s\n", t - t0);
    return rc;
}

/* ---- the output layer ------------------------------------------------------ */

enum {
    GRAM_TOKENS = 256, /* calibration rows per step of the Gram matrix */
    OUT_CHUNK = 64,    /* output rows per parallel chunk of a loss */
};

/* The output layer's module is the layer alone, and its output is as wide
 * as the vocabulary: running it on the search tokens would cost tokens x
 * vocab x dim per trial and hold tokens x vocab outputs. Its losses go
 * through the Gram matrix of its input instead: for a weight error D
 * (rows Q(w_r s) / s - w_r), the mean over the n calibration tokens of
 * |x D^T|^2 is sum_r D_r G D_r^T with G = x^T x / n [dim, dim], exactly (up
 * to rounding), on every token, for vocab x dim^2 a trial. */
struct gram_job {
    const float *xt; /* one step of tokens, transposed: [dim][tn] */
    size_t dim, tn;
    double *acc; /* [dim][dim] */
    atomic_int failed;
};

static void gram_rows(void *p, size_t r0, size_t r1)
{
    struct gram_job *j = p;
    size_t d = j->dim, nr = r1 - r0;
    float *y = malloc(nr * d * sizeof *y);
    if (!y) {
        atomic_store(&j->failed, 1);
        return;
    }
    nb_awq_matmul(y, d, j->xt + r0 * j->tn, j->tn, nr, j->xt, j->tn, d, j->tn);
    for (size_t i = 0; i < nr * d; i++)
        j->acc[r0 * d + i] += y[i];
    free(y);
}

/* G = x^T x / n for x [n, d], summed in steps of GRAM_TOKENS tokens (each
 * in fp32, in a fixed order; the steps in double); NULL when out of memory. */
static float *gram(const float *x, size_t n, size_t d, nb_pool *pool)
{
    struct gram_job j = {.dim = d, .acc = calloc(d * d, sizeof *j.acc)};
    float *xt = malloc(d * GRAM_TOKENS * sizeof *xt), *g = malloc(d * d * sizeof *g);
    atomic_init(&j.failed, 0);
    j.xt = xt;
    for (size_t t0 = 0; xt && g && j.acc && t0 < n; t0 += GRAM_TOKENS) {
        j.tn = min_size(GRAM_TOKENS, n - t0);
        for (size_t t = 0; t < j.tn; t++)
            for (size_t c = 0; c < d; c++)
                xt[c * j.tn + t] = x[(t0 + t) * d + c];
        for_rows(pool, d, gram_rows, &j);
    }
    if (xt && g && j.acc && !atomic_load(&j.failed)) {
        for (size_t i = 0; i < d * d; i++)
            g[i] = (float)(j.acc[i] / (double)n);
    } else {
        free(g);
        g = NULL;
    }
    free(xt);
    free(j.acc);
    return g;
}

struct out_loss {
    const nb_awq_linear *l;
    float *g; /* the Gram matrix */
    const float *s;
    const nb_qspec *q;
    double *partial; /* per chunk of OUT_CHUNK rows */
    nb_pool *pool;
    atomic_int failed;
};

/* The chunk's sum over rows r of D_r G D_r^T, D_r = Q(w_r s) / s - w_r. */
static void out_loss_rows(void *p, size_t r0, size_t r1)
{
    struct out_loss *j = p;
    size_t d = j->l->cols, nr = r1 - r0;
    float *dw = calloc(2 * nr * d, sizeof *dw); /* (calloc: GCC sees a read before a write) */
    if (!dw) {
        atomic_store(&j->failed, 1);
        return;
    }
    float *y = dw + nr * d;
    for (size_t i = 0; i < nr; i++) {
        const float *w = j->l->w + (r0 + i) * d;
        float *o = dw + i * d;
        for (size_t c = 0; c < d; c++)
            o[c] = w[c] * j->s[c];
        nb_fake_quant_row(o, d, j->q);
        for (size_t c = 0; c < d; c++)
            o[c] = o[c] / j->s[c] - w[c];
    }
    nb_awq_matmul(y, d, dw, d, nr, j->g, d, d, d); /* G is symmetric: its rows are its columns */
    double sum = 0;
    for (size_t i = 0; i < nr * d; i++)
        sum += (double)y[i] * dw[i];
    j->partial[r0 / OUT_CHUNK] = sum;
    free(dw);
}

/* The mean squared error of the output layer's logits with scales s. */
static int out_loss_of(void *ctx, const float *s, double *loss)
{
    struct out_loss *j = ctx;
    size_t rows = j->l->rows, n = (rows + OUT_CHUNK - 1) / OUT_CHUNK;
    j->s = s;
    for_chunks(j->pool, rows, OUT_CHUNK, out_loss_rows, j);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += j->partial[i];
    *loss = sum / (double)rows;
    return atomic_load(&j->failed) ? -1 : 0;
}

/* The losses of linear l on x [n, l->cols]: -1 when out of memory. */
static int out_loss_init(struct out_loss *j, const nb_awq_linear *l, const float *x, size_t n,
                         const nb_qspec *q, nb_pool *pool)
{
    *j = (struct out_loss){.l = l, .q = q, .pool = pool, .g = gram(x, n, l->cols, pool),
                           .partial = malloc((l->rows + OUT_CHUNK - 1) / OUT_CHUNK *
                                             sizeof *j->partial)};
    atomic_init(&j->failed, 0);
    return j->g && j->partial ? 0 : -1;
}

static void out_loss_free(struct out_loss *j)
{
    free(j->g);
    free(j->partial);
}

/* The scale search of output_norm -> output (the view's only group). */
static int search_output(struct run *r, const nb_awq_layer *L, float *best_s,
                         struct scale_choice *ch, nb_err *e)
{
    const nb_awq_linear *l = &L->lin[0];
    size_t d = l->cols;
    struct search_bufs b = {.mem = malloc(3 * d * sizeof *b.mem)};
    struct out_loss j;
    int rc = -1;
    if (!out_loss_init(&j, l, l->x, L->n_tokens, &r->o->out_q, r->pool) && b.mem) {
        b.x_mean = b.mem;
        b.w_mean = b.mem + d;
        b.s = b.mem + 2 * d;
        nb_awq_act_mean(l->x, L->n_tokens, d, b.x_mean);
        if (r->o->duo)
            duo_statistic(L, &L->group[0], &r->o->out_q, b.w_mean);
        rc = run_grid(out_loss_of, &j, &b, d, r->o, best_s, ch);
    }
    out_loss_free(&j);
    free(b.mem);
    return rc ? nb_fail(e, "out of memory in the scale search of the output layer") : 0;
}

int nb_awq_output_loss(const float *w, size_t rows, size_t cols, const float *x, size_t n,
                       const float *s, const nb_qspec *q, nb_pool *pool, double *loss)
{
    nb_awq_linear l = {.w = (float *)w, .rows = rows, .cols = cols};
    struct out_loss j;
    int rc = out_loss_init(&j, &l, x, n, q, pool) ? -1 : out_loss_of(&j, s, loss);
    out_loss_free(&j);
    return rc;
}

double nb_awq_output_bytes(const struct nb_meta *cfg, size_t n_tokens)
{
    double v = cfg->vocab_size, d = cfg->dim;
    /* x; the weights in fp32, their codes, packed form, scales and zeros
     * (6 bytes a weight is generous); G in float and double; the clip's
     * sample and its scratch */
    return 4.0 * (double)n_tokens * d + 6 * v * d + 12 * d * d + 8.0 * CLIP_TOKENS * d;
}

/* A plain tensor of the given shape (cols 0: a vector) into fp32. */
static int load_plain(const nb_model *m, const char *name, size_t rows, size_t cols, float *out,
                      nb_err *e)
{
    nb_tensor t;
    uint64_t shape[2] = {rows, cols};
    if (nb_model_expect(m, name, cols ? 2 : 1, shape, &t, e))
        return -1;
    if (!nb_dtype_width(t.entry->dtype))
        return nb_fail(e, "tensor '%s' is %s, not a plain float type", name,
                       nb_dtype_name(t.entry->dtype));
    nb_row_ref(out, t.data, (int)t.entry->dtype, 0, rows * (cols ? cols : 1));
    return 0;
}

/* The output layer as a view of one group, output_norm -> output: a norm
 * as previous op, as attn_norm -> q,k,v, so nb_awq_fold folds it (the
 * final norm feeds nothing else). The weights come from token_embd when
 * the model ties them; the embedding itself is copied as it is, and the
 * lookups keep reading it. x, the final norm's output on the calibration
 * tokens, is the last layer's (full-precision) output normalized in place. */
static int load_output(struct run *r, nb_awq_layer *L, nb_err *e)
{
    const struct nb_meta *c = &r->m->meta;
    size_t d = c->dim;
    nb_awq_linear *l = &L->lin[0];
    nb_awq_norm *norm = &L->norm[0];
    memset(L, 0, sizeof *L);
    L->n_lin = L->n_norms = L->n_groups = 1;
    L->n_tokens = r->n_tokens;
    snprintf(l->name, sizeof l->name, "%s", NB_T_OUTPUT);
    snprintf(norm->name, sizeof norm->name, "%s", NB_T_OUT_NORM);
    l->label = "output";
    l->rows = c->vocab_size;
    l->cols = norm->n = d;
    l->x = r->x;
    l->clip = 1;
    L->group[0] = (nb_awq_group){.label = "output_norm -> output", .prev_norm = 0,
                                 .prev_linear = -1, .scaled = {0}, .n_scaled = 1,
                                 .out_cols = c->vocab_size};
    l->w = malloc(l->rows * d * sizeof *l->w);
    norm->w = malloc(d * sizeof *norm->w);
    if (!l->w || !norm->w)
        return nb_fail(e, "out of memory for the output layer (%.0f MB in fp32)",
                       (double)(l->rows * d * sizeof *l->w) / 1e6);
    if (load_plain(r->m, c->tied_embeddings ? NB_T_EMBED : NB_T_OUTPUT, l->rows, d, l->w, e) ||
        load_plain(r->m, NB_T_OUT_NORM, d, 0, norm->w, e))
        return -1;
    for (size_t t = 0; r->x && t < r->n_tokens; t++)
        nb_rmsnorm_ref(r->x + t * d, r->x + t * d, norm->w, NB_W_F32, d, c->norm_eps);
    return 0;
}

/* Scales for the output group: searched, or random (tests); folded. */
static int scale_output(struct run *r, nb_awq_layer *L, nb_err *e)
{
    size_t d = L->lin[0].cols;
    float *s = malloc(d * sizeof *s);
    struct scale_choice ch;
    int rc = !s ? nb_fail(e, "out of memory") : 0;
    if (!rc && r->o->random_scales)
        random_scales(r, s, d, &ch);
    else if (!rc)
        rc = search_output(r, L, s, &ch, e);
    if (!rc) {
        nb_awq_fold(L, 0, s);
        if (r->o->report)
            report_scales(r, L, (const float *const *)&s, &ch);
    }
    free(s);
    return rc;
}

/* The output layer quantized with o->out_q (after the last layer: the
 * layer view and its captured inputs are freed first), written as a
 * tensor of its own; the final norm rewritten when scales were folded. */
static int quantize_output(struct run *r, nb_err *e)
{
    const nb_awq_opts *o = r->o;
    double t = nb_now();
    nb_awq_layer L;
    nb_layer_awq_free(&r->a);
    int scales = r->x && o->out_scales, clip = r->x && o->out_clip && o->output != NB_AWQ_FOLD_ONLY;
    int searched = scales || clip, rc = load_output(r, &L, e);
    if (!rc && o->report && searched)
        fprintf(o->report, "output layer\n");
    if (!rc && scales)
        rc = scale_output(r, &L, e);
    if (!rc && clip) {
        if (o->report)
            fprintf(o->report, "  clip m*/m0 mean/min:");
        rc = clip_linear(r, &L.lin[0], L.n_tokens, &o->out_q, e);
        if (!rc && o->report)
            fputc('\n', o->report);
    }
    if (!rc && scales)
        rc = write_f32(r, NB_T_OUT_NORM, 1, L.norm[0].n, 1, L.norm[0].w, e);
    if (!rc)
        rc = write_linear(r, &L.lin[0], &o->out_q, e);
    free(L.lin[0].w);
    free(L.norm[0].w);
    r->t_output = nb_now() - t;
    if (!rc && o->report && searched)
        fprintf(o->report, "  done in %.1f s\n", r->t_output);
    return rc;
}

/* Everything the quantizer does not rewrite: embeddings, final norm,
 * output, Qwen3's q/k norms. */
static int copy_rest(struct run *r, nb_err *e)
{
    for (uint32_t i = 0; i < r->m->n_tensors; i++) {
        const struct nb_tensor_entry *t = entry_at(r->m, i);
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
        if (quantize_output(r, e))
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
