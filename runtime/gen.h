/* The generation loop: keep the KV cache in step with a token sequence
 * (only positions that changed are run again), then sample, hand each
 * token to the caller, and stop at end of text, a cap, the caller's word,
 * a full context or a cancellation. generate and chat (convo.h) run on
 * it; a server slot would too. */
#ifndef NIBBLE_GEN_H
#define NIBBLE_GEN_H

#include "sampler.h"
#include "session.h"

enum nb_stop {
    NB_STOP_EOS,    /* the model ended its text (one of its end ids) */
    NB_STOP_LENGTH, /* the token cap */
    NB_STOP_CALLER, /* the token callback said stop (a stop string) */
    NB_STOP_FULL,   /* the context is full and the caller made no room */
    NB_STOP_CANCEL, /* should_stop said so (Ctrl-C in the CLI) */
    NB_STOP_WRITE,  /* the token callback could not write */
    NB_STOP_ERROR,  /* the model gave non-finite logits: stats.err says so */
};

/* The run's state. Its cached[] describes the session's KV cache, so a
 * session serves one nb_gen at a time (a server: a session per slot). */
typedef struct nb_gen {
    nb_session *s;
    nb_sampler *smp;
    int ctx;
    int32_t *seq; /* [ctx + 1]: the prompt, then the reply so far */
    int n_seq, n_prompt;
    int32_t *cached; /* [ctx]: the token whose keys and values sit at each position */
    int n_cached;
    int32_t *recent; /* scratch for the repetition penalty's window */
} nb_gen;

typedef struct nb_gen_opts {
    int max_tokens; /* 0: no cap but the context */
    int ignore_eos;
    /* Asked before each token and between tiles of a prefill: nonzero
     * stops the run cleanly (NB_STOP_CANCEL). A callback rather than a
     * global so that each caller (a terminal's Ctrl-C, a server slot's
     * cancel flag) stops only its own run. NULL: never. */
    int (*should_stop)(void *ctx);
    void *stop_ctx;
} nb_gen_opts;

/* token() gets each new token and returns 0 to go on, 1 to stop, -1 on a
 * write error. full() is called when the next position would be past the
 * context: it may make room with nb_gen_reprompt and return 0 to go on;
 * NULL or -1 stops. */
typedef struct nb_gen_sink {
    int (*token)(void *ctx, int id);
    int (*full)(void *ctx, nb_gen *g);
    void *ctx;
} nb_gen_sink;

typedef struct nb_gen_stats {
    int n_prefill; /* positions run before the first token */
    int n_reply;   /* tokens generated, the end-of-text token not counted */
    int n_steps;   /* forward passes after the prefill (one per sampled token) */
    double t_prefill, t_first, t_total; /* seconds from the start of the run */
    int stop;      /* enum nb_stop */
    nb_err err;    /* why, for NB_STOP_ERROR */
} nb_gen_stats;

int nb_gen_init(nb_gen *g, nb_session *s, nb_sampler *smp, nb_err *e);
void nb_gen_free(nb_gen *g);

/* Sets the prompt the next run continues (1 <= n <= ctx). Positions the
 * cache already holds for the same tokens are kept. */
int nb_gen_prompt(nb_gen *g, const int32_t *ids, int n, nb_err *e);

/* Replaces the prompt and keeps the reply so far after it (for making
 * room in a full context while a reply runs). */
int nb_gen_reprompt(nb_gen *g, const int32_t *ids, int n, nb_err *e);

void nb_gen_run(nb_gen *g, const nb_gen_opts *o, const nb_gen_sink *sink, nb_gen_stats *st);

/* Prefill and decode speeds, tokens per second (0 when not measurable). */
double nb_gen_prefill_tps(const nb_gen_stats *st);
double nb_gen_decode_tps(const nb_gen_stats *st);

#endif
