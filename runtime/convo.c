#define _POSIX_C_SOURCE 200809L
#include "convo.h"

#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"

int nb_convo_init(nb_convo *c, nb_session *s, nb_sampler *smp, const nb_convo_opts *o,
                  nb_err *e)
{
    memset(c, 0, sizeof *c);
    c->o = *o;
    return nb_gen_init(&c->gen, s, smp, e);
}

static void free_turn(nb_turn *t)
{
    free(t->user);
    free(t->reply);
    free(t->ids);
    memset(t, 0, sizeof *t);
}

void nb_convo_forget(nb_convo *c)
{
    for (size_t i = 0; i < c->n_turns; i++)
        free_turn(&c->turns[i]);
    c->n_turns = 0;
}

void nb_convo_free(nb_convo *c)
{
    nb_convo_forget(c);
    nb_detok_free(&c->d);
    nb_gen_free(&c->gen);
    free(c->turns);
    free(c->reply);
    free(c->system);
    memset(c, 0, sizeof *c);
}

int nb_convo_set_system(nb_convo *c, const char *system, nb_err *e)
{
    size_t bad, len = system ? strlen(system) : 0;
    if (system && (bad = nb_utf8_bad_offset((const unsigned char *)system, len)) < len)
        return nb_fail(e, "invalid UTF-8 at byte offset %zu", bad);
    char *copy = system ? strdup(system) : NULL;
    if (system && !copy)
        return nb_fail(e, "out of memory");
    free(c->system);
    c->system = copy;
    nb_convo_forget(c);
    return 0;
}

const char *nb_convo_system(const nb_convo *c)
{
    return c->system ? c->system : nb_template_default_system(c->o.t);
}

/* ---- the turns and the context ---- */

static void drop_oldest(nb_convo *c)
{
    free_turn(&c->turns[0]);
    memmove(c->turns, c->turns + 1, --c->n_turns * sizeof *c->turns);
    c->dropped++;
}

static int add_turn(nb_convo *c, const char *text, size_t len)
{
    if (c->n_turns == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 16;
        nb_turn *p = realloc(c->turns, cap * sizeof *p);
        if (!p)
            return -1;
        c->turns = p;
        c->cap = cap;
    }
    nb_turn *t = &c->turns[c->n_turns];
    memset(t, 0, sizeof *t);
    if (!(t->user = malloc(len + 1)))
        return -1;
    memcpy(t->user, text, len);
    t->user[len] = 0;
    t->user_len = len;
    c->n_turns++;
    return 0;
}

/* The ids of the conversation; the last turn is the one being answered. */
static int encode(nb_convo *c, nb_ids *ids, nb_err *e)
{
    nb_chat_msg *msgs = calloc(2 * c->n_turns, sizeof *msgs);
    if (!msgs)
        return nb_fail(e, "out of memory");
    size_t n = 0;
    for (size_t i = 0; i < c->n_turns; i++) {
        const nb_turn *t = &c->turns[i];
        msgs[n++] = (nb_chat_msg){.text = t->user, .len = t->user_len};
        if (i + 1 < c->n_turns)
            msgs[n++] = (nb_chat_msg){.text = t->reply, .len = t->reply_len, .ids = t->ids,
                                      .n_ids = t->n_ids};
    }
    ids->n = 0;
    const nb_session *s = c->gen.s;
    nb_chat_opts co = {.no_think = c->o.no_think};
    int rc = nb_chat_encode_with(c->o.t, s->tok, s->bos, s->eos, c->system, msgs, n, &co, ids, e);
    free(msgs);
    return rc;
}

/* Room a reply should have before a turn starts: its cap, or a quarter of
 * the context, but never more than half. */
static int reserve(const nb_convo *c)
{
    int ctx = c->gen.ctx, want = c->o.max_tokens ? c->o.max_tokens : ctx / 4;
    want = want < ctx / 2 ? want : ctx / 2;
    return want > 0 ? want : 1;
}

