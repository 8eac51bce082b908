/* nibble serve: the flags, the start (listening first, so /health says
 * 503 while the model loads), and the stop on SIGTERM or SIGINT: no new
 * connections, every job ended (a stream gets a final event), the
 * connections drained, exit 0. serve.h says how the pieces fit. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "serve.h"

static const char help[] =
    "usage: nibble serve -m MODEL.nib [options]\n"
    "\n"
    "Serves the model over HTTP with OpenAI's API (docs/serve.md): POST /v1/chat/completions,\n"
    "POST /v1/completions, GET /v1/models, GET /health, GET /metrics.\n"
    "  -m, --model FILE       the .nib model\n"
    "  --host ADDR            address to listen on (default 127.0.0.1: this machine only)\n"
    "  --port N               port (default 8080; 0: a free one, printed at start)\n"
    "  -c, --ctx-size N       context of each slot in tokens (default: the model's maximum,\n"
    "                         at most 4096); longer prompts get 400\n"
    "  --parallel N           slots: requests generated at once, batched (default 1)\n"
    "  --queue N              requests that may wait for a slot (default 16); more get 503\n"
    "  -b, --batch N          prompt tokens a step runs beside the decoding slots\n"
    "                         (default 128): bounds what a long prompt costs the others\n"
    "  --template NAME        chat template (default: the model's; nibble chat --template list)\n"
    "  --alias NAME           the model's id in /v1/models (default: the file's name)\n"
    "  --api-key-file FILE    every route but /health needs Authorization: Bearer KEY, KEY\n"
    "                         being the file's first line\n"
    "  --no-auth              listen on a non-loopback --host without a key\n"
    "  --cors ORIGIN          let web pages from ORIGIN (or *) call the API (default: off)\n"
    "  --max-body BYTES       largest request body (default 1048576); larger get 413\n"
    "  --timeout S            close a connection idle for S seconds (default 30)\n"
    "  --request-timeout S    a request must arrive in full within S seconds (default 10)\n"
    "  --max-connections N    connections at once (default 64); more are closed at once\n"
    "  -q, --quiet            no log line per request\n"
    "\n"
    "sampling, for requests that do not say (their fields win):\n";

static const nb_sampler_opts defaults = {.temp = 0.8f, .top_k = 40, .top_p = 0.95f,
                                         .min_p = 0.05f, .repeat_penalty = 1.0f,
                                         .repeat_last_n = 64};

static int parse_number(struct serve_opts *o, const char *a, const char *v)
{
    static const struct {
        const char *flag, *alias;
        size_t at;
        long min, max;
    } nums[] = {
        {"--port", NULL, offsetof(struct serve_opts, port), 0, 65535},
        {"-c", "--ctx-size", offsetof(struct serve_opts, ctx), 1, 1 << 22},
        {"--parallel", "-np", offsetof(struct serve_opts, parallel), 1, 256},
        {"--queue", NULL, offsetof(struct serve_opts, queue), 0, 1 << 20},
        {"-b", "--batch", offsetof(struct serve_opts, batch), 1, 1 << 16},
        {"--max-body", NULL, offsetof(struct serve_opts, max_body), 1024, 1L << 30},
        {"--timeout", NULL, offsetof(struct serve_opts, timeout), 1, 86400},
        {"--request-timeout", NULL, offsetof(struct serve_opts, request_timeout), 1, 86400},
        {"--max-connections", NULL, offsetof(struct serve_opts, max_conn), 1, 4096},
    };
    for (size_t i = 0; i < sizeof nums / sizeof *nums; i++)
        if (!strcmp(a, nums[i].flag) || (nums[i].alias && !strcmp(a, nums[i].alias)))
            return nb_parse_int(a, v, nums[i].min, nums[i].max,
                                (long *)((char *)o + nums[i].at));
    return 1;
}

static int parse_value(struct serve_opts *o, const char *a, const char *v)
{
    int r = nb_sampling_flag(&o->s, a, v);
    if (r <= 0 || (r = nb_run_flag(&o->run, a, v)) <= 0 || (r = parse_number(o, a, v)) <= 0)
        return r;
    const char **s = !strcmp(a, "-m") || !strcmp(a, "--model") ? &o->model
                     : !strcmp(a, "--host")                     ? &o->host
                     : !strcmp(a, "--template")                 ? &o->template_name
                     : !strcmp(a, "--alias")                    ? &o->alias
                     : !strcmp(a, "--api-key-file")             ? &o->key_file
                     : !strcmp(a, "--cors")                     ? &o->cors
                                                                : NULL;
    if (!s)
        return nb_error("serve: unknown option '%s' (see --help)", a), -1;
    *s = v;
    return 0;
}

/* 0 to go on, 1 when --help was printed, -1 on a bad argument. */
static int parse(struct serve_opts *o, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (nb_is_help(a))
            return fputs(help, stdout), nb_sampling_help(stdout, &defaults), putchar('\n'),
                   nb_run_help(stdout), 1;
        if (nb_run_switch(&o->run, a))
            continue;
        if (!strcmp(a, "--no-auth"))
            o->no_auth = 1;
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet"))
            o->quiet = 1;
        else if (!(v = nb_arg(argc, argv, &i)) || parse_value(o, a, v))
            return -1;
    }
    if (!o->model)
        return nb_error("serve needs -m MODEL (see nibble serve --help)"), -1;
    if (o->template_name && !nb_template_find(o->template_name))
        return nb_error("unknown template '%s' (see nibble chat --template list)",
                        o->template_name),
               -1;
    if (o->run.reference && o->parallel > 1)
        return nb_error("--reference runs one sequence: --parallel 1 only"), -1;
    o->run.run.n_seq = (int)o->parallel;
    return 0;
}

