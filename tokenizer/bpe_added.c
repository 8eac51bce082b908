/* Added tokens, found before anything else as the library's
 * AddedVocabulary does: those not marked `normalized` in the raw text, the
 * others in each normalized piece between them (their patterns are their
 * contents normalized). Leftmost-longest matches, as its Aho-Corasick
 * automaton finds them; single_word, lstrip and rstrip as it applies them. */
#include "bpe_int.h"

#include <stdlib.h>
#include <string.h>

static int pat_cmp(const void *x, const void *y)
{
    const bpe_pat *a = x, *b = y;
    unsigned char fa = (unsigned char)a->s[0], fb = (unsigned char)b->s[0];
    if (fa != fb)
        return fa < fb ? -1 : 1;
    if (a->len != b->len)
        return a->len > b->len ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

static void index_first_bytes(bpe_matcher *m)
{
    qsort(m->pats, m->n, sizeof *m->pats, pat_cmp);
    size_t j = 0;
    for (int b = 0; b < 256; b++) {
        m->first[b] = (uint32_t)j;
        while (j < m->n && (unsigned char)m->pats[j].s[0] == b)
            j++;
    }
    m->first[256] = (uint32_t)j;
}

/* Normalized contents are stored one after the other in m->own; the
 * patterns point there once it has stopped moving. */
static int collect_normalized(nb_bpe *t, bpe_matcher *m, nb_err *e)
{
    bpe_buf own = {0}, buf[2] = {{0}};
    OnigRegion *rg = onig_region_new();
    int rc = rg ? 0 : nb_fail(e, "out of memory");
    for (size_t i = 0; i < m->n && rc == 0; i++) {
        const char *s;
        size_t n;
        rc = bpe_normalize_with(t, buf, rg, m->pats[i].s, m->pats[i].len, &s, &n, e);
        if (rc == 0 && bpe_buf_put(&own, s, n) < 0)
            rc = nb_fail(e, "out of memory");
        m->pats[i].len = (uint32_t)n;
    }
    size_t off = 0, w = 0;
    t->over = malloc((m->n + 1) * sizeof *t->over);
    if (!t->over && rc == 0)
        rc = nb_fail(e, "out of memory");
    for (size_t i = 0; i < m->n && rc == 0; i++) {
        bpe_pat p = m->pats[i];
        p.s = own.p ? own.p + off : "";
        off += p.len;
        t->over[t->n_over++] = p; /* in id order */
        if (p.len)                /* a pattern normalized away matches nothing */
            m->pats[w++] = p;
    }
    m->n = w;
    m->own = own.p;
    bpe_buf_free(&buf[0]);
    bpe_buf_free(&buf[1]);
    if (rg)
        onig_region_free(rg, 1);
    return rc;
}

static int matcher_build(nb_bpe *t, bpe_matcher *m, int normalized, nb_err *e)
{
    m->pats = malloc((t->n_added + 1) * sizeof *m->pats);
    if (!m->pats)
        return nb_fail(e, "out of memory");
    for (size_t i = 0; i < t->n_added; i++) {
        int32_t id = t->added_ids[i];
        const bpe_tok *k = &t->toks[id];
        if (!!(k->flags & NB_BPE_T_NORMALIZED) == normalized)
            m->pats[m->n++] = (bpe_pat){t->strs + k->off, k->len, id};
    }
    if (normalized && collect_normalized(t, m, e) < 0)
        return -1;
    index_first_bytes(m);
    return 0;
}

int bpe_matchers_build(nb_bpe *t, nb_err *e)
{
    return matcher_build(t, &t->added[0], 0, e) < 0 || matcher_build(t, &t->added[1], 1, e) < 0 ? -1
                                                                                                : 0;
}

void bpe_matchers_free(nb_bpe *t)
{
    free(t->over);
    for (int i = 0; i < 2; i++) {
        free(t->added[i].pats);
        free(t->added[i].own);
    }
}

/* The library keeps a normalized added token as its normalized text, and
 * decodes that. */
const char *bpe_tok_text(const nb_bpe *t, int32_t id, size_t *len)
{
    const bpe_tok *k = &t->toks[id];
    uint32_t both = NB_BPE_T_ADDED | NB_BPE_T_NORMALIZED;
    if ((k->flags & both) == both) {
        size_t lo = 0, hi = t->n_over;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (t->over[mid].id < id)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < t->n_over && t->over[lo].id == id) {
            *len = t->over[lo].len;
            return t->over[lo].s;
        }
    }
    *len = k->len;
    return t->strs + k->off;
}

