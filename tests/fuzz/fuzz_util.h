/* Helpers shared by the fuzz targets (tests/fuzz/fuzz_*.c), their replay
 * driver (replay.c) and the seed writer (mkseeds.c). */
#ifndef NIBBLE_FUZZ_UTIL_H
#define NIBBLE_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* The libFuzzer entry point each target defines. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A directory of this process's own, made on first use under $TMPDIR,
 * else /dev/shm, else /tmp, and removed with its files at exit. */
const char *fz_dir(void);

/* dir/name into buf (cap bytes). */
void fz_path(char *buf, size_t cap, const char *name);

/* Writes size bytes to path: 0, or -1 with a message on stderr. */
int fz_write(const char *path, const void *data, size_t size);

/* The real SentencePiece model of tests/data (tok512.model): the
 * environment's NB_FUZZ_TOKENIZER, else the path compiled in. */
const char *fz_tokenizer_path(void);

/* A whole file in a malloc'd buffer (NULL if it cannot be read). */
void *fz_read(const char *path, size_t *size);

/* A safetensors image in memory: the header JSON of the tensors in
 * order, then their bytes. Returns a malloc'd buffer (NULL when out of
 * memory) of *size bytes. */
typedef struct fz_st_tensor {
    const char *name, *dtype; /* "F16", "I32", ... */
    int n_dims;               /* 1 or 2 */
    uint64_t shape[2];
    const void *data; /* NULL: zeros */
    size_t size;
} fz_st_tensor;
uint8_t *fz_st_image(const fz_st_tensor *t, int n, size_t *size);

/* The property of every importer: what it converts, the runtime loads.
 * Opens the model at path and binds it (nb_net_init); on failure says
 * which importer wrote it and why, and aborts. Removes the file. */
void fz_check_loads(const char *path, const char *importer);

/* The quantized-checkpoint importers' targets (autoawq, ct): a folder
 * made of the input, a little-endian u32 n, n bytes of config.json and the
 * rest as model.safetensors, converted by import (nb_import_autoawq,
 * nb_import_ct) with tok512.model, the output dtype picked by the length;
 * what converts must load (fz_check_loads, naming `what`). */
struct nb_convert_opts;
struct nb_err;
typedef int (*fz_importer)(const char *in, const char *out, const struct nb_convert_opts *o,
                           struct nb_err *e);
void fz_import_folder(const uint8_t *data, size_t size, fz_importer import, const char *what);

/* A tiny Hugging Face Llama (dim 8, one layer, 2 heads, 1 kv head, ffn
 * 16, vocab 512 (tok512's), tied embeddings; F32, F16 and BF16 tensors): the
 * model.safetensors image, and the config.json that matches it. */
uint8_t *fz_tiny_hf(size_t *size);
#define FZ_TINY_CONFIG                                                                       \
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\",\n"             \
    " \"hidden_size\": 8, \"intermediate_size\": 16, \"num_hidden_layers\": 1,\n"           \
    " \"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"vocab_size\": 512,\n"       \
    " \"max_position_embeddings\": 32, \"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0,\n" \
    " \"tie_word_embeddings\": true, \"bos_token_id\": 1, \"eos_token_id\": 2,\n"           \
    " \"torch_dtype\": \"float32\", \"_name_or_path\": \"fuzz/tiny-llama\"}\n"

/* Reads a little-endian u32 at p. */
uint32_t fz_u32(const uint8_t *p);

#endif
