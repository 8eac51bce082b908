/* Hugging Face Llama / Mistral folders: config.json for the shapes,
 * safetensors (single or sharded) for the weights, the tokenizer
 * (tokenizer.model as raw bytes, or tokenizer.json as a BPE blob: see
 * hf_tokenizer.c), the chat template recognised in tokenizer_config.json
 * or guessed from the name. Weights keep Hugging Face's q/k row order, so
 * RoPE rotates halves (NB_ROPE_HALVES). Config, names, shapes and dtypes are all checked
 * before the output file is created; a failure while writing (an f16
 * overflow, a full disk) aborts it, leaving nothing behind. The folder
 * reading (nb_hf_*) is shared with the AutoAWQ importer. */
#define _POSIX_C_SOURCE 200809L
#define _XOPEN_SOURCE 700 /* realpath */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../models/net.h"
#include "../neon/f16.h"
#include "../runtime/chat.h"
#include "../tokenizer/utf8.h"
#include "convert.h"
#include "json.h"
#include "progress.h"
#include "safetensors.h"

/* Bounds no real model reaches (they match runtime/model.c), so a hostile
 * config cannot drive the plan or the checks into absurd sizes. */
#define MAX_DIM (1 << 20)
#define MAX_LAYERS 4096
#define MAX_HEADS 1024
#define MAX_HEAD_DIM 1024
#define MAX_CTX (1 << 22)
#define MAX_CONFIG_BYTES (1u << 20)
#define MAX_TOKENIZER_CONFIG_BYTES (16u << 20) /* added_tokens_decoder can be large */
#define ARCHS "LlamaForCausalLM, MistralForCausalLM"

static void notice(const char *fmt, ...) NB_PRINTF(1, 2);

