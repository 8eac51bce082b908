/* Picking the next token from logits: greedy, temperature, top-k, top-p,
 * min-p and a repetition penalty, with a seeded generator so a run can be
 * repeated exactly. */
#ifndef NIBBLE_SAMPLER_H
#define NIBBLE_SAMPLER_H

#include <stdint.h>

#include "base/err.h"

typedef struct nb_sampler_opts {
    float temp;  /* 0 = greedy */
    int top_k;   /* 0 = off */
    float top_p; /* 1 = off */
    uint64_t seed;
    float min_p;          /* 0 = off: drop tokens below min_p * p(likeliest) */
    float repeat_penalty; /* 0 or 1 = off; see nb_sampler_penalize */
    int repeat_last_n;    /* how far back the caller looks for repeats */
} nb_sampler_opts;

typedef struct nb_sampler {
    nb_sampler_opts o;
    int vocab;
    uint64_t rng;
    struct nb_cand {
        float p;
        int id;
    } *cand;                 /* [vocab] */
    uint64_t *keys;          /* [2 * vocab] past 2048 tokens: the radix sort's */
    uint32_t (*radix)[2048]; /* [6][2048] with keys: its counts */
    int id_bits;             /* the bits of the largest id */
    uint8_t *seen; /* [vocab], for the penalty; all zero between calls */
    float gap;     /* greedy (temp 0): the choice's logit minus the runner-up's */
} nb_sampler;

/* Checks the options (a one-line message names the bad one). */
int nb_sampler_init(nb_sampler *s, int vocab, const nb_sampler_opts *o, nb_err *e);
void nb_sampler_free(nb_sampler *s);

/* Picks a token; may modify logits. Greedy ties go to the lowest id.
 * Otherwise the token of a softmax over the whole vocabulary, ranked by
 * probability (ties by id), cut at top-k, top-p and min-p in that order:
 * only the head of that ranking is sorted (see sampler.c), the draw is
 * the same. */
int nb_sample(nb_sampler *s, float *logits);

/* The repetition penalty as in CTRL (Keskar et al., 2019) and llama.cpp:
 * each distinct id in recent[n] has its logit divided by the penalty when
 * positive, multiplied when negative. Call before nb_sample; nothing
 * happens when the penalty is off. */
void nb_sampler_penalize(nb_sampler *s, float *logits, const int32_t *recent, int n);
int nb_sampler_penalizes(const nb_sampler *s);

int nb_argmax(const float *x, int n);

#endif
