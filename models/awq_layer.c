/* AWQ for the decoder families: see awq_layer.h. The batched forward
 * mirrors ref.c (RMSNorm; q, k, v plus their biases (Qwen2); per-head q/k
 * norms (Qwen3); RoPE from nb_rope_freqs in the model's pair convention;
 * causal attention with shared KV heads; SwiGLU) over blocks of
 * independent sequences, each starting at position 0. Every product
 * accumulates in fp32 in a fixed order, so results do not depend on the
 * thread count. */
#define _POSIX_C_SOURCE 200809L
#include "awq_layer.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../neon/gemv.h"
#include "net.h"

/* ---- products -------------------------------------------------------- */

enum { MM_ROWS = 16, MM_DEPTH = 256 };

/* The hot loops are plain C that compilers vectorize. On x86-64 they are
 * also built for AVX2 and picked at load time (a third less time in the
 * search): the same operations in the same order and no FMA, so the same
 * bits as the SSE2 build. Not under the sanitizers, whose instrumented
 * ifunc resolvers would run before their runtime is up. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define NB_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define NB_SANITIZED 1
#endif
#if defined(__x86_64__) && defined(__ELF__) && !defined(NB_SANITIZED) && \
    ((defined(__clang__) && __clang_major__ >= 14) || (!defined(__clang__) && __GNUC__ >= 8))
#define NB_HOT __attribute__((target_clones("avx2", "default")))
#else
#define NB_HOT
#endif
/* Helpers of the hot loops: inlined, so the AVX2 clones build them too. */
#if defined(__GNUC__)
#define NB_INLINE static inline __attribute__((always_inline))
#else
#define NB_INLINE static inline
#endif

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

/* Copies rows [nr, kc] of w into wt [kc][MM_ROWS] (missing rows zero), so
 * the inner loops below run over contiguous weights of 16 outputs. */
NB_INLINE void pack_tile(float *wt, const float *w, size_t ldw, size_t nr, size_t kc)
{
    for (size_t c = 0; c < kc; c++)
        for (size_t j = 0; j < MM_ROWS; j++)
            wt[c * MM_ROWS + j] = j < nr ? w[j * ldw + c] : 0.0f;
}

/* Loads the accumulators of one output row: zeros for a fresh sum. */
NB_INLINE void acc_load(float *restrict a, const float *restrict y, size_t nr, int first)
{
    if (!first && nr == MM_ROWS) {
        for (size_t j = 0; j < MM_ROWS; j++)
            a[j] = y[j];
        return;
    }
    for (size_t j = 0; j < MM_ROWS; j++)
        a[j] = 0.0f;
    for (size_t j = 0; !first && j < nr; j++)
        a[j] = y[j];
}

NB_INLINE void acc_store(float *restrict y, const float *restrict a, size_t nr)
{
    if (nr == MM_ROWS)
        for (size_t j = 0; j < MM_ROWS; j++)
            y[j] = a[j];
    else
        for (size_t j = 0; j < nr; j++)
            y[j] = a[j];
}

/* Four tokens against one packed tile; accumulates onto y unless first.
 * Plain loops over the 16 outputs, which compilers vectorize without
 * reordering any sum. */
NB_INLINE void tile4(float *restrict y, size_t ldy, const float *restrict x, size_t ldx,
                     const float *restrict wt, size_t kc, size_t nr, int first)
{
    float a0[MM_ROWS], a1[MM_ROWS], a2[MM_ROWS], a3[MM_ROWS];
    acc_load(a0, y, nr, first);
    acc_load(a1, y + ldy, nr, first);
    acc_load(a2, y + 2 * ldy, nr, first);
    acc_load(a3, y + 3 * ldy, nr, first);
    for (size_t c = 0; c < kc; c++) {
        const float *wc = wt + c * MM_ROWS;
        float x0 = x[c], x1 = x[ldx + c], x2 = x[2 * ldx + c], x3 = x[3 * ldx + c];
        for (size_t j = 0; j < MM_ROWS; j++) {
            a0[j] += x0 * wc[j];
            a1[j] += x1 * wc[j];
            a2[j] += x2 * wc[j];
            a3[j] += x3 * wc[j];
        }
    }
    acc_store(y, a0, nr);
    acc_store(y + ldy, a1, nr);
    acc_store(y + 2 * ldy, a2, nr);
    acc_store(y + 3 * ldy, a3, nr);
}

