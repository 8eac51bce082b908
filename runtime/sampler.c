#include "sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* HEAD: how many candidates the first ranking takes at most, where top-p
 * may cut early. Sets larger than QSORT_MAX are radix sorted (rank), in passes of
 * RADIX_BITS, DIGITS at most. */
enum { HEAD = 256, QSORT_MAX = 2048, RADIX_BITS = 11, RADIX = 1 << RADIX_BITS, DIGITS = 6 };

int nb_sampler_init(nb_sampler *s, int vocab, const nb_sampler_opts *o, nb_err *e)
{
    s->cand = NULL;
    s->keys = NULL;
    s->radix = NULL;
    s->seen = NULL;
    if (!(o->temp >= 0 && o->temp <= 100))
        return nb_fail(e, "temperature must be between 0 and 100, got %g", o->temp);
    if (o->top_k < 0)
        return nb_fail(e, "top-k must be 0 (off) or positive, got %d", o->top_k);
    if (!(o->top_p > 0 && o->top_p <= 1))
        return nb_fail(e, "top-p must be in (0, 1], got %g", o->top_p);
    if (!(o->min_p >= 0 && o->min_p <= 1))
        return nb_fail(e, "min-p must be in [0, 1], got %g", o->min_p);
    if (!(o->repeat_penalty >= 0 && o->repeat_penalty <= 100))
        return nb_fail(e, "repeat penalty must be between 0 (off) and 100, got %g",
                       o->repeat_penalty);
    if (o->repeat_last_n < 0)
        return nb_fail(e, "repeat-last-n must be 0 or positive, got %d", o->repeat_last_n);
    s->o = *o;
    s->vocab = vocab;
    s->rng = o->seed ^ 0x9e3779b97f4a7c15ull;
    s->id_bits = 1;
    while (s->id_bits < 31 && (vocab - 1) >> s->id_bits)
        s->id_bits++;
    s->cand = malloc((size_t)vocab * sizeof *s->cand);
    s->seen = calloc((size_t)vocab, 1);
    if (vocab > QSORT_MAX) {
        s->keys = malloc(2 * (size_t)vocab * sizeof *s->keys);
        s->radix = malloc(DIGITS * sizeof *s->radix);
    }
    if (!s->cand || !s->seen || (vocab > QSORT_MAX && (!s->keys || !s->radix))) {
        nb_sampler_free(s);
        return nb_fail(e, "out of memory");
    }
    return 0;
}

void nb_sampler_free(nb_sampler *s)
{
    free(s->cand);
    free(s->keys);
    free(s->radix);
    free(s->seen);
    s->cand = NULL;
    s->keys = NULL;
    s->radix = NULL;
    s->seen = NULL;
}

int nb_sampler_penalizes(const nb_sampler *s)
{
    return s->o.repeat_penalty > 0 && s->o.repeat_penalty != 1;
}

void nb_sampler_penalize(nb_sampler *s, float *logits, const int32_t *recent, int n)
{
    if (!nb_sampler_penalizes(s))
        return;
    float p = s->o.repeat_penalty;
    for (int i = 0; i < n; i++) {
        int id = recent[i];
        if (id < 0 || id >= s->vocab || s->seen[id])
            continue; /* once per distinct id, however often it repeats */
        s->seen[id] = 1;
        logits[id] = logits[id] > 0 ? logits[id] / p : logits[id] * p;
    }
    for (int i = 0; i < n; i++)
        if (recent[i] >= 0 && recent[i] < s->vocab)
            s->seen[recent[i]] = 0;
}

int nb_argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

