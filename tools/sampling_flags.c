/* The sampling flags generate and chat share: one parser, one help text,
 * each command bringing its own defaults. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static int set_float(const char *flag, const char *v, double min, double max, float *out)
{
    double d;
    if (nb_parse_float(flag, v, min, max, &d))
        return -1;
    *out = (float)d;
    return 0;
}

static int set_int(const char *flag, const char *v, long max, int *out)
{
    long l;
    if (nb_parse_int(flag, v, 0, max, &l))
        return -1;
    *out = (int)l;
    return 0;
}

int nb_sampling_flag(nb_sampling *s, const char *flag, const char *v)
{
    nb_sampler_opts *o = &s->o;
    long l;
    if (!strcmp(flag, "--temp"))
        return set_float(flag, v, 0, 100, &o->temp);
    if (!strcmp(flag, "--top-p"))
        return set_float(flag, v, 1e-9, 1, &o->top_p);
    if (!strcmp(flag, "--min-p"))
        return set_float(flag, v, 0, 1, &o->min_p);
    if (!strcmp(flag, "--repeat-penalty"))
        return set_float(flag, v, 0, 100, &o->repeat_penalty);
    if (!strcmp(flag, "--top-k"))
        return set_int(flag, v, 1 << 30, &o->top_k);
    if (!strcmp(flag, "--repeat-last-n"))
        return set_int(flag, v, 1 << 22, &o->repeat_last_n);
    if (!strcmp(flag, "--seed")) {
        if (nb_parse_int(flag, v, 0, 0x7fffffffffffffffL, &l))
            return -1;
        o->seed = (uint64_t)l;
        s->seeded = 1;
        return 0;
    }
    return 1;
}

void nb_sampling_seed(nb_sampling *s)
{
    if (!s->seeded)
        s->o.seed = (uint64_t)time(NULL);
}

void nb_sampling_help(FILE *out, const nb_sampler_opts *d)
{
    fprintf(out,
            "  --temp T           temperature, 0 = greedy (default %g)\n"
            "  --top-k K          keep the K likeliest tokens, 0 = off (default %d)\n"
            "  --top-p P          keep the smallest set of probability >= P (default %g)\n"
            "  --min-p P          drop tokens below P x the likeliest's probability,\n"
            "                     0 = off (default %g)\n"
            "  --repeat-penalty R divide the logits of recent tokens by R, 1 = off (default %g)\n"
            "  --repeat-last-n N  how many recent tokens the penalty looks at (default %d)\n"
            "  --seed S           random seed (default: from the clock; the statistics show it)\n",
            (double)d->temp, d->top_k, (double)d->top_p, (double)d->min_p,
            (double)(d->repeat_penalty ? d->repeat_penalty : 1.0f), d->repeat_last_n);
}
