/* The tokenizer, usable from C: a thin C++17 shim over libsentencepiece
 * (sp_shim.cpp) plus an incremental detokenizer in plain C (detok.c). */
#ifndef NIBBLE_TOKENIZER_H
#define NIBBLE_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "../runtime/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nb_tokenizer nb_tokenizer;

nb_tokenizer *nb_tok_load_file(const char *path, nb_err *e);
nb_tokenizer *nb_tok_load_bytes(const void *data, size_t size, nb_err *e);
void nb_tok_free(nb_tokenizer *t);

int nb_tok_vocab_size(const nb_tokenizer *t);
int nb_tok_bos(const nb_tokenizer *t); /* -1 when the model has none */
int nb_tok_eos(const nb_tokenizer *t);
int nb_tok_unk(const nb_tokenizer *t);
int nb_tok_pad(const nb_tokenizer *t);

/* Encodes UTF-8 text into a malloc'd array (*ids, *n); bos prepends BOS.
 * Fails on invalid UTF-8 with a message naming the byte offset. */
int nb_tok_encode(const nb_tokenizer *t, const char *text, size_t len, int bos, int32_t **ids,
                  size_t *n, nb_err *e);

/* Decodes ids into a malloc'd NUL-terminated string (SentencePiece's own
 * decoding: the dummy-prefix space at the start dropped, see
 * nb_tok_lead_space). NULL on error. */
char *nb_tok_decode(const nb_tokenizer *t, const int32_t *ids, size_t n, nb_err *e);
/* The same, also giving the length: byte-fallback <0x00> can put a NUL
 * inside the text. len may be NULL. Out-of-range ids are an error. */
char *nb_tok_decode_n(const nb_tokenizer *t, const int32_t *ids, size_t n, size_t *len,
                      nb_err *e);

/* The piece's text ("▁the", "<0x0A>", "<s>"); NULL when id is out of range. */
const char *nb_tok_piece(const nb_tokenizer *t, int id);
int nb_tok_piece_to_id(const nb_tokenizer *t, const char *piece); /* unk id if absent */
int nb_tok_is_control(const nb_tokenizer *t, int id);              /* <s>, </s>, ... */
int nb_tok_is_byte(const nb_tokenizer *t, int id);                 /* <0xAB> fallback */
int nb_tok_byte(const nb_tokenizer *t, int id); /* 0xAB for <0xAB>, else -1 */

/* What SentencePiece's decode prints for the unknown id. It comes from the
 * model (trainer_spec.unk_surface), usually " \xE2\x81\x87 " (" ⁇ "); some
 * models, tok512 among them, store it as escaped text, which decodes as is. */
const char *nb_tok_unk_surface(const nb_tokenizer *t);

/* How decode drops the dummy-prefix space at the start of the text
 * (SentencePiece 0.1.97, measured on the model when it is loaded):
 *   NONE  nothing is dropped (add_dummy_prefix and remove_extra_whitespaces
 *         both off);
 *   FIRST one leading "▁" of the first piece that has one, while the text
 *         is still empty (add_dummy_prefix on, remove_extra_whitespaces off);
 *   EMPTY one leading "▁" of every piece while the text is still empty
 *         (remove_extra_whitespaces on; tok512 and Llama's tokenizer). */
enum { NB_LEAD_SPACE_NONE, NB_LEAD_SPACE_FIRST, NB_LEAD_SPACE_EMPTY };
int nb_tok_lead_space(const nb_tokenizer *t);

/* Longest piece text, unk surface included, in bytes. */
size_t nb_tok_max_piece_bytes(const nb_tokenizer *t);

/* Incremental detokenizer: feed one token at a time, get the bytes that
 * are complete UTF-8 so far. Byte-fallback pieces that split a character
 * are held back until the character completes; a sequence that can never
 * complete is replaced by U+FFFD, so the output is always valid UTF-8.
 * The concatenated output of the pushes and the final flush equals
 * nb_tok_decode of the same ids (differences, all for malformed input or
 * model features our vocabularies do not use, are listed in detok.c). */
typedef struct nb_detok {
    const nb_tokenizer *tok;
    int at_start;            /* still inside the dummy-prefix space zone */
    unsigned char pending[4]; /* bytes of an unfinished character */
    int n_pending;
} nb_detok;

/* An out_cap of NB_DETOK_MAX never cuts text when every piece and the unk
 * surface are valid UTF-8 of at most NB_DETOK_PIECE_MAX bytes, as in any
 * vocabulary trained with the default max_sentencepiece_length (16
 * characters); nb_tok_max_piece_bytes checks a model. Why it is enough: a
 * push writes at most 3 U+FFFD (9 bytes) for held bytes, then the piece
 * (never longer than its text: "▁" shrinks to " "), then the NUL; a byte
 * piece writes at most 4 U+FFFD. */
#define NB_DETOK_MAX 256
#define NB_DETOK_PIECE_MAX 240

void nb_detok_init(nb_detok *d, const nb_tokenizer *t);

/* Writes the newly complete text for token id into out, NUL-terminated
 * (nothing at all when out_cap is 0). Text that does not fit is cut at a
 * character boundary and lost; see NB_DETOK_MAX. Returns the number of
 * bytes written, NUL not counted. An out-of-range id writes nothing. */
size_t nb_detok_push(nb_detok *d, int id, char *out, size_t out_cap);

/* Flushes held bytes at the end of a stream (as U+FFFD, one per byte, as
 * SentencePiece does). It does not restart the stream: nb_detok_init does. */
size_t nb_detok_flush(nb_detok *d, char *out, size_t out_cap);

#ifdef __cplusplus
}
#endif

#endif
