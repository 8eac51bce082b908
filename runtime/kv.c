#include "kv.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"

/* ---- building ---- */

static void put(nb_kvw *w, const void *p, size_t n)
{
    if (w->failed)
        return;
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + n)
            cap *= 2;
        uint8_t *b = realloc(w->buf, cap);
        if (!b) {
            w->failed = 1;
            return;
        }
        w->buf = b;
        w->cap = cap;
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static void put_u32(nb_kvw *w, uint32_t v)
{
    put(w, &v, 4);
}

/* The entry's head; the count goes in front when the bytes are taken. */
static void head(nb_kvw *w, const char *key, uint8_t type)
{
    size_t n = strlen(key);
    if (!w->len)
        put_u32(w, 0); /* the count, filled in by nb_kvw_bytes */
    if (!n || n > NB_KV_MAX_KEY || w->n >= NB_KV_MAX_ENTRIES) {
        w->failed = 1;
        return;
    }
    uint16_t len = (uint16_t)n;
    put(w, &len, 2);
    put(w, &type, 1);
    put(w, key, n);
    w->n++;
}

void nb_kvw_u32(nb_kvw *w, const char *key, uint32_t v)
{
    head(w, key, NB_KV_U32);
    put_u32(w, v);
}

void nb_kvw_i32(nb_kvw *w, const char *key, int32_t v)
{
    head(w, key, NB_KV_I32);
    put(w, &v, 4);
}

void nb_kvw_f32(nb_kvw *w, const char *key, float v)
{
    head(w, key, NB_KV_F32);
    put(w, &v, 4);
}

void nb_kvw_str(nb_kvw *w, const char *key, const char *s)
{
    size_t n = strlen(s);
    head(w, key, NB_KV_STR);
    if (n > UINT32_MAX)
        w->failed = 1;
    put_u32(w, (uint32_t)n);
    put(w, s, n);
}

void nb_kvw_i32s(nb_kvw *w, const char *key, const int32_t *v, uint32_t n)
{
    head(w, key, NB_KV_I32S);
    put_u32(w, n);
    put(w, v, (size_t)n * 4);
}

const void *nb_kvw_bytes(nb_kvw *w, size_t *n, nb_err *e)
{
    if (w->failed) {
        nb_fail(e, "cannot build the model's key/value metadata (out of memory, or a key "
                   "longer than %d bytes, or more than %d keys)",
                NB_KV_MAX_KEY, NB_KV_MAX_ENTRIES);
        return NULL;
    }
    if (!w->len)
        put_u32(w, 0);
    if (w->failed) {
        nb_fail(e, "out of memory");
        return NULL;
    }
    memcpy(w->buf, &w->n, 4);
    *n = w->len;
    return w->buf;
}

void nb_kvw_free(nb_kvw *w)
{
    free(w->buf);
    memset(w, 0, sizeof *w);
}

/* ---- reading ---- */

/* A cursor over the bytes: every read is bounded, and fails once. */
typedef struct cur {
    const uint8_t *p;
    size_t n, at;
    int bad;
} cur;

static const uint8_t *take(cur *c, size_t k)
{
    if (c->bad || k > c->n - c->at) {
        c->bad = 1;
        return NULL;
    }
    const uint8_t *p = c->p + c->at;
    c->at += k;
    return p;
}

static uint32_t take_u32(cur *c)
{
    const uint8_t *p = take(c, 4);
    uint32_t v = 0;
    if (p)
        memcpy(&v, p, 4);
    return v;
}

/* Reads one entry at the cursor: its key and value. */
static int next(cur *c, const char **key, size_t *key_len, nb_kv_val *v)
{
    const uint8_t *h = take(c, 3);
    if (!h)
        return -1;
    uint16_t len;
    memcpy(&len, h, 2);
    memset(v, 0, sizeof *v);
    v->type = h[2];
    *key_len = len;
    *key = (const char *)take(c, len);
    const uint8_t *p;
    switch (v->type) {
    case NB_KV_U32: case NB_KV_I32: case NB_KV_F32:
        if ((p = take(c, 4))) {
            memcpy(&v->u32, p, 4);
            memcpy(&v->i32, p, 4);
            memcpy(&v->f32, p, 4);
        }
        break;
    case NB_KV_STR:
        v->len = take_u32(c);
        v->str = (const char *)take(c, v->len);
        break;
    case NB_KV_I32S:
        v->len = take_u32(c);
        v->str = (const char *)take(c, (size_t)v->len * 4);
        break;
    default:
        return -2;
    }
    return c->bad ? -1 : 0;
}

