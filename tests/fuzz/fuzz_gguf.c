/* A GGUF file (tools/gguf.c, tools/import_gguf.c): the reader checks it
 * at open; then every key/value and tensor it handed out is walked and
 * checked against the bytes (values inside the file, string arrays
 * iterating exactly their count, tensors inside the data), the first
 * blocks of each tensor nibble dequantizes are dequantized, and the whole
 * file goes through nb_import_gguf: what converts must load and bind. */
#include <stdlib.h>
#include <string.h>

#include "../../tools/import/convert.h"
#include "../../tools/import/gguf.h"
#include "fuzz_util.h"

static void walk(const nb_gguf *g, const uint8_t *data, size_t size)
{
    const uint8_t *end = data + size;
    unsigned sum = 0;
    for (size_t i = 0; i < g->n_kv; i++) {
        const nb_gguf_kv *kv = &g->kv[i];
        char key[256];
        if ((const uint8_t *)kv->key < data || kv->key_len > (size_t)(end - (const uint8_t *)kv->key) ||
            kv->val < data || kv->val > end)
            abort();
        if (kv->key_len < sizeof key && !memchr(kv->key, 0, kv->key_len)) {
            memcpy(key, kv->key, kv->key_len);
            key[kv->key_len] = 0;
            if (nb_gguf_find(g, key) != kv) /* keys are unique */
                abort();
        }
        if (kv->type == NB_GGUF_STR && kv->n > (uint64_t)(end - kv->val))
            abort();
        if (kv->type == NB_GGUF_ARR && kv->elem_type == NB_GGUF_STR) {
            nb_gguf_iter it;
            const char *s;
            size_t n, count = 0;
            nb_gguf_iter_init(&it, kv);
            while (nb_gguf_iter_str(&it, &s, &n)) {
                if ((const uint8_t *)s < data || n > (size_t)(end - (const uint8_t *)s))
                    abort();
                sum += n ? (unsigned char)s[n - 1] : 0;
                count++;
            }
            if (count != kv->n)
                abort();
        } else if (kv->type == NB_GGUF_ARR && kv->elem_type != NB_GGUF_ARR && kv->n) {
            sum += (unsigned)nb_gguf_arr_int(kv, kv->n - 1);
            sum += (unsigned)(nb_gguf_arr_float(kv, 0) == 0);
        }
    }
    float out[256 * 4];
    for (size_t i = 0; i < g->n_tensors; i++) {
        const nb_gguf_tensor *t = &g->tensors[i];
        uint32_t block, bytes;
        if (nb_ggml_type_block(t->type, &block, &bytes) || t->data < data ||
            t->size > (uint64_t)(end - t->data) || t->offset % g->alignment ||
            t->size != t->n_elems / block * bytes || nb_gguf_tensor_find(g, t->name) != t)
            abort();
        if (nb_ggml_can_dequant(t->type)) {
            size_t n = t->n_elems < 1024 ? (size_t)t->n_elems : 1024 / block * block;
            nb_ggml_dequant(t->type, t->data, n, out);
            sum += n ? (unsigned)(out[n - 1] != out[n - 1]) : 0;
        }
    }
    (void)sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nb_gguf g;
    nb_err e;
    int rc = nb_gguf_open_mem(&g, data, size, &e);
    if (!rc)
        walk(&g, data, size);
    nb_gguf_close(&g);
    if (rc)
        return 0;
    char in[512], out[512];
    fz_path(in, sizeof in, "model.gguf");
    fz_path(out, sizeof out, "out.nib");
    if (fz_write(in, data, size))
        abort();
    /* the output dtype from the length, which trailing bytes change */
    static const int dtypes[3] = {-1, NB_F16, NB_BF16};
    nb_convert_opts o = {.out_dtype = dtypes[size % 3], .name = "fuzz", .quiet = 1};
    if (!nb_import_gguf(in, out, &o, &e))
        fz_check_loads(out, "the GGUF importer");
    return 0;
}
