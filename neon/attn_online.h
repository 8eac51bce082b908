/* The online softmax of one attention head, shared by attn.c and
 * attn_generic.c: the largest score so far, the sum of exp(score - max),
 * and the weighted values kept at that scale. */
#ifndef NIBBLE_ATTN_ONLINE_H
#define NIBBLE_ATTN_ONLINE_H

#include <math.h>
#include <stddef.h>

#include "vexp.h"

/* The running softmax state: the largest score so far and the sum of
 * exp(score - max); out holds the weighted values at that scale. */
typedef struct online {
    float max, sum;
} online;

/* Raises the maximum to s when s is larger, rescaling what was summed
 * at the old one by c (returned; 1 when the maximum stays). */
static inline float raise_max(online *o, float s, float *out, size_t hd)
{
    if (!(s > o->max))
        return 1.0f;
    float c = nb_exp_ref(o->max - s); /* 0 for the first position */
    o->sum *= c;
    for (size_t i = 0; i < hd; i++)
        out[i] *= c;
    o->max = s;
    return c;
}

/* Weight of score s at the current maximum, counted in the sum. */
static inline float weigh(online *o, float s)
{
    float w = nb_exp_ref(s - o->max);
    o->sum += w;
    return w;
}

/* g heads' states before their first position, their outputs (rows of
 * hd at out + j * ldo) zeroed. */
static inline void start_heads(online *o, float *out, size_t ldo, size_t g, size_t hd)
{
    for (size_t j = 0; j < g; j++) {
        o[j] = (online){-INFINITY, 0.0f};
        for (size_t i = 0; i < hd; i++)
            out[j * ldo + i] = 0.0f;
    }
}

static inline void finish(const online *o, float *out, size_t hd)
{
    float inv = 1.0f / o->sum;
    for (size_t i = 0; i < hd; i++)
        out[i] *= inv;
}

#endif
