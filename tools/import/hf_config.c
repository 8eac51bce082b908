/* config.json of a Hugging Face folder: the family (model_type), the
 * shapes, the special ids, the RoPE scaling (linear, llama3; under
 * rope_scaling or transformers 5's rope_parameters) and what the runtime
 * does not implement (sliding windows, partial rotary, o or MLP biases),
 * refused by name. Shared by the Hugging Face and AutoAWQ importers
 * (nb_hf_open). */
#define _POSIX_C_SOURCE 200809L
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../models/arch.h"
#include "../../runtime/base/utf8.h"
#include "convert.h"

#define MAX_CONFIG_BYTES (1u << 20)

/* ---- config.json ---- */

static int absent(const json_t *v)
{
    return !v || json_is_null(v);
}

/* An optional integer field. */
static int cfg_int(const json_t *root, const char *key, int64_t def, int64_t *out, nb_err *e)
{
    const json_t *v = json_object_get(root, key);
    *out = def;
    if (!absent(v) && nb_json_i64(v, out))
        return nb_fail(e, "config.json: '%s' must be an integer, not a %s", key,
                       json_is_number(v) ? "fraction" : nb_json_kind(v));
    return 0;
}

static int cfg_need(const json_t *root, const char *key, int64_t *out, nb_err *e)
{
    if (absent(json_object_get(root, key)))
        return nb_fail(e, "config.json: '%s' is missing", key);
    return cfg_int(root, key, 0, out, e);
}

