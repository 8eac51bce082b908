/* One step of the slots (slots.h), on the engine thread: the next token
 * of every decoding slot and a bounded chunk of every prefilling one go
 * into one nb_batch; each slot whose last token ran samples its next,
 * and its text goes through the detokenizer and the stop strings as in
 * runtime/convo.c, so a reply is what `nibble chat` gives for the same
 * prompt and sampling. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include "slots_impl.h"

int nb_slot_alloc(nb_slots *sl, struct slot *t)
{
    size_t ctx = (size_t)sl->ctx;
    t->cached = malloc(ctx * sizeof *t->cached);
    t->seq = malloc((ctx + 1) * sizeof *t->seq);
    t->counts = calloc((size_t)sl->vocab, sizeof *t->counts);
    t->distinct = malloc((ctx + 1) * sizeof *t->distinct);
    return t->cached && t->seq && t->counts && t->distinct ? 0 : -1;
}

void nb_slot_free(struct slot *t)
{
    nb_slot_teardown(t);
    free(t->cached), free(t->seq), free(t->counts), free(t->distinct), free(t->reply);
}

void nb_slot_teardown(struct slot *t)
{
    nb_sampler_free(&t->smp);
    nb_detok_free(&t->d);
    memset(&t->d, 0, sizeof t->d);
    free(t->recent), free(t->stops);
    t->recent = NULL;
    t->stops = NULL;
    for (int i = 0; i < t->n_distinct; i++)
        t->counts[t->distinct[i]] = 0;
    t->n_distinct = 0;
}

static void fail(struct slot *t, const char *msg)
{
    if (!t->finish)
        nb_fail(&t->err, "%s", msg);
    t->finish = NB_FINISH_ERROR;
}

/* The template's stop strings, then the request's. */
static int stop_list(struct slot *t, const nb_job_opts *o)
{
    size_t n = 0, k = 0;
    for (const char *const *p = o->template_stops; p && *p; p++)
        n++;
    for (const char *const *p = o->stops; *p; p++)
        n++;
    if (!(t->stops = malloc((n + 1) * sizeof *t->stops)))
        return -1;
    for (const char *const *p = o->template_stops; p && *p; p++)
        t->stops[k++] = *p;
    for (const char *const *p = o->stops; *p; p++)
        t->stops[k++] = *p;
    t->stops[k] = NULL;
    return 0;
}

static void reset(struct slot *t, const nb_job *j, int ctx)
{
    int same = 0;
    while (same < t->n_cached && same < j->n_prompt && t->cached[same] == j->prompt[same])
        same++;
    /* the prompt's last token runs again: its logits start the reply */
    t->n_cached = t->n_reused = same < j->n_prompt ? same : j->n_prompt - 1;
    memcpy(t->seq, j->prompt, (size_t)j->n_prompt * sizeof *t->seq);
    t->n_seq = t->n_prompt = j->n_prompt;
    t->max_reply = ctx - j->n_prompt + 1; /* the last position of the context */
    if (j->o.max_tokens > 0 && j->o.max_tokens < t->max_reply)
        t->max_reply = j->o.max_tokens;
    t->n_reply = 0;
    t->finish = NB_FINISH_NONE;
    t->ids_ok = 0;
    t->reply_len = t->delivered = 0;
    t->run_n = t->want = 0;
}

int nb_slot_setup(nb_slots *sl, struct slot *t)
{
    const nb_job *j = t->job;
    reset(t, j, sl->ctx);
    int window = j->o.smp.repeat_last_n > 0 ? j->o.smp.repeat_last_n : 1;
    if (nb_sampler_init(&t->smp, sl->vocab, &j->o.smp, &t->err))
        return t->finish = NB_FINISH_ERROR, -1;
    if (!(t->recent = malloc((size_t)window * sizeof *t->recent)) || stop_list(t, &j->o) ||
        nb_detok_init(&t->d, sl->s->tok))
        return fail(t, "out of memory"), -1;
    t->d.at_start = !j->o.continues;
    nb_stopper_init(&t->stop, t->stops);
    return 0;
}

/* ---- text ---- */

static int keep_text(struct slot *t, const char *s, size_t n)
{
    if (!n)
        return 0;
    if (t->reply_len + n > t->reply_cap) {
        size_t cap = t->reply_cap ? 2 * t->reply_cap : 4096;
        while (cap < t->reply_len + n)
            cap *= 2;
        char *p = realloc(t->reply, cap);
        if (!p)
            return -1;
        t->reply = p;
        t->reply_cap = cap;
    }
    memcpy(t->reply + t->reply_len, s, n);
    t->reply_len += n;
    return 0;
}

/* Detokenized text through the stop strings, in pieces the stopper's
 * buffer holds (a BPE token's text has no bound). */
static void emit(struct slot *t, const char *text, size_t n)
{
    char safe[NB_DETOK_MAX + NB_STOP_MAX];
    if (!text)
        return fail(t, "out of memory");
    do {
        size_t k = n < NB_DETOK_MAX ? n : NB_DETOK_MAX;
        if (keep_text(t, safe, nb_stopper_push(&t->stop, text, k, safe)))
            return fail(t, "out of memory");
        text += k;
        n -= k;
    } while (n && !t->stop.hit);
}

/* The reply ended without a stop string: what the detokenizer and the
 * stopper held comes out. */
