#define _POSIX_C_SOURCE 200809L
#include "pool.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

/* Polls of the job counter before sleeping: a few microseconds, enough to
 * catch the next job of a decode step without a wake-up. */
enum { SPIN = 4096 };

struct nb_pool {
    pthread_mutex_t lock;
    pthread_cond_t wake; /* a new job (or stop) was posted */
    pthread_cond_t idle; /* the last worker finished the job */
    pthread_t *threads;
    int n_workers;
    /* The job: written by the caller before generation is bumped, which
     * publishes it; unchanged until every worker has finished it. */
    void (*fn)(void *ctx, size_t chunk);
    void *ctx;
    size_t n_chunks;
    atomic_size_t next;     /* next chunk to hand out */
    atomic_uint generation; /* bumped once per job, and to stop */
    atomic_int busy;        /* workers still inside the current job */
    atomic_int stop;
};

static void take_chunks(nb_pool *p)
{
    size_t i;
    while ((i = atomic_fetch_add(&p->next, 1)) < p->n_chunks)
        p->fn(p->ctx, i);
}

/* Returns the first generation other than seen. The check before sleeping
 * is made under the lock the poster broadcasts under: no lost wake-up. */
static unsigned wait_job(nb_pool *p, unsigned seen)
{
    unsigned g;
    for (int i = 0; i < SPIN; i++)
        if ((g = atomic_load(&p->generation)) != seen)
            return g;
    pthread_mutex_lock(&p->lock);
    while ((g = atomic_load(&p->generation)) == seen)
        pthread_cond_wait(&p->wake, &p->lock);
    pthread_mutex_unlock(&p->lock);
    return g;
}

static void *worker(void *arg)
{
    nb_pool *p = arg;
    unsigned seen = 0;
    for (;;) {
        seen = wait_job(p, seen);
        if (atomic_load(&p->stop))
            return NULL;
        take_chunks(p);
        if (atomic_fetch_sub(&p->busy, 1) == 1) {
            pthread_mutex_lock(&p->lock);
            pthread_cond_signal(&p->idle);
            pthread_mutex_unlock(&p->lock);
        }
    }
}

static void post(nb_pool *p)
{
    atomic_fetch_add(&p->generation, 1);
    pthread_mutex_lock(&p->lock);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
}

static void wait_idle(nb_pool *p)
{
    for (int i = 0; i < SPIN; i++)
        if (atomic_load(&p->busy) == 0)
            return;
    pthread_mutex_lock(&p->lock);
    while (atomic_load(&p->busy) > 0)
        pthread_cond_wait(&p->idle, &p->lock);
    pthread_mutex_unlock(&p->lock);
}

void nb_pool_run(nb_pool *p, size_t n_chunks, void (*fn)(void *ctx, size_t chunk), void *ctx)
{
    if (!p || !p->n_workers || n_chunks <= 1) {
        for (size_t i = 0; i < n_chunks; i++)
            fn(ctx, i);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    p->n_chunks = n_chunks;
    atomic_store(&p->next, 0);
    atomic_store(&p->busy, p->n_workers);
    post(p);
    take_chunks(p);
    wait_idle(p);
}

nb_pool *nb_pool_create(int n_threads)
{
    nb_pool *p = calloc(1, sizeof *p);
    int workers = n_threads > 1 ? n_threads - 1 : 0;
    if (!p || !(p->threads = calloc((size_t)workers + 1, sizeof *p->threads))) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->idle, NULL);
    atomic_init(&p->next, 0);
    atomic_init(&p->generation, 0);
    atomic_init(&p->busy, 0);
    atomic_init(&p->stop, 0);
    /* Workers inherit the signal mask: with every signal blocked there,
     * Ctrl-C reaches the thread that submits jobs or reads the terminal. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int failed = 0;
    for (; p->n_workers < workers && !failed; p->n_workers++)
        failed = pthread_create(&p->threads[p->n_workers], NULL, worker, p) != 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (failed) {
        p->n_workers--; /* the one that failed never started */
        nb_pool_free(p); /* joins the ones already started */
        return NULL;
    }
    return p;
}

int nb_pool_threads(const nb_pool *p)
{
    return p ? p->n_workers + 1 : 1;
}

void nb_pool_free(nb_pool *p)
{
    if (!p)
        return;
    atomic_store(&p->stop, 1);
    post(p);
    for (int i = 0; i < p->n_workers; i++)
        pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->idle);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->lock);
    free(p->threads);
    free(p);
}

int nb_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 256 ? 256 : (int)n;
}