/* Encodes the conversation, dropping the oldest turns (the system prompt
 * stays) until the prompt and `room` more tokens fit. The turn being
 * answered is never dropped: 1 when it cannot fit even alone. */
static int fit(nb_convo *c, nb_ids *ids, int room, nb_err *e)
{
    for (;;) {
        if (encode(c, ids, e))
            return -1;
        if (ids->n + (size_t)room <= (size_t)c->gen.ctx)
            return 0;
        if (c->n_turns < 2)
            return ids->n < (size_t)c->gen.ctx ? 0 : 1;
        drop_oldest(c);
    }
}

/* 1 when the newest turn cannot fit even with every earlier turn dropped.
 * Checked before fit() drops any, so a refused message costs the
 * conversation nothing. */
static int too_long_alone(nb_convo *c, nb_ids *ids, nb_err *e)
{
    nb_turn *all = c->turns;
    size_t n = c->n_turns;
    c->turns = all + n - 1;
    c->n_turns = 1;
    int rc = encode(c, ids, e);
    c->turns = all;
    c->n_turns = n;
    return rc ? -1 : ids->n >= (size_t)c->gen.ctx;
}

/* The message alone: checked (UTF-8), and its size for the refusal. */
static int measure(nb_convo *c, const char *text, size_t len, size_t *n_tokens, nb_err *e)
{
    int32_t *ids;
    if (nb_tok_encode(c->gen.s->tok, text, len, 0, &ids, n_tokens, e)) {
        const char *why = e ? strstr(e->msg, "invalid UTF-8") : NULL; /* without the preamble */
        if (why)
            memmove(e->msg, why, strlen(why) + 1);
        return -1;
    }
    free(ids);
    return 0;
}

int nb_convo_ask(nb_convo *c, const char *text, size_t len, nb_err *e)
{
    size_t n_tokens;
    if (measure(c, text, len, &n_tokens, e))
        return -1;
    if (add_turn(c, text, len))
        return nb_fail(e, "out of memory");
    nb_ids ids = {0};
    c->dropped = 0;
    int rc = too_long_alone(c, &ids, e);
    if (!rc)
        rc = fit(c, &ids, reserve(c), e);
    if (rc > 0)
        nb_fail(e, "with the template it needs %zu tokens (the message alone %zu), more than "
                   "the context of %d holds",
                ids.n, n_tokens, c->gen.ctx);
    else if (!rc && nb_gen_prompt(&c->gen, ids.v, (int)ids.n, e))
        rc = -1;
    if (rc)
        free_turn(&c->turns[--c->n_turns]);
    nb_ids_free(&ids);
    return rc;
}

/* ---- one reply ---- */

static int append_reply(nb_convo *c, const char *s, size_t n)
{
    if (c->reply_len + n + 1 > c->reply_cap) {
        size_t cap = c->reply_cap ? 2 * c->reply_cap : 4096;
        while (cap < c->reply_len + n + 1)
            cap *= 2;
        char *p = realloc(c->reply, cap);
        if (!p)
            return -1;
        c->reply = p;
        c->reply_cap = cap;
    }
    memcpy(c->reply + c->reply_len, s, n);
    c->reply_len += n;
    c->reply[c->reply_len] = 0;
    return 0;
}

/* Text that passed the stop strings: kept, and handed on. */
static int show(nb_convo *c, const char *s, size_t n)
{
    if (!n)
        return 0;
    if (append_reply(c, s, n))
        return c->oom = 1, -1;
    return c->text ? c->text(c->text_ctx, s, n) : 0;
}

/* Detokenized text through the stop strings, in pieces the stopper's
 * buffer holds (a BPE token's text has no bound). */
static int stop_and_show(nb_convo *c, const char *text, size_t n)
{
    char safe[NB_DETOK_MAX + NB_STOP_MAX];
    if (!text)
        return c->oom = 1, -1;
    do {
        size_t k = n < NB_DETOK_MAX ? n : NB_DETOK_MAX;
        if (show(c, safe, nb_stopper_push(&c->stop, text, k, safe)))
            return -1;
        text += k;
        n -= k;
    } while (n && !c->stop.hit);
    return 0;
}

