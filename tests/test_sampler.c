/* The sampler: greedy is argmax (and keeps its lead over the runner-up,
 * 0 at a tie), the same seed repeats a run, top-k and
 * top-p never pick outside their set, and the frequencies follow the
 * softmax at the temperature. And the sampler, which ranks only the head
 * of the vocabulary, against the algorithm it replaced, written out here:
 * softmax, a full sort by probability (ties by id), then top-k, top-p and
 * min-p; the same token for the same seed, draw after draw, over random
 * logits (flat, peaked, LLM-like, with ties and -inf) of vocabularies up
 * to 151936, every combination of the options on the small ones (up to
 * 1000 tokens), the defaults of generate and chat, pure temperature,
 * top-p alone, min-p alone and random combinations on the large. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/sampler.h"
#include "sampler_ref.h"
#include "testutil.h"

enum { V = 8 };
static const float logits0[V] = {1.0f, 3.0f, 0.5f, 2.0f, -1.0f, 2.9f, 0.0f, 1.5f};

static int draw(nb_sampler *s)
{
    float l[V];
    for (int i = 0; i < V; i++)
        l[i] = logits0[i];
    return nb_sample(s, l);
}

static void init(nb_sampler *s, float temp, int top_k, float top_p, uint64_t seed)
{
    nb_sampler_opts o = {.temp = temp, .top_k = top_k, .top_p = top_p, .seed = seed};
    nb_err e;
    if (nb_sampler_init(s, V, &o, &e))
        CHECK(0, "init: %s", e.msg);
}

static void check_frequencies(void)
{
    nb_sampler s;
    init(&s, 0.7f, 0, 1.0f, 123);
    int count[V] = {0}, n = 200000;
    for (int i = 0; i < n; i++)
        count[draw(&s)]++;
    double z = 0;
    for (int i = 0; i < V; i++)
        z += exp(logits0[i] / 0.7);
    for (int i = 0; i < V; i++) {
        double p = exp(logits0[i] / 0.7) / z, sd = sqrt(p * (1 - p) / n);
        CHECK(fabs((double)count[i] / n - p) < 5 * sd + 1e-4, "token %d: %g vs %g", i,
              (double)count[i] / n, p);
    }
    nb_sampler_free(&s);
}

static void check_sets(void)
{
    nb_sampler s;
    init(&s, 1.0f, 2, 1.0f, 5);
    for (int i = 0; i < 2000; i++) {
        int t = draw(&s);
        CHECK(t == 1 || t == 5, "top-k 2 picked %d", t);
    }
    nb_sampler_free(&s);
    init(&s, 1.0f, 0, 0.5f, 5); /* p(1) ~ .33, p(5) ~ .30: the set is {1, 5} */
    for (int i = 0; i < 2000; i++) {
        int t = draw(&s);
        CHECK(t == 1 || t == 5, "top-p 0.5 picked %d", t);
    }
    nb_sampler_free(&s);
}

static void check_repeat_and_greedy(void)
{
    nb_sampler a, b, g;
    init(&a, 1.0f, 0, 1.0f, 99);
    init(&b, 1.0f, 0, 1.0f, 99);
    init(&g, 0.0f, 0, 1.0f, 1);
    int same = 1;
    for (int i = 0; i < 500; i++)
        same &= draw(&a) == draw(&b);
    CHECK(same, "the same seed gave different draws");
    CHECK(draw(&g) == 1, "greedy did not pick the argmax");
    CHECK(g.gap == 3.0f - 2.9f, "greedy's lead over the runner-up: %g", (double)g.gap);
    float tie[V] = {0.0f, 2.0f, 1.0f, 2.0f, -INFINITY, 0.0f, 0.0f, 0.0f};
    CHECK(nb_sample(&g, tie) == 1 && g.gap == 0.0f, "a tie: the first, by 0 (%g)",
          (double)g.gap);
    nb_sampler_free(&a);
    nb_sampler_opts bad = {.temp = -1.0f, .top_p = 1.0f};
    nb_err e;
    CHECK(nb_sampler_init(&a, V, &bad, &e) == -1, "negative temperature accepted");
    nb_sampler_free(&b);
    nb_sampler_free(&g);
}

