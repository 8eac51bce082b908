/* Decoding as the library does it: the ids' token texts (added tokens
 * included, special ones dropped when asked) as a list of strings that each
 * decoder rewrites in turn, then joined. Written list by list on purpose:
 * the incremental detokenizer (bpe_detok.c) is checked against it. */
#include "bpe_int.h"
#include "../runtime/base/utf8.h"

#include <stdlib.h>
#include <string.h>

const char bpe_fffd[3] = {'\xEF', '\xBF', '\xBD'};

/* A list of strings: spans [a, b) of one buffer. */
typedef struct tlist {
    bpe_buf text;
    bpe_segs items;
} tlist;

/* Item i's text: the list's buffer stays NULL until something is put
 * there, and NULL + 0 is undefined. */
static const char *tl_text(const tlist *l, size_t i)
{
    return l->text.p ? l->text.p + l->items.v[i].a : "";
}

static int tl_push(tlist *l, const char *s, size_t n)
{
    size_t a = l->text.len;
    return bpe_buf_put(&l->text, s, n) < 0 || bpe_segs_push(&l->items, a, a + n, 0) < 0 ? -1 : 0;
}

static void tl_clear(tlist *l)
{
    l->text.len = 0;
    l->items.n = 0;
}

static void tl_free(tlist *l)
{
    bpe_buf_free(&l->text);
    free(l->items.v);
}

static int hex(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* ByteFallback's test: six bytes "<0x", a u8 in hex (Rust's from_str_radix,
 * which takes a leading '+'), ">". */
int bpe_byte_token(const char *s, size_t n)
{
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>')
        return -1;
    if (s[3] == '+')
        return hex(s[4]);
    return hex(s[3]) < 0 || hex(s[4]) < 0 ? -1 : hex(s[3]) * 16 + hex(s[4]);
}

/* A token all of whose characters are GPT-2 byte characters gives those
 * bytes; any other is kept as its UTF-8. */
int bpe_bl_bytes(const char *s, size_t n, bpe_buf *out)
{
    size_t start = out->len;
    for (size_t i = 0; i < n;) {
        int len, b = bpe_char_byte(bpe_char_at((const unsigned char *)s + i, n - i, &len));
        if (b < 0) {
            out->len = start;
            return bpe_buf_put(out, s, n);
        }
        char c = (char)b;
        if (bpe_buf_put(out, &c, 1) < 0)
            return -1;
        i += (size_t)len;
    }
    return 0;
}

/* Rust replaces each maximal prefix of a valid sequence (at least one
 * byte) with one U+FFFD: the bytes that could still have begun a character. */
size_t bpe_subpart(const unsigned char *p, size_t n)
{
    size_t len = 1;
    for (size_t j = 2; j <= 3 && j <= n; j++) {
        if (nb_utf8_char(p, j) != -1)
            break;
        len = j;
    }
    return len;
}

int bpe_lossy(const unsigned char *p, size_t n, bpe_buf *out)
{
    for (size_t i = 0; i < n;) {
        int k = nb_utf8_char(p + i, n - i);
        if (k > 0) {
            if (bpe_buf_put(out, p + i, (size_t)k) < 0)
                return -1;
            i += (size_t)k;
            continue;
        }
        if (bpe_buf_put(out, bpe_fffd, 3) < 0)
            return -1;
        i += bpe_subpart(p + i, n - i);
    }
    return 0;
}

/* Strip: up to `start` leading and `stop` trailing copies of one character. */
int bpe_strip(const bpe_op *op, const char *s, size_t n, bpe_buf *out)
{
    size_t a = 0, b = n, c = op->n1;
    for (uint32_t i = 0; i < op->a && b - a >= c && memcmp(s + a, op->s1, c) == 0; i++)
        a += c;
    for (uint32_t i = 0; i < op->b && b - a >= c && memcmp(s + b - c, op->s1, c) == 0; i++)
        b -= c;
    return bpe_buf_put(out, s + a, b - a);
}

/* Metaspace: the replacement becomes a space, or nothing in the first
 * token unless the scheme is "never". */
int bpe_metaspace(const bpe_op *op, int first, const char *s, size_t n, bpe_buf *out)
{
    int drop = first && op->a != NB_BPE_PREPEND_NEVER;
    for (size_t i = 0; i < n;) {
        int r;
        if (n - i >= op->n1 && memcmp(s + i, op->s1, op->n1) == 0) {
            r = drop ? 0 : bpe_buf_put(out, " ", 1);
            i += op->n1;
        } else {
            size_t k = (size_t)bpe_char_len((const unsigned char *)s + i, n - i);
            r = bpe_buf_put(out, s + i, k);
            i += k;
        }
        if (r < 0)
            return -1;
    }
    return 0;
}

static int joined(const tlist *in, tlist *out, int byte_level)
{
    bpe_buf raw = {0};
    int rc = 0;
    for (size_t i = 0; i < in->items.n && rc == 0; i++) {
        const bpe_seg *g = &in->items.v[i];
        rc = byte_level ? bpe_bl_bytes(in->text.p + g->a, g->b - g->a, &raw)
                        : bpe_buf_put(&raw, in->text.p + g->a, g->b - g->a);
    }
    size_t a = out->text.len;
    if (rc == 0)
        rc = byte_level ? bpe_lossy((const unsigned char *)raw.p, raw.len, &out->text)
                        : bpe_buf_put(&out->text, raw.p, raw.len);
    if (rc == 0)
        rc = bpe_segs_push(&out->items, a, out->text.len, 0);
    bpe_buf_free(&raw);
    return rc;
}

