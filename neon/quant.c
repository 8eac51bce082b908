#include "quant.h"

#include <math.h>

#include "f16.h"

size_t nb_qgroups(size_t n, const nb_qspec *q)
{
    return q->group > 0 ? (n + (size_t)q->group - 1) / (size_t)q->group : 1;
}

static float clampf(float v, float lo, float hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static float to_f16(float v)
{
    return nb_f16_to_f32(nb_f32_to_f16(v));
}

struct qgroup {
    float s, z, lo, hi; /* code = clamp(rne(w / s), lo, hi) + z */
};

static struct qgroup group_params(const float *w, size_t n, const nb_qspec *q)
{
    float mn = w[0], mx = w[0], amax = fabsf(w[0]);
    for (size_t i = 1; i < n; i++) {
        mn = fminf(mn, w[i]);
        mx = fmaxf(mx, w[i]);
        amax = fmaxf(amax, fabsf(w[i]));
    }
    struct qgroup g;
    if (q->symmetric) {
        float maxq = (float)((1 << (q->bits - 1)) - 1);
        g.s = to_f16(fmaxf(amax, 1e-5f) / maxq);
        g.z = (float)(1 << (q->bits - 1));
        g.lo = -g.z, g.hi = maxq;
    } else {
        float maxq = (float)((1 << q->bits) - 1);
        g.s = to_f16(fmaxf(mx - mn, 1e-5f) / maxq);
        g.z = clampf(-rintf(mn / g.s), 0, maxq); /* the clamp quirk: kept on purpose */
        g.lo = -g.z, g.hi = maxq - g.z;
    }
    return g;
}

static float encode(const struct qgroup *g, float w)
{
    return clampf(rintf(w / g->s), g->lo, g->hi) + g->z;
}

void nb_quant_row(const float *w, size_t n, const nb_qspec *q, uint8_t *codes, float *scales,
                  uint8_t *zeros)
{
    size_t step = q->group > 0 ? (size_t)q->group : n;
    for (size_t k = 0, i = 0; k < n; k += step, i++) {
        size_t len = n - k < step ? n - k : step;
        struct qgroup g = group_params(w + k, len, q);
        for (size_t j = 0; j < len; j++)
            codes[k + j] = (uint8_t)encode(&g, w[k + j]);
        scales[i] = g.s;
        zeros[i] = (uint8_t)g.z;
    }
}

void nb_fake_quant_row(float *w, size_t n, const nb_qspec *q)
{
    size_t step = q->group > 0 ? (size_t)q->group : n;
    for (size_t k = 0; k < n; k += step) {
        size_t len = n - k < step ? n - k : step;
        struct qgroup g = group_params(w + k, len, q);
        for (size_t j = 0; j < len; j++)
            w[k + j] = (encode(&g, w[k + j]) - g.z) * g.s;
    }
}