static void check_min_p(void)
{
    nb_sampler s;
    nb_sampler_opts o = {.temp = 1.0f, .top_p = 1.0f, .seed = 7, .min_p = 0.3f};
    nb_err e;
    CHECK(nb_sampler_init(&s, V, &o, &e) == 0, "init: %s", e.msg);
    /* relative to p(1): p(5) .90, p(3) .37, p(7) .22: min-p .3 keeps {1, 5, 3} */
    for (int i = 0; i < 2000; i++) {
        int t = draw(&s);
        CHECK(t == 1 || t == 5 || t == 3, "min-p 0.3 picked %d", t);
    }
    nb_sampler_free(&s);
    o.min_p = 1.5f;
    CHECK(nb_sampler_init(&s, V, &o, &e) == -1, "min-p 1.5 accepted");
    nb_sampler_free(&s);
}

/* Positive logits shrink, negative ones grow more negative, once per
 * distinct id; greedy sampling sees the penalized logits. */
static void check_penalty(void)
{
    nb_sampler s;
    nb_sampler_opts o = {.top_p = 1.0f, .seed = 1, .repeat_penalty = 2.0f, .repeat_last_n = 64};
    nb_err e;
    CHECK(nb_sampler_init(&s, V, &o, &e) == 0, "init: %s", e.msg);
    const int32_t recent[] = {1, 1, 4, 1, -3, 99};
    for (int round = 0; round < 2; round++) {
        float l[V];
        for (int i = 0; i < V; i++)
            l[i] = logits0[i];
        nb_sampler_penalize(&s, l, recent, 6);
        CHECK(l[1] == 1.5f && l[4] == -2.0f, "penalized to %g and %g", l[1], l[4]);
        CHECK(l[5] == logits0[5] && l[0] == logits0[0], "untouched logits changed");
        CHECK(nb_sample(&s, l) == 5, "greedy ignored the penalty");
    }
    nb_sampler_free(&s);
    o.repeat_penalty = 1.0f;
    CHECK(nb_sampler_init(&s, V, &o, &e) == 0, "init: %s", e.msg);
    float l[V];
    for (int i = 0; i < V; i++)
        l[i] = logits0[i];
    nb_sampler_penalize(&s, l, recent, 6);
    CHECK(l[1] == logits0[1], "penalty 1 changed a logit");
    nb_sampler_free(&s);
}

/* ---- against the full sort ---- */

static uint64_t lrng = 2024;

static float unit(void) /* [0, 1) */
{
    return 0.5f * (tu_randf(&lrng) + 1.0f);
}

/* Logits of kind 0 .. 7: flat, wide, LLM-like (a bulk near 0 and a few
 * far above), the same rounded to quarters (ties), five values and some
 * -inf (ties everywhere), all equal, one far above the rest (most
 * probabilities 0), a few near the top and the rest 50 to 70 below
 * (their probabilities too small to change a sum of the others: the
 * running sum of pure temperature sampling stops short of 1 or not). */
static void make_logits(float *l, int vocab, int kind)
{
    for (int i = 0; i < vocab; i++) {
        float g = 0; /* about normal: the sum of 4 uniforms */
        for (int j = 0; j < 4; j++)
            g += tu_randf(&lrng);
        switch (kind) {
        case 0: l[i] = tu_randf(&lrng); break;
        case 1: l[i] = 8.0f * tu_randf(&lrng); break;
        case 2: l[i] = 2.5f * g + (unit() < 0.001f ? 10.0f + 15.0f * unit() : 0.0f); break;
        case 3: l[i] = roundf(4.0f * (2.5f * g + (unit() < 0.001f ? 12.0f : 0.0f))) / 4; break;
        case 4: l[i] = unit() < 0.05f ? -INFINITY : (float)((i * 7919) % 5); break;
        case 5: l[i] = 1.5f; break;
        case 7: l[i] = unit() < 0.01f ? -unit() : -50.0f - 20.0f * unit(); break;
        default: l[i] = 3.0f * g; break;
        }
    }
    if (kind == 6)
        l[tu_rand(&lrng) % (uint64_t)vocab] = 100.0f;
}

static long compared, mismatched;

/* Draws from one sampler per option set and from the reference, the
 * same seed, and compares the ids. */