/* splitmix64: tiny, and the same sequence on every platform. */
static double next_uniform(nb_sampler *s)
{
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

static int by_prob_desc(const void *a, const void *b)
{
    const struct nb_cand *x = a, *y = b;
    if (x->p != y->p)
        return x->p < y->p ? 1 : -1;
    return x->id - y->id; /* stable across qsort implementations */
}

/* The order of by_prob_desc: a ranks before b. */
static inline int before(const struct nb_cand *a, const struct nb_cand *b)
{
    return a->p > b->p || (a->p == b->p && a->id < b->id);
}

/* Softmax at the temperature into cand, in id order; returns the largest
 * probability. */
static float softmax(nb_sampler *s, const float *logits)
{
    float max = logits[nb_argmax(logits, s->vocab)], top = 0;
    double sum = 0;
    for (int i = 0; i < s->vocab; i++) {
        s->cand[i].p = expf((logits[i] - max) / s->o.temp);
        s->cand[i].id = i;
        sum += s->cand[i].p;
    }
    for (int i = 0; i < s->vocab; i++) {
        s->cand[i].p = (float)(s->cand[i].p / sum);
        top = s->cand[i].p > top ? s->cand[i].p : top;
    }
    return top;
}

/* Moves the candidates of probability >= least to the front; returns how
 * many there are. */
static int at_least(struct nb_cand *c, int n, double least)
{
    int m = 0;
    for (int i = 0; i < n; i++)
        if (c[i].p >= least) {
            struct nb_cand t = c[m];
            c[m++] = c[i];
            c[i] = t;
        }
    return m;
}

/* Sorts c[0..m) by by_prob_desc: qsort for small sets, else a least
 * significant digit radix sort, linear in m, of a key that orders as
 * by_prob_desc: the probability's bits reversed (for probabilities >= 0
 * the order of the bit patterns is theirs), then the id, 31 + id_bits
 * bits; digits that are the same in every key are skipped: 5 passes for
 * Qwen's 151936 tokens, several times faster than qsort. */
static void rank(nb_sampler *s, struct nb_cand *c, int m)
{
    if (m <= QSORT_MAX) {
        qsort(c, (size_t)m, sizeof *c, by_prob_desc);
        return;
    }
    int shift = s->id_bits, digits = (31 + shift + RADIX_BITS - 1) / RADIX_BITS;
    uint64_t *from = s->keys, *to = s->keys + s->vocab;
    uint32_t(*count)[RADIX] = s->radix;
    memset(count, 0, (size_t)digits * sizeof *count);
    for (int i = 0; i < m; i++) {
        uint32_t bits;
        memcpy(&bits, &c[i].p, sizeof bits);
        uint64_t k = (uint64_t)(0x7fffffffu - (bits & 0x7fffffffu)) << shift | (uint32_t)c[i].id;
        from[i] = k;
        for (int d = 0; d < digits; d++)
            count[d][k >> (RADIX_BITS * d) & (RADIX - 1)]++;
    }
    for (int d = 0; d < digits; d++) {
        uint32_t *at = count[d];
        if (at[from[0] >> (RADIX_BITS * d) & (RADIX - 1)] == (uint32_t)m)
            continue;
        for (uint32_t b = 0, sum = 0; b < RADIX; b++) {
            uint32_t k = at[b];
            at[b] = sum;
            sum += k;
        }
        for (int i = 0; i < m; i++)
            to[at[from[i] >> (RADIX_BITS * d) & (RADIX - 1)]++] = from[i];
        uint64_t *t = from;
        from = to, to = t;
    }
    for (int i = 0; i < m; i++) {
        uint32_t bits = 0x7fffffffu - (uint32_t)(from[i] >> shift);
        memcpy(&c[i].p, &bits, sizeof bits);
        c[i].id = (int)(from[i] & ((1ull << shift) - 1));
    }
}

/* Restores the heap c[0..m) below i: every entry ranks before its parent,
 * so c[0] ranks last. */
static void sift(struct nb_cand *c, int m, int i)
{
    for (;;) {
        int l = 2 * i + 1, worst = i;
        if (l < m && before(c + worst, c + l))
            worst = l;
        if (l + 1 < m && before(c + worst, c + l + 1))
            worst = l + 1;
        if (worst == i)
            return;
        struct nb_cand t = c[i];
        c[i] = c[worst];
        c[worst] = t;
        i = worst;
    }
}

/* Moves the m first of c[0..n) in rank order to c[0..m) (1 <= m <= n), in
 * no order but with the last of them at c[0]: a heap of m entries takes
 * each later candidate that ranks before its root. One comparison for
 * most candidates, when they come in no particular order. */
static void select_first(struct nb_cand *c, int n, int m)
{
    for (int i = m / 2 - 1; i >= 0; i--)
        sift(c, m, i);
    for (int i = m; i < n; i++)
        if (before(c + i, c)) {
            struct nb_cand t = c[0];
            c[0] = c[i];
            c[i] = t;
            sift(c, m, 0);
        }
}

/* Half the gap from x > 0 to the next double: a number smaller than this
 * added to x leaves it unchanged. */
static double half_ulp(double x)
{
    return (nextafter(x, INFINITY) - x) / 2;
}

/* The running sum of the ranked c[from..to) onto *cum, stopping where it
 * reaches top-p: returns the new count kept (n when it does not). */
static int sum_to(const nb_sampler *s, const struct nb_cand *c, int from, int to, int n,
                  double *cum)
{
    for (int i = from; i < to; i++) {
        *cum += c[i].p;
        if (*cum >= s->o.top_p)
            return i + 1;
    }
    return n;
}

/* The argmax (the first of equal logits, as nb_argmax), and in s->gap
 * how far the runner-up's logit is below it: how near a tie the choice
 * was, for tests that compare greedy runs of approximate paths. */
static int greedy(nb_sampler *s, const float *x)
{
    int best = 0;
    float second = -INFINITY;
    for (int i = 1; i < s->vocab; i++)
        if (x[i] > x[best])
            second = x[best], best = i;
        else if (x[i] > second)
            second = x[i];
    s->gap = x[best] - second;
    return best;
}

/* The token that ranking every candidate by probability (ties by id), then
 * cutting at top-k, top-p and min-p in that order, then drawing, gives:
 * the same cut, the same double sums in the same order, the same uniform
 * draw. Only the head of the ranking is ranked:
 * - min-p keeps the tokens of probability >= min_p * the largest, a set
 *   known before ranking (whatever top-k and top-p cut first, the tokens
 *   below that are dropped from the end, and nothing else is);
 * - the first n of them (top-k) or the first HEAD, where the running sum
 *   most often reaches top-p, are selected with a heap and sorted;
 * - if more are kept, the rest are ranked at once, except the tokens of
 *   probability below half the last place of the running sum: these can
 *   no longer change it, nor so reach top-p, and they rank last. If only
 *   they are left, the mass is the sum so far, and a draw past it picks
 *   the last token kept (found by selection).
 * So most of the vocabulary is ranked only where the distribution is flat
 * (top-p keeps most of it) or with pure temperature sampling (top-p 1, no
 * top-k, no min-p), and then by a radix sort. */
int nb_sample(nb_sampler *s, float *logits)
{
    if (s->o.temp == 0)
        return greedy(s, logits);
    struct nb_cand *c = s->cand;
    float top = softmax(s, logits), least = s->o.min_p * top;
    int u = least > 0 ? at_least(c, s->vocab, least) : s->vocab; /* c[0..u): the set ranked */
    int n = s->o.top_k > 0 && s->o.top_k < u ? s->o.top_k : u;  /* kept, unless top-p cuts */
    int len = n < HEAD ? n : HEAD;                               /* c[0..len): ranked */
    double cum = 0;
    if (len < u)
        select_first(c, u, len);
    rank(s, c, len);
    n = sum_to(s, c, 0, len, n, &cum);
    if (len < n) {
        int live = len + (cum > 0 ? at_least(c + len, u - len, half_ulp(cum)) : u - len);
        rank(s, c + len, live - len);
        int end = live < n ? live : n;
        n = sum_to(s, c, len, end, n, &cum);
        len = end;
    }
    double r = next_uniform(s) * cum, acc = 0; /* cum: the mass kept */
    for (int i = 0; i < len && i < n; i++) {
        acc += c[i].p;
        if (r < acc)
            return c[i].id;
    }
    if (len >= n)
        return c[n - 1].id;
    select_first(c + len, u - len, n - len); /* the last kept, at rank n - 1 */
    return c[len].id;
}
