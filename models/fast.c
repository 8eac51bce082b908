/* The fast forward pass: the model of ref.c, arranged for speed.
 *   x = embed[token]                          for each token of a tile
 *   per layer:
 *     a = quant(norm(x))                      once, shared by q, k and v
 *     job qkv:   q|k|v rows; bias, head norm and RoPE on q and k, k and v
 *                into the fp16 cache
 *     job attn:  per (token, kv head): the query heads that share it (all,
 *                or a part when threads would idle), each cached K/V row
 *                read once for all of them: scores, online softmax, values
 *     job o:     x += o(quant(attn))          the residual add in the epilogue
 *     a = quant(norm(x))                      once, shared by gate and up
 *     job ffn:   h = silu(gate(a)) * up(a)    in the epilogue
 *     job down:  x += down(quant(h))
 *   logits = output(norm(x))                  only where they are wanted
 * A job is one run of the thread pool over chunks of output rows
 * (multiples of 4 rows, whole heads for q and k). A chunk writes only its
 * own rows, each computed in a fixed order, so the results are the same
 * bits for any thread count. A prompt runs in tiles of up to TILE tokens:
 * the weights stream from memory once per tile, and the GEMM kernels
 * unpack each weight tile once for several tokens. A tile's tokens may
 * belong to different sequences (a server's slots, each with its own KV
 * cache rows): every token carries its sequence and position, and the
 * attention of each reads its own sequence only, so one decode step of
 * four slots reads the weights once. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../neon/act.h"
#include "../neon/attn.h"
#include "../neon/gemv.h"
#include "../neon/gemv_neon.h"
#include "../neon/norm.h"
#include "../neon/qkern.h"
#include "../runtime/affinity.h"
#include "../runtime/pool.h"
#include "../runtime/qtensor.h"
#include "net_impl.h"

enum {
    TILE = 64,             /* prompt tokens per pass over the weights */
    CHUNKS_PER_THREAD = 4, /* enough to even out uneven threads, few enough to stay cheap */
    MIN_CHUNK = 32768,     /* multiply-adds: less costs less than waking a thread */
    CACHE_CHUNK = 64,      /* cache values converted on the stack before their scatter */
};

/* A linear weight as the kernels take it. */
typedef struct lin {
    const void *w;
    uint32_t dtype;
    nb_qlayout l; /* packed weights only */
    size_t rows, cols;
} lin;

/* Rows [0, rows) in n chunks of piece rows, the last one maybe shorter. */
typedef struct split {
    size_t rows, piece, n;
} split;

/* The input of some linears: fp32 rows [tile][cols], and the same
 * quantized once when packed weights read it with int8 activations. */
typedef struct act {
    float *x;
    size_t cols;
    nb_qact q;
    int quantized; /* q holds x (this pass) */
} act;

typedef struct flayer {
    lin qkv[3], o, gate, up, down;
} flayer;

struct nb_fast {
    const nb_qkernels *k;
    nb_gemv_fn *gemv; /* plain weights */
    nb_gemm_fn *gemm; /* plain weights, prefill */
    nb_attend_group_fn *attend; /* query heads sharing a kv head at once */
    int key_block;              /* its keys' layout: 0 rows, else blocks (attn.h) */
    int val_block;              /* its values': 0 rows, else tiles where head_dim allows */
    int exact, threads, tile, n_seq;
    size_t min_chunk;
    nb_pool *pool;
    flayer *layers;
    lin output;
    split cut_qkv[3], cut_dim, cut_ffn, cut_vocab; /* how each job cuts its rows */
    uint16_t *cache[2];     /* keys, values: fp16 [seq][layer][ctx8][kv_dim] */
    size_t ctx8;            /* the context rounded up to whole key blocks */
    float *x;               /* [tile][dim] the residual stream */
    act in, att, hid;       /* norm output, attention output, ffn hidden */
    float *qkv[3];          /* [tile][rows]: q, and k and v before the cache */
    float *y;               /* [tile][dim] o and down, before the residual add */
    float *up;              /* [tile][ffn_dim] */
    float *rope;            /* [tile][head_dim / 2][cos, sin] */
    float *logits;          /* [vocab] */
    float *logits_all;      /* [tile][vocab], made on first use */
    int *seq, *pos;         /* [tile]: each token's sequence and position */
    size_t kv_bytes, bytes; /* allocated: the cache, everything else */
};