NB_INLINE void tile1(float *restrict y, const float *restrict x, const float *restrict wt,
                     size_t kc, size_t nr, int first)
{
    float a[MM_ROWS];
    acc_load(a, y, nr, first);
    for (size_t c = 0; c < kc; c++)
        for (size_t j = 0; j < MM_ROWS; j++)
            a[j] += x[c] * wt[c * MM_ROWS + j];
    acc_store(y, a, nr);
}

NB_HOT static void matmul(float *y, size_t ldy, const float *x, size_t ldx, size_t n,
                          const float *w, size_t ldw, size_t rows, size_t k)
{
    float wt[MM_DEPTH * MM_ROWS];
    for (size_t t = 0; t < n && !k; t++)
        memset(y + t * ldy, 0, rows * sizeof *y);
    for (size_t r0 = 0; r0 < rows; r0 += MM_ROWS) {
        size_t nr = min_size(rows - r0, MM_ROWS);
        for (size_t c0 = 0; c0 < k; c0 += MM_DEPTH) {
            size_t kc = min_size(k - c0, MM_DEPTH), t = 0;
            pack_tile(wt, w + r0 * ldw + c0, ldw, nr, kc);
            for (; t + 4 <= n; t += 4)
                tile4(y + t * ldy + r0, ldy, x + t * ldx + c0, ldx, wt, kc, nr, c0 == 0);
            for (; t < n; t++)
                tile1(y + t * ldy + r0, x + t * ldx + c0, wt, kc, nr, c0 == 0);
        }
    }
}

/* A plain function over the static clones (clang 14 resolves only those). */
void nb_awq_matmul(float *y, size_t ldy, const float *x, size_t ldx, size_t n, const float *w,
                   size_t ldw, size_t rows, size_t k)
{
    matmul(y, ldy, x, ldx, n, w, ldw, rows, k);
}

/* e^x within 3 ulp for x in [-87, 88] (clamped there: outside, e^-87 is
 * nothing next to the terms it is added to, and e^88 is out of any range
 * we use). The search calls it billions of times in its softmaxes, so it
 * is written for vectorization: the clamps compare bit patterns as
 * integers (positive floats order like their bits, negative ones by
 * magnitude when read unsigned), because GCC does not vectorize float
 * comparisons under -ftrapping-math. */
NB_INLINE float exp_approx(float x)
{
    int32_t i;
    memcpy(&i, &x, 4);
    i = i < 0x42b00000 ? i : 0x42b00000; /* x <= 88 */
    uint32_t u = (uint32_t)i;
    u = u < 0xc2ae0000u ? u : 0xc2ae0000u; /* x >= -87 */
    memcpy(&x, &u, 4);
    float n = (x * 1.44269504f + 12582912.0f) - 12582912.0f; /* rint(x / ln 2) */
    float r = x - n * 0.693145751953125f - n * 1.42860677e-6f;
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 +
              r * (1.0f / 120 + r * (1.0f / 720))))));
    uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;
    float two_n;
    memcpy(&two_n, &bits, 4);
    return p * two_n;
}

/* A sum in 8 fixed lanes, combined in a fixed order: vectorizable, and
 * the same on every run. */
NB_INLINE float sum_lanes(const float *a, size_t n)
{
    float s[8] = {0};
    size_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int k = 0; k < 8; k++)
            s[k] += a[j + k];
    for (; j < n; j++)
        s[j % 8] += a[j];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

/* ---- the layer view shared with the search ---------------------------- */

/* Why folding leaves the function alone, up to rounding (docs/awq.md).
 * The scaled linears see the previous op's output divided by s, their
 * columns multiplied by s: W diag(s) (h / s) = W h, so their products are
 * unchanged, and all that follows the product (their biases, Qwen3's q/k
 * norms, RoPE, the attention, SwiGLU) sees the same values and is left
 * alone. A norm as previous op divides its weight: (g / s) norm(x) =
 * (g norm(x)) / s. A linear as previous op (v -> o, up -> down) must
 * divide its whole output W x + b, channel by channel: its weight rows
 * and its bias entries both (an undivided bias would reach o's input as
 * b, not b / s). What lies between it and the scaled linear acts on each
 * channel alone and linearly: the attention sums v over positions with
 * weights made from q and k, which scaling v leaves alone; SwiGLU
 * multiplies up's channel by silu(gate) of the same channel. */
