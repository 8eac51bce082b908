/* The LLaMA forward pass, top to bottom, one token at a time:
 *   x = embed[token]
 *   per layer: x += o(attention(rope(q(norm(x))), rope(k(..)), v(..)))
 *              x += down(silu(gate(norm(x))) * up(norm(x)))
 *   logits = output(norm(x))
 * Plain C, fp32 accumulation: the oracle, not the fast path. */
#define _POSIX_C_SOURCE 200809L
#include "llama.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../neon/gemv.h"
#include "../runtime/qtensor.h"
#include "llama_impl.h"

/* Looks a tensor up by name and checks its shape (cols 0: a vector). */
static int find(const nb_model *model, nb_tensor *t, const char *fmt, int layer, uint64_t rows,
                uint64_t cols, nb_err *e)
{
    char name[NB_NAME_LEN];
    snprintf(name, sizeof name, fmt, layer);
    uint64_t shape[2] = {rows, cols};
    return nb_model_expect(model, name, cols ? 2 : 1, shape, t, e);
}

/* Norms and the embedding stay plain: rows of the embedding are read one
 * token at a time and the norms are tiny, so packing them buys nothing. */
static int bind(const nb_model *model, nb_tensor *t, const char *fmt, int layer, uint64_t rows,
                uint64_t cols, nb_err *e)
{
    if (find(model, t, fmt, layer, rows, cols, e))
        return -1;
    if (!nb_dtype_width(t->entry->dtype))
        return nb_fail(e, "tensor '%s' has dtype %s; only linear weights may be packed",
                       t->entry->name, nb_dtype_name(t->entry->dtype));
    return 0;
}

/* Linear weights may be plain or packed: any dtype the loader accepted. */
static int bind_linear(const nb_model *model, nb_tensor *t, const char *fmt, int layer,
                       uint64_t rows, uint64_t cols, nb_err *e)
{
    return find(model, t, fmt, layer, rows, cols, e);
}

static int bind_layer(const nb_model *model, nb_llama_layer *L, int l, const struct nb_meta *c,
                      nb_err *e)
{
    uint64_t d = c->dim, q = (uint64_t)c->n_heads * c->head_dim;
    uint64_t kv = (uint64_t)c->n_kv_heads * c->head_dim, f = c->ffn_dim;
    return bind(model, &L->attn_norm, NB_T_ATTN_NORM, l, d, 0, e) ||
           bind_linear(model, &L->q, NB_T_Q, l, q, d, e) ||
           bind_linear(model, &L->k, NB_T_K, l, kv, d, e) ||
           bind_linear(model, &L->v, NB_T_V, l, kv, d, e) ||
           bind_linear(model, &L->o, NB_T_O, l, d, q, e) ||
           bind(model, &L->ffn_norm, NB_T_FFN_NORM, l, d, 0, e) ||
           bind_linear(model, &L->gate, NB_T_GATE, l, f, d, e) ||
           bind_linear(model, &L->up, NB_T_UP, l, f, d, e) ||
           bind_linear(model, &L->down, NB_T_DOWN, l, d, f, e);
}

static int bind_all(nb_llama *m, const nb_model *model, nb_err *e)
{
    const struct nb_meta *c = &m->cfg;
    m->layers = calloc(c->n_layers, sizeof *m->layers);
    if (!m->layers)
        return nb_fail(e, "out of memory");
    if (bind(model, &m->embed, NB_T_EMBED, 0, c->vocab_size, c->dim, e) ||
        bind(model, &m->out_norm, NB_T_OUT_NORM, 0, c->dim, 0, e))
        return -1;
    if (c->tied_embeddings)
        m->output = m->embed;
    else if (bind_linear(model, &m->output, NB_T_OUTPUT, 0, c->vocab_size, c->dim, e))
        return -1;
    for (uint32_t l = 0; l < c->n_layers; l++)
        if (bind_layer(model, &m->layers[l], (int)l, c, e))
            return -1;
    return 0;
}

static float *alloc_floats(size_t n, int *failed)
{
    float *p = calloc(n ? n : 1, sizeof *p);
    if (!p)
        *failed = 1;
    return p;
}