/* What a job's chunks share: the tile being run (its tokens' sequences
 * and positions in f->seq, f->pos) and the layer. */
typedef struct pass {
    nb_net *m;
    const flayer *L;
    int l, ntok;
    size_t units, parts;  /* attention units: (token, kv head, part of its group) */
    size_t n_attn;        /* and the chunks they go in */
    const lin *res_w;     /* the o or down job: weight and input */
    act *res_in;
    float *logits;        /* the logits job: [ntok][vocab] */
} pass;

/* ---- the weights ---- */

static int packed(const lin *w)
{
    return nb_dtype_packed(w->dtype);
}

static void make_lin(lin *w, const nb_tensor *t)
{
    memset(w, 0, sizeof *w);
    w->w = t->data;
    w->dtype = t->entry->dtype;
    w->rows = t->entry->shape[0];
    w->cols = t->entry->shape[1];
    if (packed(w))
        nb_qentry_layout(t->entry, &w->l, NULL); /* checked by the loader */
}

static void make_layer(flayer *f, const nb_net_layer *L)
{
    make_lin(&f->qkv[0], &L->q);
    make_lin(&f->qkv[1], &L->k);
    make_lin(&f->qkv[2], &L->v);
    make_lin(&f->o, &L->o);
    make_lin(&f->gate, &L->gate);
    make_lin(&f->up, &L->up);
    make_lin(&f->down, &L->down);
}

/* ---- splitting rows between threads ---- */

static size_t gcd(size_t a, size_t b)
{
    while (b) {
        size_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static size_t chunks_wanted(const struct nb_fast *f)
{
    return f->threads > 1 ? (size_t)(CHUNKS_PER_THREAD * f->threads) : 1;
}

/* Chunks in whole units of rows: a fair share of total rows (a job may
 * cover several tensors), but never under min_chunk weights. */
static split make_split(const struct nb_fast *f, size_t rows, size_t cols, size_t unit,
                        size_t total)
{
    size_t want = chunks_wanted(f), share = (total + want - 1) / want;
    size_t least = (f->min_chunk + cols - 1) / cols, target = share > least ? share : least;
    split s = {rows, (target + unit - 1) / unit * unit, 0};
    s.n = (rows + s.piece - 1) / s.piece;
    return s;
}

static void split_at(const split *s, size_t i, size_t *r0, size_t *r1)
{
    *r0 = i * s->piece;
    *r1 = *r0 + s->piece < s->rows ? *r0 + s->piece : s->rows;
}

/* Chunk i of jobs over several tensors, one after the other: which one. */
static int split_find(const split *s, int n, size_t i, size_t *r0, size_t *r1)
{
    int k = 0;
    while (k + 1 < n && i >= s[k].n)
        i -= s[k++].n;
    split_at(&s[k], i, r0, r1);
    return k;
}

/* Chunks in multiples of 8 rows, where the decode kernels take two row
 * blocks at a time; q and k in whole heads for RoPE. */
static void make_splits(struct nb_fast *f, const struct nb_meta *c)
{
    size_t hd = c->head_dim, head_unit = hd / gcd(hd, 8) * 8, d = c->dim;
    size_t qkv_rows = (size_t)(c->n_heads + 2 * c->n_kv_heads) * hd;
    size_t q_dim = (size_t)c->n_heads * hd, narrow = q_dim < c->ffn_dim ? q_dim : c->ffn_dim;
    for (int i = 0; i < 3; i++)
        f->cut_qkv[i] = make_split(f, f->layers[0].qkv[i].rows, d, head_unit, qkv_rows);
    f->cut_dim = make_split(f, d, narrow, 8, d); /* o and down */
    f->cut_ffn = make_split(f, c->ffn_dim, 2 * d, 8, c->ffn_dim); /* gate and up */
    f->cut_vocab = make_split(f, c->vocab_size, d, 8, c->vocab_size);
}

/* ---- state ---- */

/* Zeroed, cache-line aligned, and counted for the memory report. */
static void *take(size_t n, size_t *count, int *failed)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 64)) {
        *failed = 1;
        return NULL;
    }
    memset(p, 0, n);
    *count += n;
    return p;
}

static float *floats(struct nb_fast *f, size_t n, int *failed)
{
    return take(n * sizeof(float), &f->bytes, failed);
}

/* What nb_qact_init allocates (qact.c): the widest form's codes and the
 * per-block entries, for the memory report. */
