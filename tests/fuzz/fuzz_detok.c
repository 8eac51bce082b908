/* The incremental detokenizer (tokenizer/detok.c) over the real
 * tok512.model, fed the input as a stream of token ids: byte 0 picks the
 * output buffer (bit 0 set: a small one, 1 + byte0 / 2 % 32 bytes), then
 * each two bytes (little-endian) are an id, some out of range. Properties,
 * not only crashes:
 *  - every push and the flush write valid UTF-8, NUL-terminated, within
 *    the buffer;
 *  - with the full buffer (NB_DETOK_MAX), the stream equals the one of
 *    nb_detok_next/nb_detok_end (which never cut), and with ids all in
 *    range, nb_tok_decode of the same ids (tok512 uses none of the
 *    features detok.c lists as differing). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../tokenizer/tokenizer.h"
#include "fuzz_util.h"
#include "utf8_check.h"

static void check(const char *out, size_t len, size_t cap, const char *what)
{
    if (cap && (len >= cap || out[len] != 0)) {
        fprintf(stderr, "fuzz: detok %s: %zu bytes in a buffer of %zu\n", what, len, cap);
        abort();
    }
    if (!fz_valid_utf8((const unsigned char *)out, len)) {
        fprintf(stderr, "fuzz: detok %s wrote invalid UTF-8\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static nb_tokenizer *tok;
    if (!tok) {
        nb_err e;
        if (!(tok = nb_tok_load_file(fz_tokenizer_path(), &e))) {
            fprintf(stderr, "fuzz: %s (set NB_FUZZ_TOKENIZER)\n", e.msg);
            abort();
        }
    }
    if (size < 1)
        return 0;
    int vocab = nb_tok_vocab_size(tok);
    size_t cap = data[0] & 1 ? 1 + (size_t)(data[0] / 2 % 32) : NB_DETOK_MAX;
    size_t n = (size - 1) / 2, total = 0;
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    char *text = malloc(n * NB_DETOK_MAX + NB_DETOK_MAX);
    int all_in_range = 1;
    nb_detok d;
    nb_detok_init(&d, tok);
    char out[NB_DETOK_MAX];
    for (size_t i = 0; i < n; i++) {
        /* ids from -4 to vocab + 3: the edges of the range and past them */
        ids[i] = (int32_t)((data[1 + 2 * i] | data[2 + 2 * i] << 8) % (vocab + 8)) - 4;
        all_in_range &= ids[i] >= 0 && ids[i] < vocab;
        size_t len = nb_detok_push(&d, ids[i], out, cap);
        check(out, len, cap, "push");
        memcpy(text + total, out, len);
        total += len;
    }
    size_t len = nb_detok_flush(&d, out, cap);
    check(out, len, cap, "flush");
    memcpy(text + total, out, len);
    total += len;
    check(text, total, 0, "stream"); /* whole characters only, never split */
    nb_detok_free(&d);
    if (cap == NB_DETOK_MAX) {
        size_t at = 0, n_out;
        const char *p;
        nb_detok_init(&d, tok);
        for (size_t i = 0; i <= n && at <= total; i++) {
            p = i < n ? nb_detok_next(&d, ids[i], &n_out) : nb_detok_end(&d, &n_out);
            if (!p || n_out > total - at || memcmp(p, text + at, n_out))
                abort(); /* the two interfaces disagree */
            at += n_out;
        }
        nb_detok_free(&d);
        if (at != total)
            abort();
    }
    if (cap == NB_DETOK_MAX && all_in_range) {
        nb_err e;
        size_t want_len;
        char *want = nb_tok_decode_n(tok, ids, n, &want_len, &e);
        if (!want || want_len != total || memcmp(want, text, total)) {
            fprintf(stderr, "fuzz: detok wrote %zu bytes, decode %zu: \"%.*s\" vs \"%.*s\"\n",
                    total, want_len, (int)total, text, (int)want_len, want ? want : "");
            abort();
        }
        free(want);
    }
    free(ids);
    free(text);
    return 0;
}