static void notice(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("nibble: note: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

char *nb_hf_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s/%s", dir, name);
    return s;
}

/* ---- config.json ---- */

static int absent(const nb_json_val *v)
{
    return !v || nb_json_type(v) == NB_JSON_NULL;
}

/* An optional integer field. */
static int cfg_int(const nb_json_val *root, const char *key, int64_t def, int64_t *out, nb_err *e)
{
    const nb_json_val *v = nb_json_get(root, key);
    *out = def;
    if (!absent(v) && nb_json_int(v, out))
        return nb_fail(e, "config.json: '%s' must be an integer, not a %s", key,
                       nb_json_type_name(nb_json_type(v)));
    return 0;
}

static int cfg_need(const nb_json_val *root, const char *key, int64_t *out, nb_err *e)
{
    if (absent(nb_json_get(root, key)))
        return nb_fail(e, "config.json: '%s' is missing", key);
    return cfg_int(root, key, 0, out, e);
}

static int cfg_num(const nb_json_val *root, const char *key, double def, double *out, nb_err *e)
{
    const nb_json_val *v = nb_json_get(root, key);
    if (absent(v)) {
        *out = def;
        return 0;
    }
    if (nb_json_number(v, out))
        return nb_fail(e, "config.json: '%s' must be a number, not a %s", key,
                       nb_json_type_name(nb_json_type(v)));
    return 0;
}

static int cfg_bool(const nb_json_val *root, const char *key, int *out, nb_err *e)
{
    const nb_json_val *v = nb_json_get(root, key);
    *out = 0;
    if (!absent(v) && nb_json_bool(v, out))
        return nb_fail(e, "config.json: '%s' must be true or false", key);
    return 0;
}

/* A token id: an integer, a list of them (the first counts), or -1. */
static int cfg_token(const nb_json_val *root, const char *key, int64_t *out, nb_err *e)
{
    const nb_json_val *v = nb_json_get(root, key);
    *out = -1;
    if (nb_json_type(v) == NB_JSON_ARRAY)
        v = nb_json_first(v);
    if (absent(v))
        return 0;
    if (nb_json_int(v, out) || *out < 0)
        return nb_fail(e, "config.json: '%s' is not a token id", key);
    return 0;
}

static int check_arch(const nb_json_val *root, int *mistral, nb_err *e)
{
    const char *arch = nb_json_string(nb_json_first(nb_json_get(root, "architectures")), NULL);
    const char *type = nb_json_string(nb_json_get(root, "model_type"), NULL);
    if (!arch)
        return nb_fail(e, "config.json names no architecture (supported: " ARCHS ")");
    if (strcmp(arch, "LlamaForCausalLM") && strcmp(arch, "MistralForCausalLM"))
        return nb_fail(e, "unsupported architecture '%.64s' in config.json (supported: " ARCHS ")",
                       arch);
    if (type && strcmp(type, "llama") && strcmp(type, "mistral"))
        return nb_fail(e, "unsupported model_type '%.64s' in config.json (supported: llama, "
                          "mistral)", type);
    *mistral = !strcmp(arch, "MistralForCausalLM") || (type && !strcmp(type, "mistral"));
    return 0;
}

/* Variants the runtime does not implement: refuse rather than run wrong. */
static int check_features(const nb_json_val *root, nb_err *e)
{
    const nb_json_val *act = nb_json_get(root, "hidden_act");
    const char *act_name = nb_json_string(act, NULL);
    int attn_bias, mlp_bias;
    if (!absent(nb_json_get(root, "rope_scaling")))
        return nb_fail(e, "config.json: rope_scaling is not supported yet");
    if (!absent(act) && (!act_name || strcmp(act_name, "silu")))
        return nb_fail(e, "config.json: hidden_act '%.32s' is not supported (only silu)",
                       act_name ? act_name : "?");
    if (cfg_bool(root, "attention_bias", &attn_bias, e) || cfg_bool(root, "mlp_bias", &mlp_bias, e))
        return -1;
    if (attn_bias)
        return nb_fail(e, "config.json: attention bias not supported");
    if (mlp_bias)
        return nb_fail(e, "config.json: mlp bias not supported");
    return 0;
}

static int read_shapes(const nb_json_val *root, struct nb_hf_config *c, nb_err *e)
{
    if (cfg_need(root, "hidden_size", &c->dim, e) ||
        cfg_need(root, "intermediate_size", &c->ffn, e) ||
        cfg_need(root, "num_hidden_layers", &c->n_layers, e) ||
        cfg_need(root, "num_attention_heads", &c->n_heads, e) ||
        cfg_need(root, "vocab_size", &c->vocab, e))
        return -1;
    /* The defaults are transformers' LlamaConfig defaults. */
    if (cfg_int(root, "num_key_value_heads", c->n_heads, &c->n_kv_heads, e) ||
        cfg_int(root, "max_position_embeddings", 2048, &c->max_ctx, e) ||
        cfg_num(root, "rms_norm_eps", 1e-6, &c->eps, e) ||
        cfg_num(root, "rope_theta", 10000.0, &c->theta, e) ||
        cfg_bool(root, "tie_word_embeddings", &c->tied, e))
        return -1;
    if (!absent(nb_json_get(root, "head_dim")))
        return cfg_int(root, "head_dim", 0, &c->head_dim, e);
    c->head_dim = 0; /* invalid heads are reported by check_shapes */
    if (c->n_heads > 0 && c->dim % c->n_heads)
        return nb_fail(e, "config.json: hidden_size %lld is not a multiple of the %lld heads",
                       (long long)c->dim, (long long)c->n_heads);
    if (c->n_heads > 0)
        c->head_dim = c->dim / c->n_heads;
    return 0;
}

static int in_range(int64_t v, int64_t max)
{
    return v > 0 && v <= max;
}

static int check_shapes(const struct nb_hf_config *c, nb_err *e)
{
    if (!in_range(c->dim, MAX_DIM) || !in_range(c->ffn, MAX_DIM) ||
        !in_range(c->vocab, MAX_DIM) || !in_range(c->n_layers, MAX_LAYERS) ||
        !in_range(c->max_ctx, MAX_CTX))
        return nb_fail(e, "config.json: sizes out of range (hidden %lld, intermediate %lld, "
                          "vocab %lld, layers %lld, positions %lld)",
                       (long long)c->dim, (long long)c->ffn, (long long)c->vocab,
                       (long long)c->n_layers, (long long)c->max_ctx);
    if (!in_range(c->n_heads, MAX_HEADS) || !in_range(c->n_kv_heads, c->n_heads) ||
        c->n_heads % c->n_kv_heads || !in_range(c->head_dim, MAX_HEAD_DIM) || c->head_dim % 2 ||
        c->n_heads * c->head_dim > MAX_DIM)
        return nb_fail(e, "config.json: invalid attention shape (heads %lld, kv heads %lld, "
                          "head dim %lld)",
                       (long long)c->n_heads, (long long)c->n_kv_heads, (long long)c->head_dim);
    if (!(c->eps > 0 && c->eps < 1 && (float)c->eps > 0))
        return nb_fail(e, "config.json: rms_norm_eps %g is not in (0, 1)", c->eps);
    if (!(c->theta > 0 && (float)c->theta < 1e12f))
        return nb_fail(e, "config.json: rope_theta %g is not in (0, 1e12)", c->theta);
    int64_t ids[3] = {c->bos, c->eos, c->pad};
    for (int i = 0; i < 3; i++)
        if (ids[i] >= c->vocab)
            return nb_fail(e, "config.json: token id %lld is outside the vocabulary of %lld",
                           (long long)ids[i], (long long)c->vocab);
    return 0;
}

/* Mistral's sliding window (0: none). How it is used: see fill_meta. */
static int read_window(const nb_json_val *root, struct nb_hf_config *c, nb_err *e)
{
    c->window = 0;
    if (!c->mistral)
        return 0;
    if (cfg_int(root, "sliding_window", 0, &c->window, e))
        return -1;
    if (c->window < 0)
        return nb_fail(e, "config.json: sliding_window %lld is negative", (long long)c->window);
    return 0;
}

/* The repository the model came from ("meta-llama/Llama-2-7b-chat-hf"):
 * a better name for guessing the chat template than a renamed folder. */
static void read_origin(const nb_json_val *root, struct nb_hf_config *c)
{
    const char *s = nb_json_string(nb_json_get(root, "_name_or_path"), NULL);
    const char *slash = s ? strrchr(s, '/') : NULL;
    snprintf(c->origin, sizeof c->origin, "%s", slash ? slash + 1 : s ? s : "");
}

static int read_config(const char *dir, struct nb_hf_config *c, nb_err *e)
{
    char *path = nb_hf_path(dir, "config.json");
    if (!path)
        return nb_fail(e, "out of memory");
    nb_json *doc = nb_json_parse_file(path, MAX_CONFIG_BYTES, e);
    free(path);
    if (!doc)
        return -1;
    const nb_json_val *root = nb_json_root(doc);
    int rc = -1;
    if (nb_json_type(root) != NB_JSON_OBJECT)
        nb_fail(e, "config.json is not a JSON object");
    else if (!check_arch(root, &c->mistral, e) && !check_features(root, e) &&
             !read_shapes(root, c, e) && !cfg_token(root, "bos_token_id", &c->bos, e) &&
             !cfg_token(root, "eos_token_id", &c->eos, e) &&
             !cfg_token(root, "pad_token_id", &c->pad, e) && !read_window(root, c, e))
        rc = check_shapes(c, e);
    if (!rc)
        read_origin(root, c);
    nb_json_free(doc);
    return rc;
}

/* ---- metadata ---- */

static void fill_meta(struct nb_meta *m, const struct nb_hf_config *c)
{
    memset(m, 0, sizeof *m);
    m->arch = NB_ARCH_LLAMA;
    m->dim = (uint32_t)c->dim;
    m->n_layers = (uint32_t)c->n_layers;
    m->n_heads = (uint32_t)c->n_heads;
    m->n_kv_heads = (uint32_t)c->n_kv_heads;
    m->head_dim = (uint32_t)c->head_dim;
    m->ffn_dim = (uint32_t)c->ffn;
    m->vocab_size = (uint32_t)c->vocab;
    m->max_ctx = (uint32_t)c->max_ctx;
    /* The runtime attends to the whole context. Within Mistral's sliding
     * window that is exactly what sliding-window attention computes, so
     * the context is capped to the window: outputs stay exact instead of
     * silently drifting once a longer context would need the window. */
    if (c->window && c->window < c->max_ctx) {
        m->max_ctx = (uint32_t)c->window;
        notice("sliding_window %lld is below max_position_embeddings %lld: the context is "
               "capped to %lld tokens",
               (long long)c->window, (long long)c->max_ctx, (long long)c->window);
    }
    m->rope_pairs = NB_ROPE_HALVES; /* q/k rows stay as Hugging Face stores them */
    m->rope_theta = (float)c->theta;
    m->norm_eps = (float)c->eps;
    m->bos_id = (int32_t)c->bos;
    m->eos_id = (int32_t)c->eos;
    m->unk_id = -1;
    m->pad_id = (int32_t)c->pad;
}

/* Bytes of s that fit in max without splitting a UTF-8 character. */
static size_t utf8_prefix(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    while (max && ((unsigned char)s[max] & 0xc0) == 0x80)
        max--;
    return max;
}

/* The given name, or the folder's own name (resolved, so "." works). */
static int set_name(struct nb_meta *m, const char *dir, const char *given, nb_err *e)
{
    size_t cap = sizeof m->name - 1;
    if (given) {
        if (strlen(given) > cap)
            return nb_fail(e, "model name '%.80s' is longer than %zu bytes", given, cap);
        memcpy(m->name, given, strlen(given) + 1);
        return 0;
    }
    char *full = realpath(dir, NULL);
    const char *path = full ? full : dir;
    size_t end = strlen(path), start;
    while (end > 1 && path[end - 1] == '/')
        end--;
    for (start = end; start > 0 && path[start - 1] != '/'; start--)
        ;
    size_t n = utf8_prefix(path + start, end - start, cap);
    memcpy(m->name, path + start, n);
    m->name[n] = 0;
    free(full);
    return 0;
}

/* ---- the tensor plan ---- */

enum kind { K_EMBED, K_NORM, K_Q, K_KV, K_O, K_UP, K_DOWN, K_HEAD };

static const struct {
    const char *src, *dst;
    int kind;
} layer_parts[] = {
    {"input_layernorm", NB_T_ATTN_NORM, K_NORM},
    {"self_attn.q_proj", NB_T_Q, K_Q},
    {"self_attn.k_proj", NB_T_K, K_KV},
    {"self_attn.v_proj", NB_T_V, K_KV},
    {"self_attn.o_proj", NB_T_O, K_O},
    {"post_attention_layernorm", NB_T_FFN_NORM, K_NORM},
    {"mlp.gate_proj", NB_T_GATE, K_UP},
    {"mlp.up_proj", NB_T_UP, K_UP},
    {"mlp.down_proj", NB_T_DOWN, K_DOWN},
};
#define N_PARTS (sizeof layer_parts / sizeof *layer_parts)

/* Linear weights are [out, in], as Hugging Face stores them. */
static void set_shape(nb_hf_item *it, const struct nb_hf_config *c, int kind)
{
    uint64_t d = (uint64_t)c->dim, f = (uint64_t)c->ffn, v = (uint64_t)c->vocab;
    uint64_t q = (uint64_t)(c->n_heads * c->head_dim), kv = (uint64_t)(c->n_kv_heads * c->head_dim);
    uint64_t rows[] = {[K_EMBED] = v, [K_NORM] = d, [K_Q] = q, [K_KV] = kv,
                       [K_O] = d, [K_UP] = f, [K_DOWN] = d, [K_HEAD] = v};
    uint64_t cols[] = {[K_EMBED] = d, [K_NORM] = 0, [K_Q] = d, [K_KV] = d,
                       [K_O] = q, [K_UP] = d, [K_DOWN] = f, [K_HEAD] = d};
    it->is_norm = kind == K_NORM;
    it->is_linear = kind != K_NORM && kind != K_EMBED;
    it->n_dims = it->is_norm ? 1 : 2;
    it->shape[0] = rows[kind];
    it->shape[1] = cols[kind];
}

static void add_item(nb_hf *imp, const char *src, const char *dst, int kind)
{
    nb_hf_item *it = &imp->items[imp->n_items++];
    snprintf(it->src, sizeof it->src, "%s", src);
    snprintf(it->dst, sizeof it->dst, "%s", dst);
    set_shape(it, &imp->c, kind);
}

static int build_plan(nb_hf *imp, nb_err *e)
{
    const struct nb_hf_config *c = &imp->c;
    imp->items = calloc(N_PARTS * (size_t)c->n_layers + 3, sizeof *imp->items);
    if (!imp->items)
        return nb_fail(e, "out of memory");
    add_item(imp, "model.embed_tokens.weight", NB_T_EMBED, K_EMBED);
    for (int l = 0; l < (int)c->n_layers; l++) {
        for (size_t p = 0; p < N_PARTS; p++) {
            char src[96], dst[NB_NAME_LEN];
            snprintf(src, sizeof src, "model.layers.%d.%s.weight", l, layer_parts[p].src);
            snprintf(dst, sizeof dst, layer_parts[p].dst, l);
            add_item(imp, src, dst, layer_parts[p].kind);
        }
    }
    add_item(imp, "model.norm.weight", NB_T_OUT_NORM, K_NORM);
    int has_head = nb_st_find(imp->st, "lm_head.weight") || nb_st_find(imp->st, "lm_head.qweight");
    if (!c->tied && !has_head)
        notice("config.json does not tie the embeddings, but there is no lm_head.weight: "
               "the output layer reuses token_embd");
    imp->meta.tied_embeddings = c->tied || !has_head;
    if (!imp->meta.tied_embeddings)
        add_item(imp, "lm_head.weight", NB_T_OUTPUT, K_HEAD);
    return 0;
}

static void format_shape(char *buf, size_t cap, int n_dims, const uint64_t *shape)
{
    size_t at = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < n_dims && at < cap; d++)
        at += (size_t)snprintf(buf + at, cap - at, "%s%llu", d ? ", " : "",
                               (unsigned long long)shape[d]);
    if (at < cap)
        snprintf(buf + at, cap - at, "]");
}

