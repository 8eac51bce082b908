/* Loading a blob (format in bpe_int.h). Nothing in it is trusted: every
 * offset and length is checked against the blob before it is followed,
 * every id against the id space, every string is valid UTF-8, every
 * pipeline parameter in range and every regex compiles; the lookup tables
 * are built here, so a bad blob can give an error but never a wild read. */
#include "bpe_int.h"
#include "../runtime/base/utf8.h"

#include <stdlib.h>
#include <string.h>

#define GPT2_SPLIT                                                                                 \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define MAX_OPS 4096u

typedef struct hdr {
    uint32_t n_ids, n_merges, n_ops, mflags, unk, toks, merges, ops, strs, strs_size, total;
} hdr;

static int read_header(const uint8_t *p, size_t size, hdr *h, nb_err *e)
{
    if (size < 4 * NB_BPE_HEADER_WORDS || memcmp(p, NB_BPE_MAGIC, 8) != 0)
        return nb_fail(e, "tokenizer: not a BPE tokenizer blob");
    if (bpe_rd32(p + 8) != NB_BPE_VERSION)
        return nb_fail(e, "tokenizer: BPE blob version %u, this nibble reads %u", bpe_rd32(p + 8),
                       NB_BPE_VERSION);
    uint32_t w[11];
    for (int i = 0; i < 11; i++)
        w[i] = bpe_rd32(p + 12 + 4 * i);
    *h = (hdr){w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7], w[8], w[9], w[10]};
    if (h->total != size)
        return nb_fail(e, "tokenizer: BPE blob of %zu bytes says %u", size, h->total);
    if (h->n_ids == 0 || h->n_ids > NB_BPE_MAX_IDS || h->n_merges > NB_BPE_MAX_IDS ||
        h->n_ops > MAX_OPS)
        return nb_fail(e, "tokenizer: BPE blob counts out of range");
    if ((uint64_t)h->strs + h->strs_size > size || h->strs < 4 * NB_BPE_HEADER_WORDS)
        return nb_fail(e, "tokenizer: BPE string pool outside the blob");
    return 0;
}

static int check_table(size_t size, uint32_t off, uint32_t count, uint32_t rec, const char *what,
                       nb_err *e)
{
    if (off % 4 || off < 4 * NB_BPE_HEADER_WORDS || (uint64_t)off + (uint64_t)count * rec > size)
        return nb_fail(e, "tokenizer: BPE %s table outside the blob", what);
    return 0;
}

/* In the pool, NUL after it, valid UTF-8 (ASCII, most of any vocabulary,
 * quickly). */
static int check_str(const hdr *h, const uint8_t *blob, uint32_t off, uint32_t len)
{
    if ((uint64_t)off + len >= h->strs_size)
        return 0;
    const unsigned char *s = blob + h->strs + off;
    if (s[len] != 0)
        return 0;
    for (size_t i = 0; i < len;) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        int k = nb_utf8_char(s + i, len - i);
        if (k <= 0)
            return 0;
        i += (size_t)k;
    }
    return 1;
}

static int load_toks(nb_bpe *t, const hdr *h, nb_err *e)
{
    t->toks = malloc((size_t)h->n_ids * sizeof *t->toks);
    if (!t->toks)
        return nb_fail(e, "out of memory");
    for (uint32_t id = 0; id < h->n_ids; id++) {
        const uint8_t *p = t->blob + h->toks + 12 * (size_t)id;
        bpe_tok k = {bpe_rd32(p), bpe_rd32(p + 4), bpe_rd32(p + 8)};
        int present = k.flags & NB_BPE_T_PRESENT;
        int ok = !(k.flags & ~(uint32_t)NB_BPE_T_ALL) &&
                 (present ? check_str(h, t->blob, k.off, k.len) : k.flags == 0 && k.len == 0) &&
                 (!(k.flags & NB_BPE_T_ADDED) || k.len > 0);
        if (!ok)
            return nb_fail(e, "tokenizer: BPE token %u is malformed", id);
        t->toks[id] = k;
        t->n_added += (k.flags & NB_BPE_T_ADDED) != 0;
    }
    if ((t->mflags & NB_BPE_M_UNK) && (t->unk_id < 0 || (uint32_t)t->unk_id >= h->n_ids ||
                                       !(t->toks[t->unk_id].flags & NB_BPE_T_MODEL)))
        return nb_fail(e, "tokenizer: BPE unk id %d is not a vocabulary token", t->unk_id);
    return 0;
}

