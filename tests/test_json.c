/* The JSON parser: what configs and safetensors headers need reads back
 * exactly; malformed or hostile text is refused with a one-line message
 * naming the byte offset, never a crash or an out-of-bounds read (every
 * input sits in a buffer of exactly its length, so valgrind sees any). */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include "../tools/json.h"
#include "testutil.h"

/* Parses a copy of exactly len bytes, so reading past it is detectable. */
static nb_json *parse_n(const char *text, size_t len, nb_err *e)
{
    char *copy = malloc(len ? len : 1);
    if (!copy)
        return NULL;
    memcpy(copy, text, len);
    e->msg[0] = 0;
    nb_json *doc = nb_json_parse(copy, len, e);
    free(copy);
    return doc;
}

static nb_json *parse(const char *text, nb_err *e)
{
    return parse_n(text, strlen(text), e);
}

/* text must be refused, with expect (and a byte offset) in the message. */
static void refuse_n(const char *text, size_t len, const char *expect)
{
    nb_err e;
    nb_json *doc = parse_n(text, len, &e);
    CHECK(!doc, "accepted: %.60s", text);
    nb_json_free(doc);
    if (doc)
        return;
    CHECK(strstr(e.msg, expect), "'%.60s': message '%s' lacks '%s'", text, e.msg, expect);
    CHECK(strstr(e.msg, "byte") && !strchr(e.msg, '\n'), "'%.60s': message '%s'", text, e.msg);
}

static void refuse(const char *text, const char *expect)
{
    refuse_n(text, strlen(text), expect);
}

static void test_config(void)
{
    static const char text[] =
        "{\n  \"architectures\": [\"LlamaForCausalLM\"],\n  \"hidden_size\": 4096,\n"
        "  \"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0, \"tie\": false, \"ok\": true,\n"
        "  \"rope_scaling\": null, \"eos_token_id\": [2, 32000], \"nested\": {\"a\": {\"b\": -7}},\n"
        "  \"empty\": {}, \"none\": []\n}\n";
    nb_err e;
    nb_json *doc = parse(text, &e);
    CHECK(doc, "config did not parse: %s", e.msg);
    if (!doc)
        return;
    const nb_json_val *root = nb_json_root(doc);
    int64_t i = 0;
    double d = 0;
    int b = -1;
    CHECK(nb_json_type(root) == NB_JSON_OBJECT && nb_json_count(root) == 11, "root");
    CHECK(!nb_json_int(nb_json_get(root, "hidden_size"), &i) && i == 4096, "hidden_size %lld",
          (long long)i);
    CHECK(!nb_json_number(nb_json_get(root, "rms_norm_eps"), &d) && d == 1e-5, "eps %g", d);
    CHECK(nb_json_int(nb_json_get(root, "rms_norm_eps"), &i), "1e-05 read as an integer");
    CHECK(!nb_json_int(nb_json_get(root, "rope_theta"), &i) && i == 10000, "10000.0 as int");
    CHECK(!nb_json_bool(nb_json_get(root, "tie"), &b) && b == 0, "tie");
    CHECK(!nb_json_bool(nb_json_get(root, "ok"), &b) && b == 1, "ok");
    CHECK(nb_json_type(nb_json_get(root, "rope_scaling")) == NB_JSON_NULL, "null");
    CHECK(nb_json_get(root, "missing") == NULL && nb_json_get(root, "hidden") == NULL, "absent");
    const nb_json_val *eos = nb_json_get(root, "eos_token_id");
    CHECK(nb_json_count(eos) == 2 && !nb_json_int(nb_json_first(eos), &i) && i == 2, "eos[0]");
    CHECK(!nb_json_int(nb_json_next(nb_json_first(eos)), &i) && i == 32000, "eos[1]");
    CHECK(nb_json_next(nb_json_next(nb_json_first(eos))) == NULL, "eos has 2 elements");
    const char *arch = nb_json_string(nb_json_first(nb_json_get(root, "architectures")), NULL);
    CHECK(arch && !strcmp(arch, "LlamaForCausalLM"), "architectures[0]");
    const nb_json_val *nested = nb_json_get(nb_json_get(nb_json_get(root, "nested"), "a"), "b");
    CHECK(!nb_json_int(nested, &i) && i == -7, "nested.a.b");
    CHECK(nb_json_count(nb_json_get(root, "empty")) == 0 && !nb_json_first(nb_json_get(root, "empty")),
          "empty object");
    CHECK(nb_json_type(nb_json_get(root, "none")) == NB_JSON_ARRAY, "empty array");
    /* Keys iterate in document order, each with its own value. */
    const nb_json_val *k = nb_json_first(root);
    CHECK(!strcmp(nb_json_string(k, NULL), "architectures"), "first key");
    for (int n = 0; n < 10; n++)
        k = nb_json_next(k);
    CHECK(k && !strcmp(nb_json_string(k, NULL), "none") && !nb_json_next(k), "last key");
    CHECK(nb_json_type(nb_json_value(k)) == NB_JSON_ARRAY, "value of the last key");
    CHECK(!nb_json_value(nb_json_get(root, "ok")), "a value is not a key");
    nb_json_free(doc);
}

