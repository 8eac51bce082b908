/* nibble serve's HTTP side on libmicrohttpd: the daemon and its limits,
 * routing, the API key, CORS, request bodies, and the watchdog that
 * closes a connection whose request does not arrive in full within
 * --request-timeout (libmicrohttpd's own timeout counts idle time only,
 * so a header sent a byte a second would hold a thread for ever). */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "serve.h"

double serve_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- responses ---- */

void serve_headers(struct serve *sv, void *response)
{
    if (!sv->o.cors)
        return;
    MHD_add_response_header(response, "Access-Control-Allow-Origin", sv->o.cors);
    MHD_add_response_header(response, "Vary", "Origin");
}

int serve_queue(struct serve_req *q, int status, void *response)
{
    serve_headers(q->sv, response);
    q->status = status;
    int rc = MHD_queue_response(q->conn, (unsigned)status, response);
    MHD_destroy_response(response);
    return rc;
}

void serve_set_timeout(struct serve_req *q, int waiting)
{
    unsigned t = waiting ? 0 : (unsigned)q->sv->o.timeout;
    MHD_set_connection_option(q->conn, MHD_CONNECTION_OPTION_TIMEOUT, t);
}

static int fail(struct serve_req *q, int status, const char *code, const char *msg)
{
    struct api_err err;
    api_fail(&err, status, NULL, code, "%s", msg);
    return reply_error(q, &err);
}

/* ---- routes ---- */

static const struct {
    const char *path, *method;
    enum serve_route route;
} routes[] = {
    {"/v1/chat/completions", "POST", R_CHAT}, {"/chat/completions", "POST", R_CHAT},
    {"/v1/completions", "POST", R_COMPLETIONS}, {"/completions", "POST", R_COMPLETIONS},
    {"/v1/models", "GET", R_MODELS}, {"/models", "GET", R_MODELS},
    {"/health", "GET", R_HEALTH}, {"/metrics", "GET", R_METRICS},
};

static int route_of(const char *url, const char **method)
{
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++)
        if (!strcmp(url, routes[i].path))
            return *method = routes[i].method, (int)routes[i].route;
    return R_OTHER;
}

/* The key, compared in time that does not depend on where it differs. */
static int authorized(struct serve_req *q)
{
    const char *key = q->sv->key;
    const char *h = MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND, "Authorization");
    if (!key || q->route == R_HEALTH)
        return 1;
    if (!h || strncmp(h, "Bearer ", 7))
        return 0;
    h += 7;
    size_t n = strlen(h), k = strlen(key);
    unsigned char diff = n != k;
    for (size_t i = 0; i < k; i++)
        diff |= (unsigned char)(key[i] ^ (i < n ? h[i] : 0));
    return !diff;
}

static int preflight(struct serve_req *q)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    MHD_add_response_header(r, "Access-Control-Allow-Headers", "Authorization, Content-Type");
    MHD_add_response_header(r, "Access-Control-Max-Age", "600");
    return serve_queue(q, 204, r);
}

/* The headers are in: answer now what needs no body. */
static int begin(struct serve_req *q, const char *method)
{
    struct serve *sv = q->sv;
    const char *want = NULL;
    q->route = route_of(q->path, &want);
    if (!strcmp(method, "OPTIONS") && sv->o.cors)
        return preflight(q);
    if (q->route == R_OTHER)
        return fail(q, 404, "unknown_url", "no such route (see docs/serve.md)");
    if (strcmp(method, want))
        return fail(q, 405, NULL, "method not allowed on this route");
    if (!authorized(q))
        return fail(q, 401, "invalid_api_key", "a valid key is needed: Authorization: Bearer KEY");
    if (sv->stopping)
        return fail(q, 503, "shutting_down", "the server is shutting down");
    if (!sv->ready && q->route != R_HEALTH && q->route != R_METRICS)
        return fail(q, 503, "loading", "the model is loading");
    const char *cl = MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND, "Content-Length");
    if (cl && strtoull(cl, NULL, 10) > (unsigned long long)sv->o.max_body)
        q->too_big = 1;
    return q->too_big ? fail(q, 413, "request_too_large", "the body is larger than --max-body")
                      : MHD_YES;
}

