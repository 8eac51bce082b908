/* Between the two halves of the tokenizer.json reader: bpe_json.c (the
 * model: vocabulary, merges, added tokens; the blob) and bpe_json_pipe.c
 * (normalizers, pre-tokenizers, decoders, post-processor). */
#ifndef NIBBLE_BPE_JSON_H
#define NIBBLE_BPE_JSON_H

#include "bpe_int.h"

#include <jansson.h>

typedef struct bpe_builder {
    bpe_buf strs;
    bpe_tok *toks;
    uint32_t n_ids;
    uint32_t *slots; /* model vocabulary: id + 1, open addressing */
    uint32_t mask;
    bpe_buf merges; /* 3 words per merge */
    bpe_buf added;  /* ids of the added tokens, one word each */
    uint32_t n_merges;
    bpe_buf ops[4]; /* 8 words per op, one buffer per stage */
    uint32_t mflags, unk;
    nb_err *e;
} bpe_builder;

/* Appends an op to its stage; strings go to the pool. */
int bpe_b_op(bpe_builder *b, uint32_t kind, uint32_t a, uint32_t bb, uint32_t c, const char *s1,
             size_t n1, const char *s2, size_t n2);
/* The id of a model token or an added token by its text, -1 if none. */
int32_t bpe_b_lookup(const bpe_builder *b, const char *s, size_t n, int added);

int bpe_json_pipeline(bpe_builder *b, json_t *root);

/* Small JSON helpers: -1 with a message naming `what` when the value is
 * there but of the wrong type. */
int bpe_j_bool(json_t *obj, const char *key, int dflt, int *out, nb_err *e);
int bpe_j_str(json_t *obj, const char *key, const char **s, size_t *n, nb_err *e);
const char *bpe_j_type(json_t *obj);

#endif
