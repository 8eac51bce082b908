/* nibble serve: a generation from the queue to the client, whole or as
 * server-sent events, and the small JSON replies. A connection's thread
 * waits here for its job's text: on the pipe the engine writes a byte to,
 * and on the client's socket, so a client that hangs up cancels its job
 * at once (the slot is free at the next step). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "serve.h"

/* ---- small replies ---- */

int reply_json(struct serve_req *q, int status, const char *json)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(json), (void *)json, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "application/json");
    return serve_queue(q, status, r);
}

/* Sends json (taking it) or, when building it failed, a 500. */
static int send_json(struct serve_req *q, int status, json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    int rc = s ? reply_json(q, status, s)
               : reply_json(q, 500, "{\"error\":{\"message\":\"out of memory\",\"type\":"
                                    "\"server_error\",\"param\":null,\"code\":null}}");
    free(s);
    return rc;
}

static json_t *error_object(const struct api_err *err)
{
    return json_pack("{s:{s:s,s:s,s:s?,s:s?}}", "error", "message", err->msg, "type", err->type,
                     "param", err->param, "code", err->code);
}

int reply_error(struct serve_req *q, const struct api_err *err)
{
    return send_json(q, err->status, error_object(err));
}

int reply_models(struct serve_req *q)
{
    const struct serve *sv = q->sv;
    return send_json(q, 200, json_pack("{s:s,s:[{s:s,s:s,s:I,s:s}]}", "object", "list", "data",
                                       "id", sv->name, "object", "model", "created",
                                       (json_int_t)sv->created, "owned_by", "nibble"));
}

/* ---- metrics ---- */

static int put(char **buf, size_t *len, size_t *cap, const char *fmt, ...) NB_PRINTF(4, 5);

static int put(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(*buf ? *buf + *len : NULL, *buf ? *cap - *len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return -1;
        if (*buf && *len + (size_t)n < *cap)
            return *len += (size_t)n, 0;
        size_t c = *cap ? 2 * *cap : 4096;
        while (c <= *len + (size_t)n)
            c *= 2;
        char *p = realloc(*buf, c);
        if (!p)
            return -1;
        *buf = p;
        *cap = c;
    }
}

int reply_metrics(struct serve_req *q)
{
    static const char *routes[R_COUNT] = {"chat", "completions", "models", "health", "metrics",
                                          "other"};
    static const char *codes[6] = {"2xx", "400", "401", "413", "503", "other"};
    struct serve *sv = q->sv;
    nb_slots_stats st = {0};
    if (sv->slots)
        nb_slots_get_stats(sv->slots, &st);
    char *b = NULL;
    size_t len = 0, cap = 0;
    int bad = put(&b, &len, &cap, "# TYPE nibble_requests_total counter\n");
    pthread_mutex_lock(&sv->lock);
    for (int r = 0; r < R_COUNT; r++)
        for (int c = 0; c < 6; c++)
            if (sv->requests[r][c])
                bad |= put(&b, &len, &cap, "nibble_requests_total{route=\"%s\",code=\"%s\"} %llu\n",
                           routes[r], codes[c], sv->requests[r][c]);
    pthread_mutex_unlock(&sv->lock);
    bad |= put(&b, &len, &cap,
               "# TYPE nibble_jobs_total counter\nnibble_jobs_total %llu\n"
               "# TYPE nibble_prompt_tokens_total counter\nnibble_prompt_tokens_total %llu\n"
               "# TYPE nibble_prefill_tokens_total counter\nnibble_prefill_tokens_total %llu\n"
               "# TYPE nibble_generated_tokens_total counter\nnibble_generated_tokens_total %llu\n"
               "# TYPE nibble_steps_total counter\nnibble_steps_total %llu\n"
               "# TYPE nibble_decode_tokens_per_second gauge\n"
               "nibble_decode_tokens_per_second %.2f\n"
               "# TYPE nibble_queue_length gauge\nnibble_queue_length %d\n"
               "# TYPE nibble_slots_busy gauge\nnibble_slots_busy %d\n"
               "# TYPE nibble_slots gauge\nnibble_slots %d\n",
               st.jobs, st.prompt_tokens, st.prefilled, st.generated, st.steps, st.decode_tps,
               st.queued, st.busy, st.n_slots);
    if (bad)
        return free(b), MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(len, b, MHD_RESPMEM_MUST_FREE);
    if (!r)
        return free(b), MHD_NO;
    MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4");
    return serve_queue(q, 200, r);
}

/* ---- waiting for the engine ---- */

static void wake(void *ctx)
{
    struct serve_req *q = ctx;
    char b = 1;
    ssize_t n = write(q->wake[1], &b, 1); /* a full pipe already says "news" */
    (void)n;
}

