/* The JSON reading the importers share (tools/convert.c over jansson, for
 * config.json, generation_config.json, tokenizer_config.json, safetensors
 * headers and indexes): the strict policies (a key twice, NUL in a
 * string, invalid UTF-8, numbers past double, trailing bytes: refused; a
 * leading byte-order mark: skipped; integers past int64: read as doubles), one-line messages with the line,
 * column and file, the size limit, integral numbers as config.json
 * writes them, and a config.json as the importer reads it. */
#define _POSIX_C_SOURCE 200809L
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "../tools/import/convert.h"
#include "testutil.h"

static json_t *parse(const char *text, nb_err *e)
{
    return nb_json_mem(text, strlen(text), e);
}

/* text must be refused with a one-line message holding expect. */
static void refuse(const char *text, size_t len, const char *expect)
{
    nb_err e = {{0}};
    json_t *v = nb_json_mem(text, len, &e);
    CHECK(!v, "accepted: %.60s", text);
    json_decref(v);
    CHECK(strstr(e.msg, expect) && strstr(e.msg, "line ") && !strchr(e.msg, '\n'),
          "'%.60s': message '%s' lacks '%s'", text, e.msg, expect);
}

/* A config.json as transformers writes one (Llama-3.2-1B's, shortened). */
static void test_config(void)
{
    static const char text[] =
        "{\n  \"architectures\": [\"LlamaForCausalLM\"],\n  \"bos_token_id\": 128000,\n"
        "  \"eos_token_id\": [128001, 128008, 128009],\n  \"head_dim\": 64,\n"
        "  \"hidden_size\": 2048,\n  \"max_position_embeddings\": 131072,\n"
        "  \"model_type\": \"llama\",\n  \"rms_norm_eps\": 1e-05,\n"
        "  \"rope_scaling\": {\n    \"factor\": 32.0,\n    \"high_freq_factor\": 4.0,\n"
        "    \"low_freq_factor\": 1.0,\n    \"original_max_position_embeddings\": 8192,\n"
        "    \"rope_type\": \"llama3\"\n  },\n  \"rope_theta\": 500000.0,\n"
        "  \"tie_word_embeddings\": true,\n  \"torch_dtype\": \"bfloat16\",\n"
        "  \"use_cache\": true,\n  \"vocab_size\": 128256,\n  \"sliding_window\": null\n}\n";
    nb_err e = {{0}};
    json_t *root = parse(text, &e);
    CHECK(json_is_object(root), "config did not parse: %s", e.msg);
    int64_t i = 0;
    CHECK(!nb_json_i64(json_object_get(root, "hidden_size"), &i) && i == 2048, "hidden_size");
    CHECK(!nb_json_i64(json_object_get(root, "rope_theta"), &i) && i == 500000, "500000.0");
    CHECK(nb_json_i64(json_object_get(root, "rms_norm_eps"), &i), "1e-05 read as an integer");
    CHECK(nb_json_i64(json_object_get(root, "torch_dtype"), &i), "a string read as an integer");
    CHECK(nb_json_i64(json_object_get(root, "absent"), &i), "nothing read as an integer");
    const json_t *eos = json_object_get(root, "eos_token_id");
    CHECK(json_array_size(eos) == 3 && !nb_json_i64(json_array_get(eos, 2), &i) && i == 128009,
          "eos_token_id[2]");
    const json_t *s = json_object_get(root, "rope_scaling");
    CHECK(!strcmp(json_string_value(json_object_get(s, "rope_type")), "llama3") &&
              json_number_value(json_object_get(s, "factor")) == 32.0,
          "rope_scaling");
    CHECK(!strcmp(nb_json_kind(json_object_get(root, "sliding_window")), "null") &&
              !strcmp(nb_json_kind(json_object_get(root, "use_cache")), "true or false") &&
              !strcmp(nb_json_kind(eos), "array") && !strcmp(nb_json_kind(s), "object") &&
              !strcmp(nb_json_kind(json_object_get(root, "head_dim")), "number") &&
              !strcmp(nb_json_kind(json_object_get(root, "rms_norm_eps")), "number") &&
              !strcmp(nb_json_kind(json_object_get(root, "model_type")), "string") &&
              !strcmp(nb_json_kind(NULL), "nothing"),
          "kinds");
    json_decref(root);
}

