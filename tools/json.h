/* A small strict JSON parser (RFC 8259) for the files the importers read:
 * config.json, tokenizer_config.json, safetensors headers and indexes.
 *
 * The input is parsed into a flat array of values in document order, with
 * strings decoded to UTF-8 once; nothing recurses, so hostile nesting costs
 * only the depth limit. Policies that RFC 8259 leaves to the parser:
 *   - duplicate keys in one object are an error (two readers could pick
 *     different values; a safetensors header must name each tensor once);
 *   - a leading UTF-8 byte-order mark is skipped, as the RFC allows;
 *   - strings must be valid UTF-8; \u escapes must pair surrogates;
 *   - numbers that overflow a double are an error, as are literals longer
 *     than NB_JSON_MAX_NUMBER bytes;
 *   - input, depth and value count are capped (below), so memory stays
 *     within a small multiple of the input size.
 * Errors are one line: what went wrong and the byte offset. */
#ifndef NIBBLE_JSON_H
#define NIBBLE_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "../runtime/err.h"

#define NB_JSON_MAX_BYTES (128u << 20) /* safetensors caps headers at 100 MB */
#define NB_JSON_MAX_DEPTH 64
#define NB_JSON_MAX_VALUES (4u << 20)
#define NB_JSON_MAX_NUMBER 256

enum nb_json_type {
    NB_JSON_NULL,
    NB_JSON_BOOL,
    NB_JSON_NUMBER,
    NB_JSON_STRING,
    NB_JSON_ARRAY,
    NB_JSON_OBJECT,
};

typedef struct nb_json nb_json;         /* a parsed document */
typedef struct nb_json_val nb_json_val; /* one value inside it */

/* Parses len bytes of text (no NUL needed). NULL with a message on error. */
nb_json *nb_json_parse(const char *text, size_t len, nb_err *e);

/* Reads and parses a file of at most max_bytes; messages name the path. */
nb_json *nb_json_parse_file(const char *path, size_t max_bytes, nb_err *e);

void nb_json_free(nb_json *doc);

const nb_json_val *nb_json_root(const nb_json *doc);

/* Every accessor accepts NULL (and then answers NULL, 0 or -1), so lookups
 * chain: nb_json_get(nb_json_get(root, "a"), "b"). */
int nb_json_type(const nb_json_val *v); /* -1 for NULL */
const char *nb_json_type_name(int type);

/* Object member by key (exact bytes); NULL if v is not an object or lacks
 * the key. Keys containing \u0000 never match. */
const nb_json_val *nb_json_get(const nb_json_val *v, const char *key);

/* Members of an object or elements of an array; 0 for other types. */
size_t nb_json_count(const nb_json_val *v);

/* Iteration: nb_json_first gives an array's first element or an object's
 * first key; nb_json_next the following element or key, NULL after the
 * last. nb_json_value gives the value that belongs to an object key. */
const nb_json_val *nb_json_first(const nb_json_val *v);
const nb_json_val *nb_json_next(const nb_json_val *v);
const nb_json_val *nb_json_value(const nb_json_val *key);

/* Scalars: 0 on success, -1 (out untouched) when v has another type. */
int nb_json_number(const nb_json_val *v, double *out);
/* Integral numbers only ("4096", "4096.0", "4e3"), within int64 range. */
int nb_json_int(const nb_json_val *v, int64_t *out);
int nb_json_bool(const nb_json_val *v, int *out);

/* The decoded UTF-8 bytes, NUL-terminated; len (if not NULL) counts them
 * and may exceed strlen when the string holds \u0000. NULL if not a string. */
const char *nb_json_string(const nb_json_val *v, size_t *len);

#endif