static void test_scalars(void)
{
    nb_err e;
    int64_t i = 0;
    double d = 0;
    struct {
        const char *text;
        int type;
    } cases[] = {
        {" 42 ", NB_JSON_NUMBER}, {"\"x\"", NB_JSON_STRING}, {"null", NB_JSON_NULL},
        {"\t\r\ntrue\n", NB_JSON_BOOL}, {"[]", NB_JSON_ARRAY}, {"\xef\xbb\xbf{}", NB_JSON_OBJECT},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        nb_json *doc = parse(cases[c].text, &e);
        CHECK(doc && nb_json_type(nb_json_root(doc)) == cases[c].type, "'%s': %s",
              cases[c].text, doc ? "wrong type" : e.msg);
        nb_json_free(doc);
    }
    struct {
        const char *text;
        int is_int;
        int64_t i;
        double d;
    } nums[] = {
        {"-0", 1, 0, -0.0},
        {"9223372036854775807", 1, INT64_MAX, 9223372036854775807.0},
        {"-9223372036854775808", 1, INT64_MIN, -9223372036854775808.0},
        {"9223372036854775808", 0, 0, 9223372036854775808.0},
        {"1.5", 0, 0, 1.5},
        {"4e3", 1, 4000, 4000},
        {"1E+2", 1, 100, 100},
        {"0.000009999999747378752", 0, 0, 0.000009999999747378752},
        {"1e-400", 0, 0, 0}, /* underflows to zero: a number, not the integer 0 */
        {"0e0", 1, 0, 0},
    };
    for (size_t c = 0; c < sizeof nums / sizeof *nums; c++) {
        nb_json *doc = parse(nums[c].text, &e);
        const nb_json_val *v = nb_json_root(doc);
        CHECK(doc && !nb_json_number(v, &d) && d == nums[c].d, "'%s' -> %g", nums[c].text, d);
        int got = !nb_json_int(v, &i);
        CHECK(got == nums[c].is_int && (!got || i == nums[c].i), "'%s' as int", nums[c].text);
        nb_json_free(doc);
    }
    /* Accessors answer "no" for the wrong type or NULL rather than crash. */
    nb_json *doc = parse("\"7\"", &e);
    CHECK(nb_json_int(nb_json_root(doc), &i) && nb_json_number(NULL, &d), "types");
    CHECK(!nb_json_string(NULL, NULL) && nb_json_type(NULL) == -1 && !nb_json_count(NULL), "NULL");
    nb_json_free(doc);
}

static void check_string(const char *text, const char *want, size_t want_len)
{
    nb_err e;
    size_t len = 0;
    nb_json *doc = parse(text, &e);
    const char *s = nb_json_string(nb_json_root(doc), &len);
    CHECK(s && len == want_len && !memcmp(s, want, len) && !s[len], "%s: %s", text,
          doc ? "wrong bytes" : e.msg);
    nb_json_free(doc);
}