static void test_integers(void)
{
    static const struct {
        const char *text;
        int ok;
        int64_t want;
    } cases[] = {
        {"[0]", 1, 0},
        {"[-7]", 1, -7},
        {"[4096.0]", 1, 4096},
        {"[4e3]", 1, 4000},
        {"[9223372036854775807]", 1, INT64_MAX},
        {"[-9223372036854775808]", 1, INT64_MIN},
        {"[1.5]", 0, 0},
        {"[1e19]", 0, 0},
        {"[-1e19]", 0, 0},
        {"[\"4\"]", 0, 0},
        {"[true]", 0, 0},
        {"[null]", 0, 0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        nb_err e = {{0}};
        json_t *v = parse(cases[c].text, &e);
        int64_t i = 42;
        int got = v && !nb_json_i64(json_array_get(v, 0), &i);
        CHECK(got == cases[c].ok && (got ? i == cases[c].want : i == 42), "%s: %d, %lld",
              cases[c].text, got, (long long)i);
        json_decref(v);
    }
}

static void test_policies(void)
{
    nb_err e = {{0}};
    /* a leading byte-order mark is skipped */
    json_t *v = parse("\xEF\xBB\xBF{\"a\": 1}", &e);
    CHECK(json_is_object(v), "BOM: %s", e.msg);
    json_decref(v);
    /* the same key in sibling objects is fine */
    v = parse("{\"a\": {\"x\": 1}, \"b\": {\"x\": 2}}", &e);
    CHECK(v, "same key in sibling objects: %s", e.msg);
    json_decref(v);
    refuse("{\"a\": 1, \"a\": 2}", 16, "duplicate");
    refuse("{\"a\\u0000b\": 1}", 15, "NUL");
    refuse("{\"a\": \"\xff\"}", 10, "");
    refuse("{\"a\": \"\xed\xa0\x80\"}", 12, "");
    refuse("{\"a\": \"\\ud800\"}", 15, "");
    refuse("[1e400]", 7, "overflow");
    /* an integer past int64 (Llama-3's model_max_length): every number a
     * double, the integral ones still read as integers */
    v = parse("{\"model_max_length\": 1000000000000000019884624838656, \"bos\": 128000}", &e);
    int64_t i = 0;
    CHECK(v && !nb_json_i64(json_object_get(v, "bos"), &i) && i == 128000 &&
              nb_json_i64(json_object_get(v, "model_max_length"), &i),
          "a huge integer: %s", v ? "misread" : e.msg);
    json_decref(v);
    refuse("{\"a\": 1} x", 10, "end of file expected");
    refuse("{\"a\": 1,}", 9, "");
    refuse("[01]", 4, "");
    refuse("{'a': 1}", 8, "");
    refuse("[NaN]", 5, "");
    refuse("{\"a\": [1, 2}", 12, "line 1 column 12");
    refuse("{\n  \"a\":\n  tru\n}", 16, "line 3");
    refuse("", 0, "");
    refuse("{\"a\": 1}", 5, "end of file");
    /* a NUL byte inside the text ends nothing early: the length counts */
    refuse("{\"a\": 1}\0{}", 11, "");
}

/* Deep nesting is refused past jansson's limit, without a crash. */
static void test_depth(void)
{
    for (int depth = 1000; depth <= 4000; depth += 3000) {
        char *text = malloc(2 * (size_t)depth + 1);
        if (!text)
            return;
        memset(text, '[', (size_t)depth);
        memset(text + depth, ']', (size_t)depth);
        text[2 * depth] = 0;
        nb_err e = {{0}};
        json_t *v = parse(text, &e);
        CHECK(!v == (depth > 2048), "depth %d: %s", depth, e.msg);
        json_decref(v);
        free(text);
    }
}

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void test_file(void)
{
    nb_err e = {{0}};
    const char *path = tu_tmp("config.json");
    put(path, "{\"x\": [1, 2, 3]}");
    json_t *v = nb_json_file(path, 1024, &e);
    CHECK(json_array_size(json_object_get(v, "x")) == 3, "file: %s", e.msg);
    json_decref(v);
    v = nb_json_file(path, 4, &e);
    CHECK(!v && strstr(e.msg, path) && strstr(e.msg, "at most 4 bytes"), "over max_bytes: %s",
          e.msg);
    put(path, "{\"x\": [1, 2, 3}");
    v = nb_json_file(path, 1024, &e);
    CHECK(!v && strstr(e.msg, "config.json: line 1 column 15: "), "bad file: %s", e.msg);
    v = nb_json_file(tu_tmp("absent.json"), 1024, &e);
    CHECK(!v && strstr(e.msg, "absent.json") && strstr(e.msg, "No such file"), "missing: %s",
          e.msg);
    v = nb_json_file(tu_tmp(""), 1024, &e);
    CHECK(!v && strstr(e.msg, "not a regular file"), "a directory: %s", e.msg);
}

int main(void)
{
    test_config();
    test_integers();
    test_policies();
    test_depth();
    test_file();
    return tu_finish("test_json");
}
