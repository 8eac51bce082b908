/* The tokenizer a GGUF file stores (tokenizer.ggml.*), as the bytes a
 * nibble file carries (docs/gguf.md, Tokenizer):
 *   "gpt2": byte-level BPE, written as the tokenizer.json the Hugging Face
 *     library would read (vocabulary, merges, CONTROL and USER_DEFINED
 *     tokens as added tokens, the pipeline the "pre" name stands for) and
 *     built by the same code as any tokenizer.json (nb_bpe_from_json_text);
 *   "llama": SentencePiece, written as a ModelProto from the pieces,
 *     scores and types as stored, loaded by libsentencepiece. */
#define _POSIX_C_SOURCE 200809L
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../neon/f16.h"
#include "../../runtime/base/utf8.h"
#include "../../runtime/nibformat.h"
#include "../../tokenizer/bpe.h"
#include "../../tokenizer/tokenizer.h"
#include "convert.h"
#include "gguf.h"

typedef struct tk {
    const nb_gguf *g;
    struct nb_meta *meta; /* vocab_size in; tokenizer kind, special and end ids out */
    void *vocab;
    size_t vocab_size;
    nb_tokenizer *tok;
    int quiet;
} tk;

enum { T_NORMAL = 1, T_UNKNOWN = 2, T_CONTROL = 3, T_USER = 4, T_UNUSED = 5, T_BYTE = 6 };

typedef struct vocab {
    const char **s;
    size_t *n;
    int *type;
    float *score;
    uint64_t count;
} vocab;

static void vocab_free(vocab *v)
{
    free(v->s);
    free(v->n);
    free(v->type);
    free(v->score);
}

static const nb_gguf_kv *need_array(const tk *x, const char *key, int str, int required,
                                    nb_err *e)
{
    const nb_gguf_kv *kv = nb_gguf_find(x->g, key);
    if (!kv) {
        if (required)
            nb_fail(e, "GGUF key '%s' is missing", key);
        return NULL;
    }
    int ok = kv->type == NB_GGUF_ARR &&
             (str ? kv->elem_type == NB_GGUF_STR
                  : nb_gguf_vtype_is_int(kv->elem_type) || kv->elem_type == NB_GGUF_F32 ||
                        kv->elem_type == NB_GGUF_F64);
    if (!ok) {
        nb_fail(e, "GGUF key '%s' must be an array of %s", key, str ? "strings" : "numbers");
        return NULL;
    }
    return kv;
}

static int read_vocab(const tk *x, vocab *v, nb_err *e)
{
    memset(v, 0, sizeof *v);
    const nb_gguf_kv *toks = need_array(x, "tokenizer.ggml.tokens", 1, 1, e);
    if (!toks)
        return -1;
    const nb_gguf_kv *types = need_array(x, "tokenizer.ggml.token_type", 0, 0, e);
    const nb_gguf_kv *scores = need_array(x, "tokenizer.ggml.scores", 0, 0, e);
    if ((!types && nb_gguf_find(x->g, "tokenizer.ggml.token_type")) ||
        (!scores && nb_gguf_find(x->g, "tokenizer.ggml.scores")))
        return -1;
    v->count = toks->n;
    if (!v->count || v->count > x->meta->vocab_size)
        return nb_fail(e, "the tokenizer has %llu tokens; token_embd has %u rows",
                       (unsigned long long)v->count, x->meta->vocab_size);
    if ((types && types->n != v->count) || (scores && scores->n != v->count))
        return nb_fail(e, "tokenizer.ggml.token_type or scores do not have one entry per token");
    v->s = calloc(v->count, sizeof *v->s);
    v->n = calloc(v->count, sizeof *v->n);
    v->type = calloc(v->count, sizeof *v->type);
    v->score = calloc(v->count, sizeof *v->score);
    if (!v->s || !v->n || !v->type || !v->score)
        return nb_fail(e, "out of memory");
    nb_gguf_iter it;
    nb_gguf_iter_init(&it, toks);
    for (uint64_t i = 0; i < v->count; i++) {
        nb_gguf_iter_str(&it, &v->s[i], &v->n[i]);
        int64_t t = types ? nb_gguf_arr_int(types, i) : T_NORMAL;
        if (t < T_NORMAL || t > T_BYTE)
            return nb_fail(e, "token %llu has an unknown token type %lld",
                           (unsigned long long)i, (long long)t);
        v->type[i] = (int)t;
        v->score[i] = scores ? (float)nb_gguf_arr_float(scores, i) : 0.0f;
        if (nb_utf8_bad_offset((const unsigned char *)v->s[i], v->n[i]) != v->n[i] ||
            memchr(v->s[i], 0, v->n[i]))
            return nb_fail(e, "token %llu is not valid UTF-8 text", (unsigned long long)i);
    }
    return 0;
}