void nb_awq_fold(nb_awq_layer *L, int g, const float *s)
{
    const nb_awq_group *G = &L->group[g];
    const nb_awq_linear *first = &L->lin[G->scaled[0]];
    size_t n = first->cols;
    if (G->prev_norm >= 0)
        for (size_t c = 0; c < n; c++)
            L->norm[G->prev_norm].w[c] /= s[c];
    if (G->prev_linear >= 0) { /* its last n output rows feed the scaled inputs */
        nb_awq_linear *p = &L->lin[G->prev_linear];
        size_t r0 = p->rows - n;
        for (size_t r = 0; r < n; r++) {
            for (size_t c = 0; c < p->cols; c++)
                p->w[(r0 + r) * p->cols + c] /= s[r];
            if (p->b)
                p->b[r0 + r] /= s[r];
        }
    }
    for (int i = 0; i < G->n_scaled; i++) {
        nb_awq_linear *l = &L->lin[G->scaled[i]];
        for (size_t r = 0; r < l->rows; r++)
            for (size_t c = 0; c < n; c++)
                l->w[r * n + c] *= s[c];
    }
    for (size_t t = 0; first->x && t < L->n_tokens; t++)
        for (size_t c = 0; c < n; c++)
            first->x[t * n + c] /= s[c];
}

/* ---- the decoder families ---------------------------------------------- */

enum { LQ, LK, LV, LO, LGATE, LUP, LDOWN, N_LINEARS };
enum { N_ATTN, N_FFN };

static const struct {
    const char *fmt, *label;
    int clip;
    const char *bias; /* its bias under NB_HAS_QKV_BIAS, else NULL */
} linears[N_LINEARS] = {
    [LQ] = {NB_T_Q, "q", 0, NB_T_Q_BIAS},  [LK] = {NB_T_K, "k", 0, NB_T_K_BIAS},
    [LV] = {NB_T_V, "v", 1, NB_T_V_BIAS},  [LO] = {NB_T_O, "o", 1, NULL},
    [LGATE] = {NB_T_GATE, "gate", 1, NULL}, [LUP] = {NB_T_UP, "up", 1, NULL},
    [LDOWN] = {NB_T_DOWN, "down", 1, NULL},
};

static size_t q_dim(const struct nb_meta *c)
{
    return (size_t)c->n_heads * c->head_dim;
}

static size_t kv_dim(const struct nb_meta *c)
{
    return (size_t)c->n_kv_heads * c->head_dim;
}

static void shape_of(const struct nb_meta *c, int i, size_t *rows, size_t *cols)
{
    size_t d = c->dim, f = c->ffn_dim;
    size_t r[N_LINEARS] = {q_dim(c), kv_dim(c), kv_dim(c), d, f, f, d};
    size_t k[N_LINEARS] = {d, d, d, q_dim(c), d, d, f};
    *rows = r[i];
    *cols = k[i];
}

/* n * m floats (NULL for none); sets *failed when they cannot be had. */
static float *alloc_floats(size_t n, size_t m, int *failed)
{
    if (!n || !m)
        return NULL;
    float *p = n <= SIZE_MAX / sizeof *p / m ? malloc(n * m * sizeof *p) : NULL;
    if (!p)
        *failed = 1;
    return p;
}

/* The cos/sin of every position of a block, computed as net.c does from
 * the frequencies of nb_rope_freqs (the one place RoPE scaling lives), so
 * the angles are the reference pass's to the bit. inv_freq [head_dim / 2]
 * is scratch. */
static void rope_tables(nb_layer_awq *a, float *inv_freq)
{
    const struct nb_meta *c = &a->cfg;
    size_t half = c->head_dim / 2;
    nb_rope_freqs(&a->hp.rope, c->rope_theta, (int)c->head_dim, inv_freq);
    for (size_t i = 0; i < half; i++)
        for (size_t pos = 0; pos < a->layer.block; pos++) {
            double angle = (double)pos * inv_freq[i];
            a->rope_cos[pos * half + i] = (float)cos(angle);
            a->rope_sin[pos * half + i] = (float)sin(angle);
        }
}

