/* Typed key/value metadata, the part of a model file that varies between
 * architectures (GGUF's idea): "general.architecture" = "qwen2",
 * "rope.scaling.type" = "llama3", ... The fixed block (struct nb_meta)
 * holds what every model has; a key absent means the architecture's
 * default. docs/format.md lists the keys.
 *
 * Bytes: u32 count, then per entry
 *   u16 key length, u8 type, key bytes (no NUL), value
 * where a value is a u32, i32 or f32 (4 bytes), a string (u32 length,
 * bytes, no NUL), or an array of i32 (u32 count, 4 bytes each). All
 * little-endian and unaligned: readers copy, never cast. */
#ifndef NIBBLE_KV_H
#define NIBBLE_KV_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

enum nb_kv_type { NB_KV_U32 = 0, NB_KV_I32 = 1, NB_KV_F32 = 2, NB_KV_STR = 3, NB_KV_I32S = 4 };

#define NB_KV_MAX_KEY 64
#define NB_KV_MAX_ENTRIES 256

/* ---- building (writers) ---- */

typedef struct nb_kvw {
    uint8_t *buf;
    size_t len, cap;
    uint32_t n;
    int failed; /* out of memory, or a key too long: reported by nb_kvw_bytes */
} nb_kvw;

void nb_kvw_u32(nb_kvw *w, const char *key, uint32_t v);
void nb_kvw_i32(nb_kvw *w, const char *key, int32_t v);
void nb_kvw_f32(nb_kvw *w, const char *key, float v);
void nb_kvw_str(nb_kvw *w, const char *key, const char *s);
void nb_kvw_i32s(nb_kvw *w, const char *key, const int32_t *v, uint32_t n);

/* The finished bytes (count first), valid until nb_kvw_free; NULL with a
 * message when adding failed. */
const void *nb_kvw_bytes(nb_kvw *w, size_t *n, nb_err *e);
void nb_kvw_free(nb_kvw *w);

/* ---- reading ---- */

typedef struct nb_kv_val {
    uint32_t type;
    uint32_t u32; /* NB_KV_U32 */
    int32_t i32;  /* NB_KV_I32 */
    float f32;    /* NB_KV_F32 */
    const char *str; /* NB_KV_STR: not terminated, len bytes; NB_KV_I32S: the raw array */
    uint32_t len;    /* string bytes or array count */
} nb_kv_val;

/* Checks the bytes: every entry inside them, a known type, keys of
 * [a-z0-9._] unique, strings valid UTF-8 without NUL, floats finite. */
int nb_kv_check(const void *p, size_t n, nb_err *e);

/* 1 and *v when key is present with that type, 0 when absent, -1 with a
 * message naming the key when present with another type. p must have
 * passed nb_kv_check. */
int nb_kv_get(const void *p, size_t n, const char *key, uint32_t type, nb_kv_val *v, nb_err *e);

/* Element i of an NB_KV_I32S value. */
int32_t nb_kv_i32_at(const nb_kv_val *v, uint32_t i);

/* Entry i (i < count) for listings: its key (not terminated) and value. */
uint32_t nb_kv_count(const void *p, size_t n);
int nb_kv_at(const void *p, size_t n, uint32_t i, const char **key, size_t *key_len,
             nb_kv_val *v);

#endif