/* An optional token id key: -1 when absent. */
static int token_id(const tk *x, const vocab *v, const char *key, int32_t *id, nb_err *e)
{
    uint64_t u;
    int rc = nb_gguf_get_uint(x->g, key, UINT32_MAX, &u, e);
    *id = -1;
    if (rc < 0)
        return -1;
    if (rc && u >= v->count)
        return nb_fail(e, "%s %llu is not a token (%llu tokens)", key, (unsigned long long)u,
                       (unsigned long long)v->count);
    if (rc)
        *id = (int32_t)u;
    return 0;
}

/* The pre-tokenizers of the "pre" names, as their models' tokenizer.json
 * writes them (llama.cpp's llama-vocab.cpp lists the same regexes). */
#define GPT2_BYTELEVEL \
    "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, " \
    "\"use_regex\": true}"
#define SPLIT_BYTELEVEL(re)                                                                   \
    "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": "      \
    "{\"Regex\": \"" re "\"}, \"behavior\": \"Isolated\", \"invert\": false}, {\"type\": " \
    "\"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": false, \"use_regex\": "  \
    "false}]}"
static const struct pre {
    const char *names; /* space-separated */
    const char *pre_tokenizer, *normalizer;
    int ignore_merges, add_bos; /* add_bos: when add_bos_token is absent (llama.cpp's default) */
} pres[] = {
    {"default gpt-2 gpt2", GPT2_BYTELEVEL, NULL, 0, 0},
    {"smollm starcoder refact",
     "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Digits\", "
     "\"individual_digits\": true}, " GPT2_BYTELEVEL "]}",
     NULL, 0, 0},
    {"llama-bpe llama3",
     SPLIT_BYTELEVEL("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|"
                     "\\\\p{N}{1,3}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|"
                     "\\\\s+(?!\\\\S)|\\\\s+"),
     NULL, 1, 1},
    {"qwen2",
     SPLIT_BYTELEVEL("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|"
                     "\\\\p{N}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|"
                     "\\\\s+(?!\\\\S)|\\\\s+"),
     "{\"type\": \"NFC\"}", 0, 0},
};

static const struct pre *find_pre(const char *s, size_t n)
{
    for (size_t i = 0; i < sizeof pres / sizeof *pres; i++)
        for (const char *p = pres[i].names; *p;) {
            size_t k = strcspn(p, " ");
            if (k == n && !memcmp(p, s, n))
                return &pres[i];
            p += k + (p[k] == ' ');
        }
    return NULL;
}

static json_t *jparse(const char *text)
{
    return json_loads(text, 0, NULL);
}

/* The post-processor that adds BOS (and EOS) when the file says so. */
static json_t *post_processor(const vocab *v, int32_t bos, int32_t eos)
{
    if (bos < 0 && eos < 0)
        return json_null();
    json_t *single = json_array(), *specials = json_object();
    int32_t ids[2] = {bos, eos};
    for (int k = 0; k < 2; k++) {
        if (k == 1)
            json_array_append_new(single, json_pack("{s:{s:s,s:i}}", "Sequence", "id", "A",
                                                    "type_id", 0));
        if (ids[k] < 0)
            continue;
        json_t *s = json_stringn(v->s[ids[k]], v->n[ids[k]]);
        json_array_append_new(single, json_pack("{s:{s:O,s:i}}", "SpecialToken", "id", s,
                                                "type_id", 0));
        json_object_setn_new(specials, v->s[ids[k]], v->n[ids[k]],
                             json_pack("{s:O,s:[i],s:[O]}", "id", s, "ids", (int)ids[k],
                                       "tokens", s));
        json_decref(s);
    }
    return json_pack("{s:s,s:o,s:O,s:o}", "type", "TemplateProcessing", "single", single, "pair",
                     single, "special_tokens", specials);
}

/* vocab + merges + the pipeline as a tokenizer.json document. */
static json_t *bpe_document(const tk *x, const vocab *v, const struct pre *pre,
                            const nb_gguf_kv *merges, int32_t bos, int32_t eos, nb_err *e)
{
    json_t *jv = json_object(), *jm = json_array(), *added = json_array();
    for (uint64_t i = 0; i < v->count; i++) {
        if (json_object_getn(jv, v->s[i], v->n[i])) {
            char buf[64], safe[200];
            snprintf(buf, sizeof buf, "%.*s", (int)(v->n[i] < 40 ? v->n[i] : 40), v->s[i]);
            nb_fail(e, "the token '%s' appears twice (ids %lld and %llu)",
                    nb_utf8_escape(safe, sizeof safe, buf),
                    (long long)json_integer_value(json_object_getn(jv, v->s[i], v->n[i])),
                    (unsigned long long)i);
            goto fail;
        }
        json_object_setn_new(jv, v->s[i], v->n[i], json_integer((json_int_t)i));
        if (v->type[i] == T_CONTROL || v->type[i] == T_USER)
            json_array_append_new(
                added, json_pack("{s:I,s:s%,s:b,s:b,s:b,s:b,s:b}", "id", (json_int_t)i,
                                 "content", v->s[i], v->n[i], "single_word", 0, "lstrip", 0,
                                 "rstrip", 0, "normalized", 0, "special",
                                 v->type[i] == T_CONTROL));
    }
    nb_gguf_iter it;
    const char *s;
    size_t n;
    nb_gguf_iter_init(&it, merges);
    while (nb_gguf_iter_str(&it, &s, &n))
        json_array_append_new(jm, json_stringn(s, n));
    json_t *model = json_pack("{s:s,s:n,s:n,s:n,s:n,s:b,s:b,s:b,s:o,s:o}", "type", "BPE",
                              "dropout", "unk_token", "continuing_subword_prefix",
                              "end_of_word_suffix", "fuse_unk", 0, "byte_fallback", 0,
                              "ignore_merges", pre->ignore_merges, "vocab", jv, "merges", jm);
    json_t *doc = json_pack(
        "{s:s,s:n,s:n,s:o,s:o,s:o,s:o,s:o,s:o}", "version", "1.0", "truncation", "padding",
        "added_tokens", added, "normalizer",
        pre->normalizer ? jparse(pre->normalizer) : json_null(), "pre_tokenizer",
        jparse(pre->pre_tokenizer), "post_processor", post_processor(v, bos, eos), "decoder",
        jparse(GPT2_BYTELEVEL), "model", model);
    (void)x;
    if (!doc)
        nb_fail(e, "out of memory, or a token that is not UTF-8");
    return doc;
fail:
    json_decref(jv);
    json_decref(jm);
    json_decref(added);
    return NULL;
}

static int bos_eos_added(const tk *x, int add_bos, int32_t *bos, int32_t *eos, nb_err *e)
{
    int add_eos = 0;
    if (nb_gguf_get_bool(x->g, "tokenizer.ggml.add_bos_token", &add_bos, e) < 0 ||
        nb_gguf_get_bool(x->g, "tokenizer.ggml.add_eos_token", &add_eos, e) < 0)
        return -1;
    *bos = add_bos ? *bos : -1;
    *eos = add_eos ? *eos : -1;
    return 0;
}

/* The tokenizer.json text of a "gpt2" vocabulary (malloc'd), or NULL. */
static char *gpt2_json(tk *x, const vocab *v, nb_err *e)
{
    const char *s = "default";
    size_t n = 7;
    if (nb_gguf_get_str(x->g, "tokenizer.ggml.pre", &s, &n, e) < 0)
        return NULL;
    const struct pre *pre = find_pre(s, n);
    if (!pre) {
        char buf[48], safe[160];
        snprintf(buf, sizeof buf, "%.*s", (int)(n < 40 ? n : 40), s);
        return nb_fail(e, "tokenizer.ggml.pre '%s' is a pre-tokenizer nibble does not know "
                          "(supported: default, gpt-2, smollm, starcoder, refact, llama-bpe, "
                          "qwen2)",
                       nb_utf8_escape(safe, sizeof safe, buf)),
               NULL;
    }
    const nb_gguf_kv *merges = need_array(x, "tokenizer.ggml.merges", 1, 1, e);
    int32_t bos, eos;
    if (!merges || token_id(x, v, "tokenizer.ggml.bos_token_id", &bos, e) ||
        token_id(x, v, "tokenizer.ggml.eos_token_id", &eos, e) ||
        bos_eos_added(x, pre->add_bos, &bos, &eos, e))
        return NULL;
    json_t *doc = bpe_document(x, v, pre, merges, bos, eos, e);
    if (!doc)
        return NULL;
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (!text)
        nb_fail(e, "out of memory");
    return text;
}

static int gpt2_tokenizer(tk *x, const vocab *v, nb_err *e)
{
    char *text = gpt2_json(x, v, e);
    if (!text)
        return -1;
    nb_err why;
    x->vocab = nb_bpe_from_json_text(text, strlen(text), &x->vocab_size, &why);
    free(text);
    if (!x->vocab)
        return nb_fail(e, "the tokenizer: %s", why.msg);
    return 0;
}

char *nb_gguf_tokenizer_json(const nb_gguf *g, nb_err *e)
{
    struct nb_meta meta = {.vocab_size = UINT32_MAX};
    tk xx = {g, &meta, NULL, 0, NULL, 1};
    const char *s;
    size_t n;
    int rc = nb_gguf_get_str(g, "tokenizer.ggml.model", &s, &n, e);
    if (rc <= 0)
        return rc < 0 ? NULL : (nb_fail(e, "no tokenizer (tokenizer.ggml.model is missing)"), NULL);
    if (n != 4 || memcmp(s, "gpt2", 4))
        return nb_fail(e, "its tokenizer is not byte-level BPE (tokenizer.ggml.model 'gpt2')"),
               NULL;
    vocab v;
    char *text = read_vocab(&xx, &v, e) ? NULL : gpt2_json(&xx, &v, e);
    vocab_free(&v);
    return text;
}

/* ---- SentencePiece: a ModelProto written from the stored pieces ---- */

typedef struct pbuf {
    uint8_t *p;
    size_t n, cap;
    int failed;
} pbuf;

static void pb_bytes(pbuf *b, const void *s, size_t n)
{
    if (b->failed || n > SIZE_MAX / 2 - b->n)
        return (void)(b->failed = 1);
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n)
            cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p)
            return (void)(b->failed = 1);
        b->p = p, b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void pb_varint(pbuf *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t k = 0;
    do {
        tmp[k++] = (uint8_t)((v & 0x7F) | (v > 0x7F ? 0x80 : 0));
        v >>= 7;
    } while (v);
    pb_bytes(b, tmp, k);
}

