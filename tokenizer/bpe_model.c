/* The BPE model: a piece's characters looked up in the vocabulary (byte
 * fallback or unk for the missing ones), then merged pair by pair, lowest
 * rank first and leftmost among equals, with the library's priority queue
 * and its rule for stale entries, so that even odd merge lists give its
 * answer. A per-call cache keeps each distinct piece's ids. */
#include "bpe_int.h"

#include <stdlib.h>
#include <string.h>

#define CACHE_MAX_WORD 256u /* bytes; longer pieces are rare and merged anew */
#define CACHE_MAX_ENTRIES 65536u

/* A slot holds the id + 1 in its low half and the hash's high half above,
 * so that probes rarely compare strings. */
int32_t bpe_vocab_get(const nb_bpe *t, const char *s, size_t n)
{
    uint64_t h = bpe_hash(s, n);
    uint32_t i = (uint32_t)h & t->vocab_mask, tag = (uint32_t)(h >> 32);
    for (uint32_t probes = 0; probes <= t->vocab_mask; probes++, i = (i + 1) & t->vocab_mask) {
        uint64_t v = t->vocab_slots[i];
        if (v == 0)
            return -1;
        const bpe_tok *k = &t->toks[(uint32_t)v - 1];
        if ((uint32_t)(v >> 32) == tag && k->len == n && memcmp(t->strs + k->off, s, n) == 0)
            return (int32_t)((uint32_t)v - 1);
    }
    return -1;
}

static uint32_t mix64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xFF51AFD7ED558CCDull;
    k ^= k >> 33;
    k *= 0xC4CEB9FE1A85EC53ull;
    return (uint32_t)(k ^ (k >> 33));
}

/* Never 0, the empty slot's key: ids are below 2^24. */
static uint64_t pair_key(int32_t l, int32_t r)
{
    return ((uint64_t)(uint32_t)l << 32 | (uint32_t)r) + 1;
}

int bpe_merge_get(const nb_bpe *t, int32_t l, int32_t r, uint32_t *rank, int32_t *id)
{
    uint64_t key = pair_key(l, r);
    uint32_t i = mix64(key) & t->merge_mask;
    for (uint32_t probes = 0; probes <= t->merge_mask; probes++, i = (i + 1) & t->merge_mask) {
        const bpe_merge_slot *s = &t->merge_slots[i];
        if (s->key == key) {
            *rank = s->rank;
            *id = s->id;
            return 1;
        }
        if (s->key == 0)
            return 0;
    }
    return 0;
}

/* Filled to at most 70%: few probes, and half the cache misses of a table
 * twice the size. */
static uint32_t table_size(uint32_t n)
{
    uint32_t size = 16;
    while ((uint64_t)size * 7 < (uint64_t)n * 10)
        size *= 2;
    return size;
}

static int vocab_build(nb_bpe *t, nb_err *e)
{
    uint32_t n_model = 0;
    for (uint32_t id = 0; id < t->n_ids; id++)
        n_model += (t->toks[id].flags & NB_BPE_T_MODEL) != 0;
    uint32_t size = table_size(n_model);
    t->vocab_mask = size - 1;
    t->vocab_slots = calloc(size, sizeof *t->vocab_slots);
    if (!t->vocab_slots)
        return nb_fail(e, "out of memory");
    for (uint32_t id = 0; id < t->n_ids; id++) {
        const bpe_tok *k = &t->toks[id];
        if (!(k->flags & NB_BPE_T_MODEL))
            continue;
        const char *s = t->strs + k->off;
        uint64_t h = bpe_hash(s, k->len);
        uint32_t i = (uint32_t)h & t->vocab_mask, tag = (uint32_t)(h >> 32);
        for (; t->vocab_slots[i]; i = (i + 1) & t->vocab_mask) {
            uint64_t v = t->vocab_slots[i];
            const bpe_tok *o = &t->toks[(uint32_t)v - 1];
            if ((uint32_t)(v >> 32) == tag && o->len == k->len &&
                memcmp(t->strs + o->off, s, k->len) == 0)
                return nb_fail(e, "tokenizer: ids %u and %u have the same token", (uint32_t)v - 1,
                               id);
        }
        t->vocab_slots[i] = (uint64_t)tag << 32 | (id + 1);
    }
    return 0;
}

