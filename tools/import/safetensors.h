/* Reading safetensors files, single or sharded, mapped read-only.
 *
 * A file is: u64 little-endian n, n bytes of JSON mapping each tensor name
 * to {dtype, shape, data_offsets: [begin, end]} (plus an optional
 * "__metadata__" object of strings), then the data; offsets count from the
 * end of the header. Everything is validated at open: the header length,
 * the JSON, every dtype, shape products without overflow, and that each
 * tensor's bytes match its shape and lie inside the file. Overlapping
 * tensors are allowed (the format does not forbid aliasing).
 * A sharded model is a folder whose model.safetensors.index.json holds
 * "weight_map": {tensor: shard file}; each shard is mapped once. */
#ifndef NIBBLE_SAFETENSORS_H
#define NIBBLE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../../runtime/base/err.h"

#define NB_ST_MAX_DIMS 8
#define NB_ST_MAX_HEADER 100000000u /* the reference implementation's cap */

enum nb_st_dtype {
    NB_ST_F32,
    NB_ST_F16,
    NB_ST_BF16,
    /* known, but not float weights the importers can take */
    NB_ST_F64,
    NB_ST_I64,
    NB_ST_I32,
    NB_ST_I16,
    NB_ST_I8,
    NB_ST_U8,
    NB_ST_BOOL,
};

typedef struct nb_st_tensor {
    const char *name;
    int dtype; /* enum nb_st_dtype */
    int n_dims;
    uint64_t shape[NB_ST_MAX_DIMS];
    uint64_t n_elems;
    const void *data; /* inside the mapping; may be unaligned */
    size_t size;      /* bytes */
    const char *file; /* the file it lives in, for messages */
} nb_st_tensor;

typedef struct nb_st nb_st;

/* A model folder: model.safetensors if present (as transformers prefers),
 * else the shards listed by model.safetensors.index.json. */
nb_st *nb_st_open_dir(const char *dir, nb_err *e);

/* One safetensors file. */
nb_st *nb_st_open_file(const char *path, nb_err *e);

/* A file image already in memory (fuzzing, tests); it must outlive the
 * result. label names it in messages. */
nb_st *nb_st_open_mem(const void *base, size_t size, const char *label, nb_err *e);

void nb_st_close(nb_st *st);

/* Tensors sorted by name. */
size_t nb_st_count(const nb_st *st);
const nb_st_tensor *nb_st_at(const nb_st *st, size_t i);
const nb_st_tensor *nb_st_find(const nb_st *st, const char *name); /* NULL if absent */

const char *nb_st_dtype_name(int dtype); /* as in the file: "BF16" */
size_t nb_st_dtype_size(int dtype);

/* ---- writing (nibble export) ---- */

/* One tensor of a file being written: the data of all of them follow the
 * header back to back, in the order given. */
typedef struct nb_st_spec {
    char name[128];
    int dtype; /* enum nb_st_dtype */
    int n_dims;
    uint64_t shape[2];
} nb_st_spec;

/* Bytes a spec's data takes. */
uint64_t nb_st_spec_size(const nb_st_spec *t);

/* Writes the header of a file holding t[0..n): the u64 length, the JSON
 * (with "__metadata__": {"format": "pt"}, which transformers requires)
 * padded with spaces to 8 bytes as the reference writer does. The caller
 * then writes each tensor's nb_st_spec_size bytes in order. path names
 * the file in messages. */
int nb_st_write_header(FILE *f, const nb_st_spec *t, size_t n, const char *path, nb_err *e);

#endif