/* The key: the file's first line, without surrounding white space. */
static int read_key(struct serve *sv)
{
    char line[1024];
    FILE *f = fopen(sv->o.key_file, "r");
    if (!f)
        return nb_error("--api-key-file %s: cannot read it", sv->o.key_file);
    char *s = fgets(line, sizeof line, f) ? line : "";
    fclose(f);
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strcspn(s, "\r\n");
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (!n)
        return nb_error("--api-key-file %s: its first line is empty", sv->o.key_file);
    s[n] = 0;
    return !(sv->key = strdup(s)) ? nb_error("out of memory") : 0;
}

/* The model's name in /v1/models: --alias, else the file's. */
static void model_name(struct serve *sv)
{
    const char *slash = strrchr(sv->o.model, '/');
    snprintf(sv->name, sizeof sv->name, "%s", sv->o.alias ? sv->o.alias
                                               : slash    ? slash + 1
                                                          : sv->o.model);
}

/* Opens the model once before listening (a mapping and its structural
 * checks: milliseconds), so that a missing or damaged file is one line and
 * no listening socket; the slow part, the session, comes after. Without -c:
 * the model's maximum, at most 4096 (each slot has its own). */
static int check_model(struct serve *sv)
{
    nb_model m;
    nb_err e;
    if (nb_model_open(&m, sv->o.model, &e))
        return nb_error("%s", e.msg);
    long max = (long)m.meta.max_ctx;
    nb_model_close(&m);
    if (sv->o.ctx > max)
        return nb_error("-c %ld is more than %s's maximum context, %ld", sv->o.ctx,
                        sv->o.model, max);
    if (!sv->o.ctx)
        sv->o.ctx = max < 4096 ? max : 4096;
    return 0;
}

static int load(struct serve *sv)
{
    nb_err e = {{0}};
    if (nb_session_open_with(&sv->s, sv->o.model, (int)sv->o.ctx, &sv->o.run, &e))
        return nb_error("%s", e.msg);
    const char *want = sv->o.template_name ? sv->o.template_name : sv->s.model.meta.chat_template;
    if (!(sv->t = nb_template_find(want))) {
        sv->t = nb_template_find("plain");
        fprintf(stderr, "nibble serve: note: the model has no chat template nibble knows: chat "
                        "requests are rendered as plain completion (--template)\n");
    }
    nb_slots_opts so = {.n_slots = (int)sv->o.parallel, .queue = (int)sv->o.queue,
                        .step_tokens = (int)sv->o.batch};
    if (!(sv->slots = nb_slots_start(&sv->s, &so, &e)))
        return nb_error("%s", e.msg);
    return 0;
}

/* Stops: no new connections, every job ended, the requests given a few
 * seconds to send their last events, then the connections closed. */
static void stop(struct serve *sv)
{
    sv->stopping = 1;
    if (sv->d)
        serve_http_quiesce(sv);
    if (sv->slots)
        nb_slots_shutdown(sv->slots);
    struct timespec tick = {0, 20 * 1000 * 1000};
    for (int i = 0; i < 150; i++) {
        pthread_mutex_lock(&sv->lock);
        int active = sv->active;
        pthread_mutex_unlock(&sv->lock);
        if (!active)
            break;
        nanosleep(&tick, NULL);
    }
    serve_http_stop(sv);
    nb_slots_free(sv->slots);
    if (sv->s.tok)
        nb_session_close(&sv->s);
    free(sv->key);
    pthread_mutex_destroy(&sv->lock);
}

static int serve_until_signal(struct serve *sv, const sigset_t *signals)
{
    nb_err e = {{0}};
    if (serve_http_start(sv, &e))
        return nb_error("%s", e.msg);
    fprintf(stderr, "nibble serve: listening on http://%s:%d\n", sv->o.host,
            serve_http_port(sv));
    int rc = load(sv), sig = 0;
    if (!rc) {
        sv->ready = 1;
        fprintf(stderr, "nibble serve: ready: %s, template %s, %ld slot%s of %d tokens, %s "
                        "kernels, %d threads\n",
                sv->name, nb_template_name(sv->t), sv->o.parallel, sv->o.parallel > 1 ? "s" : "",
                sv->s.net.ctx, nb_net_kernels(&sv->s.net), nb_net_threads(&sv->s.net));
        sigwait(signals, &sig);
        fprintf(stderr, "nibble serve: %s: stopping\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    }
    return rc;
}

int cmd_serve(int argc, char **argv)
{
    struct serve sv;
    memset(&sv, 0, sizeof sv);
    sv.o = (struct serve_opts){.host = "127.0.0.1", .port = 8080, .parallel = 1, .queue = 16,
                               .batch = 128, .max_body = 1 << 20, .timeout = 30,
                               .request_timeout = 10, .max_conn = 64, .s = {.o = defaults}};
    int rc = parse(&sv.o, argc, argv);
    if (rc)
        return rc < 0;
    if ((sv.o.key_file && read_key(&sv)) || check_model(&sv)) {
        free(sv.key);
        return 1;
    }
    /* Every thread started from here on (libmicrohttpd's, the engine's,
     * the model's pool) inherits the mask: the signals come to sigwait. */
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);
    pthread_mutex_init(&sv.lock, NULL);
    sv.listen_fd = -1;
    sv.created = (long long)time(NULL);
    sv.seed_state = (uint64_t)time(NULL) << 20 ^ (uint64_t)getpid();
    model_name(&sv);
    rc = serve_until_signal(&sv, &signals);
    stop(&sv);
    return rc ? 1 : 0;
}