static int one_char(const bpe_op *op)
{
    return op->n1 > 0 && bpe_char_len((const unsigned char *)op->s1, op->n1) == (int)op->n1;
}

/* Parameters in range for the kind; -1 (with the kind named) otherwise. */
static int check_params(const nb_bpe *t, const bpe_op *op, nb_err *e)
{
    int ok = 1;
    switch (op->kind) {
    case NB_BPE_NORM_REPLACE:
    case NB_BPE_DEC_REPLACE:
        ok = op->a <= 1;
        break;
    case NB_BPE_PRE_SPLIT:
        ok = op->a <= 1 && op->b < NB_BPE_SPLIT_END && op->c <= 1;
        break;
    case NB_BPE_PRE_BYTELEVEL:
        ok = op->a <= 1 && op->b <= 1;
        break;
    case NB_BPE_PRE_METASPACE:
        ok = one_char(op) && op->a < NB_BPE_PREPEND_END && op->b <= 1;
        break;
    case NB_BPE_PRE_DIGITS:
        ok = op->a <= 1;
        break;
    case NB_BPE_DEC_METASPACE:
        ok = one_char(op) && op->a < NB_BPE_PREPEND_END;
        break;
    case NB_BPE_DEC_STRIP:
        ok = one_char(op);
        break;
    case NB_BPE_POST_PREFIX:
    case NB_BPE_POST_SUFFIX:
        ok = op->a < t->n_ids && (t->toks[op->a].flags & NB_BPE_T_PRESENT);
        break;
    default:
        ok = op->kind >= NB_BPE_NFC && op->kind < NB_BPE_KIND_END && bpe_kind_name(op->kind);
    }
    return ok ? 0
              : nb_fail(e, "tokenizer: BPE %s step has bad parameters",
                        bpe_kind_name(op->kind) ? bpe_kind_name(op->kind) : "unknown");
}

static int load_op(nb_bpe *t, const hdr *h, uint32_t i, uint32_t *stage, nb_err *e)
{
    const uint8_t *p = t->blob + h->ops + 32 * (size_t)i;
    uint32_t w[8];
    for (int j = 0; j < 8; j++)
        w[j] = bpe_rd32(p + 4 * j);
    if (!check_str(h, t->blob, w[4], w[5]) || !check_str(h, t->blob, w[6], w[7]))
        return nb_fail(e, "tokenizer: BPE step %u has a bad string", i);
    bpe_op *op = &t->ops[i];
    *op = (bpe_op){w[0], w[1], w[2], w[3], t->strs + w[4], t->strs + w[6], w[5], w[7], NULL};
    if (!bpe_kind_name(op->kind) || NB_BPE_STAGE(op->kind) < *stage)
        return nb_fail(e, "tokenizer: BPE step %u is of an unknown kind or out of order", i);
    *stage = NB_BPE_STAGE(op->kind);
    if (check_params(t, op, e) < 0)
        return -1;
    int regex = (op->kind == NB_BPE_NORM_REPLACE || op->kind == NB_BPE_DEC_REPLACE ||
                 op->kind == NB_BPE_PRE_SPLIT) &&
                op->a;
    return regex ? bpe_regex_new(&op->re, op->s1, op->n1, e) : 0;
}

/* The ops array split by stage, the post-processor's ids gathered. */
static int arrange(nb_bpe *t, nb_err *e)
{
    size_t n[5] = {0};
    for (uint32_t i = 0; i < t->n_ops; i++)
        n[NB_BPE_STAGE(t->ops[i].kind)]++;
    t->norm = t->ops;
    t->n_norm = n[NB_BPE_STAGE_NORM];
    t->pre = t->norm + t->n_norm;
    t->n_pre = n[NB_BPE_STAGE_PRE];
    t->dec = t->pre + t->n_pre;
    t->n_dec = n[NB_BPE_STAGE_DEC];
    const bpe_op *post = t->dec + t->n_dec;
    t->prefix = malloc((n[NB_BPE_STAGE_POST] + 1) * sizeof *t->prefix);
    t->suffix = malloc((n[NB_BPE_STAGE_POST] + 1) * sizeof *t->suffix);
    if (!t->prefix || !t->suffix)
        return nb_fail(e, "out of memory");
    for (size_t i = 0; i < n[NB_BPE_STAGE_POST]; i++) {
        if (post[i].kind == NB_BPE_POST_PREFIX)
            t->prefix[t->n_prefix++] = (int32_t)post[i].a;
        else
            t->suffix[t->n_suffix++] = (int32_t)post[i].a;
    }
    for (size_t i = 0; i < t->n_pre; i++)
        if (t->pre[i].kind == NB_BPE_PRE_BYTELEVEL && t->pre[i].b && !t->gpt2_re &&
            bpe_regex_new(&t->gpt2_re, GPT2_SPLIT, strlen(GPT2_SPLIT), e) < 0)
            return -1;
    return bpe_ops_check_decoders(t->dec, t->n_dec, e);
}

