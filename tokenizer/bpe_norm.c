/* The normalizers, applied to each piece of text between added tokens, as
 * the library does: Unicode forms through utf8proc, Replace, Prepend. */
#include "bpe_int.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

static utf8proc_option_t form_options(uint32_t kind)
{
    switch (kind) {
    case NB_BPE_NFC:
        return UTF8PROC_STABLE | UTF8PROC_COMPOSE;
    case NB_BPE_NFD:
        return UTF8PROC_STABLE | UTF8PROC_DECOMPOSE;
    case NB_BPE_NFKC:
        return UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
    default:
        return UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
    }
}

/* utf8proc_map without its allocations: decompose (and order the marks)
 * into code points, compose when asked, encode back. */
static int form_segment(const char *s, size_t n, utf8proc_option_t opt, bpe_buf *out, nb_err *e)
{
    utf8proc_int32_t stack[256], *cp = stack;
    utf8proc_ssize_t cap = 256;
    const utf8proc_uint8_t *u = (const utf8proc_uint8_t *)s;
    utf8proc_ssize_t k = utf8proc_decompose(u, (utf8proc_ssize_t)n, cp, cap, opt);
    if (k > cap) {
        cap = k;
        cp = malloc((size_t)cap * sizeof *cp);
        if (!cp)
            return nb_fail(e, "out of memory");
        k = utf8proc_decompose(u, (utf8proc_ssize_t)n, cp, cap, opt);
    }
    int rc = 0;
    if (k >= 0)
        k = utf8proc_normalize_utf32(cp, k, opt);
    if (k < 0)
        rc = nb_fail(e, "normalizing: %s", utf8proc_errmsg(k));
    else if (bpe_buf_reserve(out, 4 * (size_t)k) < 0)
        rc = nb_fail(e, "out of memory");
    for (utf8proc_ssize_t i = 0; rc == 0 && i < k; i++)
        out->len += (size_t)utf8proc_encode_char(cp[i], (utf8proc_uint8_t *)out->p + out->len);
    if (cp != stack)
        free(cp);
    return rc;
}

/* ASCII is fixed by every form, and no composition takes an ASCII
 * character second, so a text splits before any ASCII character into
 * parts that normalize alone: only the runs of other characters (with the
 * ASCII character before them, which may compose with a following mark)
 * go through utf8proc. */
static int unicode_form(uint32_t kind, const char *s, size_t n, bpe_buf *out, nb_err *e)
{
    utf8proc_option_t opt = form_options(kind);
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && (unsigned char)s[j] < 0x80)
            j++;
        size_t start = j == n ? n : j > i ? j - 1 : i;
        if (bpe_buf_put(out, s + i, start - i) < 0)
            return nb_fail(e, "out of memory");
        if (j == n)
            break;
        size_t k = j;
        while (k < n && (unsigned char)s[k] >= 0x80)
            k++;
        if (form_segment(s + start, k - start, opt, out, e) < 0)
            return -1;
        i = k;
    }
    return 0;
}

static int replace(const bpe_op *op, OnigRegion *rg, bpe_segs *segs, const char *s, size_t n,
                   bpe_buf *out, nb_err *e)
{
    if (bpe_find_matches(op->re, op->s1, op->n1, rg, s, n, segs, e) < 0)
        return -1;
    for (size_t i = 0; i < segs->n; i++) {
        const bpe_seg *g = &segs->v[i];
        int r =
            g->match ? bpe_buf_put(out, op->s2, op->n2) : bpe_buf_put(out, s + g->a, g->b - g->a);
        if (r < 0)
            return nb_fail(e, "out of memory");
    }
    return 0;
}

static int apply(const bpe_op *op, OnigRegion *rg, bpe_segs *segs, const char *s, size_t n,
                 bpe_buf *out, nb_err *e)
{
    out->len = 0;
    switch (op->kind) {
    case NB_BPE_NORM_REPLACE:
        return replace(op, rg, segs, s, n, out, e);
    case NB_BPE_NORM_PREPEND:
        if (n && (bpe_buf_put(out, op->s1, op->n1) < 0 || bpe_buf_put(out, s, n) < 0))
            return nb_fail(e, "out of memory");
        return 0;
    default:
        return unicode_form(op->kind, s, n, out, e);
    }
}

int bpe_normalize_with(const nb_bpe *t, bpe_buf buf[2], OnigRegion *rg, const char *s, size_t n,
                       const char **out, size_t *out_n, nb_err *e)
{
    bpe_segs segs = {0};
    int rc = 0;
    for (size_t i = 0; i < t->n_norm && rc == 0; i++) {
        bpe_buf *dst = &buf[i & 1];
        rc = apply(&t->norm[i], rg, &segs, s, n, dst, e);
        s = dst->p ? dst->p : "";
        n = dst->len;
    }
    free(segs.v);
    *out = s;
    *out_n = n;
    return rc;
}

int bpe_normalize(bpe_ctx *c, const char *s, size_t n, const char **out, size_t *out_n)
{
    return bpe_normalize_with(c->t, c->norm, c->region, s, n, out, out_n, c->e);
}
