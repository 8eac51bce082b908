/* What slots.c (jobs, queue, the engine thread) and slot_step.c (one
 * batched step: prompt chunks, sampling, text) share. Only they include
 * it. */
#ifndef NIBBLE_SLOTS_IMPL_H
#define NIBBLE_SLOTS_IMPL_H

#include <pthread.h>

#include "../tokenizer/tokenizer.h"
#include "slots.h"

struct nb_job {
    nb_slots *sl;
    int refs;     /* the owner's and, while queued or in a slot, the engine's */
    int released; /* the owner let go: cancel */
    int32_t *prompt;
    int n_prompt;
    nb_job_opts o; /* o.stops point into stop_buf */
    char stop_buf[NB_JOB_STOPS][NB_STOP_MAX];
    void (*wake)(void *ctx);
    void *wake_ctx;
    nb_job *next; /* in the queue */
    /* what the owner reads, under the lock */
    char *text;
    size_t len, cap, read;
    nb_job_status st;
};

/* One sequence of the model. Between jobs it keeps cached[]: the tokens
 * whose keys and values sit at its first n_cached positions. The rest
 * belongs to the running job and only the engine thread touches it. */
struct slot {
    int id;
    nb_job *job; /* NULL: free (set and cleared under the lock) */
    int fresh;   /* admitted, not set up yet */
    int32_t *cached;
    int n_cached;
    int32_t *seq; /* [ctx + 1]: the prompt, then the reply */
    int n_seq, n_prompt, n_reused, max_reply, n_reply;
    nb_sampler smp;
    int32_t *recent;      /* the repetition penalty's window */
    int *counts;          /* [vocab]: each id's count in the reply (presence/frequency) */
    int32_t *distinct;    /* the ids counted, once each */
    int n_distinct;
    nb_detok d;
    nb_stopper stop;
    const char **stops; /* the template's and the job's, NULL-terminated */
    char *reply;        /* the reply's text so far */
    size_t reply_len, reply_cap, delivered;
    int finish;   /* enum nb_finish, set when the job ends */
    int ids_ok;   /* the reply's ids stand for its text (no stop string cut it) */
    nb_err err;
    /* this step */
    int run_n, want;
};

struct reply_ids {
    char *text;
    size_t len;
    int32_t *ids;
    size_t n;
};

struct nb_slots {
    nb_session *s;
    nb_slots_opts o;
    int vocab, ctx;
    struct slot *slot;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int started, stopping, quit;
    nb_job *head, *tail;
    int queued;
    /* the batch, built each step */
    int32_t *b_tok;
    int *b_seq, *b_pos;
    uint8_t *b_want;
    struct slot **b_slots; /* the slots in the batch, in its order */
    int n_b_slots;
    float *logits; /* [n_slots][vocab] */
    /* replies remembered for nb_slots_reply_ids: a ring */
    struct reply_ids *hist;
    int hist_at;
    /* counters (under the lock) */
    nb_slots_stats stats;
    double win_t0, last_step;
    unsigned long long win_gen;
};

/* slot_step.c: the engine thread's side. */
int nb_slot_setup(nb_slots *sl, struct slot *t); /* a fresh job: prefix, sampler, text */
void nb_slot_teardown(struct slot *t);          /* what setup made */
int nb_slots_step(nb_slots *sl); /* one batched pass and its tokens; prompt tokens run */
int nb_slot_alloc(nb_slots *sl, struct slot *t);
void nb_slot_free(struct slot *t);

#endif