static void end_text(struct slot *t, int finish)
{
    char safe[NB_STOP_MAX];
    size_t n;
    const char *text = nb_detok_end(&t->d, &n);
    emit(t, text, n);
    if (!t->stop.hit && keep_text(t, safe, nb_stopper_flush(&t->stop, safe)))
        fail(t, "out of memory");
    t->ids_ok = !t->stop.hit;
    if (!t->finish)
        t->finish = t->stop.hit ? NB_FINISH_STOP : finish;
}

/* ---- sampling ---- */

/* The last repeat_last_n tokens, control tokens left out (as gen.c). */
static int window(const nb_slots *sl, struct slot *t)
{
    int n = 0, want = t->smp.o.repeat_last_n;
    for (int i = t->n_seq - 1; i >= 0 && n < want; i--)
        if (!nb_tok_is_control(sl->s->tok, t->seq[i]))
            t->recent[n++] = t->seq[i];
    return n;
}

/* OpenAI's presence and frequency penalties: each id the reply holds c
 * times loses c * frequency + presence from its logit. */
static void penalize(const nb_slots *sl, struct slot *t, float *logits)
{
    const nb_job_opts *o = &t->job->o;
    if (o->presence != 0 || o->frequency != 0)
        for (int i = 0; i < t->n_distinct; i++) {
            int id = t->distinct[i];
            logits[id] -= (float)t->counts[id] * o->frequency + o->presence;
        }
    if (nb_sampler_penalizes(&t->smp))
        nb_sampler_penalize(&t->smp, logits, t->recent, window(sl, t));
}

static void count(struct slot *t, int id)
{
    if (!t->counts[id]++)
        t->distinct[t->n_distinct++] = id;
}

static void next_token(nb_slots *sl, struct slot *t, float *logits)
{
    const nb_job_opts *o = &t->job->o;
    if (nb_logits_check(logits, (size_t)sl->vocab, t->n_seq - 1, &t->err)) {
        t->finish = NB_FINISH_ERROR;
        return;
    }
    penalize(sl, t, logits);
    int id = nb_sample(&t->smp, logits);
    if (!o->ignore_eos && nb_session_is_end(sl->s, id))
        return end_text(t, NB_FINISH_STOP);
    t->seq[t->n_seq++] = id;
    t->n_reply++;
    count(t, id);
    /* a special token that is not an end id starts a turn of the model's
     * own: the reply ends there, as at a stop string (convo.c) */
    if (o->stop_at_special && !o->ignore_eos && nb_tok_is_control(sl->s->tok, id)) {
        t->finish = NB_FINISH_STOP;
        return;
    }
    size_t n;
    const char *text = nb_detok_next(&t->d, id, &n);
    emit(t, text, n);
    if (t->stop.hit && !t->finish)
        t->finish = NB_FINISH_STOP;
    else if (t->n_reply >= t->max_reply)
        end_text(t, NB_FINISH_LENGTH);
}

/* ---- the batch ---- */

static void add(nb_slots *sl, struct slot *t, int *n, int k)
{
    for (int i = 0; i < k; i++, (*n)++) {
        int pos = t->n_cached + i;
        sl->b_tok[*n] = t->seq[pos];
        sl->b_seq[*n] = t->id;
        sl->b_pos[*n] = pos;
        sl->b_want[*n] = pos == t->n_seq - 1;
    }
    t->run_n = k;
    t->want = t->n_cached + k == t->n_seq;
    sl->b_slots[sl->n_b_slots++] = t;
}

static int running(const struct slot *t)
{
    return t->job && !t->fresh && !t->finish;
}

/* Decoding slots first (one token each), then prompt chunks within the
 * step's budget, so a long prompt delays the others by a bounded time. */
static int gather(nb_slots *sl)
{
    int n = 0, budget = sl->o.step_tokens;
    sl->n_b_slots = 0;
    for (int i = 0; i < sl->o.n_slots; i++) {
        struct slot *t = &sl->slot[i];
        t->run_n = t->want = 0;
        if (running(t) && t->n_seq - t->n_cached == 1)
            add(sl, t, &n, 1);
    }
    for (int i = 0; i < sl->o.n_slots && budget > 0; i++) {
        struct slot *t = &sl->slot[i];
        int left = t->n_seq - t->n_cached;
        if (!running(t) || left == 1)
            continue;
        int k = left < budget ? left : budget;
        add(sl, t, &n, k);
        budget -= k;
    }
    return n;
}

int nb_slots_step(nb_slots *sl)
{
    int n = gather(sl), prefilled = 0, row = 0;
    if (!n)
        return 0;
    nb_batch b = {n, sl->b_tok, sl->b_seq, sl->b_pos, sl->b_want};
    nb_err e;
    int failed = nb_net_batch(&sl->s->net, &b, sl->logits, &e);
    /* the wanted rows come in the batch's order */
    for (int i = 0; i < sl->n_b_slots; i++) {
        struct slot *t = sl->b_slots[i];
        if (failed) {
            fail(t, e.msg);
            continue;
        }
        int from = t->n_cached, to = from + t->run_n, p = t->n_prompt;
        memcpy(t->cached + from, t->seq + from, (size_t)t->run_n * sizeof *t->seq);
        t->n_cached = to;
        prefilled += (to < p ? to : p) - (from < p ? from : p);
        if (t->want)
            next_token(sl, t, sl->logits + (size_t)row++ * (size_t)sl->vocab);
    }
    return prefilled;
}
