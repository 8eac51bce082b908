/* Microseconds per sampled token over a Qwen2.5-sized vocabulary (151936
 * logits, LLM-like: a bulk near 0 and a few tokens far above), the
 * sampler (runtime/sampler.c, which ranks only the head) against the
 * algorithm it replaced (softmax, a full sort, then top-k, top-p and
 * min-p; written out here), on the same logits and seeds; the ids they
 * pick are checked equal on the way. Not a test: times of the machine it
 * runs on, in CPU time of the thread (steadier than the wall clock on a
 * shared machine): `meson test --benchmark sampler-bench`, or run it.
 * With "flat", the logits are uniform in [-1, 1) instead: nearly every
 * token in the nucleus, the worst case of the partial ranking.
 *   sampler_bench [VOCAB [SECONDS_PER_ROW [flat]]] */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../runtime/sampler.h"
#include "../sampler_ref.h"

static uint64_t state = 11;

static double uniform(void) /* [0, 1) */
{
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (double)((z ^ (z >> 31)) >> 11) * (1.0 / 9007199254740992.0);
}

/* ---- the algorithm before partial selection: tests/sampler_ref.h ---- */

static int old_sample(struct ref_cand *c, const float *logits, int vocab,
                      const nb_sampler_opts *o, uint64_t *rng)
{
    ref_rank(c, logits, vocab, o->temp);
    return ref_pick(c, vocab, o, rng);
}

/* ---- timing ---- */

enum { SETS = 8 }; /* logit vectors, taken in turn */

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Microseconds per sample of the old (which = 0) or the new sampler,
 * over at least `seconds`; the ids go to ids[] (the first `cap`). */
static double time_one(int which, float **logits, float *work, struct ref_cand *c, int vocab,
                       const nb_sampler_opts *o, double seconds, int *ids, int cap, int *count)
{
    nb_sampler smp;
    nb_err e;
    if (nb_sampler_init(&smp, vocab, o, &e)) {
        fprintf(stderr, "sampler_bench: %s\n", e.msg);
        exit(1);
    }
    uint64_t rng = o->seed ^ 0x9e3779b97f4a7c15ull;
    int n = 0;
    double t0 = now(), t;
    do {
        const float *l = logits[n % SETS];
        memcpy(work, l, (size_t)vocab * sizeof *work); /* both pay for the copy */
        int id = which ? nb_sample(&smp, work) : old_sample(c, work, vocab, o, &rng);
        if (n < cap)
            ids[n] = id;
        n++;
        t = now();
    } while (t - t0 < seconds || n < SETS);
    nb_sampler_free(&smp);
    *count = n;
    return 1e6 * (t - t0) / n;
}

int main(int argc, char **argv)
{
    int vocab = argc > 1 ? atoi(argv[1]) : 151936;
    double seconds = argc > 2 ? atof(argv[2]) : 0.5;
    int flat = argc > 3 && !strcmp(argv[3], "flat");
    if (vocab < 1 || !(seconds > 0) || (argc > 3 && !flat) || argc > 4) {
        fputs("usage: sampler_bench [VOCAB [SECONDS_PER_ROW [flat]]]\n", stderr);
        return 1;
    }
    float *logits[SETS], *work = malloc((size_t)vocab * sizeof *work);
    struct ref_cand *c = malloc((size_t)vocab * sizeof *c);
    for (int s = 0; s < SETS; s++) {
        logits[s] = malloc((size_t)vocab * sizeof *logits[s]);
        for (int i = 0; i < vocab; i++) {
            double g = uniform() + uniform() + uniform() + uniform() - 2.0; /* about normal */
            logits[s][i] = flat ? (float)(2 * uniform() - 1)
                                : (float)(4.25 * g + (uniform() < 0.001 ? 10 + 15 * uniform() : 0));
        }
    }
    static const struct {
        const char *name;
        nb_sampler_opts o;
    } rows[] = {
        {"top-k 40, top-p 0.9, min-p 0.05, temp 0.8",
         {.temp = 0.8f, .top_k = 40, .top_p = 0.9f, .min_p = 0.05f, .seed = 1}},
        {"top-k 40, temp 0.8", {.temp = 0.8f, .top_k = 40, .top_p = 1.0f, .seed = 2}},
        {"top-p 0.9, temp 0.8", {.temp = 0.8f, .top_p = 0.9f, .seed = 3}},
        {"min-p 0.05, temp 0.8", {.temp = 0.8f, .top_p = 1.0f, .min_p = 0.05f, .seed = 4}},
        {"temp 0.8 alone", {.temp = 0.8f, .top_p = 1.0f, .seed = 5}},
    };
    enum { CAP = 4096 };
    static int old_ids[CAP], new_ids[CAP];
    int bad = 0;
    printf("sampling over %d %s logits, CPU microseconds per token (1 thread)\n", vocab,
           flat ? "flat" : "LLM-like");
    printf("%-42s %10s %10s %8s\n", "options", "full sort", "now", "speedup");
    for (size_t r = 0; r < sizeof rows / sizeof *rows; r++) {
        int n_old, n_new;
        double t_old = time_one(0, logits, work, c, vocab, &rows[r].o, seconds, old_ids, CAP,
                                &n_old);
        double t_new = time_one(1, logits, work, c, vocab, &rows[r].o, seconds, new_ids, CAP,
                                &n_new);
        int n = n_old < n_new ? n_old : n_new;
        n = n < CAP ? n : CAP;
        for (int i = 0; i < n; i++)
            bad += old_ids[i] != new_ids[i];
        printf("%-42s %10.1f %10.1f %7.1fx\n", rows[r].name, t_old, t_new, t_old / t_new);
    }
    if (bad)
        fprintf(stderr, "sampler_bench: %d draws differ from the full sort\n", bad);
    for (int s = 0; s < SETS; s++)
        free(logits[s]);
    free(work), free(c);
    return bad != 0;
}