static int on_token(void *ctx, int id)
{
    nb_convo *c = ctx;
    /* A special token that is not an end id (Qwen's <|im_start|>, Llama-3's
     * <|start_header_id|>) starts a turn the template would write: the
     * reply ends there, as at a stop string. */
    if (!c->o.ignore_eos && nb_tok_is_control(c->gen.s->tok, id))
        return c->stop.hit = 1;
    size_t n;
    const char *text = nb_detok_next(&c->d, id, &n);
    if (stop_and_show(c, text, n))
        return -1;
    return c->stop.hit;
}

/* The context filled while the reply ran: drop the oldest turns and go on
 * with the reply so far after the shortened prompt. */
static int on_full(void *ctx, nb_gen *g)
{
    nb_convo *c = ctx;
    if (c->n_turns < 2)
        return -1;
    nb_ids ids = {0};
    nb_err e;
    size_t before = c->n_turns;
    int reply = g->n_seq - g->n_prompt, rc = fit(c, &ids, reply + reserve(c), &e);
    if (!rc && c->n_turns < before)
        rc = nb_gen_reprompt(g, ids.v, (int)ids.n, &e);
    else
        rc = -1;
    nb_ids_free(&ids);
    return rc ? -1 : 0;
}

static void finish_text(nb_convo *c)
{
    char safe[NB_STOP_MAX];
    size_t n;
    const char *text = nb_detok_end(&c->d, &n);
    if (!stop_and_show(c, text, n))
        show(c, safe, nb_stopper_flush(&c->stop, safe));
}

/* Moves the reply into the last turn. */
static int keep_reply(nb_convo *c)
{
    nb_turn *t = &c->turns[c->n_turns - 1];
    const nb_gen *g = &c->gen;
    if (!(t->reply = malloc(c->reply_len + 1)))
        return -1;
    memcpy(t->reply, c->reply ? c->reply : "", c->reply_len + 1);
    t->reply_len = c->reply_len;
    if (c->st.stop == NB_STOP_CALLER)
        return 0; /* the ids run past the stop string: the text is what counts */
    t->n_ids = (size_t)(g->n_seq - g->n_prompt);
    t->ids = malloc((t->n_ids ? t->n_ids : 1) * sizeof *t->ids);
    if (!t->ids)
        return -1;
    memcpy(t->ids, g->seq + g->n_prompt, t->n_ids * sizeof *t->ids);
    return 0;
}

static void run(nb_convo *c)
{
    nb_detok_free(&c->d);
    c->oom = nb_detok_init(&c->d, c->gen.s->tok) != 0;
    c->d.at_start = !nb_template_continues(c->o.t);
    nb_stopper_init(&c->stop, nb_template_stops(c->o.t));
    c->reply_len = 0;
    if (c->reply)
        c->reply[0] = 0;
    nb_gen_opts go = {.max_tokens = c->o.max_tokens, .ignore_eos = c->o.ignore_eos,
                      .should_stop = c->o.should_stop, .stop_ctx = c->o.stop_ctx};
    nb_gen_sink sink = {.token = on_token, .full = on_full, .ctx = c};
    nb_gen_run(&c->gen, &go, &sink, &c->st);
    c->n_prompt = c->gen.n_prompt;
    if (c->st.stop != NB_STOP_WRITE)
        finish_text(c);
}

int nb_convo_reply(nb_convo *c, nb_convo_text text, void *ctx, nb_err *e)
{
    c->text = text;
    c->text_ctx = ctx;
    run(c);
    c->text = NULL;
    int rc = 0;
    if (c->st.stop == NB_STOP_ERROR)
        rc = nb_fail(e, "%s", c->st.err.msg);
    else if (c->oom || keep_reply(c))
        rc = nb_fail(e, "out of memory");
    if (rc) /* the message goes with its reply: the conversation stays whole */
        free_turn(&c->turns[--c->n_turns]);
    return rc;
}
