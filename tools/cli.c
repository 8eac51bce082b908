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

int nb_stop_on_interrupt(void *unused)
{
    (void)unused;
    return interrupted;
}
