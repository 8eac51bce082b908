/* The fixtures test_gguf.c checks the GGUF import on (tests/gguf_fixtures.c):
 * GGUF files built in memory, tiny models of every tensor type, and the
 * modes of test_gguf that write or dump files for tests/ref/check_gguf.py
 * and the fuzz corpus. */
#ifndef NIBBLE_GGUF_FIXTURES_H
#define NIBBLE_GGUF_FIXTURES_H

#include <stddef.h>
#include <stdint.h>

#include "../tools/import/gguf.h"

/* ---- a GGUF writer ---- */

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

void put_u32(buf *b, uint32_t v);
void put_u64(buf *b, uint64_t v);

typedef struct gt {
    char name[80];
    uint32_t n_dims, type;
    uint64_t ne[5]; /* one more than allowed, for a hostile file */
    uint8_t *data;
    size_t size;
} gt;

typedef struct gw {
    buf kv;
    uint64_t n_kv;
    gt t[256];
    size_t n_t;
    uint32_t version, align;
} gw;

void gw_init(gw *w);
void gw_free(gw *w);
void gw_key(gw *w, const char *key, uint32_t type);
void gw_u32(gw *w, const char *key, uint32_t v);
void gw_f32(gw *w, const char *key, float v);
void gw_bool(gw *w, const char *key, int v);
void gw_str(gw *w, const char *key, const char *s);
void gw_strs(gw *w, const char *key, const char *const *s, size_t n);
void gw_arr(gw *w, const char *key, uint32_t type, const void *v, size_t n, size_t width);
gt *gw_tensor(gw *w, const char *name, uint32_t type, uint32_t n_dims, uint64_t ne0,
              uint64_t ne1, const void *data, uint64_t *seed);
uint8_t *gw_build(const gw *w, size_t *size);
int gw_write(const gw *w, const char *path);
void put_f16(uint8_t *p, float v);
gt *find_gt(gw *w, const char *name);

/* ---- tiny models ---- */

typedef struct spec {
    const char *arch;
    uint32_t dim, heads, kv_heads, head_dim, ffn, layers;
    uint32_t wtype, etype, otype; /* linears, token_embd, output (-1: tied) */
} spec;

#define TINY_VOCAB 264

static const uint32_t all_types[] = {NB_GGML_F32,  NB_GGML_F16,  NB_GGML_BF16, NB_GGML_Q8_0,
                                     NB_GGML_Q4_0, NB_GGML_Q4_1, NB_GGML_Q5_0, NB_GGML_Q5_1,
                                     NB_GGML_Q2_K, NB_GGML_Q3_K, NB_GGML_Q4_K, NB_GGML_Q5_K,
                                     NB_GGML_Q6_K};
#define N_TYPES (sizeof all_types / sizeof *all_types)

void hparams(gw *w, const spec *s);
void tiny_model(gw *w, const spec *s, uint64_t seed);
spec small_spec(void);
spec type_spec(uint32_t type, size_t i);
void kv_variety(gw *w);

/* ---- stories260K's pieces and rows ---- */

typedef struct spm_piece {
    char *s;
    float score;
    int type;
} spm_piece;

size_t spm_pieces(const uint8_t *p, size_t size, spm_piece *out, size_t cap);
void unpermute(float *dst, const float *src, int heads, int hd, int cols);

/* ---- modes for the Python cross-check and the fuzz corpus ---- */

int dump(const char *path);
int write_fixtures(const char *dir);
int write_seeds(const char *dir);

#endif
