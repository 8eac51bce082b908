/* Inside the BPE tokenizer: the blob format, the loaded form and the
 * helpers the bpe_*.c files share. Not part of the API (bpe.h).
 *
 * The blob (nb_bpe_from_json writes it, nb_bpe_load_bytes reads it) is a
 * sequence of little-endian 32-bit words, tables aligned to 4 bytes:
 *   header, 16 words:
 *     0-1   magic "NBBPE\0\0\1"
 *     2     version (1)
 *     3     n_ids: the id space (model vocabulary and added tokens)
 *     4     n_merges
 *     5     n_ops
 *     6     model flags (NB_BPE_M_*)
 *     7     unk id (when NB_BPE_M_UNK)
 *     8     offset of the token table: n_ids x {string offset, length, flags (NB_BPE_T_*)}
 *     9     offset of the merges, in rank order: n_merges x {left id, right id, merged id}
 *     10    offset of the pipeline: n_ops x {kind, a, b, c, s1 offset, s1 length,
 *           s2 offset, s2 length}, normalizers first, then pre-tokenizers,
 *           decoders, post-processor (kinds ascending by stage)
 *     11    offset of the string pool; 12 its size; 13 the blob's size; 14-15 zero
 *   String offsets are relative to the pool; a NUL follows every string
 *   (not counted in its length). The lookup tables (vocabulary
 *   and merge hashes, added-token matchers) are rebuilt at load: that takes
 *   milliseconds and leaves nothing in the blob to trust. */
#ifndef NIBBLE_BPE_INT_H
#define NIBBLE_BPE_INT_H

#include "bpe.h"

#include <oniguruma.h>
#include <stdint.h>

#define NB_BPE_MAGIC "NBBPE\0\0\1"
#define NB_BPE_VERSION 1u
#define NB_BPE_HEADER_WORDS 16u
#define NB_BPE_MAX_IDS (1u << 24)

enum { /* model flags */
       NB_BPE_M_BYTE_FALLBACK = 1,
       NB_BPE_M_IGNORE_MERGES = 2,
       NB_BPE_M_FUSE_UNK = 4,
       NB_BPE_M_UNK = 8,
};

enum {                       /* token flags */
       NB_BPE_T_PRESENT = 1, /* the id has a token */
       NB_BPE_T_MODEL = 2,   /* in the model's vocabulary: merges may produce it */
       NB_BPE_T_ADDED = 4,   /* an added token, matched in the text first */
       NB_BPE_T_SPECIAL = 8,
       NB_BPE_T_LSTRIP = 16,
       NB_BPE_T_RSTRIP = 32,
       NB_BPE_T_SINGLE_WORD = 64,
       NB_BPE_T_NORMALIZED = 128,
       NB_BPE_T_ALL = 255,
       NB_BPE_T_SKIP = 256, /* set at load: its text is a special token's (decode skips it) */
};

enum { /* pipeline kinds; the stage is kind / 16 */
       NB_BPE_NFC = 16,
       NB_BPE_NFD,
       NB_BPE_NFKC,
       NB_BPE_NFKD,
       NB_BPE_NORM_REPLACE,   /* a: 1 regex, 0 string; s1 pattern, s2 content */
       NB_BPE_NORM_PREPEND,   /* s1 */
       NB_BPE_PRE_SPLIT = 32, /* a regex, b behaviour (NB_BPE_SPLIT_*), c invert; s1 */
       NB_BPE_PRE_BYTELEVEL,  /* a add_prefix_space, b use_regex */
       NB_BPE_PRE_METASPACE,  /* s1 replacement, a prepend scheme (NB_BPE_PREPEND_*), b split */
       NB_BPE_PRE_DIGITS,     /* a individual_digits */
       NB_BPE_DEC_BYTELEVEL = 48,
       NB_BPE_DEC_METASPACE, /* s1 replacement, a prepend scheme */
       NB_BPE_DEC_BYTEFALLBACK,
       NB_BPE_DEC_FUSE,
       NB_BPE_DEC_STRIP,        /* s1 content (one character), a start, b stop */
       NB_BPE_DEC_REPLACE,      /* a regex; s1 pattern, s2 content */
       NB_BPE_DEC_NONE,         /* no decoder: the library joins tokens with spaces */
       NB_BPE_POST_PREFIX = 64, /* a: id put before the sequence */
       NB_BPE_POST_SUFFIX,      /* a: id put after it */
       NB_BPE_KIND_END,
};
#define NB_BPE_STAGE(kind) ((kind) / 16u)
enum { NB_BPE_STAGE_NORM = 1, NB_BPE_STAGE_PRE, NB_BPE_STAGE_DEC, NB_BPE_STAGE_POST };