static size_t qact_bytes(size_t cols, size_t ntok)
{
    size_t cols_p = (cols + 31) / 32 * 32, pairs = (ntok + 1) / 2;
    return 4 * cols_p * ntok + 8 * (cols_p / 32) * pairs * sizeof(int32_t);
}

static void make_act(struct nb_fast *f, act *a, size_t cols, int *failed)
{
    a->cols = cols;
    a->x = floats(f, (size_t)f->tile * cols, failed);
    if (nb_qact_init(&a->q, cols, (size_t)f->tile))
        *failed = 1;
    f->bytes += qact_bytes(cols, (size_t)f->tile);
}

static int alloc_fast(struct nb_fast *f, const nb_net *m, nb_err *e)
{
    const struct nb_meta *c = &m->cfg;
    size_t T = (size_t)f->tile, kv = (size_t)c->n_kv_heads * c->head_dim;
    size_t q = (size_t)c->n_heads * c->head_dim;
    f->ctx8 = ((size_t)m->ctx + NB_ATTEND_KBLOCK - 1) / NB_ATTEND_KBLOCK * NB_ATTEND_KBLOCK;
    size_t cache = (size_t)f->n_seq * c->n_layers * f->ctx8 * kv;
    int failed = 0;
    for (int i = 0; i < 2; i++) { /* calloc: untouched positions cost no memory */
        f->cache[i] = calloc(cache ? cache : 1, sizeof(uint16_t));
        failed |= !f->cache[i];
        f->kv_bytes += cache * sizeof(uint16_t);
    }
    f->x = floats(f, T * c->dim, &failed);
    make_act(f, &f->in, c->dim, &failed);
    make_act(f, &f->att, q, &failed);
    make_act(f, &f->hid, c->ffn_dim, &failed);
    f->qkv[0] = floats(f, T * q, &failed);
    f->qkv[1] = floats(f, T * kv, &failed);
    f->qkv[2] = floats(f, T * kv, &failed);
    f->y = floats(f, T * c->dim, &failed);
    f->up = floats(f, T * c->ffn_dim, &failed);
    f->rope = floats(f, T * c->head_dim, &failed);
    f->logits = floats(f, c->vocab_size, &failed);
    f->seq = take(T * sizeof *f->seq, &f->bytes, &failed);
    f->pos = take(T * sizeof *f->pos, &f->bytes, &failed);
    if (failed)
        return nb_fail(e, "out of memory for a %d-token context (KV cache %.1f MB)", m->ctx,
                       2.0 * (double)cache * 2 / 1e6);
    return 0;
}

void nb_fast_free(struct nb_fast *f)
{
    if (!f)
        return;
    nb_pool_free(f->pool);
    act *acts[] = {&f->in, &f->att, &f->hid};
    for (int i = 0; i < 3; i++) {
        free(acts[i]->x);
        nb_qact_free(&acts[i]->q);
    }
    void *bufs[] = {f->cache[0], f->cache[1], f->x, f->qkv[0], f->qkv[1], f->qkv[2],
                    f->y, f->up, f->rope, f->logits, f->logits_all, f->layers, f->seq, f->pos};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        free(bufs[i]);
    free(f);
}

/* The named kernel set, with a message saying why not. */
static const nb_qkernels *pick_kernels(const char *name, nb_err *e)
{
    const nb_qkernels *k = nb_kernels_get(name);
    if (k)
        return k;
    size_t n;
    const nb_qkernels *const *all = nb_kernels_all(&n);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(all[i]->name, name))
            return nb_fail(e, "--kernels %s: this CPU cannot run them", name), NULL;
    if (!strcmp(name, "neon") || !strcmp(name, "dotprod") || !strcmp(name, "i8mm"))
        return nb_fail(e, "--kernels %s: this build has no such kernels (aarch64 only)", name),
               NULL;
    if (!strcmp(name, "avx2"))
        return nb_fail(e, "--kernels avx2: this build has no such kernels (x86-64 only)"), NULL;
    nb_fail(e, "--kernels expects ref, generic, avx2, neon, dotprod, i8mm or auto, got '%s'",
            name);
    return NULL;
}