static int alloc_state(nb_llama *m, nb_err *e)
{
    const struct nb_meta *c = &m->cfg;
    size_t kv = (size_t)c->n_kv_heads * c->head_dim, q = (size_t)c->n_heads * c->head_dim;
    size_t cache = (size_t)c->n_layers * (size_t)m->ctx * kv;
    size_t wide = q > c->dim ? q : c->dim;
    int failed = 0;
    m->key_cache = alloc_floats(cache, &failed);
    m->value_cache = alloc_floats(cache, &failed);
    m->x = alloc_floats(c->dim, &failed);
    m->xb = alloc_floats(wide, &failed);
    m->xb2 = alloc_floats(c->dim, &failed);
    m->q = alloc_floats(q, &failed);
    m->hb = alloc_floats(c->ffn_dim, &failed);
    m->hb2 = alloc_floats(c->ffn_dim, &failed);
    m->att = alloc_floats((size_t)m->ctx, &failed);
    m->logits = alloc_floats(c->vocab_size, &failed);
    if (failed)
        return nb_fail(e, "out of memory for a %d-token context (KV cache %.1f MB)", m->ctx,
                       2.0 * (double)cache * 4 / 1e6);
    return 0;
}

/* What both paths need: the shape checked, the tensors bound, the RoPE
 * frequencies. On failure m holds nothing to free. */
int nb_llama_bind(nb_llama *m, const nb_model *model, int ctx, nb_err *e)
{
    memset(m, 0, sizeof *m);
    m->cfg = model->meta;
    if (ctx < 0 || (uint32_t)ctx > m->cfg.max_ctx)
        return nb_fail(e, "context %d is outside 1..%u, the model's maximum", ctx,
                       m->cfg.max_ctx);
    m->ctx = ctx ? ctx : (int)m->cfg.max_ctx;
    if (m->cfg.arch != NB_ARCH_LLAMA)
        return nb_fail(e, "model architecture %u is not LLaMA", m->cfg.arch);
    int failed = 0;
    m->inv_freq = alloc_floats(m->cfg.head_dim / 2, &failed);
    if (failed || bind_all(m, model, e)) {
        if (failed)
            nb_fail(e, "out of memory");
        nb_llama_free(m);
        return -1;
    }
    for (uint32_t i = 0; i < m->cfg.head_dim / 2; i++)
        m->inv_freq[i] = (float)pow(m->cfg.rope_theta, -2.0 * i / m->cfg.head_dim);
    return 0;
}

int nb_llama_init(nb_llama *m, const nb_model *model, int ctx, nb_err *e)
{
    if (nb_llama_bind(m, model, ctx, e))
        return -1;
    if (alloc_state(m, e)) {
        nb_llama_free(m);
        return -1;
    }
    return 0;
}