static void describe_groups(nb_layer_awq *a)
{
    nb_awq_layer *L = &a->layer;
    size_t d = a->cfg.dim;
    int same_vo = L->lin[LV].rows == L->lin[LO].rows && L->lin[LV].cols == L->lin[LO].cols;
    L->n_groups = 4;
    L->group[0] = (nb_awq_group){.label = "attn_norm -> q,k,v", .prev_norm = N_ATTN,
                                 .prev_linear = -1, .scaled = {LQ, LK, LV}, .n_scaled = 3,
                                 .module = NB_AWQ_ATTN, .out_cols = d};
    /* Only when v's outputs line up one to one with o's inputs, by the
     * reference's shape rule (spec §4): with grouped KV heads, or (Qwen3)
     * heads x head_dim != dim, the shapes differ. */
    L->group[1] = (nb_awq_group){.label = "v -> o", .prev_norm = -1, .prev_linear = LV,
                                 .scaled = {LO}, .n_scaled = 1, .module = NB_AWQ_O,
                                 .out_cols = d,
                                 .skip = same_vo ? NULL
                                                 : "v and o differ in shape (GQA or head_dim)"};
    L->group[2] = (nb_awq_group){.label = "ffn_norm -> gate,up", .prev_norm = N_FFN,
                                 .prev_linear = -1, .scaled = {LGATE, LUP}, .n_scaled = 2,
                                 .module = NB_AWQ_MLP, .out_cols = d};
    L->group[3] = (nb_awq_group){.label = "up -> down", .prev_norm = -1, .prev_linear = LUP,
                                 .scaled = {LDOWN}, .n_scaled = 1, .module = NB_AWQ_DOWN,
                                 .out_cols = d};
}

static int layer_module(const nb_awq_layer *L, int g, const float *const *w, size_t t0, size_t n,
                        float *y);

/* The linears, their biases (NB_HAS_QKV_BIAS: q, k, v) and their inputs. */
static void alloc_linears(nb_layer_awq *a, int *failed)
{
    float *inputs[N_LINEARS] = {a->in_attn, a->in_attn, a->in_attn, a->in_o,
                                a->in_mlp,  a->in_mlp,  a->in_down};
    int biases = (a->hp.arch->has & NB_HAS_QKV_BIAS) != 0;
    for (int i = 0; i < N_LINEARS; i++) {
        nb_awq_linear *l = &a->layer.lin[i];
        shape_of(&a->cfg, i, &l->rows, &l->cols);
        l->w = alloc_floats(l->rows, l->cols, failed);
        l->b = biases && linears[i].bias ? alloc_floats(l->rows, 1, failed) : NULL;
        l->x = inputs[i];
        l->label = linears[i].label;
        l->clip = linears[i].clip;
    }
    a->layer.n_lin = N_LINEARS;
}

/* Everything but the linears: captured inputs, norms, RoPE tables. */
static void alloc_rest(nb_layer_awq *a, size_t n_tokens, size_t block, int *failed)
{
    const struct nb_meta *c = &a->cfg;
    size_t d = c->dim, half = c->head_dim / 2, qk_norm = (a->hp.arch->has & NB_HAS_QK_NORM) != 0;
    a->in_attn = alloc_floats(n_tokens, d, failed);
    a->in_o = alloc_floats(n_tokens, q_dim(c), failed);
    a->in_mlp = alloc_floats(n_tokens, d, failed);
    a->in_down = alloc_floats(n_tokens, c->ffn_dim, failed);
    a->layer.n_norms = 2;
    for (int i = 0; i < 2; i++) {
        a->layer.norm[i].n = d;
        a->layer.norm[i].w = alloc_floats(d, 1, failed);
    }
    a->q_norm = alloc_floats(qk_norm, c->head_dim, failed);
    a->k_norm = alloc_floats(qk_norm, c->head_dim, failed);
    a->rope_cos = alloc_floats(n_tokens ? block : 0, half, failed);
    a->rope_sin = alloc_floats(n_tokens ? block : 0, half, failed);
}

