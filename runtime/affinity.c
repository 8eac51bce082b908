#define _GNU_SOURCE /* sched_setaffinity, CPU_SET */
#include "affinity.h"

#include <ctype.h>
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* The first line of sysfs/cpuN/leaf into buf: 0, or -1 when unreadable. */
static int read_cpu_file(const char *sysfs, int cpu, const char *leaf, char *buf, size_t size)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/cpu%d/%s", sysfs, cpu, leaf);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int ok = fgets(buf, (int)size, f) != NULL;
    fclose(f);
    buf[strcspn(buf, "\n")] = 0;
    return ok ? 0 : -1;
}

/* A positive number from sysfs/cpuN/leaf, or 0. */
static long cpu_number(const char *sysfs, int cpu, const char *leaf)
{
    char buf[64], *end;
    if (read_cpu_file(sysfs, cpu, leaf, buf, sizeof buf))
        return 0;
    long v = strtol(buf, &end, 10);
    return end != buf && v > 0 ? v : 0;
}

/* Each allowed CPU's speed rank from one source that all of them have:
 * capacity, else maximum frequency; all 1 when neither is complete. */
static void cpu_speeds(const char *sysfs, const int *cpus, int n, long *speed)
{
    static const char *const leaves[] = {"cpu_capacity", "cpufreq/cpuinfo_max_freq"};
    for (size_t l = 0; l < sizeof leaves / sizeof *leaves; l++) {
        int complete = 1;
        for (int i = 0; i < n && complete; i++)
            complete = (speed[i] = cpu_number(sysfs, cpus[i], leaves[l])) > 0;
        if (complete)
            return;
    }
    for (int i = 0; i < n; i++)
        speed[i] = 1;
}

/* Whether an allowed SMT sibling numbered below cpu stands for its core. */
static int has_lower_sibling(const char *sysfs, int cpu, const int *allowed, int n_allowed)
{
    char buf[256];
    int sib[64], n_sib;
    nb_err e;
    if (read_cpu_file(sysfs, cpu, "topology/thread_siblings_list", buf, sizeof buf) ||
        nb_cpu_list_parse(buf, sib, 64, &n_sib, &e))
        return 0;
    for (int i = 0; i < n_sib; i++)
        for (int j = 0; sib[i] < cpu && j < n_allowed; j++)
            if (allowed[j] == sib[i])
                return 1;
    return 0;
}

int nb_big_core_count(const char *sysfs, const int *allowed, int n_allowed)
{
    long *speed = malloc((size_t)(n_allowed > 0 ? n_allowed : 1) * sizeof *speed), top = 0;
    if (!speed)
        return 1;
    cpu_speeds(sysfs, allowed, n_allowed, speed);
    for (int i = 0; i < n_allowed; i++)
        top = speed[i] > top ? speed[i] : top;
    int count = 0;
    for (int i = 0; i < n_allowed; i++)
        count += 2 * speed[i] >= top && !has_lower_sibling(sysfs, allowed[i], allowed, n_allowed);
    free(speed);
    return count < 1 ? 1 : count > 256 ? 256 : count;
}

int nb_default_threads(void)
{
    cpu_set_t set;
    int cpus[NB_MAX_CPUS], n = 0;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        for (int c = 0; c < NB_MAX_CPUS && c < CPU_SETSIZE; c++)
            if (CPU_ISSET(c, &set))
                cpus[n++] = c;
    } else {
        for (int c = 0; c < nb_cpu_count(); c++)
            cpus[n++] = c;
    }
    return nb_big_core_count("/sys/devices/system/cpu", cpus, n);
}
