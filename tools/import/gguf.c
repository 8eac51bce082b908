/* GGUF files read over a mapping, every count and length bounded by the
 * bytes left before it is used (tools/gguf.h), and ggml's block formats
 * dequantized as its reference code does. */
#define _POSIX_C_SOURCE 200809L
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../neon/f16.h"
#include "../../runtime/base/utf8.h"

/* Bounds no real file comes near (a large mixture of experts has a few
 * thousand tensors and a hundred keys), so that a hostile count is refused
 * before the reader allocates for it. */
#define MAX_KV (1u << 20)
#define MAX_TENSORS (1u << 20)
#define MAX_KEY 65535
#define MAX_ARRAY_DEPTH 3

/* ---- type tables ---- */

static const struct ggml_type_info {
    uint32_t id, block, bytes;
    const char *name;
} ggml_types[] = {
    {0, 1, 4, "F32"},          {1, 1, 2, "F16"},        {2, 32, 18, "Q4_0"},
    {3, 32, 20, "Q4_1"},       {6, 32, 22, "Q5_0"},     {7, 32, 24, "Q5_1"},
    {8, 32, 34, "Q8_0"},       {9, 32, 36, "Q8_1"},     {10, 256, 84, "Q2_K"},
    {11, 256, 110, "Q3_K"},    {12, 256, 144, "Q4_K"},  {13, 256, 176, "Q5_K"},
    {14, 256, 210, "Q6_K"},    {15, 256, 292, "Q8_K"},  {16, 256, 66, "IQ2_XXS"},
    {17, 256, 74, "IQ2_XS"},   {18, 256, 98, "IQ3_XXS"}, {19, 256, 50, "IQ1_S"},
    {20, 32, 18, "IQ4_NL"},    {21, 256, 110, "IQ3_S"}, {22, 256, 82, "IQ2_S"},
    {23, 256, 136, "IQ4_XS"},  {24, 1, 1, "I8"},        {25, 1, 2, "I16"},
    {26, 1, 4, "I32"},         {27, 1, 8, "I64"},       {28, 1, 8, "F64"},
    {29, 256, 56, "IQ1_M"},    {30, 1, 2, "BF16"},      {34, 256, 54, "TQ1_0"},
    {35, 256, 66, "TQ2_0"},    {39, 32, 17, "MXFP4"},
};

static const struct ggml_type_info *type_info(uint32_t type)
{
    for (size_t i = 0; i < sizeof ggml_types / sizeof *ggml_types; i++)
        if (ggml_types[i].id == type)
            return &ggml_types[i];
    return NULL;
}

const char *nb_ggml_type_name(uint32_t type)
{
    static char buf[32];
    const struct ggml_type_info *t = type_info(type);
    if (t)
        return t->name;
    snprintf(buf, sizeof buf, "type %u", type);
    return buf;
}

int nb_ggml_type_block(uint32_t type, uint32_t *block, uint32_t *bytes)
{
    const struct ggml_type_info *t = type_info(type);
    if (!t)
        return -1;
    *block = t->block;
    *bytes = t->bytes;
    return 0;
}

static const char *const vtype_names[] = {"u8",  "i8",  "u16",    "i16",   "u32", "i32", "f32",
                                          "bool", "string", "array", "u64", "i64", "f64"};

const char *nb_gguf_vtype_name(uint32_t t)
{
    return t < sizeof vtype_names / sizeof *vtype_names ? vtype_names[t] : "unknown";
}

