/* nibble serve: an OpenAI-compatible HTTP server (docs/serve.md).
 *
 * libmicrohttpd runs the connections, a thread each (bounded by
 * --max-connections): a request is received, parsed with jansson
 * (serve_api.c), rendered with the model's chat template and queued to
 * the engine's slots (runtime/slots.h), whose one thread owns the model.
 * The connection's thread then waits for the job's text, on a pipe the
 * engine writes a byte to, and on its client's socket, so a client that
 * goes away cancels its job at once (serve_reply.c). Nothing on the
 * model's thread touches HTTP. */
#ifndef NIBBLE_SERVE_H
#define NIBBLE_SERVE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "../runtime/slots.h"
#include "cli.h"

struct MHD_Daemon;
struct MHD_Connection;

struct serve_opts {
    const char *host, *model, *alias, *template_name, *key_file, *cors;
    long port, ctx, parallel, queue, batch;
    long max_body, timeout, request_timeout, max_conn;
    nb_sampling s;
    nb_session_opts run;
    int no_auth, quiet;
};

/* What a connection's request is: the routes, for dispatch and /metrics. */
enum serve_route {
    R_CHAT, R_COMPLETIONS, R_MODELS, R_HEALTH, R_METRICS, R_OTHER, R_COUNT
};

/* A connection the watchdog times (serve_http.c). */
struct serve_watch {
    int used, fd, done, shut;
    double deadline;
};

struct serve {
    struct serve_opts o;
    char *key;  /* the API key, NULL without one */
    char name[128]; /* the model's id in /v1/models */
    struct MHD_Daemon *d;
    nb_session s;
    const nb_template *t;
    nb_slots *slots;
    atomic_int ready, stopping; /* set by the main thread, read by the connections */
    long long created;
    /* the watchdog: requests that take longer than --request-timeout to arrive */
    pthread_mutex_t lock; /* the watch table and the counters */
    struct serve_watch *watch;
    int n_watch;
    pthread_t watchdog;
    int watchdog_on;
    int listen_fd; /* after serve_http_quiesce: closed by serve_http_stop */
    int active;    /* requests in progress */
    unsigned long long requests[R_COUNT][6]; /* by route and status class, see serve_count */
    uint64_t seed_state;
};

/* One request on a connection, from its headers to its response. */
struct serve_req {
    struct serve *sv;
    struct MHD_Connection *conn;
    enum serve_route route;
    char method[8], path[96];
    char *body;
    size_t len, cap;
    int too_big;
    int status; /* what was sent, for the log and /metrics */
    double t0;
    /* a generation */
    int kind, stream, include_usage;
    nb_job *job;
    int wake[2]; /* the engine writes a byte to wake[1] when the job has news */
    int fd;      /* the client's socket, watched for a hang-up */
    char id[40];
    long long created;
    /* a stream's bytes not handed to libmicrohttpd yet */
    char *out;
    size_t out_len, out_off, out_cap;
    int role_sent, ended;
    nb_job_status st;
};

/* An error as OpenAI words it: {"error": {"message", "type", "param", "code"}}. */
struct api_err {
    int status;
    const char *type, *param, *code;
    char param_buf[64];
    char msg[400];
};

enum { API_CHAT, API_COMPLETION };

/* A parsed generation request: the prompt's ids and the job's options. */
struct api_req {
    int kind, stream, include_usage;
    int32_t *ids;
    size_t n_ids;
    nb_job_opts jo;
    char stop[NB_JOB_STOPS][NB_STOP_MAX];
};

/* serve_api.c: the request's JSON into r (its ids malloc'd); 0, or -1
 * with err filled. */
int api_parse(struct serve *sv, int kind, const char *body, size_t len, struct api_req *r,
              struct api_err *err);
uint64_t serve_random(struct serve *sv); /* 63 bits: seeds, ids */
int api_fail(struct api_err *err, int status, const char *param, const char *code,
             const char *fmt, ...) NB_PRINTF(5, 6);

/* serve_reply.c: runs a parsed request and queues its response. */
int reply_generate(struct serve_req *q, struct api_req *r);
int reply_error(struct serve_req *q, const struct api_err *err);
int reply_json(struct serve_req *q, int status, const char *json);
int reply_metrics(struct serve_req *q);
int reply_models(struct serve_req *q);
void reply_done(struct serve_req *q); /* the request is over: its job released */

/* serve_http.c */
int serve_http_start(struct serve *sv, nb_err *e);
void serve_http_stop(struct serve *sv);
int serve_http_port(struct serve *sv);    /* the port bound (for --port 0) */
void serve_http_quiesce(struct serve *sv); /* stop accepting connections */
void serve_headers(struct serve *sv, void *response); /* CORS, on every response */
int serve_queue(struct serve_req *q, int status, void *response); /* queues and counts */
void serve_set_timeout(struct serve_req *q, int waiting); /* the idle timeout off while waiting */
double serve_now(void);

#endif
