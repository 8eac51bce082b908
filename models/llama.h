/* The LLaMA family (Llama-2, TinyLlama, Mistral, Vicuna, llama2.c):
 * RMSNorm, RoPE, grouped-query attention, SwiGLU. The reference forward
 * pass in plain C with fp32 accumulation: the oracle for every kernel. */
#ifndef NIBBLE_LLAMA_H
#define NIBBLE_LLAMA_H

#include <stddef.h>
#include <stdint.h>

#include "../runtime/err.h"
#include "../runtime/model.h"

/* Tensor names inside nibble files. */
#define NB_T_EMBED "token_embd"
#define NB_T_OUT_NORM "output_norm"
#define NB_T_OUTPUT "output"
/* per layer, formatted with the layer index */
#define NB_T_ATTN_NORM "blk.%d.attn_norm"
#define NB_T_Q "blk.%d.attn_q"
#define NB_T_K "blk.%d.attn_k"
#define NB_T_V "blk.%d.attn_v"
#define NB_T_O "blk.%d.attn_output"
#define NB_T_FFN_NORM "blk.%d.ffn_norm"
#define NB_T_GATE "blk.%d.ffn_gate"
#define NB_T_UP "blk.%d.ffn_up"
#define NB_T_DOWN "blk.%d.ffn_down"


typedef struct nb_llama_layer {
    nb_tensor attn_norm, q, k, v, o, ffn_norm, gate, up, down;
} nb_llama_layer;

struct nb_fast; /* the fast path's state (models/llama_fast.c) */

/* The weights (pointers into the mapped file) and the state of one
 * sequence: a KV cache preallocated for ctx positions and scratch. */
typedef struct nb_llama {
    struct nb_meta cfg;
    int ctx; /* positions the KV cache holds */
    nb_tensor embed, out_norm, output;
    nb_llama_layer *layers;
    float *key_cache, *value_cache; /* [layer][ctx][kv_dim] */
    float *x, *xb, *xb2, *q, *hb, *hb2, *att, *logits;
    float *inv_freq; /* [head_dim / 2] */
    struct nb_fast *fast; /* set by nb_llama_init_fast: forward runs the fast path */
} nb_llama;

/* How the fast path runs. Zeroed means: one thread per core, no pinning,
 * the fastest kernel set this CPU has, int8 activations. */
typedef struct nb_run_opts {
    int threads;         /* 0: one per core (or per CPU of cpus) */
    const char *cpus;    /* NULL or a list like "0-3,6": pins the threads */
    const char *kernels; /* NULL, "auto", "ref", "neon", "dotprod" or "i8mm" */
    int exact;           /* packed weights see fp32 activations (W4A16) */
    int min_chunk;       /* multiply-adds under which a job stays on one thread
                            (0: 32768); tests set 1 to split tiny models */
} nb_run_opts;

/* Binds the model's tensors (checking every name and shape) and allocates
 * the state; ctx 0 means the model's maximum context. */
int nb_llama_init(nb_llama *m, const nb_model *model, int ctx, nb_err *e);
void nb_llama_free(nb_llama *m);

/* The fast path (models/llama_fast.c): the same model on an fp16 KV
 * cache, fused per-layer jobs on a thread pool, packed weights through
 * the kernels of neon/qkern.h. Same binding and errors as nb_llama_init. */
int nb_llama_init_fast(nb_llama *m, const nb_model *model, int ctx, const nb_run_opts *o,
                       nb_err *e);

/* What nb_llama_init_fast would refuse in o before any model is loaded:
 * a kernel set that is unknown or that this CPU cannot run, a thread
 * count out of 0..256, a CPU list that does not parse. */
int nb_run_opts_check(const nb_run_opts *o, nb_err *e);

/* Runs token at position pos (0 <= pos < ctx; positions before it must
 * have been run) and returns the logits, valid until the next call. */
float *nb_llama_forward(nb_llama *m, int token, int pos);

/* Runs tokens[0..n) at positions pos.. (1 <= n, pos + n <= ctx) and
 * returns the logits of the last one only; the fast path runs them in
 * tiles of tokens through the GEMM kernels, the reference one by one. */
float *nb_llama_prefill(nb_llama *m, const int32_t *tokens, int n, int pos);

/* The same, handing every position's logits to fn(ctx, i, logits) in
 * order (perplexity needs them all). 0, or -1 when out of memory. */
int nb_llama_prefill_each(nb_llama *m, const int32_t *tokens, int n, int pos,
                          void (*fn)(void *ctx, int i, const float *logits), void *ctx, nb_err *e);

/* 0 when the n logits are all finite, else -1 with a message naming pos.
 * A model whose weights hold NaN or Inf (a file damaged or crafted after
 * its checksums were written: writers refuse such values) gives NaN or
 * Inf logits whatever the kernels, which compute through them without
 * undefined behaviour; callers stop there rather than sample garbage. */
int nb_logits_check(const float *logits, size_t n, int pos, nb_err *e);

/* Bytes of state allocated for the session: the KV cache, and everything
 * else (activations, scratch) beside it. Weights are mapped, not counted. */
void nb_llama_memory(const nb_llama *m, size_t *kv_bytes, size_t *other_bytes);

/* The kernel set and thread count in use ("reference" and 1 on the
 * reference path). */
const char *nb_llama_kernels(const nb_llama *m);
int nb_llama_threads(const nb_llama *m);

#endif
