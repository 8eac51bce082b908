/* The attention of attn.h in portable C for hosts without NEON: one
 * position at a time, its score and its weighted value row in 8-lane
 * vectors (generic_vec.h), the online softmax of the reference; the
 * grouped form takes the same steps for several heads, each key and value
 * converted once for them (the same bits per head). meson
 * builds it once per set, as the other generic files; NB_GENERIC_SET
 * names the set this build defines. */
#include <math.h>

#include "attn.h"
#include "attn_online.h"
#include "generic_vec.h"
#include "qkern_generic.h"

/* q . k over hd columns: lanes by column mod 8, then the tail in order. */
INLINE float dot(const float *q, const uint16_t *k, size_t hd)
{
    v8f acc = {0.0f};
    size_t i = 0;
    for (; i + 8 <= hd; i += 8)
        acc = madd(load_f32(q + i), load_f16(k + i), acc);
    float s = lanes_sum(acc);
    for (; i < hd; i++)
        s += q[i] * nb_f16_to_f32(k[i]);
    return s;
}

/* out += w * v over hd columns. */
INLINE void add_weighted(float *out, float w, const uint16_t *v, size_t hd)
{
    v8f wv = {w, w, w, w, w, w, w, w};
    size_t i = 0;
    for (; i + 8 <= hd; i += 8) {
        v8f o = madd(wv, load_f16(v + i), load_f32(out + i));
        memcpy(out + i, &o, sizeof o);
    }
    for (; i < hd; i++)
        out[i] += w * nb_f16_to_f32(v[i]);
}

void KERNEL(nb_attend_f16_)(float *out, const float *q, const uint16_t *k, const uint16_t *v,
                            size_t stride, size_t n, size_t hd, float scale)
{
    online o = {-INFINITY, 0.0f};
    for (size_t i = 0; i < hd; i++)
        out[i] = 0.0f;
    for (size_t t = 0; t < n; t++) {
        float s = dot(q, k + t * stride, hd) * scale;
        raise_max(&o, s, out, hd);
        add_weighted(out, weigh(&o, s), v + t * stride, hd);
    }
    finish(&o, out, hd);
}

/* ---- grouped ---- */

/* dot() of M heads (q + j * ldq, M <= 4) against one key: each 8 columns
 * of the key are converted once for the M heads (8 software conversions
 * where the build has no F16C), and each head's lanes and tail add as in
 * dot(). M is a constant where it is inlined: the accumulators stay in
 * registers. */
INLINE void dots(float *s, const float *q, size_t ldq, const int M, const uint16_t *k, size_t hd)
{
    v8f acc[4] = {{0.0f}, {0.0f}, {0.0f}, {0.0f}};
    size_t i = 0;
    for (; i + 8 <= hd; i += 8) {
        v8f kv = load_f16(k + i);
        for (int j = 0; j < M; j++)
            acc[j] = madd(load_f32(q + (size_t)j * ldq + i), kv, acc[j]);
    }
    for (int j = 0; j < M; j++) {
        const float *qj = q + (size_t)j * ldq;
        float x = lanes_sum(acc[j]);
        for (size_t c = i; c < hd; c++)
            x += qj[c] * nb_f16_to_f32(k[c]);
        s[j] = x;
    }
}

/* add_weighted() of g heads (weights w[j], outputs out + j * ldo): each 8
 * columns of the value converted once for all of them. */
INLINE void add_weighted_heads(float *out, size_t ldo, const float *w, size_t g,
                               const uint16_t *v, size_t hd)
{
    size_t i = 0;
    for (; i + 8 <= hd; i += 8) {
        v8f vv = load_f16(v + i);
        for (size_t j = 0; j < g; j++) {
            v8f wv = {w[j], w[j], w[j], w[j], w[j], w[j], w[j], w[j]};
            v8f o = madd(wv, vv, load_f32(out + j * ldo + i));
            memcpy(out + j * ldo + i, &o, sizeof o);
        }
    }
    for (size_t j = 0; j < g; j++)
        for (size_t c = i; c < hd; c++)
            out[j * ldo + c] += w[j] * nb_f16_to_f32(v[c]);
}

/* The single-head kernel's steps for up to NB_ATTEND_GROUP heads,
 * position by position: the scores of all heads (4 at a time), each
 * head's softmax step, the weighted value of all heads. */
static void group(float *out, size_t ldo, const float *q, size_t ldq, size_t g,
                  const uint16_t *k, const uint16_t *v, size_t stride, size_t n, size_t hd,
                  float scale)
{
    online o[NB_ATTEND_GROUP];
    float s[NB_ATTEND_GROUP], w[NB_ATTEND_GROUP];
    start_heads(o, out, ldo, g, hd);
    for (size_t t = 0; t < n; t++) {
        const uint16_t *kt = k + t * stride;
        size_t j = 0;
        for (; j + 4 <= g; j += 4)
            dots(s + j, q + j * ldq, ldq, 4, kt, hd);
        switch (g - j) {
        case 3: dots(s + j, q + j * ldq, ldq, 3, kt, hd); break;
        case 2: dots(s + j, q + j * ldq, ldq, 2, kt, hd); break;
        case 1: dots(s + j, q + j * ldq, ldq, 1, kt, hd); break;
        }
        for (j = 0; j < g; j++) {
            float x = s[j] * scale;
            raise_max(&o[j], x, out + j * ldo, hd);
            w[j] = weigh(&o[j], x);
        }
        add_weighted_heads(out, ldo, w, g, v + t * stride, hd);
    }
    for (size_t j = 0; j < g; j++)
        finish(&o[j], out + j * ldo, hd);
}

void KERNEL(nb_attend_group_f16_)(float *out, size_t ldo, const float *q, size_t ldq, size_t g,
                                  const uint16_t *k, const uint16_t *v, size_t stride, size_t n,
                                  size_t hd, float scale)
{
    if (g == 1) { /* nothing to share: the single-head kernel, without the group's bookkeeping */
        KERNEL(nb_attend_f16_)(out, q, k, v, stride, n, hd, scale);
        return;
    }
    for (size_t j = 0; j < g; j += NB_ATTEND_GROUP)
        group(out + j * ldo, ldo, q + j * ldq, ldq,
              g - j < NB_ATTEND_GROUP ? g - j : NB_ATTEND_GROUP, k, v, stride, n, hd, scale);
}
