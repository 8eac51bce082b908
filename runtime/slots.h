/* A server's slots: N conversations on one model (nb_run_opts.n_seq = N,
 * each sequence with its own KV cache rows), run by one engine thread.
 * Requests (jobs) come from any thread through a bounded queue; each step
 * gathers the next token of every decoding slot and a bounded chunk of
 * every prefilling one into one nb_batch, so a decode step of four slots
 * reads the weights once. Text comes back through the job: its owner
 * reads it with nb_job_read when the wake callback says there is news.
 *
 * A slot keeps the tokens its cache holds after a job ends, so a request
 * that extends them (a chat client resending the history) prefills only
 * the rest; the queue gives a job the free slot sharing the longest
 * prefix with it. Nothing here knows HTTP. */
#ifndef NIBBLE_SLOTS_H
#define NIBBLE_SLOTS_H

#include <stddef.h>
#include <stdint.h>

#include "chat.h"
#include "sampler.h"
#include "session.h"

#define NB_JOB_STOPS 4 /* stop strings a request may add, each < NB_STOP_MAX bytes */

enum nb_finish {
    NB_FINISH_NONE,     /* still running */
    NB_FINISH_STOP,     /* an end id, a stop string, a special token */
    NB_FINISH_LENGTH,   /* max_tokens, or the context is full */
    NB_FINISH_CANCEL,   /* the owner released it */
    NB_FINISH_SHUTDOWN, /* nb_slots_shutdown ended it */
    NB_FINISH_ERROR,    /* non-finite logits or no memory: the status's err says */
};

typedef struct nb_job_opts {
    nb_sampler_opts smp;
    float presence, frequency; /* OpenAI's penalties, over the tokens of this reply */
    int max_tokens;            /* 0: until the context is full */
    const char *stops[NB_JOB_STOPS + 1]; /* NULL-terminated; copied at submit */
    const char *const *template_stops;   /* static (nb_template_stops), or NULL */
    int continues;       /* the reply continues the prompt's text (keeps its leading space) */
    int stop_at_special; /* chat: a special token that is not an end id ends the reply */
    int ignore_eos;      /* go on past the end ids (and special tokens): tests, benchmarks */
} nb_job_opts;

typedef struct nb_slots_opts {
    int n_slots;     /* sequences of the session's nb_net (1..its n_seq) */
    int queue;       /* jobs that may wait for a slot; more are refused */
    int step_tokens; /* prompt tokens a step takes beside the decoding slots (0: 128) */
    int history;     /* replies remembered for nb_slots_reply_ids (0: 4 per slot) */
} nb_slots_opts;

typedef struct nb_slots nb_slots;
typedef struct nb_job nb_job;

/* What a job's owner sees. */
typedef struct nb_job_status {
    int finish;   /* enum nb_finish */
    int started;  /* it got a slot */
    int n_prompt; /* tokens of its prompt */
    int n_cached; /* of them, already in the slot's cache (not run again) */
    int n_reply;  /* tokens generated (an end id not counted) */
    nb_err err;   /* for NB_FINISH_ERROR */
} nb_job_status;

/* Starts the engine thread over s, whose nb_net must have at least
 * o->n_slots sequences. s outlives the slots. */
nb_slots *nb_slots_start(nb_session *s, const nb_slots_opts *o, nb_err *e);

/* Ends every job (NB_FINISH_SHUTDOWN, their owners woken) and refuses
 * new ones; the owners still release theirs. */
void nb_slots_shutdown(nb_slots *sl);

/* Joins the engine and frees the slots: every job must be released. */
void nb_slots_free(nb_slots *sl);

/* Queues prompt[n] (copied) with o. wake(ctx) is called from the engine
 * thread, with the slots' lock held (it must not call back in), when
 * there is new text or the job ended. NULL with NB_SLOTS_BUSY in *why
 * when the queue is full or the slots shut down, NB_SLOTS_BAD for a bad
 * request (e says why: a prompt that does not fit, a stop string too
 * long, sampling options out of range). */
enum { NB_SLOTS_BAD = 1, NB_SLOTS_BUSY = 2 };
nb_job *nb_slots_submit(nb_slots *sl, const int32_t *prompt, int n, const nb_job_opts *o,
                        void (*wake)(void *ctx), void *ctx, int *why, nb_err *e);

/* Moves up to cap bytes of the text not read yet into buf (it never cuts
 * a UTF-8 character when cap >= 4) and fills st; returns the bytes moved.
 * The job has ended when st->finish is set and 0 bytes came. */
size_t nb_job_read(nb_job *j, char *buf, size_t cap, nb_job_status *st);

/* The owner is done: a running job is cancelled and its slot freed at
 * the next step. j is gone afterwards. */
void nb_job_release(nb_job *j);

/* The ids the model produced for a recent reply whose text is text[len]
 * (a malloc'd copy in *ids, *n), so a conversation sent back holds what
 * the cache saw; 0 when none is remembered (replies cut at a stop string
 * are not: their ids run past the text). */
int nb_slots_reply_ids(nb_slots *sl, const char *text, size_t len, int32_t **ids, size_t *n);

/* Counters for /metrics. */
typedef struct nb_slots_stats {
    int n_slots, busy, queued;
    unsigned long long jobs, prompt_tokens, prefilled, generated, steps;
    double decode_tps; /* tokens generated per second over the last few seconds */
} nb_slots_stats;

void nb_slots_get_stats(nb_slots *sl, nb_slots_stats *st);

#endif