static int open_pipe(struct serve_req *q)
{
    if (pipe(q->wake))
        return q->wake[0] = q->wake[1] = -1, -1;
    for (int i = 0; i < 2; i++) {
        fcntl(q->wake[i], F_SETFL, O_NONBLOCK);
        fcntl(q->wake[i], F_SETFD, FD_CLOEXEC);
    }
    return 0;
}

/* Waits (half a second at most) for news of the job; -1 when the client
 * hung up. The idle timeout is off meanwhile: the client waits on the
 * model, not the other way round. */
static int wait_news(struct serve_req *q)
{
    struct pollfd p[2] = {{q->wake[0], POLLIN, 0}, {q->fd, POLLIN, 0}};
    serve_set_timeout(q, 1);
    int rc = poll(p, q->fd >= 0 ? 2 : 1, 500);
    serve_set_timeout(q, 0);
    char buf[64];
    if (rc > 0 && p[0].revents)
        while (read(q->wake[0], buf, sizeof buf) > 0)
            ;
    if (rc > 0 && q->fd >= 0 && p[1].revents) {
        ssize_t k = recv(q->fd, buf, 1, MSG_PEEK | MSG_DONTWAIT);
        if (k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            return -1;
        if (k > 0)
            q->fd = -1; /* the client sent more (a pipelined request): stop watching */
    }
    return 0;
}

/* ---- the response objects ---- */

static const char *finish_name(int finish)
{
    return finish == NB_FINISH_LENGTH ? "length" : "stop";
}

static json_t *usage(const nb_job_status *st)
{
    return json_pack("{s:i,s:i,s:i,s:{s:i}}", "prompt_tokens", st->n_prompt,
                     "completion_tokens", st->n_reply, "total_tokens", st->n_prompt + st->n_reply,
                     "prompt_tokens_details", "cached_tokens", st->n_cached);
}

static json_t *text_json(const char *text, size_t len)
{
    /* NULL for invalid UTF-8, which the detokenizer never gives */
    return json_stringn(text ? text : "", len);
}

static json_t *whole(const struct serve_req *q, const char *text, size_t len)
{
    const struct serve *sv = q->sv;
    const char *fin = finish_name(q->st.finish);
    if (q->kind == API_CHAT)
        return json_pack("{s:s,s:s,s:I,s:s,s:[{s:i,s:{s:s,s:o},s:n,s:s}],s:o}", "id", q->id,
                         "object", "chat.completion", "created", (json_int_t)q->created, "model",
                         sv->name, "choices", "index", 0, "message", "role", "assistant",
                         "content", text_json(text, len), "logprobs", "finish_reason", fin,
                         "usage", usage(&q->st));
    return json_pack("{s:s,s:s,s:I,s:s,s:[{s:i,s:o,s:n,s:s}],s:o}", "id", q->id, "object",
                     "text_completion", "created", (json_int_t)q->created, "model", sv->name,
                     "choices", "index", 0, "text", text_json(text, len), "logprobs",
                     "finish_reason", fin, "usage", usage(&q->st));
}

/* The end of a job that did not finish normally, as an error. */
static int job_error(const struct serve_req *q, struct api_err *err)
{
    if (q->st.finish == NB_FINISH_SHUTDOWN)
        return api_fail(err, 503, NULL, "shutting_down", "the server is shutting down");
    if (q->st.finish == NB_FINISH_ERROR)
        return api_fail(err, 500, NULL, NULL, "%s", q->st.err.msg);
    return 0;
}

static int run_whole(struct serve_req *q)
{
    char *text = NULL, buf[4096];
    size_t len = 0, cap = 0;
    for (;;) {
        size_t n = nb_job_read(q->job, buf, sizeof buf, &q->st);
        if (n && len + n > cap) {
            char *p = realloc(text, cap = 2 * (len + n));
            if (!p)
                return free(text), MHD_NO;
            text = p;
        }
        if (n)
            memcpy(text + len, buf, n);
        len += n;
        if (!n && q->st.finish)
            break;
        if (!n && wait_news(q))
            return free(text), MHD_NO; /* hung up: the job goes with the request */
    }
    struct api_err err;
    int rc = job_error(q, &err) ? reply_error(q, &err) : send_json(q, 200, whole(q, text, len));
    free(text);
    return rc;
}

/* ---- server-sent events ---- */

/* Appends "data: s" and the blank line that ends an event. */
static int raw_event(struct serve_req *q, const char *s)
{
    size_t n = strlen(s), need = q->out_len + n + 8;
    if (need > q->out_cap) {
        char *p = realloc(q->out, need * 2);
        if (!p)
            return -1;
        q->out = p;
        q->out_cap = need * 2;
    }
    q->out_len += (size_t)sprintf(q->out + q->out_len, "data: %s\n\n", s);
    return 0;
}

static int event(struct serve_req *q, json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    int rc = s ? raw_event(q, s) : -1;
    free(s);
    return rc;
}

/* A chunk: text (or the assistant's role first), or the finish reason. */
static json_t *chunk(const struct serve_req *q, const char *text, size_t len, const char *fin)
{
    const struct serve *sv = q->sv;
    json_t *c;
    if (q->kind == API_CHAT) {
        json_t *delta = fin ? json_object()
                        : text ? json_pack("{s:o}", "content", text_json(text, len))
                               : json_pack("{s:s,s:s}", "role", "assistant", "content", "");
        c = json_pack("{s:s,s:s,s:I,s:s,s:[{s:i,s:o,s:n,s:s?}]}", "id", q->id, "object",
                      "chat.completion.chunk", "created", (json_int_t)q->created, "model",
                      sv->name, "choices", "index", 0, "delta", delta, "logprobs",
                      "finish_reason", fin);
    } else {
        c = json_pack("{s:s,s:s,s:I,s:s,s:[{s:i,s:o,s:n,s:s?}]}", "id", q->id, "object",
                      "text_completion", "created", (json_int_t)q->created, "model", sv->name,
                      "choices", "index", 0, "text", text_json(text, len), "logprobs",
                      "finish_reason", fin);
    }
    if (c && q->include_usage)
        json_object_set_new(c, "usage", json_null());
    return c;
}

static int final_events(struct serve_req *q)
{
    struct api_err err;
    int rc = 0;
    if (job_error(q, &err)) {
        rc = event(q, error_object(&err));
    } else {
        rc = event(q, chunk(q, NULL, 0, finish_name(q->st.finish)));
        if (!rc && q->include_usage) {
            json_t *u = chunk(q, NULL, 0, "stop");
            json_object_set_new(u, "choices", json_array());
            json_object_set_new(u, "usage", usage(&q->st));
            rc = event(q, u);
        }
    }
    if (!rc)
        rc = raw_event(q, "[DONE]");
    q->ended = 1;
    return rc;
}

/* New events from the job into q->out; -1 when out of memory. */
static int fill(struct serve_req *q)
{
    char buf[4096];
    if (q->kind == API_CHAT && !q->role_sent) {
        q->role_sent = 1;
        return event(q, chunk(q, NULL, 0, NULL));
    }
    size_t n = nb_job_read(q->job, buf, sizeof buf, &q->st);
    if (n)
        return event(q, chunk(q, buf, n, NULL));
    return q->st.finish ? final_events(q) : 0;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct serve_req *q = cls;
    (void)pos;
    while (q->out_off == q->out_len) {
        if (q->ended)
            return MHD_CONTENT_READER_END_OF_STREAM;
        q->out_off = q->out_len = 0;
        if (fill(q))
            return MHD_CONTENT_READER_END_WITH_ERROR;
        if (q->out_len == 0 && wait_news(q))
            return MHD_CONTENT_READER_END_WITH_ERROR; /* hung up */
    }
    size_t n = q->out_len - q->out_off < max ? q->out_len - q->out_off : max;
    memcpy(buf, q->out + q->out_off, n);
    q->out_off += n;
    return (ssize_t)n;
}

static int start_stream(struct serve_req *q)
{
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, q, NULL);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    return serve_queue(q, 200, r);
}

