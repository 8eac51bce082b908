/* Pinning a pool's threads to CPUs (--cpus): on big.LITTLE boards and
 * phones the scheduler moves threads between fast and slow cores, and
 * the slowest thread sets the pace of every job. Built on the pool's
 * public interface only (pool.h). */
#ifndef NIBBLE_AFFINITY_H
#define NIBBLE_AFFINITY_H

#include "base/err.h"
#include "pool.h"

#define NB_MAX_CPUS 1024

/* Parses a CPU list as taskset takes it, "0-3,6": ascending or not,
 * duplicates kept out. Fills cpus[0..*n) (cap entries at most). */
int nb_cpu_list_parse(const char *list, int *cpus, int cap, int *n, nb_err *e);

/* Pins each thread of p, the calling one included, to one CPU of the
 * list, round robin. p may be NULL (the caller alone). 0, or -1 when the
 * list is invalid or a CPU is not available to this process. */
int nb_pool_pin(nb_pool *p, const char *list, nb_err *e);

/* How many compute threads to run by default: one per big core this
 * process may run on. Big: a capacity (or else a maximum frequency) at
 * least half the largest, so a phone's prime and performance cores count
 * and its efficiency cores do not, whose slower chunks every job would
 * wait for. One per physical core: SMT siblings share its units. At
 * least 1; every CPU allowed when sysfs says nothing. */
int nb_default_threads(void);

/* The same over a sysfs CPU directory (normally /sys/devices/system/cpu,
 * a copy in the tests) and an explicit list of allowed CPUs. */
int nb_big_core_count(const char *sysfs, const int *allowed, int n_allowed);

#endif
