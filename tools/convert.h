/* Importers: each reads one foreign model format and streams it into a
 * nibble file through the atomic writer (runtime/writer.h). */
#ifndef NIBBLE_CONVERT_H
#define NIBBLE_CONVERT_H

#include <stdint.h>

#include "../runtime/err.h"
#include "../runtime/writer.h"

typedef struct nb_convert_opts {
    int out_dtype;              /* enum nb_dtype, or -1 to keep the source's */
    const char *tokenizer_path; /* SentencePiece .model; NULL = importer's default */
    const char *name;           /* model name for the metadata; NULL = derived */
    int quiet;                  /* no progress on stderr */
} nb_convert_opts;

/* llama2.c legacy (v0) checkpoint + a SentencePiece model. */
int nb_import_llama2c(const char *ckpt, const char *out, const nb_convert_opts *o, nb_err *e);

/* Hugging Face Llama folder: config.json, model.safetensors or shards
 * listed in model.safetensors.index.json, tokenizer.model. */
int nb_import_hf(const char *dir, const char *out, const nb_convert_opts *o, nb_err *e);

/* Streams one tensor into w, converting src_dtype to out_dtype (-1 keeps
 * it) in bounded chunks, so no whole-model buffer is ever needed. */
int nb_convert_tensor(nb_writer *w, const char *name, uint32_t src_dtype, const void *src,
                      int n_dims, const uint64_t *shape, int out_dtype, nb_err *e);

/* Reads a whole small file (tokenizer, config) into a malloc'd buffer
 * with a NUL appended; max_size guards against a hostile size. */
void *nb_read_file(const char *path, size_t max_size, size_t *size, nb_err *e);

/* Loads the SentencePiece model at path and fills the special ids of meta,
 * checking the vocabulary size against the model's. Returns the bytes. */
void *nb_load_vocab(const char *path, struct nb_meta *meta, size_t *size, nb_err *e);

#endif