/* Threads for the pool, or -1 (with the reason). */
static int thread_count(const nb_run_opts *o, nb_err *e)
{
    if (o->threads < 0 || o->threads > 256)
        return nb_fail(e, "-t expects a whole number from 1 to 256, got %d", o->threads);
    if (o->threads)
        return o->threads;
    int cpus[NB_MAX_CPUS], n;
    if (o->cpus)
        return nb_cpu_list_parse(o->cpus, cpus, NB_MAX_CPUS, &n, e) ? -1 : n;
    return nb_default_threads();
}

int nb_run_opts_check(const nb_run_opts *o, nb_err *e)
{
    if (o->n_seq < 0 || o->n_seq > 256)
        return nb_fail(e, "%d sequences: expected 1 to 256", o->n_seq);
    return !pick_kernels(o->kernels ? o->kernels : "auto", e) || thread_count(o, e) < 0 ? -1 : 0;
}

static int setup(nb_net *m, const nb_run_opts *o, nb_err *e)
{
    struct nb_fast *f = m->fast;
    const struct nb_meta *c = &m->cfg;
    f->exact = o->exact;
    f->min_chunk = o->min_chunk > 0 ? (size_t)o->min_chunk : MIN_CHUNK;
    f->tile = m->ctx < TILE ? m->ctx : TILE;
    f->n_seq = o->n_seq > 0 ? o->n_seq : 1;
    if (o->n_seq < 0 || o->n_seq > 256)
        return nb_fail(e, "%d sequences: expected 1 to 256", o->n_seq);
    /* fp16 scores where the CPU has fp16 arithmetic, on the int8 path only */
    const nb_attend_set *att = f->exact ? nb_attend_exact() : nb_attend_fast();
    f->attend = att->group;
    f->key_block = att->key_block;
    f->val_block = att->val_block;
    f->gemv = nb_gemv_plain();
    f->gemm = nb_gemm_plain();
    if (!(f->k = pick_kernels(o->kernels ? o->kernels : "auto", e)) ||
        (f->threads = thread_count(o, e)) < 0)
        return -1;
    if (!(f->layers = calloc(c->n_layers, sizeof *f->layers)))
        return nb_fail(e, "out of memory");
    for (uint32_t l = 0; l < c->n_layers; l++)
        make_layer(&f->layers[l], &m->layers[l]);
    make_lin(&f->output, &m->output);
    make_splits(f, c);
    if (alloc_fast(f, m, e))
        return -1;
    if (!(f->pool = nb_pool_create(f->threads)))
        return nb_fail(e, "cannot start %d threads", f->threads);
    return o->cpus ? nb_pool_pin(f->pool, o->cpus, e) : 0;
}

int nb_fast_init(nb_net *m, const nb_run_opts *o, nb_err *e)
{
    if (!(m->fast = calloc(1, sizeof *m->fast)))
        return nb_fail(e, "out of memory");
    return setup(m, o, e);
}

/* ---- the pieces of a layer ---- */

static void run(const struct nb_fast *f, size_t n_chunks, void (*fn)(void *, size_t), pass *p)
{
    nb_pool_run(f->pool, n_chunks, fn, p);
}

/* y[t * ldy + r] = (W x_t)[r] for rows [r0, r1) of every token t. */
static void lin_rows(const struct nb_fast *f, const lin *w, const act *in, int ntok, float *y,
                     size_t ldy, size_t r0, size_t r1)
{
    if (packed(w) && in->quantized) {
        if (ntok == 1)
            f->k->gemv(&w->l, w->w, &in->q, y, r0, r1);
        else
            f->k->gemm(&w->l, w->w, &in->q, y, ldy, r0, r1);
        return;
    }
    if (!packed(w)) { /* the GEMM gives each token the GEMV's sums bit for bit */
        if (ntok == 1)
            f->gemv(y, w->w, (int)w->dtype, in->x, r0, r1, w->cols);
        else
            f->gemm(y, ldy, w->w, (int)w->dtype, in->x, (size_t)ntok, r0, r1, w->cols);
        return;
    }
    for (int t = 0; t < ntok; t++)
        f->k->gemv_f32(&w->l, w->w, in->x + (size_t)t * in->cols, y + (size_t)t * ldy, r0, r1);
}

/* Quantizes a's tokens when a packed weight will read them as int8. */
static void quantize(const struct nb_fast *f, act *a, int ntok, int for_packed)
{
    a->quantized = for_packed && !f->exact;
    if (a->quantized)
        nb_qact_quantize(&a->q, a->x, a->cols, (size_t)ntok,
                         ntok == 1 ? f->k->gemv_form : f->k->gemm_form);
}

