/* The AWQ pieces on random models of each family (test_awq.c runs them):
 * folding (every group, output_norm -> output included) leaves the
 * function alone; the output layer written packed by default, as a tensor
 * of its own when the model ties it (token_embd plain and unchanged), or
 * kept (out_q.bits 0). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../models/net.h"
#include "../tools/awq/awq.h"
#include "test_awq.h"
#include "testutil.h"

enum { FB = 32, FT = 2 * FB }; /* calibration of the random models: 2 blocks */

typedef struct family {
    const char *name;
    struct nb_meta meta;
    nb_rope rope;
} family;

static family make_family(const char *name, uint32_t arch, uint32_t kv_heads, uint32_t hd)
{
    family f = {.name = name, .meta = tu_tiny_meta()};
    struct nb_meta *m = &f.meta;
    m->arch = arch;
    m->dim = 64, m->n_heads = 4, m->n_kv_heads = kv_heads, m->head_dim = hd;
    m->ffn_dim = 96, m->vocab_size = 96, m->max_ctx = FT, m->n_layers = 2;
    m->rope_pairs = NB_ROPE_HALVES, m->tied_embeddings = 0;
    return f;
}

/* llama (interleaved pairs, GQA); qwen2 (biases, tied, and MHA so that
 * v -> o is searched and v's bias divided); qwen3 (q/k norms, head_dim 24
 * != 64 / 4); llama with llama3 RoPE scaling, whose bands (kept, blended,
 * slowed) all fall inside head_dim 16. */
static int families(family *f)
{
    f[0] = make_family("llama", NB_ARCH_LLAMA, 2, 16);
    f[0].meta.rope_pairs = NB_ROPE_INTERLEAVED;
    f[1] = make_family("qwen2", NB_ARCH_QWEN2, 4, 16);
    f[1].meta.tied_embeddings = 1, f[1].meta.rope_theta = 1e6f;
    f[2] = make_family("qwen3", NB_ARCH_QWEN3, 2, 24);
    f[2].meta.norm_eps = 1e-6f;
    f[3] = make_family("llama3-rope", NB_ARCH_LLAMA, 2, 16);
    f[3].rope = (nb_rope){.scaling = NB_ROPE_SCALE_LLAMA3, .factor = 8, .low_freq_factor = 1,
                          .high_freq_factor = 4, .original_ctx = 64};
    return 4;
}

/* Largest |a - b| over the largest |b|. */
static double rel_gap(const float *a, const float *b, size_t n)
{
    return max_gap(a, b, n) / fmax(max_abs(b, n), 1e-30);
}

static int group_of(const nb_awq_layer *L, int module)
{
    for (int g = 0; g < L->n_groups; g++)
        if (L->group[g].module == module)
            return g;
    return -1;
}

/* Folds random scales e^u, u in [-1, 1), into every group searched;
 * returns how many. */
static int fold_random(nb_awq_layer *L, uint64_t *seed)
{
    int n = 0;
    for (int g = 0; g < L->n_groups; g++) {
        if (L->group[g].skip)
            continue;
        size_t cols = L->lin[L->group[g].scaled[0]].cols;
        float *s = malloc(cols * sizeof *s);
        for (size_t c = 0; s && c < cols; c++)
            s[c] = expf(tu_randf(seed));
        if (s)
            nb_awq_fold(L, g, s), n++;
        free(s);
    }
    return n;
}

/* The module functions compute the layer: the attention and MLP modules
 * on the captured inputs add up to the residual updates x_out - x_in
 * (their relative gap is returned), and the attention module given the
 * layer's own q, k, v weights as trial weights gives the same bits as
 * without (biases and norms are the layer's either way). */
