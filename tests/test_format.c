/* The model file: a written file reads back exactly, and every kind of
 * damage or hostility is refused with a message instead of a crash.
 * With --write-bad DIR it also leaves hostile files there for the CLI
 * tests (tests/cli.sh) to feed to the nibble program. */
#define _POSIX_C_SOURCE 200809L
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "../models/net.h"
#include "../runtime/kv.h"
#include "../runtime/model.h"
#include "../runtime/writer.h"
#include "testutil.h"

static uint8_t *image;
static size_t image_size;

static struct nb_header *hdr(uint8_t *img)
{
    return (struct nb_header *)img;
}

static struct nb_tensor_entry *entry(uint8_t *img, uint32_t i)
{
    return (struct nb_tensor_entry *)(img + hdr(img)->table_offset +
                                      (size_t)i * hdr(img)->entry_size);
}

static struct nb_meta *meta(uint8_t *img)
{
    return (struct nb_meta *)(img + hdr(img)->meta_offset);
}

/* A mutation of the good image, and the words its message must contain. */
struct damage {
    const char *name, *expect;
    void (*apply)(uint8_t *img);
};

static void bad_magic(uint8_t *img) { img[0] = 'X'; }
static void newer_major(uint8_t *img) { hdr(img)->version_major = NB_VERSION_MAJOR + 1; }
static void meta_past_end(uint8_t *img) { hdr(img)->meta_offset = hdr(img)->file_size - 8; }
static void vocab_past_end(uint8_t *img) { hdr(img)->vocab_size = UINT64_MAX - 10; }
static void table_past_end(uint8_t *img) { hdr(img)->n_tensors += 1000; }
static void data_past_end(uint8_t *img) { hdr(img)->data_size = hdr(img)->file_size; }
static void tensor_past_end(uint8_t *img) { entry(img, 3)->offset = hdr(img)->file_size; }
static void tensor_offset_wraps(uint8_t *img) { entry(img, 3)->offset = UINT64_MAX - 63; }
static void size_mismatch(uint8_t *img) { entry(img, 0)->size += 4; }
static void shape_overflow(uint8_t *img)
{
    entry(img, 0)->shape[0] = 1ull << 40;
    entry(img, 0)->shape[1] = 1ull << 40;
}
static void zero_dim(uint8_t *img) { entry(img, 2)->shape[0] = 0; }
static void too_many_dims(uint8_t *img) { entry(img, 2)->n_dims = 9; }
static void unknown_dtype(uint8_t *img) { entry(img, 2)->dtype = 77; }
static void unterminated_name(uint8_t *img) { memset(entry(img, 1)->name, 'a', NB_NAME_LEN); }
static void misaligned(uint8_t *img) { entry(img, 2)->offset += 4; }
static void duplicate(uint8_t *img) { memcpy(entry(img, 1)->name, entry(img, 0)->name, NB_NAME_LEN); }
static void kv_heads(uint8_t *img) { meta(img)->n_kv_heads = 3; }
static void zero_vocab(uint8_t *img) { meta(img)->vocab_size = 0; }
static void bad_special(uint8_t *img) { meta(img)->eos_id = 100000; }
static void bad_arch(uint8_t *img) { meta(img)->arch = 99; }
static void huge_ctx(uint8_t *img) { meta(img)->max_ctx = 0xffffffffu; }
static void size_field(uint8_t *img) { hdr(img)->file_size += 1; }

static const struct damage damages[] = {
    {"bad-magic", "magic", bad_magic},
    {"newer-version", "newer", newer_major},
    {"meta-past-end", "past the end", meta_past_end},
    {"vocab-past-end", "past the end", vocab_past_end},
    {"table-past-end", "past the end", table_past_end},
    {"data-past-end", "past the end", data_past_end},
    {"tensor-past-end", "outside the data section", tensor_past_end},
    {"tensor-offset-wraps", "outside the data section", tensor_offset_wraps},
    {"size-mismatch", "shape needs", size_mismatch},
    {"shape-overflow", "overflowing", shape_overflow},
    {"zero-dim", "invalid", zero_dim},
    {"too-many-dims", "dimensions", too_many_dims},
    {"unknown-dtype", "dtype", unknown_dtype},
    {"unterminated-name", "name", unterminated_name},
    {"misaligned", "aligned", misaligned},
    {"duplicate", "twice", duplicate},
    {"kv-heads", "attention shape", kv_heads},
    {"zero-vocab", "out of range", zero_vocab},
    {"bad-special-id", "special token", bad_special},
    {"bad-arch", "architecture", bad_arch},
    {"huge-context", "out of range", huge_ctx},
    {"size-field", "truncated", size_field},
};

