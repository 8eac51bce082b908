/* The LLaMA family (Llama-2, TinyLlama, Mistral, Vicuna, llama2.c):
 * RMSNorm, RoPE, grouped-query attention, SwiGLU. The reference forward
 * pass in plain C with fp32 accumulation: the oracle for every kernel. */
#ifndef NIBBLE_LLAMA_H
#define NIBBLE_LLAMA_H

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
} nb_llama;

/* Binds the model's tensors (checking every name and shape) and allocates
 * the state; ctx 0 means the model's maximum context. */
int nb_llama_init(nb_llama *m, const nb_model *model, int ctx, nb_err *e);
void nb_llama_free(nb_llama *m);

/* Runs token at position pos (0 <= pos < ctx; positions before it must
 * have been run) and returns the logits, valid until the next call. */
float *nb_llama_forward(nb_llama *m, int token, int pos);

#endif
