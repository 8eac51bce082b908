/* tokenizer.json to blob, the pipeline half: normalizers, pre-tokenizers,
 * decoders and post-processor, Sequences flattened (each step of a
 * Sequence applies to the whole output of the one before, so a flat list
 * is the same thing). A component nibble does not have is an error that
 * names it, never silently skipped. */
#include "bpe_json.h"

#include <string.h>

#define FAIL(...) nb_fail(b->e, "tokenizer.json: " __VA_ARGS__)

const char *bpe_j_type(json_t *obj)
{
    return json_string_value(json_object_get(obj, "type"));
}

int bpe_j_bool(json_t *obj, const char *key, int dflt, int *out, nb_err *e)
{
    json_t *v = json_object_get(obj, key);
    *out = dflt;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return nb_fail(e, "tokenizer.json: \"%s\" is not true or false", key);
    *out = json_is_true(v);
    return 0;
}

int bpe_j_str(json_t *obj, const char *key, const char **s, size_t *n, nb_err *e)
{
    json_t *v = json_object_get(obj, key);
    *s = NULL;
    *n = 0;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return nb_fail(e, "tokenizer.json: \"%s\" is not a string", key);
    *s = json_string_value(v);
    *n = json_string_length(v);
    return 0;
}

static int j_uint(bpe_builder *b, json_t *obj, const char *key, uint32_t *out)
{
    json_t *v = json_object_get(obj, key);
    *out = 0;
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 0xFFFF)
        return FAIL("\"%s\" is not a small count", key);
    *out = (uint32_t)json_integer_value(v);
    return 0;
}

/* {"String": s} or {"Regex": r}; a regex must compile. */
static int pattern(bpe_builder *b, json_t *obj, const char **s, size_t *n, uint32_t *regex)
{
    json_t *p = json_object_get(obj, "pattern");
    *regex = json_object_get(p, "Regex") != NULL;
    if (bpe_j_str(p, *regex ? "Regex" : "String", s, n, b->e) < 0)
        return -1;
    if (!*s)
        return FAIL("a pattern is neither {\"String\": ...} nor {\"Regex\": ...}");
    OnigRegex re = NULL;
    if (*regex && bpe_regex_new(&re, *s, *n, b->e) < 0) {
        char msg[sizeof b->e->msg];
        memcpy(msg, b->e->msg, sizeof msg);
        return FAIL("%.290s", msg);
    }
    bpe_regex_free(re);
    return 0;
}

static int list(bpe_builder *b, json_t *obj, const char *key, int (*each)(bpe_builder *, json_t *))
{
    json_t *v = json_object_get(obj, key);
    size_t i;
    if (!json_is_array(v))
        return FAIL("a Sequence without \"%s\"", key);
    for (i = 0; i < json_array_size(v); i++) {
        json_t *x = json_array_get(v, i);
        if (each(b, x) < 0)
            return -1;
    }
    return 0;
}

static int one_char(bpe_builder *b, json_t *obj, const char *key, const char **s, size_t *n)
{
    if (bpe_j_str(obj, key, s, n, b->e) < 0)
        return -1;
    if (!*s || *n == 0 || bpe_char_len((const unsigned char *)*s, *n) != (int)*n)
        return FAIL("\"%s\" is not one character", key);
    return 0;
}

static int normalizer(bpe_builder *b, json_t *j)
{
    static const char *const forms[] = {"NFC", "NFD", "NFKC", "NFKD"};
    const char *type = bpe_j_type(j), *s, *c;
    size_t n, nc;
    uint32_t regex;
    if (!j || json_is_null(j))
        return 0;
    if (!type)
        return FAIL("a normalizer without a type");
    for (uint32_t k = 0; k < 4; k++)
        if (strcmp(type, forms[k]) == 0)
            return bpe_b_op(b, NB_BPE_NFC + k, 0, 0, 0, "", 0, "", 0);
    if (strcmp(type, "Sequence") == 0)
        return list(b, j, "normalizers", normalizer);
    if (strcmp(type, "Replace") == 0)
        return pattern(b, j, &s, &n, &regex) < 0 || bpe_j_str(j, "content", &c, &nc, b->e) < 0 || !c
                   ? FAIL("Replace needs a pattern and a content")
                   : bpe_b_op(b, NB_BPE_NORM_REPLACE, regex, 0, 0, s, n, c, nc);
    if (strcmp(type, "Prepend") == 0)
        return bpe_j_str(j, "prepend", &s, &n, b->e) < 0 || !s
                   ? FAIL("Prepend needs a string")
                   : bpe_b_op(b, NB_BPE_NORM_PREPEND, 0, 0, 0, s, n, "", 0);
    return FAIL("normalizer %.40s is not supported", type);
}

