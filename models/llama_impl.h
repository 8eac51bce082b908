/* Internal to models/: what the reference forward pass (llama.c) and the
 * fast one (llama_fast.c) share, so the math they have in common is
 * written once. */
#ifndef NIBBLE_LLAMA_IMPL_H
#define NIBBLE_LLAMA_IMPL_H

#include <math.h>

#include "llama.h"

/* Checks the shape, binds every tensor, computes the RoPE frequencies:
 * all of nb_llama_init but the state. On failure m holds nothing. */
int nb_llama_bind(nb_llama *m, const nb_model *model, int ctx, nb_err *e);

/* cos and sin of RoPE pair i's angle at position pos. */
void nb_llama_rope_angle(const nb_llama *m, int pos, int i, float *c, float *s);

/* Rotates the pair (p[a], p[b]) by the angle whose cos and sin are c, s. */
static inline void nb_rope_pair(float *p, int a, int b, float c, float s)
{
    float x0 = p[a], x1 = p[b];
    p[a] = x0 * c - x1 * s;
    p[b] = x0 * s + x1 * c;
}

/* SwiGLU's gate: silu(g) * u. */
static inline float nb_silu_mul(float g, float u)
{
    return g / (1.0f + expf(-g)) * u;
}

/* The fast path behind nb_llama_forward and nb_llama_free. */
float *nb_fast_forward(nb_llama *m, int token, int pos);
void nb_fast_free(struct nb_fast *f);

#endif