static double module_gap(const nb_layer_awq *a, const float *x_in, const float *x_out)
{
    const nb_awq_layer *L = &a->layer;
    int ga = group_of(L, NB_AWQ_ATTN), gm = group_of(L, NB_AWQ_MLP);
    size_t n = L->n_tokens * a->cfg.dim;
    float *ya = malloc(n * sizeof *ya), *ym = malloc(n * sizeof *ym), *yt = malloc(n * sizeof *yt);
    double gap = INFINITY;
    const float *own[NB_AWQ_MAX_SCALED];
    for (int i = 0; i < L->group[ga].n_scaled; i++)
        own[i] = L->lin[L->group[ga].scaled[i]].w;
    if (ya && ym && yt && !L->module(L, ga, NULL, 0, L->n_tokens, ya) &&
        !L->module(L, gm, NULL, 0, L->n_tokens, ym) &&
        !L->module(L, ga, own, 0, L->n_tokens, yt)) {
        CHECK(!memcmp(ya, yt, n * sizeof *ya), "trial weights changed more than the weights");
        for (size_t i = 0; i < n; i++) {
            ya[i] += ym[i];
            ym[i] = x_out[i] - x_in[i];
        }
        gap = rel_gap(ya, ym, n);
    }
    free(ya);
    free(ym);
    free(yt);
    return gap;
}

/* (a) Random positive scales folded into every group leave each layer's
 * output unchanged but for rounding; the modules agree with the layer
 * before and after folding. */
static void check_fold_layers(const family *f, const nb_model *m, const float *x_in)
{
    nb_layer_awq a;
    nb_err e = {{0}};
    size_t n = FT * (size_t)m->meta.dim;
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    if (!x || !y || nb_layer_awq_init(&a, m, FT, FB, &e)) {
        CHECK(0, "%s: %s", f->name, e.msg);
        free(x);
        free(y);
        return;
    }
    uint64_t seed = 99;
    double fold = 0, modules = 0;
    int groups = 0;
    for (uint32_t l = 0; l < m->meta.n_layers; l++) {
        memcpy(y, x_in, n * sizeof *y);
        memcpy(x, x_in, n * sizeof *x);
        if (nb_layer_awq_load(&a, m, (int)l, &e) || nb_layer_awq_forward(&a, y, NULL, &e)) {
            CHECK(0, "%s layer %u: %s", f->name, l, e.msg);
            break;
        }
        modules = fmax(modules, module_gap(&a, x_in, y));
        groups += fold_random(&a.layer, &seed);
        CHECK(!nb_layer_awq_forward(&a, x, NULL, &e), "%s: %s", f->name, e.msg);
        fold = fmax(fold, rel_gap(x, y, n));
        modules = fmax(modules, module_gap(&a, x_in, x));
    }
    printf("%s: random scales folded into %d groups: layer output changed by %.3g relative; "
           "modules vs layer %.3g\n", f->name, groups, fold, modules);
    CHECK(fold < 1e-5, "%s: folding changed the layer output by %g relative", f->name, fold);
    CHECK(modules < 1e-5, "%s: the modules differ from the layer by %g", f->name, modules);
    int vo = f->meta.n_kv_heads == f->meta.n_heads && f->meta.n_heads * f->meta.head_dim ==
                                                          f->meta.dim;
    CHECK(groups == (int)m->meta.n_layers * (3 + vo), "%s: %d groups folded", f->name, groups);
    nb_layer_awq_free(&a);
    free(x);
    free(y);
}

/* 1 when tensor name holds other bytes in b than in a, 0 when the same,
 * -1 when missing. */
static int tensor_changed(const char *a_path, const char *b_path, const char *name)
{
    nb_model ma, mb;
    nb_tensor ta, tb;
    nb_err e = {{0}};
    int rc = -1;
    if (!nb_model_open(&ma, a_path, &e)) {
        if (!nb_model_open(&mb, b_path, &e)) {
            if (nb_model_find(&ma, name, &ta) && nb_model_find(&mb, name, &tb))
                rc = ta.entry->size != tb.entry->size ||
                     memcmp(ta.data, tb.data, ta.entry->size) != 0;
            nb_model_close(&mb);
        }
        nb_model_close(&ma);
    }
    return rc;
}

/* The file's metadata and the entry of tensor name (zeroed when there is
 * none); 0, or -1 when the file does not open. */
static int entry_of(const char *path, const char *name, struct nb_meta *meta,
                    struct nb_tensor_entry *t)
{
    nb_model m;
    nb_tensor found;
    nb_err e = {{0}};
    if (nb_model_open(&m, path, &e))
        return fprintf(stderr, "%s\n", e.msg), -1;
    *meta = m.meta;
    memset(t, 0, sizeof *t);
    if (nb_model_find(&m, name, &found))
        *t = *found.entry;
    nb_model_close(&m);
    return 0;
}

