/* Encoding, the library's order: added tokens found in the raw text, the
 * pieces between them normalized, added tokens found again in those, the
 * rest pre-tokenized and merged by the model; the post-processor's ids
 * around it all when asked. Every call has its own scratch (bpe_ctx), so
 * a loaded tokenizer is only read. */
#include "bpe_int.h"
#include "../runtime/base/utf8.h"

#include <stdlib.h>
#include <string.h>

static int ctx_init(bpe_ctx *c, const nb_bpe *t, nb_err *e)
{
    memset(c, 0, sizeof *c);
    c->t = t;
    c->e = e;
    size_t k = t->n_pre ? t->n_pre : 1;
    c->pre_buf = calloc(2 * k, sizeof *c->pre_buf);
    c->pre_segs = calloc(k, sizeof *c->pre_segs);
    c->region = onig_region_new();
    if (!c->pre_buf || !c->pre_segs || !c->region)
        return nb_fail(e, "out of memory");
    return 0;
}

static void ctx_free(bpe_ctx *c)
{
    for (size_t i = 0; c->pre_buf && i < 2 * (c->t->n_pre ? c->t->n_pre : 1); i++)
        bpe_buf_free(&c->pre_buf[i]);
    for (size_t i = 0; c->pre_segs && i < (c->t->n_pre ? c->t->n_pre : 1); i++)
        free(c->pre_segs[i].v);
    free(c->pre_buf);
    free(c->pre_segs);
    bpe_buf_free(&c->norm[0]);
    bpe_buf_free(&c->norm[1]);
    free(c->added_segs[0].v);
    free(c->added_segs[1].v);
    if (c->region)
        onig_region_free(c->region, 1);
    free(c->syms);
    free(c->heap);
    bpe_cache_free(&c->cache);
}

static int emit_ids(bpe_ctx *c, const int32_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (bpe_emit(c, ids[i]) < 0)
            return -1;
    return 0;
}

int nb_bpe_encode(const nb_bpe *t, const char *text, size_t len, int add_special, int32_t **ids,
                  size_t *n, nb_err *e)
{
    *ids = NULL;
    *n = 0;
    size_t bad = nb_utf8_bad_offset((const unsigned char *)text, len);
    if (bad != len)
        return nb_fail(e, "invalid UTF-8 at byte %zu of the text", bad);
    bpe_ctx c;
    int rc = ctx_init(&c, t, e);
    c.cache.text_len = len;
    if (rc == 0 && add_special)
        rc = emit_ids(&c, t->prefix, t->n_prefix);
    if (rc == 0)
        rc = bpe_added_split(&c, 0, text, len, 1);
    if (rc == 0 && add_special)
        rc = emit_ids(&c, t->suffix, t->n_suffix);
    if (rc == 0) {
        *ids = c.out;
        *n = c.n;
        c.out = NULL;
    }
    free(c.out);
    ctx_free(&c);
    return rc;
}