static int load_ops(nb_bpe *t, const hdr *h, nb_err *e)
{
    t->ops = calloc(h->n_ops + 1, sizeof *t->ops);
    if (!t->ops)
        return nb_fail(e, "out of memory");
    uint32_t stage = 0;
    for (uint32_t i = 0; i < h->n_ops; i++) {
        if (load_op(t, h, i, &stage, e) < 0)
            return -1;
        t->n_ops = i + 1; /* what nb_bpe_free releases */
    }
    return arrange(t, e);
}

static int collect_added(nb_bpe *t, nb_err *e)
{
    t->added_ids = malloc((t->n_added + 1) * sizeof *t->added_ids);
    if (!t->added_ids)
        return nb_fail(e, "out of memory");
    size_t k = 0;
    for (uint32_t id = 0; id < t->n_ids; id++)
        if (t->toks[id].flags & NB_BPE_T_ADDED)
            t->added_ids[k++] = (int32_t)id;
    return 0;
}

/* Decode skips (when asked) every id whose text, as decode sees it, is the
 * content of a special token: the library tests the text against that set,
 * so a special token that its normalizer changes is not skipped. */
static void mark_special(nb_bpe *t)
{
    for (size_t i = 0; i < t->n_added; i++) {
        const bpe_tok *sp = &t->toks[t->added_ids[i]];
        if (!(sp->flags & NB_BPE_T_SPECIAL))
            continue;
        const char *content = t->strs + sp->off;
        int32_t same = bpe_vocab_get(t, content, sp->len);
        if (same >= 0 && !(t->toks[same].flags & NB_BPE_T_ADDED))
            t->toks[same].flags |= NB_BPE_T_SKIP;
        for (size_t j = 0; j < t->n_added; j++) {
            size_t len;
            const char *text = bpe_tok_text(t, t->added_ids[j], &len);
            if (len == sp->len && memcmp(text, content, len) == 0)
                t->toks[t->added_ids[j]].flags |= NB_BPE_T_SKIP;
        }
    }
}

static int load(nb_bpe *t, const hdr *h, nb_err *e)
{
    t->n_ids = h->n_ids;
    t->n_merges = h->n_merges;
    t->mflags = h->mflags;
    t->unk_id = (int32_t)h->unk;
    t->strs = (const char *)t->blob + h->strs;
    if (h->mflags & ~(uint32_t)15)
        return nb_fail(e, "tokenizer: BPE model flags %#x unknown", h->mflags);
    if (check_table(t->size, h->toks, h->n_ids, 12, "token", e) < 0 ||
        check_table(t->size, h->merges, h->n_merges, 12, "merge", e) < 0 ||
        check_table(t->size, h->ops, h->n_ops, 32, "pipeline", e) < 0)
        return -1;
    if (load_toks(t, h, e) < 0 || bpe_tables_build(t, t->blob + h->merges, e) < 0 ||
        load_ops(t, h, e) < 0 || collect_added(t, e) < 0 || bpe_matchers_build(t, e) < 0)
        return -1;
    mark_special(t);
    return 0;
}

nb_bpe *nb_bpe_load_bytes(const void *data, size_t size, nb_err *e)
{
    hdr h = {0};
    if (read_header(data, size, &h, e) < 0)
        return NULL;
    nb_bpe *t = calloc(1, sizeof *t);
    if (t)
        t->blob = malloc(size);
    if (!t || !t->blob) {
        free(t);
        nb_fail(e, "out of memory");
        return NULL;
    }
    memcpy(t->blob, data, size);
    t->size = size;
    if (load(t, &h, e) < 0) {
        nb_bpe_free(t);
        return NULL;
    }
    return t;
}

nb_bpe *nb_bpe_load_json(const char *path, nb_err *e)
{
    size_t size;
    void *blob = nb_bpe_from_json(path, &size, e);
    if (!blob)
        return NULL;
    nb_bpe *t = nb_bpe_load_bytes(blob, size, e);
    free(blob);
    return t;
}