/* A merge joins two vocabulary tokens into one as long as both. Whether
 * the texts agree is not checked: the reader built the merges from them,
 * and a blob where they disagree tokenizes oddly but reads nothing wild
 * (that check would be a third of the load time). */
static int merge_ok(const nb_bpe *t, uint32_t l, uint32_t r, uint32_t m)
{
    if (l >= t->n_ids || r >= t->n_ids || m >= t->n_ids)
        return 0;
    const bpe_tok *a = &t->toks[l], *b = &t->toks[r], *c = &t->toks[m];
    return (a->flags & b->flags & c->flags & NB_BPE_T_MODEL) && (uint64_t)a->len + b->len == c->len;
}

/* In rank order; a pair listed twice keeps its last rank, as the library's
 * map does. */
static int merges_build(nb_bpe *t, const uint8_t *merges, nb_err *e)
{
    uint32_t size = table_size(t->n_merges);
    t->merge_mask = size - 1;
    t->merge_slots = calloc(size, sizeof *t->merge_slots);
    if (!t->merge_slots)
        return nb_fail(e, "out of memory");
    for (uint32_t r = 0; r < t->n_merges; r++) {
        const uint8_t *p = merges + 12 * (size_t)r;
        uint32_t l = bpe_rd32(p), rt = bpe_rd32(p + 4), m = bpe_rd32(p + 8);
        if (!merge_ok(t, l, rt, m))
            return nb_fail(e, "tokenizer: merge %u does not join two tokens into a third", r);
        uint64_t key = pair_key((int32_t)l, (int32_t)rt);
        uint32_t i = mix64(key) & t->merge_mask;
        while (t->merge_slots[i].key != 0 && t->merge_slots[i].key != key)
            i = (i + 1) & t->merge_mask;
        t->merge_slots[i] = (bpe_merge_slot){key, r, (int32_t)m};
    }
    return 0;
}

static void byte_ids_build(nb_bpe *t)
{
    static const char hex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; b++) {
        char name[7] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>', 0};
        t->byte_ids[b] = (t->mflags & NB_BPE_M_BYTE_FALLBACK) ? bpe_vocab_get(t, name, 6) : -1;
    }
}

int bpe_tables_build(nb_bpe *t, const uint8_t *merges, nb_err *e)
{
    if (vocab_build(t, e) < 0 || merges_build(t, merges, e) < 0)
        return -1;
    byte_ids_build(t);
    return 0;
}

int bpe_emit(bpe_ctx *c, int32_t id)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 256;
        int32_t *v = realloc(c->out, cap * sizeof *v);
        if (!v)
            return nb_fail(c->e, "out of memory");
        c->out = v;
        c->cap = cap;
    }
    c->out[c->n++] = id;
    return 0;
}

static int scratch(bpe_ctx *c, size_t n)
{
    if (n <= c->syms_cap)
        return 0;
    bpe_sym *s = realloc(c->syms, n * sizeof *s);
    if (s)
        c->syms = s;
    /* initial pairs plus two per merge */
    bpe_merge *h = s ? realloc(c->heap, 3 * n * sizeof *h) : NULL;
    if (!h)
        return nb_fail(c->e, "out of memory");
    c->heap = h;
    c->syms_cap = n;
    return 0;
}

static void add_sym(bpe_ctx *c, size_t *count, int32_t id, uint32_t len)
{
    size_t k = (*count)++;
    c->syms[k] = (bpe_sym){id, (int32_t)k - 1, -1, len};
    if (k > 0)
        c->syms[k - 1].next = (int32_t)k;
}

/* The library's merge_word before merging: characters to ids, missing ones
 * as their <0xAB> bytes or unk (fused when asked), or dropped when the
 * model has neither. A pending unk waits across byte-fallback characters,
 * as there. */
