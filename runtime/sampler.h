/* Picking the next token from logits: greedy, temperature, top-k, top-p,
 * with a seeded generator so a run can be repeated exactly. */
#ifndef NIBBLE_SAMPLER_H
#define NIBBLE_SAMPLER_H

#include <stdint.h>

#include "err.h"

typedef struct nb_sampler_opts {
    float temp;  /* 0 = greedy */
    int top_k;   /* 0 = off */
    float top_p; /* 1 = off */
    uint64_t seed;
} nb_sampler_opts;

typedef struct nb_sampler {
    nb_sampler_opts o;
    int vocab;
    uint64_t rng;
    struct nb_cand {
        float p;
        int id;
    } *cand;
} nb_sampler;

/* Checks the options (a one-line message names the bad one). */
int nb_sampler_init(nb_sampler *s, int vocab, const nb_sampler_opts *o, nb_err *e);
void nb_sampler_free(nb_sampler *s);

/* Picks a token; may modify logits. Greedy ties go to the lowest id. */
int nb_sample(nb_sampler *s, float *logits);

int nb_argmax(const float *x, int n);

#endif
