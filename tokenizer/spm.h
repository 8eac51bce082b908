/* SentencePiece through libsentencepiece (sp_shim.cpp, C++17): the
 * SentencePiece side of the tokenizer API. Callers use tokenizer.h, whose
 * nb_tok_* functions mean the same as these for a SentencePiece model;
 * the comments there hold. The text to encode has been checked to be
 * valid UTF-8 already (tokenizer.c does it for both kinds). */
#ifndef NIBBLE_SPM_H
#define NIBBLE_SPM_H

#include <stddef.h>
#include <stdint.h>

#include "../runtime/base/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nb_spm nb_spm;

nb_spm *nb_spm_load_bytes(const void *data, size_t size, nb_err *e);
void nb_spm_free(nb_spm *t);

int nb_spm_vocab_size(const nb_spm *t);
int nb_spm_bos(const nb_spm *t);
int nb_spm_eos(const nb_spm *t);
int nb_spm_unk(const nb_spm *t);
int nb_spm_pad(const nb_spm *t);

int nb_spm_encode(const nb_spm *t, const char *text, size_t len, int bos, int32_t **ids,
                  size_t *n, nb_err *e);
char *nb_spm_decode_n(const nb_spm *t, const int32_t *ids, size_t n, size_t *len, nb_err *e);

const char *nb_spm_piece(const nb_spm *t, int id);
int nb_spm_piece_to_id(const nb_spm *t, const char *piece);
int nb_spm_is_control(const nb_spm *t, int id);
int nb_spm_is_byte(const nb_spm *t, int id);
int nb_spm_byte(const nb_spm *t, int id);
const char *nb_spm_unk_surface(const nb_spm *t);
int nb_spm_lead_space(const nb_spm *t);
size_t nb_spm_max_piece_bytes(const nb_spm *t);

#ifdef __cplusplus
}
#endif

#endif