static size_t word_symbols(bpe_ctx *c, const char *s, size_t n)
{
    const nb_bpe *t = c->t;
    size_t count = 0;
    uint32_t unk_len = 0;
    for (size_t i = 0; i < n;) {
        uint32_t len = (uint32_t)bpe_char_len((const unsigned char *)s + i, n - i);
        int32_t id = bpe_vocab_get(t, s + i, len);
        int bytes = id < 0 && (t->mflags & NB_BPE_M_BYTE_FALLBACK);
        for (uint32_t j = 0; bytes && j < len; j++)
            bytes = t->byte_ids[(unsigned char)s[i + j]] >= 0;
        if (id >= 0) {
            if (unk_len)
                add_sym(c, &count, t->unk_id, unk_len);
            unk_len = 0;
            add_sym(c, &count, id, len);
        } else if (bytes) {
            for (uint32_t j = 0; j < len; j++)
                add_sym(c, &count, t->byte_ids[(unsigned char)s[i + j]], 1);
        } else if (t->mflags & NB_BPE_M_UNK) {
            if (unk_len && !(t->mflags & NB_BPE_M_FUSE_UNK)) {
                add_sym(c, &count, t->unk_id, unk_len);
                unk_len = 0;
            }
            unk_len += len;
        }
        i += len;
    }
    if (unk_len)
        add_sym(c, &count, t->unk_id, unk_len);
    return count;
}

