/* Reading a nibble file: map it read-only, validate every offset, size
 * and shape against the file, then hand out pointers into the mapping.
 * Tensors are used in place; nothing is copied at load. */
#ifndef NIBBLE_MODEL_H
#define NIBBLE_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "nibformat.h"

typedef struct nb_tensor {
    const struct nb_tensor_entry *entry; /* inside the mapping */
    const void *data;                    /* inside the mapping */
} nb_tensor;

typedef struct nb_model {
    const uint8_t *base; /* the whole file, mapped */
    size_t size;
    const struct nb_header *header;
    struct nb_meta meta;
    const struct nb_tensor_entry *table;
    uint32_t n_tensors;
    const void *vocab; /* tokenizer bytes (meta.tokenizer_kind) */
    size_t vocab_size;
    const void *kv; /* key/value metadata (runtime/kv.h), checked; NULL if none */
    size_t kv_size;
} nb_model;

/* The architecture's name ("llama", "qwen2", "qwen3"), NULL if unknown. */
const char *nb_arch_name(uint32_t arch);

/* Maps and validates a file. On failure m is left closed. */
int nb_model_open(nb_model *m, const char *path, nb_err *e);

/* Validates a file image already in memory (the fuzz and test entry). */
int nb_model_parse(nb_model *m, const void *base, size_t size, nb_err *e);

void nb_model_close(nb_model *m);

/* NULL when the model has no such tensor. */
const nb_tensor *nb_model_find(const nb_model *m, const char *name, nb_tensor *out);

/* "[64]" or "[64, 128]" into buf (cap bytes, always terminated): the
 * rank shows, so a 1-D tensor where a 2-D one belongs reads as what it
 * is. Returns buf. */
const char *nb_shape_text(char *buf, size_t cap, int n_dims, const uint64_t *shape);

/* Looks a tensor up and checks its shape (n_dims values) and dtype class:
 * the message names the tensor and what was expected. */
int nb_model_expect(const nb_model *m, const char *name, int n_dims, const uint64_t *shape,
                    nb_tensor *out, nb_err *e);

/* The loader's checks of the metadata (dimensions, attention shape, norm
 * eps, RoPE, special ids, terminated strings): writers run them too, so
 * that no file is written that would not load. */
int nb_meta_check(const struct nb_meta *m, nb_err *e);

/* Key/value metadata bytes (n 0: none) are well formed and agree with
 * the fixed block (the architecture's name). Readers and writers both
 * check. */
int nb_meta_kv_check(const struct nb_meta *m, const void *kv, size_t n, nb_err *e);

/* The tokenizer bytes are of the kind the metadata says (by their magic;
 * parsing them is the tokenizer's job). Readers and writers both check. */
int nb_tokenizer_bytes_check(const struct nb_meta *m, const void *bytes, size_t n, nb_err *e);

/* Recomputes every tensor's CRC-32 and checks its values
 * (nb_tensor_values_check); the message names the first bad tensor. */
int nb_model_verify(const nb_model *m, nb_err *e);

/* Checks bytes [off, off + n) of tensor t's data, held at data: every
 * float (plain tensors; packed ones' fp16 scales) is finite, and every
 * packed zero point fits its code width. Writers run it on all they
 * write, so a file holds such values only if damaged or crafted after
 * its checksums; the kernels then run through them without undefined
 * behaviour and callers find non-finite logits (nb_logits_check). off
 * and n must fall on whole values (streamed chunks do). */
int nb_tensor_values_check(const struct nb_tensor_entry *t, const void *data, uint64_t off,
                           size_t n, nb_err *e);

uint32_t nb_crc32(uint32_t crc, const void *data, size_t n);

#endif