static void test_strings(void)
{
    check_string("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\/\b\f\n\r\t", 8);
    check_string("\"\\u00e9\\u20AC\"", "\xc3\xa9\xe2\x82\xac", 5);
    check_string("\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80", 4);
    check_string("\"\\uDBFF\\uDFFF\"", "\xf4\x8f\xbf\xbf", 4);
    check_string("\"a\\u0000b\"", "a\0b", 3);
    check_string("\"caf\xc3\xa9 \xf0\x9f\x98\x80\"", "caf\xc3\xa9 \xf0\x9f\x98\x80", 10);
    check_string("\"\"", "", 0);
    /* Lookups compare decoded keys; a key holding NUL matches nothing. */
    nb_err e;
    int64_t i = 0;
    nb_json *doc = parse("{\"\\u0061\": 1}", &e);
    CHECK(!nb_json_int(nb_json_get(nb_json_root(doc), "a"), &i) && i == 1, "escaped key");
    nb_json_free(doc);
    doc = parse("{\"a\\u0000b\": 2}", &e);
    CHECK(doc && !nb_json_get(nb_json_root(doc), "a"), "a key holding NUL matched");
    nb_json_free(doc);
}

static void test_depth(void)
{
    enum { DEEP = 100000 };
    char *text = malloc(5 * DEEP);
    if (!text)
        return;
    nb_err e;
    for (int depth = NB_JSON_MAX_DEPTH; depth <= NB_JSON_MAX_DEPTH + 1; depth++) {
        memset(text, '[', (size_t)depth);
        memset(text + depth, ']', (size_t)depth);
        nb_json *doc = parse_n(text, 2 * (size_t)depth, &e);
        CHECK(!doc == (depth > NB_JSON_MAX_DEPTH), "depth %d: %s", depth, e.msg);
        nb_json_free(doc);
    }
    memset(text, '[', DEEP); /* the nesting bomb, unclosed */
    refuse_n(text, DEEP, "nesting deeper");
    for (int k = 0; k < DEEP; k++)
        memcpy(text + 5 * k, "{\"a\":", 5);
    refuse_n(text, 5 * DEEP, "nesting deeper than 64 at byte 320");
    free(text);
}

