/* The tokenizer loader nb_tok_load_bytes (tokenizer/tokenizer.c) on
 * arbitrary bytes: a SentencePiece model (sp_shim.cpp), or a BPE blob when
 * the bytes start with its magic. Then on whatever it accepted: every
 * accessor over the pieces, an encode and decode of a short text, and the
 * incremental detokenizer over the same ids (both interfaces), whose
 * output must be valid UTF-8 even for a malformed model. libsentencepiece
 * itself is not instrumented: only what the shim does with it is checked. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../tokenizer/tokenizer.h"
#include "fuzz_util.h"
#include "utf8_check.h"

static const char text[] = "Once upon a time, Lily saw a b\xC3\xBCg \xF0\x9F\xA6\x99 \xE6\x97\xA5"
                           "\xE6\x9C\xAC!\n\t 42 <s> <0x41>";

static void check_utf8(const char *out, size_t len, const char *what)
{
    if (!out || out[len] || !fz_valid_utf8((const unsigned char *)out, len)) {
        fprintf(stderr, "fuzz: detok %s wrote %zu bytes of invalid UTF-8\n", what, len);
        abort();
    }
}

static void detok(const nb_tokenizer *t, const int32_t *ids, size_t n)
{
    nb_detok d;
    char out[NB_DETOK_MAX];
    size_t cap = nb_tok_max_piece_bytes(t) <= NB_DETOK_PIECE_MAX ? sizeof out : 16, len;
    nb_detok_init(&d, t);
    for (size_t i = 0; i <= n; i++) {
        len = i < n ? nb_detok_push(&d, ids[i], out, cap) : nb_detok_flush(&d, out, cap);
        if (len >= cap)
            abort();
        check_utf8(out, len, "push");
    }
    nb_detok_free(&d);
    nb_detok_init(&d, t);
    for (size_t i = 0; i <= n; i++) {
        const char *p = i < n ? nb_detok_next(&d, ids[i], &len) : nb_detok_end(&d, &len);
        check_utf8(p, len, i < n ? "next" : "end");
    }
    nb_detok_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nb_err e;
    nb_tokenizer *t = nb_tok_load_bytes(data, size, &e);
    if (!t)
        return 0;
    int n = nb_tok_vocab_size(t), special[4] = {nb_tok_bos(t), nb_tok_eos(t), nb_tok_unk(t),
                                                nb_tok_pad(t)};
    for (int i = 0; i < 4; i++)
        if (special[i] < -1 || special[i] >= n)
            abort();
    size_t max_piece = strlen(nb_tok_unk_surface(t));
    for (int id = -1; id <= n && id < 4096; id++) {
        const char *p = nb_tok_piece(t, id);
        if (p && (id < 0 || id >= n))
            abort(); /* in range, a BPE id may still have no token */
        int b = nb_tok_byte(t, id);
        if (b < -1 || b > 255 || (b >= 0 && !nb_tok_is_byte(t, id)))
            abort();
        if (p) {
            max_piece = strlen(p) > max_piece ? strlen(p) : max_piece;
            int back = nb_tok_piece_to_id(t, p);
            if (back < -1 || back >= n)
                abort();
        }
        nb_tok_is_control(t, id);
    }
    if (nb_tok_kind(t) == NB_TOK_SENTENCEPIECE && n <= 4096 &&
        max_piece > nb_tok_max_piece_bytes(t))
        abort();
    int lead = nb_tok_lead_space(t);
    if (lead != NB_LEAD_SPACE_NONE && lead != NB_LEAD_SPACE_FIRST && lead != NB_LEAD_SPACE_EMPTY)
        abort();
    int32_t *ids;
    size_t count;
    if (!nb_tok_encode(t, text, sizeof text - 1, 1, &ids, &count, &e)) {
        for (size_t i = 0; i < count; i++)
            if (ids[i] < 0 || ids[i] >= n)
                abort();
        size_t len;
        char *back = nb_tok_decode_n(t, ids, count, &len, &e);
        free(back);
        detok(t, ids, count);
        free(ids);
    }
    nb_tok_free(t);
    return 0;
}
