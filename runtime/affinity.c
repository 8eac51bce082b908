#define _GNU_SOURCE /* sched_setaffinity, CPU_SET */
#include "affinity.h"

#include <ctype.h>
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static int number(const char **s, long *v)
{
    if (!isdigit((unsigned char)**s))
        return -1;
    char *end;
    errno = 0;
    *v = strtol(*s, &end, 10);
    *s = end;
    return errno || *v >= NB_MAX_CPUS ? -1 : 0;
}

static int add(int *cpus, int cap, int *n, long cpu)
{
    for (int i = 0; i < *n; i++)
        if (cpus[i] == cpu)
            return 0;
    if (*n >= cap)
        return -1;
    cpus[(*n)++] = (int)cpu;
    return 0;
}

int nb_cpu_list_parse(const char *list, int *cpus, int cap, int *n, nb_err *e)
{
    const char *s = list;
    *n = 0;
    for (;;) {
        long a, b;
        if (number(&s, &a))
            break;
        b = a;
        if (*s == '-' && (s++, number(&s, &b) || b < a))
            break;
        for (long c = a; c <= b; c++)
            if (add(cpus, cap, n, c))
                return nb_fail(e, "--cpus '%s' names more than %d CPUs", list, cap);
        if (!*s)
            return 0;
        if (*s++ != ',')
            break;
    }
    return nb_fail(e, "--cpus expects a list of CPU numbers below %d like 0-3,6, got '%s'",
                   NB_MAX_CPUS, list);
}

static int pin_self(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set); /* 0: the calling thread */
}

struct pin_job {
    const int *cpus;
    int n_cpus, n_threads;
    atomic_int arrived, failed_cpu;
};

/* Every chunk waits until all have started: a thread inside one cannot
 * take another, so each of the n_threads threads runs exactly one. */
static void pin_chunk(void *ctx, size_t chunk)
{
    struct pin_job *j = ctx;
    atomic_fetch_add(&j->arrived, 1);
    while (atomic_load(&j->arrived) < j->n_threads)
        sched_yield();
    int cpu = j->cpus[chunk % (size_t)j->n_cpus];
    if (pin_self(cpu))
        atomic_store(&j->failed_cpu, cpu + 1);
}

int nb_pool_pin(nb_pool *p, const char *list, nb_err *e)
{
    int *cpus = malloc(NB_MAX_CPUS * sizeof *cpus), n;
    if (!cpus)
        return nb_fail(e, "out of memory");
    if (nb_cpu_list_parse(list, cpus, NB_MAX_CPUS, &n, e)) {
        free(cpus);
        return -1;
    }
    struct pin_job j = {.cpus = cpus, .n_cpus = n, .n_threads = nb_pool_threads(p)};
    atomic_init(&j.arrived, 0);
    atomic_init(&j.failed_cpu, 0);
    nb_pool_run(p, (size_t)j.n_threads, pin_chunk, &j);
    free(cpus);
    int bad = atomic_load(&j.failed_cpu);
    if (bad)
        return nb_fail(e, "--cpus: cannot run on CPU %d (%s)", bad - 1,
                       "not online or not allowed to this process");
    return 0;
}