static void pb_tag(pbuf *b, unsigned field, unsigned wire)
{
    pb_varint(b, (uint64_t)field << 3 | wire);
}

static void pb_len(pbuf *b, unsigned field, const void *s, size_t n)
{
    pb_tag(b, field, 2);
    pb_varint(b, n);
    pb_bytes(b, s, n);
}

static void pb_int(pbuf *b, unsigned field, int64_t v)
{
    pb_tag(b, field, 0);
    pb_varint(b, (uint64_t)v);
}

static void pb_float(pbuf *b, unsigned field, float f)
{
    uint32_t u = nb_f32_to_bits(f);
    uint8_t le[4] = {(uint8_t)u, (uint8_t)(u >> 8), (uint8_t)(u >> 16), (uint8_t)(u >> 24)};
    pb_tag(b, field, 5);
    pb_bytes(b, le, 4);
}

/* sentencepiece_model.proto: ModelProto { repeated SentencePiece pieces = 1
 * {piece = 1, score = 2, type = 3}; TrainerSpec trainer_spec = 2
 * {model_type = 3 (BPE = 2), byte_fallback = 35, unk_id = 40, bos_id =
 * 41, eos_id = 42, pad_id = 43}; NormalizerSpec normalizer_spec = 3
 * {name = 1, add_dummy_prefix = 3, remove_extra_whitespaces = 4,
 * escape_whitespaces = 5} }. The piece types are GGUF's token types. */
