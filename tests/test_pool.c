/* The thread pool: every chunk runs exactly once, results are the same for
 * 1 to 4 threads, back-to-back jobs do not lose a wake-up, and the
 * degenerate cases (no pool, no chunks, one chunk) work. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/pool.h"
#include "testutil.h"

enum { CHUNKS = 300 };

struct job {
    atomic_int runs[CHUNKS];
    double out[CHUNKS];
};

/* Uneven work per chunk, computed in a fixed order inside the chunk. */
static void work(void *ctx, size_t chunk)
{
    struct job *j = ctx;
    double s = 0;
    for (size_t i = 0; i < (chunk % 7) * 30 + 1; i++)
        s += sin((double)(chunk * 31 + i)) / (double)(i + 1);
    j->out[chunk] = s;
    atomic_fetch_add(&j->runs[chunk], 1);
}

static void run_job(nb_pool *p, struct job *j)
{
    for (int i = 0; i < CHUNKS; i++)
        atomic_init(&j->runs[i], 0);
    nb_pool_run(p, CHUNKS, work, j);
}

static void check_once(const struct job *j, int threads)
{
    int bad = 0;
    for (int i = 0; i < CHUNKS; i++)
        bad += atomic_load(&j->runs[i]) != 1;
    CHECK(!bad, "%d threads: %d chunks did not run exactly once", threads, bad);
}

static void count(void *ctx, size_t chunk)
{
    (void)chunk;
    atomic_fetch_add((atomic_int *)ctx, 1);
}

/* Many tiny jobs in a row: a lost wake-up or a worker left in the
 * previous job would hang or miscount here. */
static void check_back_to_back(nb_pool *p, int threads)
{
    atomic_int n;
    atomic_init(&n, 0);
    for (int i = 0; i < 1000; i++)
        nb_pool_run(p, (size_t)(i % 5), count, &n);
    CHECK(atomic_load(&n) == 1000 / 5 * (0 + 1 + 2 + 3 + 4), "%d threads: %d chunks ran", threads,
          atomic_load(&n));
}

int main(void)
{
    static struct job ref, j;
    run_job(NULL, &ref);
    check_once(&ref, 0);
    CHECK(nb_pool_threads(NULL) == 1, "a NULL pool has one thread");
    for (int threads = 1; threads <= 4; threads++) {
        nb_pool *p = nb_pool_create(threads);
        CHECK(p != NULL, "cannot create a pool of %d", threads);
        if (!p)
            continue;
        CHECK(nb_pool_threads(p) == threads, "pool of %d reports %d", threads,
              nb_pool_threads(p));
        for (int rep = 0; rep < 3; rep++) {
            run_job(p, &j);
            check_once(&j, threads);
            CHECK(!memcmp(j.out, ref.out, sizeof ref.out), "%d threads: results differ", threads);
        }
        check_back_to_back(p, threads);
        nb_pool_free(p);
    }
    nb_pool_free(NULL);
    CHECK(nb_cpu_count() >= 1, "cpu count %d", nb_cpu_count());
    return tu_finish("test_pool");
}