/* (b) The model the quantizer writes with random scales folded (and
 * nothing quantized) gives the original logits; v's bias is written
 * divided, the q/k norms copied; the output group output_norm -> output
 * folded too: the final norm changed, the output a tensor of its own
 * (token_embd unchanged, the file untied). */
static void check_fold_file(const family *f, const nb_model *m, const char *path,
                            const int32_t *ids)
{
    char out[512];
    snprintf(out, sizeof out, "%s", tu_tmp("fam-folded.nib"));
    nb_awq_opts o = {.q = {.bits = 4, .group = 32}, .scales = 1, .random_scales = 7,
                     .output = NB_AWQ_FOLD_ONLY, .out_q = {.bits = 4, .group = 32},
                     .out_scales = 1, .quiet = 1};
    if (quantize_blocks(m, ids, FT, FB, out, &o, 2))
        return tu_failures++, (void)0;
    double top, gap = logit_gap_top(path, out, ids, FT, &top) / top;
    printf("%s: model folded with random scales: logits changed by %.3g relative\n", f->name,
           gap);
    CHECK(gap < 1e-5, "%s: folding changed the logits by %g relative", f->name, gap);
    unsigned has = nb_arch_by_id(f->meta.arch)->has;
    int v = tensor_changed(path, out, "blk.1.attn_v.bias");
    int k = tensor_changed(path, out, "blk.1.attn_k.bias");
    int qn = tensor_changed(path, out, "blk.1.attn_q_norm");
    if (has & NB_HAS_QKV_BIAS)
        CHECK(v == 1 && k == 0, "%s: v bias changed %d (want 1), k bias %d (want 0)", f->name, v,
              k);
    if (has & NB_HAS_QK_NORM)
        CHECK(qn == 0, "%s: q norm changed %d (want 0)", f->name, qn);
    int on = tensor_changed(path, out, "output_norm"), emb = tensor_changed(path, out, "token_embd");
    struct nb_meta meta;
    struct nb_tensor_entry t;
    CHECK(on == 1 && emb == 0, "%s: output_norm changed %d (want 1), token_embd %d (want 0)",
          f->name, on, emb);
    CHECK(!entry_of(out, "output", &meta, &t) && !meta.tied_embeddings && t.dtype == NB_F32,
          "%s: the folded output is not an f32 tensor of its own", f->name);
}

/* Relative RMS difference of two [n] arrays. */
static double rel_rms(const float *a, const float *b, size_t n)
{
    double d = 0, y = 0;
    for (size_t i = 0; i < n; i++) {
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        y += (double)b[i] * b[i];
    }
    return sqrt(d / fmax(y, 1e-30));
}

/* The logits of ids [FT] from positions 0.., [FT][vocab], and the file's
 * family and RoPE scaling; NULL on failure. */
static float *logits_of(const char *path, const int32_t *ids, nb_hparams *hp)
{
    nb_model m;
    nb_net net;
    nb_err e = {{0}};
    if (nb_model_open(&m, path, &e))
        return fprintf(stderr, "%s\n", e.msg), NULL;
    size_t v = m.meta.vocab_size;
    float *out = malloc(FT * v * sizeof *out);
    if (!out || nb_net_init(&net, &m, FT, &e) || nb_hparams_read(&m, hp, &e)) {
        fprintf(stderr, "%s: %s\n", path, e.msg);
        free(out);
        nb_model_close(&m);
        return NULL;
    }
    for (int pos = 0; pos < FT; pos++)
        memcpy(out + (size_t)pos * v, nb_net_forward(&net, ids[pos], pos), v * sizeof *out);
    nb_net_free(&net);
    nb_model_close(&m);
    return out;
}

/* Quantizes path's model m as o says and returns the relative RMS
 * difference of its logits from want's (INFINITY when it does not run or
 * gives a non-finite logit); the output must keep the family and RoPE
 * scaling hp. */
