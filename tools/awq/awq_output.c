/* The output layer under AWQ: its inputs are the final norm's output, its
 * scale group output_norm -> output, its loss measured through the Gram
 * matrix of the calibration activations (the vocabulary is too wide to
 * run the layer per trial); then clipped, packed and written as a tensor
 * of its own (a tied embedding stays for the lookups). */
#define _POSIX_C_SOURCE 200809L
#include "awq_impl.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "../../models/net.h"
#include "../../neon/gemv.h"
#include "../../runtime/qtensor.h"
#include "../progress.h"

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
        awq_for_rows(pool, d, gram_rows, &j);
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
    awq_for_chunks(j->pool, rows, OUT_CHUNK, out_loss_rows, j);
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
            awq_duo_statistic(L, &L->group[0], &r->o->out_q, b.w_mean);
        rc = awq_run_grid(out_loss_of, &j, &b, d, r->o, best_s, ch);
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
        awq_random_scales(r, s, d, &ch);
    else if (!rc)
        rc = search_output(r, L, s, &ch, e);
    if (!rc) {
        nb_awq_fold(L, 0, s);
        if (r->o->report)
            awq_report_scales(r, L, (const float *const *)&s, &ch);
    }
    free(s);
    return rc;
}

/* The output layer quantized with o->out_q (after the last layer: the
 * layer view and its captured inputs are freed first), written as a
 * tensor of its own; the final norm rewritten when scales were folded. */
int awq_quantize_output(struct run *r, nb_err *e)
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
        rc = awq_clip_linear(r, &L.lin[0], L.n_tokens, &o->out_q, e);
        if (!rc && o->report)
            fputc('\n', o->report);
    }
    if (!rc && scales)
        rc = awq_write_f32(r, NB_T_OUT_NORM, 1, L.norm[0].n, 1, L.norm[0].w, e);
    if (!rc)
        rc = awq_write_linear(r, &L.lin[0], &o->out_q, e);
    free(L.lin[0].w);
    free(L.norm[0].w);
    r->t_output = nb_now() - t;
    if (!rc && o->report && searched)
        fprintf(o->report, "  done in %.1f s\n", r->t_output);
    return rc;
}

/* Everything the quantizer does not rewrite: embeddings, final norm,
 * output, Qwen3's q/k norms. */