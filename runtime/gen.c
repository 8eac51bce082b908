#define _POSIX_C_SOURCE 200809L
#include "gen.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Monotonic seconds, for the statistics. */
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int nb_gen_init(nb_gen *g, nb_session *s, nb_sampler *smp, nb_err *e)
{
    memset(g, 0, sizeof *g);
    g->s = s;
    g->smp = smp;
    g->ctx = s->net.ctx;
    size_t window = smp->o.repeat_last_n > 0 ? (size_t)smp->o.repeat_last_n : 1;
    g->seq = malloc(((size_t)g->ctx + 1) * sizeof *g->seq);
    g->cached = malloc((size_t)g->ctx * sizeof *g->cached);
    g->recent = malloc(window * sizeof *g->recent);
    if (!g->seq || !g->cached || !g->recent) {
        nb_gen_free(g);
        return nb_fail(e, "out of memory");
    }
    return 0;
}

void nb_gen_free(nb_gen *g)
{
    free(g->seq);
    free(g->cached);
    free(g->recent);
    memset(g, 0, sizeof *g);
}

int nb_gen_prompt(nb_gen *g, const int32_t *ids, int n, nb_err *e)
{
    if (n < 1 || n > g->ctx)
        return nb_fail(e, "a prompt of %d tokens does not fit the context of %d", n, g->ctx);
    memcpy(g->seq, ids, (size_t)n * sizeof *ids);
    g->n_seq = g->n_prompt = n;
    return 0;
}

int nb_gen_reprompt(nb_gen *g, const int32_t *ids, int n, nb_err *e)
{
    int reply = g->n_seq - g->n_prompt;
    if (n < 1 || n + reply > g->ctx + 1)
        return nb_fail(e, "%d prompt and %d reply tokens do not fit the context of %d", n,
                       reply, g->ctx);
    memmove(g->seq + n, g->seq + g->n_prompt, (size_t)reply * sizeof *g->seq);
    memcpy(g->seq, ids, (size_t)n * sizeof *ids);
    g->n_prompt = n;
    g->n_seq = n + reply;
    return 0;
}

static int cancelled(const nb_gen_opts *o)
{
    return o->should_stop && o->should_stop(o->stop_ctx);
}

static float *forward(nb_gen *g, int pos)
{
    g->cached[pos] = g->seq[pos];
    g->n_cached = pos + 1;
    return nb_net_forward(&g->s->net, g->seq[pos], pos);
}

/* Runs the positions of seq[0 .. n_seq-2] the cache does not hold yet, in
 * tiles through nb_net_prefill (the GEMM kernels on the fast path); the
 * last token is left for the decode step, whose logits start the reply.
 * Returns the positions run, or -1 when cancelled. */
static int sync(nb_gen *g, const nb_gen_opts *o)
{
    enum { TILE = 256 }; /* tokens between checks for a cancellation */
    int end = g->n_seq - 1, same = 0;
    while (same < end && same < g->n_cached && g->cached[same] == g->seq[same])
        same++;
    g->n_cached = same; /* later entries are stale: overwritten in order */
    for (int pos = same; pos < end; pos += TILE) {
        if (cancelled(o))
            return -1;
        int n = end - pos < TILE ? end - pos : TILE;
        nb_net_prefill(&g->s->net, g->seq + pos, n, pos);
        memcpy(g->cached + pos, g->seq + pos, (size_t)n * sizeof *g->seq);
        g->n_cached = pos + n;
    }
    return end - same;
}

/* The last repeat_last_n tokens of the sequence, control tokens left out:
 * penalizing BOS or EOS would teach a chat model never to stop. */
static int window(nb_gen *g)
{
    int n = 0, want = g->smp->o.repeat_last_n;
    for (int i = g->n_seq - 1; i >= 0 && n < want; i--)
        if (!nb_tok_is_control(g->s->tok, g->seq[i]))
            g->recent[n++] = g->seq[i];
    return n;
}

static int sample(nb_gen *g, float *logits)
{
    if (nb_sampler_penalizes(g->smp))
        nb_sampler_penalize(g->smp, logits, g->recent, window(g));
    return nb_sample(g->smp, logits);
}

/* Makes room when the context is full; 0 to go on. */
static int make_room(nb_gen *g, const nb_gen_opts *o, const nb_gen_sink *sink,
                     nb_gen_stats *st)
{
    if (!sink->full || sink->full(sink->ctx, g) || g->n_seq > g->ctx) {
        st->stop = NB_STOP_FULL;
        return -1;
    }
    int run = sync(g, o);
    if (run < 0) {
        st->stop = NB_STOP_CANCEL;
        return -1;
    }
    st->n_prefill += run;
    return 0;
}

/* One decode step; 0 to go on. */
static int step(nb_gen *g, const nb_gen_opts *o, const nb_gen_sink *sink, nb_gen_stats *st,
                double t0)
{
    float *logits = forward(g, g->n_seq - 1);
    if (nb_logits_check(logits, g->s->model.meta.vocab_size, g->n_seq - 1, &st->err)) {
        st->stop = NB_STOP_ERROR;
        return -1;
    }
    int tok = sample(g, logits);
    if (++st->n_steps == 1)
        st->t_first = now() - t0;
    if (nb_session_is_end(g->s, tok) && !o->ignore_eos) {
        st->stop = NB_STOP_EOS;
        return -1;
    }
    g->seq[g->n_seq++] = tok;
    st->n_reply++;
    int r = sink->token(sink->ctx, tok);
    if (r)
        st->stop = r > 0 ? NB_STOP_CALLER : NB_STOP_WRITE;
    return r;
}

/* Decodes until something stops the reply; st->stop says what. */
static void decode(nb_gen *g, const nb_gen_opts *o, const nb_gen_sink *sink, nb_gen_stats *st,
                   double t0)
{
    for (;;) {
        if (cancelled(o)) {
            st->stop = NB_STOP_CANCEL;
            return;
        }
        if (o->max_tokens && st->n_reply >= o->max_tokens) {
            st->stop = NB_STOP_LENGTH;
            return;
        }
        if ((g->n_seq > g->ctx && make_room(g, o, sink, st)) || step(g, o, sink, st, t0))
            return;
    }
}

void nb_gen_run(nb_gen *g, const nb_gen_opts *o, const nb_gen_sink *sink, nb_gen_stats *st)
{
    memset(st, 0, sizeof *st);
    double t0 = now();
    st->n_prefill = sync(g, o);
    st->t_prefill = now() - t0;
    if (st->n_prefill < 0) {
        st->n_prefill = 0;
        st->stop = NB_STOP_CANCEL;
    } else {
        decode(g, o, sink, st, t0);
    }
    st->t_total = now() - t0;
}

double nb_gen_prefill_tps(const nb_gen_stats *st)
{
    return st->t_prefill > 0 ? st->n_prefill / st->t_prefill : 0;
}

double nb_gen_decode_tps(const nb_gen_stats *st)
{
    double t = st->t_total - st->t_first;
    return st->n_steps > 1 && t > 0 ? (st->n_steps - 1) / t : 0;
}