static int merge_less(const bpe_merge *a, const bpe_merge *b)
{
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(bpe_merge *h, size_t *n, bpe_merge m)
{
    size_t i = (*n)++;
    while (i > 0 && merge_less(&m, &h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = m;
}

static bpe_merge heap_pop(bpe_merge *h, size_t *n)
{
    bpe_merge top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t k = 2 * i + 1;
        if (k >= *n)
            break;
        if (k + 1 < *n && merge_less(&h[k + 1], &h[k]))
            k++;
        if (!merge_less(&h[k], &last))
            break;
        h[i] = h[k];
        i = k;
    }
    if (*n)
        h[i] = last;
    return top;
}

static void push_pair(bpe_ctx *c, size_t *nh, int32_t pos)
{
    const bpe_sym *s = c->syms;
    uint32_t rank;
    int32_t id;
    if (bpe_merge_get(c->t, s[pos].id, s[s[pos].next].id, &rank, &id))
        heap_push(c->heap, nh, (bpe_merge){rank, (uint32_t)pos, id});
}

/* Word::merge_all. */
static void merge_all(bpe_ctx *c, size_t count)
{
    bpe_sym *s = c->syms;
    size_t nh = 0;
    for (size_t i = 0; i + 1 < count; i++)
        push_pair(c, &nh, (int32_t)i);
    while (nh) {
        bpe_merge top = heap_pop(c->heap, &nh);
        bpe_sym *cur = &s[top.pos];
        uint32_t rank;
        int32_t id;
        if (cur->len == 0 || cur->next < 0)
            continue;
        bpe_sym right = s[cur->next];
        if (!bpe_merge_get(c->t, cur->id, right.id, &rank, &id) || id != top.id)
            continue; /* stale */
        s[cur->next].len = 0;
        cur->id = top.id;
        cur->len += right.len;
        cur->next = right.next;
        if (right.next >= 0)
            s[right.next].prev = (int32_t)top.pos;
        if (cur->prev >= 0)
            push_pair(c, &nh, cur->prev);
        if (cur->next >= 0)
            push_pair(c, &nh, (int32_t)top.pos);
    }
}

static struct bpe_centry *cache_find(const bpe_cache *ca, uint64_t h, const char *s, size_t n,
                                     uint32_t *slot)
{
    if (!ca->slots)
        return NULL;
    uint32_t i = (uint32_t)h & ca->mask;
    for (; ca->slots[i]; i = (i + 1) & ca->mask) {
        struct bpe_centry *en = &ca->v[ca->slots[i] - 1];
        if (en->hash == h && en->key_len == n && memcmp(ca->keys.p + en->key, s, n) == 0)
            return en;
    }
    *slot = i;
    return NULL;
}

/* Sized by the text: a chat turn should not pay for a book's cache. */
static int cache_init(bpe_cache *ca, size_t text_len)
{
    uint32_t cap = 256;
    while (cap < CACHE_MAX_ENTRIES && cap < text_len / 8)
        cap *= 2;
    ca->max = cap;
    ca->mask = 2 * cap - 1;
    ca->slots = calloc((size_t)ca->mask + 1, sizeof *ca->slots);
    ca->v = malloc(cap * sizeof *ca->v);
    return ca->slots && ca->v ? 0 : -1;
}

/* Full: start again, the common words come back at once. */
static int cache_add(bpe_cache *ca, uint64_t h, const char *s, size_t n, const int32_t *ids,
                     size_t k)
{
    uint32_t slot = 0;
    if (!ca->slots && cache_init(ca, ca->text_len) < 0)
        return -1;
    if (ca->n == ca->max) {
        memset(ca->slots, 0, ((size_t)ca->mask + 1) * sizeof *ca->slots);
        ca->n = 0;
        ca->keys.len = 0;
        ca->n_ids_used = 0;
    }
    cache_find(ca, h, s, n, &slot);
    if (ca->n_ids_used + k > ca->ids_cap) {
        size_t cap = ca->ids_cap ? 2 * ca->ids_cap : 4096;
        while (cap < ca->n_ids_used + k)
            cap *= 2;
        int32_t *v = realloc(ca->ids, cap * sizeof *v);
        if (!v)
            return -1;
        ca->ids = v;
        ca->ids_cap = cap;
    }
    struct bpe_centry *en = &ca->v[ca->n];
    *en = (struct bpe_centry){h, (uint32_t)ca->keys.len, (uint32_t)n, (uint32_t)ca->n_ids_used,
                              (uint32_t)k};
    if (bpe_buf_put(&ca->keys, s, n) < 0)
        return -1;
    if (k) /* a piece may give nothing: no unk, no byte fallback */
        memcpy(ca->ids + ca->n_ids_used, ids, k * sizeof *ids);
    ca->n_ids_used += k;
    ca->slots[slot] = ++ca->n;
    return 0;
}

void bpe_cache_free(bpe_cache *ca)
{
    free(ca->slots);
    free(ca->v);
    free(ca->ids);
    bpe_buf_free(&ca->keys);
}

static int emit_all(bpe_ctx *c, const int32_t *ids, size_t k)
{
    for (size_t i = 0; i < k; i++)
        if (bpe_emit(c, ids[i]) < 0)
            return -1;
    return 0;
}

int bpe_model(bpe_ctx *c, const char *s, size_t n)
{
    if (c->t->mflags & NB_BPE_M_IGNORE_MERGES) {
        int32_t id = bpe_vocab_get(c->t, s, n);
        if (id >= 0)
            return bpe_emit(c, id);
    }
    uint64_t h = bpe_hash(s, n);
    uint32_t slot;
    const struct bpe_centry *hit =
        n <= CACHE_MAX_WORD ? cache_find(&c->cache, h, s, n, &slot) : NULL;
    if (hit) /* a word may give no ids (no unk token): then ids may be NULL */
        return hit->n_ids ? emit_all(c, c->cache.ids + hit->ids, hit->n_ids) : 0;
    if (scratch(c, n) < 0)
        return -1;
    size_t count = word_symbols(c, s, n), first = c->n;
    merge_all(c, count);
    for (size_t i = 0; i < count; i++)
        if (c->syms[i].len && bpe_emit(c, c->syms[i].id) < 0)
            return -1;
    if (n <= CACHE_MAX_WORD && cache_add(&c->cache, h, s, n, c->n > first ? c->out + first : NULL,
                                          c->n - first) < 0)
        return nb_fail(c->e, "out of memory");
    return 0;
}
