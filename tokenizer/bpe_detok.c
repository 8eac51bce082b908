/* The incremental detokenizer: the decoders as a chain of stages, each fed
 * one string at a time. Until a step joins the tokens (Fuse, ByteLevel) a
 * string is a whole token, as in the library's list; after it, strings are
 * chunks of one growing text, always whole characters. A stage holds back
 * only what the rest of the stream may still change:
 *  - ByteLevel: the bytes of an unfinished character (at most 3);
 *  - ByteFallback: a run of byte tokens while it is valid UTF-8 so far,
 *    because one bad byte later turns the whole run into U+FFFD; once it is
 *    bad, its bytes go out as U+FFFD at once;
 *  - Strip: trailing copies of the stripped character (stop > 0);
 *  - Replace on the joined text: a tail that may begin the pattern.
 * tests/test_bpe.c checks the concatenated output against nb_bpe_decode. */
#include "bpe_int.h"
#include "../runtime/base/utf8.h"

#include <stdlib.h>
#include <string.h>

typedef struct stage {
    const bpe_op *op;
    int joined;   /* strings are chunks of one text, not tokens */
    bpe_buf hold; /* held bytes (ByteLevel, ByteFallback, Replace) */
    bpe_buf work; /* this stage's output before it goes on */
    bpe_segs segs;
    size_t count;   /* tokens seen (Metaspace, no decoder); characters (Strip) */
    size_t dropped; /* Strip: leading characters dropped */
    size_t pending; /* Strip: trailing characters held; ByteFallback: the run is bad */
} stage;

struct nb_bpe_detok {
    const nb_bpe *t;
    int skip_special, oom;
    stage *st;
    size_t n;
    OnigRegion *region;
    bpe_buf out;
};

static void feed(nb_bpe_detok *d, size_t k, const char *s, size_t n);

static void put(nb_bpe_detok *d, bpe_buf *b, const void *s, size_t n)
{
    if (bpe_buf_put(b, s, n) < 0)
        d->oom = 1;
}

/* Hands on st->work, which the next stages never touch. */
static void pass(nb_bpe_detok *d, size_t k)
{
    feed(d, k + 1, d->st[k].work.p ? d->st[k].work.p : "", d->st[k].work.len);
}

/* Complete characters out, U+FFFD for each invalid sequence; an unfinished
 * character waits unless the stream ends. */
static void byte_level_drain(nb_bpe_detok *d, size_t k, int final)
{
    stage *st = &d->st[k];
    const unsigned char *p = (const unsigned char *)st->hold.p;
    size_t n = st->hold.len, i = 0;
    st->work.len = 0;
    while (i < n) {
        int c = nb_utf8_char(p + i, n - i);
        if (c < 0 && !final)
            break;
        if (c > 0) {
            put(d, &st->work, p + i, (size_t)c);
            i += (size_t)c;
        } else {
            put(d, &st->work, bpe_fffd, 3);
            i += bpe_subpart(p + i, n - i);
        }
    }
    if (i)
        memmove(st->hold.p, st->hold.p + i, n - i);
    st->hold.len = n - i;
    pass(d, k);
}

static int run_bad(const bpe_buf *run)
{
    const unsigned char *p = (const unsigned char *)run->p;
    for (size_t i = 0; i < run->len;) {
        int c = nb_utf8_char(p + i, run->len - i);
        if (c == 0)
            return 1;
        if (c < 0)
            return 0;
        i += (size_t)c;
    }
    return 0;
}

static void fffd_each(nb_bpe_detok *d, size_t k, size_t count)
{
    for (size_t i = 0; i < count; i++)
        feed(d, k + 1, bpe_fffd, 3);
}

static void run_end(nb_bpe_detok *d, size_t k)
{
    stage *st = &d->st[k];
    const unsigned char *p = (const unsigned char *)st->hold.p;
    if (st->hold.len && nb_utf8_bad_offset(p, st->hold.len) == st->hold.len)
        feed(d, k + 1, st->hold.p, st->hold.len);
    else
        fffd_each(d, k, st->hold.len);
    st->hold.len = 0;
    st->pending = 0;
}

static void byte_fallback(nb_bpe_detok *d, size_t k, const char *s, size_t n)
{
    stage *st = &d->st[k];
    int b = bpe_byte_token(s, n);
    if (b < 0) {
        run_end(d, k);
        feed(d, k + 1, s, n);
    } else if (st->pending) {
        fffd_each(d, k, 1);
    } else {
        char c = (char)b;
        put(d, &st->hold, &c, 1);
        if (run_bad(&st->hold)) {
            fffd_each(d, k, st->hold.len);
            st->hold.len = 0;
            st->pending = 1;
        }
    }
}

