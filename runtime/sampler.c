#include "sampler.h"

#include <math.h>
#include <stdlib.h>

int nb_sampler_init(nb_sampler *s, int vocab, const nb_sampler_opts *o, nb_err *e)
{
    s->cand = NULL;
    s->seen = NULL;
    if (!(o->temp >= 0 && o->temp <= 100))
        return nb_fail(e, "temperature must be between 0 and 100, got %g", o->temp);
    if (o->top_k < 0)
        return nb_fail(e, "top-k must be 0 (off) or positive, got %d", o->top_k);
    if (!(o->top_p > 0 && o->top_p <= 1))
        return nb_fail(e, "top-p must be in (0, 1], got %g", o->top_p);
    if (!(o->min_p >= 0 && o->min_p <= 1))
        return nb_fail(e, "min-p must be in [0, 1], got %g", o->min_p);
    if (!(o->repeat_penalty >= 0 && o->repeat_penalty <= 100))
        return nb_fail(e, "repeat penalty must be between 0 (off) and 100, got %g",
                       o->repeat_penalty);
    if (o->repeat_last_n < 0)
        return nb_fail(e, "repeat-last-n must be 0 or positive, got %d", o->repeat_last_n);
    s->o = *o;
    s->vocab = vocab;
    s->rng = o->seed ^ 0x9e3779b97f4a7c15ull;
    s->cand = malloc((size_t)vocab * sizeof *s->cand);
    s->seen = calloc((size_t)vocab, 1);
    if (!s->cand || !s->seen) {
        nb_sampler_free(s);
        return nb_fail(e, "out of memory");
    }
    return 0;
}

void nb_sampler_free(nb_sampler *s)
{
    free(s->cand);
    free(s->seen);
    s->cand = NULL;
    s->seen = NULL;
}

int nb_sampler_penalizes(const nb_sampler *s)
{
    return s->o.repeat_penalty > 0 && s->o.repeat_penalty != 1;
}

void nb_sampler_penalize(nb_sampler *s, float *logits, const int32_t *recent, int n)
{
    if (!nb_sampler_penalizes(s))
        return;
    float p = s->o.repeat_penalty;
    for (int i = 0; i < n; i++) {
        int id = recent[i];
        if (id < 0 || id >= s->vocab || s->seen[id])
            continue; /* once per distinct id, however often it repeats */
        s->seen[id] = 1;
        logits[id] = logits[id] > 0 ? logits[id] / p : logits[id] * p;
    }
    for (int i = 0; i < n; i++)
        if (recent[i] >= 0 && recent[i] < s->vocab)
            s->seen[recent[i]] = 0;
}

int nb_argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

/* splitmix64: tiny, and the same sequence on every platform. */
static double next_uniform(nb_sampler *s)
{
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

static int by_prob_desc(const void *a, const void *b)
{
    const struct nb_cand *x = a, *y = b;
    if (x->p != y->p)
        return x->p < y->p ? 1 : -1;
    return x->id - y->id; /* stable across qsort implementations */
}

/* Softmax at the temperature into cand, sorted by probability. */
static int ranked(nb_sampler *s, const float *logits)
{
    float max = logits[nb_argmax(logits, s->vocab)];
    double sum = 0;
    for (int i = 0; i < s->vocab; i++) {
        s->cand[i].p = expf((logits[i] - max) / s->o.temp);
        s->cand[i].id = i;
        sum += s->cand[i].p;
    }
    for (int i = 0; i < s->vocab; i++)
        s->cand[i].p = (float)(s->cand[i].p / sum);
    qsort(s->cand, (size_t)s->vocab, sizeof *s->cand, by_prob_desc);
    return s->vocab;
}

/* How many top candidates survive top-k, top-p and min-p (probabilities
 * at the temperature, so min-p is relative to the same distribution). */
static int kept(const nb_sampler *s, int n)
{
    if (s->o.top_k > 0 && s->o.top_k < n)
        n = s->o.top_k;
    double cum = 0;
    for (int i = 0; i < n; i++) {
        cum += s->cand[i].p;
        if (cum >= s->o.top_p) {
            n = i + 1;
            break;
        }
    }
    float floor = s->o.min_p * s->cand[0].p;
    while (n > 1 && s->cand[n - 1].p < floor)
        n--;
    return n;
}

int nb_sample(nb_sampler *s, float *logits)
{
    if (s->o.temp == 0)
        return nb_argmax(logits, s->vocab);
    int n = kept(s, ranked(s, logits));
    double mass = 0;
    for (int i = 0; i < n; i++)
        mass += s->cand[i].p;
    double r = next_uniform(s) * mass, cum = 0;
    for (int i = 0; i < n; i++) {
        cum += s->cand[i].p;
        if (r < cum)
            return s->cand[i].id;
    }
    return s->cand[n - 1].id;
}