/* Bytes of a scalar value type, 0 for strings, arrays and unknown types. */
static unsigned vtype_width(uint32_t t)
{
    static const unsigned w[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < sizeof w / sizeof *w ? w[t] : 0;
}

int nb_gguf_vtype_is_int(uint32_t t)
{
    return t <= NB_GGUF_I32 || t == NB_GGUF_U64 || t == NB_GGUF_I64;
}

/* ---- little-endian reads ---- */

static uint64_t le(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* An integer value of type t at p, sign-extended. */
static int64_t int_at(const uint8_t *p, uint32_t t)
{
    switch (t) {
    case NB_GGUF_U8: return p[0];
    case NB_GGUF_I8: return (int8_t)p[0];
    case NB_GGUF_U16: return (int64_t)le(p, 2);
    case NB_GGUF_I16: return (int16_t)le(p, 2);
    case NB_GGUF_U32: return (int64_t)le(p, 4);
    case NB_GGUF_I32: return (int32_t)le(p, 4);
    case NB_GGUF_BOOL: return p[0] != 0;
    default: return (int64_t)le(p, 8); /* u64 values past INT64_MAX read negative */
    }
}

static double float_at(const uint8_t *p, uint32_t t)
{
    if (t == NB_GGUF_F32)
        return nb_bits_to_f32((uint32_t)le(p, 4));
    uint64_t u = le(p, 8);
    double d;
    memcpy(&d, &u, 8);
    return d;
}

/* ---- the cursor ---- */

typedef struct cur {
    const uint8_t *p, *end;
    nb_err *e;
} cur;

static uint64_t left(const cur *c)
{
    return (uint64_t)(c->end - c->p);
}

static int rd(cur *c, unsigned n, uint64_t *v, const char *what)
{
    *v = 0;
    if (left(c) < n)
        return nb_fail(c->e, "truncated: the file ends inside %s", what);
    *v = le(c->p, n);
    c->p += n;
    return 0;
}

static int rd_str(cur *c, const uint8_t **s, uint64_t *n, const char *what)
{
    *s = NULL;
    if (rd(c, 8, n, what))
        return -1;
    if (*n > left(c))
        return nb_fail(c->e, "%s claims a string of %llu bytes, past the end of the file", what,
                       (unsigned long long)*n);
    *s = c->p;
    c->p += *n;
    return 0;
}

/* Checks (and steps over) one value of type t. */
static int skip_value(cur *c, uint32_t t, int depth, const char *what)
{
    unsigned w = vtype_width(t);
    uint64_t n, et;
    const uint8_t *s;
    if (w) {
        if (left(c) < w)
            return nb_fail(c->e, "truncated: the file ends inside %s", what);
        c->p += w;
        return 0;
    }
    if (t == NB_GGUF_STR)
        return rd_str(c, &s, &n, what);
    if (t != NB_GGUF_ARR)
        return nb_fail(c->e, "%s has unknown value type %u", what, t);
    if (rd(c, 4, &et, what) || rd(c, 8, &n, what))
        return -1;
    if (et == NB_GGUF_ARR && depth >= MAX_ARRAY_DEPTH)
        return nb_fail(c->e, "%s nests arrays more than %d deep", what, MAX_ARRAY_DEPTH);
    w = vtype_width((uint32_t)et);
    /* the smallest an element can be bounds the count by the bytes left */
    unsigned least = w ? w : et == NB_GGUF_STR ? 8 : et == NB_GGUF_ARR ? 12 : 1;
    if (et != NB_GGUF_STR && et != NB_GGUF_ARR && !w)
        return nb_fail(c->e, "%s is an array of unknown value type %llu", what,
                       (unsigned long long)et);
    if (n > left(c) / least)
        return nb_fail(c->e, "%s claims %llu elements, more than the rest of the file holds",
                       what, (unsigned long long)n);
    if (w) {
        c->p += n * w;
        return 0;
    }
    for (uint64_t i = 0; i < n; i++)
        if (skip_value(c, (uint32_t)et, depth + 1, what))
            return -1;
    return 0;
}

/* ---- key/values ---- */

static int cmp_kv(const void *a, const void *b)
{
    const nb_gguf_kv *x = *(const nb_gguf_kv *const *)a, *y = *(const nb_gguf_kv *const *)b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int r = memcmp(x->key, y->key, n);
    return r ? r : (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

/* A key or name for a message: escaped, cut. */
static const char *safe_text(char *buf, size_t cap, const char *s, size_t n)
{
    char tmp[96];
    size_t k = n < sizeof tmp - 1 ? n : sizeof tmp - 1;
    memcpy(tmp, s, k);
    tmp[k] = 0;
    for (size_t i = 0; i < k; i++)
        if (!tmp[i])
            tmp[i] = '?';
    return nb_utf8_escape(buf, cap, tmp);
}

static int check_unique_keys(nb_gguf *g, nb_err *e)
{
    if (g->n_kv < 2)
        return 0;
    const nb_gguf_kv **v = malloc(g->n_kv * sizeof *v);
    if (!v)
        return nb_fail(e, "out of memory");
    for (size_t i = 0; i < g->n_kv; i++)
        v[i] = &g->kv[i];
    qsort(v, g->n_kv, sizeof *v, cmp_kv);
    int rc = 0;
    for (size_t i = 1; i < g->n_kv && !rc; i++)
        if (!cmp_kv(&v[i - 1], &v[i])) {
            char buf[200];
            rc = nb_fail(e, "the key '%s' appears twice",
                         safe_text(buf, sizeof buf, v[i]->key, v[i]->key_len));
        }
    free(v);
    return rc;
}

static int read_kvs(nb_gguf *g, cur *c, uint64_t n, nb_err *e)
{
    g->kv = calloc(n ? n : 1, sizeof *g->kv);
    if (!g->kv)
        return nb_fail(e, "out of memory");
    for (uint64_t i = 0; i < n; i++) {
        nb_gguf_kv *kv = &g->kv[i];
        const uint8_t *key;
        uint64_t klen, type;
        char what[160], buf[120];
        snprintf(what, sizeof what, "key/value %llu", (unsigned long long)i);
        if (rd_str(c, &key, &klen, what))
            return -1;
        if (!klen || klen > MAX_KEY)
            return nb_fail(e, "key/value %llu has a key of %llu bytes (1 to %d)",
                           (unsigned long long)i, (unsigned long long)klen, MAX_KEY);
        kv->key = (const char *)key, kv->key_len = (size_t)klen;
        g->n_kv = (size_t)i + 1;
        snprintf(what, sizeof what, "the value of '%s'",
                 safe_text(buf, sizeof buf, kv->key, kv->key_len));
        if (rd(c, 4, &type, what))
            return -1;
        kv->type = (uint32_t)type;
        if (type > NB_GGUF_F64)
            return nb_fail(e, "%s has unknown value type %llu", what, (unsigned long long)type);
        const uint8_t *start = c->p;
        if (skip_value(c, kv->type, 0, what))
            return -1;
        if (kv->type == NB_GGUF_STR) {
            kv->n = le(start, 8);
            kv->val = start + 8;
        } else if (kv->type == NB_GGUF_ARR) {
            kv->elem_type = (uint32_t)le(start, 4);
            kv->n = le(start + 4, 8);
            kv->val = start + 12;
        } else {
            kv->n = 1;
            kv->val = start;
        }
    }
    return check_unique_keys(g, e);
}

const nb_gguf_kv *nb_gguf_find(const nb_gguf *g, const char *key)
{
    size_t n = strlen(key);
    for (size_t i = 0; i < g->n_kv; i++)
        if (g->kv[i].key_len == n && !memcmp(g->kv[i].key, key, n))
            return &g->kv[i];
    return NULL;
}

/* ---- tensor infos ---- */

static int cmp_tensor(const void *a, const void *b)
{
    const nb_gguf_tensor *x = *(const nb_gguf_tensor *const *)a;
    const nb_gguf_tensor *y = *(const nb_gguf_tensor *const *)b;
    return strcmp(x->name, y->name);
}

static int check_unique_names(nb_gguf *g, nb_err *e)
{
    if (g->n_tensors < 2)
        return 0;
    const nb_gguf_tensor **v = malloc(g->n_tensors * sizeof *v);
    if (!v)
        return nb_fail(e, "out of memory");
    for (size_t i = 0; i < g->n_tensors; i++)
        v[i] = &g->tensors[i];
    qsort(v, g->n_tensors, sizeof *v, cmp_tensor);
    int rc = 0;
    for (size_t i = 1; i < g->n_tensors && !rc; i++)
        if (!strcmp(v[i - 1]->name, v[i]->name)) {
            char buf[200];
            rc = nb_fail(e, "the tensor '%s' appears twice",
                         nb_utf8_escape(buf, sizeof buf, v[i]->name));
        }
    free(v);
    return rc;
}

/* Bytes of a tensor of this type and shape, or -1 with a message. */
static int tensor_size(nb_gguf_tensor *t, nb_err *e)
{
    char buf[200];
    const char *name = nb_utf8_escape(buf, sizeof buf, t->name);
    const struct ggml_type_info *ti = type_info(t->type);
    if (!ti)
        return nb_fail(e, "tensor '%s' has an unknown type %u", name, t->type);
    uint64_t n = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        if (!t->ne[d])
            return nb_fail(e, "tensor '%s' has an empty dimension", name);
        if (t->ne[d] > (uint64_t)INT64_MAX / n)
            return nb_fail(e, "tensor '%s': its shape overflows (%llu elements and more)", name,
                           (unsigned long long)n);
        n *= t->ne[d];
    }
    if (t->ne[0] % ti->block)
        return nb_fail(e, "tensor '%s': rows of %llu elements are not whole %s blocks of %u",
                       name, (unsigned long long)t->ne[0], ti->name, ti->block);
    uint64_t blocks = n / ti->block;
    if (blocks > (uint64_t)INT64_MAX / ti->bytes)
        return nb_fail(e, "tensor '%s': its size overflows", name);
    t->n_elems = n;
    t->size = blocks * ti->bytes;
    return 0;
}

static int read_tensor(nb_gguf *g, cur *c, uint64_t i, nb_err *e)
{
    nb_gguf_tensor *t = &g->tensors[i];
    const uint8_t *name;
    uint64_t nlen, v;
    char what[64];
    snprintf(what, sizeof what, "tensor info %llu", (unsigned long long)i);
    if (rd_str(c, &name, &nlen, what))
        return -1;
    if (nlen >= NB_GGUF_NAME_LEN || memchr(name, 0, nlen) || !nlen)
        return nb_fail(e, "tensor info %llu has a name of %llu bytes (1 to %d, no NUL)",
                       (unsigned long long)i, (unsigned long long)nlen, NB_GGUF_NAME_LEN - 1);
    memcpy(t->name, name, nlen);
    t->name[nlen] = 0;
    g->n_tensors = (size_t)i + 1;
    char buf[200];
    snprintf(what, sizeof what, "tensor info '%s'", nb_utf8_escape(buf, 40, t->name));
    if (rd(c, 4, &v, what))
        return -1;
    if (v < 1 || v > NB_GGUF_MAX_DIMS)
        return nb_fail(e, "tensor '%s' has %llu dimensions (1 to %d)",
                       nb_utf8_escape(buf, sizeof buf, t->name), (unsigned long long)v,
                       NB_GGUF_MAX_DIMS);
    t->n_dims = (uint32_t)v;
    for (int d = 0; d < NB_GGUF_MAX_DIMS; d++)
        t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++)
        if (rd(c, 8, &t->ne[d], what))
            return -1;
    if (rd(c, 4, &v, what))
        return -1;
    t->type = (uint32_t)v;
    if (rd(c, 8, &t->offset, what))
        return -1;
    return tensor_size(t, e);
}

/* Places every tensor's data, now that the data's start is known. */
static int place_tensors(nb_gguf *g, nb_err *e)
{
    uint64_t room = g->size > g->data_offset ? g->size - g->data_offset : 0;
    for (size_t i = 0; i < g->n_tensors; i++) {
        nb_gguf_tensor *t = &g->tensors[i];
        char buf[200];
        const char *name = nb_utf8_escape(buf, sizeof buf, t->name);
        if (t->offset % g->alignment)
            return nb_fail(e, "tensor '%s': its offset %llu is not a multiple of the alignment "
                              "%u", name, (unsigned long long)t->offset, g->alignment);
        if (t->offset > room || t->size > room - t->offset)
            return nb_fail(e, "tensor '%s': its %llu bytes at offset %llu lie past the end of "
                              "the file (%llu bytes of data)",
                           name, (unsigned long long)t->size, (unsigned long long)t->offset,
                           (unsigned long long)room);
        t->data = g->base + g->data_offset + t->offset;
        t->offset += g->data_offset;
    }
    return 0;
}

const nb_gguf_tensor *nb_gguf_tensor_find(const nb_gguf *g, const char *name)
{
    for (size_t i = 0; i < g->n_tensors; i++)
        if (!strcmp(g->tensors[i].name, name))
            return &g->tensors[i];
    return NULL;
}

/* ---- the whole file ---- */

static int parse(nb_gguf *g, nb_err *e)
{
    cur c = {g->base, g->base + g->size, e};
    uint64_t version, n_tensors, n_kv;
    if (g->size < 4 || memcmp(g->base, "GGUF", 4))
        return nb_fail(e, "not a GGUF file (no GGUF magic)");
    c.p += 4;
    if (rd(&c, 4, &version, "the header"))
        return -1;
    g->version = (uint32_t)version;
    if (version == 1)
        return nb_fail(e, "GGUF version 1 is not supported (only 2 and 3: convert it again "
                          "with a newer llama.cpp)");
    if (version < 2 || version > 3)
        return nb_fail(e, "GGUF version %llu is not supported (only 2 and 3)",
                       (unsigned long long)version);
    if (rd(&c, 8, &n_tensors, "the header") || rd(&c, 8, &n_kv, "the header"))
        return -1;
    if (n_kv > MAX_KV || n_kv > left(&c) / 12)
        return nb_fail(e, "the header claims %llu key/values, more than the file can hold",
                       (unsigned long long)n_kv);
    if (n_tensors > MAX_TENSORS || n_tensors > left(&c) / 32)
        return nb_fail(e, "the header claims %llu tensors, more than the file can hold",
                       (unsigned long long)n_tensors);
    if (read_kvs(g, &c, n_kv, e))
        return -1;
    g->alignment = NB_GGUF_DEFAULT_ALIGNMENT;
    const nb_gguf_kv *al = nb_gguf_find(g, "general.alignment");
    if (al) {
        if (al->type != NB_GGUF_U32)
            return nb_fail(e, "general.alignment is a %s, not a u32", nb_gguf_vtype_name(al->type));
        uint32_t a = (uint32_t)le(al->val, 4);
        if (!a || (a & (a - 1)))
            return nb_fail(e, "general.alignment %u is not a power of two", a);
        g->alignment = a;
    }
    g->tensors = calloc(n_tensors ? n_tensors : 1, sizeof *g->tensors);
    if (!g->tensors)
        return nb_fail(e, "out of memory");
    for (uint64_t i = 0; i < n_tensors; i++)
        if (read_tensor(g, &c, i, e))
            return -1;
    if (check_unique_names(g, e))
        return -1;
    uint64_t at = (uint64_t)(c.p - g->base), a = g->alignment;
    g->data_offset = at + (a - at % a) % a; /* at < 2^63, a <= 2^31: no overflow */
    if (g->n_tensors && g->data_offset > g->size)
        return nb_fail(e, "truncated: the file ends before its tensor data");
    return place_tensors(g, e);
}

int nb_gguf_open_mem(nb_gguf *g, const void *data, size_t size, nb_err *e)
{
    memset(g, 0, sizeof *g);
    g->base = data;
    g->size = size;
    return parse(g, e);
}

int nb_gguf_open(nb_gguf *g, const char *path, nb_err *e)
{
    memset(g, 0, sizeof *g);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return nb_fail(e, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size < 4 ||
        (uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return nb_fail(e, "'%s' is not a GGUF file (not a regular file, or too short)", path);
    }
    void *base = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (base == MAP_FAILED)
        return nb_fail(e, "cannot map '%s': %s", path, strerror(errno));
    g->base = base;
    g->size = (size_t)st.st_size;
    g->mapped = 1;
    nb_err why;
    if (parse(g, &why))
        return nb_fail(e, "'%s': %s", path, why.msg);
    return 0;
}

void nb_gguf_close(nb_gguf *g)
{
    if (g->mapped)
        munmap((void *)g->base, g->size);
    free(g->kv);
    free(g->tensors);
    memset(g, 0, sizeof *g);
}

int nb_gguf_is(const char *path)
{
    char magic[4];
    FILE *f = fopen(path, "rb");
    int yes = f && fread(magic, 1, 4, f) == 4 && !memcmp(magic, "GGUF", 4);
    if (f)
        fclose(f);
    return yes;
}

/* ---- typed reads ---- */

static const nb_gguf_kv *typed(const nb_gguf *g, const char *key, int ok, const nb_gguf_kv *kv,
                               const char *want, int *rc, nb_err *e)
{
    *rc = kv ? 1 : 0;
    if (kv && !ok) {
        *rc = nb_fail(e, "GGUF key '%s' is a %s, not %s", key, nb_gguf_vtype_name(kv->type),
                      want);
        return NULL;
    }
    (void)g;
    return kv;
}

int nb_gguf_get_uint(const nb_gguf *g, const char *key, uint64_t max, uint64_t *v, nb_err *e)
{
    int rc;
    const nb_gguf_kv *kv = nb_gguf_find(g, key);
    kv = typed(g, key, kv && nb_gguf_vtype_is_int(kv->type), kv, "an integer", &rc, e);
    if (rc != 1)
        return rc;
    int64_t x = int_at(kv->val, kv->type);
    uint64_t u = kv->type == NB_GGUF_U64 ? le(kv->val, 8) : (uint64_t)x;
    if ((kv->type != NB_GGUF_U64 && x < 0) || u > max)
        return nb_fail(e, "GGUF key '%s' is %lld, out of range (0 to %llu)", key,
                       (long long)x, (unsigned long long)max);
    *v = u;
    return 1;
}

int nb_gguf_get_float(const nb_gguf *g, const char *key, double *v, nb_err *e)
{
    int rc;
    const nb_gguf_kv *kv = nb_gguf_find(g, key);
    kv = typed(g, key, kv && (kv->type == NB_GGUF_F32 || kv->type == NB_GGUF_F64), kv,
               "a float", &rc, e);
    if (rc == 1)
        *v = float_at(kv->val, kv->type);
    return rc;
}

int nb_gguf_get_str(const nb_gguf *g, const char *key, const char **s, size_t *n, nb_err *e)
{
    int rc;
    const nb_gguf_kv *kv = nb_gguf_find(g, key);
    kv = typed(g, key, kv && kv->type == NB_GGUF_STR, kv, "a string", &rc, e);
    if (rc == 1)
        *s = (const char *)kv->val, *n = (size_t)kv->n;
    return rc;
}

int nb_gguf_get_bool(const nb_gguf *g, const char *key, int *v, nb_err *e)
{
    int rc;
    const nb_gguf_kv *kv = nb_gguf_find(g, key);
    kv = typed(g, key, kv && kv->type == NB_GGUF_BOOL, kv, "a bool", &rc, e);
    if (rc == 1)
        *v = kv->val[0] != 0;
    return rc;
}

int64_t nb_gguf_arr_int(const nb_gguf_kv *kv, uint64_t i)
{
    return int_at(kv->val + i * vtype_width(kv->elem_type), kv->elem_type);
}

double nb_gguf_arr_float(const nb_gguf_kv *kv, uint64_t i)
{
    const uint8_t *p = kv->val + i * vtype_width(kv->elem_type);
    if (kv->elem_type == NB_GGUF_F32 || kv->elem_type == NB_GGUF_F64)
        return float_at(p, kv->elem_type);
    return (double)int_at(p, kv->elem_type);
}

void nb_gguf_iter_init(nb_gguf_iter *it, const nb_gguf_kv *kv)
{
    it->p = kv->val;
    it->left = kv->type == NB_GGUF_ARR && kv->elem_type == NB_GGUF_STR ? kv->n : 0;
}

int nb_gguf_iter_str(nb_gguf_iter *it, const char **s, size_t *n)
{
    if (!it->left)
        return 0;
    uint64_t len = le(it->p, 8);
    *s = (const char *)it->p + 8;
    *n = (size_t)len;
    it->p += 8 + len;
    it->left--;
    return 1;
}

/* ---- dequantization ----
 * Each formula is written as ggml's reference (and the gguf package's
 * numpy) evaluates it, one rounding per operation: products and sums are
 * separate statements, so no compiler fuses them (ISO C mode contracts
 * nothing across statements), and the values are those llama.cpp runs. */

static float h2f(const uint8_t *p)
{
    return nb_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

static void deq_q4_0(const uint8_t *b, float *y)
{
    float d = h2f(b);
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)((b[2 + j] & 0xF) - 8);
        y[j + 16] = d * (float)((b[2 + j] >> 4) - 8);
    }
}

static void deq_q4_1(const uint8_t *b, float *y)
{
    float d = h2f(b), m = h2f(b + 2);
    for (int j = 0; j < 16; j++) {
        float lo = d * (float)(b[4 + j] & 0xF), hi = d * (float)(b[4 + j] >> 4);
        y[j] = lo + m;
        y[j + 16] = hi + m;
    }
}

static void deq_q5(const uint8_t *b, float *y, int has_min)
{
    float d = h2f(b), m = has_min ? h2f(b + 2) : 0;
    const uint8_t *qh = b + (has_min ? 4 : 2), *qs = qh + 4;
    uint32_t h = (uint32_t)le(qh, 4);
    for (int j = 0; j < 32; j++) {
        int q = ((qs[j % 16] >> (j < 16 ? 0 : 4)) & 0xF) | (int)((h >> j) & 1) << 4;
        if (has_min) {
            float p = d * (float)q;
            y[j] = p + m;
        } else {
            y[j] = d * (float)(q - 16);
        }
    }
}

static void deq_q8_0(const uint8_t *b, float *y)
{
    float d = h2f(b);
    for (int j = 0; j < 32; j++)
        y[j] = (float)(int8_t)b[2 + j] * d;
}

static void deq_q2_k(const uint8_t *b, float *y)
{
    const uint8_t *sc = b, *qs = b + 16;
    float d = h2f(b + 80), dmin = h2f(b + 82);
    for (int e = 0; e < 256; e++) {
        int s = e / 16;
        float dl = d * (float)(sc[s] & 0xF), ml = dmin * (float)(sc[s] >> 4);
        int q = (qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
        float p = dl * (float)q;
        y[e] = p - ml;
    }
}

static void deq_q3_k(const uint8_t *b, float *y)
{
    const uint8_t *hm = b, *qs = b + 32, *sc = b + 96;
    float d = h2f(b + 108);
    for (int e = 0; e < 256; e++) {
        int i = e / 16;
        int lo = (sc[i % 8] >> (4 * (i / 8))) & 0xF, hi = (sc[8 + i % 4] >> (2 * (i / 4))) & 3;
        float dl = d * (float)((lo | hi << 4) - 32);
        int ql = (qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
        int qh = (hm[e % 32] >> (e / 32)) & 1;
        y[e] = dl * (float)(ql - ((qh ^ 1) << 2));
    }
}

/* Q4_K and Q5_K: 8 sub-blocks of 32 with 6-bit scales and mins. */
static void k_scale_min(const uint8_t *s, int j, int *sc, int *m)
{
    if (j < 4) {
        *sc = s[j] & 0x3F;
        *m = s[j + 4] & 0x3F;
    } else {
        *sc = (s[j + 4] & 0x0F) | ((s[j - 4] >> 2) & 0x30);
        *m = (s[j + 4] >> 4) | ((s[j] >> 2) & 0x30);
    }
}

static void deq_q45_k(const uint8_t *b, float *y, int five)
{
    float d = h2f(b), dmin = h2f(b + 2);
    const uint8_t *scales = b + 4, *qh = b + 16, *qs = b + (five ? 48 : 16);
    for (int s = 0; s < 8; s++) {
        int sc, m;
        k_scale_min(scales, s, &sc, &m);
        float d1 = d * (float)sc, m1 = dmin * (float)m;
        for (int i = 0; i < 32; i++) {
            int q = (qs[32 * (s / 2) + i] >> (4 * (s % 2))) & 0xF;
            if (five)
                q |= ((qh[i] >> s) & 1) << 4;
            float p = d1 * (float)q;
            y[32 * s + i] = p - m1;
        }
    }
}

static void deq_q6_k(const uint8_t *b, float *y)
{
    const uint8_t *ql = b, *qh = b + 128, *sc = b + 192;
    float d = h2f(b + 208);
    for (int e = 0; e < 256; e++) {
        int a = e / 128, r = e % 128;
        int lo = (ql[64 * a + r % 64] >> (4 * (r / 64))) & 0xF;
        int hi = (qh[32 * a + r % 32] >> (2 * (r / 32))) & 3;
        float dd = d * (float)(int8_t)sc[e / 16];
        y[e] = dd * (float)((lo | hi << 4) - 32);
    }
}

int nb_ggml_can_dequant(uint32_t type)
{
    switch (type) {
    case NB_GGML_F32: case NB_GGML_F16: case NB_GGML_BF16: case NB_GGML_Q4_0:
    case NB_GGML_Q4_1: case NB_GGML_Q5_0: case NB_GGML_Q5_1: case NB_GGML_Q8_0:
    case NB_GGML_Q2_K: case NB_GGML_Q3_K: case NB_GGML_Q4_K: case NB_GGML_Q5_K:
    case NB_GGML_Q6_K: return 1;
    default: return 0;
    }
}

void nb_ggml_dequant(uint32_t type, const void *src, size_t n, float *out)
{
    const uint8_t *p = src;
    const struct ggml_type_info *ti = type_info(type);
    if (!ti || !nb_ggml_can_dequant(type))
        return;
    for (size_t i = 0; i < n / ti->block; i++, p += ti->bytes, out += ti->block) {
        switch (type) {
        case NB_GGML_F32: *out = nb_bits_to_f32((uint32_t)le(p, 4)); break;
        case NB_GGML_F16: *out = h2f(p); break;
        case NB_GGML_BF16: *out = nb_bf16_to_f32((uint16_t)le(p, 2)); break;
        case NB_GGML_Q4_0: deq_q4_0(p, out); break;
        case NB_GGML_Q4_1: deq_q4_1(p, out); break;
        case NB_GGML_Q5_0: deq_q5(p, out, 0); break;
        case NB_GGML_Q5_1: deq_q5(p, out, 1); break;
        case NB_GGML_Q8_0: deq_q8_0(p, out); break;
        case NB_GGML_Q2_K: deq_q2_k(p, out); break;
        case NB_GGML_Q3_K: deq_q3_k(p, out); break;
        case NB_GGML_Q4_K: deq_q45_k(p, out, 0); break;
        case NB_GGML_Q5_K: deq_q45_k(p, out, 1); break;
        case NB_GGML_Q6_K: deq_q6_k(p, out); break;
        default: break;
        }
    }
}
