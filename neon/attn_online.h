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

/* The softmax step of a superblock of n scores s (-inf past the last
 * row; n a multiple of 8) in the references of the variants that take
 * superblocks (attn.h: f16h, f32b): the maximum raised once (out and the
 * 4 lane sums rescaled), s replaced by the weights nb_exp_w(s - max) *
 * 2^-e (the sums and out at the same scale, the quotient unchanged) and
 * added to the lanes of sum (lanes L and L+4 of each 8 into lane L). */
static inline void weigh_super_ref(online *o, float sum[4], float *s, size_t n, int e,
                                   float *out, size_t hd)
{
    float top = -INFINITY;
    for (size_t r = 0; r < n; r++)
        top = s[r] > top ? s[r] : top;
    float c = raise_max(o, top, out, hd);
    for (int l = 0; l < 4; l++)
        sum[l] *= c;
    for (size_t r = 0; r < n; r++)
        s[r] = nb_exp_ws_ref(s[r] - o->max, e);
    for (size_t b = 0; b < n; b += 8)
        for (int l = 0; l < 4; l++)
            sum[l] += s[b + l] + s[b + l + 4];
}

static inline void finish(const online *o, float *out, size_t hd)
{
    float inv = 1.0f / o->sum;
    for (size_t i = 0; i < hd; i++)
        out[i] *= inv;
}

#endif