void nb_llama_free(nb_llama *m)
{
    float *bufs[] = {m->key_cache, m->value_cache, m->x, m->xb, m->xb2, m->q,
                     m->hb, m->hb2, m->att, m->logits, m->inv_freq};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        free(bufs[i]);
    free(m->layers);
    nb_fast_free(m->fast);
    memset(m, 0, sizeof *m);
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

static void norm(float *out, const float *x, const nb_tensor *g, float eps)
{
    nb_rmsnorm_ref(out, x, g->data, (int)g->entry->dtype, g->entry->shape[0], eps);
}

void nb_llama_rope_angle(const nb_llama *m, int pos, int i, float *c, float *s)
{
    double angle = (double)pos * m->inv_freq[i];
    *c = (float)cos(angle);
    *s = (float)sin(angle);
}

/* Rotates each head's pairs by pos * inv_freq[i]; llama2.c pairs are
 * (2i, 2i+1), Hugging Face's (i, i + hd/2) over permuted rows: the same
 * rotation, so both forms of one model give the same logits. */
static void rope(const nb_llama *m, float *v, int n_heads, int pos)
{
    int hd = (int)m->cfg.head_dim, half = hd / 2, halves = m->cfg.rope_pairs == NB_ROPE_HALVES;
    for (int i = 0; i < half; i++) {
        float c, s;
        nb_llama_rope_angle(m, pos, i, &c, &s);
        for (int h = 0; h < n_heads; h++)
            nb_rope_pair(v + h * hd, halves ? i : 2 * i, halves ? i + half : 2 * i + 1, c, s);
    }
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
static void attend_head(nb_llama *m, int l, int h, int pos, float *out)
{
    const struct nb_meta *c = &m->cfg;
    size_t hd = c->head_dim, kv_dim = (size_t)c->n_kv_heads * hd;
    size_t kvh = (size_t)h / (c->n_heads / c->n_kv_heads); /* GQA: shared kv head */
    const float *q = m->q + (size_t)h * hd;
    const float *keys = m->key_cache + (size_t)l * m->ctx * kv_dim + kvh * hd;
    const float *vals = m->value_cache + (size_t)l * m->ctx * kv_dim + kvh * hd;
    float scale = 1.0f / sqrtf((float)hd);
    for (int t = 0; t <= pos; t++) {
        float dot = 0.0f;
        for (size_t i = 0; i < hd; i++)
            dot += q[i] * keys[(size_t)t * kv_dim + i];
        m->att[t] = dot * scale;
    }
    softmax(m->att, pos + 1);
    memset(out, 0, hd * sizeof *out);
    for (int t = 0; t <= pos; t++)
        for (size_t i = 0; i < hd; i++)
            out[i] += m->att[t] * vals[(size_t)t * kv_dim + i];
}

static void attention(nb_llama *m, int l, int pos)
{
    const struct nb_meta *c = &m->cfg;
    const nb_llama_layer *L = &m->layers[l];
    size_t kv_dim = (size_t)c->n_kv_heads * c->head_dim;
    float *k = m->key_cache + ((size_t)l * m->ctx + (size_t)pos) * kv_dim;
    float *v = m->value_cache + ((size_t)l * m->ctx + (size_t)pos) * kv_dim;
    norm(m->xb, m->x, &L->attn_norm, c->norm_eps);
    linear(m->q, &L->q, m->xb);
    linear(k, &L->k, m->xb);
    linear(v, &L->v, m->xb);
    rope(m, m->q, (int)c->n_heads, pos);
    rope(m, k, (int)c->n_kv_heads, pos);
    for (uint32_t h = 0; h < c->n_heads; h++)
        attend_head(m, l, (int)h, pos, m->xb + (size_t)h * c->head_dim);
    linear(m->xb2, &L->o, m->xb);
    for (uint32_t i = 0; i < c->dim; i++)
        m->x[i] += m->xb2[i];
}

static void mlp(nb_llama *m, int l)
{
    const struct nb_meta *c = &m->cfg;
    const nb_llama_layer *L = &m->layers[l];
    norm(m->xb, m->x, &L->ffn_norm, c->norm_eps);
    linear(m->hb, &L->gate, m->xb);
    linear(m->hb2, &L->up, m->xb);
    for (uint32_t i = 0; i < c->ffn_dim; i++)
        m->hb[i] = nb_silu_mul(m->hb[i], m->hb2[i]);
    linear(m->xb2, &L->down, m->hb);
    for (uint32_t i = 0; i < c->dim; i++)
        m->x[i] += m->xb2[i];
}

int nb_logits_check(const float *logits, size_t n, int pos, nb_err *e)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(logits[i]))
            return nb_fail(e, "the model produced non-finite values at position %d (NaN or Inf "
                              "in its weights?): nibble info --verify names the tensor",
                           pos);
    return 0;
}

float *nb_llama_forward(nb_llama *m, int token, int pos)
{
    if (m->fast)
        return nb_fast_forward(m, token, pos);
    const struct nb_meta *c = &m->cfg;
    nb_row_ref(m->x, m->embed.data, (int)m->embed.entry->dtype, (size_t)token, c->dim);
    for (uint32_t l = 0; l < c->n_layers; l++) {
        attention(m, (int)l, pos);
        mlp(m, (int)l);
    }
    norm(m->x, m->x, &m->out_norm, c->norm_eps);
    linear(m->logits, &m->output, m->x);
    return m->logits;
}
