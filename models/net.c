/* Binding a model file to the decoder (every tensor checked by name,
 * shape and dtype, the optional blocks its architecture has), and the
 * API in front of the two forward passes. */
#define _POSIX_C_SOURCE 200809L
#include "net.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net_impl.h"

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

/* Biases are added in fp32 by both passes: importers write them so. */
static int bind_bias(const nb_model *model, nb_tensor *t, const char *fmt, int layer,
                     uint64_t rows, nb_err *e)
{
    if (find(model, t, fmt, layer, rows, 0, e))
        return -1;
    if (t->entry->dtype != NB_F32)
        return nb_fail(e, "tensor '%s' has dtype %s; biases are f32", t->entry->name,
                       nb_dtype_name(t->entry->dtype));
    return 0;
}

/* Linear weights may be plain or packed: any dtype the loader accepted. */
static int bind_linear(const nb_model *model, nb_tensor *t, const char *fmt, int layer,
                       uint64_t rows, uint64_t cols, nb_err *e)
{
    return find(model, t, fmt, layer, rows, cols, e);
}

static int bind_optional(const nb_model *model, nb_net_layer *L, int l, const nb_net *m,
                         nb_err *e)
{
    const struct nb_meta *c = &m->cfg;
    uint64_t q = (uint64_t)c->n_heads * c->head_dim, kv = (uint64_t)c->n_kv_heads * c->head_dim;
    unsigned has = m->hp.arch->has;
    if ((has & NB_HAS_QKV_BIAS) &&
        (bind_bias(model, &L->q_bias, NB_T_Q_BIAS, l, q, e) ||
         bind_bias(model, &L->k_bias, NB_T_K_BIAS, l, kv, e) ||
         bind_bias(model, &L->v_bias, NB_T_V_BIAS, l, kv, e)))
        return -1;
    if ((has & NB_HAS_QK_NORM) && (bind(model, &L->q_norm, NB_T_Q_NORM, l, c->head_dim, 0, e) ||
                                   bind(model, &L->k_norm, NB_T_K_NORM, l, c->head_dim, 0, e)))
        return -1;
    return 0;
}

static int bind_layer(const nb_model *model, nb_net_layer *L, int l, const nb_net *m, nb_err *e)
{
    const struct nb_meta *c = &m->cfg;
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
           bind_linear(model, &L->down, NB_T_DOWN, l, d, f, e) ||
           bind_optional(model, L, l, m, e);
}

static int bind_all(nb_net *m, const nb_model *model, nb_err *e)
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
        if (bind_layer(model, &m->layers[l], (int)l, m, e))
            return -1;
    return 0;
}

/* What both passes need: the shape checked, the tensors bound, the RoPE
 * frequencies. On failure m holds nothing to free. */
static int bind_net(nb_net *m, const nb_model *model, int ctx, nb_err *e)
{
    memset(m, 0, sizeof *m);
    m->cfg = model->meta;
    if (ctx < 0 || (uint32_t)ctx > m->cfg.max_ctx)
        return nb_fail(e, "context %d is outside 1..%u, the model's maximum", ctx,
                       m->cfg.max_ctx);
    m->ctx = ctx ? ctx : (int)m->cfg.max_ctx;
    if (nb_hparams_read(model, &m->hp, e))
        return -1;
    m->inv_freq = calloc(m->cfg.head_dim / 2, sizeof *m->inv_freq);
    if (!m->inv_freq || bind_all(m, model, e)) {
        if (!m->inv_freq)
            nb_fail(e, "out of memory");
        nb_net_free(m);
        return -1;
    }
    nb_rope_freqs(&m->hp.rope, m->cfg.rope_theta, (int)m->cfg.head_dim, m->inv_freq);
    return 0;
}

int nb_net_init(nb_net *m, const nb_model *model, int ctx, nb_err *e)
{
    if (bind_net(m, model, ctx, e))
        return -1;
    if (nb_ref_init(m, e)) {
        nb_net_free(m);
        return -1;
    }
    return 0;
}

