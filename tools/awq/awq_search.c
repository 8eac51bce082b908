/* The AWQ search's maths on one layer view (awq-spec.md §3-§5): the
 * activation and weight statistics, the grid over alpha for each scale
 * group, the clip search. Work is split into chunks of calibration blocks
 * or of weight rows, each computed in a fixed order, and per-chunk sums are
 * added in chunk order: the output does not depend on the thread count. */
#define _POSIX_C_SOURCE 200809L
#include "awq_impl.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "../../neon/gemv.h"

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
void awq_for_chunks(nb_pool *pool, size_t rows, size_t chunk,
                    void (*fn)(void *, size_t, size_t), void *ctx)
{
    struct rows_job j = {fn, ctx, rows, chunk};
    nb_pool_run(pool, (rows + chunk - 1) / chunk, rows_chunk, &j);
}

void awq_for_rows(nb_pool *pool, size_t rows, void (*fn)(void *, size_t, size_t), void *ctx)
{
    awq_for_chunks(pool, rows, ROW_CHUNK, fn, ctx);
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
        awq_for_rows(c->pool, j.lin->rows, trial_rows, &j);
    }
    return trial_loss(c->gs, (const float *const *)c->b->trial, c->pool, loss);
}


void awq_duo_statistic(const nb_awq_layer *L, const nb_awq_group *G, const nb_qspec *q,
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
int awq_run_grid(loss_fn loss_of, void *ctx, struct search_bufs *b, size_t cols,
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

int awq_search_group(const nb_awq_layer *L, int g, const nb_awq_opts *o, nb_pool *pool,
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
            awq_duo_statistic(L, G, &o->q, b.w_mean);
        nb_pool_run(pool, gs.n_blocks, ref_block, &gs);
        struct layer_loss ctx = {&gs, &b, o, pool};
        if (!atomic_load(&gs.failed))
            rc = awq_run_grid(scales_loss, &ctx, &b, first->cols, o, best_s, ch);
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
    awq_for_rows(pool, rows, clip_rows, &j);
    return atomic_load(&j.failed) ? -1 : 0;
}
