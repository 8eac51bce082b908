/* The safetensors reader: small files built here read back exactly, single
 * and sharded; every hostile variant is refused with a message naming the
 * file (and the tensor, where there is one), never a crash. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../tools/import/safetensors.h"
#include "testutil.h"

/* 24 bytes of F32 [2, 3], 8 of BF16 [4], 1 of I8 [] and an empty F16. */
static const char good_header[] =
    "{\"__metadata__\":{\"format\":\"pt\"},"
    "\"b\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
    "\"a\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[24,32]},"
    "\"s\":{\"dtype\":\"I8\",\"shape\":[],\"data_offsets\":[32,33]},"
    "\"z\":{\"dtype\":\"F16\",\"shape\":[0,5],\"data_offsets\":[33,33]}}   ";

static uint8_t data[33];

static void fill_data(void)
{
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 7 + 1);
}

/* A file image: u64 LE length n (unless forced), header, data. */
static uint8_t *image(const char *header, uint64_t n, const void *body, size_t body_len,
                      size_t *size)
{
    size_t hl = strlen(header);
    *size = 8 + hl + body_len;
    uint8_t *img = malloc(*size);
    if (!img)
        exit(2);
    for (int i = 0; i < 8; i++)
        img[i] = (uint8_t)(n >> (8 * i));
    memcpy(img + 8, header, hl);
    if (body_len)
        memcpy(img + 8 + hl, body, body_len);
    return img;
}

static int write_file(const char *path, const void *bytes, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t put = fwrite(bytes, 1, size, f);
    return fclose(f) || put != size ? -1 : 0;
}

/* Writes a safetensors file with a correct length field. */
static void write_st(const char *path, const char *header, const void *body, size_t body_len)
{
    size_t size;
    uint8_t *img = image(header, strlen(header), body, body_len, &size);
    CHECK(!write_file(path, img, size), "cannot write %s", path);
    free(img);
}

static void check_good(const nb_st *st)
{
    CHECK(nb_st_count(st) == 4, "count %zu", nb_st_count(st));
    static const char *const names[] = {"a", "b", "s", "z"};
    for (size_t i = 0; i < 4 && i < nb_st_count(st); i++)
        CHECK(!strcmp(nb_st_at(st, i)->name, names[i]), "order: %s", nb_st_at(st, i)->name);
    const nb_st_tensor *a = nb_st_find(st, "a"), *b = nb_st_find(st, "b");
    const nb_st_tensor *s = nb_st_find(st, "s"), *z = nb_st_find(st, "z");
    CHECK(a && a->dtype == NB_ST_BF16 && a->n_dims == 1 && a->shape[0] == 4 && a->size == 8 &&
              a->n_elems == 4,
          "tensor a");
    CHECK(a && !memcmp(a->data, data + 24, 8), "tensor a data");
    CHECK(b && b->dtype == NB_ST_F32 && b->n_dims == 2 && b->shape[0] == 2 && b->shape[1] == 3 &&
              b->size == 24 && !memcmp(b->data, data, 24),
          "tensor b");
    CHECK(s && s->dtype == NB_ST_I8 && s->n_dims == 0 && s->n_elems == 1 && s->size == 1,
          "scalar s");
    CHECK(z && z->n_elems == 0 && z->size == 0, "empty z");
    CHECK(!nb_st_find(st, "c") && !nb_st_find(st, "__metadata__") && !nb_st_at(st, 4), "absent");
}

static void test_good(void)
{
    nb_err e;
    const char *path = tu_tmp("good.safetensors");
    write_st(path, good_header, data, sizeof data);
    nb_st *st = nb_st_open_file(path, &e);
    CHECK(st, "good file refused: %s", e.msg);
    if (st) {
        check_good(st);
        CHECK(!strcmp(nb_st_find(st, "a")->file, path), "file name");
    }
    nb_st_close(st);
    size_t size;
    uint8_t *img = image(good_header, strlen(good_header), data, sizeof data, &size);
    st = nb_st_open_mem(img, size, "mem", &e);
    CHECK(st, "good image refused: %s", e.msg);
    if (st)
        check_good(st);
    nb_st_close(st);
    free(img);
    CHECK(nb_st_dtype_size(NB_ST_BF16) == 2 && nb_st_dtype_size(NB_ST_F64) == 8 &&
              nb_st_dtype_size(NB_ST_BOOL) == 1 && !strcmp(nb_st_dtype_name(NB_ST_I16), "I16"),
          "dtype table");
}

