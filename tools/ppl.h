/* Perplexity from the command line, shared by nibble ppl and nibble
 * bench --ppl: the text read and tokenized, the engine's scoring
 * (runtime/ppl.h) with progress on stderr and Ctrl-C, errors printed. */
#ifndef NIBBLE_PPL_H
#define NIBBLE_PPL_H

#include "../runtime/ppl.h"
#include "cli.h"

/* What to score: windows of ctx tokens (0: 512, or the model's context
 * if smaller), the first `windows` of them (0: all). */
typedef struct nb_ppl_opts {
    long ctx, windows;
    int quiet; /* no progress on stderr */
} nb_ppl_opts;

/* The text of path as token ids, BOS first, and o->ctx settled against
 * s's context. 0, or 1 after an error line. */
int nb_ppl_text(nb_session *s, const char *path, nb_ppl_opts *o, int32_t **ids, size_t *n_ids);

/* The perplexity of s's model on ids; `what` names the progress. 0, or 1
 * after an error line (too short a text, interrupted, out of memory). */
int nb_ppl_eval(nb_session *s, const int32_t *ids, size_t n_ids, const nb_ppl_opts *o,
                const char *what, nb_ppl *r);

#endif