enum {
    NB_BPE_SPLIT_REMOVED,
    NB_BPE_SPLIT_ISOLATED,
    NB_BPE_SPLIT_PREVIOUS,
    NB_BPE_SPLIT_NEXT,
    NB_BPE_SPLIT_CONTIGUOUS,
    NB_BPE_SPLIT_END
};
enum { NB_BPE_PREPEND_ALWAYS, NB_BPE_PREPEND_FIRST, NB_BPE_PREPEND_NEVER, NB_BPE_PREPEND_END };

/* A growable byte buffer. */
typedef struct bpe_buf {
    char *p;
    size_t len, cap;
} bpe_buf;

int bpe_buf_reserve(bpe_buf *b, size_t extra);
int bpe_buf_put(bpe_buf *b, const void *s, size_t n);
void bpe_buf_free(bpe_buf *b);

/* Pieces of a string: [a, b), and whether a pattern matched there. */
typedef struct bpe_seg {
    size_t a, b;
    int match;
} bpe_seg;
typedef struct bpe_segs {
    bpe_seg *v;
    size_t n, cap;
} bpe_segs;

int bpe_segs_push(bpe_segs *s, size_t a, size_t b, int match);

typedef struct bpe_op {
    uint32_t kind, a, b, c;
    const char *s1, *s2;
    size_t n1, n2;
    OnigRegex re; /* s1 compiled, when the op matches a pattern */
} bpe_op;

/* Added tokens of one pass, bucketed by first byte and longest first, so
 * the first hit at a position is the leftmost-longest match. */
typedef struct bpe_pat {
    const char *s;
    uint32_t len;
    int32_t id;
} bpe_pat;
typedef struct bpe_matcher {
    bpe_pat *pats;
    size_t n;
    uint32_t first[257];
    char *own; /* normalized contents */
} bpe_matcher;

typedef struct bpe_tok {
    uint32_t off, len, flags;
} bpe_tok;

typedef struct bpe_merge_slot {
    uint64_t key; /* (left << 32 | right) + 1; 0 when empty */
    uint32_t rank;
    int32_t id;
} bpe_merge_slot;

struct nb_bpe {
    uint8_t *blob;
    size_t size;
    uint32_t n_ids, n_merges, n_ops, mflags;
    int32_t unk_id;
    const char *strs;
    bpe_tok *toks;
    uint64_t *vocab_slots; /* id + 1 of model tokens | hash >> 32 << 32; 0 when empty */
    uint32_t vocab_mask;
    bpe_merge_slot *merge_slots;
    uint32_t merge_mask;
    int32_t byte_ids[256]; /* <0xAB> of byte fallback, -1 when absent */
    bpe_op *ops, *norm, *pre, *dec;
    size_t n_norm, n_pre, n_dec;
    int32_t *prefix, *suffix;
    size_t n_prefix, n_suffix;
    bpe_matcher added[2]; /* 0: tokens matched in the raw text, 1: in the normalized text */
    int32_t *added_ids;
    size_t n_added;
    bpe_pat *over; /* normalized added tokens' texts, by id: what decode prints */
    size_t n_over;
    OnigRegex gpt2_re; /* ByteLevel's own split, when one uses it */
};

/* One encode call's scratch (bpe.c), so that a tokenizer is read-only. */
typedef struct bpe_sym {
    int32_t id, prev, next;
    uint32_t len;
} bpe_sym;
typedef struct bpe_merge {
    uint32_t rank, pos;
    int32_t id;
} bpe_merge;
typedef struct bpe_cache {
    uint32_t *slots; /* entry index + 1 */
    uint32_t mask, n, max;
    size_t text_len; /* sizes the cache when it is first used */
    struct bpe_centry {
        uint64_t hash;
        uint32_t key, key_len, ids, n_ids;
    } * v;
    bpe_buf keys;
    int32_t *ids;
    size_t n_ids_used, ids_cap;
} bpe_cache;