static void compare_opts(const float *logits, float *work, const struct ref_cand *c, int vocab,
                         const nb_sampler_opts *o, int draws, int kind)
{
    nb_sampler smp;
    nb_err e;
    if (nb_sampler_init(&smp, vocab, o, &e)) {
        CHECK(0, "init: %s", e.msg);
        return;
    }
    uint64_t rng = o->seed ^ 0x9e3779b97f4a7c15ull;
    for (int d = 0; d < draws; d++) {
        memcpy(work, logits, (size_t)vocab * sizeof *work);
        int got = nb_sample(&smp, work), want = ref_pick(c, vocab, o, &rng);
        compared++;
        if (got != want && mismatched++ < 10)
            CHECK(0, "vocab %d, logits kind %d, temp %g, top-k %d, top-p %g, min-p %g, seed %llu, "
                     "draw %d: %d, the full sort %d",
                  vocab, kind, o->temp, o->top_k, o->top_p, o->min_p,
                  (unsigned long long)o->seed, d, got, want);
    }
    nb_sampler_free(&smp);
}

static void check_against_full_sort(void)
{
    static const int vocabs[] = {1, 2, 3, 8, 65, 1000, 4096, 32000, 151936};
    static const float temps[] = {0.25f, 0.8f, 1.0f, 1.7f};
    static const float top_ps[] = {1.0f, 0.95f, 0.9f, 0.5f, 1e-9f};
    static const float min_ps[] = {0.0f, 0.05f, 0.5f, 1.0f};
    int n_vocabs = (int)(sizeof vocabs / sizeof *vocabs);
    for (int vi = 0; vi < n_vocabs + 6; vi++) {
        int vocab = vi < n_vocabs ? vocabs[vi] : 1 + (int)(tu_rand(&lrng) % 3000);
        int top_ks[] = {0, 1, 2, 40, 1000, vocab - 1, vocab + 10};
        float *l = malloc((size_t)vocab * sizeof *l), *work = malloc((size_t)vocab * sizeof *l);
        struct ref_cand *c = malloc((size_t)vocab * sizeof *c);
        for (int kind = 0; kind < 8; kind++) {
            make_logits(l, vocab, kind);
            for (int ti = 0; ti < 4; ti++) {
                if (vocab > 4096 && ti % 2 == 0)
                    continue; /* 2 temperatures, the bulk of the time under qemu */
                nb_sampler_opts o = {.temp = temps[ti], .top_p = 1.0f};
                ref_rank(c, l, vocab, o.temp);
                if (vocab <= 1000) { /* every combination */
                    for (int a = 0; a < 7; a++)
                        for (int b = 0; b < 5; b++)
                            for (int m = 0; m < 4; m++) {
                                o.top_k = top_ks[a];
                                o.top_p = top_ps[b], o.min_p = min_ps[m];
                                o.seed = tu_rand(&lrng);
                                compare_opts(l, work, c, vocab, &o, 2, kind);
                            }
                    continue;
                }
                /* the defaults of generate and chat, pure temperature,
                 * top-p alone, then random combinations */
                nb_sampler_opts fixed[] = {{.top_k = 40, .top_p = 0.95f},
                                           {.top_k = 40, .top_p = 0.95f, .min_p = 0.05f},
                                           {.top_p = 1.0f},
                                           {.top_p = 0.9f},
                                           {.top_p = 0.999f},
                                           {.top_p = 1.0f, .min_p = 0.05f}};
                for (int f = 0; f < 6 + 4; f++) {
                    if (f < 6) {
                        o = fixed[f];
                    } else {
                        o.top_k = top_ks[tu_rand(&lrng) % 7];
                        o.top_p = top_ps[tu_rand(&lrng) % 5];
                        o.min_p = min_ps[tu_rand(&lrng) % 4];
                    }
                    o.temp = temps[ti];
                    o.seed = tu_rand(&lrng);
                    compare_opts(l, work, c, vocab, &o, 2, kind);
                }
            }
        }
        free(l), free(work), free(c);
    }
    CHECK(mismatched == 0, "%ld of %ld draws differ from the full sort", mismatched, compared);
    printf("against the full sort: %ld draws, %ld differ\n", compared, mismatched);
}

int main(void)
{
    check_frequencies();
    check_sets();
    check_repeat_and_greedy();
    check_min_p();
    check_penalty();
    check_against_full_sort();
    return tu_finish("test_sampler");
}
