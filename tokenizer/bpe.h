/* Byte-pair-encoding tokenizers as the Hugging Face `tokenizers` library
 * defines them in tokenizer.json: byte-level BPE (GPT-2, Llama-3, Qwen,
 * SmolLM2) and the SentencePiece-style BPE with "▁" and byte fallback
 * (Llama-2, Mistral). Ids and decoded text equal the library's.
 *
 * A tokenizer.json is parsed once (nb_bpe_from_json, at convert time) into
 * a compact blob that nb_bpe_load_bytes loads and validates completely in
 * milliseconds (Qwen3's 151k tokens and merges: about 15 ms on an x86
 * core): the blob will travel inside model files, so it is never trusted.
 * The format is described in bpe_int.h. */
#ifndef NIBBLE_BPE_H
#define NIBBLE_BPE_H

#include <stddef.h>
#include <stdint.h>

#include "../runtime/base/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nb_bpe nb_bpe;

/* Parses a tokenizer.json into a malloc'd blob of *size bytes. A model
 * other than BPE, a component the library has that nibble does not, an
 * invalid regex, merges naming unknown tokens, duplicate ids: NULL and one
 * line naming the problem. */
void *nb_bpe_from_json(const char *path, size_t *size, nb_err *e);
/* The same from JSON text in memory (len bytes, no NUL needed). */
void *nb_bpe_from_json_text(const char *json, size_t len, size_t *size, nb_err *e);

/* Loads a blob; the bytes are copied, the caller keeps its buffer. */
nb_bpe *nb_bpe_load_bytes(const void *data, size_t size, nb_err *e);
/* nb_bpe_from_json then nb_bpe_load_bytes. */
nb_bpe *nb_bpe_load_json(const char *path, nb_err *e);
void nb_bpe_free(nb_bpe *t);

/* Ids run from 0 to nb_bpe_vocab_size - 1 (the model's vocabulary and the
 * added tokens); an id in between may have no token. */
int nb_bpe_vocab_size(const nb_bpe *t);
/* The token's text as tokenizer.json writes it ("Ġthe", "▁the", "<0x0A>",
 * "<|im_end|>"), NUL-terminated (len, which may be NULL, counts a NUL
 * inside); NULL when the id has none. */
const char *nb_bpe_piece(const nb_bpe *t, int id, size_t *len);
/* The id of an added token of that text, else of the vocabulary entry, else -1. */
int nb_bpe_piece_to_id(const nb_bpe *t, const char *piece, size_t len);
int nb_bpe_is_special(const nb_bpe *t, int id); /* an added token marked special */
int nb_bpe_is_added(const nb_bpe *t, int id);

/* What the post-processor puts around one sequence when special tokens are
 * added (Llama-3: <|begin_of_text|> before; Qwen: nothing). */
size_t nb_bpe_prefix_ids(const nb_bpe *t, const int32_t **ids);
size_t nb_bpe_suffix_ids(const nb_bpe *t, const int32_t **ids);

/* encode(text, add_special_tokens=add_special).ids into a malloc'd array
 * (*ids may be NULL when *n is 0). Added tokens in the text always become
 * their ids; add_special only adds the post-processor's. Invalid UTF-8 is
 * an error naming the byte offset. Safe to call from several threads. */
int nb_bpe_encode(const nb_bpe *t, const char *text, size_t len, int add_special, int32_t **ids,
                  size_t *n, nb_err *e);

/* decode(ids, skip_special_tokens=skip_special) into a malloc'd
 * NUL-terminated string (*len bytes; may be NULL). Ids without a token are
 * skipped as the library does; ids outside the vocabulary are an error. */
char *nb_bpe_decode(const nb_bpe *t, const int32_t *ids, size_t n, int skip_special, size_t *len,
                    nb_err *e);

/* Incremental detokenizer: one id at a time, each step gives only text that
 * is complete valid UTF-8 and can no longer change; the concatenation of
 * every step and the final flush equals nb_bpe_decode of the same ids. A
 * character split over byte-level tokens is held until it completes; a run
 * of byte-fallback tokens is held until it ends, because the library turns
 * the whole run into U+FFFD when any of it is invalid. */
typedef struct nb_bpe_detok nb_bpe_detok;
nb_bpe_detok *nb_bpe_detok_new(const nb_bpe *t, int skip_special, nb_err *e);
void nb_bpe_detok_free(nb_bpe_detok *d);
/* The text this id completes, in a buffer owned by d that stays valid until
 * the next call (*len bytes, NUL-terminated). NULL when memory runs out;
 * ids outside the vocabulary print nothing. */
const char *nb_bpe_detok_push(nb_bpe_detok *d, int id, size_t *len);
/* The held text at the end of a stream; d then starts a new stream. */
const char *nb_bpe_detok_flush(nb_bpe_detok *d, size_t *len);
/* Before the first push of a stream that continues a text already
 * printed (a prompt): the decoders' rules for the start of a text
 * (Metaspace's first token, Strip's leading characters, the space the
 * library puts between tokens without a decoder) no longer apply, so the
 * stream gives what decoding the prompt's and the stream's ids together
 * adds after the prompt's text. Until the next flush. */
void nb_bpe_detok_continue(nb_bpe_detok *d);

#ifdef __cplusplus
}
#endif

#endif