static int behaviour(bpe_builder *b, json_t *j, uint32_t *out)
{
    static const char *const names[] = {"Removed", "Isolated", "MergedWithPrevious",
                                        "MergedWithNext", "Contiguous"};
    const char *s = json_string_value(json_object_get(j, "behavior"));
    for (uint32_t k = 0; s && k < NB_BPE_SPLIT_END; k++)
        if (strcmp(s, names[k]) == 0) {
            *out = k;
            return 0;
        }
    return FAIL("Split behavior %.40s is unknown", s ? s : "(missing)");
}

/* prepend_scheme, or the older add_prefix_space (true: always). */
static int prepend_scheme(bpe_builder *b, json_t *j, uint32_t *out)
{
    static const char *const names[] = {"always", "first", "never"};
    const char *s = json_string_value(json_object_get(j, "prepend_scheme"));
    int add;
    if (!s) {
        if (bpe_j_bool(j, "add_prefix_space", 1, &add, b->e) < 0)
            return -1;
        *out = add ? NB_BPE_PREPEND_ALWAYS : NB_BPE_PREPEND_NEVER;
        return 0;
    }
    for (uint32_t k = 0; k < NB_BPE_PREPEND_END; k++)
        if (strcmp(s, names[k]) == 0) {
            *out = k;
            return 0;
        }
    return FAIL("Metaspace prepend_scheme %.40s is unknown", s);
}

static int split(bpe_builder *b, json_t *j)
{
    const char *s;
    size_t n;
    uint32_t regex = 0, beh = 0;
    int invert = 0;
    if (pattern(b, j, &s, &n, &regex) < 0 || behaviour(b, j, &beh) < 0 ||
        bpe_j_bool(j, "invert", 0, &invert, b->e) < 0)
        return -1;
    return bpe_b_op(b, NB_BPE_PRE_SPLIT, regex, beh, (uint32_t)invert, s, n, "", 0);
}

static int metaspace(bpe_builder *b, json_t *j, uint32_t kind)
{
    const char *s;
    size_t n;
    uint32_t scheme = 0;
    int do_split = 1;
    if (one_char(b, j, "replacement", &s, &n) < 0 || prepend_scheme(b, j, &scheme) < 0 ||
        bpe_j_bool(j, "split", 1, &do_split, b->e) < 0)
        return -1;
    return bpe_b_op(b, kind, scheme, (uint32_t)do_split, 0, s, n, "", 0);
}

static int pre_tokenizer(bpe_builder *b, json_t *j)
{
    const char *type = bpe_j_type(j);
    int x, y;
    if (!j || json_is_null(j))
        return 0;
    if (!type)
        return FAIL("a pre-tokenizer without a type");
    if (strcmp(type, "Sequence") == 0)
        return list(b, j, "pretokenizers", pre_tokenizer);
    if (strcmp(type, "Split") == 0)
        return split(b, j);
    if (strcmp(type, "ByteLevel") == 0)
        return bpe_j_bool(j, "add_prefix_space", 1, &x, b->e) < 0 ||
                       bpe_j_bool(j, "use_regex", 1, &y, b->e) < 0
                   ? -1
                   : bpe_b_op(b, NB_BPE_PRE_BYTELEVEL, (uint32_t)x, (uint32_t)y, 0, "", 0, "", 0);
    if (strcmp(type, "Metaspace") == 0)
        return metaspace(b, j, NB_BPE_PRE_METASPACE);
    if (strcmp(type, "Digits") == 0)
        return bpe_j_bool(j, "individual_digits", 0, &x, b->e) < 0
                   ? -1
                   : bpe_b_op(b, NB_BPE_PRE_DIGITS, (uint32_t)x, 0, 0, "", 0, "", 0);
    return FAIL("pre-tokenizer %.40s is not supported", type);
}

static int strip(bpe_builder *b, json_t *j)
{
    const char *s;
    size_t n;
    uint32_t start = 0, stop = 0;
    if (one_char(b, j, "content", &s, &n) < 0 || j_uint(b, j, "start", &start) < 0 ||
        j_uint(b, j, "stop", &stop) < 0)
        return -1;
    return bpe_b_op(b, NB_BPE_DEC_STRIP, start, stop, 0, s, n, "", 0);
}