/* A run of byte tokens is one string if it is valid UTF-8, else one U+FFFD
 * per byte. */
static int end_run(bpe_buf *run, tlist *out)
{
    int rc = 0;
    if (nb_utf8_bad_offset((const unsigned char *)run->p, run->len) == run->len)
        rc = run->len ? tl_push(out, run->p, run->len) : 0;
    else
        for (size_t i = 0; i < run->len && rc == 0; i++)
            rc = tl_push(out, bpe_fffd, 3);
    run->len = 0;
    return rc;
}

static int byte_fallback(const tlist *in, tlist *out)
{
    bpe_buf run = {0};
    int rc = 0;
    for (size_t i = 0; i < in->items.n && rc == 0; i++) {
        const char *s = tl_text(in, i);
        size_t n = in->items.v[i].b - in->items.v[i].a;
        int b = bpe_byte_token(s, n);
        if (b >= 0) {
            char c = (char)b;
            rc = bpe_buf_put(&run, &c, 1);
        } else if ((rc = end_run(&run, out)) == 0) {
            rc = tl_push(out, s, n);
        }
    }
    if (rc == 0)
        rc = end_run(&run, out);
    bpe_buf_free(&run);
    return rc;
}

static int per_item(const bpe_op *op, OnigRegion *rg, bpe_segs *segs, const tlist *in, tlist *out,
                    nb_err *e)
{
    for (size_t i = 0; i < in->items.n; i++) {
        const char *s = tl_text(in, i);
        size_t n = in->items.v[i].b - in->items.v[i].a, a = out->text.len;
        int rc = 0;
        if (op->kind == NB_BPE_DEC_STRIP)
            rc = bpe_strip(op, s, n, &out->text);
        else if (op->kind == NB_BPE_DEC_METASPACE)
            rc = bpe_metaspace(op, i == 0, s, n, &out->text);
        else if (bpe_find_matches(op->re, op->s1, op->n1, rg, s, n, segs, e) < 0)
            return -1;
        for (size_t k = 0; op->kind == NB_BPE_DEC_REPLACE && k < segs->n && rc == 0; k++)
            rc = segs->v[k].match
                     ? bpe_buf_put(&out->text, op->s2, op->n2)
                     : bpe_buf_put(&out->text, s + segs->v[k].a, segs->v[k].b - segs->v[k].a);
        if (rc < 0 || bpe_segs_push(&out->items, a, out->text.len, 0) < 0)
            return nb_fail(e, "out of memory");
    }
    return 0;
}

static int apply(const bpe_op *op, OnigRegion *rg, bpe_segs *segs, const tlist *in, tlist *out,
                 nb_err *e)
{
    int rc;
    tl_clear(out);
    switch (op->kind) {
    case NB_BPE_DEC_BYTELEVEL:
        rc = joined(in, out, 1);
        break;
    case NB_BPE_DEC_FUSE:
        rc = joined(in, out, 0);
        break;
    case NB_BPE_DEC_BYTEFALLBACK:
        rc = byte_fallback(in, out);
        break;
    case NB_BPE_DEC_NONE:
        rc = 0;
        for (size_t i = 0; i < in->items.n && rc == 0; i++)
            rc = (i && tl_push(out, " ", 1) < 0) || tl_push(out, tl_text(in, i),
                                                            in->items.v[i].b - in->items.v[i].a) < 0
                     ? -1
                     : 0;
        break;
    default:
        return per_item(op, rg, segs, in, out, e);
    }
    return rc < 0 ? nb_fail(e, "out of memory") : 0;
}

static int gather(const nb_bpe *t, const int32_t *ids, size_t n, int skip, tlist *l, nb_err *e)
{
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || (uint32_t)ids[i] >= t->n_ids)
            return nb_fail(e, "decode: id %d is outside the vocabulary (%u)", ids[i], t->n_ids);
        const bpe_tok *k = &t->toks[ids[i]];
        if (!(k->flags & NB_BPE_T_PRESENT) || (skip && (k->flags & NB_BPE_T_SKIP)))
            continue;
        size_t len;
        const char *s = bpe_tok_text(t, ids[i], &len);
        if (tl_push(l, s, len) < 0)
            return nb_fail(e, "out of memory");
    }
    return 0;
}

char *nb_bpe_decode(const nb_bpe *t, const int32_t *ids, size_t n, int skip_special, size_t *len,
                    nb_err *e)
{
    tlist l[2] = {{{0}, {0}}, {{0}, {0}}};
    bpe_segs segs = {0};
    OnigRegion *rg = onig_region_new();
    int cur = 0, rc = rg ? gather(t, ids, n, skip_special, &l[0], e) : nb_fail(e, "out of memory");
    for (size_t i = 0; i < t->n_dec && rc == 0; i++, cur ^= 1)
        rc = apply(&t->dec[i], rg, &segs, &l[cur], &l[cur ^ 1], e);
    bpe_buf text = {0};
    for (size_t i = 0; rc == 0 && i < l[cur].items.n; i++) {
        const bpe_seg *g = &l[cur].items.v[i];
        if (bpe_buf_put(&text, tl_text(&l[cur], i), g->b - g->a) < 0)
            rc = nb_fail(e, "out of memory");
    }
    if (rc == 0 && bpe_buf_put(&text, "", 1) < 0)
        rc = nb_fail(e, "out of memory");
    tl_free(&l[0]);
    tl_free(&l[1]);
    free(segs.v);
    if (rg)
        onig_region_free(rg, 1);
    if (rc < 0) {
        bpe_buf_free(&text);
        return NULL;
    }
    if (len)
        *len = text.len - 1;
    return text.p;
}
