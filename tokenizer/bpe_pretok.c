/* The pre-tokenizers. Each cuts its piece and hands every part to the next
 * one, the last to the model: depth first, so a stage's scratch (two
 * buffers and a segment list, per stage) is reused from part to part.
 *
 * `origin` says whether the piece starts where the input text starts:
 * Metaspace's prepend_scheme "first" asks the library's offsets that. */
#include "bpe_int.h"

#include <string.h>

/* The library's SplitDelimiterBehavior, in place: afterwards a segment
 * with match set is one to drop. */
static void fold_forward(bpe_segs *g, int contiguous)
{
    size_t w = 0;
    int prev = 0;
    for (size_t i = 0; i < g->n; i++) {
        bpe_seg s = g->v[i];
        int merge = contiguous ? s.match == prev : s.match && !prev;
        prev = s.match;
        if (merge && w > 0) {
            g->v[w - 1].b = s.b;
            continue;
        }
        g->v[w++] = (bpe_seg){s.a, s.b, 0};
    }
    g->n = w;
}

static void fold_next(bpe_segs *g)
{
    size_t w = g->n;
    int prev = 0;
    for (size_t i = g->n; i-- > 0;) {
        bpe_seg s = g->v[i];
        int merge = s.match && !prev;
        prev = s.match;
        if (merge && w < g->n) {
            g->v[w].a = s.a;
            continue;
        }
        g->v[--w] = (bpe_seg){s.a, s.b, 0};
    }
    memmove(g->v, g->v + w, (g->n - w) * sizeof *g->v);
    g->n -= w;
}

static void behave(bpe_segs *g, uint32_t behaviour)
{
    switch (behaviour) {
    case NB_BPE_SPLIT_REMOVED:
        break;
    case NB_BPE_SPLIT_ISOLATED:
        for (size_t i = 0; i < g->n; i++)
            g->v[i].match = 0;
        break;
    case NB_BPE_SPLIT_PREVIOUS:
        fold_forward(g, 0);
        break;
    case NB_BPE_SPLIT_NEXT:
        fold_next(g);
        break;
    default:
        fold_forward(g, 1);
        break;
    }
}

/* Hands the kept, non-empty segments of s to stage k + 1. */
static int emit(bpe_ctx *c, size_t k, const bpe_segs *g, const char *s, int origin)
{
    for (size_t i = 0; i < g->n; i++) {
        const bpe_seg *p = &g->v[i];
        if (p->match || p->b == p->a)
            continue;
        if (bpe_pretokenize(c, k + 1, s + p->a, p->b - p->a, origin && p->a == 0) < 0)
            return -1;
    }
    return 0;
}

static int split(bpe_ctx *c, size_t k, const bpe_op *op, const char *s, size_t n, int origin)
{
    bpe_segs *g = &c->pre_segs[k];
    if (bpe_find_matches(op->re, op->s1, op->n1, c->region, s, n, g, c->e) < 0)
        return -1;
    for (size_t i = 0; op->c && i < g->n; i++)
        g->v[i].match = !g->v[i].match;
    behave(g, op->b);
    return emit(c, k, g, s, origin);
}

