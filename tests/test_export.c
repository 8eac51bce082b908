/* test_export cmp A.nib B.nib [EXPECTED...]: compares two model files the
 * way tests/export.sh needs after `nibble export` then `nibble convert`:
 * tensor by tensor (name, dtype, shape, group, bits, size and the CRC-32
 * of the bytes; the order in the file is free), then each fixed metadata
 * field, the key/values and the tokenizer bytes. Prints one line per
 * difference ("tensor output: dtype q4 vs f16", "meta name: ..."), then
 * "identical" or a count. EXPECTED lists the names of differences that
 * are allowed ("output", "meta.name", "meta.tied_embeddings"): exit 0
 * when every difference is one of them and each of them happened. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "../runtime/model.h"

static int n_diff, n_expected_seen, n_expected;
static const char *const *expected;

static void differ(const char *what, const char *fmt, const char *a, const char *b)
{
    int ok = 0;
    for (int i = 0; i < n_expected; i++)
        if (!strcmp(expected[i], what))
            ok = 1, n_expected_seen++;
    printf("%s %s: ", ok ? "expected" : "DIFFERS", what);
    printf(fmt, a, b);
    printf("\n");
    n_diff += !ok;
}

static void cmp_entry(const struct nb_tensor_entry *a, const struct nb_tensor_entry *b)
{
    char wa[128], wb[128];
    snprintf(wa, sizeof wa, "%s [%llu, %llu] g%u b%u crc %08x", nb_dtype_name(a->dtype),
             (unsigned long long)a->shape[0], (unsigned long long)a->shape[1], a->group_size,
             a->bits, a->crc32);
    snprintf(wb, sizeof wb, "%s [%llu, %llu] g%u b%u crc %08x", nb_dtype_name(b->dtype),
             (unsigned long long)b->shape[0], (unsigned long long)b->shape[1], b->group_size,
             b->bits, b->crc32);
    if (strcmp(wa, wb) || a->size != b->size || a->n_dims != b->n_dims)
        differ(a->name, "%s vs %s", wa, wb);
}

static void cmp_tensors(const nb_model *a, const nb_model *b)
{
    for (uint32_t i = 0; i < a->n_tensors; i++) {
        nb_tensor t;
        if (nb_model_find(b, a->table[i].name, &t))
            cmp_entry(&a->table[i], t.entry);
        else
            differ(a->table[i].name, "%s%s", "in the first file only", "");
    }
    for (uint32_t i = 0; i < b->n_tensors; i++) {
        nb_tensor t;
        if (!nb_model_find(a, b->table[i].name, &t))
            differ(b->table[i].name, "%s%s", "in the second file only", "");
    }
}

#define FIELD(f) {"meta." #f, offsetof(struct nb_meta, f), sizeof(((struct nb_meta *)0)->f)}

static void cmp_meta(const nb_model *a, const nb_model *b)
{
    static const struct { const char *name; size_t off, size; } fields[] = {
        FIELD(arch), FIELD(dim), FIELD(n_layers), FIELD(n_heads), FIELD(n_kv_heads),
        FIELD(head_dim), FIELD(ffn_dim), FIELD(vocab_size), FIELD(max_ctx), FIELD(rope_pairs),
        FIELD(rope_theta), FIELD(norm_eps), FIELD(bos_id), FIELD(eos_id), FIELD(unk_id),
        FIELD(pad_id), FIELD(tied_embeddings), FIELD(name), FIELD(chat_template),
        FIELD(tokenizer_kind), FIELD(n_end_ids), FIELD(end_ids), FIELD(reserved)};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
        if (memcmp((const char *)&a->meta + fields[i].off, (const char *)&b->meta + fields[i].off,
                   fields[i].size))
            differ(fields[i].name, "%s%s", "not the same bytes", "");
    if (a->kv_size != b->kv_size || (a->kv_size && memcmp(a->kv, b->kv, a->kv_size)))
        differ("kv", "%s%s", "the key/values differ", "");
    if (a->vocab_size != b->vocab_size || memcmp(a->vocab, b->vocab, a->vocab_size))
        differ("tokenizer", "%s%s", "the tokenizer bytes differ", "");
}

int main(int argc, char **argv)
{
    if (argc < 4 || strcmp(argv[1], "cmp"))
        return fprintf(stderr, "usage: test_export cmp A.nib B.nib [EXPECTED...]\n"), 2;
    nb_model a, b;
    nb_err e;
    if (nb_model_open(&a, argv[2], &e))
        return fprintf(stderr, "%s\n", e.msg), 2;
    if (nb_model_open(&b, argv[3], &e))
        return fprintf(stderr, "%s\n", e.msg), 2;
    expected = (const char *const *)argv + 4, n_expected = argc - 4;
    cmp_meta(&a, &b);
    cmp_tensors(&a, &b);
    printf("%u tensors; %d unexpected difference(s), %d expected\n", a.n_tensors, n_diff,
           n_expected_seen);
    nb_model_close(&a);
    nb_model_close(&b);
    return n_diff || n_expected_seen != n_expected;
}