/* a = norm(x) for ntok tokens, quantized once for every linear it feeds.
 * The norm of neon/norm.h (NEON on aarch64): its float64 sum of squares
 * differs from the reference pass's fp32 one by rounding only. */
static void norm_quant(const nb_net *m, act *a, const float *x, int ntok, const nb_tensor *g,
                       int for_packed)
{
    size_t dim = m->cfg.dim;
    for (int t = 0; t < ntok; t++)
        nb_rmsnorm_row(a->x + (size_t)t * dim, x + (size_t)t * dim, g->data,
                       (int)g->entry->dtype, dim, m->cfg.norm_eps);
    quantize(m->fast, a, ntok, for_packed);
}

/* Layer l of sequence seq in the keys' (which 0) or values' (1) cache. */
static uint16_t *cache_layer(const nb_net *m, int which, int seq, int l)
{
    size_t kv = (size_t)m->cfg.n_kv_heads * m->cfg.head_dim, layers = m->cfg.n_layers;
    return m->fast->cache[which] + ((size_t)seq * layers + (size_t)l) * m->fast->ctx8 * kv;
}

/* Columns [r0, r1) of position pos's values into the cache in tiles
 * (attn.h): converted a chunk at a time, then copied 8 columns (a tile's
 * row) at a time. */
static void store_value_tiles(uint16_t *c, size_t pos, const float *y, size_t r0, size_t r1,
                              size_t kv, size_t hd)
{
    uint16_t h[CACHE_CHUNK];
    for (size_t i = r0; i < r1; i += CACHE_CHUNK) {
        size_t n = r1 - i < CACHE_CHUNK ? r1 - i : CACHE_CHUNK;
        nb_f32_to_f16_row(h, y + i, n);
        for (size_t j = 0, run; j < n; j += run) {
            run = 8 - (i + j) % 8 < n - j ? 8 - (i + j) % 8 : n - j;
            memcpy(c + nb_attend_val_at(pos, i + j, kv, hd), h + j, run * sizeof *h);
        }
    }
}

/* Columns [r0, r1) of position pos's key (which 0) or value (1) into the
 * cache, in the attention's layout: keys in rows or in blocks, values in
 * rows or in tiles. */
static void store_kv(const nb_net *m, int which, int seq, int l, int pos, const float *y,
                     size_t r0, size_t r1)
{
    size_t hd = (size_t)m->cfg.head_dim, kv = (size_t)m->cfg.n_kv_heads * hd;
    uint16_t *c = cache_layer(m, which, seq, l);
    if (which == 1 && m->fast->val_block && hd % NB_ATTEND_VBLOCK == 0) {
        store_value_tiles(c, (size_t)pos, y, r0, r1, kv, hd);
        return;
    }
    if (which == 1 || !m->fast->key_block) {
        nb_f32_to_f16_row(c + (size_t)pos * kv + r0, y + r0, r1 - r0);
        return;
    }
    /* The keys converted a chunk at a time, then scattered: in a block,
     * column i + 1 of a position sits NB_ATTEND_KBLOCK after column i
     * (nb_attend_key_at). */
    uint16_t h[CACHE_CHUNK], *at = c + nb_attend_key_at((size_t)pos, r0, kv);
    for (size_t i = r0; i < r1; i += CACHE_CHUNK) {
        size_t n = r1 - i < CACHE_CHUNK ? r1 - i : CACHE_CHUNK;
        nb_f32_to_f16_row(h, y + i, n);
        for (size_t j = 0; j < n; j++, at += NB_ATTEND_KBLOCK)
            *at = h[j];
    }
}

/* q, k and v rows; the epilogue adds the biases, normalizes and rotates
 * the heads of q and k, and stores k and v. */