int nb_layer_awq_init(nb_layer_awq *a, const nb_model *m, size_t n_tokens, size_t block,
                      nb_err *e)
{
    const struct nb_meta *cfg = &m->meta;
    memset(a, 0, sizeof *a);
    if (n_tokens && (!block || n_tokens % block || block > cfg->max_ctx))
        return nb_fail(e, "%zu calibration tokens do not make blocks of %zu within the model's "
                          "context of %u", n_tokens, block, cfg->max_ctx);
    if (nb_hparams_read(m, &a->hp, e))
        return -1;
    a->cfg = *cfg;
    a->layer.n_tokens = n_tokens;
    a->layer.block = block;
    a->layer.module = layer_module;
    int failed = 0;
    alloc_rest(a, n_tokens, block, &failed);
    alloc_linears(a, &failed);
    float *inv_freq = alloc_floats(cfg->head_dim / 2, 1, &failed);
    if (failed) {
        free(inv_freq);
        nb_layer_awq_free(a);
        return nb_fail(e, "out of memory for the calibration activations (%zu tokens: %.0f MB)",
                       n_tokens, nb_layer_awq_bytes(cfg, n_tokens) / 1e6);
    }
    if (n_tokens)
        rope_tables(a, inv_freq);
    free(inv_freq);
    describe_groups(a);
    return 0;
}

double nb_layer_awq_bytes(const struct nb_meta *cfg, size_t n_tokens)
{
    double d = cfg->dim, f = cfg->ffn_dim, qd = (double)q_dim(cfg), kd = (double)kv_dim(cfg);
    double per_token = 3 * d + qd + f /* captured */ + 2 * d /* layer input, outputs */;
    double layer = d * (qd + 2 * kd) + qd * d + 3 * d * f;
    return 4.0 * ((double)n_tokens * per_token + 2 * layer);
}

void nb_layer_awq_free(nb_layer_awq *a)
{
    for (int i = 0; i < N_LINEARS; i++) {
        free(a->layer.lin[i].w);
        free(a->layer.lin[i].b);
    }
    for (int i = 0; i < 2; i++)
        free(a->layer.norm[i].w);
    float *bufs[] = {a->in_attn, a->in_o,     a->in_mlp, a->in_down,
                     a->rope_cos, a->rope_sin, a->q_norm, a->k_norm};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        free(bufs[i]);
    memset(a, 0, sizeof *a);
}

/* The search reads weights as fp32: packed (already quantized) ones are
 * refused before anything is computed from them. */
static int check_plain(const nb_tensor *t, nb_err *e)
{
    if (nb_dtype_width(t->entry->dtype))
        return 0;
    return nb_fail(e, "tensor '%s' is %s, not a plain float type", t->entry->name,
                   nb_dtype_name(t->entry->dtype));
}

int nb_layer_awq_embed(const nb_model *m, const int32_t *ids, size_t n, float *x, nb_err *e)
{
    nb_tensor t;
    uint64_t shape[2] = {m->meta.vocab_size, m->meta.dim};
    if (nb_model_expect(m, NB_T_EMBED, 2, shape, &t, e) || check_plain(&t, e))
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || (uint32_t)ids[i] >= m->meta.vocab_size)
            return nb_fail(e, "token id %d is outside the vocabulary", ids[i]);
        nb_row_ref(x + i * m->meta.dim, t.data, (int)t.entry->dtype, (size_t)ids[i], m->meta.dim);
    }
    return 0;
}

/* Copies one tensor, of the given shape (cols 0: a vector), into fp32. */
static int load_tensor(const nb_model *m, char *name, const char *fmt, int l, size_t rows,
                       size_t cols, float *out, nb_err *e)
{
    nb_tensor t;
    uint64_t shape[2] = {rows, cols};
    snprintf(name, NB_NAME_LEN, fmt, l);
    if (nb_model_expect(m, name, cols ? 2 : 1, shape, &t, e) || check_plain(&t, e))
        return -1;
    nb_row_ref(out, t.data, (int)t.entry->dtype, 0, rows * (cols ? cols : 1));
    return 0;
}

int nb_layer_awq_load(nb_layer_awq *a, const nb_model *m, int l, nb_err *e)
{
    nb_awq_layer *L = &a->layer;
    const char *norms[2] = {NB_T_ATTN_NORM, NB_T_FFN_NORM};
    for (int i = 0; i < 2; i++)
        if (load_tensor(m, L->norm[i].name, norms[i], l, L->norm[i].n, 0, L->norm[i].w, e))
            return -1;
    for (int i = 0; i < N_LINEARS; i++) {
        nb_awq_linear *x = &L->lin[i];
        if (load_tensor(m, x->name, linears[i].fmt, l, x->rows, x->cols, x->w, e) ||
            (x->b && load_tensor(m, x->bias_name, linears[i].bias, l, x->rows, 0, x->b, e)))
            return -1;
    }
    char name[NB_NAME_LEN];
    size_t hd = a->cfg.head_dim;
    if (a->q_norm && (load_tensor(m, name, NB_T_Q_NORM, l, hd, 0, a->q_norm, e) ||
                      load_tensor(m, name, NB_T_K_NORM, l, hd, 0, a->k_norm, e)))
        return -1;
    return 0;
}

