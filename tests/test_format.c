/* The model file: a written file reads back exactly, and every kind of
 * damage or hostility is refused with a message instead of a crash.
 * With --write-bad DIR it also leaves hostile files there for the CLI
 * tests (tests/cli.sh) to feed to the nibble program. */
#define _POSIX_C_SOURCE 200809L
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "../models/net.h"
#include "../runtime/model.h"
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
    free(image);
    return tu_finish("test_format");
}
