/* The thread pool: every chunk runs exactly once, results are the same for
 * 1 to 4 threads, back-to-back jobs do not lose a wake-up, and the
 * degenerate cases (no pool, no chunks, one chunk) work. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../runtime/affinity.h"
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

/* Writes text to dir/cpuN/leaf, making the directories. */
static void put(const char *dir, int cpu, const char *leaf, const char *text)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/cpu%d", dir, cpu);
    mkdir(dir, 0700);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/cpu%d/cpufreq", dir, cpu);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/cpu%d/topology", dir, cpu);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/cpu%d/%s", dir, cpu, leaf);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL, "cannot write %s", path);
    if (f)
        fprintf(f, "%s\n", text), fclose(f);
}

static int big(const char *dir, const char *allowed)
{
    int cpus[64], n;
    nb_err e;
    CHECK(!nb_cpu_list_parse(allowed, cpus, 64, &n, &e), "list %s", allowed);
    return nb_big_core_count(dir, cpus, n);
}

/* Fake sysfs trees of the machines the default thread count is for. */
static void check_big_cores(void)
{
    char phone[512], freq[512], smt[512], none[512];
    snprintf(phone, sizeof phone, "%s", tu_tmp("phone"));
    snprintf(freq, sizeof freq, "%s", tu_tmp("freq"));
    snprintf(smt, sizeof smt, "%s", tu_tmp("smt"));
    snprintf(none, sizeof none, "%s", tu_tmp("none"));
    /* 4 efficiency cores, 3 performance, 1 prime (a Snapdragon 888) */
    static const char *const caps[] = {"325", "325", "325", "325", "828", "828", "828", "1024"};
    for (int c = 0; c < 8; c++) {
        put(phone, c, "cpu_capacity", caps[c]);
        put(phone, c, "cpufreq/cpuinfo_max_freq", "1800000"); /* ignored: capacity wins */
        put(freq, c, "cpufreq/cpuinfo_max_freq", c < 4 ? "1000000" : c < 6 ? "2400000" : "2800000");
        char siblings[16]; /* CPUs c and c + 4 are one core */
        snprintf(siblings, sizeof siblings, "%d,%d", c % 4, c % 4 + 4);
        put(smt, c, "topology/thread_siblings_list", siblings);
    }
    put(freq, 3, "cpu_capacity", "512"); /* incomplete: frequencies decide */
    mkdir(none, 0700);
    CHECK(big(phone, "0-7") == 4, "phone: %d", big(phone, "0-7"));
    CHECK(big(phone, "0-5") == 2, "phone, taskset 0-5: %d", big(phone, "0-5"));
    CHECK(big(phone, "0-3") == 4, "phone, little cores only: %d", big(phone, "0-3"));
    CHECK(big(freq, "0-7") == 4, "by frequency: %d", big(freq, "0-7"));
    CHECK(big(smt, "0-7") == 4, "SMT pairs: %d", big(smt, "0-7"));
    CHECK(big(smt, "4-7") == 4, "SMT, only the second threads allowed: %d", big(smt, "4-7"));
    CHECK(big(smt, "0,4,5") == 2, "SMT 0,4,5: %d", big(smt, "0,4,5"));
    CHECK(big(none, "0-2") == 3, "no sysfs: %d", big(none, "0-2"));
    int n = nb_default_threads();
    CHECK(n >= 1 && n <= nb_cpu_count(), "default threads %d of %d CPUs", n, nb_cpu_count());
    printf("test_pool: default threads here %d (%d CPUs)\n", n, nb_cpu_count());
}

int main(void)
{
    check_big_cores();
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