/* ---- the batched forward ------------------------------------------------ */

static void rope_row(const nb_layer_awq *a, float *v, size_t n_heads, size_t pos)
{
    size_t hd = a->cfg.head_dim, half = hd / 2;
    int halves = a->cfg.rope_pairs == NB_ROPE_HALVES;
    const float *cs = a->rope_cos + pos * half, *sn = a->rope_sin + pos * half;
    for (size_t h = 0; h < n_heads; h++) {
        float *p = v + h * hd;
        for (size_t i = 0; i < half; i++) {
            size_t u = halves ? i : 2 * i, w = halves ? i + half : 2 * i + 1;
            float x0 = p[u], x1 = p[w];
            p[u] = x0 * cs[i] - x1 * sn[i];
            p[w] = x0 * sn[i] + x1 * cs[i];
        }
    }
}

enum { QUERY_TILE = 32 };

/* A float's bits as an integer that orders like the float (negative
 * values mirrored): integer max vectorizes where float compares do not.
 * The map is its own inverse. */
NB_INLINE int32_t ordered(int32_t i)
{
    return i ^ (int32_t)((uint32_t)(i >> 31) >> 1);
}

NB_INLINE float max_of(const float *p, size_t n)
{
    int32_t m = INT32_MIN;
    for (size_t j = 0; j < n; j++) {
        int32_t i;
        memcpy(&i, p + j, 4);
        i = ordered(i);
        m = i > m ? i : m;
    }
    float f;
    m = ordered(m);
    memcpy(&f, &m, 4);
    return f;
}

/* The causal softmax of one row of scores: the first n entries (keys up
 * to the query) exponentiated, the rest of the len zeroed. Returns the
 * sum of the exponentials. */
NB_HOT static float softmax_row(float *p, size_t n, size_t len)
{
    float max = max_of(p, n);
    for (size_t j = 0; j < n; j++)
        p[j] = exp_approx(p[j] - max);
    for (size_t j = n; j < len; j++)
        p[j] = 0.0f;
    return sum_lanes(p, n);
}

/* One query head over one block, QUERY_TILE queries at a time: scores
 * q k^T against the keys up to the tile's last query, a causal softmax per
 * row, then the weighted values, computed transposed (v^T p^T, head_dim
 * rows) so small heads still fill the product's tiles. k [block][ldk]
 * holds the head's KV head, vt [hd][block] its values transposed; s is
 * [QUERY_TILE][block], o [hd][QUERY_TILE]. */
static void attend_head(const float *q, size_t ldq, const float *k, size_t ldk, const float *vt,
                        size_t block, size_t hd, float *s, float *o, float *out, size_t ldo)
{
    float sum[QUERY_TILE];
    for (size_t i0 = 0; i0 < block; i0 += QUERY_TILE) {
        size_t nq = min_size(QUERY_TILE, block - i0), nk = i0 + nq;
        nb_awq_matmul(s, block, q + i0 * ldq, ldq, nq, k, ldk, nk, hd);
        for (size_t r = 0; r < nq; r++)
            sum[r] = softmax_row(s + r * block, i0 + r + 1, nk);
        nb_awq_matmul(o, QUERY_TILE, vt, block, hd, s, block, nq, nk);
        for (size_t r = 0; r < nq; r++)
            for (size_t d = 0; d < hd; d++)
                out[(i0 + r) * ldo + d] = o[d * QUERY_TILE + r] / sum[r];
    }
}

static void add_rows(float *x, const float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] += y[i];
}

/* y [n, l->rows] = x l^T plus l's bias, w standing for l's weight (NULL:
 * its own): a trial replaces the weight, never the bias. */
static void project(float *y, const float *x, size_t n, const nb_awq_linear *l, const float *w)
{
    nb_awq_matmul(y, l->rows, x, l->cols, n, w ? w : l->w, l->cols, l->rows, l->cols);
    for (size_t t = 0; l->b && t < n; t++)
        add_rows(y + t * l->rows, l->b, l->rows);
}