static void qkv_chunk(void *ctx, size_t chunk)
{
    const pass *p = ctx;
    const struct nb_fast *f = p->m->fast;
    const nb_net_layer *B = &p->m->layers[p->l];
    const nb_tensor *bias[3] = {&B->q_bias, &B->k_bias, &B->v_bias};
    const nb_tensor *head_norm[2] = {&B->q_norm, &B->k_norm};
    size_t r0, r1;
    int which = split_find(f->cut_qkv, 3, chunk, &r0, &r1);
    const lin *w = &p->L->qkv[which];
    lin_rows(f, w, &f->in, p->ntok, f->qkv[which], w->rows, r0, r1);
    for (int t = 0; t < p->ntok; t++) {
        float *y = f->qkv[which] + (size_t)t * w->rows;
        if (bias[which]->data)
            nb_add_bias(y, bias[which], r0, r1);
        if (which < 2 && head_norm[which]->data)
            nb_head_norm(p->m, y, r0, r1, head_norm[which]);
        if (which < 2)
            nb_rope_heads(p->m, y, r0, r1, f->rope + (size_t)t * p->m->cfg.head_dim);
        if (which > 0)
            store_kv(p->m, which - 1, f->seq[t], p->l, f->pos[t], y, r0, r1);
    }
}

/* Unit u of the attention: the query heads of part u % parts of kv head
 * u / parts % n_kv of token u / (n_kv * parts), over the cached positions
 * of its sequence up to its own. The grouped kernel gives each head the
 * bits the single-head one would, so the split never shows in results. */
static void attend_unit(const pass *p, size_t u)
{
    const struct nb_meta *c = &p->m->cfg;
    const struct nb_fast *f = p->m->fast;
    size_t nh = c->n_heads, nkv = c->n_kv_heads, hd = c->head_dim, g = nh / nkv;
    size_t per = (g + p->parts - 1) / p->parts, t = u / (nkv * p->parts);
    size_t kh = u / p->parts % nkv, h0 = kh * g + u % p->parts * per;
    size_t h1 = h0 + per < (kh + 1) * g ? h0 + per : (kh + 1) * g;
    if (h0 >= h1)
        return;
    size_t at = t * nh * hd + h0 * hd;
    int seq = f->seq[t];
    size_t key_at = f->key_block ? nb_attend_key_at(0, kh * hd, nkv * hd) : kh * hd;
    size_t val_at = f->val_block ? nb_attend_val_at(0, kh * hd, nkv * hd, hd) : kh * hd;
    f->attend(f->att.x + at, hd, f->qkv[0] + at, hd, h1 - h0,
              cache_layer(p->m, 0, seq, p->l) + key_at, cache_layer(p->m, 1, seq, p->l) + val_at,
              nkv * hd, (size_t)f->pos[t] + 1, hd, 1.0f / sqrtf((float)hd));
}

static void attn_chunk(void *ctx, size_t chunk)
{
    const pass *p = ctx;
    for (size_t u = chunk * p->units / p->n_attn; u < (chunk + 1) * p->units / p->n_attn; u++)
        attend_unit(p, u);
}

/* Whole groups, unless that leaves threads idle (one decoded token of a
 * model with 2 kv heads on 4 threads): then each group in parts, still
 * sharing each K/V row among the heads of a part. As many chunks as
 * units, threads and min_chunk allow. */
static void split_attention(pass *p)
{
    const struct nb_meta *c = &p->m->cfg;
    const struct nb_fast *f = p->m->fast;
    size_t positions = 0, groups = (size_t)p->ntok * c->n_kv_heads;
    size_t g = c->n_heads / c->n_kv_heads, threads = (size_t)f->threads;
    for (int t = 0; t < p->ntok; t++)
        positions += (size_t)f->pos[t] + 1;
    size_t work = positions * c->n_heads * c->head_dim;
    size_t n = chunks_wanted(f), by_work = work / f->min_chunk;
    p->parts = groups >= threads ? 1 : (threads + groups - 1) / groups;
    p->parts = p->parts < g ? p->parts : g;
    p->units = groups * p->parts;
    n = n < by_work ? n : by_work;
    p->n_attn = n < 1 ? 1 : n < p->units ? n : p->units;
}

/* x += W in: the o and down projections. */
static void residual_chunk(void *ctx, size_t chunk)
{
    const pass *p = ctx;
    const struct nb_fast *f = p->m->fast;
    size_t r0, r1, dim = p->m->cfg.dim;
    split_at(&f->cut_dim, chunk, &r0, &r1);
    lin_rows(f, p->res_w, p->res_in, p->ntok, f->y, dim, r0, r1);
    for (size_t t = 0; t < (size_t)p->ntok; t++)
        for (size_t r = r0; r < r1; r++)
            f->x[t * dim + r] += f->y[t * dim + r];
}

