/* Importers: each reads one foreign model format and streams it into a
 * nibble file through the atomic writer (runtime/writer.h). */
#ifndef NIBBLE_CONVERT_H
#define NIBBLE_CONVERT_H

#include <stdint.h>

#include "../../models/arch.h"
#include "../../runtime/base/err.h"
#include "../../runtime/kv.h"
#include "../../runtime/writer.h"
#include "safetensors.h"

typedef struct nb_convert_opts {
    int out_dtype;              /* enum nb_dtype, or -1 to keep the source's */
    const char *tokenizer_path; /* .model or tokenizer.json; NULL = importer's default */
    const char *name;           /* model name for the metadata; NULL = derived */
    int quiet;                  /* no progress on stderr */
} nb_convert_opts;

/* llama2.c legacy (v0) checkpoint + a SentencePiece model. */
int nb_import_llama2c(const char *ckpt, const char *out, const nb_convert_opts *o, nb_err *e);

/* Hugging Face folder of a family models/arch.h knows (Llama, Mistral,
 * Qwen2, Qwen3): config.json, model.safetensors or shards listed in
 * model.safetensors.index.json, tokenizer.model or tokenizer.json. */
int nb_import_hf(const char *dir, const char *out, const nb_convert_opts *o, nb_err *e);

/* AutoAWQ checkpoint (a Hugging Face folder whose 4-bit linears are
 * qweight/qzeros/scales, versions gemm and gemv): the codes, scales and
 * zero points are repacked into NB_Q4 exactly, never re-quantized. */
int nb_import_autoawq(const char *dir, const char *out, const nb_convert_opts *o, nb_err *e);

/* compressed-tensors checkpoint (llm-compressor; quant_method
 * compressed-tensors, format pack-quantized, 4-bit int weights per group
 * or per row, symmetric or with zero points): repacked into NB_Q4
 * exactly, never re-quantized (tools/import_ct.c, docs/compressed-tensors.md). */
int nb_import_ct(const char *dir, const char *out, const nb_convert_opts *o, nb_err *e);

/* 1 when a folder's config.json has quantization_config.quant_method
 * "compressed-tensors": a checkpoint for nb_import_ct. */
int nb_hf_is_ct(const char *dir);

/* A GGUF file (llama.cpp) of a llama, qwen2 or qwen3 model, with its
 * tokenizer and chat template (tools/import_gguf.c, docs/gguf.md). */
int nb_import_gguf(const char *path, const char *out, const nb_convert_opts *o, nb_err *e);

/* 1 when a folder's config.json has a quantization_config, or it has an
 * older quant_config.json: a quantized checkpoint, for nb_import_autoawq. */
int nb_hf_is_quantized(const char *dir);

/* ---- reading a Hugging Face folder, shared by both importers ---- */

/* dir/name, malloc'd (NULL when out of memory). */
char *nb_hf_path(const char *dir, const char *name);

struct nb_hf_config {
    int64_t dim, ffn, n_layers, n_heads, n_kv_heads, head_dim, vocab, max_ctx;
    int64_t bos, eos, pad, window;
    double eps, theta;
    int tied, mistral;
    const nb_arch *arch; /* from model_type (mistral: llama) */
    nb_rope rope;        /* rope_scaling, checked */
    char origin[96]; /* config.json's _name_or_path, last part (template guess) */
};

/* One tensor to write: its source name, its nibble name and the shape
 * config.json implies ([out, in] for linears, [dim] for norms). */
typedef struct nb_hf_item {
    char src[96];
    char dst[NB_NAME_LEN];
    int n_dims;
    int is_norm;   /* a vector (norm weight, bias): always written as f32 */
    int is_linear; /* a matrix a quantized checkpoint may store packed */
    uint64_t shape[2];
    char dims[48];  /* where the shape comes from ("4 heads x head_dim 32"), or empty */
    char block[64]; /* an optional block: why it must be there, or empty */
    const nb_st_tensor *t; /* the plain source tensor, once checked */
    uint64_t bytes;        /* source bytes, for the progress meter */
} nb_hf_item;

typedef struct nb_hf {
    struct nb_hf_config c;
    struct nb_meta meta;
    nb_st *st;
    nb_hf_item *items;
    size_t n_items;
    unsigned char *used; /* per safetensors tensor: claimed by an item */
    void *vocab;
    size_t vocab_size;
    nb_kvw kv;           /* key/value metadata: architecture, RoPE scaling, chat template */
    const void *kv_bytes;
    size_t kv_size;
} nb_hf;

/* The tokenizer file of a folder (tools/hf_tokenizer.c): tokenizer.model
 * when it is a SentencePiece model with as many ids as tokenizer.json,
 * else tokenizer.json; malloc'd. */
char *nb_hf_tokenizer_path(const char *dir, nb_err *e);

/* Reads the tokenizer (given, or the folder's) into h->vocab, with the
 * metadata's tokenizer kind, BOS for BPE (what its post-processor adds)
 * and end ids (nb_hf_end_ids); checks its size against config.json's. */
int nb_hf_tokenizer(nb_hf *h, const char *dir, const char *given, int quiet, nb_err *e);

/* The end-of-text ids of m (and eos_id when config.json gives none) from
 * the folder's config.json and generation_config.json (eos_token_id, a
 * number or a list) and tokenizer_config.json (eos_token, looked up in
 * tok). Ids must be tokens of tok inside the vocabulary. */
