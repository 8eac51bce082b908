/* A decoder model ready to run: its tensors bound (pointers into the
 * mapped file), its hyper-parameters, and the state of one sequence (a
 * KV cache preallocated for ctx positions, scratch). Two forward passes
 * stand behind one API: the reference (models/ref.c, plain C, fp32, the
 * oracle for every kernel, read top to bottom like the math) and the fast
 * one (models/fast.c: fp16 KV cache, fused jobs on a thread pool, packed
 * kernels). net.c binds and dispatches; neither pass calls the other.
 * models/arch.h says what varies between families. */
#ifndef NIBBLE_NET_H
#define NIBBLE_NET_H

#include <stddef.h>
#include <stdint.h>

#include "../runtime/base/err.h"
#include "../runtime/model.h"
#include "arch.h"

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
/* optional blocks (models/arch.h) */
#define NB_T_Q_BIAS "blk.%d.attn_q.bias"
#define NB_T_K_BIAS "blk.%d.attn_k.bias"
#define NB_T_V_BIAS "blk.%d.attn_v.bias"
#define NB_T_Q_NORM "blk.%d.attn_q_norm"
#define NB_T_K_NORM "blk.%d.attn_k_norm"


typedef struct nb_net_layer {
    nb_tensor attn_norm, q, k, v, o, ffn_norm, gate, up, down;
    nb_tensor q_bias, k_bias, v_bias; /* NB_HAS_QKV_BIAS, else data NULL */
    nb_tensor q_norm, k_norm;         /* NB_HAS_QK_NORM: [head_dim], else data NULL */
} nb_net_layer;

struct nb_ref;  /* the reference pass's state (models/ref.c) */
struct nb_fast; /* the fast pass's state (models/fast.c) */

typedef struct nb_net {
    struct nb_meta cfg;
    nb_hparams hp; /* the architecture, RoPE scaling */
    int ctx;       /* positions the KV cache holds */
    nb_tensor embed, out_norm, output;
    nb_net_layer *layers;
    float *inv_freq;      /* [head_dim / 2], scaled (nb_rope_freqs) */
    struct nb_ref *ref;   /* exactly one of ref and fast is set */
    struct nb_fast *fast;
} nb_net;

/* How the fast path runs. Zeroed means: one thread per core, no pinning,
 * the fastest kernel set this CPU has, int8 activations. */
typedef struct nb_run_opts {
    int threads;         /* 0: one per core (or per CPU of cpus) */
    const char *cpus;    /* NULL or a list like "0-3,6": pins the threads */
    const char *kernels; /* NULL, "auto", "ref", "neon", "dotprod" or "i8mm" */
    int exact;           /* packed weights see fp32 activations (W4A16) */
    int min_chunk;       /* multiply-adds under which a job stays on one thread
                            (0: 32768); tests set 1 to split tiny models */
    int n_seq;           /* sequences, each with its own KV cache of ctx
                            positions (a server's slots); 0 means 1 */
} nb_run_opts;

/* Binds the model's tensors (checking every name and shape) and allocates
 * the state; ctx 0 means the model's maximum context. */
int nb_net_init(nb_net *m, const nb_model *model, int ctx, nb_err *e);
void nb_net_free(nb_net *m);

/* The fast path (models/fast.c): the same model on an fp16 KV
 * cache, fused per-layer jobs on a thread pool, packed weights through
 * the kernels of neon/qkern.h. Same binding and errors as nb_net_init. */
int nb_net_init_fast(nb_net *m, const nb_model *model, int ctx, const nb_run_opts *o,
                       nb_err *e);

/* What nb_net_init_fast would refuse in o before any model is loaded:
 * a kernel set that is unknown or that this CPU cannot run, a thread
 * count out of 0..256, a CPU list that does not parse. */
int nb_run_opts_check(const nb_run_opts *o, nb_err *e);

/* Runs token at position pos (0 <= pos < ctx; positions before it must
 * have been run) and returns the logits, valid until the next call. */
float *nb_net_forward(nb_net *m, int token, int pos);

/* Runs tokens[0..n) at positions pos.. (1 <= n, pos + n <= ctx) and
 * returns the logits of the last one only; the fast path runs them in
 * tiles of tokens through the GEMM kernels, the reference one by one. */
float *nb_net_prefill(nb_net *m, const int32_t *tokens, int n, int pos);

/* The same, handing every position's logits to fn(ctx, i, logits) in
 * order (perplexity needs them all). 0, or -1 when out of memory. */
int nb_net_prefill_each(nb_net *m, const int32_t *tokens, int n, int pos,
                          void (*fn)(void *ctx, int i, const float *logits), void *ctx, nb_err *e);

/* Several sequences at once (the fast path's n_seq): token i belongs to
 * sequence seq[i] at position pos[i]. A sequence's tokens come in order
 * of position, each after every earlier position of it was run (in this
 * batch or before). One batched pass reads the weights once for all of
 * them: a decode step of four slots costs little more than one. */
typedef struct nb_batch {
    int n;
    const int32_t *token;
    const int *seq, *pos;
    const uint8_t *logits; /* [n]: 1 where the logits are wanted; NULL: all */
} nb_batch;

/* Runs b; the wanted logits, in the batch's order, into out [k][vocab].
 * -1 with a message for a token, sequence or position out of range (the
 * reference path runs sequence 0 only). */
int nb_net_batch(nb_net *m, const nb_batch *b, float *out, nb_err *e);

/* nb_net_prefill on sequence seq (0 <= seq < nb_net_sequences). */
float *nb_net_prefill_seq(nb_net *m, int seq, const int32_t *tokens, int n, int pos);
int nb_net_sequences(const nb_net *m);

/* 0 when the n logits are all finite, else -1 with a message naming pos.
 * A model whose weights hold NaN or Inf (a file damaged or crafted after
 * its checksums were written: writers refuse such values) gives NaN or
 * Inf logits whatever the kernels, which compute through them without
 * undefined behaviour; callers stop there rather than sample garbage. */
int nb_logits_check(const float *logits, size_t n, int pos, nb_err *e);

/* Bytes of state allocated for the session: the KV cache, and everything
 * else (activations, scratch) beside it. Weights are mapped, not counted. */
void nb_net_memory(const nb_net *m, size_t *kv_bytes, size_t *other_bytes);

/* The kernel set and thread count in use ("reference" and 1 on the
 * reference path). */
const char *nb_net_kernels(const nb_net *m);
int nb_net_threads(const nb_net *m);

#endif