static uint8_t *damaged_copy(const struct damage *d)
{
    uint8_t *img = aligned_alloc(64, (image_size + 63) / 64 * 64);
    memcpy(img, image, image_size);
    d->apply(img);
    return img;
}

static void check_good(const char *path)
{
    nb_model m;
    nb_err e = {{0}};
    CHECK(!nb_model_open(&m, path, &e), "good file refused: %s", e.msg);
    if (!m.base)
        return;
    struct nb_meta want = tu_tiny_meta();
    CHECK(!memcmp(&m.meta, &want, sizeof want), "metadata does not read back");
    CHECK(!nb_model_verify(&m, &e), "checksums: %s", e.msg);
    nb_tensor t;
    CHECK(nb_model_find(&m, "blk.1.ffn_down", &t) && t.entry->shape[0] == 16 &&
              t.entry->shape[1] == 24 && (uintptr_t)t.data % NB_ALIGN == 0,
          "tensor lookup");
    CHECK(!nb_model_find(&m, "blk.2.ffn_down", &t), "found a tensor that does not exist");
    nb_net L;
    CHECK(!nb_net_init(&L, &m, 0, &e), "llama init: %s", e.msg);
    nb_net_free(&L);
    nb_model_close(&m);
}

static void check_truncations(void)
{
    int refused = 0;
    for (size_t n = 0; n < image_size; n++) {
        nb_model m;
        nb_err e = {{0}};
        uint8_t *img = aligned_alloc(64, (n + 64) / 64 * 64);
        memcpy(img, image, n);
        if (nb_model_parse(&m, img, n, &e) && e.msg[0] && !strchr(e.msg, '\n'))
            refused++;
        free(img);
    }
    CHECK(refused == (int)image_size, "%d of %zu truncated images refused with one line", refused,
          image_size);
}

static void check_damages(void)
{
    for (size_t i = 0; i < sizeof damages / sizeof *damages; i++) {
        uint8_t *img = damaged_copy(&damages[i]);
        nb_model m;
        nb_err e = {{0}};
        int rc = nb_model_parse(&m, img, image_size, &e);
        CHECK(rc == -1, "%s: accepted", damages[i].name);
        CHECK(strstr(e.msg, damages[i].expect) != NULL, "%s: message '%s' lacks '%s'",
              damages[i].name, e.msg, damages[i].expect);
        free(img);
    }
}

/* A model without one of its tensors loads as a file but not as LLaMA. */
static void check_missing_tensor(void)
{
    uint8_t *img = aligned_alloc(64, (image_size + 63) / 64 * 64);
    memcpy(img, image, image_size);
    struct nb_tensor_entry *t = NULL;
    for (uint32_t i = 0; i < hdr(img)->n_tensors; i++)
        if (!strcmp(entry(img, i)->name, "blk.1.attn_v"))
            t = entry(img, i);
    CHECK(t != NULL, "blk.1.attn_v not written");
    if (t)
        strcpy(t->name, "blk.1.attn_vv");
    nb_model m;
    nb_net L;
    nb_err e = {{0}};
    CHECK(!nb_model_parse(&m, img, image_size, &e), "renamed tensor refused: %s", e.msg);
    CHECK(nb_net_init(&L, &m, 0, &e) == -1 && strstr(e.msg, "no tensor 'blk.1.attn_v'"),
          "missing tensor: '%s'", e.msg);
    free(img);
}