typedef struct bpe_ctx {
    const nb_bpe *t;
    int32_t *out;
    size_t n, cap;
    bpe_buf norm[2];
    bpe_buf *pre_buf; /* two per pre-tokenizer */
    bpe_segs *pre_segs;
    bpe_segs added_segs[2];
    OnigRegion *region;
    bpe_sym *syms;
    bpe_merge *heap;
    size_t syms_cap;
    bpe_cache cache;
    nb_err *e;
} bpe_ctx;

/* bpe_util.c */
uint64_t bpe_hash(const void *p, size_t n);
int bpe_char_len(const unsigned char *p, size_t n); /* >= 1, invalid bytes count as one */
uint32_t bpe_char_at(const unsigned char *p, size_t n, int *len);
size_t bpe_put_char(char *out, uint32_t cp);
int bpe_is_space(uint32_t cp);      /* Unicode White_Space, Rust's \s */
int bpe_is_word(uint32_t cp);       /* Rust's \w */
int bpe_is_numeric(uint32_t cp);    /* Rust's char::is_numeric: Nd, Nl, No */
uint32_t bpe_byte_char(unsigned b); /* GPT-2's byte -> character */
int bpe_char_byte(uint32_t cp);     /* its inverse, -1 outside the 256 */
int bpe_regex_new(OnigRegex *re, const char *pat, size_t n, nb_err *e);
void bpe_regex_free(OnigRegex re);
/* The library's Pattern::find_matches: pieces covering s, matches flagged;
 * the matches of regex re (the onig crate's find_iter) or, when re is
 * NULL, of the literal string pat (m bytes). -1 on a regex engine error. */
int bpe_find_matches(OnigRegex re, const char *pat, size_t m, OnigRegion *region, const char *s,
                     size_t n, bpe_segs *out, nb_err *e);

/* bpe_norm.c: the normalizers in order; the result is in ctx->norm[*which]. */
int bpe_normalize(bpe_ctx *c, const char *s, size_t n, const char **out, size_t *out_n);
/* The same with the caller's buffers (load time, for normalized added tokens). */
int bpe_normalize_with(const nb_bpe *t, bpe_buf buf[2], OnigRegion *region, const char *s, size_t n,
                       const char **out, size_t *out_n, nb_err *e);

/* bpe_pretok.c: pre-tokenizer k onwards, then the model, on one piece. */
int bpe_pretokenize(bpe_ctx *c, size_t k, const char *s, size_t n, int origin);

/* bpe_model.c */
int32_t bpe_vocab_get(const nb_bpe *t, const char *s, size_t n);
int bpe_merge_get(const nb_bpe *t, int32_t l, int32_t r, uint32_t *rank, int32_t *id);
int bpe_model(bpe_ctx *c, const char *s, size_t n); /* appends the piece's ids */
int bpe_emit(bpe_ctx *c, int32_t id);
void bpe_cache_free(bpe_cache *cache);
int bpe_tables_build(nb_bpe *t, const uint8_t *merges, nb_err *e);

/* bpe_added.c */
int bpe_matchers_build(nb_bpe *t, nb_err *e);
void bpe_matchers_free(nb_bpe *t);
int bpe_added_split(bpe_ctx *c, int pass, const char *s, size_t n, int origin);
const char *bpe_tok_text(const nb_bpe *t, int32_t id, size_t *len); /* what decode prints */

/* bpe_decode.c, shared with the detokenizer (bpe_detok.c). */
int bpe_byte_token(const char *s, size_t n);                   /* <0xAB> -> 0xAB, else -1 */
int bpe_bl_bytes(const char *s, size_t n, bpe_buf *out);       /* a ByteLevel token's bytes */
size_t bpe_subpart(const unsigned char *p, size_t n);          /* length of an invalid sequence */
int bpe_lossy(const unsigned char *p, size_t n, bpe_buf *out); /* from_utf8_lossy */
int bpe_strip(const bpe_op *op, const char *s, size_t n, bpe_buf *out);
int bpe_metaspace(const bpe_op *op, int first, const char *s, size_t n, bpe_buf *out);
extern const char bpe_fffd[3];

/* bpe_load.c: whether the incremental detokenizer can run the decoders. */
int bpe_ops_check_decoders(const bpe_op *dec, size_t n, nb_err *e);
const char *bpe_kind_name(uint32_t kind);

/* Little-endian words. */
static inline uint32_t bpe_rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

#endif
