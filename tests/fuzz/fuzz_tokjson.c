/* tokenizer.json (tokenizer/bpe_json*.c, the one parser of these files,
 * run at convert time) into a BPE blob, then the blob as a model file
 * carries it: whatever the builder wrote must load (nb_bpe_load_bytes), and
 * the loaded tokenizer is used on a few texts and on the input's own bytes:
 * encoded ids stay inside the vocabulary, decoding and the incremental
 * detokenizer give valid UTF-8 (the library's U+FFFD for broken bytes),
 * and the detokenizer's pieces add up to the whole decode. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../tokenizer/bpe.h"
#include "../../runtime/base/utf8.h"
#include "fuzz_util.h"

static const char *const texts[] = {
    "Hello, world! 1234567 it's", "  spaced\tout \r\n\n", "日本語 한국어 é 👩‍👩‍👧 🇫🇷",
    "<|im_start|>user\nhi<|im_end|><s></s>", "",
};

static void valid_utf8(const char *s, size_t n, const char *what)
{
    if (s && nb_utf8_bad_offset((const unsigned char *)s, n) != n) {
        fprintf(stderr, "%s: invalid UTF-8 out\n", what);
        abort();
    }
}

/* The incremental detokenizer over ids equals the whole decode. */
static void detok_equals(const nb_bpe *t, const int32_t *ids, size_t n, const char *whole,
                         size_t whole_len)
{
    nb_err e;
    nb_bpe_detok *d = nb_bpe_detok_new(t, 0, &e);
    if (!d)
        abort();
    size_t at = 0, len;
    for (size_t i = 0; i <= n; i++) {
        const char *piece =
            i < n ? nb_bpe_detok_push(d, ids[i], &len) : nb_bpe_detok_flush(d, &len);
        valid_utf8(piece, len, "detokenizer");
        if (len && (at + len > whole_len || memcmp(whole + at, piece, len)))
            abort();
        at += len;
    }
    if (at != whole_len)
        abort();
    nb_bpe_detok_free(d);
}

static void use(const nb_bpe *t, const char *text, size_t len)
{
    int32_t *ids = NULL;
    size_t n = 0, out_len;
    nb_err e;
    if (nb_bpe_encode(t, text, len, 1, &ids, &n, &e))
        return; /* invalid UTF-8 in the input's bytes: refused by name */
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= nb_bpe_vocab_size(t))
            abort();
    char *s = nb_bpe_decode(t, ids, n, 0, &out_len, &e);
    if (!s)
        abort(); /* the ids came from encode: all inside the vocabulary */
    valid_utf8(s, out_len, "decode");
    detok_equals(t, ids, n, s, out_len);
    free(s);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nb_err e;
    size_t n;
    void *blob = nb_bpe_from_json_text((const char *)data, size, &n, &e);
    if (!blob)
        return 0;
    nb_bpe *t = nb_bpe_load_bytes(blob, n, &e);
    free(blob);
    if (!t) {
        fprintf(stderr, "a blob the builder wrote is refused: %s\n", e.msg);
        abort();
    }
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++)
        use(t, texts[i], strlen(texts[i]));
    use(t, (const char *)data, size < 256 ? size : 256);
    nb_bpe_free(t);
    return 0;
}
