/* Reading GGUF files (llama.cpp's model format, versions 2 and 3), mapped
 * read-only. docs/gguf.md says what nibble imports from them and how.
 *
 * A file is (all little-endian, nothing aligned before the data):
 *   "GGUF", u32 version, u64 tensor count, u64 key/value count;
 *   per key/value: string key, u32 value type, value;
 *   per tensor: string name, u32 n_dims, u64 ne[n_dims], u32 ggml type,
 *     u64 offset (from the start of the data, a multiple of the alignment);
 *   padding to the alignment (general.alignment, a u32 power of two,
 *   default 32), then the tensor data.
 * A string is a u64 length and that many bytes (no NUL); a value is one of
 * the scalar types, a string, or an array: u32 element type, u64 count,
 * the elements. ne[0] is the length of a row (the innermost dimension):
 * a linear's [out, in] is ne = {in, out}.
 *
 * Everything is checked at open, before anything is read through it: the
 * magic and version, that every count, length and value lies inside the
 * file (a hostile count cannot make the reader allocate or loop beyond
 * what the file's size allows), known value and tensor types, unique keys
 * and tensor names, at most 4 dimensions, shapes without overflow, rows a
 * whole number of blocks, and every tensor's data inside the file. Each
 * failure is one line. */
#ifndef NIBBLE_GGUF_H
#define NIBBLE_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "../../runtime/base/err.h"

#define NB_GGUF_MAX_DIMS 4
#define NB_GGUF_NAME_LEN 64 /* ggml's GGML_MAX_NAME, NUL included */
#define NB_GGUF_DEFAULT_ALIGNMENT 32

/* Metadata value types. */
enum nb_gguf_vtype {
    NB_GGUF_U8 = 0,
    NB_GGUF_I8 = 1,
    NB_GGUF_U16 = 2,
    NB_GGUF_I16 = 3,
    NB_GGUF_U32 = 4,
    NB_GGUF_I32 = 5,
    NB_GGUF_F32 = 6,
    NB_GGUF_BOOL = 7,
    NB_GGUF_STR = 8,
    NB_GGUF_ARR = 9,
    NB_GGUF_U64 = 10,
    NB_GGUF_I64 = 11,
    NB_GGUF_F64 = 12,
};

/* Tensor types (ggml_type): the ones nibble imports, by name. The reader
 * knows the block sizes of every type ggml defines, so it checks the data
 * of any tensor; nb_ggml_type_name names them in messages. */
enum nb_ggml_type {
    NB_GGML_F32 = 0,
    NB_GGML_F16 = 1,
    NB_GGML_Q4_0 = 2,
    NB_GGML_Q4_1 = 3,
    NB_GGML_Q5_0 = 6,
    NB_GGML_Q5_1 = 7,
    NB_GGML_Q8_0 = 8,
    NB_GGML_Q2_K = 10,
    NB_GGML_Q3_K = 11,
    NB_GGML_Q4_K = 12,
    NB_GGML_Q5_K = 13,
    NB_GGML_Q6_K = 14,
    NB_GGML_BF16 = 30,
};

typedef struct nb_gguf_kv {
    const char *key; /* inside the mapping, not terminated */
    size_t key_len;
    uint32_t type;      /* enum nb_gguf_vtype */
    uint32_t elem_type; /* NB_GGUF_ARR: the elements' type */
    uint64_t n;         /* NB_GGUF_STR: bytes; NB_GGUF_ARR: elements */
    const uint8_t *val; /* the value (a string's bytes; an array's first element) */
} nb_gguf_kv;

typedef struct nb_gguf_tensor {
    char name[NB_GGUF_NAME_LEN]; /* NUL-terminated */
    uint32_t n_dims;
    uint32_t type;                  /* enum nb_ggml_type */
    uint64_t ne[NB_GGUF_MAX_DIMS];  /* ne[0] innermost; unused ones 1 */
    uint64_t n_elems, size;         /* size: bytes */
    uint64_t offset;                /* from the start of the file */
    const uint8_t *data;            /* inside the mapping */
} nb_gguf_tensor;

