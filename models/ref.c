/* The decoder's forward pass, top to bottom, one token at a time:
 *   x = embed[token]
 *   per layer:
 *     h = norm(x)
 *     q, k, v = q(h) + bq, k(h) + bk, v(h) + bv     biases: Qwen2
 *     q, k = headnorm(q), headnorm(k)               per head: Qwen3
 *     q, k = rope(q), rope(k)                       frequencies: nb_rope_freqs
 *     x += o(attention(q, cache(k), cache(v)))
 *     x += down(silu(gate(norm(x))) * up(norm(x)))
 *   logits = output(norm(x))
 * Plain C, fp32 accumulation: the oracle, not the fast path. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../neon/act.h"
#include "../runtime/qtensor.h"
#include "net_impl.h"

struct nb_ref {
    float *key_cache, *value_cache; /* [layer][ctx][kv_dim] */
    float *x, *xb, *xb2, *q, *hb, *hb2, *att, *logits;
    float *cs; /* [head_dim / 2][cos, sin] of the current position */
};

static float *alloc_floats(size_t n, int *failed)
{
    float *p = calloc(n ? n : 1, sizeof *p);
    if (!p)
        *failed = 1;
    return p;
}

int nb_ref_init(nb_net *m, nb_err *e)
{
    const struct nb_meta *c = &m->cfg;
    size_t kv = (size_t)c->n_kv_heads * c->head_dim, q = (size_t)c->n_heads * c->head_dim;
    size_t cache = (size_t)c->n_layers * (size_t)m->ctx * kv;
    size_t wide = q > c->dim ? q : c->dim;
    int failed = 0;
    struct nb_ref *r = m->ref = calloc(1, sizeof *r);
    if (!r)
        return nb_fail(e, "out of memory");
    r->key_cache = alloc_floats(cache, &failed);
    r->value_cache = alloc_floats(cache, &failed);
    r->x = alloc_floats(c->dim, &failed);
    r->xb = alloc_floats(wide, &failed);
    r->xb2 = alloc_floats(c->dim, &failed);
    r->q = alloc_floats(q, &failed);
    r->hb = alloc_floats(c->ffn_dim, &failed);
    r->hb2 = alloc_floats(c->ffn_dim, &failed);
    r->att = alloc_floats((size_t)m->ctx, &failed);
    r->logits = alloc_floats(c->vocab_size, &failed);
    r->cs = alloc_floats(c->head_dim, &failed);
    if (failed)
        return nb_fail(e, "out of memory for a %d-token context (KV cache %.1f MB)", m->ctx,
                       2.0 * (double)cache * 4 / 1e6);
    return 0;
}

void nb_ref_free(struct nb_ref *r)
{
    if (!r)
        return;
    float *bufs[] = {r->key_cache, r->value_cache, r->x, r->xb, r->xb2, r->q,
                     r->hb, r->hb2, r->att, r->logits, r->cs};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        free(bufs[i]);
    free(r);
}

void nb_ref_memory(const nb_net *m, size_t *kv_bytes, size_t *other_bytes)
{
    const struct nb_meta *c = &m->cfg;
    size_t kv = (size_t)c->n_kv_heads * c->head_dim, q = (size_t)c->n_heads * c->head_dim;
    size_t wide = q > c->dim ? q : c->dim;
    *kv_bytes = 2 * (size_t)c->n_layers * (size_t)m->ctx * kv * sizeof(float);
    *other_bytes = sizeof(struct nb_ref) +
                   sizeof(float) * (2 * c->dim + wide + q + 2 * (size_t)c->ffn_dim +
                                    (size_t)m->ctx + c->vocab_size + c->head_dim);
}

/* y = W x. Packed weights are dequantized on the fly; their layout is
 * rebuilt from the entry on each call, which is cheap next to the product. */
static void linear(float *y, const nb_tensor *w, const float *x)
{
    const struct nb_tensor_entry *t = w->entry;
    if (!nb_dtype_packed(t->dtype)) {
        nb_gemv_ref(y, w->data, (int)t->dtype, x, 0, t->shape[0], t->shape[1]);
        return;
    }
    nb_qlayout l;
    nb_qentry_layout(t, &l, NULL); /* cannot fail: the loader checked the entry */
    nb_qgemv_ref(&l, w->data, x, y, 0, l.rows);
}

/* y = W x + b, b optional. */
static void linear_bias(float *y, const nb_tensor *w, const nb_tensor *b, const float *x)
{
    linear(y, w, x);
    if (b->data)
        nb_add_bias(y, b, 0, w->entry->shape[0]);
}