/* Strip over the joined text: leading copies go while among the first
 * `start` characters, trailing ones wait for a different character. */
static void strip_joined(nb_bpe_detok *d, size_t k, const char *s, size_t n)
{
    stage *st = &d->st[k];
    const bpe_op *op = st->op;
    st->work.len = 0;
    for (size_t i = 0; i < n;) {
        size_t len = (size_t)bpe_char_len((const unsigned char *)s + i, n - i);
        int is_c = len == op->n1 && memcmp(s + i, op->s1, len) == 0;
        if (is_c && st->dropped == st->count && st->count < op->a) {
            st->dropped++;
        } else if (is_c && op->b) {
            st->pending++;
        } else {
            for (; st->pending; st->pending--)
                put(d, &st->work, op->s1, op->n1);
            put(d, &st->work, s + i, len);
        }
        st->count++;
        i += len;
    }
    pass(d, k);
}

/* Replace over the joined text (a literal pattern): what may still begin a
 * match stays in hold. */
static void replace_joined(nb_bpe_detok *d, size_t k, const char *s, size_t n)
{
    stage *st = &d->st[k];
    const bpe_op *op = st->op;
    put(d, &st->hold, s, n);
    const char *h = st->hold.p ? st->hold.p : ""; /* NULL until something is held */
    size_t len = st->hold.len, i = 0, j = 0, keep;
    st->work.len = 0;
    for (; j + op->n1 <= len; j++) {
        if (memcmp(h + j, op->s1, op->n1) == 0) {
            put(d, &st->work, h + i, j - i);
            put(d, &st->work, op->s2, op->n2);
            i = j + op->n1;
            j = i - 1;
        }
    }
    for (keep = op->n1 - 1 < len - i ? op->n1 - 1 : len - i; keep; keep--)
        if (memcmp(h + len - keep, op->s1, keep) == 0)
            break;
    put(d, &st->work, h + i, len - keep - i);
    if (keep)
        memmove(st->hold.p, h + len - keep, keep);
    st->hold.len = keep;
    pass(d, k);
}

static void replace_token(nb_bpe_detok *d, size_t k, const char *s, size_t n)
{
    stage *st = &d->st[k];
    nb_err e;
    st->work.len = 0;
    if (bpe_find_matches(st->op->re, st->op->s1, st->op->n1, d->region, s, n, &st->segs, &e) < 0) {
        d->oom = 1;
        return;
    }
    for (size_t i = 0; i < st->segs.n; i++) {
        const bpe_seg *g = &st->segs.v[i];
        if (g->match)
            put(d, &st->work, st->op->s2, st->op->n2);
        else
            put(d, &st->work, s + g->a, g->b - g->a);
    }
    pass(d, k);
}

static void byte_level(nb_bpe_detok *d, size_t k, const char *s, size_t n)
{
    if (bpe_bl_bytes(s, n, &d->st[k].hold) < 0)
        d->oom = 1;
    byte_level_drain(d, k, 0);
}

/* Over the joined text, everything is the library's first token. */
static void metaspace(nb_bpe_detok *d, size_t k, const char *s, size_t n)
{
    stage *st = &d->st[k];
    st->work.len = 0;
    if (bpe_metaspace(st->op, st->joined || st->count++ == 0, s, n, &st->work) < 0)
        d->oom = 1;
    pass(d, k);
}

static void strip(nb_bpe_detok *d, size_t k, const char *s, size_t n)
{
    stage *st = &d->st[k];
    if (st->joined) {
        strip_joined(d, k, s, n);
        return;
    }
    st->work.len = 0;
    if (bpe_strip(st->op, s, n, &st->work) < 0)
        d->oom = 1;
    pass(d, k);
}

static void replace(nb_bpe_detok *d, size_t k, const char *s, size_t n)
{
    if (d->st[k].joined)
        replace_joined(d, k, s, n);
    else
        replace_token(d, k, s, n);
}

/* No decoder: the library joins the tokens with spaces. */
static void spaced(nb_bpe_detok *d, size_t k, const char *s, size_t n)
{
    if (d->st[k].count++)
        feed(d, k + 1, " ", 1);
    feed(d, k + 1, s, n);
}

static void fuse(nb_bpe_detok *d, size_t k, const char *s, size_t n)
{
    feed(d, k + 1, s, n);
}