static int spm_tokenizer(tk *x, const vocab *v, nb_err *e)
{
    int32_t ids[4];
    int space = 1, byte_fallback = 0;
    static const char *const keys[4] = {"unknown_token_id", "bos_token_id", "eos_token_id",
                                        "padding_token_id"};
    for (int k = 0; k < 4; k++) {
        char key[64];
        snprintf(key, sizeof key, "tokenizer.ggml.%s", keys[k]);
        if (token_id(x, v, key, &ids[k], e))
            return -1;
    }
    if (nb_gguf_get_bool(x->g, "tokenizer.ggml.add_space_prefix", &space, e) < 0)
        return -1;
    if (!nb_gguf_find(x->g, "tokenizer.ggml.add_space_prefix"))
        space = 1;
    pbuf b = {0}, sub = {0};
    for (uint64_t i = 0; i < v->count; i++) {
        sub.n = 0;
        pb_len(&sub, 1, v->s[i], v->n[i]);
        pb_float(&sub, 2, v->score[i]);
        if (v->type[i] != T_NORMAL)
            pb_int(&sub, 3, v->type[i]);
        byte_fallback |= v->type[i] == T_BYTE;
        pb_len(&b, 1, sub.p, sub.n);
    }
    sub.n = 0;
    pb_int(&sub, 3, 2); /* BPE: pieces merge by score */
    pb_int(&sub, 35, byte_fallback);
    for (int k = 0; k < 4; k++)
        pb_int(&sub, 40 + (unsigned)k, ids[k]);
    pb_len(&b, 2, sub.p, sub.n);
    sub.n = 0;
    pb_len(&sub, 1, "identity", 8);
    pb_int(&sub, 3, space);
    pb_int(&sub, 4, 0);
    pb_int(&sub, 5, 1);
    pb_len(&b, 3, sub.p, sub.n);
    free(sub.p);
    if (b.failed || sub.failed) {
        free(b.p);
        return nb_fail(e, "out of memory");
    }
    x->vocab = b.p;
    x->vocab_size = b.n;
    return 0;
}

