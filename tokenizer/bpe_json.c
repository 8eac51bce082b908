/* tokenizer.json to blob, the model half: vocabulary, merges, added tokens
 * with the ids the library would give them, then the blob itself, which is
 * loaded once before it is returned so that anything the loader would
 * refuse is refused here, at convert time. JSON goes through jansson. */
#include "bpe_json.h"

#include <stdlib.h>
#include <string.h>

#define FAIL(...) nb_fail(b->e, "tokenizer.json: " __VA_ARGS__)

/* Each string is followed by a NUL, so that a token's text can be handed
 * out as a C string. */
static int str_add(bpe_builder *b, const char *s, size_t n, uint32_t *off)
{
    if (b->strs.len + n + 1 > UINT32_MAX)
        return FAIL("too large");
    *off = (uint32_t)b->strs.len;
    return bpe_buf_put(&b->strs, s, n) < 0 || bpe_buf_put(&b->strs, "", 1) < 0
               ? nb_fail(b->e, "out of memory")
               : 0;
}

static int words(bpe_buf *buf, const uint32_t *w, size_t n)
{
    if (bpe_buf_reserve(buf, 4 * n) < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 4; k++)
            buf->p[buf->len++] = (char)(w[i] >> (8 * k));
    return 0;
}

int bpe_b_op(bpe_builder *b, uint32_t kind, uint32_t a, uint32_t bb, uint32_t c, const char *s1,
             size_t n1, const char *s2, size_t n2)
{
    uint32_t o1 = 0, o2 = 0;
    if (str_add(b, s1, n1, &o1) < 0 || str_add(b, s2, n2, &o2) < 0)
        return -1;
    uint32_t w[8] = {kind, a, bb, c, o1, (uint32_t)n1, o2, (uint32_t)n2};
    return words(&b->ops[NB_BPE_STAGE(kind) - 1], w, 8) < 0 ? nb_fail(b->e, "out of memory") : 0;
}

int32_t bpe_b_lookup(const bpe_builder *b, const char *s, size_t n, int added)
{
    if (added) {
        for (size_t i = 0; i < b->added.len / 4; i++) {
            uint32_t id = bpe_rd32((const uint8_t *)b->added.p + 4 * i);
            const bpe_tok *k = &b->toks[id];
            if (k->len == n && memcmp(b->strs.p + k->off, s, n) == 0)
                return (int32_t)id;
        }
        return -1;
    }
    for (uint32_t i = (uint32_t)bpe_hash(s, n) & b->mask; b->slots[i]; i = (i + 1) & b->mask) {
        const bpe_tok *k = &b->toks[b->slots[i] - 1];
        if (k->len == n && memcmp(b->strs.p + k->off, s, n) == 0)
            return (int32_t)(b->slots[i] - 1);
    }
    return -1;
}

static int id_of(json_t *v, uint32_t *id)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        json_integer_value(v) >= (json_int_t)NB_BPE_MAX_IDS)
        return -1;
    *id = (uint32_t)json_integer_value(v);
    return 0;
}

/* The id space: every vocabulary id and every added token's. */
static int count_ids(bpe_builder *b, json_t *vocab, json_t *added)
{
    uint32_t top = 0, id = 0;
    for (void *it = json_object_iter(vocab); it; it = json_object_iter_next(vocab, it)) {
        if (id_of(json_object_iter_value(it), &id) < 0)
            return FAIL("vocabulary entry \"%.60s\" has no valid id", json_object_iter_key(it));
        top = id + 1 > top ? id + 1 : top;
    }
    size_t i;
    for (i = 0; i < json_array_size(added); i++) {
        json_t *t = json_array_get(added, i);
        if (id_of(json_object_get(t, "id"), &id) < 0)
            return FAIL("added token %zu has no valid id", i);
        top = id + 1 > top ? id + 1 : top;
    }
    b->n_ids = top ? top : 1;
    b->toks = calloc(b->n_ids, sizeof *b->toks);
    uint32_t size = 16;
    while (size < 2 * (uint32_t)json_object_size(vocab))
        size *= 2;
    b->mask = size - 1;
    b->slots = calloc(size, sizeof *b->slots);
    return b->toks && b->slots ? 0 : nb_fail(b->e, "out of memory");
}