static int decoder(bpe_builder *b, json_t *j)
{
    const char *type = bpe_j_type(j), *s, *c;
    size_t n, nc;
    uint32_t regex;
    if (!type)
        return FAIL("a decoder without a type");
    if (strcmp(type, "Sequence") == 0)
        return list(b, j, "decoders", decoder);
    if (strcmp(type, "ByteLevel") == 0)
        return bpe_b_op(b, NB_BPE_DEC_BYTELEVEL, 0, 0, 0, "", 0, "", 0);
    if (strcmp(type, "ByteFallback") == 0)
        return bpe_b_op(b, NB_BPE_DEC_BYTEFALLBACK, 0, 0, 0, "", 0, "", 0);
    if (strcmp(type, "Fuse") == 0)
        return bpe_b_op(b, NB_BPE_DEC_FUSE, 0, 0, 0, "", 0, "", 0);
    if (strcmp(type, "Metaspace") == 0)
        return metaspace(b, j, NB_BPE_DEC_METASPACE);
    if (strcmp(type, "Strip") == 0)
        return strip(b, j);
    if (strcmp(type, "Replace") == 0)
        return pattern(b, j, &s, &n, &regex) < 0 || bpe_j_str(j, "content", &c, &nc, b->e) < 0 || !c
                   ? FAIL("Replace needs a pattern and a content")
                   : bpe_b_op(b, NB_BPE_DEC_REPLACE, regex, 0, 0, s, n, c, nc);
    return FAIL("decoder %.40s is not supported", type);
}

static int post_id(bpe_builder *b, uint32_t kind, json_t *id)
{
    if (!json_is_integer(id) || json_integer_value(id) < 0 ||
        json_integer_value(id) >= (json_int_t)b->n_ids ||
        !(b->toks[json_integer_value(id)].flags & NB_BPE_T_PRESENT))
        return FAIL("the post-processor names an id outside the vocabulary");
    return bpe_b_op(b, kind, (uint32_t)json_integer_value(id), 0, 0, "", 0, "", 0);
}

/* TemplateProcessing's single template: the special tokens' ids before the
 * sequence, then after it. */
static int template(bpe_builder *b, json_t *j)
{
    json_t *single = json_object_get(j, "single"), *specials = json_object_get(j, "special_tokens");
    size_t i, k;
    uint32_t kind = NB_BPE_POST_PREFIX;
    if (!json_is_array(single))
        return FAIL("TemplateProcessing without a single template");
    for (i = 0; i < json_array_size(single); i++) {
        json_t *item = json_array_get(single, i);
        if (json_object_get(item, "Sequence")) {
            kind = NB_BPE_POST_SUFFIX;
            continue;
        }
        const char *name =
            json_string_value(json_object_get(json_object_get(item, "SpecialToken"), "id"));
        json_t *ids = json_object_get(json_object_get(specials, name ? name : ""), "ids");
        if (!name || !json_is_array(ids))
            return FAIL("TemplateProcessing item %zu names no known special token", i);
        for (k = 0; k < json_array_size(ids); k++) {
            json_t *id = json_array_get(ids, k);
            if (post_id(b, kind, id) < 0)
                return -1;
        }
    }
    return 0;
}

static int post_processor(bpe_builder *b, json_t *j)
{
    const char *type = bpe_j_type(j);
    if (!j || json_is_null(j))
        return 0;
    if (!type)
        return FAIL("a post-processor without a type");
    if (strcmp(type, "Sequence") == 0)
        return list(b, j, "processors", post_processor);
    if (strcmp(type, "ByteLevel") == 0)
        return 0; /* it only trims offsets */
    if (strcmp(type, "TemplateProcessing") == 0)
        return template(b, j);
    if (strcmp(type, "RobertaProcessing") == 0 || strcmp(type, "BertProcessing") == 0)
        return post_id(b, NB_BPE_POST_PREFIX, json_array_get(json_object_get(j, "cls"), 1)) < 0
                   ? -1
                   : post_id(b, NB_BPE_POST_SUFFIX, json_array_get(json_object_get(j, "sep"), 1));
    return FAIL("post-processor %.40s is not supported", type);
}

int bpe_json_pipeline(bpe_builder *b, json_t *root)
{
    json_t *dec = json_object_get(root, "decoder");
    if (normalizer(b, json_object_get(root, "normalizer")) < 0 ||
        pre_tokenizer(b, json_object_get(root, "pre_tokenizer")) < 0 ||
        post_processor(b, json_object_get(root, "post_processor")) < 0)
        return -1;
    if (!dec || json_is_null(dec))
        return bpe_b_op(b, NB_BPE_DEC_NONE, 0, 0, 0, "", 0, "", 0);
    return decoder(b, dec);
}