/* h = silu(gate(a)) * up(a). */
static void ffn_chunk(void *ctx, size_t chunk)
{
    const pass *p = ctx;
    const struct nb_fast *f = p->m->fast;
    size_t r0, r1, n = p->m->cfg.ffn_dim;
    split_at(&f->cut_ffn, chunk, &r0, &r1);
    lin_rows(f, &p->L->gate, &f->in, p->ntok, f->hid.x, n, r0, r1);
    lin_rows(f, &p->L->up, &f->in, p->ntok, f->up, n, r0, r1);
    for (size_t t = 0; t < (size_t)p->ntok; t++)
        nb_silu_mul_row(f->hid.x + t * n + r0, f->up + t * n + r0, r1 - r0);
}

static void logits_chunk(void *ctx, size_t chunk)
{
    const pass *p = ctx;
    const struct nb_fast *f = p->m->fast;
    size_t r0, r1;
    split_at(&f->cut_vocab, chunk, &r0, &r1);
    lin_rows(f, &f->output, &f->in, p->ntok, p->logits, f->output.rows, r0, r1);
}

/* ---- the forward pass ---- */

static void attention(pass *p)
{
    nb_net *m = p->m;
    struct nb_fast *f = m->fast;
    const flayer *L = p->L;
    norm_quant(m, &f->in, f->x, p->ntok, &m->layers[p->l].attn_norm,
               packed(&L->qkv[0]) || packed(&L->qkv[1]) || packed(&L->qkv[2]));
    run(f, f->cut_qkv[0].n + f->cut_qkv[1].n + f->cut_qkv[2].n, qkv_chunk, p);
    run(f, p->n_attn, attn_chunk, p);
    quantize(f, &f->att, p->ntok, packed(&L->o));
    p->res_w = &L->o;
    p->res_in = &f->att;
    run(f, f->cut_dim.n, residual_chunk, p);
}

static void mlp(pass *p)
{
    nb_net *m = p->m;
    struct nb_fast *f = m->fast;
    const flayer *L = p->L;
    norm_quant(m, &f->in, f->x, p->ntok, &m->layers[p->l].ffn_norm,
               packed(&L->gate) || packed(&L->up));
    run(f, f->cut_ffn.n, ffn_chunk, p);
    quantize(f, &f->hid, p->ntok, packed(&L->down));
    p->res_w = &L->down;
    p->res_in = &f->hid;
    run(f, f->cut_dim.n, residual_chunk, p);
}

/* Which tokens of a tile get logits: none, the last, all, or those a
 * mask marks. */
enum want { NO_LOGITS, LAST_LOGITS, ALL_LOGITS, MASK_LOGITS };

static int wanted(enum want want, const uint8_t *mask, int t, int n)
{
    return want == ALL_LOGITS || (want == LAST_LOGITS && t == n - 1) ||
           (want == MASK_LOGITS && mask[t]);
}

/* A row whose hidden state went non-finite (NaN or Inf weights in a file
 * damaged after its checksums) gets a NaN logit. A packed output layer
 * reads int8 activations, whose quantizer maps NaN to 0 (neon/qact.c):
 * its logits would come out finite and the damage unnoticed, where
 * nb_logits_check must stop the run. */
static void poison_nonfinite(const float *x, size_t dim, int k, float *out, size_t vocab)
{
    for (int t = 0; t < k; t++)
        for (size_t i = 0; i < dim; i++)
            if (!isfinite(x[(size_t)t * dim + i])) {
                out[(size_t)t * vocab] = NAN;
                break;
            }
}

/* Logits of the wanted tokens, in order, into out [k][vocab]. Their rows
 * of x are gathered first (into y, free after the last layer), so the
 * output layer streams once for all of them. */
static void logits(pass *p, enum want want, const uint8_t *mask, float *out)
{
    nb_net *m = p->m;
    struct nb_fast *f = m->fast;
    size_t dim = m->cfg.dim;
    int k = 0;
    for (int t = 0; t < p->ntok; t++)
        if (wanted(want, mask, t, p->ntok))
            memcpy(f->y + (size_t)k++ * dim, f->x + (size_t)t * dim, dim * sizeof *f->y);
    if (!k)
        return;
    p->ntok = k;
    p->logits = out;
    norm_quant(m, &f->in, f->y, k, &m->out_norm, packed(&f->output));
    run(f, f->cut_vocab.n, logits_chunk, p);
    poison_nonfinite(f->y, dim, k, out, m->cfg.vocab_size);
}

