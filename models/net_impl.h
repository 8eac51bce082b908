/* Internal to models/: what net.c hands the two forward passes, and the
 * blocks they share, so that the math they have in common is written
 * once. ref.c and fast.c include this, never each other. */
#ifndef NIBBLE_NET_IMPL_H
#define NIBBLE_NET_IMPL_H

#include <math.h>

#include "../neon/gemv.h"
#include "net.h"

/* cos and sin of RoPE pair i's angle at position pos. */
void nb_net_rope_angle(const nb_net *m, int pos, int i, float *c, float *s);

/* Rotates the pair (p[a], p[b]) by the angle whose cos and sin are c, s. */
static inline void nb_rope_pair(float *p, int a, int b, float c, float s)
{
    float x0 = p[a], x1 = p[b];
    p[a] = x0 * c - x1 * s;
    p[b] = x0 * s + x1 * c;
}

/* Rotates the heads that start in [r0, r1) of v (whole heads) with the
 * cos/sin pairs cs[2i], cs[2i+1]; llama2.c pairs are (2i, 2i+1), Hugging
 * Face's (i, i + hd/2) over permuted rows: the same rotation. */
static inline void nb_rope_heads(const nb_net *m, float *v, size_t r0, size_t r1, const float *cs)
{
    int hd = (int)m->cfg.head_dim, half = hd / 2, halves = m->cfg.rope_pairs == NB_ROPE_HALVES;
    for (size_t h = r0; h < r1; h += (size_t)hd)
        for (int i = 0; i < half; i++)
            nb_rope_pair(v + h, halves ? i : 2 * i, halves ? i + half : 2 * i + 1, cs[2 * i],
                         cs[2 * i + 1]);
}

/* y[r] += b[r] for r in [r0, r1): the q/k/v biases (f32, checked at bind). */
static inline void nb_add_bias(float *y, const nb_tensor *b, size_t r0, size_t r1)
{
    const float *bias = b->data;
    for (size_t r = r0; r < r1; r++)
        y[r] += bias[r];
}

/* RMSNorm over each head in [r0, r1) of v, in place (Qwen3's q/k norm). */
static inline void nb_head_norm(const nb_net *m, float *v, size_t r0, size_t r1,
                                const nb_tensor *w)
{
    size_t hd = m->cfg.head_dim;
    for (size_t h = r0; h < r1; h += hd)
        nb_rmsnorm_ref(v + h, v + h, w->data, (int)w->entry->dtype, hd, m->cfg.norm_eps);
}

/* The reference pass (ref.c). */
int nb_ref_init(nb_net *m, nb_err *e);
float *nb_ref_forward(nb_net *m, int token, int pos);
void nb_ref_memory(const nb_net *m, size_t *kv_bytes, size_t *other_bytes);
void nb_ref_free(struct nb_ref *r);

/* The fast pass (fast.c). */
int nb_fast_init(nb_net *m, const nb_run_opts *o, nb_err *e);
float *nb_fast_prefill(nb_net *m, int seq, const int32_t *tokens, int n, int pos);
int nb_fast_batch(nb_net *m, const nb_batch *b, float *out);
int nb_fast_sequences(const nb_net *m);
int nb_fast_prefill_each(nb_net *m, const int32_t *tokens, int n, int pos,
                         void (*fn)(void *ctx, int i, const float *logits), void *ctx, nb_err *e);
void nb_fast_memory(const nb_net *m, size_t *kv_bytes, size_t *other_bytes);
const char *nb_fast_kernels(const nb_net *m);
int nb_fast_threads(const nb_net *m);
void nb_fast_free(struct nb_fast *f);

#endif