static double quantized_error(const family *f, const nb_model *m, const int32_t *ids,
                              const nb_awq_opts *o, const float *want, const nb_hparams *hp)
{
    char out[512];
    snprintf(out, sizeof out, "%s", tu_tmp("fam-q4.nib"));
    if (quantize_blocks(m, ids, FT, FB, out, o, 2))
        return INFINITY;
    nb_hparams hq;
    float *got = logits_of(out, ids, &hq);
    size_t n = FT * (size_t)m->meta.vocab_size, bad = 0;
    double err = INFINITY;
    if (got) {
        for (size_t i = 0; i < n; i++)
            bad += !isfinite(got[i]);
        err = bad ? INFINITY : rel_rms(got, want, n);
        CHECK(hq.arch == hp->arch && !memcmp(&hq.rope, &hp->rope, sizeof hq.rope),
              "%s: the quantized file lost its family or RoPE scaling", f->name);
    }
    free(got);
    return err;
}

/* (c) AWQ, scales and clip, end to end on the random model at path: the
 * packed file loads, keeps the family and RoPE scaling, and its logits
 * are finite and near fp32's, as near as round-to-nearest's give or take
 * (random weights have no outliers for AWQ to protect). */
static void check_quantized(const family *f, const nb_model *m, const char *path,
                            const int32_t *ids)
{
    nb_hparams hp;
    float *want = logits_of(path, ids, &hp);
    nb_awq_opts awq = {.q = {.bits = 4, .group = 32}, .scales = 1, .duo = 1, .clip = 1,
                       .quiet = 1};
    nb_awq_opts rtn = {.q = awq.q, .quiet = 1};
    double e_awq = want ? quantized_error(f, m, ids, &awq, want, &hp) : INFINITY;
    double e_rtn = want ? quantized_error(f, m, ids, &rtn, want, &hp) : INFINITY;
    printf("%s: INT4 g32 logits, relative RMS from fp32: AWQ %.3g, RTN %.3g\n", f->name, e_awq,
           e_rtn);
    CHECK(e_awq < 0.4 && e_awq < 1.25 * e_rtn, "%s: AWQ's logits are %g from fp32 (RTN %g)",
          f->name, e_awq, e_rtn);
    free(want);
}

/* The output layer by default (INT4 g32, its group searched and clipped):
 * a packed tensor of its own, also when the model ties it, whose
 * embedding stays as it was (plain, the same bytes), its scales folded
 * into output_norm (not when it is rounded to nearest; and with the
 * linears rounded to nearest, its searches alone run: output_norm changes,
 * attn_norm does not); logits near those of the same quantization with
 * the output kept (out_q.bits 0), which leaves the output layer as it was
 * (tied stays tied). */