static void feed(nb_bpe_detok *d, size_t k, const char *s, size_t n)
{
    typedef void (*step_fn)(nb_bpe_detok *, size_t, const char *, size_t);
    static const step_fn steps[] = {
        [NB_BPE_DEC_BYTELEVEL - NB_BPE_DEC_BYTELEVEL] = byte_level,
        [NB_BPE_DEC_METASPACE - NB_BPE_DEC_BYTELEVEL] = metaspace,
        [NB_BPE_DEC_BYTEFALLBACK - NB_BPE_DEC_BYTELEVEL] = byte_fallback,
        [NB_BPE_DEC_FUSE - NB_BPE_DEC_BYTELEVEL] = fuse,
        [NB_BPE_DEC_STRIP - NB_BPE_DEC_BYTELEVEL] = strip,
        [NB_BPE_DEC_REPLACE - NB_BPE_DEC_BYTELEVEL] = replace,
        [NB_BPE_DEC_NONE - NB_BPE_DEC_BYTELEVEL] = spaced,
    };
    if (k == d->n)
        put(d, &d->out, s, n);
    else
        steps[d->st[k].op->kind - NB_BPE_DEC_BYTELEVEL](d, k, s, n);
}

/* The end of the stream, stage by stage; then every stage starts afresh. */
static void finish(nb_bpe_detok *d)
{
    for (size_t k = 0; k < d->n; k++) {
        stage *st = &d->st[k];
        switch (st->op->kind) {
        case NB_BPE_DEC_BYTELEVEL:
            byte_level_drain(d, k, 1);
            break;
        case NB_BPE_DEC_BYTEFALLBACK:
            run_end(d, k);
            break;
        case NB_BPE_DEC_STRIP:
            st->work.len = 0;
            for (; st->joined && st->pending > st->op->b; st->pending--)
                put(d, &st->work, st->op->s1, st->op->n1);
            pass(d, k);
            break;
        case NB_BPE_DEC_REPLACE:
            if (st->joined)
                feed(d, k + 1, st->hold.p ? st->hold.p : "", st->hold.len);
            break;
        default:
            break;
        }
        st->hold.len = 0;
        st->count = st->dropped = st->pending = 0;
    }
}

nb_bpe_detok *nb_bpe_detok_new(const nb_bpe *t, int skip_special, nb_err *e)
{
    nb_bpe_detok *d = calloc(1, sizeof *d);
    if (d) {
        d->st = calloc(t->n_dec + 1, sizeof *d->st);
        d->region = onig_region_new();
    }
    if (!d || !d->st || !d->region) {
        nb_bpe_detok_free(d);
        nb_fail(e, "out of memory");
        return NULL;
    }
    d->t = t;
    d->skip_special = skip_special;
    d->n = t->n_dec;
    int joined = 0;
    for (size_t k = 0; k < d->n; k++) {
        d->st[k].op = &t->dec[k];
        d->st[k].joined = joined;
        joined |= t->dec[k].kind == NB_BPE_DEC_BYTELEVEL || t->dec[k].kind == NB_BPE_DEC_FUSE;
    }
    return d;
}

void nb_bpe_detok_free(nb_bpe_detok *d)
{
    if (!d)
        return;
    for (size_t k = 0; d->st && k < d->n; k++) {
        bpe_buf_free(&d->st[k].hold);
        bpe_buf_free(&d->st[k].work);
        free(d->st[k].segs.v);
    }
    free(d->st);
    if (d->region)
        onig_region_free(d->region, 1);
    bpe_buf_free(&d->out);
    free(d);
}

static const char *result(nb_bpe_detok *d, size_t *len)
{
    put(d, &d->out, "", 1);
    *len = d->oom ? 0 : d->out.len - 1;
    return d->oom ? NULL : d->out.p;
}

const char *nb_bpe_detok_push(nb_bpe_detok *d, int id, size_t *len)
{
    const nb_bpe *t = d->t;
    d->out.len = 0;
    if (id >= 0 && (uint32_t)id < t->n_ids) {
        const bpe_tok *k = &t->toks[id];
        size_t n;
        const char *s = bpe_tok_text(t, id, &n);
        if ((k->flags & NB_BPE_T_PRESENT) && !(d->skip_special && (k->flags & NB_BPE_T_SKIP)))
            feed(d, 0, s, n);
    }
    return result(d, len);
}

const char *nb_bpe_detok_flush(nb_bpe_detok *d, size_t *len)
{
    d->out.len = 0;
    finish(d);
    return result(d, len);
}

void nb_bpe_detok_continue(nb_bpe_detok *d)
{
    for (size_t k = 0; k < d->n; k++) {
        stage *st = &d->st[k];
        /* Strip over the joined text drops while count < start; the
         * others treat their first token (count 0) as the text's start. */
        st->count = st->op->kind == NB_BPE_DEC_STRIP && st->joined ? st->op->a : 1;
        st->dropped = 0;
    }
}