/* RMSNorm over each of the n_heads heads of v, in place (Qwen3). */
static void head_norm(const nb_layer_awq *a, float *v, size_t n_heads, const float *g)
{
    size_t hd = a->cfg.head_dim;
    for (size_t h = 0; h < n_heads; h++)
        nb_rmsnorm_ref(v + h * hd, v + h * hd, g, NB_W_F32, hd, a->cfg.norm_eps);
}

/* q and k of n tokens (whole blocks) between their projections and the
 * scores, in ref.c's order: the per-head norms, then RoPE at the position
 * in the block; then q times 1/sqrt(head_dim), once here rather than on
 * every score. */
static void prepare_qk(const nb_layer_awq *a, float *q, float *k, size_t n)
{
    const struct nb_meta *c = &a->cfg;
    size_t qd = q_dim(c), kvd = kv_dim(c), B = a->layer.block;
    float scale = 1.0f / sqrtf((float)c->head_dim);
    for (size_t t = 0; t < n; t++) {
        float *qt = q + t * qd, *kt = k + t * kvd;
        if (a->q_norm) {
            head_norm(a, qt, c->n_heads, a->q_norm);
            head_norm(a, kt, c->n_kv_heads, a->k_norm);
        }
        rope_row(a, qt, c->n_heads, t % B);
        rope_row(a, kt, c->n_kv_heads, t % B);
        for (size_t i = 0; i < qd; i++)
            qt[i] *= scale;
    }
}

struct scratch {
    float *q, *k, *v, *att, *vt, *s, *o;
};

/* Causal attention of every block in the chunk, heads sharing KV heads. */
static void attention_blocks(const nb_layer_awq *a, const struct scratch *s, size_t n)
{
    const struct nb_meta *c = &a->cfg;
    size_t hd = c->head_dim, qd = q_dim(c), kvd = kv_dim(c), B = a->layer.block;
    size_t group = c->n_heads / c->n_kv_heads;
    for (size_t b = 0; b < n; b += B)
        for (size_t g = 0; g < c->n_kv_heads; g++) {
            const float *k = s->k + b * kvd + g * hd;
            for (size_t j = 0; j < B; j++)
                for (size_t d = 0; d < hd; d++)
                    s->vt[d * B + j] = s->v[(b + j) * kvd + g * hd + d];
            for (size_t h = g * group; h < (g + 1) * group; h++)
                attend_head(s->q + b * qd + h * hd, qd, k, kvd, s->vt, B, hd, s->s, s->o,
                            s->att + b * qd + h * hd, qd);
        }
}

/* y [n, dim] = o(attention(q, k, v)) for x [n, dim]: q, k, v its
 * projections (biases included) and q, k through prepare_qk; w[0..3]
 * stand for the weights of q, k, v, o (NULL: the layer's own). The
 * attention output (o's input) goes to att when it is not NULL. */
static int attention(const nb_layer_awq *a, const float *const w[4], const float *x, size_t n,
                     float *att, float *y)
{
    const struct nb_meta *c = &a->cfg;
    const nb_awq_linear *lin = a->layer.lin;
    size_t qd = q_dim(c), kvd = kv_dim(c), B = a->layer.block, hd = c->head_dim;
    size_t tiles = (hd + QUERY_TILE) * B + hd * QUERY_TILE;
    float *buf = malloc((n * (qd + 2 * kvd + (att ? 0 : qd)) + tiles) * sizeof *buf);
    if (!buf)
        return -1;
    struct scratch s = {.q = buf};
    s.k = s.q + n * qd;
    s.v = s.k + n * kvd;
    s.vt = s.v + n * kvd;
    s.s = s.vt + hd * B;
    s.o = s.s + QUERY_TILE * B;
    s.att = att ? att : s.o + hd * QUERY_TILE;
    project(s.q, x, n, &lin[LQ], w[0]);
    project(s.k, x, n, &lin[LK], w[1]);
    project(s.v, x, n, &lin[LV], w[2]);
    prepare_qk(a, s.q, s.k, n);
    attention_blocks(a, &s, n);
    project(y, s.att, n, &lin[LO], w[3]);
    free(buf);
    return 0;
}

/* g <- silu(g) * u = g / (1 + e^-g) * u. */
NB_HOT static void silu_mul(float *restrict g, const float *restrict u, size_t n)
{
    for (size_t i = 0; i < n; i++)
        g[i] = g[i] / (1.0f + exp_approx(-g[i])) * u[i];
}

