#define _POSIX_C_SOURCE 200809L
#include "progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

double nb_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void nb_progress_start(nb_progress *p, const char *what, uint64_t total, int quiet)
{
    p->what = what;
    p->total = total ? total : 1;
    p->start = p->last = nb_now();
    p->quiet = quiet;
    p->tty = isatty(2);
}

static void draw(const nb_progress *p, uint64_t done, double now)
{
    double frac = (double)done / (double)p->total, spent = now - p->start;
    double eta = frac > 0 ? spent / frac - spent : 0;
    fprintf(stderr, "%s%s: %5.1f%% (%llu/%llu) %.1fs elapsed, ETA %.1fs%s", p->tty ? "\r" : "",
            p->what, 100 * frac, (unsigned long long)done, (unsigned long long)p->total, spent,
            eta, p->tty ? "\033[K" : "\n");
}

void nb_progress_update(nb_progress *p, uint64_t done)
{
    double now = nb_now();
    /* A terminal is redrawn often; a log gets a line every 5 s at most. */
    if (p->quiet || now - p->last < (p->tty ? 0.1 : 5.0))
        return;
    p->last = now;
    draw(p, done, now);
}

void nb_progress_done(nb_progress *p)
{
    if (p->quiet)
        return;
    double now = nb_now();
    if (p->tty || now - p->start >= 5.0) {
        draw(p, p->total, now);
        if (p->tty)
            fputc('\n', stderr);
    }
}
