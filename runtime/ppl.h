/* Perplexity as in the AWQ/GPTQ evaluations: the text's ids (BOS first,
 * once) cut into non-overlapping windows of ctx tokens (a short tail is
 * dropped), each window run from position 0; in each, tokens 1..ctx-1 are
 * predicted from those before them. nibble ppl and bench --ppl print it. */
#ifndef NIBBLE_RUNTIME_PPL_H
#define NIBBLE_RUNTIME_PPL_H

#include <stddef.h>
#include <stdint.h>

#include "session.h"

typedef struct nb_ppl {
    double ppl, se; /* perplexity and its standard error */
    long tokens, windows, ctx;
} nb_ppl;

typedef struct nb_ppl_params {
    long ctx;     /* window length, 2 .. the session's context */
    long windows; /* score only the first ones (0: all) */
    /* progress(user, done, total): before the first window (done 0) and
     * after each; should_stop(user): asked before each window, nonzero
     * stops with an error ("interrupted after ..."). Either may be NULL. */
    void (*progress)(void *user, long done, long total);
    int (*should_stop)(void *user);
    void *user;
} nb_ppl_params;

/* The perplexity of s's model on ids[n]. 0, or -1 with e: too short a
 * text, stopped, non-finite logits, out of memory. */
int nb_ppl_score(nb_session *s, const int32_t *ids, size_t n, const nb_ppl_params *p,
                 nb_ppl *r, nb_err *e);

#endif
