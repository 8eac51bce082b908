/* The sampling algorithm runtime/sampler.c replaced, written out plainly:
 * softmax at the temperature, a full sort by probability (ties by id),
 * then top-k, top-p and min-p over the ranking, and the draw. The test
 * holds the sampler to it id for id; the benchmark times it. */
#ifndef NIBBLE_SAMPLER_REF_H
#define NIBBLE_SAMPLER_REF_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "../runtime/sampler.h"

struct ref_cand {
    float p;
    int id;
};

static int ref_desc(const void *a, const void *b)
{
    const struct ref_cand *x = a, *y = b;
    if (x->p != y->p)
        return x->p < y->p ? 1 : -1;
    return x->id - y->id;
}

/* Softmax at the temperature into c, sorted by probability. */
static void ref_rank(struct ref_cand *c, const float *logits, int vocab, float temp)
{
    float max = logits[nb_argmax(logits, vocab)];
    double sum = 0;
    for (int i = 0; i < vocab; i++) {
        c[i].p = expf((logits[i] - max) / temp);
        c[i].id = i;
        sum += c[i].p;
    }
    for (int i = 0; i < vocab; i++)
        c[i].p = (float)(c[i].p / sum);
    qsort(c, (size_t)vocab, sizeof *c, ref_desc);
}

static double ref_uniform(uint64_t *rng)
{
    uint64_t z = (*rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

/* top-k, top-p, min-p over the ranked c, then the draw. */
static int ref_pick(const struct ref_cand *c, int vocab, const nb_sampler_opts *o, uint64_t *rng)
{
    int n = vocab;
    if (o->top_k > 0 && o->top_k < n)
        n = o->top_k;
    double cum = 0;
    for (int i = 0; i < n; i++) {
        cum += c[i].p;
        if (cum >= o->top_p) {
            n = i + 1;
            break;
        }
    }
    float floor = o->min_p * c[0].p;
    while (n > 1 && c[n - 1].p < floor)
        n--;
    double mass = 0;
    for (int i = 0; i < n; i++)
        mass += c[i].p;
    double r = ref_uniform(rng) * mass;
    cum = 0;
    for (int i = 0; i < n; i++) {
        cum += c[i].p;
        if (r < cum)
            return c[i].id;
    }
    return c[n - 1].id;
}

#endif
