/* The tokenizer, one API for both kinds a model file can carry:
 * SentencePiece (a thin C++17 shim over libsentencepiece, sp_shim.cpp) and
 * the byte-pair encodings of Hugging Face tokenizer.json files (bpe.h:
 * byte-level BPE as Qwen, Llama-3, SmolLM2; SentencePiece-style BPE with
 * byte fallback as Mistral). tokenizer.c dispatches on the kind, told
 * apart by the bytes' magic; detok.c streams text for both. */
#ifndef NIBBLE_TOKENIZER_H
#define NIBBLE_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "../runtime/base/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nb_tokenizer nb_tokenizer;

/* The kinds, numbered as the model file's tokenizer_kind (nibformat.h). */
enum nb_tok_kind { NB_TOK_SENTENCEPIECE = 0, NB_TOK_BPE = 1 };

/* Which kind tokenizer bytes are: NB_TOK_BPE when they start with the BPE
 * blob's magic (bpe_int.h), else NB_TOK_SENTENCEPIECE. Nothing is parsed. */
int nb_tok_bytes_kind(const void *data, size_t size);

/* 1 when the bytes are a JSON object (a tokenizer.json), which neither a
 * SentencePiece model nor a BPE blob can be. */
int nb_tok_is_json(const void *data, size_t size);

/* A SentencePiece .model, a BPE blob, or a tokenizer.json (nb_tok_is_json:
 * parsed into a blob on the way). */
nb_tokenizer *nb_tok_load_file(const char *path, nb_err *e);
/* A SentencePiece model's bytes or a BPE blob (nb_bpe_from_json), picked
 * by magic; the bytes are not kept. */
nb_tokenizer *nb_tok_load_bytes(const void *data, size_t size, nb_err *e);
void nb_tok_free(nb_tokenizer *t);

int nb_tok_kind(const nb_tokenizer *t); /* enum nb_tok_kind */

/* Ids run from 0 to nb_tok_vocab_size - 1. A BPE id in between may have
 * no token (its piece is NULL). */
int nb_tok_vocab_size(const nb_tokenizer *t);
/* -1 when the model has none. BPE: bos is the one id the post-processor
 * puts before a text (Llama-3's <|begin_of_text|>; -1 for Qwen, which
 * adds nothing), and there is no eos, unk or pad: what ends generation is
 * the model file's set of end ids. */
int nb_tok_bos(const nb_tokenizer *t);
int nb_tok_eos(const nb_tokenizer *t);
int nb_tok_unk(const nb_tokenizer *t);
int nb_tok_pad(const nb_tokenizer *t);

/* Encodes UTF-8 text into a malloc'd array (*ids, *n). bos adds what the
 * model adds around a text: SentencePiece's BOS; for BPE the
 * post-processor's ids (encode(text, add_special_tokens=True) of the
 * tokenizers library; 0 is add_special_tokens=False). Added tokens written
 * in the text ("<|im_end|>") always become their ids, as in the library.
 * Fails on invalid UTF-8 with a message naming the byte offset. */
int nb_tok_encode(const nb_tokenizer *t, const char *text, size_t len, int bos, int32_t **ids,
                  size_t *n, nb_err *e);

/* Decodes ids into a malloc'd NUL-terminated string (SentencePiece's own
 * decoding: the dummy-prefix space at the start dropped, see
 * nb_tok_lead_space; BPE: the library's decode(ids,
 * skip_special_tokens=True)). NULL on error. */
char *nb_tok_decode(const nb_tokenizer *t, const int32_t *ids, size_t n, nb_err *e);
/* The same, also giving the length: byte-fallback <0x00> can put a NUL
 * inside the text. len may be NULL. Out-of-range ids are an error. */
char *nb_tok_decode_n(const nb_tokenizer *t, const int32_t *ids, size_t n, size_t *len,
                      nb_err *e);

/* The piece's text as the model writes it ("▁the", "<0x0A>", "<s>"; BPE:
 * "Ġthe", "<|im_end|>"); NULL when id is out of range or has no token. */
const char *nb_tok_piece(const nb_tokenizer *t, int id);
/* The id of a piece: SentencePiece gives the unk id if absent, BPE -1. */
int nb_tok_piece_to_id(const nb_tokenizer *t, const char *piece);
/* A token that decode does not print: SentencePiece's control pieces
 * (<s>, </s>), BPE's special added tokens (<|im_end|>, <|eot_id|>). */