static void take_body(struct serve_req *q, const char *data, size_t n)
{
    if (q->too_big || q->len + n > (size_t)q->sv->o.max_body) {
        q->too_big = 1;
        return;
    }
    if (q->len + n + 1 > q->cap) {
        size_t cap = q->cap ? 2 * q->cap : 4096;
        while (cap < q->len + n + 1)
            cap *= 2;
        char *p = realloc(q->body, cap);
        if (!p) {
            q->too_big = 1;
            return;
        }
        q->body = p;
        q->cap = cap;
    }
    memcpy(q->body + q->len, data, n);
    q->len += n;
}

static int generate(struct serve_req *q)
{
    struct api_req r;
    struct api_err err;
    int kind = q->route == R_CHAT ? API_CHAT : API_COMPLETION;
    if (q->too_big)
        return fail(q, 413, "request_too_large", "the body is larger than --max-body");
    if (api_parse(q->sv, kind, q->body ? q->body : "", q->len, &r, &err))
        return reply_error(q, &err);
    int rc = reply_generate(q, &r);
    free(r.ids);
    return rc;
}

static int dispatch(struct serve_req *q)
{
    struct serve *sv = q->sv;
    switch (q->route) {
    case R_HEALTH:
        return sv->stopping  ? reply_json(q, 503, "{\"status\":\"shutting down\"}")
               : sv->ready ? reply_json(q, 200, "{\"status\":\"ok\"}")
                           : reply_json(q, 503, "{\"status\":\"loading\"}");
    case R_METRICS:
        return reply_metrics(q);
    case R_MODELS:
        return reply_models(q);
    default:
        return generate(q);
    }
}

/* The watchdog's entry for this connection (NULL when it has none). */
static struct serve_watch *watch_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static void request_in(struct serve *sv, struct MHD_Connection *c)
{
    struct serve_watch *w = watch_of(c);
    pthread_mutex_lock(&sv->lock);
    if (w)
        w->done = 1;
    pthread_mutex_unlock(&sv->lock);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *size, void **con_cls)
{
    struct serve_req *q = *con_cls;
    (void)version;
    if (!q) {
        if (!(q = calloc(1, sizeof *q)))
            return MHD_NO;
        *q = (struct serve_req){.sv = cls, .conn = c, .wake = {-1, -1}, .fd = -1,
                                .t0 = serve_now()};
        snprintf(q->method, sizeof q->method, "%s", method);
        snprintf(q->path, sizeof q->path, "%s", url);
        *con_cls = q;
        pthread_mutex_lock(&q->sv->lock);
        q->sv->active++;
        pthread_mutex_unlock(&q->sv->lock);
        return (enum MHD_Result)begin(q, method);
    }
    if (*size) {
        take_body(q, data, *size);
        *size = 0;
        return MHD_YES;
    }
    if (q->status) /* answered already */
        return MHD_YES;
    request_in(q->sv, c);
    return (enum MHD_Result)dispatch(q);
}

/* ---- the end of a request, and the log ---- */

static int status_class(int status)
{
    return status < 300 ? 0 : status == 400 ? 1 : status == 401 ? 2 : status == 413 ? 3
           : status == 503 ? 4 : 5;
}

static void log_request(const struct serve_req *q, int status)
{
    char what[160] = "";
    if (q->st.n_prompt)
        snprintf(what, sizeof what, ", prompt %d tokens (%d cached), reply %d tokens",
                 q->st.n_prompt, q->st.n_cached, q->st.n_reply);
    fprintf(stderr, "nibble serve: %s %s %d %.3fs%s\n", q->method, q->path, status,
            serve_now() - q->t0, what);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode why)
{
    struct serve *sv = cls;
    struct serve_req *q = *con_cls;
    struct serve_watch *w = watch_of(c);
    if (!q)
        return;
    int status = why == MHD_REQUEST_TERMINATED_COMPLETED_OK || !q->status ? q->status : 499;
    pthread_mutex_lock(&sv->lock);
    sv->requests[q->route][status_class(status)]++;
    sv->active--;
    if (w) /* a kept-alive connection: the next request gets its time again */
        w->done = 0, w->deadline = serve_now() + sv->o.timeout + sv->o.request_timeout;
    pthread_mutex_unlock(&sv->lock);
    if (!sv->o.quiet)
        log_request(q, status ? status : 499);
    reply_done(q);
    free(q->body);
    free(q);
    *con_cls = NULL;
}

/* ---- the watchdog ---- */

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct serve *sv = cls;
    pthread_mutex_lock(&sv->lock);
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        for (int i = 0; ci && i < sv->n_watch; i++)
            if (!sv->watch[i].used) {
                sv->watch[i] = (struct serve_watch){
                    .used = 1, .fd = ci->connect_fd,
                    .deadline = serve_now() + sv->o.request_timeout};
                *socket_context = &sv->watch[i];
                break;
            }
    } else if (*socket_context) { /* closed: before its socket is */
        ((struct serve_watch *)*socket_context)->used = 0;
        *socket_context = NULL;
    }
    pthread_mutex_unlock(&sv->lock);
}