static int write_bad(const char *dir)
{
    for (size_t i = 0; i < sizeof damages / sizeof *damages; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s.nib", dir, damages[i].name);
        uint8_t *img = damaged_copy(&damages[i]);
        FILE *f = fopen(path, "wb");
        int ok = f && fwrite(img, 1, image_size, f) == image_size;
        if (f)
            fclose(f);
        free(img);
        if (!ok)
            return fprintf(stderr, "cannot write %s\n", path), 1;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/truncated.nib", dir);
    FILE *f = fopen(path, "wb");
    size_t n = image_size / 2;
    int ok = f && fwrite(image, 1, n, f) == n;
    if (f)
        fclose(f);
    return !ok;
}

/* Files of format 1.1 (no key/value section: its header fields were
 * reserved, zero) still load, as LLaMA. */
static void check_minor_1(void)
{
    uint8_t *img = aligned_alloc(64, (image_size + 63) / 64 * 64);
    memcpy(img, image, image_size);
    hdr(img)->version_minor = 1;
    nb_model m;
    nb_err e = {{0}};
    CHECK(!nb_model_parse(&m, img, image_size, &e) && !m.kv, "1.1 file refused: %s", e.msg);
    nb_net net;
    CHECK(m.base && !nb_net_init(&net, &m, 0, &e) && net.hp.arch->id == NB_ARCH_LLAMA,
          "1.1 file does not run as llama: %s", e.msg);
    if (m.base)
        nb_net_free(&net);
    free(img);
}

static const void *kv_sample(nb_kvw *w, size_t *n)
{
    static const int32_t ids[3] = {7, -1, 9};
    nb_kvw_str(w, "general.architecture", "llama");
    nb_kvw_u32(w, "a.u", 42);
    nb_kvw_i32(w, "a.i", -5);
    nb_kvw_f32(w, "a.f", 0.25f);
    nb_kvw_i32s(w, "a.ids", ids, 3);
    nb_kvw_str(w, "a.empty", "");
    return nb_kvw_bytes(w, n, NULL);
}

static void check_kv_values(void)
{
    nb_kvw w = {0};
    size_t n;
    const void *kv = kv_sample(&w, &n);
    nb_err e = {{0}};
    nb_kv_val v;
    CHECK(kv && !nb_kv_check(kv, n, &e), "good key/values refused: %s", e.msg);
    CHECK(nb_kv_count(kv, n) == 6, "count %u", nb_kv_count(kv, n));
    CHECK(nb_kv_get(kv, n, "a.u", NB_KV_U32, &v, &e) == 1 && v.u32 == 42, "u32");
    CHECK(nb_kv_get(kv, n, "a.i", NB_KV_I32, &v, &e) == 1 && v.i32 == -5, "i32");
    CHECK(nb_kv_get(kv, n, "a.f", NB_KV_F32, &v, &e) == 1 && v.f32 == 0.25f, "f32");
    CHECK(nb_kv_get(kv, n, "a.ids", NB_KV_I32S, &v, &e) == 1 && v.len == 3 &&
              nb_kv_i32_at(&v, 1) == -1 && nb_kv_i32_at(&v, 2) == 9,
          "i32 array");
    CHECK(nb_kv_get(kv, n, "a.empty", NB_KV_STR, &v, &e) == 1 && v.len == 0, "empty string");
    CHECK(nb_kv_get(kv, n, "a.absent", NB_KV_U32, &v, &e) == 0, "absent key found");
    CHECK(nb_kv_get(kv, n, "a.u", NB_KV_STR, &v, &e) == -1 && strstr(e.msg, "'a.u' is a u32"),
          "wrong type: %s", e.msg);
    int refused = 0;
    for (size_t cut = 0; cut < n; cut++)
        refused += nb_kv_check(kv, cut, &e) == -1;
    CHECK(refused == (int)n, "%d of %zu truncated key/values refused", refused, n);
    nb_kvw_free(&w);
}

/* Key/values a writer builds but a reader must refuse. */
static void check_kv_hostile(void)
{
    struct { const char *key, *str; float f; const char *expect; } bad[] = {
        {"dup", NULL, 0, "twice"},         {"Upper.case", NULL, 0, "invalid key"},
        {"a.nan", NULL, 0.0f / 0.0f, "invalid value"}, {"a.utf8", "\xff\xfe", 0, "invalid value"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        nb_kvw w = {0};
        size_t n;
        nb_err e = {{0}};
        nb_kvw_u32(&w, "dup", 1);
        if (bad[i].str)
            nb_kvw_str(&w, bad[i].key, bad[i].str);
        else
            nb_kvw_f32(&w, bad[i].key, bad[i].f);
        const void *kv = nb_kvw_bytes(&w, &n, &e);
        CHECK(kv && nb_kv_check(kv, n, &e) == -1 && strstr(e.msg, bad[i].expect),
              "%s: '%s' lacks '%s'", bad[i].key, e.msg, bad[i].expect);
        nb_kvw_free(&w);
    }
    nb_kvw w = {0};
    size_t n;
    nb_err e = {{0}};
    nb_kvw_u32(&w, "a.u", 1);
    uint8_t *kv = (uint8_t *)nb_kvw_bytes(&w, &n, &e);
    kv[6] = 9; /* the first entry's type */
    CHECK(nb_kv_check(kv, n, &e) == -1 && strstr(e.msg, "unknown type"), "type: %s", e.msg);
    nb_kvw_free(&w);
}

/* A writer refuses key/values that contradict the fixed block. */
static void check_kv_writer(void)
{
    struct nb_meta m = tu_tiny_meta();
    nb_kvw w = {0};
    size_t n;
    nb_err e = {{0}};
    nb_kvw_str(&w, "general.architecture", "qwen2");
    const void *kv = nb_kvw_bytes(&w, &n, &e);
    static const uint8_t vocab[8];
    nb_writer *out = nb_writer_open_kv(tu_tmp("contradicts.nib"), &m, kv, n, vocab, 8, &e);
    CHECK(!out && strstr(e.msg, "contradicts"), "qwen2 key on a llama block: '%s'", e.msg);
    if (out)
        nb_writer_abort(out);
    nb_kvw_free(&w);
}

/* RoPE scaling keys: read back, and each bad combination refused. */
static void check_rope_keys(void)
{
    struct { const char *type; int with_factors; const char *expect; } cases[] = {
        {"llama3", 1, NULL},        {"linear", 0, NULL},
        {"yarn", 1, "unknown RoPE scaling type 'yarn'"}, {"llama3", 0, "is missing"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        nb_kvw w = {0};
        size_t n;
        nb_err e = {{0}};
        nb_kvw_str(&w, "rope.scaling.type", cases[i].type);
        nb_kvw_f32(&w, "rope.scaling.factor", 8);
        if (cases[i].with_factors) {
            nb_kvw_f32(&w, "rope.scaling.low_freq_factor", 1);
            nb_kvw_f32(&w, "rope.scaling.high_freq_factor", 4);
            nb_kvw_u32(&w, "rope.scaling.original_context", 8192);
        }
        nb_model m = {.meta = tu_tiny_meta()};
        m.kv = nb_kvw_bytes(&w, &n, &e);
        m.kv_size = n;
        nb_hparams hp;
        int rc = nb_hparams_read(&m, &hp, &e);
        if (!cases[i].expect)
            CHECK(!rc && hp.rope.factor == 8 && hp.rope.scaling != NB_ROPE_SCALE_NONE,
                  "%s refused: %s", cases[i].type, e.msg);
        else
            CHECK(rc == -1 && strstr(e.msg, cases[i].expect), "%s: '%s' lacks '%s'",
                  cases[i].type, e.msg, cases[i].expect);
        nb_kvw_free(&w);
    }
}

int main(int argc, char **argv)
{
    const char *vocab = argc > 1 && strcmp(argv[1], "--write-bad") ? argv[1] : NULL;
    struct nb_meta m = tu_tiny_meta();
    const char *path = tu_tmp("tiny.nib");
    if (tu_write_model(path, &m, NB_F32, vocab, 42))
        return 2;
    image = tu_read(path, &image_size);
    if (argc > 2 && !strcmp(argv[1], "--write-bad")) {
        int rc = write_bad(argv[2]);
        tu_cleanup();
        return rc;
    }
    check_good(path);
    check_truncations();
    check_damages();
    check_missing_tensor();
    check_minor_1();
    check_kv_values();
    check_kv_hostile();
    check_kv_writer();
    check_rope_keys();
    free(image);
    return tu_finish("test_format");
}