/* ---- a generation ---- */

int reply_generate(struct serve_req *q, struct api_req *r)
{
    struct serve *sv = q->sv;
    struct api_err err;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(q->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    q->fd = ci ? ci->connect_fd : -1;
    q->kind = r->kind;
    q->stream = r->stream;
    q->include_usage = r->include_usage;
    q->created = (long long)time(NULL);
    snprintf(q->id, sizeof q->id, "%s%016llx", r->kind == API_CHAT ? "chatcmpl-" : "cmpl-",
             (unsigned long long)serve_random(sv));
    if (open_pipe(q))
        return api_fail(&err, 500, NULL, NULL, "cannot make a pipe"), reply_error(q, &err);
    int why;
    nb_err e;
    q->job = nb_slots_submit(sv->slots, r->ids, (int)r->n_ids, &r->jo, wake, q, &why, &e);
    if (!q->job) {
        api_fail(&err, why == NB_SLOTS_BUSY ? 503 : 400, NULL,
                 why == NB_SLOTS_BUSY ? "server_busy" : NULL, "%s", e.msg);
        return reply_error(q, &err);
    }
    return q->stream ? start_stream(q) : run_whole(q);
}

void reply_done(struct serve_req *q)
{
    if (q->job)
        nb_job_release(q->job);
    q->job = NULL;
    for (int i = 0; i < 2; i++)
        if (q->wake[i] >= 0)
            close(q->wake[i]);
    q->wake[0] = q->wake[1] = -1;
    free(q->out);
    q->out = NULL;
}