static void norm(float *out, const float *x, const nb_tensor *g, float eps)
{
    nb_rmsnorm_ref(out, x, g->data, (int)g->entry->dtype, g->entry->shape[0], eps);
}

static void softmax(float *x, int n)
{
    float max = x[0], sum = 0.0f;
    for (int i = 1; i < n; i++)
        max = x[i] > max ? x[i] : max;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    for (int i = 0; i < n; i++)
        x[i] /= sum;
}

/* One query head over the cached keys and values of positions 0..pos. */
static void attend_head(nb_net *m, int l, int h, int pos, float *out)
{
    const struct nb_meta *c = &m->cfg;
    struct nb_ref *r = m->ref;
    size_t hd = c->head_dim, kv_dim = (size_t)c->n_kv_heads * hd;
    size_t kvh = (size_t)h / (c->n_heads / c->n_kv_heads); /* GQA: shared kv head */
    const float *q = r->q + (size_t)h * hd;
    const float *keys = r->key_cache + (size_t)l * m->ctx * kv_dim + kvh * hd;
    const float *vals = r->value_cache + (size_t)l * m->ctx * kv_dim + kvh * hd;
    float scale = 1.0f / sqrtf((float)hd);
    for (int t = 0; t <= pos; t++) {
        float dot = 0.0f;
        for (size_t i = 0; i < hd; i++)
            dot += q[i] * keys[(size_t)t * kv_dim + i];
        r->att[t] = dot * scale;
    }
    softmax(r->att, pos + 1);
    memset(out, 0, hd * sizeof *out);
    for (int t = 0; t <= pos; t++)
        for (size_t i = 0; i < hd; i++)
            out[i] += r->att[t] * vals[(size_t)t * kv_dim + i];
}

static void attention(nb_net *m, int l, int pos)
{
    const struct nb_meta *c = &m->cfg;
    const nb_net_layer *L = &m->layers[l];
    struct nb_ref *r = m->ref;
    size_t kv_dim = (size_t)c->n_kv_heads * c->head_dim, q_dim = (size_t)c->n_heads * c->head_dim;
    float *k = r->key_cache + ((size_t)l * m->ctx + (size_t)pos) * kv_dim;
    float *v = r->value_cache + ((size_t)l * m->ctx + (size_t)pos) * kv_dim;
    norm(r->xb, r->x, &L->attn_norm, c->norm_eps);
    linear_bias(r->q, &L->q, &L->q_bias, r->xb);
    linear_bias(k, &L->k, &L->k_bias, r->xb);
    linear_bias(v, &L->v, &L->v_bias, r->xb);
    if (L->q_norm.data) {
        nb_head_norm(m, r->q, 0, q_dim, &L->q_norm);
        nb_head_norm(m, k, 0, kv_dim, &L->k_norm);
    }
    nb_rope_heads(m, r->q, 0, q_dim, r->cs);
    nb_rope_heads(m, k, 0, kv_dim, r->cs);
    for (uint32_t h = 0; h < c->n_heads; h++)
        attend_head(m, l, (int)h, pos, r->xb + (size_t)h * c->head_dim);
    linear(r->xb2, &L->o, r->xb);
    for (uint32_t i = 0; i < c->dim; i++)
        r->x[i] += r->xb2[i];
}

static void mlp(nb_net *m, int l)
{
    const struct nb_meta *c = &m->cfg;
    const nb_net_layer *L = &m->layers[l];
    struct nb_ref *r = m->ref;
    norm(r->xb, r->x, &L->ffn_norm, c->norm_eps);
    linear(r->hb, &L->gate, r->xb);
    linear(r->hb2, &L->up, r->xb);
    for (uint32_t i = 0; i < c->ffn_dim; i++)
        r->hb[i] = nb_silu_mul_libm(r->hb[i], r->hb2[i]);
    linear(r->xb2, &L->down, r->hb);
    for (uint32_t i = 0; i < c->dim; i++)
        r->x[i] += r->xb2[i];
}

float *nb_ref_forward(nb_net *m, int token, int pos)
{
    const struct nb_meta *c = &m->cfg;
    struct nb_ref *r = m->ref;
    nb_row_ref(r->x, m->embed.data, (int)m->embed.entry->dtype, (size_t)token, c->dim);
    for (int i = 0; i < (int)c->head_dim / 2; i++)
        nb_net_rope_angle(m, pos, i, &r->cs[2 * i], &r->cs[2 * i + 1]);
    for (uint32_t l = 0; l < c->n_layers; l++) {
        attention(m, (int)l, pos);
        mlp(m, (int)l);
    }
    norm(r->x, r->x, &m->out_norm, c->norm_eps);
    linear(r->logits, &m->output, r->x);
    return r->logits;
}