typedef struct nb_gguf {
    const uint8_t *base;
    size_t size;
    int mapped; /* base came from mmap */
    uint32_t version, alignment;
    uint64_t data_offset;
    nb_gguf_kv *kv;
    size_t n_kv;
    nb_gguf_tensor *tensors;
    size_t n_tensors;
} nb_gguf;

/* 1 when the file starts with the magic "GGUF" (nothing else is read). */
int nb_gguf_is(const char *path);

/* Maps and checks a file; messages name nothing (the caller adds the
 * path). nb_gguf_close undoes it, also after a failure. */
int nb_gguf_open(nb_gguf *g, const char *path, nb_err *e);
/* The same over bytes in memory, which must outlive g (fuzzing, tests). */
int nb_gguf_open_mem(nb_gguf *g, const void *data, size_t size, nb_err *e);
void nb_gguf_close(nb_gguf *g);

const nb_gguf_kv *nb_gguf_find(const nb_gguf *g, const char *key);
const nb_gguf_tensor *nb_gguf_tensor_find(const nb_gguf *g, const char *name);

/* Typed reads of a key: 1 and *v when present and of a fitting type, 0
 * when absent, -1 with a message naming the key otherwise. An integer
 * reads any integer type whose value fits; a float F32 or F64; a string
 * (not terminated, *n bytes); a bool. */
int nb_gguf_get_uint(const nb_gguf *g, const char *key, uint64_t max, uint64_t *v, nb_err *e);
int nb_gguf_get_float(const nb_gguf *g, const char *key, double *v, nb_err *e);
int nb_gguf_get_str(const nb_gguf *g, const char *key, const char **s, size_t *n, nb_err *e);
int nb_gguf_get_bool(const nb_gguf *g, const char *key, int *v, nb_err *e);

/* An array's elements. Integers and floats: element i of a numeric array
 * (any integer type; F32 or F64), random access. Strings: an iterator,
 * valid because open checked every element. */
int64_t nb_gguf_arr_int(const nb_gguf_kv *kv, uint64_t i);
double nb_gguf_arr_float(const nb_gguf_kv *kv, uint64_t i);
int nb_gguf_vtype_is_int(uint32_t t);

typedef struct nb_gguf_iter {
    const uint8_t *p;
    uint64_t left; /* elements */
} nb_gguf_iter;
void nb_gguf_iter_init(nb_gguf_iter *it, const nb_gguf_kv *kv);
/* The next string: 1, or 0 past the last. */
int nb_gguf_iter_str(nb_gguf_iter *it, const char **s, size_t *n);

/* "Q4_K" ("type 99" for an unknown one, in a static buffer). */
const char *nb_ggml_type_name(uint32_t type);
/* Elements per block and bytes per block: 0, or -1 when unknown. */
int nb_ggml_type_block(uint32_t type, uint32_t *block, uint32_t *bytes);
const char *nb_gguf_vtype_name(uint32_t t);

/* 1 when nb_ggml_dequant reads this type. */
int nb_ggml_can_dequant(uint32_t type);
/* Dequantizes n elements (a whole number of blocks) of src into out, in
 * fp32 with the same operations as ggml's reference (and the gguf Python
 * package's numpy): bit for bit the values llama.cpp computes with. */
void nb_ggml_dequant(uint32_t type, const void *src, size_t n, float *out);

/* The tokenizer the file stores (tools/gguf_vocab.c): tokenizer.ggml.model
 * "gpt2" (byte-level BPE, as a BPE blob) or "llama" (SentencePiece, as a
 * .model). meta->vocab_size (token_embd's rows) bounds the tokens; fills
 * meta's tokenizer kind, bos (what encoding adds), unk, pad, eos and end
 * ids. The bytes (malloc'd, *size) and the tokenizer loaded from them are
 * the caller's. Messages name keys, not the file. */
struct nb_meta;
struct nb_tokenizer;
int nb_gguf_tokenizer(const nb_gguf *g, struct nb_meta *meta, int quiet, void **bytes,
                      size_t *size, struct nb_tokenizer **tok, nb_err *e);

/* A byte-level ("gpt2") GGUF vocabulary as the tokenizer.json text that
 * conversion builds its BPE blob from (malloc'd), for nibble export; NULL
 * with a message for a SentencePiece one or a broken one. */
char *nb_gguf_tokenizer_json(const nb_gguf *g, nb_err *e);

#endif
