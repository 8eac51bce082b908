/* Hugging Face folders of the families models/arch.h knows: config.json
 * for the family (model_type: llama, mistral, qwen2, qwen3), the shapes
 * and the RoPE scaling (linear, llama3); safetensors (single or sharded)
 * for the weights, with each family's optional blocks (Qwen2's q/k/v
 * biases, Qwen3's q/k norms, both written as f32); the tokenizer
 * (tokenizer.model as raw bytes, or tokenizer.json as a BPE blob: see
 * hf_tokenizer.c); the chat template recognised in tokenizer_config.json
 * or guessed from the name, its Jinja kept in the key/value metadata
 * beside the family's name and the scaling. Weights keep Hugging Face's
 * q/k row order, so RoPE rotates halves (NB_ROPE_HALVES). What the
 * runtime does not implement (sliding-window attention, other scalings,
 * o or MLP biases) is refused by name. Config, names, shapes and dtypes
 * are all checked before the output file is created; a failure while
 * writing (an f16 overflow, a full disk) aborts it, leaving nothing
 * behind. The folder reading (nb_hf_*) is shared with the AutoAWQ
 * importer. JSON is read by jansson (nb_json_file, tools/convert.c). */
#define _POSIX_C_SOURCE 200809L
#define _XOPEN_SOURCE 700 /* realpath */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../models/net.h"
#include "../../neon/f16.h"
#include "../../neon/qpack.h"
#include "../../runtime/base/utf8.h"
#include "../../runtime/chat.h"
#include "../../runtime/qtensor.h"
#include "../progress.h"
#include "convert.h"
#include "safetensors.h"

#define MAX_TOKENIZER_CONFIG_BYTES (16u << 20) /* added_tokens_decoder can be large */

char *nb_hf_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s/%s", dir, name);
    return s;
}

/* ---- metadata ---- */