/* Each byte becomes its character of GPT-2's alphabet. */
static int map_bytes(bpe_buf *out, const char *s, size_t n)
{
    out->len = 0;
    if (bpe_buf_reserve(out, 2 * n) < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        out->len += bpe_put_char(out->p + out->len, bpe_byte_char((unsigned char)s[i]));
    return 0;
}

static int byte_level(bpe_ctx *c, size_t k, const bpe_op *op, const char *s, size_t n, int origin)
{
    bpe_buf *pre = &c->pre_buf[2 * k], *mapped = &c->pre_buf[2 * k + 1];
    bpe_segs *g = &c->pre_segs[k];
    if (op->a && s[0] != ' ') {
        pre->len = 0;
        if (bpe_buf_put(pre, " ", 1) < 0 || bpe_buf_put(pre, s, n) < 0)
            return nb_fail(c->e, "out of memory");
        s = pre->p;
        n = pre->len;
    }
    g->n = 0;
    if (op->b) {
        if (bpe_find_matches(c->t->gpt2_re, NULL, 0, c->region, s, n, g, c->e) < 0)
            return -1;
    } else if (bpe_segs_push(g, 0, n, 0) < 0) {
        return nb_fail(c->e, "out of memory");
    }
    for (size_t i = 0; i < g->n; i++) {
        const bpe_seg *p = &g->v[i];
        if (p->b == p->a)
            continue;
        if (map_bytes(mapped, s + p->a, p->b - p->a) < 0)
            return nb_fail(c->e, "out of memory");
        if (bpe_pretokenize(c, k + 1, mapped->p, mapped->len, origin && p->a == 0) < 0)
            return -1;
    }
    return 0;
}

/* Spaces become the replacement, which is prepended as the scheme says,
 * then (split) each replacement starts a new part. */
static int metaspace(bpe_ctx *c, size_t k, const bpe_op *op, const char *s, size_t n, int origin)
{
    bpe_buf *rep = &c->pre_buf[2 * k], *pre = &c->pre_buf[2 * k + 1];
    rep->len = 0;
    for (size_t i = 0; i < n; i++) {
        int r = s[i] == ' ' ? bpe_buf_put(rep, op->s1, op->n1) : bpe_buf_put(rep, s + i, 1);
        if (r < 0)
            return nb_fail(c->e, "out of memory");
    }
    int starts = rep->len >= op->n1 && memcmp(rep->p, op->s1, op->n1) == 0;
    int add =
        !starts && (op->a == NB_BPE_PREPEND_ALWAYS || (op->a == NB_BPE_PREPEND_FIRST && origin));
    const bpe_buf *text = rep;
    if (add) {
        pre->len = 0;
        if (bpe_buf_put(pre, op->s1, op->n1) < 0 || bpe_buf_put(pre, rep->p, rep->len) < 0)
            return nb_fail(c->e, "out of memory");
        text = pre;
    }
    if (!op->b)
        return bpe_pretokenize(c, k + 1, text->p, text->len, origin);
    bpe_segs *g = &c->pre_segs[k];
    if (bpe_find_matches(NULL, op->s1, op->n1, c->region, text->p, text->len, g, c->e) < 0)
        return -1;
    behave(g, NB_BPE_SPLIT_NEXT);
    return emit(c, k, g, text->p, origin);
}

/* The library's Pattern for a char predicate: each numeric character is a
 * match of its own. */
static int digits(bpe_ctx *c, size_t k, const bpe_op *op, const char *s, size_t n, int origin)
{
    bpe_segs *g = &c->pre_segs[k];
    g->n = 0;
    size_t last = 0;
    for (size_t i = 0; i < n;) {
        int len;
        uint32_t cp = bpe_char_at((const unsigned char *)s + i, n - i, &len);
        if (bpe_is_numeric(cp)) {
            if ((last < i && bpe_segs_push(g, last, i, 0) < 0) ||
                bpe_segs_push(g, i, i + (size_t)len, 1) < 0)
                return nb_fail(c->e, "out of memory");
            last = i + (size_t)len;
        }
        i += (size_t)len;
    }
    if (last < n && bpe_segs_push(g, last, n, 0) < 0)
        return nb_fail(c->e, "out of memory");
    behave(g, op->a ? NB_BPE_SPLIT_ISOLATED : NB_BPE_SPLIT_CONTIGUOUS);
    return emit(c, k, g, s, origin);
}

int bpe_pretokenize(bpe_ctx *c, size_t k, const char *s, size_t n, int origin)
{
    if (n == 0)
        return 0;
    if (k == c->t->n_pre)
        return bpe_model(c, s, n);
    const bpe_op *op = &c->t->pre[k];
    switch (op->kind) {
    case NB_BPE_PRE_SPLIT:
        return split(c, k, op, s, n, origin);
    case NB_BPE_PRE_BYTELEVEL:
        return byte_level(c, k, op, s, n, origin);
    case NB_BPE_PRE_METASPACE:
        return metaspace(c, k, op, s, n, origin);
    default:
        return digits(c, k, op, s, n, origin);
    }
}