static int same_shape(const nb_hf_item *it, const nb_st_tensor *t)
{
    if (t->n_dims != it->n_dims)
        return 0;
    for (int d = 0; d < it->n_dims; d++)
        if (t->shape[d] != it->shape[d])
            return 0;
    return 1;
}

int nb_hf_check_plain(nb_hf_item *it, const nb_st_tensor *t, nb_err *e)
{
    it->t = NULL;
    if (!t)
        return nb_fail(e, "tensor '%s' is missing from the safetensors", it->src);
    if (t->dtype != NB_ST_F32 && t->dtype != NB_ST_F16 && t->dtype != NB_ST_BF16)
        return nb_fail(e, "tensor '%s' is %s; only F32, F16 and BF16 can be imported", it->src,
                       nb_st_dtype_name(t->dtype));
    if (!same_shape(it, t)) {
        char got[96], want[64];
        format_shape(got, sizeof got, t->n_dims, t->shape);
        format_shape(want, sizeof want, it->n_dims, it->shape);
        return nb_fail(e, "tensor '%s' has shape %s, but config.json implies %s", it->src, got,
                       want);
    }
    it->t = t;
    it->bytes = t->size;
    return 0;
}

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), k = strlen(tail);
    return n >= k && !strcmp(s + n - k, tail);
}