/* The leftmost match at or after `from`, the longest there. */
static int next_match(const bpe_matcher *m, const char *s, size_t n, size_t from, size_t *a,
                      int32_t *id, uint32_t *len)
{
    for (size_t i = from; i < n; i++) {
        unsigned char b = (unsigned char)s[i];
        for (uint32_t j = m->first[b]; j < m->first[b + 1]; j++) {
            const bpe_pat *p = &m->pats[j];
            if (p->len <= n - i && memcmp(s + i, p->s, p->len) == 0) {
                *a = i;
                *id = p->id;
                *len = p->len;
                return 1;
            }
        }
    }
    return 0;
}

static uint32_t last_char(const char *s, size_t n)
{
    size_t i = n - 1;
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80)
        i--;
    int len;
    return bpe_char_at((const unsigned char *)s + i, n - i, &len);
}

/* single_word: no word character touches the match on either side. */
static int single_word_ok(const char *s, size_t n, size_t a, size_t b)
{
    int len;
    if (a > 0 && bpe_is_word(last_char(s, a)))
        return 0;
    return b == n || !bpe_is_word(bpe_char_at((const unsigned char *)s + b, n - b, &len));
}

static size_t spaces_before(const char *s, size_t a)
{
    while (a > 0) {
        size_t i = a - 1;
        while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80)
            i--;
        int len;
        if (!bpe_is_space(bpe_char_at((const unsigned char *)s + i, a - i, &len)))
            break;
        a = i;
    }
    return a;
}

static size_t spaces_after(const char *s, size_t n, size_t b)
{
    while (b < n) {
        int len;
        if (!bpe_is_space(bpe_char_at((const unsigned char *)s + b, n - b, &len)))
            break;
        b += (size_t)len;
    }
    return b;
}

/* AddedVocabulary::find_matches: the pieces of s, an added token's with
 * match = id + 1. The search goes on from the end of the match found, not
 * of the stripped one, as the automaton's iterator does. */
static int find_added(bpe_ctx *c, const bpe_matcher *m, const char *s, size_t n, bpe_segs *g)
{
    size_t start_offset = 0, from = 0, a;
    int32_t id;
    uint32_t len;
    g->n = 0;
    while (next_match(m, s, n, from, &a, &id, &len)) {
        size_t b = a + len;
        uint32_t f = c->t->toks[id].flags;
        from = b;
        if ((f & NB_BPE_T_SINGLE_WORD) && !single_word_ok(s, n, a, b))
            continue;
        if (f & NB_BPE_T_LSTRIP) {
            size_t ns = spaces_before(s, a);
            a = ns > start_offset ? ns : start_offset;
        }
        if (f & NB_BPE_T_RSTRIP)
            b = spaces_after(s, n, b);
        if ((start_offset < a && bpe_segs_push(g, start_offset, a, 0) < 0) ||
            bpe_segs_push(g, a, b, id + 1) < 0)
            return nb_fail(c->e, "out of memory");
        start_offset = b;
    }
    if (start_offset != n && bpe_segs_push(g, start_offset, n, 0) < 0)
        return nb_fail(c->e, "out of memory");
    return 0;
}

/* Pass 0 runs on the raw text, and normalizes each piece between its
 * matches for pass 1, whose pieces go to the pre-tokenizers. */
int bpe_added_split(bpe_ctx *c, int pass, const char *s, size_t n, int origin)
{
    bpe_segs *g = &c->added_segs[pass];
    if (n == 0)
        return 0;
    if (find_added(c, &c->t->added[pass], s, n, g) < 0)
        return -1;
    for (size_t i = 0; i < g->n; i++) {
        bpe_seg p = g->v[i];
        int first = origin && p.a == 0, rc;
        if (p.match) {
            rc = bpe_emit(c, p.match - 1);
        } else if (pass == 0) {
            const char *ns;
            size_t nn;
            rc = bpe_normalize(c, s + p.a, p.b - p.a, &ns, &nn);
            if (rc == 0)
                rc = bpe_added_split(c, 1, ns, nn, first);
        } else {
            rc = bpe_pretokenize(c, 0, s + p.a, p.b - p.a, first);
        }
        if (rc < 0)
            return -1;
    }
    return 0;
}