static void check_output(const family *f, const nb_model *m, const char *path,
                         const int32_t *ids)
{
    char def[512], kept[512], rtn[512], only[512];
    snprintf(def, sizeof def, "%s", tu_tmp("fam-out-q4.nib"));
    snprintf(kept, sizeof kept, "%s", tu_tmp("fam-out-kept.nib"));
    snprintf(rtn, sizeof rtn, "%s", tu_tmp("fam-out-rtn.nib"));
    snprintf(only, sizeof only, "%s", tu_tmp("fam-out-only.nib"));
    nb_awq_opts o = {.q = {.bits = 4, .group = 32}, .scales = 1, .duo = 1, .clip = 1,
                     .out_q = {.bits = 4, .group = 32}, .out_scales = 1, .out_clip = 1,
                     .quiet = 1};
    nb_awq_opts k = o, r = o, y = o;
    k.out_q.bits = 0;
    r.out_scales = r.out_clip = 0;
    y.scales = y.clip = 0;
    if (quantize_blocks(m, ids, FT, FB, def, &o, 2) ||
        quantize_blocks(m, ids, FT, FB, kept, &k, 2) ||
        quantize_blocks(m, ids, FT, FB, rtn, &r, 2) || quantize_blocks(m, ids, FT, FB, only, &y, 2))
        return tu_failures++, (void)0;
    int nd = tensor_changed(path, def, "output_norm"), nr = tensor_changed(path, rtn, "output_norm");
    int ny = tensor_changed(path, only, "output_norm"), ay = tensor_changed(path, only,
                                                                            "blk.0.attn_norm");
    CHECK(nd == 1 && nr == 0 && ny == 1 && ay == 0,
          "%s: output_norm changed %d by default (want 1), %d rounded to nearest (want 0), %d "
          "searched alone (want 1; attn_norm %d, want 0)", f->name, nd, nr, ny, ay);
    struct nb_meta meta;
    struct nb_tensor_entry t, emb;
    int tied = (int)m->meta.tied_embeddings;
    CHECK(!entry_of(def, "output", &meta, &t) && !meta.tied_embeddings && t.dtype == NB_Q4 &&
              t.group_size == 32 && t.shape[0] == m->meta.vocab_size,
          "%s: the output is not a packed INT4 g32 tensor of an untied file", f->name);
    CHECK(!entry_of(def, "token_embd", &meta, &emb) && nb_dtype_width(emb.dtype) &&
              tensor_changed(path, def, "token_embd") == 0,
          "%s: token_embd is not the source's", f->name);
    CHECK(!entry_of(kept, "output", &meta, &t) && (int)meta.tied_embeddings == tied &&
              (tied ? t.name[0] == 0 : tensor_changed(path, kept, "output") == 0),
          "%s: out_q.bits 0 changed the output layer (tied %d)", f->name, tied);
    nb_hparams hp;
    float *want = logits_of(path, ids, &hp), *a = logits_of(def, ids, &hp);
    float *b = logits_of(kept, ids, &hp);
    size_t n = FT * (size_t)m->meta.vocab_size;
    double ab = INFINITY, a_fp = INFINITY, b_fp = INFINITY;
    if (want && a && b)
        ab = rel_rms(a, b, n), a_fp = rel_rms(a, want, n), b_fp = rel_rms(b, want, n);
    printf("%s%s: output INT4 g32 vs kept, logits relative RMS %.3g (from fp32: %.3g vs %.3g)\n",
           f->name, tied ? " (tied)" : "", ab, a_fp, b_fp);
    CHECK(ab < 0.1 && a_fp < 1.25 * b_fp + 0.05, "%s: the quantized output moved the logits by "
          "%g (from fp32 %g, kept %g)", f->name, ab, a_fp, b_fp);
    free(want);
    free(a);
    free(b);
}

/* llama3 scaling must change some of the frequencies this head size uses
 * and keep others, or the family would test nothing. */
static void check_rope_scaled(const family *f)
{
    float plain[32], scaled[32];
    nb_rope none = {0};
    int hd = (int)f->meta.head_dim, differ = 0;
    nb_rope_freqs(&none, f->meta.rope_theta, hd, plain);
    nb_rope_freqs(&f->rope, f->meta.rope_theta, hd, scaled);
    for (int i = 0; i < hd / 2; i++)
        differ += plain[i] != scaled[i];
    CHECK(differ > 1 && differ < hd / 2, "%s: %d of %d frequencies scaled", f->name, differ,
          hd / 2);
}

static void test_family(const family *f)
{
    char path[512];
    snprintf(path, sizeof path, "%s", tu_tmp("family.nib"));
    nb_model m;
    nb_err e = {{0}};
    if (tu_write_family(path, &f->meta, &f->rope, 5) || nb_model_open(&m, path, &e)) {
        CHECK(0, "%s: %s", f->name, e.msg);
        return;
    }
    int32_t ids[FT];
    uint64_t seed = 11;
    for (int i = 0; i < FT; i++)
        ids[i] = (int32_t)(tu_rand(&seed) % f->meta.vocab_size);
    float *x = malloc(FT * f->meta.dim * sizeof *x);
    if (x && !nb_layer_awq_embed(&m, ids, FT, x, &e))
        check_fold_layers(f, &m, x);
    double top, gap = forward_gap(&m, ids, FB, FT, &top) / top;
    printf("%s: batched layer forward vs reference: logits %.3g relative\n", f->name, gap);
    CHECK(gap < 1e-5, "%s: the batched forward differs from the reference by %g relative",
          f->name, gap);
    if (f->rope.scaling)
        check_rope_scaled(f);
    check_fold_file(f, &m, path, ids);
    check_quantized(f, &m, path, ids);
    check_output(f, &m, path, ids);
    free(x);
    nb_model_close(&m);
}

void test_families(void)
{
    family f[4];
    for (int i = 0, n = families(f); i < n; i++)
        test_family(&f[i]);
}