static void fill_meta(struct nb_meta *m, const struct nb_hf_config *c)
{
    memset(m, 0, sizeof *m);
    m->arch = c->arch->id;
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
        nb_notice(0, "sliding_window %lld is below max_position_embeddings %lld: the context is "
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

enum kind { K_EMBED, K_NORM, K_Q, K_KV, K_O, K_UP, K_DOWN, K_HEAD, K_QB, K_KVB, K_HNORM };

/* Each layer's tensors; `has` names the optional block (models/arch.h)
 * a part belongs to, 0 for the parts every family has. */
static const struct {
    const char *src, *dst;
    int kind;
    unsigned has;
} layer_parts[] = {
    {"input_layernorm.weight", NB_T_ATTN_NORM, K_NORM, 0},
    {"self_attn.q_proj.weight", NB_T_Q, K_Q, 0},
    {"self_attn.q_proj.bias", NB_T_Q_BIAS, K_QB, NB_HAS_QKV_BIAS},
    {"self_attn.k_proj.weight", NB_T_K, K_KV, 0},
    {"self_attn.k_proj.bias", NB_T_K_BIAS, K_KVB, NB_HAS_QKV_BIAS},
    {"self_attn.v_proj.weight", NB_T_V, K_KV, 0},
    {"self_attn.v_proj.bias", NB_T_V_BIAS, K_KVB, NB_HAS_QKV_BIAS},
    {"self_attn.q_norm.weight", NB_T_Q_NORM, K_HNORM, NB_HAS_QK_NORM},
    {"self_attn.k_norm.weight", NB_T_K_NORM, K_HNORM, NB_HAS_QK_NORM},
    {"self_attn.o_proj.weight", NB_T_O, K_O, 0},
    {"post_attention_layernorm.weight", NB_T_FFN_NORM, K_NORM, 0},
    {"mlp.gate_proj.weight", NB_T_GATE, K_UP, 0},
    {"mlp.up_proj.weight", NB_T_UP, K_UP, 0},
    {"mlp.down_proj.weight", NB_T_DOWN, K_DOWN, 0},
};
#define N_PARTS (sizeof layer_parts / sizeof *layer_parts)

/* Linear weights are [out, in], as Hugging Face stores them; norms and
 * biases are vectors. */
static void set_shape(nb_hf_item *it, const struct nb_hf_config *c, int kind)
{
    uint64_t d = (uint64_t)c->dim, f = (uint64_t)c->ffn, v = (uint64_t)c->vocab;
    uint64_t q = (uint64_t)(c->n_heads * c->head_dim), kv = (uint64_t)(c->n_kv_heads * c->head_dim);
    uint64_t hd = (uint64_t)c->head_dim;
    uint64_t rows[] = {[K_EMBED] = v, [K_NORM] = d, [K_Q] = q,   [K_KV] = kv,
                       [K_O] = d,     [K_UP] = f,   [K_DOWN] = d, [K_HEAD] = v,
                       [K_QB] = q,    [K_KVB] = kv, [K_HNORM] = hd};
    uint64_t cols[] = {[K_EMBED] = d, [K_NORM] = 0, [K_Q] = d,   [K_KV] = d,
                       [K_O] = q,     [K_UP] = d,   [K_DOWN] = f, [K_HEAD] = d,
                       [K_QB] = 0,    [K_KVB] = 0,  [K_HNORM] = 0};
    it->is_norm = !cols[kind];
    it->is_linear = cols[kind] && kind != K_EMBED;
    it->n_dims = it->is_norm ? 1 : 2;
    it->shape[0] = rows[kind];
    it->shape[1] = cols[kind];
    it->dims[0] = 0;
    if (kind == K_Q || kind == K_O || kind == K_QB)
        snprintf(it->dims, sizeof it->dims, "%lld heads x head_dim %lld", (long long)c->n_heads,
                 (long long)c->head_dim);
    else if (kind == K_KV || kind == K_KVB)
        snprintf(it->dims, sizeof it->dims, "%lld kv heads x head_dim %lld",
                 (long long)c->n_kv_heads, (long long)c->head_dim);
    else if (kind == K_HNORM)
        snprintf(it->dims, sizeof it->dims, "head_dim %lld", (long long)c->head_dim);
}

static nb_hf_item *add_item(nb_hf *imp, const char *src, const char *dst, int kind)
{
    nb_hf_item *it = &imp->items[imp->n_items++];
    snprintf(it->src, sizeof it->src, "%s", src);
    snprintf(it->dst, sizeof it->dst, "%s", dst);
    set_shape(it, &imp->c, kind);
    it->block[0] = 0;
    return it;
}

static const char *block_about(unsigned has)
{
    return has == NB_HAS_QKV_BIAS ? "a bias on q, k and v" : "q_norm and k_norm in every layer";
}

/* Tied embeddings with an lm_head.weight all the same (Qwen2.5-0.5B's
 * checkpoints carry one): transformers ignores it, and so does nibble. */
static void note_dropped_head(const nb_hf *imp, int quiet)
{
    const nb_st_tensor *head = nb_st_find(imp->st, "lm_head.weight");
    const nb_st_tensor *emb = nb_st_find(imp->st, "model.embed_tokens.weight");
    if (quiet || !head)
        return;
    int same = emb && emb->dtype == head->dtype && emb->size == head->size &&
               !memcmp(emb->data, head->data, head->size);
    nb_notice(0, "config.json ties the embeddings: lm_head.weight (%s model.embed_tokens.weight) "
           "is dropped, as transformers does",
           same ? "equal to" : "which differs from");
}

static int build_plan(nb_hf *imp, int quiet, nb_err *e)
{
    const struct nb_hf_config *c = &imp->c;
    imp->items = calloc(N_PARTS * (size_t)c->n_layers + 3, sizeof *imp->items);
    if (!imp->items)
        return nb_fail(e, "out of memory");
    add_item(imp, "model.embed_tokens.weight", NB_T_EMBED, K_EMBED);
    for (int l = 0; l < (int)c->n_layers; l++) {
        for (size_t p = 0; p < N_PARTS; p++) {
            unsigned has = layer_parts[p].has;
            if (has && !(c->arch->has & has))
                continue;
            char src[96], dst[NB_NAME_LEN];
            snprintf(src, sizeof src, "model.layers.%d.%s", l, layer_parts[p].src);
            snprintf(dst, sizeof dst, layer_parts[p].dst, l);
            nb_hf_item *it = add_item(imp, src, dst, layer_parts[p].kind);
            if (has)
                snprintf(it->block, sizeof it->block, "a %s model has %s", c->arch->name,
                         block_about(has));
        }
    }
    add_item(imp, "model.norm.weight", NB_T_OUT_NORM, K_NORM);
    int has_head = nb_st_find(imp->st, "lm_head.weight") || nb_st_find(imp->st, "lm_head.qweight");
    if (!c->tied && !has_head)
        nb_notice(0, "config.json does not tie the embeddings, but there is no lm_head.weight: "
               "the output layer reuses token_embd");
    if (c->tied)
        note_dropped_head(imp, quiet);
    imp->meta.tied_embeddings = c->tied || !has_head;
    if (!imp->meta.tied_embeddings)
        add_item(imp, "lm_head.weight", NB_T_OUTPUT, K_HEAD);
    return 0;
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
    if (!t && it->block[0])
        return nb_fail(e, "tensor '%s' is missing from the safetensors (%s)", it->src, it->block);
    if (!t)
        return nb_fail(e, "tensor '%s' is missing from the safetensors", it->src);
    if (t->dtype != NB_ST_F32 && t->dtype != NB_ST_F16 && t->dtype != NB_ST_BF16)
        return nb_fail(e, "tensor '%s' is %s; only F32, F16 and BF16 can be imported", it->src,
                       nb_st_dtype_name(t->dtype));
    if (!same_shape(it, t)) {
        char got[96], want[64];
        nb_shape_text(got, sizeof got, t->n_dims, t->shape);
        nb_shape_text(want, sizeof want, it->n_dims, it->shape);
        return nb_fail(e, "tensor '%s' has shape %s, but config.json implies %s%s%s%s", it->src,
                       got, want, it->dims[0] ? " (" : "", it->dims, it->dims[0] ? ")" : "");
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
    return nb_fail(e, "unexpected tensor '%.80s' for a %lld-layer %s model", name,
                   (long long)imp->c.n_layers, imp->c.arch->name);
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

int nb_hf_resolve(nb_hf *h, nb_hf_bind bind, void *ctx, nb_err *e)
{
    for (size_t i = 0; i < h->n_items; i++) {
        nb_hf_item *it = &h->items[i];
        int rc = bind && it->is_linear ? bind(ctx, it, i, e)
                                       : nb_hf_check_plain(it, nb_hf_take(h, it->src), e);
        if (rc)
            return -1;
    }
    return nb_hf_check_unused(h, e);
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

int nb_hf_write_int4(nb_writer *w, const nb_hf_item *it, long long group, nb_hf_unpack unpack,
                     const void *ctx, nb_err *e)
{
    size_t n = (size_t)it->shape[0], k = (size_t)it->shape[1];
    nb_qlayout l;
    if (nb_qlayout_init(&l, n, k, 4, (int)group))
        return nb_fail(e, "'%s': no packed layout for %zu x %zu in groups of %lld", it->src, n, k,
                       group);
    uint8_t *codes = malloc(n * k), *zeros = malloc(n * l.n_groups), *out = malloc(l.total_bytes);
    float *scales = malloc(n * l.n_groups * sizeof *scales);
    struct nb_tensor_entry t;
    int rc = -1;
    if (!codes || !zeros || !out || !scales)
        nb_fail(e, "out of memory for '%s'", it->src);
    else if (!unpack(ctx, n, k, l.n_groups, codes, scales, zeros, e) &&
             !nb_qentry_init(&t, it->dst, &l, e)) {
        nb_qpack(&l, codes, scales, zeros, out);
        rc = nb_writer_add_entry(w, &t, out, e);
    }
    free(codes), free(zeros), free(out), free(scales);
    return rc;
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
    nb_writer *w = nb_writer_open_kv(out, &h->meta, h->kv_bytes, h->kv_size, h->vocab,
                                     h->vocab_size, e);
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
    json_t *doc = path ? nb_json_file(path, MAX_TOKENIZER_CONFIG_BYTES, NULL) : NULL;
    free(path);
    const json_t *v = json_object_get(doc, "chat_template"), *x;
    const char *s = json_string_value(v);
    size_t i;
    json_array_foreach(v, i, x) {
        const char *name = json_string_value(json_object_get(x, "name"));
        if (name && !strcmp(name, "default"))
            s = json_string_value(json_object_get(x, "template"));
    }
    char *copy = s ? strdup(s) : NULL;
    json_decref(doc);
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
    nb_notice(0, "the chat template's default system prompt \"%s\" is not kept: give it with "
           "nibble chat --system",
           nb_utf8_escape(safe, sizeof safe, sys));
}

/* Returns the Jinja text (malloc'd, NULL when none) for the metadata. */
static char *set_template(nb_hf *h, const char *dir, int quiet)
{
    char *jinja = read_jinja(dir);
    const char *t = nb_template_guess(jinja, h->c.origin);
    if (!t[0] && (!jinja || !jinja[0])) /* _name_or_path may be a local path: try ours */
        t = nb_template_guess(NULL, h->meta.name);
    if (t[0] && !has_marker(h, t)) {
        if (!quiet)
            nb_notice(0, "the chat template is %s, but the tokenizer has no token for its markers: "
                   "the model will chat as plain completion",
                   t);
        t = "";
    } else if (!quiet && t[0]) {
        nb_notice(0, "chat template %s (from %s)", t, jinja ? "its Jinja template" : "the name");
        note_system(jinja, t, quiet);
    } else if (!quiet && jinja) {
        nb_notice(0, "tokenizer_config.json has a chat template of a kind nibble does not know: "
               "the model will chat as plain completion (nibble chat --template picks one)");
    }
    snprintf(h->meta.chat_template, sizeof h->meta.chat_template, "%s", t);
    return jinja;
}

/* The key/value metadata: the family, its RoPE scaling, and the chat
 * template's Jinja as the folder has it (for reference: the runtime
 * renders meta.chat_template's). A Jinja text the metadata cannot hold
 * (not UTF-8, or holding NUL) is left out. */
static int build_kv(nb_hf *h, char *jinja, int quiet, nb_err *e)
{
    nb_kvw_str(&h->kv, "general.architecture", h->c.arch->name);
    nb_rope_write(&h->c.rope, &h->kv);
    if (jinja) {
        size_t n = strlen(jinja);
        if (nb_utf8_bad_offset((const unsigned char *)jinja, n) == n)
            nb_kvw_str(&h->kv, "tokenizer.chat_template", jinja);
        else if (!quiet)
            nb_notice(0, "the chat template's Jinja is not valid UTF-8: it is not kept in the file");
    }
    free(jinja);
    h->kv_bytes = nb_kvw_bytes(&h->kv, &h->kv_size, e);
    return h->kv_bytes ? 0 : -1;
}

/* ---- the whole folder ---- */

int nb_hf_open(nb_hf *h, const char *dir, const nb_convert_opts *o, nb_err *e)
{
    memset(h, 0, sizeof *h);
    int d = o->out_dtype;
    if (d != -1 && d != NB_F32 && d != NB_F16 && d != NB_BF16)
        return nb_fail(e, "the Hugging Face importer writes f32, f16 or bf16, not dtype %d", d);
    if (nb_hf_read_config(dir, &h->c, e))
        return -1;
    fill_meta(&h->meta, &h->c);
    if (set_name(&h->meta, dir, o->name, e) ||
        nb_hf_tokenizer(h, dir, o->tokenizer_path, o->quiet, e))
        return -1;
    if (build_kv(h, set_template(h, dir, o->quiet), o->quiet, e))
        return -1;
    h->st = nb_st_open_dir(dir, e);
    if (!h->st)
        return -1;
    h->used = calloc(nb_st_count(h->st) + 1, 1);
    if (!h->used)
        return nb_fail(e, "out of memory");
    return build_plan(h, o->quiet, e);
}

void nb_hf_close(nb_hf *h)
{
    nb_st_close(h->st);
    free(h->items);
    free(h->used);
    free(h->vocab);
    nb_kvw_free(&h->kv);
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
    int rc = nb_hf_open(&h, dir, o, e) || nb_hf_resolve(&h, NULL, NULL, e) ||
             nb_hf_write(&h, out, o->quiet, put_plain, (void *)o, e);
    nb_hf_close(&h);
    return rc ? -1 : 0;
}
