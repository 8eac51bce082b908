#define _POSIX_C_SOURCE 200809L
#include "convert.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../../neon/f16.h"
#include "../../runtime/base/utf8.h"
#include "../../tokenizer/bpe.h"
#include "../../tokenizer/tokenizer.h"

#define MAX_TOKENIZER_FILE (64u << 20) /* Qwen's tokenizer.json: 11 MB */

/* Sources may be unaligned (safetensors headers have any length). */
static float load_elem(uint32_t dtype, const void *src, size_t i)
{
    uint16_t h;
    float f;
    switch (dtype) {
    case NB_F16: memcpy(&h, (const char *)src + 2 * i, 2); return nb_f16_to_f32(h);
    case NB_BF16: memcpy(&h, (const char *)src + 2 * i, 2); return nb_bf16_to_f32(h);
    default: memcpy(&f, (const char *)src + 4 * i, 4); return f;
    }
}

static void store_elem(uint32_t dtype, void *dst, size_t i, float v)
{
    uint16_t *h = dst;
    switch (dtype) {
    case NB_F16: h[i] = nb_f32_to_f16(v); break;
    case NB_BF16: h[i] = nb_f32_to_bf16(v); break;
    default: memcpy((char *)dst + 4 * i, &v, 4); break;
    }
}

int nb_convert_tensor(nb_writer *w, const char *name, uint32_t src_dtype, const void *src,
                      int n_dims, const uint64_t *shape, int out_dtype, nb_err *e)
{
    uint32_t dst_dtype = out_dtype < 0 ? src_dtype : (uint32_t)out_dtype;
    struct nb_tensor_entry t;
    if (nb_entry_init(&t, name, dst_dtype, n_dims, shape, e))
        return -1;
    if (dst_dtype == src_dtype)
        return nb_writer_add_entry(w, &t, src, e);
    enum { CHUNK = 16384 };
    static float buf[CHUNK]; /* one conversion at a time in the tools */
    size_t width = nb_dtype_width(dst_dtype), n = t.size / width;
    if (nb_writer_begin(w, &t, e))
        return -1;
    for (size_t done = 0; done < n;) {
        size_t k = n - done < CHUNK ? n - done : CHUNK;
        for (size_t i = 0; i < k; i++)
            store_elem(dst_dtype, buf, i, load_elem(src_dtype, src, done + i));
        if (nb_writer_append(w, buf, k * width, e))
            return -1;
        done += k;
    }
    return nb_writer_end(w, e);
}

void *nb_read_file(const char *path, size_t max_size, size_t *size, nb_err *e)
{
    struct stat st;
    if (stat(path, &st)) {
        nb_fail(e, "cannot open '%s': %s", path, strerror(errno));
        return NULL;
    }
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > max_size) {
        nb_fail(e, "'%s' is not a regular file of at most %zu bytes", path, max_size);
        return NULL;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        nb_fail(e, "cannot read '%s': %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t got = buf ? fread(buf, 1, (size_t)st.st_size, f) : 0;
    int err = ferror(f) ? errno : 0;
    fclose(f);
    if (!buf || got != (size_t)st.st_size) {
        free(buf);
        nb_fail(e, "cannot read '%s': %s", path,
                !buf ? "out of memory" : err ? strerror(err) : "the file changed while read");
        return NULL;
    }
    buf[got] = 0;
    *size = got;
    return buf;
}

/* Strict parsing: a key given twice could be read differently by two
 * readers (a safetensors header must name each tensor once), and a NUL
 * would cut names short. */
#define JSON_FLAGS JSON_REJECT_DUPLICATES

json_t *nb_json_mem(const char *text, size_t len, nb_err *e)
{
    json_error_t err;
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3))
        text += 3, len -= 3; /* RFC 8259 lets a parser ignore a byte-order mark */
    json_t *root = json_loadb(text, len, JSON_FLAGS, &err);
    /* An integer past int64 (Llama-3's tokenizer_config.json has a
     * model_max_length of 1e30): every number as a double then, as JSON
     * means them (nb_json_i64 still reads the integral ones). */
    if (!root && strstr(err.text, "too big integer"))
        root = json_loadb(text, len, JSON_FLAGS | JSON_DECODE_INT_AS_REAL, &err);
    if (!root) { /* jansson quotes the text near the error: control bytes and all */
        char why[sizeof err.text * 4];
        nb_fail(e, "line %d column %d: %s", err.line, err.column,
                nb_utf8_escape(why, sizeof why, err.text));
    }
    return root;
}

json_t *nb_json_file(const char *path, size_t max_bytes, nb_err *e)
{
    size_t len;
    char *text = nb_read_file(path, max_bytes, &len, e);
    if (!text)
        return NULL;
    nb_err why;
    json_t *root = nb_json_mem(text, len, &why);
    free(text);
    if (!root)
        nb_fail(e, "%s: %s", path, why.msg);
    return root;
}

int nb_json_i64(const json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return 0;
    }
    double d = json_is_real(v) ? json_real_value(v) : 0.5;
    if (d != floor(d) || d < -9223372036854775808.0 || d >= 9223372036854775808.0)
        return -1;
    *out = (int64_t)d;
    return 0;
}

const char *nb_json_kind(const json_t *v)
{
    if (!v)
        return "nothing";
    switch (json_typeof(v)) {
    case JSON_NULL: return "null";
    case JSON_TRUE:
    case JSON_FALSE: return "true or false";
    case JSON_INTEGER:
    case JSON_REAL: return "number";
    case JSON_STRING: return "string";
    case JSON_ARRAY: return "array";
    case JSON_OBJECT: return "object";
    default: return "nothing";
    }
}

void *nb_tokenizer_file(const char *path, size_t *size, nb_tokenizer **tok, nb_err *e)
{
    char *text = nb_read_file(path, MAX_TOKENIZER_FILE, size, e);
    if (!text)
        return NULL;
    void *bytes = text;
    nb_err why;
    if (nb_tok_is_json(text, *size)) {
        bytes = nb_bpe_from_json_text(text, *size, size, &why);
        free(text);
    } else if (!*size) {
        bytes = NULL;
        free(text);
        snprintf(why.msg, sizeof why.msg, "empty");
    }
    *tok = bytes ? nb_tok_load_bytes(bytes, *size, &why) : NULL;
    if (!*tok) {
        free(bytes);
        nb_fail(e, "tokenizer '%s': %s", path, why.msg);
        return NULL;
    }
    return bytes;
}

void *nb_load_vocab(const char *path, struct nb_meta *meta, size_t *size, nb_err *e)
{
    nb_tokenizer *tok;
    void *bytes = nb_tokenizer_file(path, size, &tok, e);
    if (!bytes)
        return NULL;
    int n = nb_tok_vocab_size(tok);
    meta->tokenizer_kind = (uint32_t)nb_tok_kind(tok);
    meta->bos_id = nb_tok_bos(tok);
    meta->eos_id = nb_tok_eos(tok);
    meta->unk_id = nb_tok_unk(tok);
    meta->pad_id = nb_tok_pad(tok);
    nb_tok_free(tok);
    if ((uint32_t)n != meta->vocab_size) {
        free(bytes);
        nb_fail(e, "tokenizer '%s' has %d pieces but the model's vocabulary is %u", path, n,
                meta->vocab_size);
        return NULL;
    }
    return bytes;
}

void nb_notice(int quiet, const char *fmt, ...)
{
    if (quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("nibble: note: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}
