#define _POSIX_C_SOURCE 200809L
#include "ppl.h"

#include <math.h>

/* -log softmax(logits)[target], in double. */
static double nll(const float *logits, int n, int target)
{
    float max = logits[0];
    for (int i = 1; i < n; i++)
        max = logits[i] > max ? logits[i] : max;
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += exp((double)logits[i] - max);
    return log(sum) + max - logits[target];
}

struct tally {
    double sum, sum_sq;
    long count;
};

struct window {
    const int32_t *ids;
    int vocab;
    struct tally *t;
    nb_err bad; /* the first non-finite logits */
};

/* Position i's logits predict token i + 1. */
static void score(void *ctx, int i, const float *logits)
{
    struct window *w = ctx;
    if (w->bad.msg[0] || nb_logits_check(logits, (size_t)w->vocab, i, &w->bad))
        return;
    double v = nll(logits, w->vocab, w->ids[i + 1]);
    w->t->sum += v;
    w->t->sum_sq += v * v;
    w->t->count++;
}

/* Positions 0..ctx-2 in tiles through the GEMM kernels, every one's
 * logits kept (nb_net_prefill_each). */
static int run_window(nb_session *s, const int32_t *ids, int ctx, struct tally *t, nb_err *e)
{
    struct window w = {ids, (int)s->model.meta.vocab_size, t, {{0}}};
    if (nb_net_prefill_each(&s->net, ids, ctx - 1, 0, score, &w, e))
        return -1;
    return w.bad.msg[0] ? nb_fail(e, "%s", w.bad.msg) : 0;
}

static void progress(const nb_ppl_params *p, long done, long total)
{
    if (p->progress)
        p->progress(p->user, done, total);
}

int nb_ppl_score(nb_session *s, const int32_t *ids, size_t n, const nb_ppl_params *p,
                 nb_ppl *r, nb_err *e)
{
    if (p->ctx < 2 || p->ctx > s->net.ctx)
        return nb_fail(e, "a window of %ld tokens does not fit the context of %d", p->ctx,
                       s->net.ctx);
    long windows = (long)(n / (size_t)p->ctx);
    if (windows == 0)
        return nb_fail(e, "the text has %zu token%s, fewer than one window of %ld", n,
                       n == 1 ? "" : "s", p->ctx);
    if (p->windows && p->windows < windows)
        windows = p->windows;
    struct tally t = {0};
    progress(p, 0, windows);
    for (long w = 0; w < windows; w++) {
        if (p->should_stop && p->should_stop(p->user))
            return nb_fail(e, "interrupted after %ld of %ld windows", w, windows);
        if (run_window(s, ids + w * p->ctx, (int)p->ctx, &t, e))
            return -1;
        progress(p, w + 1, windows);
    }
    double mean = t.sum / t.count, var = t.sum_sq / t.count - mean * mean;
    r->ppl = exp(mean);
    r->se = r->ppl * sqrt(var > 0 ? var : 0) / sqrt((double)t.count);
    r->tokens = t.count, r->windows = windows, r->ctx = p->ctx;
    return 0;
}