/* A tensor no item uses: harmless leftovers are skipped, biases and
 * anything else refused, since dropping real weights would run wrong. */
static int check_extra(const nb_hf *imp, const char *name, nb_err *e)
{
    if (ends_with(name, ".bias"))
        return nb_fail(e, "%s not supported (tensor '%.80s')",
                       strstr(name, "self_attn.") ? "attention bias" : "bias", name);
    if (ends_with(name, "rotary_emb.inv_freq"))
        return 0; /* recomputed from rope_theta by the runtime */
    if (imp->meta.tied_embeddings && !strcmp(name, "lm_head.weight"))
        return 0; /* tied: transformers ignores it too */
    return nb_fail(e, "unexpected tensor '%.80s' for a %lld-layer Llama", name,
                   (long long)imp->c.n_layers);
}

const nb_st_tensor *nb_hf_take(nb_hf *h, const char *name)
{
    const nb_st_tensor *t = nb_st_find(h->st, name);
    if (t)
        h->used[t - nb_st_at(h->st, 0)] = 1;
    return t;
}

int nb_hf_check_unused(const nb_hf *h, nb_err *e)
{
    for (size_t i = 0; i < nb_st_count(h->st); i++)
        if (!h->used[i] && check_extra(h, nb_st_at(h->st, i)->name, e))
            return -1;
    return 0;
}

