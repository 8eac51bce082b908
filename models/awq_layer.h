/* AWQ for the decoder families of models/arch.h (docs: awq-spec.md
 * §3-§4, docs/awq.md): the batched fp32 forward of one decoder layer over
 * the calibration blocks, capturing the input of every linear; the modules
 * the scale search compares; the four scale groups; folding scales into
 * the weights. It works on fp32 copies of one layer at a time and never
 * touches the mapped file.
 *
 * The first half is the view of a layer that the model-agnostic search in
 * tools/awq.c works on; another architecture fills the same structures
 * with its own linears, groups and module function. */
#ifndef NIBBLE_AWQ_LAYER_H
#define NIBBLE_AWQ_LAYER_H

#include <stddef.h>
#include <stdint.h>

#include "../runtime/base/err.h"
#include "../runtime/model.h"
#include "../runtime/pool.h"
#include "arch.h"

#define NB_AWQ_MAX_LINEARS 8
#define NB_AWQ_MAX_NORMS 2
#define NB_AWQ_MAX_GROUPS 4
#define NB_AWQ_MAX_SCALED 3

/* A linear as the search sees it: an fp32 copy of its weight [rows, cols]
 * (scaled and clipped in place), its bias if it has one, and its input on
 * the calibration tokens, x [n_tokens, cols]. Linears fed by the same op
 * share one x, so scaling divides it once (pitfall 6). The bias is added
 * after the product: a trial's weights replace w and keep b; a group whose
 * previous op is this linear divides b with the rows; the quantizer writes
 * b (f32) beside the weight, so the file gets the divided one. */
typedef struct nb_awq_linear {
    char name[NB_NAME_LEN]; /* tensor name in the file */
    const char *label;      /* for reports: "q", "down" */
    float *w;
    size_t rows, cols;
    float *b;                    /* [rows], NULL when the linear has no bias */
    char bias_name[NB_NAME_LEN]; /* its tensor name, when b is set */
    float *x;
    int clip; /* 0 for q and k: their product makes clipping hard to judge */
} nb_awq_linear;

/* A vector that absorbs scales (an RMSNorm weight), kept in fp32. */
typedef struct nb_awq_norm {
    char name[NB_NAME_LEN];
    float *w;
    size_t n;
} nb_awq_norm;

/* A scale group: linears reading the same input, the op before them that
 * absorbs 1/s (a norm, or the last rows of a linear), and the module whose
 * output judges a trial. */
typedef struct nb_awq_group {
    const char *label;  /* "attn_norm -> q,k,v" */
    int prev_norm;      /* index into norm[], or -1 */
    int prev_linear;    /* index into lin[], or -1 */
    int scaled[NB_AWQ_MAX_SCALED], n_scaled; /* indexes into lin[] */
    int module;         /* the architecture's module number */
    size_t out_cols;    /* width of the module's output */
    const char *skip;   /* non-NULL: not searched, and why */
} nb_awq_group;

typedef struct nb_awq_layer nb_awq_layer;

/* y [n, out_cols] = the module of group g on calibration tokens [t0, t0+n)
 * (whole blocks), with w[i] standing for the weight of the group's i-th
 * scaled linear (w NULL: the layer's own weights). Called from several
 * threads at once. -1 when out of memory. */
typedef int (*nb_awq_module_fn)(const nb_awq_layer *L, int g, const float *const *w, size_t t0,
                                size_t n, float *y);

struct nb_awq_layer {
    nb_awq_linear lin[NB_AWQ_MAX_LINEARS];
    nb_awq_norm norm[NB_AWQ_MAX_NORMS];
    nb_awq_group group[NB_AWQ_MAX_GROUPS];
    int n_lin, n_norms, n_groups;
    size_t n_tokens, block; /* calibration tokens, in independent blocks */
    nb_awq_module_fn module;
};

/* Folds the scales s [the group's input width] into group g: the previous
 * op divided by s (a norm's weight; a linear's last rows and their bias
 * entries), each scaled linear's columns multiplied by s (their biases
 * untouched), their shared input divided by s. The layer computes the
 * same function, up to rounding. */
void nb_awq_fold(nb_awq_layer *L, int g, const float *s);

/* y[t, r] = sum_c x[t, c] * w[r, c] for t < n, r < rows: x [n, k] with row
 * stride ldx, w [rows, k] with stride ldw, y with stride ldy. fp32, each
 * element summed in column order: the same bits on any thread. */
void nb_awq_matmul(float *y, size_t ldy, const float *x, size_t ldx, size_t n, const float *w,
                   size_t ldw, size_t rows, size_t k);

/* ---- the decoder families (models/arch.h) ----------------------------- */

/* Module numbers of the groups. */
enum {
    NB_AWQ_ATTN, /* q, k, v (+ bias) -> head norms -> RoPE, causal softmax per block, GQA -> o */
    NB_AWQ_O,    /* o alone */
    NB_AWQ_MLP,  /* down(silu(gate x) * up x) */
    NB_AWQ_DOWN, /* down alone */
};

typedef struct nb_layer_awq {
    nb_awq_layer layer; /* first, so a layer pointer is the whole */
    struct nb_meta cfg;
    nb_hparams hp;                            /* the family, RoPE scaling */
    float *in_attn, *in_o, *in_mlp, *in_down; /* captured inputs */
    float *rope_cos, *rope_sin;               /* [block][head_dim / 2] */
    /* NB_HAS_QK_NORM: [head_dim] each, else NULL. Never scaled: no group
     * divides the output rows of q or k (docs/awq.md). */
    float *q_norm, *k_norm;
} nb_layer_awq;

/* Allocates one layer of m's shape and family (its biases and q/k norms
 * included) and, when n_tokens > 0, its captured inputs for n_tokens
 * calibration tokens in blocks of block tokens (a multiple of block,
 * block at most the model's context) with RoPE tables for a block
 * (nb_rope_freqs: scaling included). */
int nb_layer_awq_init(nb_layer_awq *a, const nb_model *m, size_t n_tokens, size_t block,
                      nb_err *e);
void nb_layer_awq_free(nb_layer_awq *a);

/* Bytes the quantizer holds for n_tokens calibration tokens: the captured
 * inputs, the layer input and the module outputs the search compares, and
 * one layer in fp32 twice (its weights and a trial copy). */
double nb_layer_awq_bytes(const struct nb_meta *cfg, size_t n_tokens);

/* x [n, dim] = the embeddings of ids: the input of layer 0. */
int nb_layer_awq_embed(const nb_model *m, const int32_t *ids, size_t n, float *x, nb_err *e);

/* Copies layer l of m (any plain dtype) into fp32: its norms, linears,
 * and what its family adds (biases, q/k norms). */
int nb_layer_awq_load(nb_layer_awq *a, const nb_model *m, int l, nb_err *e);

/* Runs the loaded, unmodified layer on x [n_tokens, dim], which becomes
 * the layer's output (the next layer's input), and captures the input of
 * every linear. */
int nb_layer_awq_forward(nb_layer_awq *a, float *x, nb_pool *pool, nb_err *e);

#endif
