#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Messages name things read from files (tensor and model names, paths,
 * pieces): written escaped, they stay one line and cannot drive the
 * terminal. */
int nb_error(const char *fmt, ...)
{
    char msg[1024], safe[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "nibble: %s\n", nb_utf8_escape(safe, sizeof safe, msg));
    return 1;
}

const char *nb_arg(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        nb_error("%s needs a value (see --help)", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

int nb_parse_int(const char *flag, const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return nb_error("%s expects a whole number from %ld to %ld, got '%s'", flag, min, max, s),
               -1;
    *out = v;
    return 0;
}

int nb_parse_float(const char *flag, const char *s, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < min || v > max)
        return nb_error("%s expects a number from %g to %g, got '%s'", flag, min, max, s), -1;
    *out = v;
    return 0;
}

int nb_is_help(const char *arg)
{
    return !strcmp(arg, "-h") || !strcmp(arg, "--help");
}

int nb_session_open(nb_session *s, const char *path, int ctx, nb_err *e)
{
    return nb_session_open_with(s, path, ctx, NULL, e);
}

int nb_session_open_with(nb_session *s, const char *path, int ctx, const nb_session_opts *o,
                         nb_err *e)
{
    memset(s, 0, sizeof *s);
    if (nb_model_open(&s->model, path, e))
        return -1;
    s->tok = nb_tok_load_bytes(s->model.vocab, s->model.vocab_size, e);
    int rc = -1;
    if (s->tok && o && o->reference)
        rc = nb_net_init(&s->llama, &s->model, ctx, e);
    else if (s->tok)
        rc = nb_net_init_fast(&s->llama, &s->model, ctx, o ? &o->run : NULL, e);
    if (rc) { /* the tokenizer's or the architecture's words: say which file */
        char why[sizeof e->msg];
        snprintf(why, sizeof why, "%s", e ? e->msg : "");
        nb_session_close(s);
        return nb_fail(e, "%s: %s", path, why);
    }
    /* Models may pad their vocabulary past the tokenizer's pieces. */
    if ((uint32_t)nb_tok_vocab_size(s->tok) > s->model.meta.vocab_size) {
        nb_session_close(s);
        return nb_fail(e, "%s: the embedded tokenizer has more pieces than the model's vocabulary",
                       path);
    }
    return 0;
}

int nb_session_is_end(const nb_session *s, int id)
{
    const struct nb_meta *m = &s->model.meta;
    if (!m->n_end_ids) /* a 1.0 file */
        return id == nb_tok_eos(s->tok);
    for (uint32_t i = 0; i < m->n_end_ids; i++)
        if (m->end_ids[i] == id)
            return 1;
    return 0;
}

void nb_session_close(nb_session *s)
{
    nb_net_free(&s->llama);
    nb_tok_free(s->tok);
    nb_model_close(&s->model);
    memset(s, 0, sizeof *s);
}

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
    (void)sig;
    interrupted = 1;
}

void nb_catch_interrupt(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_interrupt;
    sigaction(SIGINT, &sa, NULL);
}

int nb_interrupted(void)
{
    return interrupted;
}

void nb_clear_interrupt(void)
{
    interrupted = 0;
}
