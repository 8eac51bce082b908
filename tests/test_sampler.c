/* The sampler: greedy is argmax, the same seed repeats a run, top-k and
 * top-p never pick outside their set, and the frequencies follow the
 * softmax at the temperature. */
#include <math.h>

#include "../runtime/sampler.h"
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

int main(void)
{
    check_frequencies();
    check_sets();
    check_repeat_and_greedy();
    check_min_p();
    check_penalty();
    return tu_finish("test_sampler");
}