/* A hostile image must be refused, its message naming what is wrong. */
static void refuse(const char *what, const uint8_t *img, size_t size, const char *expect)
{
    nb_err e;
    e.msg[0] = 0;
    /* An exact-size copy, so any read past the end is visible to valgrind. */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        exit(2);
    memcpy(copy, img, size);
    nb_st *st = nb_st_open_mem(copy, size, "bad.safetensors", &e);
    CHECK(!st, "%s: accepted", what);
    nb_st_close(st);
    free(copy);
    CHECK(strstr(e.msg, "bad.safetensors") && strstr(e.msg, expect), "%s: message '%s' lacks '%s'",
          what, e.msg, expect);
}

static void refuse_header(const char *what, const char *header, size_t body_len,
                          const char *expect)
{
    size_t size;
    uint8_t *img = image(header, strlen(header), data, body_len, &size);
    refuse(what, img, size, expect);
    free(img);
}

static void test_hostile(void)
{
    size_t size, hl = strlen(good_header);
    uint8_t *img = image(good_header, hl, data, sizeof data, &size);
    refuse("empty file", img, 0, "too short");
    refuse("7 bytes", img, 7, "too short");
    refuse("truncated data", img, size - 1, "tensor 's'");
    refuse("truncated header", img, 8 + hl / 2, "runs past the end");
    free(img);
    uint64_t lengths[] = {hl + sizeof data + 1, 1000000, UINT64_MAX, 1ull << 63, 0, 1};
    const char *expect[] = {"runs past", "runs past", "not within", "not within", "not within",
                            "not within"};
    for (int i = 0; i < 6; i++) {
        img = image(good_header, lengths[i], data, sizeof data, &size);
        refuse("header length", img, size, expect[i]);
        free(img);
    }
    static const struct {
        const char *what, *header, *expect;
    } cases[] = {
        {"not JSON", "not json at all", "not valid JSON"},
        {"JSON cut short", "{\"a\":{\"dtype\":\"F32\"", "not valid JSON"},
        {"not an object", "[1, 2]", "not a JSON object"},
        {"entry not an object", "{\"t\": 5}", "tensor 't': entry is not an object"},
        {"no dtype", "{\"t\":{\"shape\":[1],\"data_offsets\":[0,4]}}", "tensor 't': no dtype"},
        {"unknown dtype", "{\"t\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}",
         "tensor 't': unknown dtype 'F8_E4M3'"},
        {"dtype not a string", "{\"t\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}",
         "no dtype"},
        {"offsets past end", "{\"t\":{\"dtype\":\"F32\",\"shape\":[1000],\"data_offsets\":[0,4000]}}",
         "tensor 't': data_offsets [0, 4000] run past"},
        {"offsets reversed", "{\"t\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[8,4]}}",
         "not [begin, end]"},
        {"offsets vs shape", "{\"t\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}",
         "tensor 't': 20 bytes at data_offsets, but shape and F32 need 24"},
        {"offsets vs dtype", "{\"t\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[0,16]}}",
         "need 8"},
        {"three offsets", "{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1,2]}}",
         "not [begin, end]"},
        {"no offsets", "{\"t\":{\"dtype\":\"U8\",\"shape\":[1]}}", "not [begin, end]"},
        {"negative offset", "{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[-1,0]}}",
         "not [begin, end]"},
        {"product overflow",
         "{\"t\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,4]}}",
         "shape product overflows"},
        {"bytes overflow",
         "{\"t\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967295],\"data_offsets\":[0,4]}}",
         "shape too large"},
        {"negative dim", "{\"t\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,1]}}",
         "not a size"},
        {"fractional dim", "{\"t\":{\"dtype\":\"U8\",\"shape\":[1.5],\"data_offsets\":[0,1]}}",
         "not a size"},
        {"shape not array", "{\"t\":{\"dtype\":\"U8\",\"shape\":1,\"data_offsets\":[0,1]}}",
         "shape is not an array"},
        {"rank 9", "{\"t\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}",
         "9 dimensions"},
        {"duplicate name",
         "{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
         "\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
         "duplicate object key near '\"t\"'"},
        {"NUL in name", "{\"t\\u0000x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}",
         "NUL"},
        {"metadata not object", "{\"__metadata__\": [1]}", "__metadata__ is not an object"},
        {"metadata value", "{\"__metadata__\": {\"k\": 1}}", "__metadata__ value 'k'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        refuse_header(cases[i].what, cases[i].header, sizeof data, cases[i].expect);
}

/* Overlapping tensors and unused gaps are legal; so is a file with no
 * tensors at all. */
static void test_lenient(void)
{
    nb_err e;
    size_t size;
    static const char overlap[] = "{\"x\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]},"
                                  "\"y\":{\"dtype\":\"I16\",\"shape\":[2],\"data_offsets\":[4,8]}}";
    uint8_t *img = image(overlap, strlen(overlap), data, sizeof data, &size);
    nb_st *st = nb_st_open_mem(img, size, "overlap", &e);
    CHECK(st && nb_st_count(st) == 2 && nb_st_find(st, "y")->data == nb_st_find(st, "x")->size / 2 +
                                                                         (const uint8_t *)nb_st_find(st, "x")->data,
          "overlap: %s", st ? "wrong" : e.msg);
    nb_st_close(st);
    free(img);
    img = image("{}", 2, NULL, 0, &size);
    st = nb_st_open_mem(img, size, "empty", &e);
    CHECK(st && nb_st_count(st) == 0, "no tensors: %s", st ? "wrong count" : e.msg);
    nb_st_close(st);
    free(img);
}

/* Every truncation and many byte corruptions: refused or read, never a
 * crash or a read outside the image. */
static void test_mutations(void)
{
    size_t size;
    uint8_t *img = image(good_header, strlen(good_header), data, sizeof data, &size);
    uint8_t *copy = malloc(size);
    nb_err e;
    for (size_t cut = 0; cut < size; cut++) {
        uint8_t *part = malloc(cut ? cut : 1);
        if (!part)
            break;
        memcpy(part, img, cut);
        nb_st *st = nb_st_open_mem(part, cut, "cut", &e);
        CHECK(!st, "truncated to %zu bytes: accepted", cut);
        nb_st_close(st);
        free(part);
    }
    uint64_t seed = 42;
    for (int round = 0; copy && round < 3000; round++) {
        memcpy(copy, img, size);
        size_t at = tu_rand(&seed) % (8 + strlen(good_header));
        copy[at] = (uint8_t)tu_rand(&seed);
        nb_st *st = nb_st_open_mem(copy, size, "mutant", &e);
        for (size_t i = 0; i < nb_st_count(st); i++) {
            const nb_st_tensor *t = nb_st_at(st, i);
            CHECK((const uint8_t *)t->data >= copy && t->size <= size &&
                      (const uint8_t *)t->data - copy <= (ptrdiff_t)(size - t->size),
                  "mutant tensor '%s' outside the image", t->name);
        }
        nb_st_close(st);
    }
    free(copy);
    free(img);
}

static void write_text(const char *path, const char *text)
{
    CHECK(!write_file(path, text, strlen(text)), "cannot write %s", path);
}

/* dir/name, in a buffer of the caller's. */
static const char *in_dir(char *buf, size_t cap, const char *dir, const char *name)
{
    snprintf(buf, cap, "%s/%s", dir, name);
    return buf;
}

static void refuse_dir(const char *what, const char *dir, const char *expect)
{
    nb_err e;
    e.msg[0] = 0;
    nb_st *st = nb_st_open_dir(dir, &e);
    CHECK(!st, "%s: accepted", what);
    nb_st_close(st);
    CHECK(strstr(e.msg, expect), "%s: message '%s' lacks '%s'", what, e.msg, expect);
}

static void test_sharded(void)
{
    char dir[512], p[600], index[600];
    snprintf(dir, sizeof dir, "%s", tu_tmp("sharded"));
    CHECK(!mkdir(dir, 0700), "mkdir %s", dir);
    refuse_dir("empty folder", dir, "holds neither");
    write_st(in_dir(p, sizeof p, dir, "m-1.safetensors"),
             "{\"b\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
             "\"unlisted\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}",
             data, 24);
    write_st(in_dir(p, sizeof p, dir, "m-2.safetensors"),
             "{\"a\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[0,8]},"
             "\"s\":{\"dtype\":\"I8\",\"shape\":[],\"data_offsets\":[8,9]},"
             "\"z\":{\"dtype\":\"F16\",\"shape\":[0,5],\"data_offsets\":[9,9]}}",
             data + 24, 9);
    in_dir(index, sizeof index, dir, "model.safetensors.index.json");
    write_text(index, "{\"metadata\": {\"total_size\": 33}, \"weight_map\": {\"b\": "
                      "\"m-1.safetensors\", \"a\": \"m-2.safetensors\", \"s\": \"m-2.safetensors\", "
                      "\"z\": \"m-2.safetensors\"}}");
    nb_err e;
    nb_st *st = nb_st_open_dir(dir, &e);
    CHECK(st, "sharded model refused: %s", e.msg);
    if (st) {
        check_good(st); /* "unlisted" is not in the weight map, so not in the model */
        CHECK(strstr(nb_st_find(st, "b")->file, "m-1.safetensors") &&
                  strstr(nb_st_find(st, "a")->file, "m-2.safetensors"),
              "shard of each tensor");
    }
    nb_st_close(st);
    write_text(index, "{\"weight_map\": {\"b\": \"m-1.safetensors\", \"a\": \"m-3.safetensors\"}}");
    refuse_dir("missing shard", dir, "m-3.safetensors");
    write_text(index, "{\"weight_map\": {\"b\": \"m-1.safetensors\", \"q\": \"m-2.safetensors\"}}");
    refuse_dir("tensor not in its shard", dir, "tensor 'q' is listed in m-2.safetensors");
    write_text(index, "{\"weight_map\": {\"b\": \"../m-1.safetensors\"}}");
    refuse_dir("shard outside the folder", dir, "no plain shard file");
    write_text(index, "{\"weight_map\": {\"b\": 7}}");
    refuse_dir("shard not a string", dir, "no plain shard file");
    write_text(index, "{\"weights\": {}}");
    refuse_dir("no weight map", dir, "weight_map");
    write_text(index, "{\"weight_map\": {\"b\": \"m-1.safetensors\",}}");
    refuse_dir("index not JSON", dir, "model.safetensors.index.json: line 1 column 40: string or '}' expected");
    write_st(in_dir(p, sizeof p, dir, "m-2.safetensors"), "{\"a\": 1}", NULL, 0);
    write_text(index, "{\"weight_map\": {\"a\": \"m-2.safetensors\"}}");
    refuse_dir("bad shard", dir, "m-2.safetensors: tensor 'a': entry is not an object");
    /* A single model.safetensors wins over an index, as in transformers. */
    write_st(in_dir(p, sizeof p, dir, "model.safetensors"), good_header, data, sizeof data);
    st = nb_st_open_dir(dir, &e);
    CHECK(st && nb_st_count(st) == 4, "single file beside an index: %s", st ? "count" : e.msg);
    nb_st_close(st);
}

int main(void)
{
    fill_data();
    test_good();
    test_hostile();
    test_lenient();
    test_mutations();
    test_sharded();
    return tu_finish("test_safetensors");
}
