/* The attention of attn.h in portable C for hosts without NEON: one
 * position at a time, its score and its weighted value row in 8-lane
 * vectors (generic_vec.h), the online softmax of the reference. meson
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