int nb_net_init_fast(nb_net *m, const nb_model *model, int ctx, const nb_run_opts *o,
                     nb_err *e)
{
    static const nb_run_opts defaults = {0};
    if (bind_net(m, model, ctx, e))
        return -1;
    if (nb_fast_init(m, o ? o : &defaults, e)) {
        nb_net_free(m);
        return -1;
    }
    return 0;
}

void nb_net_free(nb_net *m)
{
    free(m->inv_freq);
    free(m->layers);
    nb_ref_free(m->ref);
    nb_fast_free(m->fast);
    memset(m, 0, sizeof *m);
}

void nb_net_rope_angle(const nb_net *m, int pos, int i, float *c, float *s)
{
    double angle = (double)pos * m->inv_freq[i];
    *c = (float)cos(angle);
    *s = (float)sin(angle);
}

float *nb_net_forward(nb_net *m, int token, int pos)
{
    return m->fast ? nb_fast_prefill(m, 0, &token, 1, pos) : nb_ref_forward(m, token, pos);
}

float *nb_net_prefill_seq(nb_net *m, int seq, const int32_t *tokens, int n, int pos)
{
    if (m->fast)
        return nb_fast_prefill(m, seq, tokens, n, pos);
    for (int i = 0; i + 1 < n; i++)
        nb_ref_forward(m, tokens[i], pos + i);
    return nb_ref_forward(m, tokens[n - 1], pos + n - 1);
}

float *nb_net_prefill(nb_net *m, const int32_t *tokens, int n, int pos)
{
    return nb_net_prefill_seq(m, 0, tokens, n, pos);
}

int nb_net_sequences(const nb_net *m)
{
    return m->fast ? nb_fast_sequences(m) : 1;
}

static int check_batch(const nb_net *m, const nb_batch *b, nb_err *e)
{
    for (int i = 0; i < b->n; i++) {
        if (b->token[i] < 0 || (uint32_t)b->token[i] >= m->cfg.vocab_size)
            return nb_fail(e, "token %d is outside the vocabulary of %u", b->token[i],
                           m->cfg.vocab_size);
        if (b->seq[i] < 0 || b->seq[i] >= nb_net_sequences(m))
            return nb_fail(e, "sequence %d is outside 0..%d", b->seq[i], nb_net_sequences(m) - 1);
        if (b->pos[i] < 0 || b->pos[i] >= m->ctx)
            return nb_fail(e, "position %d is outside the context of %d", b->pos[i], m->ctx);
    }
    return 0;
}

int nb_net_batch(nb_net *m, const nb_batch *b, float *out, nb_err *e)
{
    if (b->n < 0 || check_batch(m, b, e))
        return b->n < 0 ? nb_fail(e, "a batch of %d tokens", b->n) : -1;
    if (m->fast)
        return nb_fast_batch(m, b, out);
    size_t vocab = m->cfg.vocab_size, k = 0;
    for (int i = 0; i < b->n; i++) {
        const float *l = nb_ref_forward(m, b->token[i], b->pos[i]);
        if (!b->logits || b->logits[i])
            memcpy(out + k++ * vocab, l, vocab * sizeof *out);
    }
    return 0;
}

int nb_net_prefill_each(nb_net *m, const int32_t *tokens, int n, int pos,
                        void (*fn)(void *ctx, int i, const float *logits), void *ctx, nb_err *e)
{
    if (m->fast)
        return nb_fast_prefill_each(m, tokens, n, pos, fn, ctx, e);
    for (int i = 0; i < n; i++)
        fn(ctx, i, nb_ref_forward(m, tokens[i], pos + i));
    return 0;
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

void nb_net_memory(const nb_net *m, size_t *kv_bytes, size_t *other_bytes)
{
    const struct nb_meta *c = &m->cfg;
    if (m->fast)
        nb_fast_memory(m, kv_bytes, other_bytes);
    else
        nb_ref_memory(m, kv_bytes, other_bytes);
    *other_bytes += (c->head_dim / 2) * sizeof(float) + c->n_layers * sizeof *m->layers;
}

const char *nb_net_kernels(const nb_net *m)
{
    return m->fast ? nb_fast_kernels(m) : "reference";
}

int nb_net_threads(const nb_net *m)
{
    return m->fast ? nb_fast_threads(m) : 1;
}