void nb_bpe_free(nb_bpe *t)
{
    if (!t)
        return;
    for (uint32_t i = 0; t->ops && i < t->n_ops; i++)
        bpe_regex_free(t->ops[i].re);
    bpe_regex_free(t->gpt2_re);
    bpe_matchers_free(t);
    free(t->ops);
    free(t->prefix);
    free(t->suffix);
    free(t->added_ids);
    free(t->toks);
    free(t->vocab_slots);
    free(t->merge_slots);
    free(t->blob);
    free(t);
}

int nb_bpe_vocab_size(const nb_bpe *t)
{
    return (int)t->n_ids;
}

const char *nb_bpe_piece(const nb_bpe *t, int id, size_t *len)
{
    if (id < 0 || (uint32_t)id >= t->n_ids || !(t->toks[id].flags & NB_BPE_T_PRESENT))
        return NULL;
    if (len)
        *len = t->toks[id].len;
    return t->strs + t->toks[id].off;
}

int nb_bpe_piece_to_id(const nb_bpe *t, const char *piece, size_t len)
{
    for (size_t i = 0; i < t->n_added; i++) {
        const bpe_tok *k = &t->toks[t->added_ids[i]];
        if (k->len == len && memcmp(t->strs + k->off, piece, len) == 0)
            return t->added_ids[i];
    }
    return bpe_vocab_get(t, piece, len);
}

static uint32_t flags_of(const nb_bpe *t, int id)
{
    return id >= 0 && (uint32_t)id < t->n_ids ? t->toks[id].flags : 0;
}

int nb_bpe_is_special(const nb_bpe *t, int id)
{
    return (flags_of(t, id) & NB_BPE_T_SPECIAL) != 0;
}

int nb_bpe_is_added(const nb_bpe *t, int id)
{
    return (flags_of(t, id) & NB_BPE_T_ADDED) != 0;
}

size_t nb_bpe_prefix_ids(const nb_bpe *t, const int32_t **ids)
{
    *ids = t->prefix;
    return t->n_prefix;
}

size_t nb_bpe_suffix_ids(const nb_bpe *t, const int32_t **ids)
{
    *ids = t->suffix;
    return t->n_suffix;
}

const char *bpe_kind_name(uint32_t kind)
{
    static const char *const names[] = {
        [NB_BPE_NFC] = "NFC",
        [NB_BPE_NFD] = "NFD",
        [NB_BPE_NFKC] = "NFKC",
        [NB_BPE_NFKD] = "NFKD",
        [NB_BPE_NORM_REPLACE] = "Replace",
        [NB_BPE_NORM_PREPEND] = "Prepend",
        [NB_BPE_PRE_SPLIT] = "Split",
        [NB_BPE_PRE_BYTELEVEL] = "ByteLevel",
        [NB_BPE_PRE_METASPACE] = "Metaspace",
        [NB_BPE_PRE_DIGITS] = "Digits",
        [NB_BPE_DEC_BYTELEVEL] = "ByteLevel decoder",
        [NB_BPE_DEC_METASPACE] = "Metaspace decoder",
        [NB_BPE_DEC_BYTEFALLBACK] = "ByteFallback",
        [NB_BPE_DEC_FUSE] = "Fuse",
        [NB_BPE_DEC_STRIP] = "Strip",
        [NB_BPE_DEC_REPLACE] = "Replace decoder",
        [NB_BPE_DEC_NONE] = "no decoder",
        [NB_BPE_POST_PREFIX] = "post-processor",
        [NB_BPE_POST_SUFFIX] = "post-processor",
    };
    return kind < sizeof names / sizeof *names ? names[kind] : NULL;
}

/* The detokenizer streams text once a step has joined the tokens (Fuse,
 * ByteLevel); steps that need whole tokens cannot come after that. */
int bpe_ops_check_decoders(const bpe_op *dec, size_t n, nb_err *e)
{
    int joined = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t k = dec[i].kind;
        int needs_tokens = k == NB_BPE_DEC_BYTELEVEL || k == NB_BPE_DEC_BYTEFALLBACK ||
                           (k == NB_BPE_DEC_REPLACE && (dec[i].a || dec[i].n1 == 0));
        if (joined && needs_tokens)
            return nb_fail(e, "tokenizer: decoder %s after Fuse or ByteLevel is not supported",
                           bpe_kind_name(k));
        if (k == NB_BPE_DEC_NONE && n != 1)
            return nb_fail(e, "tokenizer: BPE blob mixes no decoder with decoders");
        joined |= k == NB_BPE_DEC_BYTELEVEL || k == NB_BPE_DEC_FUSE;
    }
    return 0;
}
