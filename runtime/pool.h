/* A persistent pool of worker threads for data-parallel loops: the AWQ
 * search now, the NEON kernels of the runtime later.
 *
 * A job is a function over chunks 0..n-1. The pool's threads and the
 * calling thread take chunks from a shared atomic counter until none are
 * left, so uneven chunks balance themselves; nb_pool_run returns when
 * every chunk has finished. Between jobs the workers spin briefly (a
 * decode step issues jobs back to back), then sleep on a condition
 * variable, so an idle pool costs nothing.
 *
 * Which thread runs a chunk varies from run to run; the order inside a
 * chunk does not. A job whose chunks each write their own outputs, each
 * computed in a fixed order, therefore gives the same bits for any
 * thread count. Reductions across chunks should be done by the caller in
 * chunk order after the run (e.g. one partial sum per chunk). */
#ifndef NIBBLE_POOL_H
#define NIBBLE_POOL_H

#include <stddef.h>

typedef struct nb_pool nb_pool;

/* n_threads counts the calling thread: 1 (or less) starts no workers and
 * every job runs on the caller. NULL when the threads cannot be created. */
/* Workers start with every signal blocked, so signals reach the caller. */
nb_pool *nb_pool_create(int n_threads);

/* Threads that work on a job, the caller included (1 for a NULL pool). */
int nb_pool_threads(const nb_pool *p);

/* Runs fn(ctx, chunk) once for every chunk in [0, n_chunks) and returns
 * when all are done. p may be NULL (everything on the caller). One job at
 * a time: fn must not call nb_pool_run on the same pool, and only one
 * thread may submit jobs to a pool. */
void nb_pool_run(nb_pool *p, size_t n_chunks, void (*fn)(void *ctx, size_t chunk), void *ctx);

/* Stops and joins the workers; p may be NULL. */
void nb_pool_free(nb_pool *p);

/* Processors online (at least 1): the default thread count. */
int nb_cpu_count(void);

#endif