static int vocab_read(bpe_builder *b, json_t *vocab)
{
    for (void *it = json_object_iter(vocab); it; it = json_object_iter_next(vocab, it)) {
        const char *s = json_object_iter_key(it);
        size_t n = json_object_iter_key_len(it);
        uint32_t id = 0, off = 0;
        id_of(json_object_iter_value(it), &id);
        if (b->toks[id].flags)
            return FAIL("tokens \"%.40s\" and \"%.40s\" share id %u", b->strs.p + b->toks[id].off,
                        s, id);
        if (str_add(b, s, n, &off) < 0)
            return -1;
        b->toks[id] = (bpe_tok){off, (uint32_t)n, NB_BPE_T_PRESENT | NB_BPE_T_MODEL};
        uint32_t i = (uint32_t)bpe_hash(s, n) & b->mask;
        while (b->slots[i])
            i = (i + 1) & b->mask;
        b->slots[i] = id + 1;
    }
    return 0;
}

/* A merge is "a b" (exactly one space, as the library splits it) or ["a", "b"]. */
static int merge_parts(json_t *m, const char **a, size_t *na, const char **c, size_t *nc)
{
    if (json_is_string(m)) {
        const char *s = json_string_value(m), *sp = memchr(s, ' ', json_string_length(m));
        size_t n = json_string_length(m);
        if (!sp || memchr(sp + 1, ' ', n - (size_t)(sp + 1 - s)))
            return -1;
        *a = s;
        *na = (size_t)(sp - s);
        *c = sp + 1;
        *nc = n - *na - 1;
        return 0;
    }
    json_t *l = json_array_get(m, 0), *r = json_array_get(m, 1);
    if (json_array_size(m) != 2 || !json_is_string(l) || !json_is_string(r))
        return -1;
    *a = json_string_value(l);
    *na = json_string_length(l);
    *c = json_string_value(r);
    *nc = json_string_length(r);
    return 0;
}

static int merge_read(bpe_builder *b, json_t *m, size_t rank, bpe_buf *tmp)
{
    const char *l, *r;
    size_t nl, nr;
    if (merge_parts(m, &l, &nl, &r, &nr) < 0)
        return FAIL("merge %zu is neither \"a b\" nor [\"a\", \"b\"]", rank);
    int32_t a = bpe_b_lookup(b, l, nl, 0), c = bpe_b_lookup(b, r, nr, 0);
    tmp->len = 0;
    if (bpe_buf_put(tmp, l, nl) < 0 || bpe_buf_put(tmp, r, nr) < 0)
        return nb_fail(b->e, "out of memory");
    int32_t m_id = bpe_b_lookup(b, tmp->p, tmp->len, 0);
    if (a < 0 || c < 0 || m_id < 0)
        return FAIL("merge %zu: \"%.*s\" is not in the vocabulary", rank,
                    a < 0   ? (int)nl
                    : c < 0 ? (int)nr
                            : (int)tmp->len,
                    a < 0   ? l
                    : c < 0 ? r
                            : tmp->p);
    uint32_t w[3] = {(uint32_t)a, (uint32_t)c, (uint32_t)m_id};
    return words(&b->merges, w, 3) < 0 ? nb_fail(b->e, "out of memory") : 0;
}

static int merges_read(bpe_builder *b, json_t *merges)
{
    if (!json_is_array(merges))
        return FAIL("the model has no merges list");
    bpe_buf tmp = {0};
    size_t i;
    int rc = 0;
    for (i = 0; i < json_array_size(merges); i++) {
        json_t *m = json_array_get(merges, i);
        if ((rc = merge_read(b, m, i, &tmp)) < 0)
            break;
    }
    bpe_buf_free(&tmp);
    b->n_merges = (uint32_t)json_array_size(merges);
    return rc;
}

typedef struct added_tok {
    const char *s;
    size_t n;
    uint32_t flags, id;
} added_tok;

static int added_parse(bpe_builder *b, json_t *t, size_t i, added_tok *a)
{
    static const struct {
        const char *key;
        uint32_t flag;
        int dflt;
    } opts[] = {
        {"special", NB_BPE_T_SPECIAL, 0},        {"lstrip", NB_BPE_T_LSTRIP, 0},
        {"rstrip", NB_BPE_T_RSTRIP, 0},          {"single_word", NB_BPE_T_SINGLE_WORD, 0},
        {"normalized", NB_BPE_T_NORMALIZED, -1},
    };
    if (bpe_j_str(t, "content", &a->s, &a->n, b->e) < 0 || !a->s)
        return FAIL("added token %zu has no content", i);
    a->flags = NB_BPE_T_PRESENT | NB_BPE_T_ADDED;
    a->id = 0;
    id_of(json_object_get(t, "id"), &a->id);
    for (size_t k = 0; k < sizeof opts / sizeof *opts; k++) {
        int v;
        /* AddedToken's default: normalized unless special */
        int dflt = opts[k].dflt >= 0 ? opts[k].dflt : !(a->flags & NB_BPE_T_SPECIAL);
        if (bpe_j_bool(t, opts[k].key, dflt, &v, b->e) < 0)
            return -1;
        a->flags |= v ? opts[k].flag : 0;
    }
    return 0;
}