/* The end-of-text ids: eos, eot and eom, in that order, without repeats. */
static int end_ids(tk *x, const vocab *v, nb_err *e)
{
    static const char *const keys[] = {"tokenizer.ggml.eos_token_id",
                                       "tokenizer.ggml.eot_token_id",
                                       "tokenizer.ggml.eom_token_id"};
    struct nb_meta *m = x->meta;
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
        int32_t id;
        if (token_id(x, v, keys[k], &id, e))
            return -1;
        int seen = id < 0;
        for (uint32_t i = 0; i < m->n_end_ids; i++)
            seen |= m->end_ids[i] == id;
        if (!seen)
            m->end_ids[m->n_end_ids++] = id;
    }
    m->eos_id = m->n_end_ids ? m->end_ids[0] : -1;
    if (!m->n_end_ids)
        nb_notice(x->quiet, "the file names no end-of-text token: generation will stop only at -n "
                         "or a full context");
    return 0;
}

int nb_gguf_tokenizer(const nb_gguf *g, struct nb_meta *meta, int quiet, void **bytes,
                      size_t *size, nb_tokenizer **out, nb_err *e)
{
    tk xx = {g, meta, NULL, 0, NULL, quiet}, *x = &xx;
    const char *s;
    size_t n;
    int rc = nb_gguf_get_str(x->g, "tokenizer.ggml.model", &s, &n, e);
    if (rc <= 0)
        return rc < 0 ? -1 : nb_fail(e, "no tokenizer (tokenizer.ggml.model is missing)");
    int gpt2 = n == 4 && !memcmp(s, "gpt2", 4), llama = n == 5 && !memcmp(s, "llama", 5);
    if (!gpt2 && !llama) {
        char buf[40], safe[120];
        snprintf(buf, sizeof buf, "%.*s", (int)(n < 32 ? n : 32), s);
        return nb_fail(e, "tokenizer.ggml.model '%s' is not supported (only gpt2 and llama)",
                       nb_utf8_escape(safe, sizeof safe, buf));
    }
    vocab v;
    rc = read_vocab(x, &v, e) || (gpt2 ? gpt2_tokenizer(x, &v, e) : spm_tokenizer(x, &v, e));
    nb_err why;
    if (!rc && !(x->tok = nb_tok_load_bytes(x->vocab, x->vocab_size, &why)))
        rc = nb_fail(e, "the tokenizer does not load: %s", why.msg);
    struct nb_meta *m = x->meta;
    if (!rc) {
        m->tokenizer_kind = (uint32_t)nb_tok_kind(x->tok);
        m->bos_id = nb_tok_bos(x->tok);
        rc = token_id(x, &v, "tokenizer.ggml.unknown_token_id", &m->unk_id, e) ||
             token_id(x, &v, "tokenizer.ggml.padding_token_id", &m->pad_id, e) ||
             end_ids(x, &v, e);
    }
    vocab_free(&v);
    if (rc) {
        nb_tok_free(x->tok);
        free(x->vocab);
        return -1;
    }
    *bytes = x->vocab, *size = x->vocab_size, *out = x->tok;
    return 0;
}

