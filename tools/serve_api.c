/* nibble serve: the OpenAI request bodies (jansson) into a prompt and a
 * job's options. Fields clients send as null count as absent, unknown
 * fields are ignored, a field of the wrong type or out of range is a 400
 * naming it. Chat messages are rendered with the model's template
 * exactly as `nibble chat` renders a conversation. */
#define _POSIX_C_SOURCE 200809L
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve.h"

int api_fail(struct api_err *err, int status, const char *param, const char *code,
             const char *fmt, ...)
{
    va_list ap;
    err->status = status;
    err->type = status >= 500 ? "server_error" : "invalid_request_error";
    err->param = NULL;
    if (param) {
        snprintf(err->param_buf, sizeof err->param_buf, "%s", param);
        err->param = err->param_buf;
    }
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- fields ---- */

static json_t *field(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return v && !json_is_null(v) ? v : NULL;
}

static int get_number(json_t *o, const char *k, double min, double max, float *out,
                      struct api_err *err)
{
    json_t *v = field(o, k);
    if (!v)
        return 0;
    if (!json_is_number(v))
        return api_fail(err, 400, k, NULL, "%s must be a number", k);
    double d = json_number_value(v);
    if (!(d >= min && d <= max))
        return api_fail(err, 400, k, NULL, "%s must be between %g and %g, got %g", k, min, max,
                        d);
    *out = (float)d;
    return 0;
}

/* An integer (a number with no fraction counts: some clients send 64.0);
 * 1 when given. */
static int get_int(json_t *o, const char *k, double min, double max, long long *out,
                   struct api_err *err)
{
    json_t *v = field(o, k);
    if (!v)
        return 0;
    double d = json_number_value(v);
    if (!json_is_number(v) || d != floor(d))
        return api_fail(err, 400, k, NULL, "%s must be an integer", k);
    if (!(d >= min && d <= max))
        return api_fail(err, 400, k, NULL, "%s must be between %.0f and %.0f, got %.0f", k, min,
                        max, d);
    *out = json_is_integer(v) ? json_integer_value(v) : (long long)d;
    return 1;
}

static int get_bool(json_t *o, const char *k, int *out, struct api_err *err)
{
    json_t *v = field(o, k);
    if (!v)
        return 0;
    if (!json_is_boolean(v))
        return api_fail(err, 400, k, NULL, "%s must be true or false", k);
    *out = json_is_true(v);
    return 0;
}

/* ---- sampling, limits, stops ---- */

uint64_t serve_random(struct serve *sv)
{
    pthread_mutex_lock(&sv->lock);
    uint64_t z = (sv->seed_state += 0x9e3779b97f4a7c15ull); /* splitmix64 */
    pthread_mutex_unlock(&sv->lock);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (z ^ (z >> 31)) & 0x7fffffffffffffffull;
}

static int sampling(struct serve *sv, json_t *o, nb_job_opts *jo, struct api_err *err)
{
    nb_sampler_opts *s = &jo->smp;
    long long v;
    *s = sv->o.s.o;
    if (get_number(o, "temperature", 0, 2, &s->temp, err) ||
        get_number(o, "top_p", 0, 1, &s->top_p, err) ||
        get_number(o, "min_p", 0, 1, &s->min_p, err) ||
        get_number(o, "repeat_penalty", 0, 100, &s->repeat_penalty, err) ||
        get_number(o, "presence_penalty", -2, 2, &jo->presence, err) ||
        get_number(o, "frequency_penalty", -2, 2, &jo->frequency, err))
        return -1;
    if (s->top_p == 0) /* only the likeliest token is left */
        s->temp = 0, s->top_p = 1;
    int r = get_int(o, "top_k", 0, 1 << 30, &v, err);
    if (r < 0)
        return -1;
    s->top_k = r ? (int)v : s->top_k;
    if ((r = get_int(o, "seed", -9.2e18, 9.2e18, &v, err)) < 0)
        return -1;
    s->seed = r ? (uint64_t)v : sv->o.s.seeded ? sv->o.s.o.seed : serve_random(sv);
    return 0;
}

static int limits(json_t *o, int kind, nb_job_opts *jo, struct api_err *err)
{
    long long v;
    int r;
    jo->max_tokens = kind == API_COMPLETION ? 16 : 0; /* OpenAI's defaults */
    for (int i = 0; i < 2; i++) {
        const char *k = i ? "max_completion_tokens" : "max_tokens";
        if ((r = get_int(o, k, 1, 1 << 30, &v, err)) < 0)
            return -1;
        if (r)
            jo->max_tokens = (int)v;
    }
    if ((r = get_int(o, "n", -1e9, 1e9, &v, err)) < 0)
        return -1;
    if (r && v != 1)
        return api_fail(err, 400, "n", NULL, "n must be 1: one choice per request");
    if ((r = get_int(o, "best_of", -1e9, 1e9, &v, err)) < 0)
        return -1;
    if (r && v != 1)
        return api_fail(err, 400, "best_of", NULL, "best_of must be 1");
    json_t *lp = field(o, "logprobs");
    if (lp && (json_is_true(lp) || (json_is_number(lp) && json_number_value(lp) != 0)))
        return api_fail(err, 400, "logprobs", NULL, "logprobs are not supported");
    int echo = 0;
    if (get_bool(o, "echo", &echo, err))
        return -1;
    return echo ? api_fail(err, 400, "echo", NULL, "echo is not supported") : 0;
}

static int one_stop(struct api_req *r, int i, json_t *s, struct api_err *err)
{
    if (!json_is_string(s))
        return api_fail(err, 400, "stop", NULL, "stop must be a string or a list of strings");
    size_t len = json_string_length(s);
    if (!len || len >= NB_STOP_MAX || memchr(json_string_value(s), 0, len))
        return api_fail(err, 400, "stop", NULL, "a stop string must have 1 to %d bytes",
                        NB_STOP_MAX - 1);
    memcpy(r->stop[i], json_string_value(s), len + 1);
    r->jo.stops[i] = r->stop[i];
    return 0;
}

static int stops(json_t *o, struct api_req *r, struct api_err *err)
{
    json_t *v = field(o, "stop");
    if (!v)
        return 0;
    if (!json_is_array(v))
        return one_stop(r, 0, v, err);
    if (json_array_size(v) > NB_JOB_STOPS)
        return api_fail(err, 400, "stop", NULL, "at most %d stop strings", NB_JOB_STOPS);
    for (size_t i = 0; i < json_array_size(v); i++)
        if (one_stop(r, (int)i, json_array_get(v, i), err))
            return -1;
    return 0;
}

static int streaming(json_t *o, struct api_req *r, struct api_err *err)
{
    if (get_bool(o, "ignore_eos", &r->jo.ignore_eos, err)) /* llama.cpp's server has it */
        return -1;
    if (get_bool(o, "stream", &r->stream, err))
        return -1;
    json_t *so = field(o, "stream_options");
    if (so && !json_is_object(so))
        return api_fail(err, 400, "stream_options", NULL, "stream_options must be an object");
    return so ? get_bool(so, "include_usage", &r->include_usage, err) : 0;
}

/* ---- chat messages ---- */

struct convo {
    char *system; /* NULL: none given */
    nb_chat_msg *m;
    int32_t **ids; /* the assistant messages' ids, when remembered */
    size_t n, cap;
};

static void convo_free(struct convo *c)
{
    for (size_t i = 0; i < c->n; i++)
        free((char *)c->m[i].text), free(c->ids[i]);
    free(c->m), free(c->ids), free(c->system);
}

/* Appends s[n] to *buf (a malloc'd string), after sep when it has text. */
static int join(char **buf, const char *sep, const char *s, size_t n)
{
    size_t have = *buf ? strlen(*buf) : 0, k = have ? strlen(sep) : 0;
    char *p = realloc(*buf, have + k + n + 1);
    if (!p)
        return -1;
    memcpy(p + have, sep, k);
    memcpy(p + have + k, s, n);
    p[have + k + n] = 0;
    *buf = p;
    return 0;
}

/* A message's content: a string, or a list of text parts (joined by
 * newlines); null is empty. The text is NUL-free (jansson refuses \u0000). */
static int content(json_t *c, const char *where, char **out, struct api_err *err)
{
    if (!c || json_is_null(c))
        return join(out, "", "", 0);
    if (json_is_string(c))
        return join(out, "", json_string_value(c), json_string_length(c));
    if (!json_is_array(c))
        return api_fail(err, 400, where, NULL, "%s must be a string or a list of text parts",
                        where);
    int empty = 1;
    for (size_t i = 0; i < json_array_size(c); i++) {
        json_t *p = json_array_get(c, i), *type = json_object_get(p, "type");
        json_t *text = json_object_get(p, "text");
        if (!json_is_string(type) || strcmp(json_string_value(type), "text"))
            return api_fail(err, 400, where, NULL, "%s: only text parts are supported", where);
        if (!json_is_string(text))
            return api_fail(err, 400, where, NULL, "%s: a text part needs a string text", where);
        if (join(out, empty ? "" : "\n", json_string_value(text), json_string_length(text)))
            return -1;
        empty = 0;
    }
    return empty ? join(out, "", "", 0) : 0;
}

static int add_turn(struct convo *c, int assistant, char *text)
{
    if (c->n % 2 != (size_t)assistant) { /* the same role again: one message */
        char **last = (char **)&c->m[c->n - 1].text;
        int rc = join(last, "\n\n", text, strlen(text));
        c->m[c->n - 1].len = strlen(*last);
        free(text);
        return rc;
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 8;
        nb_chat_msg *m = realloc(c->m, cap * sizeof *m);
        int32_t **ids = m ? realloc(c->ids, cap * sizeof *ids) : NULL;
        if (m)
            c->m = m;
        if (!ids)
            return free(text), -1;
        c->ids = ids;
        c->cap = cap;
    }
    c->m[c->n] = (nb_chat_msg){.text = text, .len = strlen(text)};
    c->ids[c->n++] = NULL;
    return 0;
}

static int message(struct convo *c, json_t *m, size_t i, struct api_err *err)
{
    char where[64], *text = NULL;
    snprintf(where, sizeof where, "messages[%zu].role", i);
    json_t *role = json_object_get(m, "role");
    if (!json_is_object(m) || !json_is_string(role))
        return api_fail(err, 400, where, NULL, "%s must be a string", where);
    const char *r = json_string_value(role);
    int sys = !strcmp(r, "system") || !strcmp(r, "developer"), user = !strcmp(r, "user");
    if (!sys && !user && strcmp(r, "assistant"))
        return api_fail(err, 400, where, NULL, "%s '%.32s' is not supported (system, user, "
                                               "assistant)", where, r);
    if (sys && c->n)
        return api_fail(err, 400, where, NULL, "system messages must come before the others");
    snprintf(where, sizeof where, "messages[%zu].content", i);
    if (content(json_object_get(m, "content"), where, &text, err))
        return free(text), err->status ? -1 : api_fail(err, 500, NULL, NULL, "out of memory");
    if (sys) {
        int rc = join(&c->system, "\n\n", text, strlen(text));
        free(text);
        return rc;
    }
    if (!user && !c->n) {
        free(text);
        return api_fail(err, 400, "messages", NULL,
                        "the first message after the system messages must be the user's");
    }
    return add_turn(c, !user, text);
}

/* The ids a reply had when it was generated, so the history is what the
 * slot's cache holds (as in `nibble chat`). */
static void reply_ids(struct serve *sv, struct convo *c)
{
    for (size_t i = 1; i < c->n; i += 2) {
        size_t n;
        if (nb_slots_reply_ids(sv->slots, c->m[i].text, c->m[i].len, &c->ids[i], &n))
            c->m[i].ids = c->ids[i], c->m[i].n_ids = n;
    }
}

static int chat_prompt(struct serve *sv, json_t *o, struct api_req *r, struct api_err *err)
{
    json_t *msgs = json_object_get(o, "messages");
    if (!json_is_array(msgs) || !json_array_size(msgs))
        return api_fail(err, 400, "messages", NULL, "messages must be a non-empty list");
    struct convo c = {0};
    int rc = 0;
    err->status = 0;
    for (size_t i = 0; !rc && i < json_array_size(msgs); i++)
        rc = message(&c, json_array_get(msgs, i), i, err);
    if (!rc && c.n % 2 == 0)
        rc = api_fail(err, 400, "messages", NULL, "the last message must be the user's");
    nb_ids ids = {0};
    nb_err e;
    if (!rc) {
        reply_ids(sv, &c);
        /* vLLM's and llama-server's chat_template_kwargs {"enable_thinking": false} */
        json_t *kw = json_object_get(o, "chat_template_kwargs");
        nb_chat_opts co = {.no_think = json_is_false(json_object_get(kw, "enable_thinking"))};
        rc = nb_chat_encode_with(sv->t, sv->s.tok, sv->s.bos, sv->s.eos, c.system, c.m, c.n, &co,
                                 &ids, &e);
        if (rc)
            api_fail(err, 400, "messages", NULL, "messages: %s", e.msg);
    } else if (!err->status) {
        api_fail(err, 500, NULL, NULL, "out of memory");
    }
    convo_free(&c);
    r->ids = ids.v;
    r->n_ids = ids.n;
    r->jo.template_stops = nb_template_stops(sv->t);
    r->jo.continues = nb_template_continues(sv->t);
    r->jo.stop_at_special = 1;
    return rc;
}

static int completion_prompt(struct serve *sv, json_t *o, struct api_req *r, struct api_err *err)
{
    json_t *p = json_object_get(o, "prompt");
    if (json_is_array(p) && json_array_size(p) == 1 && json_is_string(json_array_get(p, 0)))
        p = json_array_get(p, 0);
    if (!json_is_string(p))
        return api_fail(err, 400, "prompt", NULL, "prompt must be a string");
    nb_err e;
    size_t len = json_string_length(p);
    if (nb_tok_encode(sv->s.tok, json_string_value(p), len, 1, &r->ids, &r->n_ids, &e))
        return api_fail(err, 400, "prompt", NULL, "prompt: %s", e.msg);
    if (!r->n_ids)
        return api_fail(err, 400, "prompt", NULL, "the prompt is empty and the model adds no "
                                                  "BOS to start from");
    r->jo.continues = len > 0; /* as `nibble generate` after its prompt */
    return 0;
}

int api_parse(struct serve *sv, int kind, const char *body, size_t len, struct api_req *r,
              struct api_err *err)
{
    json_error_t je;
    memset(r, 0, sizeof *r);
    r->kind = kind;
    size_t bad = nb_utf8_bad_offset((const unsigned char *)body, len);
    if (bad < len)
        return api_fail(err, 400, NULL, NULL, "the body is not valid UTF-8 (byte %zu)", bad);
    json_t *o = json_loadb(body, len, 0, &je);
    if (!o)
        return api_fail(err, 400, NULL, NULL, "the body is not valid JSON: %s (at byte %d)",
                        je.text, je.position);
    int rc = -1;
    json_t *model = json_object_get(o, "model");
    if (!json_is_object(o))
        api_fail(err, 400, NULL, NULL, "the body must be a JSON object");
    else if (model && !json_is_null(model) && !json_is_string(model))
        api_fail(err, 400, "model", NULL, "model must be a string");
    else if (!sampling(sv, o, &r->jo, err) && !limits(o, kind, &r->jo, err) &&
             !stops(o, r, err) && !streaming(o, r, err))
        rc = kind == API_CHAT ? chat_prompt(sv, o, r, err) : completion_prompt(sv, o, r, err);
    json_decref(o);
    if (!rc && r->n_ids > (size_t)sv->s.net.ctx)
        rc = api_fail(err, 400, kind == API_CHAT ? "messages" : "prompt",
                      "context_length_exceeded",
                      "the prompt is %zu tokens, more than the context of %d holds (nibble "
                      "serve -c)",
                      r->n_ids, sv->s.net.ctx);
    if (rc)
        free(r->ids), r->ids = NULL;
    return rc;
}