static int cfg_num(const json_t *root, const char *key, double def, double *out, nb_err *e)
{
    const json_t *v = json_object_get(root, key);
    if (absent(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_number(v))
        return nb_fail(e, "config.json: '%s' must be a number, not a %s", key, nb_json_kind(v));
    *out = json_number_value(v);
    return 0;
}

static int cfg_bool(const json_t *root, const char *key, int *out, nb_err *e)
{
    const json_t *v = json_object_get(root, key);
    *out = json_is_true(v);
    if (!absent(v) && !json_is_boolean(v))
        return nb_fail(e, "config.json: '%s' must be true or false", key);
    return 0;
}

/* A token id: an integer, a list of them (the first counts), or -1. */
static int cfg_token(const json_t *root, const char *key, int64_t *out, nb_err *e)
{
    const json_t *v = json_object_get(root, key);
    *out = -1;
    if (json_is_array(v))
        v = json_array_get(v, 0);
    if (absent(v))
        return 0;
    if (nb_json_i64(v, out) || *out < 0)
        return nb_fail(e, "config.json: '%s' is not a token id", key);
    return 0;
}

/* The Hugging Face classes nibble reads: each family's, and Mistral's. */
static const char *class_list(void)
{
    static char list[256];
    if (!list[0]) {
        for (uint32_t id = 0; id < NB_ARCH_COUNT; id++) {
            const nb_arch *a = nb_arch_by_id(id);
            if (a) {
                strcat(list, a->hf_class);
                strcat(list, ", ");
            }
        }
        strcat(list, "MistralForCausalLM");
    }
    return list;
}

/* The family: architectures[0] names a class nibble reads, and
 * model_type (when given) the same family. Mistral is the LLaMA decoder. */
static int check_arch(const json_t *root, struct nb_hf_config *c, nb_err *e)
{
    const char *cls = json_string_value(json_array_get(json_object_get(root, "architectures"), 0));
    const char *type = json_string_value(json_object_get(root, "model_type"));
    const nb_arch *by_class = NULL, *by_type = NULL;
    if (!cls)
        return nb_fail(e, "config.json names no architecture (supported: %s)", class_list());
    c->mistral = !strcmp(cls, "MistralForCausalLM");
    for (uint32_t id = 0; id < NB_ARCH_COUNT && !by_class; id++) {
        const nb_arch *a = nb_arch_by_id(id);
        if (a && (!strcmp(a->hf_class, cls) || (c->mistral && id == NB_ARCH_LLAMA)))
            by_class = a;
    }
    if (!by_class)
        return nb_fail(e, "unsupported architecture '%.64s' in config.json (supported: %s)", cls,
                       class_list());
    if (type) {
        int mistral = !strcmp(type, "mistral");
        by_type = mistral ? nb_arch_by_id(NB_ARCH_LLAMA) : nb_arch_by_hf_type(type);
        if (!by_type)
            return nb_fail(e, "unsupported model_type '%.64s' in config.json (supported: %s, "
                              "mistral)",
                           type, nb_arch_list());
        if (by_type != by_class)
            return nb_fail(e, "config.json: model_type '%.64s' does not match the architecture "
                              "'%.64s'",
                           type, cls);
        c->mistral |= mistral;
    }
    c->arch = by_class;
    return 0;
}

/* ---- RoPE scaling ---- */

static int scaling_num(const json_t *s, const char *type, const char *key, double *out,
                       nb_err *e)
{
    const json_t *v = json_object_get(s, key);
    if (absent(v))
        return nb_fail(e, "config.json: rope_scaling of type '%s' needs '%s'", type, key);
    if (!json_is_number(v))
        return nb_fail(e, "config.json: rope_scaling '%s' must be a number, not a %s", key,
                       nb_json_kind(v));
    *out = json_number_value(v);
    return 0;
}

/* rope_scaling (rope_type, or the older key type): none, "default",
 * "linear" (factor) or "llama3" (factor, low_freq_factor,
 * high_freq_factor, original_max_position_embeddings). Newer transformers
 * write it, with rope_theta, into rope_parameters. */
static int read_rope(const json_t *root, struct nb_hf_config *c, nb_err *e)
{
    const json_t *s = json_object_get(root, "rope_scaling");
    const json_t *params = json_object_get(root, "rope_parameters");
    const char *key = "rope_scaling";
    memset(&c->rope, 0, sizeof c->rope);
    if (!absent(params)) {
        if (!json_is_object(params))
            return nb_fail(e, "config.json: 'rope_parameters' must be an object");
        if (cfg_num(params, "rope_theta", c->theta, &c->theta, e))
            return -1;
        s = params, key = "rope_parameters";
    }
    if (absent(s))
        return 0;
    if (!json_is_object(s))
        return nb_fail(e, "config.json: '%s' must be an object or null, not a %s", key,
                       nb_json_kind(s));
    const json_t *tv = json_object_get(s, "rope_type");
    if (absent(tv))
        tv = json_object_get(s, "type");
    const char *type = json_string_value(tv);
    if (!type)
        return nb_fail(e, "config.json: %s names no rope_type", key);
    double factor = 0, low = 0, high = 0, old = 0;
    if (!strcmp(type, "default"))
        return 0;
    if (!strcmp(type, "linear")) {
        c->rope.scaling = NB_ROPE_SCALE_LINEAR;
        if (scaling_num(s, type, "factor", &factor, e))
            return -1;
    } else if (!strcmp(type, "llama3")) {
        c->rope.scaling = NB_ROPE_SCALE_LLAMA3;
        if (scaling_num(s, type, "factor", &factor, e) ||
            scaling_num(s, type, "low_freq_factor", &low, e) ||
            scaling_num(s, type, "high_freq_factor", &high, e) ||
            scaling_num(s, type, "original_max_position_embeddings", &old, e))
            return -1;
        if (old != floor(old) || old < 0 || old > 4294967295.0)
            return nb_fail(e, "config.json: rope_scaling original_max_position_embeddings %g is "
                              "not a context length", old);
    } else {
        char safe[80];
        return nb_fail(e, "config.json: unknown RoPE scaling type '%s' (supported: linear, "
                          "llama3)",
                       nb_utf8_escape(safe, sizeof safe, type));
    }
    c->rope.factor = (float)factor;
    c->rope.low_freq_factor = (float)low;
    c->rope.high_freq_factor = (float)high;
    c->rope.original_ctx = (uint32_t)old;
    nb_err why;
    if (nb_rope_check(&c->rope, &why))
        return nb_fail(e, "config.json: rope_scaling: %s", why.msg);
    return 0;
}

/* Variants the runtime does not implement: refuse rather than run wrong. */
static int check_features(const json_t *root, const struct nb_hf_config *c, nb_err *e)
{
    const json_t *act = json_object_get(root, "hidden_act");
    const char *act_name = json_string_value(act);
    int attn_bias, mlp_bias, window;
    double partial = 1;
    if (!absent(act) && (!act_name || strcmp(act_name, "silu")))
        return nb_fail(e, "config.json: hidden_act '%.32s' is not supported (only silu)",
                       act_name ? act_name : "?");
    if (cfg_bool(root, "attention_bias", &attn_bias, e) || cfg_bool(root, "mlp_bias", &mlp_bias, e) ||
        cfg_bool(root, "use_sliding_window", &window, e) ||
        cfg_num(root, "partial_rotary_factor", 1.0, &partial, e))
        return -1;
    /* Qwen2 always has q/k/v biases, whatever attention_bias says; in the
     * other families it adds an o bias too, which no forward pass has. */
    if (attn_bias && !(c->arch->has & NB_HAS_QKV_BIAS))
        return nb_fail(e, "config.json: attention bias not supported (attention_bias true gives "
                          "a %s model a bias on q, k, v and o)",
                       c->arch->name);
    if (mlp_bias)
        return nb_fail(e, "config.json: mlp bias not supported");
    if (window)
        return nb_fail(e, "config.json: use_sliding_window is true: sliding-window attention "
                          "is not supported (nibble attends to the whole context)");
    if (partial != 1.0)
        return nb_fail(e, "config.json: partial_rotary_factor %g is not supported (only 1)",
                       partial);
    const json_t *types = json_object_get(root, "layer_types"), *t;
    size_t i;
    json_array_foreach(types, i, t) {
        const char *s = json_string_value(t);
        if (!s || strcmp(s, "full_attention")) {
            char safe[80];
            return nb_fail(e, "config.json: layer_types holds '%s': only full_attention is "
                              "supported",
                           s ? nb_utf8_escape(safe, sizeof safe, s) : "?");
        }
    }
    return 0;
}

static int read_shapes(const json_t *root, struct nb_hf_config *c, nb_err *e)
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
    if (!absent(json_object_get(root, "head_dim")))
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
    if (!in_range(c->dim, NB_LIMIT_DIM) || !in_range(c->ffn, NB_LIMIT_DIM) ||
        !in_range(c->vocab, NB_LIMIT_DIM) || !in_range(c->n_layers, NB_LIMIT_LAYERS) ||
        !in_range(c->max_ctx, NB_LIMIT_CTX))
        return nb_fail(e, "config.json: sizes out of range (hidden %lld, intermediate %lld, "
                          "vocab %lld, layers %lld, positions %lld)",
                       (long long)c->dim, (long long)c->ffn, (long long)c->vocab,
                       (long long)c->n_layers, (long long)c->max_ctx);
    if (!in_range(c->n_heads, NB_LIMIT_HEADS) || !in_range(c->n_kv_heads, c->n_heads) ||
        c->n_heads % c->n_kv_heads || !in_range(c->head_dim, NB_LIMIT_HEAD_DIM) ||
        c->head_dim % 2 || c->n_heads * c->head_dim > NB_LIMIT_DIM)
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
static int read_window(const json_t *root, struct nb_hf_config *c, nb_err *e)
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
static void read_origin(const json_t *root, struct nb_hf_config *c)
{
    const char *s = json_string_value(json_object_get(root, "_name_or_path"));
    const char *slash = s ? strrchr(s, '/') : NULL;
    snprintf(c->origin, sizeof c->origin, "%s", slash ? slash + 1 : s ? s : "");
}

int nb_hf_read_config(const char *dir, struct nb_hf_config *c, nb_err *e)
{
    char *path = nb_hf_path(dir, "config.json");
    if (!path)
        return nb_fail(e, "out of memory");
    json_t *root = nb_json_file(path, MAX_CONFIG_BYTES, e);
    free(path);
    if (!root)
        return -1;
    int rc = -1;
    if (!json_is_object(root))
        nb_fail(e, "config.json is not a JSON object");
    else if (!check_arch(root, c, e) && !check_features(root, c, e) &&
             !read_shapes(root, c, e) && !read_rope(root, c, e) &&
             !cfg_token(root, "bos_token_id", &c->bos, e) &&
             !cfg_token(root, "eos_token_id", &c->eos, e) &&
             !cfg_token(root, "pad_token_id", &c->pad, e) && !read_window(root, c, e))
        rc = check_shapes(c, e);
    if (!rc)
        read_origin(root, c);
    json_decref(root);
    return rc;
}