int nb_tok_is_control(const nb_tokenizer *t, int id);
int nb_tok_is_byte(const nb_tokenizer *t, int id); /* <0xAB>: byte fallback */
int nb_tok_byte(const nb_tokenizer *t, int id);    /* 0xAB for <0xAB>, else -1 */

/* What SentencePiece's decode prints for the unknown id ("" for BPE). It comes from the
 * model (trainer_spec.unk_surface), usually " \xE2\x81\x87 " (" ⁇ "); some
 * models, tok512 among them, store it as escaped text, which decodes as is. */
const char *nb_tok_unk_surface(const nb_tokenizer *t);

/* How decode drops the dummy-prefix space at the start of the text
 * (SentencePiece 0.1.97, measured on the model when it is loaded; NONE
 * for BPE, whose decoders say it themselves):
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

/* The BPE tokenizer inside (bpe.h), NULL for SentencePiece. */
struct nb_bpe;
const struct nb_bpe *nb_tok_bpe(const nb_tokenizer *t);

/* Incremental detokenizer: feed one token at a time, get the bytes that
 * are complete UTF-8 so far; the output is always valid UTF-8.
 * SentencePiece: byte-fallback pieces that split a character are held
 * back until the character completes; a sequence that can never complete
 * is replaced by U+FFFD. BPE: the model's decoders run as a stream
 * (nb_bpe_detok_push): a character split over byte-level tokens waits for
 * its last byte, a run of byte-fallback tokens for its end; special tokens
 * print nothing. The concatenated output of the pushes and the final
 * flush equals nb_tok_decode of the same ids (SentencePiece's differences,
 * all for malformed input or model features our vocabularies do not use,
 * are listed in detok.c). */
/* An out_cap of NB_DETOK_MAX never cuts SentencePiece text when every
 * piece and the unk surface are valid UTF-8 of at most NB_DETOK_PIECE_MAX
 * bytes, as in any vocabulary trained with the default
 * max_sentencepiece_length (16 characters); nb_tok_max_piece_bytes checks
 * a model. Why it is enough: a push writes at most 3 U+FFFD (9 bytes) for
 * held bytes, then the piece (never longer than its text: "▁" shrinks to
 * " "), then the NUL; a byte piece writes at most 4 U+FFFD. BPE text has
 * no such bound (a run of byte-fallback tokens comes out at once): use
 * nb_detok_next and nb_detok_end, which never cut. */
#define NB_DETOK_MAX 256
#define NB_DETOK_PIECE_MAX 240

struct nb_bpe_detok;
typedef struct nb_detok {
    const nb_tokenizer *tok;
    int at_start;             /* the text starts here: the start-of-text rules apply */
    unsigned char pending[4]; /* SentencePiece: bytes of an unfinished character */
    int n_pending;
    struct nb_bpe_detok *bpe; /* BPE: the decoders' stream (nb_detok_free) */
    int pushed;               /* BPE: ids pushed since nb_detok_init */
    char buf[NB_DETOK_MAX];   /* nb_detok_next's text (SentencePiece) */
} nb_detok;

/* Starts a stream (at_start set: callers continuing a printed prompt
 * clear it before the first push). BPE allocates the decoders' state:
 * -1 when memory runs out (the pushes then print nothing), and
 * nb_detok_free releases it. A zeroed nb_detok may be freed. */
int nb_detok_init(nb_detok *d, const nb_tokenizer *t);
void nb_detok_free(nb_detok *d);

/* Writes the newly complete text for token id into out, NUL-terminated
 * (nothing at all when out_cap is 0). Text that does not fit is cut at a
 * character boundary and lost; see NB_DETOK_MAX. Returns the number of
 * bytes written, NUL not counted. An out-of-range id writes nothing. */
size_t nb_detok_push(nb_detok *d, int id, char *out, size_t out_cap);

/* Flushes held bytes at the end of a stream (SentencePiece: as U+FFFD,
 * one per byte, as SentencePiece does). SentencePiece's stream does not
 * restart (nb_detok_init does); BPE's does, at the start of a text. */
size_t nb_detok_flush(nb_detok *d, char *out, size_t out_cap);

/* The same without a caller's buffer and never cut: the text (*len bytes,
 * NUL-terminated) lives in d until the next call. NULL (*len 0) only when
 * memory runs out. */
const char *nb_detok_next(nb_detok *d, int id, size_t *len);
const char *nb_detok_end(nb_detok *d, size_t *len);

#ifdef __cplusplus
}
#endif

#endif