/* AddedVocabulary::add_tokens: the id of a known text (added, then model),
 * else one past the largest added id or the vocabulary's size. */
static uint32_t library_id(bpe_builder *b, const added_tok *a, size_t vocab_len, int64_t *max)
{
    int32_t id = bpe_b_lookup(b, a->s, a->n, 1);
    if (id < 0)
        id = bpe_b_lookup(b, a->s, a->n, 0);
    if (id >= 0)
        return (uint32_t)id;
    if (*max < 0)
        return (uint32_t)vocab_len;
    return *max >= (int64_t)vocab_len || vocab_len == 0 ? (uint32_t)*max + 1 : (uint32_t)vocab_len;
}

static int added_one(bpe_builder *b, json_t *t, size_t i, size_t vocab_len, int64_t *max)
{
    added_tok a;
    if (added_parse(b, t, i, &a) < 0)
        return -1;
    if (a.n == 0)
        return 0; /* the library ignores it */
    uint32_t id = library_id(b, &a, vocab_len, max);
    if (id != a.id)
        return FAIL("added token \"%.60s\" has id %u, the library would give it %u", a.s, a.id, id);
    bpe_tok *k = &b->toks[id];
    int same =
        (k->flags & NB_BPE_T_PRESENT) && k->len == a.n && memcmp(b->strs.p + k->off, a.s, a.n) == 0;
    if ((k->flags & NB_BPE_T_PRESENT) && !same)
        return FAIL("added token \"%.60s\" collides with id %u", a.s, id);
    if (!same) {
        uint32_t off = 0;
        if (str_add(b, a.s, a.n, &off) < 0)
            return -1;
        k->off = off;
        k->len = (uint32_t)a.n;
    }
    if (!(k->flags & NB_BPE_T_ADDED)) {
        uint32_t w = id;
        if (words(&b->added, &w, 1) < 0)
            return nb_fail(b->e, "out of memory");
    }
    k->flags = (k->flags & NB_BPE_T_MODEL) | a.flags; /* a re-added token's last flags */
    *max = (int64_t)id > *max ? (int64_t)id : *max;
    return 0;
}

static int added_read(bpe_builder *b, json_t *added, size_t vocab_len)
{
    int64_t max = -1;
    size_t i;
    for (i = 0; i < json_array_size(added); i++) {
        json_t *t = json_array_get(added, i);
        if (added_one(b, t, i, vocab_len, &max) < 0)
            return -1;
    }
    return 0;
}

static int model_flags(bpe_builder *b, json_t *model)
{
    static const struct {
        const char *key;
        uint32_t flag;
    } opts[] = {
        {"byte_fallback", NB_BPE_M_BYTE_FALLBACK},
        {"ignore_merges", NB_BPE_M_IGNORE_MERGES},
        {"fuse_unk", NB_BPE_M_FUSE_UNK},
    };
    for (size_t k = 0; k < sizeof opts / sizeof *opts; k++) {
        int v;
        if (bpe_j_bool(model, opts[k].key, 0, &v, b->e) < 0)
            return -1;
        b->mflags |= v ? opts[k].flag : 0;
    }
    json_t *d = json_object_get(model, "dropout");
    if (d && !json_is_null(d) && !(json_is_number(d) && json_number_value(d) == 0))
        return FAIL("BPE dropout is not supported (it makes encoding random)");
    const char *keys[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int k = 0; k < 2; k++) {
        const char *s;
        size_t n;
        if (bpe_j_str(model, keys[k], &s, &n, b->e) < 0)
            return -1;
        if (s && n)
            return FAIL("a BPE %s is not supported", keys[k]);
    }
    return 0;
}

static int unk_read(bpe_builder *b, json_t *model)
{
    const char *s;
    size_t n;
    if (bpe_j_str(model, "unk_token", &s, &n, b->e) < 0)
        return -1;
    if (!s)
        return 0;
    int32_t id = bpe_b_lookup(b, s, n, 0);
    if (id < 0)
        return FAIL("unk_token \"%.60s\" is not in the vocabulary", s);
    b->mflags |= NB_BPE_M_UNK;
    b->unk = (uint32_t)id;
    return 0;
}