struct nb_tokenizer;
int nb_hf_end_ids(const char *dir, const struct nb_tokenizer *tok, struct nb_meta *m, int quiet,
                  nb_err *e);

/* "nibble: note: ..." on stderr, unless quiet: what an importer did that
 * the user should know (a dequantized type, a dropped tensor). */
void nb_notice(int quiet, const char *fmt, ...) NB_PRINTF(2, 3);

/* Reads and checks dir/config.json (tools/hf_config.c). */
int nb_hf_read_config(const char *dir, struct nb_hf_config *c, nb_err *e);

/* Reads config.json, the tokenizer and the safetensors, fills the
 * metadata (chat template included) and plans the items. */
int nb_hf_open(nb_hf *h, const char *dir, const nb_convert_opts *o, nb_err *e);
void nb_hf_close(nb_hf *h);

/* The tensor of that name (NULL if absent), marked as used. */
const nb_st_tensor *nb_hf_take(nb_hf *h, const char *name);

/* Checks that t is a float tensor of the item's shape and binds it. */
int nb_hf_check_plain(nb_hf_item *it, const nb_st_tensor *t, nb_err *e);

/* Refuses tensors no item took (biases the family does not have, unknown
 * names). */
int nb_hf_check_unused(const nb_hf *h, nb_err *e);

/* Every item found in the checkpoint: linears through bind(ctx, item, its
 * index) when a quantized format gives one (it takes its own tensors),
 * the rest as plain tensors; then nb_hf_check_unused. */
typedef int (*nb_hf_bind)(void *ctx, nb_hf_item *it, size_t i, nb_err *e);
int nb_hf_resolve(nb_hf *h, nb_hf_bind bind, void *ctx, nb_err *e);

/* Writes a plain item (norms always as f32, others as out_dtype, -1 = as
 * the source). */
int nb_hf_write_plain(nb_writer *w, const nb_hf_item *it, int out_dtype, nb_err *e);

/* A linear a checkpoint stores as 4-bit codes (AutoAWQ, compressed-tensors):
 * unpack(ctx, ...) fills its codes [rows][cols], fp32 scales and zero points
 * [rows][n_groups] (checking what it reads), then they are packed in
 * nibble's layout, groups of `group` columns, and written as it->dst. */
typedef int (*nb_hf_unpack)(const void *ctx, size_t rows, size_t cols, size_t n_groups,
                            uint8_t *codes, float *scales, uint8_t *zeros, nb_err *e);
int nb_hf_write_int4(nb_writer *w, const nb_hf_item *it, long long group, nb_hf_unpack unpack,
                     const void *ctx, nb_err *e);

/* Writes the whole file atomically, calling put for each item in order. */
typedef int (*nb_hf_put)(void *ctx, nb_writer *w, const nb_hf_item *it, nb_err *e);
int nb_hf_write(const nb_hf *h, const char *out, int quiet, nb_hf_put put, void *ctx,
                nb_err *e);

/* Streams one tensor into w, converting src_dtype to out_dtype (-1 keeps
 * it) in bounded chunks, so no whole-model buffer is ever needed. */
int nb_convert_tensor(nb_writer *w, const char *name, uint32_t src_dtype, const void *src,
                      int n_dims, const uint64_t *shape, int out_dtype, nb_err *e);

/* Reads a whole small file (tokenizer, config) into a malloc'd buffer
 * with a NUL appended; max_size guards against a hostile size. */
void *nb_read_file(const char *path, size_t max_size, size_t *size, nb_err *e);

/* ---- JSON (jansson), for config.json and the other small files ---- */

/* Parses the JSON text of a file of at most max_bytes (a leading UTF-8
 * byte-order mark skipped): duplicate keys in an object and NUL in a
 * string are refused, as are invalid UTF-8 and numbers past a double.
 * Integers are exact within int64; a text with a larger one has all its
 * numbers read as doubles. NULL with "PATH: line L column C: what" on error (or the
 * nb_read_file message). json_decref the result. */
struct json_t; /* jansson's */
struct json_t *nb_json_file(const char *path, size_t max_bytes, nb_err *e);

/* The same over len bytes in memory; messages start with "line". */
struct json_t *nb_json_mem(const char *text, size_t len, nb_err *e);

/* An integral number: a JSON integer, or a real with an integral value
 * within int64 ("4096.0", "4e3"). 0, or -1 (out untouched) otherwise. */
int nb_json_i64(const struct json_t *v, int64_t *out);

/* "null", "true or false", "number", "string", "array", "object", for
 * messages (NULL: "nothing"). */
const char *nb_json_kind(const struct json_t *v);

/* The tokenizer bytes a model file carries, from a SentencePiece .model
 * (as it is) or a tokenizer.json (parsed into a BPE blob): malloc'd, with
 * *size, and the tokenizer loaded from them in *tok (the caller frees
 * both), so that nothing is written that would not load. Messages name
 * the path. */
struct nb_tokenizer;
void *nb_tokenizer_file(const char *path, size_t *size, struct nb_tokenizer **tok, nb_err *e);

/* Loads the tokenizer at path (nb_tokenizer_file) and fills the
 * tokenizer kind and special ids of meta, checking the vocabulary size
 * against the model's. Returns the bytes. */
void *nb_load_vocab(const char *path, struct nb_meta *meta, size_t *size, nb_err *e);

#endif