static int resolve(nb_hf *imp, nb_err *e)
{
    for (size_t i = 0; i < imp->n_items; i++) {
        nb_hf_item *it = &imp->items[i];
        if (nb_hf_check_plain(it, nb_hf_take(imp, it->src), e))
            return -1;
    }
    return nb_hf_check_unused(imp, e);
}

/* ---- writing ---- */

static uint32_t nb_dtype_of(int st_dtype)
{
    return st_dtype == NB_ST_F16 ? NB_F16 : st_dtype == NB_ST_BF16 ? NB_BF16 : NB_F32;
}

static float load_elem(const nb_st_tensor *t, uint64_t i)
{
    const unsigned char *p = t->data;
    if (t->dtype == NB_ST_F32) {
        float f;
        memcpy(&f, p + 4 * i, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, p + 2 * i, 2);
    return t->dtype == NB_ST_BF16 ? nb_bf16_to_f32(h) : nb_f16_to_f32(h);
}

/* f16 tops out at 65504: a larger weight would become infinity and turn
 * every output into NaN, so refuse it and point to bf16 or f32. */
static int check_f16_range(const nb_hf_item *it, nb_err *e)
{
    for (uint64_t i = 0; i < it->t->n_elems; i++) {
        float x = load_elem(it->t, i);
        if (fabsf(x) >= 65520.0f && isfinite(x))
            return nb_fail(e, "tensor '%s' holds %g, beyond the f16 range: convert to bf16 or "
                              "f32 instead", it->src, (double)x);
    }
    return 0;
}

int nb_hf_write_plain(nb_writer *w, const nb_hf_item *it, int out_dtype, nb_err *e)
{
    uint32_t src = nb_dtype_of(it->t->dtype);
    int out = it->is_norm ? NB_F32 : out_dtype; /* norms: tiny, precision matters */
    if (out == NB_F16 && src != NB_F16 && check_f16_range(it, e))
        return -1;
    return nb_convert_tensor(w, it->dst, src, it->t->data, it->n_dims, it->shape, out, e);
}

static int write_items(const nb_hf *h, nb_writer *w, int quiet, nb_hf_put put, void *ctx,
                       nb_err *e)
{
    uint64_t total = 0, done = 0;
    for (size_t i = 0; i < h->n_items; i++)
        total += h->items[i].bytes;
    nb_progress p;
    nb_progress_start(&p, "converting", total, quiet);
    for (size_t i = 0; i < h->n_items; i++) {
        if (put(ctx, w, &h->items[i], e))
            return -1;
        done += h->items[i].bytes;
        nb_progress_update(&p, done);
    }
    nb_progress_done(&p);
    return 0;
}

int nb_hf_write(const nb_hf *h, const char *out, int quiet, nb_hf_put put, void *ctx,
                nb_err *e)
{
    nb_writer *w = nb_writer_open(out, &h->meta, h->vocab, h->vocab_size, e);
    if (!w)
        return -1;
    if (write_items(h, w, quiet, put, ctx, e)) {
        nb_writer_abort(w);
        return -1;
    }
    return nb_writer_commit(w, e); /* aborts by itself on failure */
}

/* ---- the chat template ---- */

/* tokenizer_config.json's chat_template: a string, or a list of named
 * templates (the "default" one counts). Absent or unreadable: NULL. */
static char *read_config_jinja(const char *dir)
{
    char *path = nb_hf_path(dir, "tokenizer_config.json");
    nb_json *doc = path ? nb_json_parse_file(path, MAX_TOKENIZER_CONFIG_BYTES, NULL) : NULL;
    free(path);
    const nb_json_val *v = nb_json_get(nb_json_root(doc), "chat_template");
    for (const nb_json_val *x = nb_json_first(v); x && nb_json_type(v) == NB_JSON_ARRAY;
         x = nb_json_next(x)) {
        const char *name = nb_json_string(nb_json_get(x, "name"), NULL);
        if (name && !strcmp(name, "default"))
            v = nb_json_get(x, "template");
    }
    const char *s = nb_json_string(v, NULL);
    char *copy = s ? strdup(s) : NULL;
    nb_json_free(doc);
    return copy;
}

/* The template's Jinja: tokenizer_config.json's, else chat_template.jinja,
 * the file newer transformers save it in. NULL when there is none. */
static char *read_jinja(const char *dir)
{
    char *copy = read_config_jinja(dir);
    char *path = copy ? NULL : nb_hf_path(dir, "chat_template.jinja");
    size_t size;
    if (path && access(path, F_OK) == 0)
        copy = nb_read_file(path, MAX_TOKENIZER_CONFIG_BYTES, &size, NULL);
    free(path);
    return copy;
}

/* The marker a template writes as text must be one token of the model
 * (an added token): ChatML in a SentencePiece model that has no
 * <|im_start|> would be spelled out in pieces the model never saw. */
static int has_marker(const nb_hf *h, const char *t)
{
    const nb_template *tt = nb_template_find(t);
    const char *marker = tt ? nb_template_stops(tt)[0] : NULL;
    if (!marker || (strcmp(marker, "<|im_start|>") && strcmp(marker, "<|start_header_id|>")))
        return 1;
    nb_tokenizer *tok = nb_tok_load_bytes(h->vocab, h->vocab_size, NULL);
    const char *piece = nb_tok_piece(tok, nb_tok_piece_to_id(tok, marker));
    int ok = piece && !strcmp(piece, marker);
    nb_tok_free(tok);
    return ok;
}

/* A ChatML default system prompt that no template of ours has. */
static void note_system(const char *jinja, const char *t, int quiet)
{
    char sys[256], safe[512];
    const nb_template *tt = nb_template_find(t);
    if (quiet || !tt || !nb_jinja_default_system(jinja, sys, sizeof sys) ||
        !strcmp(sys, nb_template_default_system(tt)))
        return;
    notice("the chat template's default system prompt \"%s\" is not kept: give it with "
           "nibble chat --system",
           nb_utf8_escape(safe, sizeof safe, sys));
}

static void set_template(nb_hf *h, const char *dir, int quiet)
{
    char *jinja = read_jinja(dir);
    const char *t = nb_template_guess(jinja, h->c.origin);
    if (!t[0] && (!jinja || !jinja[0])) /* _name_or_path may be a local path: try ours */
        t = nb_template_guess(NULL, h->meta.name);
    if (t[0] && !has_marker(h, t)) {
        if (!quiet)
            notice("the chat template is %s, but the tokenizer has no token for its markers: "
                   "the model will chat as plain completion",
                   t);
        t = "";
    } else if (!quiet && t[0]) {
        notice("chat template %s (from %s)", t, jinja ? "its Jinja template" : "the name");
        note_system(jinja, t, quiet);
    } else if (!quiet && jinja) {
        notice("tokenizer_config.json has a chat template of a kind nibble does not know: "
               "the model will chat as plain completion (nibble chat --template picks one)");
    }
    snprintf(h->meta.chat_template, sizeof h->meta.chat_template, "%s", t);
    free(jinja);
}

/* ---- the whole folder ---- */

int nb_hf_open(nb_hf *h, const char *dir, const nb_convert_opts *o, nb_err *e)
{
    memset(h, 0, sizeof *h);
    int d = o->out_dtype;
    if (d != -1 && d != NB_F32 && d != NB_F16 && d != NB_BF16)
        return nb_fail(e, "the Hugging Face importer writes f32, f16 or bf16, not dtype %d", d);
    if (read_config(dir, &h->c, e))
        return -1;
    fill_meta(&h->meta, &h->c);
    if (set_name(&h->meta, dir, o->name, e) ||
        nb_hf_tokenizer(h, dir, o->tokenizer_path, o->quiet, e))
        return -1;
    set_template(h, dir, o->quiet);
    h->st = nb_st_open_dir(dir, e);
    if (!h->st)
        return -1;
    h->used = calloc(nb_st_count(h->st) + 1, 1);
    if (!h->used)
        return nb_fail(e, "out of memory");
    return build_plan(h, e);
}

void nb_hf_close(nb_hf *h)
{
    nb_st_close(h->st);
    free(h->items);
    free(h->used);
    free(h->vocab);
    memset(h, 0, sizeof *h);
}

static int put_plain(void *ctx, nb_writer *w, const nb_hf_item *it, nb_err *e)
{
    const nb_convert_opts *o = ctx;
    return nb_hf_write_plain(w, it, o->out_dtype, e);
}

int nb_import_hf(const char *dir, const char *out, const nb_convert_opts *o, nb_err *e)
{
    nb_hf h;
    int rc = nb_hf_open(&h, dir, o, e) || resolve(&h, e) ||
             nb_hf_write(&h, out, o->quiet, put_plain, (void *)o, e);
    nb_hf_close(&h);
    return rc ? -1 : 0;
}
