/* The nibble model file: the one definition that readers and writers share.
 * docs/format.md describes the same layout in prose; keep them in step.
 *
 * Layout (all integers little-endian, every section 64-byte aligned):
 *   header | metadata | key/values | tokenizer bytes | tensor data ... | tensor table
 * The tokenizer bytes are a SentencePiece model or a BPE blob
 * (tokenizer/bpe_int.h), as meta.tokenizer_kind says and their magic
 * confirms.
 * The table sits at the end so converters can stream tensors without
 * holding a model in memory; the header is rewritten last. */
#ifndef NIBBLE_NIBFORMAT_H
#define NIBBLE_NIBFORMAT_H

#include <stddef.h>
#include <stdint.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "nibble files are little-endian and mapped in place"
#endif

#define NB_MAGIC "NIBBLE\r\n" /* \r\n catches text-mode transfers */
#define NB_VERSION_MAJOR 1    /* readers refuse a larger major */
#define NB_VERSION_MINOR 2    /* minor bumps only add fields, where zero meant absent */
#define NB_ALIGN 64
#define NB_MAX_DIMS 4
#define NB_NAME_LEN 64
/* Bounds no real model reaches: a hostile file or config cannot drive a
 * reader, an importer or the state it allocates into absurd sizes. The
 * loader checks them and importers check them first (no file is written
 * that would not load). */
#define NB_LIMIT_DIM (1 << 20)      /* hidden, ffn, vocabulary, n_heads * head_dim */
#define NB_LIMIT_LAYERS 4096
#define NB_LIMIT_HEADS 1024
#define NB_LIMIT_HEAD_DIM 1024
#define NB_LIMIT_CTX (1 << 22)

enum nb_dtype {
    NB_F32 = 0,
    NB_F16 = 1,
    NB_BF16 = 2,
    /* Reserved for the AWQ packed types (quantizer / NEON issues):
     * weights, then fp16 scales, then zero points, inside one tensor. */
    NB_Q4 = 16,
    NB_Q3 = 17,
};

enum nb_rope_pairs {
    NB_ROPE_INTERLEAVED = 0, /* llama2.c / Meta: (x[2i], x[2i+1]) */
    NB_ROPE_HALVES = 1,      /* Hugging Face: (x[i], x[i + d/2]) */
};

/* meta.arch; the key "general.architecture" names it (runtime/kv.h).
 * models/arch.c says what each one has. */
enum nb_arch_id { NB_ARCH_LLAMA = 1, NB_ARCH_QWEN2 = 2, NB_ARCH_QWEN3 = 3 };
#define NB_ARCH_COUNT 4 /* one past the last id */

/* meta.tokenizer_kind; the same numbers as tokenizer.h's nb_tok_kind. */
enum nb_tokenizer_kind {
    NB_TOKENIZER_SENTENCEPIECE = 0, /* a SentencePiece .model (every 1.0 file) */
    NB_TOKENIZER_BPE = 1,           /* a BPE blob from a tokenizer.json (1.1) */
};

#define NB_MAX_END_IDS 8

struct nb_header {
    char magic[8];
    uint16_t version_major;
    uint16_t version_minor;
    uint32_t header_size; /* sizeof(struct nb_header) when written */
    uint64_t file_size;
    uint64_t meta_offset, meta_size;
    uint64_t vocab_offset, vocab_size; /* tokenizer bytes */
    uint64_t data_offset, data_size;
    uint64_t table_offset;
    uint32_t n_tensors;
    uint32_t entry_size; /* sizeof(struct nb_tensor_entry) when written */
    /* 1.2: typed key/value metadata (runtime/kv.h); zero size: none. */
    uint64_t kv_offset, kv_size;
    uint8_t reserved[24];
};

struct nb_meta {
    uint32_t arch; /* enum nb_arch_id */
    uint32_t dim, n_layers, n_heads, n_kv_heads, head_dim, ffn_dim;
    uint32_t vocab_size, max_ctx;
    uint32_t rope_pairs; /* enum nb_rope_pairs */
    float rope_theta, norm_eps;
    int32_t bos_id, eos_id, unk_id, pad_id; /* -1 when absent */
    uint32_t tied_embeddings;               /* 1: no "output" tensor */
    char name[64];
    char chat_template[32]; /* "" = plain completion */
    /* 1.1: zero in 1.0 files, which meant what they say here. */
    uint32_t tokenizer_kind;            /* enum nb_tokenizer_kind */
    uint32_t n_end_ids;                 /* 0: the tokenizer's EOS ends the text */
    int32_t end_ids[NB_MAX_END_IDS];    /* generation stops at any of them */
    uint8_t reserved[52];
};

struct nb_tensor_entry {
    char name[NB_NAME_LEN]; /* NUL-terminated */
    uint32_t dtype;         /* enum nb_dtype */
    uint32_t n_dims;
    uint64_t shape[NB_MAX_DIMS]; /* outermost first: [out, in] for linears */
    uint64_t offset;             /* from file start, NB_ALIGN-aligned */
    uint64_t size;
    uint32_t crc32; /* IEEE CRC-32 of the size bytes at offset */
    uint16_t group_size; /* packed types only, else 0 */
    uint8_t bits;
    uint8_t interleave;
};

_Static_assert(sizeof(struct nb_header) == 128, "header layout");
_Static_assert(sizeof(struct nb_meta) == 256, "meta layout");
_Static_assert(sizeof(struct nb_tensor_entry) == 128, "entry layout");

/* Bytes a plain (unpacked) tensor of this dtype needs per element, 0 if
 * the dtype is packed or unknown. */
static inline size_t nb_dtype_width(uint32_t dtype)
{
    switch (dtype) {
    case NB_F32: return 4;
    case NB_F16: return 2;
    case NB_BF16: return 2;
    default: return 0;
    }
}

const char *nb_dtype_name(uint32_t dtype);

#endif