static int key_ok(const char *k, size_t n)
{
    if (!n || n > NB_KV_MAX_KEY)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((k[i] >= 'a' && k[i] <= 'z') || (k[i] >= '0' && k[i] <= '9') || k[i] == '.' ||
              k[i] == '_'))
            return 0;
    return 1;
}

static int value_ok(const nb_kv_val *v)
{
    if (v->type == NB_KV_F32)
        return isfinite(v->f32);
    if (v->type == NB_KV_STR)
        return !memchr(v->str, 0, v->len) &&
               nb_utf8_bad_offset((const unsigned char *)v->str, v->len) == v->len;
    return 1;
}

int nb_kv_check(const void *p, size_t n, nb_err *e)
{
    cur c = {p, n, 0, 0};
    uint32_t count = take_u32(&c);
    if (c.bad || count > NB_KV_MAX_ENTRIES)
        return nb_fail(e, "key/value metadata: %s", c.bad ? "cut short" : "too many entries");
    for (uint32_t i = 0; i < count; i++) {
        const char *key;
        size_t len;
        nb_kv_val v;
        int r = next(&c, &key, &len, &v);
        if (r)
            return nb_fail(e, "key/value metadata: entry %u %s", i,
                           r == -2 ? "has an unknown type" : "runs past the section");
        if (!key_ok(key, len))
            return nb_fail(e, "key/value metadata: entry %u has an invalid key", i);
        if (!value_ok(&v))
            return nb_fail(e, "key/value metadata: '%.*s' has an invalid value", (int)len, key);
        cur d = {p, n, 4, 0}; /* quadratic, but at most 256 entries, once at load */
        for (uint32_t j = 0; j < i; j++) {
            const char *k2 = NULL;
            size_t l2 = 0;
            nb_kv_val v2;
            next(&d, &k2, &l2, &v2);
            if (l2 == len && !memcmp(k2, key, len))
                return nb_fail(e, "key/value metadata: '%.*s' appears twice", (int)len, key);
        }
    }
    if (c.at != n)
        return nb_fail(e, "key/value metadata: %zu bytes after the last entry", n - c.at);
    return 0;
}

uint32_t nb_kv_count(const void *p, size_t n)
{
    cur c = {p, n, 0, 0};
    return p ? take_u32(&c) : 0;
}

int nb_kv_at(const void *p, size_t n, uint32_t i, const char **key, size_t *key_len,
             nb_kv_val *v)
{
    cur c = {p, n, 4, 0};
    if (!p || i >= nb_kv_count(p, n))
        return -1;
    for (uint32_t j = 0; j <= i; j++)
        if (next(&c, key, key_len, v))
            return -1;
    return 0;
}

static const char *type_name(uint32_t t)
{
    static const char *names[] = {"u32", "i32", "f32", "string", "i32 array"};
    return t < 5 ? names[t] : "?";
}

int nb_kv_get(const void *p, size_t n, const char *key, uint32_t type, nb_kv_val *v, nb_err *e)
{
    uint32_t count = nb_kv_count(p, n);
    size_t want = strlen(key);
    cur c = {p, n, 4, 0};
    for (uint32_t i = 0; i < count; i++) {
        const char *k;
        size_t len;
        if (next(&c, &k, &len, v))
            return 0;
        if (len != want || memcmp(k, key, len))
            continue;
        if (v->type != type)
            return nb_fail(e, "metadata key '%s' is a %s, expected a %s", key,
                           type_name(v->type), type_name(type));
        return 1;
    }
    return 0;
}

int32_t nb_kv_i32_at(const nb_kv_val *v, uint32_t i)
{
    int32_t x;
    memcpy(&x, v->str + (size_t)i * 4, 4);
    return x;
}