static void test_refused(void)
{
    static const struct {
        const char *text, *expect;
    } cases[] = {
        {"", "end of input"}, {"  \n", "end of input"},
        /* truncated strings and escapes */
        {"\"abc", "unterminated string"}, {"{\"a\":\"b", "unterminated string"},
        {"\"abc\\", "unterminated escape"}, {"\"\\u12", "\\u escape"},
        /* escapes */
        {"\"\\x\"", "invalid escape"}, {"\"\\u12G4\"", "\\u escape"}, {"\"\\U0041\"", "escape"},
        {"\"\\'\"", "invalid escape"},
        /* surrogates */
        {"\"\\ud800\"", "unpaired high surrogate"}, {"\"\\udc00\"", "unpaired low surrogate"},
        {"\"\\ud800\\u0041\"", "unpaired high"}, {"\"\\ud800x\"", "unpaired high"},
        {"\"\\ud800\\ud800\"", "unpaired high"}, {"\"\\ud800\\", "unpaired high"},
        /* UTF-8 */
        {"\"\xff\"", "UTF-8"}, {"\"\xc0\xaf\"", "UTF-8"}, {"\"\xed\xa0\x80\"", "UTF-8"},
        {"\"\xe2\x82\"", "UTF-8"}, {"\"\xf4\x90\x80\x80\"", "UTF-8"}, {"\"\xe2\x82", "UTF-8"},
        {"\"\x80\"", "UTF-8"},
        /* control characters */
        {"\"a\nb\"", "control character"}, {"\"\t\"", "control character"},
        /* numbers */
        {"1e400", "out of range"}, {"-1e400", "out of range"}, {"01", "trailing"},
        {"-", "invalid number"}, {"1.", "after '.'"}, {".5", "unexpected character"},
        {"1e", "exponent"}, {"1e+", "exponent"}, {"+1", "unexpected character"},
        {"0x10", "trailing"}, {"NaN", "unexpected character"}, {"Infinity", "unexpected"},
        {"-Infinity", "invalid number"}, {"[1.e5]", "after '.'"},
        /* structure */
        {"{} x", "trailing"}, {"1 2", "trailing"}, {"[1]]", "trailing"}, {"[1,]", "unexpected"},
        {"{\"a\":1,}", "string key"}, {"{\"a\" 1}", "':'"}, {"{\"a\"}", "':'"},
        {"{\"a\":}", "unexpected"}, {"{1:2}", "string key"}, {"'a'", "unexpected"},
        {"[1 2]", "','"}, {"{\"a\":1 \"b\":2}", "','"}, {"[", "end of input"},
        {"{\"a\":[1,{\"b\":", "end of input"}, {"{", "string key"}, {"]", "unexpected"},
        /* literals */
        {"tru", "literal"}, {"nul", "literal"}, {"True", "unexpected"}, {"nulll", "trailing"},
        /* duplicate keys: refused, even when spelled differently */
        {"{\"a\":1,\"a\":2}", "duplicate key 'a'"}, {"{\"a\":1,\"b\":0,\"\\u0061\":2}", "duplicate"},
        {"{\"x\":{\"k\":1,\"k\":1}}", "duplicate key 'k'"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++)
        refuse(cases[c].text, cases[c].expect);
    refuse_n("[1,\0]", 5, "unexpected byte 0x00 at byte 3");
    refuse_n("\"a\0\"", 4, "control character in string at byte 2");
    refuse("[1,]", "unexpected character ']' at byte 3");
    refuse("{\"a\":1, \"b\":2, \"b\":3}", "ending at byte 20");
    /* The same key in different objects is fine. */
    nb_err e;
    nb_json *doc = parse("{\"a\":{\"a\":1},\"b\":{\"a\":2}}", &e);
    CHECK(doc, "same key in sibling objects: %s", e.msg);
    nb_json_free(doc);
    char long_num[NB_JSON_MAX_NUMBER + 2];
    memset(long_num, '1', sizeof long_num);
    refuse_n(long_num, sizeof long_num, "too long");
    /* Over the size cap: refused before a byte is read. */
    doc = nb_json_parse("{}", (size_t)NB_JSON_MAX_BYTES + 1, &e);
    CHECK(!doc && strstr(e.msg, "limit"), "oversized input: %s", e.msg);
    nb_json_free(doc);
}

/* Every prefix and many single-byte corruptions of a valid document must
 * parse or fail cleanly; valgrind watches the reads. */
static void test_mutations(void)
{
    static const char text[] = "{\"weight_map\": {\"a.weight\": \"m-1.safetensors\", \"b\": "
                               "\"\\u00e9\\ud83d\\ude00\"}, \"n\": [1, -2.5e3, true, null, {}]}";
    size_t len = strlen(text);
    static const char subst[] = "{}[]\",:\\u0 e-.9\x80\xff";
    nb_err e;
    int parsed = 0;
    for (size_t cut = 0; cut <= len; cut++) {
        nb_json *doc = parse_n(text, cut, &e);
        parsed += doc != NULL;
        nb_json_free(doc);
    }
    CHECK(parsed == 1, "%d prefixes parsed, only the whole text should", parsed);
    char *buf = malloc(len);
    for (size_t at = 0; buf && at < len; at++) {
        for (size_t s = 0; s < sizeof subst - 1; s++) {
            memcpy(buf, text, len);
            buf[at] = subst[s];
            nb_json_free(parse_n(buf, len, &e));
        }
    }
    free(buf);
}

static void test_file(void)
{
    nb_err e;
    const char *path = tu_tmp("config.json");
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs("{\"x\": [1, 2, 3]}", f);
        fclose(f);
    }
    nb_json *doc = nb_json_parse_file(path, 1024, &e);
    CHECK(doc && nb_json_count(nb_json_get(nb_json_root(doc), "x")) == 3, "file: %s", e.msg);
    nb_json_free(doc);
    doc = nb_json_parse_file(path, 4, &e);
    CHECK(!doc && strstr(e.msg, path), "over max_bytes: %s", e.msg);
    nb_json_free(doc);
    f = fopen(path, "wb");
    if (f) {
        fputs("{\"x\": [1, 2, 3}", f);
        fclose(f);
    }
    doc = nb_json_parse_file(path, 1024, &e);
    CHECK(!doc && strstr(e.msg, "config.json: ") && strstr(e.msg, "at byte 14"), "bad file: %s",
          e.msg);
    nb_json_free(doc);
    doc = nb_json_parse_file(tu_tmp("absent.json"), 1024, &e);
    CHECK(!doc && strstr(e.msg, "absent.json"), "missing file: %s", e.msg);
    nb_json_free(doc);
}

int main(void)
{
    test_config();
    test_scalars();
    test_strings();
    test_depth();
    test_refused();
    test_mutations();
    test_file();
    return tu_finish("test_json");
}