static int model_read(bpe_builder *b, json_t *root)
{
    json_t *model = json_object_get(root, "model"), *added = json_object_get(root, "added_tokens");
    json_t *vocab = json_object_get(model, "vocab");
    const char *type = bpe_j_type(model);
    if (!json_is_object(model))
        return FAIL("no model");
    if (type ? strcmp(type, "BPE") != 0 : !json_object_get(model, "merges"))
        return FAIL("the model is %s; nibble reads BPE models only", type ? type : "not BPE");
    if (!json_is_object(vocab))
        return FAIL("the model has no vocabulary");
    if (added && !json_is_array(added))
        return FAIL("added_tokens is not a list");
    if (count_ids(b, vocab, added) < 0 || vocab_read(b, vocab) < 0 || model_flags(b, model) < 0 ||
        unk_read(b, model) < 0 || merges_read(b, json_object_get(model, "merges")) < 0)
        return -1;
    return added_read(b, added, json_object_size(vocab));
}

static void put_words(uint8_t *p, const uint32_t *w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 4; k++)
            p[4 * i + k] = (uint8_t)(w[i] >> (8 * k));
}

static void *assemble(bpe_builder *b, size_t *size)
{
    size_t ops_len = b->ops[0].len + b->ops[1].len + b->ops[2].len + b->ops[3].len;
    size_t toks = 4 * NB_BPE_HEADER_WORDS, merges = toks + 12 * (size_t)b->n_ids;
    size_t ops = merges + b->merges.len, strs = ops + ops_len, total = strs + b->strs.len;
    if (total > UINT32_MAX) {
        FAIL("too large");
        return NULL;
    }
    uint8_t *p = calloc(1, total);
    if (!p) {
        nb_fail(b->e, "out of memory");
        return NULL;
    }
    uint32_t h[14] = {NB_BPE_VERSION,
                      b->n_ids,
                      b->n_merges,
                      (uint32_t)(ops_len / 32),
                      b->mflags,
                      b->unk,
                      (uint32_t)toks,
                      (uint32_t)merges,
                      (uint32_t)ops,
                      (uint32_t)strs,
                      (uint32_t)b->strs.len,
                      (uint32_t)total,
                      0,
                      0};
    memcpy(p, NB_BPE_MAGIC, 8);
    put_words(p + 8, h, 14);
    for (uint32_t id = 0; id < b->n_ids; id++) {
        const bpe_tok *k = &b->toks[id];
        uint32_t w[3] = {k->off, k->len, k->flags};
        put_words(p + toks + 12 * (size_t)id, w, 3);
    }
    if (b->merges.len)
        memcpy(p + merges, b->merges.p, b->merges.len);
    for (size_t s = 0, at = ops; s < 4; at += b->ops[s].len, s++)
        if (b->ops[s].len)
            memcpy(p + at, b->ops[s].p, b->ops[s].len);
    if (b->strs.len)
        memcpy(p + strs, b->strs.p, b->strs.len);
    *size = total;
    return p;
}

static void builder_free(bpe_builder *b)
{
    bpe_buf_free(&b->strs);
    bpe_buf_free(&b->merges);
    bpe_buf_free(&b->added);
    for (int i = 0; i < 4; i++)
        bpe_buf_free(&b->ops[i]);
    free(b->toks);
    free(b->slots);
}

/* The blob must load: the loader's checks (and its regexes) run now. */
static void *build(json_t *root, size_t *size, nb_err *e)
{
    bpe_builder b = {.e = e};
    void *blob = NULL;
    if (!json_is_object(root))
        nb_fail(e, "tokenizer.json: not a JSON object");
    else if (model_read(&b, root) == 0 && bpe_json_pipeline(&b, root) == 0)
        blob = assemble(&b, size);
    builder_free(&b);
    nb_bpe *t = blob ? nb_bpe_load_bytes(blob, *size, e) : NULL;
    if (blob && !t) {
        free(blob);
        return NULL;
    }
    nb_bpe_free(t);
    return blob;
}

void *nb_bpe_from_json(const char *path, size_t *size, nb_err *e)
{
    json_error_t err;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
    if (!root) {
        nb_fail(e, "%s: line %d column %d: %s", path, err.line, err.column, err.text);
        return NULL;
    }
    void *blob = build(root, size, e);
    json_decref(root);
    return blob;
}

void *nb_bpe_from_json_text(const char *json, size_t len, size_t *size, nb_err *e)
{
    json_error_t err;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
    if (!root) {
        nb_fail(e, "tokenizer.json: line %d column %d: %s", err.line, err.column, err.text);
        return NULL;
    }
    void *blob = build(root, size, e);
    json_decref(root);
    return blob;
}