/* Runs n <= tile tokens, token t of sequence f->seq[t] at position
 * f->pos[t] (a sequence's tokens in order of position). */
static void run_tile(nb_net *m, const int32_t *tokens, int n, enum want want,
                     const uint8_t *mask, float *out)
{
    struct nb_fast *f = m->fast;
    const struct nb_meta *c = &m->cfg;
    for (int t = 0; t < n; t++) {
        nb_row_ref(f->x + (size_t)t * c->dim, m->embed.data, (int)m->embed.entry->dtype,
                   (size_t)tokens[t], c->dim);
        float *cs = f->rope + (size_t)t * c->head_dim;
        for (int i = 0; i < (int)c->head_dim / 2; i++)
            nb_net_rope_angle(m, f->pos[t], i, &cs[2 * i], &cs[2 * i + 1]);
    }
    pass p = {.m = m, .ntok = n};
    split_attention(&p);
    for (uint32_t l = 0; l < c->n_layers; l++) {
        p.l = (int)l;
        p.L = &f->layers[l];
        attention(&p);
        mlp(&p);
    }
    if (want != NO_LOGITS)
        logits(&p, want, mask, out);
}

/* Tokens of one sequence at positions pos..pos+n-1. */
static void one_sequence(struct nb_fast *f, int seq, int n, int pos)
{
    for (int t = 0; t < n; t++) {
        f->seq[t] = seq;
        f->pos[t] = pos + t;
    }
}

float *nb_fast_prefill(nb_net *m, int seq, const int32_t *tokens, int n, int pos)
{
    struct nb_fast *f = m->fast;
    for (int i = 0; i < n; i += f->tile) {
        int len = n - i < f->tile ? n - i : f->tile;
        one_sequence(f, seq, len, pos + i);
        run_tile(m, tokens + i, len, i + len == n ? LAST_LOGITS : NO_LOGITS, NULL, f->logits);
    }
    return f->logits;
}

static int need_logits_all(struct nb_fast *f, size_t vocab, nb_err *e)
{
    int failed = 0;
    if (!f->logits_all && !(f->logits_all = floats(f, (size_t)f->tile * vocab, &failed)))
        return nb_fail(e, "out of memory for the logits of %d tokens", f->tile);
    return 0;
}

int nb_fast_prefill_each(nb_net *m, const int32_t *tokens, int n, int pos,
                         void (*fn)(void *ctx, int i, const float *logits), void *ctx, nb_err *e)
{
    struct nb_fast *f = m->fast;
    size_t vocab = m->cfg.vocab_size;
    if (need_logits_all(f, vocab, e))
        return -1;
    for (int i = 0; i < n; i += f->tile) {
        int len = n - i < f->tile ? n - i : f->tile;
        one_sequence(f, 0, len, pos + i);
        run_tile(m, tokens + i, len, ALL_LOGITS, NULL, f->logits_all);
        for (int t = 0; t < len; t++)
            fn(ctx, i + t, f->logits_all + (size_t)t * vocab);
    }
    return 0;
}

int nb_fast_batch(nb_net *m, const nb_batch *b, float *out)
{
    struct nb_fast *f = m->fast;
    size_t vocab = m->cfg.vocab_size, done = 0;
    for (int i = 0; i < b->n; i += f->tile) {
        int len = b->n - i < f->tile ? b->n - i : f->tile;
        for (int t = 0; t < len; t++) {
            f->seq[t] = b->seq[i + t];
            f->pos[t] = b->pos[i + t];
        }
        run_tile(m, b->token + i, len, b->logits ? MASK_LOGITS : ALL_LOGITS,
                 b->logits ? b->logits + i : NULL, out + done * vocab);
        for (int t = 0; t < len; t++)
            done += !b->logits || b->logits[i + t];
    }
    return 0;
}

/* ---- what the session reports ---- */

void nb_fast_memory(const nb_net *m, size_t *kv_bytes, size_t *other_bytes)
{
    *kv_bytes = m->fast->kv_bytes;
    *other_bytes = m->fast->bytes + sizeof *m->fast + m->cfg.n_layers * sizeof *m->fast->layers;
}

int nb_fast_sequences(const nb_net *m)
{
    return m->fast->n_seq;
}

const char *nb_fast_kernels(const nb_net *m)
{
    return m->fast->k->name;
}

int nb_fast_threads(const nb_net *m)
{
    return m->fast->threads;
}