/* y [n, dim] = down(silu(gate x) * up x), w[0..2] standing for the
 * weights of gate, up, down (NULL: the layer's own); the product (down's
 * input) goes to h when it is not NULL. */
static int mlp(const nb_layer_awq *a, const float *const w[3], const float *x, size_t n, float *h,
               float *y)
{
    const nb_awq_linear *lin = a->layer.lin;
    size_t f = a->cfg.ffn_dim;
    float *buf = malloc(n * f * (h ? 1 : 2) * sizeof *buf);
    if (!buf)
        return -1;
    float *gate = h ? h : buf + n * f, *up = buf;
    project(gate, x, n, &lin[LGATE], w[0]);
    project(up, x, n, &lin[LUP], w[1]);
    silu_mul(gate, up, n * f);
    project(y, gate, n, &lin[LDOWN], w[2]);
    free(buf);
    return 0;
}

/* The modules of the groups; w[i] stands for the weight of the group's
 * i-th scaled linear, and everything else (biases, norms) is the layer's. */
static int layer_module(const nb_awq_layer *L, int g, const float *const *w, size_t t0, size_t n,
                        float *y)
{
    const nb_layer_awq *a = (const nb_layer_awq *)L;
    const nb_awq_linear *lin = L->lin;
    size_t d = a->cfg.dim, qd = q_dim(&a->cfg), f = a->cfg.ffn_dim;
    switch (L->group[g].module) {
    case NB_AWQ_ATTN: {
        const float *aw[4] = {w ? w[0] : NULL, w ? w[1] : NULL, w ? w[2] : NULL, NULL};
        return attention(a, aw, a->in_attn + t0 * d, n, NULL, y);
    }
    case NB_AWQ_O:
        project(y, a->in_o + t0 * qd, n, &lin[LO], w ? w[0] : NULL);
        return 0;
    case NB_AWQ_MLP: {
        const float *mw[3] = {w ? w[0] : NULL, w ? w[1] : NULL, NULL};
        return mlp(a, mw, a->in_mlp + t0 * d, n, NULL, y);
    }
    default:
        project(y, a->in_down + t0 * f, n, &lin[LDOWN], w ? w[0] : NULL);
        return 0;
    }
}

struct forward_job {
    nb_layer_awq *a;
    float *x;
    atomic_int failed;
};

static void norm_rows(float *out, const float *x, const float *g, size_t n, size_t d, float eps)
{
    for (size_t t = 0; t < n; t++)
        nb_rmsnorm_ref(out + t * d, x + t * d, g, NB_W_F32, d, eps);
}

/* One block through the layer, residuals included, capturing as it goes. */
static void forward_block(void *ctx, size_t b)
{
    struct forward_job *j = ctx;
    nb_layer_awq *a = j->a;
    size_t d = a->cfg.dim, B = a->layer.block, t0 = b * B;
    float *x = j->x + t0 * d, *y = malloc(B * d * sizeof *y), eps = a->cfg.norm_eps;
    const float *own[4] = {NULL, NULL, NULL, NULL}; /* the layer's weights */
    if (!y)
        goto fail;
    norm_rows(a->in_attn + t0 * d, x, a->layer.norm[N_ATTN].w, B, d, eps);
    if (attention(a, own, a->in_attn + t0 * d, B, a->in_o + t0 * q_dim(&a->cfg), y))
        goto fail;
    add_rows(x, y, B * d);
    norm_rows(a->in_mlp + t0 * d, x, a->layer.norm[N_FFN].w, B, d, eps);
    if (mlp(a, own, a->in_mlp + t0 * d, B, a->in_down + t0 * a->cfg.ffn_dim, y))
        goto fail;
    add_rows(x, y, B * d);
    free(y);
    return;
fail:
    free(y);
    atomic_store(&j->failed, 1);
}

int nb_layer_awq_forward(nb_layer_awq *a, float *x, nb_pool *pool, nb_err *e)
{
    struct forward_job j = {.a = a, .x = x};
    atomic_init(&j.failed, 0);
    nb_pool_run(pool, a->layer.n_tokens / a->layer.block, forward_block, &j);
    return atomic_load(&j.failed) ? nb_fail(e, "out of memory in the calibration forward pass") : 0;
}