/* Shuts down the sockets of requests past their deadline: libmicrohttpd
 * then reads the end of the stream and closes the connection. */
static void *watchdog(void *arg)
{
    struct serve *sv = arg;
    struct timespec tick = {0, 200 * 1000 * 1000};
    pthread_mutex_lock(&sv->lock);
    while (sv->watchdog_on) {
        double t = serve_now();
        for (int i = 0; i < sv->n_watch; i++) {
            struct serve_watch *w = &sv->watch[i];
            if (w->used && !w->done && !w->shut && t > w->deadline) {
                shutdown(w->fd, SHUT_RDWR);
                w->shut = 1;
            }
        }
        pthread_mutex_unlock(&sv->lock);
        nanosleep(&tick, NULL);
        pthread_mutex_lock(&sv->lock);
    }
    pthread_mutex_unlock(&sv->lock);
    return NULL;
}

/* ---- the daemon ---- */

static int loopback(const struct sockaddr *a)
{
    if (a->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr) >> 24) == 127;
    if (a->sa_family == AF_INET6) {
        const struct in6_addr *x = &((const struct sockaddr_in6 *)a)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(x) ||
               (IN6_IS_ADDR_V4MAPPED(x) && x->s6_addr[12] == 127);
    }
    return 0;
}

static struct MHD_Daemon *start(struct serve *sv, const struct addrinfo *a)
{
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_POLL | MHD_USE_ITC;
    if (a->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    return MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, sv, MHD_OPTION_SOCK_ADDR, a->ai_addr,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)sv->o.max_conn, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)sv->o.timeout, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)64 * 1024,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, sv, MHD_OPTION_NOTIFY_CONNECTION,
        on_connection, sv, MHD_OPTION_THREAD_STACK_SIZE, (size_t)1 << 20, MHD_OPTION_END);
}

int serve_http_start(struct serve *sv, nb_err *e)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV}, *res;
    char port[16];
    snprintf(port, sizeof port, "%ld", sv->o.port);
    int rc = getaddrinfo(sv->o.host, port, &hints, &res);
    if (rc)
        return nb_fail(e, "--host %s: %s", sv->o.host, gai_strerror(rc));
    if (!loopback(res->ai_addr) && !sv->key && !sv->o.no_auth) {
        freeaddrinfo(res);
        return nb_fail(e, "--host %s is not a loopback address: give --api-key-file FILE, or "
                          "--no-auth to serve the network without a key",
                       sv->o.host);
    }
    sv->n_watch = (int)sv->o.max_conn + 16;
    if (!(sv->watch = calloc((size_t)sv->n_watch, sizeof *sv->watch)))
        return freeaddrinfo(res), nb_fail(e, "out of memory");
    sv->d = start(sv, res);
    freeaddrinfo(res);
    if (!sv->d)
        return nb_fail(e, "cannot listen on %s port %ld (in use, or not an address of this "
                          "machine?)",
                       sv->o.host, sv->o.port);
    sv->watchdog_on = 1;
    if (pthread_create(&sv->watchdog, NULL, watchdog, sv)) {
        sv->watchdog_on = 0;
        serve_http_stop(sv);
        return nb_fail(e, "cannot start the watchdog thread");
    }
    return 0;
}

int serve_http_port(struct serve *sv)
{
    const union MHD_DaemonInfo *i = MHD_get_daemon_info(sv->d, MHD_DAEMON_INFO_BIND_PORT);
    return i ? i->port : (int)sv->o.port;
}

void serve_http_quiesce(struct serve *sv)
{
    sv->listen_fd = MHD_quiesce_daemon(sv->d);
}

void serve_http_stop(struct serve *sv)
{
    if (sv->watchdog_on) {
        pthread_mutex_lock(&sv->lock);
        sv->watchdog_on = 0;
        pthread_mutex_unlock(&sv->lock);
        pthread_join(sv->watchdog, NULL);
    }
    if (sv->d)
        MHD_stop_daemon(sv->d);
    if (sv->listen_fd >= 0)
        close(sv->listen_fd);
    sv->d = NULL;
    sv->listen_fd = -1;
    free(sv->watch);
    sv->watch = NULL;
}
