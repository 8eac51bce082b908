/* GGUF models (llama.cpp, Ollama, LM Studio) into nibble files: the
 * architectures llama, qwen2 and qwen3, their hyper-parameters from the
 * metadata, the tokenizer stored in the file, the chat template, and the
 * tensors by name (docs/gguf.md has the tables).
 *
 * Tensors: F32, F16 and BF16 are copied; Q8_0 is dequantized exactly
 * (int8 x fp16 fits an f32), kept as f16 when every value is an f16, else
 * f32; Q4_0 linears are repacked exactly into NB_Q4 (group 32, zero point
 * 8, the fp16 scale as it is); every other type is dequantized to f32 with
 * ggml's arithmetic, to be quantized again with convert --quantize.
 *
 * RoPE: llama.cpp's converter permutes the q and k rows of llama models
 * back to Meta's order, whose RoPE rotates interleaved pairs
 * (NB_ROPE_INTERLEAVED); qwen2 and qwen3 keep Hugging Face's rows and
 * rotate halves (NB_ROPE_HALVES).
 *
 * The tokenizer is tools/gguf_vocab.c's (nb_gguf_tokenizer). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../models/arch.h"
#include "../../models/net.h"
#include "../../neon/f16.h"
#include "../../runtime/base/utf8.h"
#include "../../runtime/chat.h"
#include "../../runtime/kv.h"
#include "../../runtime/qtensor.h"
#include "../../tokenizer/tokenizer.h"
#include "../progress.h"
#include "convert.h"
#include "gguf.h"


/* What a tensor is, for its dtype and shape. */
enum kind { K_EMBED, K_NORM, K_LINEAR, K_HEAD };

typedef struct item {
    const nb_gguf_tensor *t;
    char dst[NB_NAME_LEN];
    int kind, n_dims;
    uint64_t shape[2]; /* nibble's order: [out, in] */
} item;

typedef struct gg {
    nb_gguf g;
    const char *path;
    const nb_arch *arch;
    struct nb_meta meta;
    nb_rope rope;
    nb_kvw kv;
    const void *kv_bytes;
    size_t kv_size;
    void *vocab;
    size_t vocab_size;
    nb_tokenizer *tok;
    item *items;
    size_t n_items;
    unsigned char *used; /* per GGUF tensor */
    int quiet, out_dtype;
} gg;

/* ---- hyper-parameters ---- */

static const char *akey(const gg *x, const char *suffix)
{
    static char buf[160];
    snprintf(buf, sizeof buf, "%s.%s", x->arch->name, suffix);
    return buf;
}

/* <arch>.suffix as an integer in 1..max; def 0 means required. */
static int hp_uint(gg *x, const char *suffix, uint64_t def, uint64_t max, uint32_t *out,
                   nb_err *e)
{
    uint64_t v = def;
    const char *key = akey(x, suffix);
    int rc = nb_gguf_get_uint(&x->g, key, max, &v, e);
    if (rc < 0)
        return -1;
    if (!rc && !def)
        return nb_fail(e, "GGUF key '%s' is missing", key);
    if (!v)
        return nb_fail(e, "GGUF key '%s' is 0", key);
    *out = (uint32_t)v;
    return 0;
}

static int hp_float(gg *x, const char *suffix, double def, double *out, nb_err *e)
{
    const char *key = akey(x, suffix);
    int rc = nb_gguf_get_float(&x->g, key, out, e);
    if (rc < 0)
        return -1;
    if (!rc && def < 0)
        return nb_fail(e, "GGUF key '%s' is missing", key);
    if (!rc)
        *out = def;
    return 0;
}

static int read_arch(gg *x, nb_err *e)
{
    const char *s;
    size_t n;
    int rc = nb_gguf_get_str(&x->g, "general.architecture", &s, &n, e);
    if (rc < 0)
        return -1;
    if (!rc)
        return nb_fail(e, "no general.architecture (supported: %s)", nb_arch_list());
    for (uint32_t id = 0; id < NB_ARCH_COUNT; id++) {
        const nb_arch *a = nb_arch_by_id(id);
        if (a && strlen(a->name) == n && !memcmp(a->name, s, n))
            x->arch = a;
    }
    if (!x->arch) {
        char buf[64], safe[200];
        snprintf(buf, sizeof buf, "%.*s", (int)(n < 60 ? n : 60), s);
        return nb_fail(e, "unsupported architecture '%s' (supported: %s)",
                       nb_utf8_escape(safe, sizeof safe, buf), nb_arch_list());
    }
    return 0;
}

static int read_rope_scaling(gg *x, nb_err *e)
{
    const char *s;
    size_t n;
    double factor = 0;
    int rc = nb_gguf_get_str(&x->g, akey(x, "rope.scaling.type"), &s, &n, e);
    memset(&x->rope, 0, sizeof x->rope);
    if (rc < 0)
        return -1;
    if (!rc || (n == 4 && !memcmp(s, "none", 4)))
        return 0;
    if (n != 6 || memcmp(s, "linear", 6)) {
        char buf[40], safe[120];
        snprintf(buf, sizeof buf, "%.*s", (int)(n < 32 ? n : 32), s);
        return nb_fail(e, "RoPE scaling '%s' is not supported (only linear, and llama3's "
                          "factors as a rope_freqs tensor)",
                       nb_utf8_escape(safe, sizeof safe, buf));
    }
    if (hp_float(x, "rope.scaling.factor", -1, &factor, e))
        return -1;
    x->rope.scaling = NB_ROPE_SCALE_LINEAR;
    x->rope.factor = (float)factor;
    nb_err why;
    if (nb_rope_check(&x->rope, &why))
        return nb_fail(e, "%s", why.msg);
    return 0;
}

/* Llama 3.1 and 3.2 files carry their RoPE scaling as a tensor of
 * per-frequency divisors (rope_freqs.weight, head_dim / 2 floats) rather
 * than as keys: the llama3 parameters that give the same divisors are
 * looked for among the usual ones. */
static int fit_rope_freqs(gg *x, const nb_gguf_tensor *t, nb_err *e)
{
    int half = (int)x->meta.head_dim / 2;
    if (t->type != NB_GGML_F32 || t->n_dims != 1 || t->ne[0] != (uint64_t)half)
        return nb_fail(e, "rope_freqs.weight must be %d F32 values", half);
    float *f = malloc(sizeof(float) * 3 * (size_t)half), *base = f + half, *got = f + 2 * half;
    if (!f)
        return nb_fail(e, "out of memory");
    nb_ggml_dequant(NB_GGML_F32, t->data, (size_t)half, f);
    float factor = 0;
    for (int i = 0; i < half; i++)
        factor = f[i] > factor ? f[i] : factor;
    nb_rope none = {0};
    nb_rope_freqs(&none, x->meta.rope_theta, (int)x->meta.head_dim, base);
    static const float lows[] = {1, 0.5f, 2}, highs[] = {4, 2, 8};
    static const uint32_t ctxs[] = {8192, 4096, 2048, 16384, 32768, 65536};
    uint64_t orig = 0;
    if (nb_gguf_get_uint(&x->g, akey(x, "rope.scaling.original_context_length"), 1u << 24,
                         &orig, e) < 0) {
        free(f);
        return -1;
    }
    for (size_t c = 0; c < sizeof ctxs / sizeof *ctxs; c++)
        for (size_t l = 0; l < 3; l++)
            for (size_t h = 0; h < 3; h++) {
                nb_rope r = {NB_ROPE_SCALE_LLAMA3, factor, lows[l], highs[h],
                             orig ? (uint32_t)orig : ctxs[c]};
                if (nb_rope_check(&r, NULL))
                    continue;
                nb_rope_freqs(&r, x->meta.rope_theta, (int)x->meta.head_dim, got);
                int ok = 1;
                for (int i = 0; i < half && ok; i++)
                    ok = fabsf(base[i] / got[i] - f[i]) <= 1e-4f * f[i];
                if (ok) {
                    x->rope = r;
                    free(f);
                    nb_notice(x->quiet, "rope_freqs.weight is llama3 RoPE scaling (factor %g, "
                                     "low %g, high %g, original context %u)",
                           r.factor, r.low_freq_factor, r.high_freq_factor, r.original_ctx);
                    return 0;
                }
            }
    free(f);
    return nb_fail(e, "rope_freqs.weight holds RoPE factors that match no llama3 scaling "
                      "nibble knows");
}

static int read_hparams(gg *x, nb_err *e)
{
    struct nb_meta *m = &x->meta;
    double theta, eps;
    uint64_t v;
    if (hp_uint(x, "embedding_length", 0, NB_LIMIT_DIM, &m->dim, e) ||
        hp_uint(x, "block_count", 0, NB_LIMIT_LAYERS, &m->n_layers, e) ||
        hp_uint(x, "attention.head_count", 0, NB_LIMIT_HEADS, &m->n_heads, e) ||
        hp_uint(x, "attention.head_count_kv", m->n_heads, NB_LIMIT_HEADS, &m->n_kv_heads, e) ||
        hp_uint(x, "feed_forward_length", 0, NB_LIMIT_DIM, &m->ffn_dim, e) ||
        hp_uint(x, "context_length", 0, NB_LIMIT_CTX, &m->max_ctx, e) ||
        hp_float(x, "rope.freq_base", 10000.0, &theta, e) ||
        hp_float(x, "attention.layer_norm_rms_epsilon", -1, &eps, e))
        return -1;
    if (m->dim % m->n_heads && !nb_gguf_find(&x->g, akey(x, "attention.key_length")))
        return nb_fail(e, "embedding_length %u is not a multiple of the %u heads", m->dim,
                       m->n_heads);
    if (hp_uint(x, "attention.key_length", m->dim / m->n_heads ? m->dim / m->n_heads : 1,
                NB_LIMIT_HEAD_DIM, &m->head_dim, e))
        return -1;
    if (m->n_heads % m->n_kv_heads || m->head_dim % 2 ||
        (uint64_t)m->n_heads * m->head_dim > NB_LIMIT_DIM)
        return nb_fail(e, "invalid attention shape (heads %u, kv heads %u, head dim %u)",
                       m->n_heads, m->n_kv_heads, m->head_dim);
    int rc = nb_gguf_get_uint(&x->g, akey(x, "attention.value_length"), NB_LIMIT_HEAD_DIM, &v, e);
    if (rc < 0 || (rc && v != m->head_dim))
        return rc < 0 ? -1 : nb_fail(e, "value_length %llu differs from key_length %u: not "
                                        "supported", (unsigned long long)v, m->head_dim);
    rc = nb_gguf_get_uint(&x->g, akey(x, "rope.dimension_count"), NB_LIMIT_HEAD_DIM, &v, e);
    if (rc < 0 || (rc && v != m->head_dim))
        return rc < 0 ? -1 : nb_fail(e, "RoPE over %llu of the %u dimensions of a head is not "
                                        "supported (only all of them)",
                                     (unsigned long long)v, m->head_dim);
    if (!(eps > 0 && eps < 1 && (float)eps > 0))
        return nb_fail(e, "layer_norm_rms_epsilon %g is not in (0, 1)", eps);
    if (!(theta > 0 && (float)theta < 1e12f))
        return nb_fail(e, "rope.freq_base %g is not in (0, 1e12)", theta);
    m->rope_theta = (float)theta;
    m->norm_eps = (float)eps;
    m->arch = x->arch->id;
    m->rope_pairs = x->arch->id == NB_ARCH_LLAMA ? NB_ROPE_INTERLEAVED : NB_ROPE_HALVES;
    const nb_gguf_tensor *rf = nb_gguf_tensor_find(&x->g, "rope_freqs.weight");
    if (read_rope_scaling(x, e))
        return -1;
    if (rf) {
        x->used[rf - x->g.tensors] = 1;
        if (x->rope.scaling)
            return nb_fail(e, "both rope.scaling.type and rope_freqs.weight: which one?");
        return fit_rope_freqs(x, rf, e);
    }
    return 0;
}

/* ---- chat template, name, key/values ---- */

/* The template's marker must be one token (as import_hf.c checks). */
static int has_marker(const gg *x, const char *t)
{
    const nb_template *tt = nb_template_find(t);
    const char *marker = tt ? nb_template_stops(tt)[0] : NULL;
    if (!marker || (strcmp(marker, "<|im_start|>") && strcmp(marker, "<|start_header_id|>")))
        return 1;
    const char *piece = nb_tok_piece(x->tok, nb_tok_piece_to_id(x->tok, marker));
    return piece && !strcmp(piece, marker);
}

static int set_template_and_kv(gg *x, nb_err *e)
{
    const char *s = NULL;
    size_t n = 0;
    char *jinja = NULL;
    if (nb_gguf_get_str(&x->g, "tokenizer.chat_template", &s, &n, e) < 0)
        return -1;
    if (s && !memchr(s, 0, n) && nb_utf8_bad_offset((const unsigned char *)s, n) == n) {
        if (!(jinja = malloc(n + 1)))
            return nb_fail(e, "out of memory");
        memcpy(jinja, s, n);
        jinja[n] = 0;
    }
    const char *t = nb_template_guess(jinja, x->meta.name);
    if (t[0] && !has_marker(x, t)) {
        nb_notice(x->quiet, "the chat template is %s, but the tokenizer has no token for its "
                         "markers: the model will chat as plain completion", t);
        t = "";
    } else if (t[0]) {
        nb_notice(x->quiet, "chat template %s (from %s)", t, jinja ? "its Jinja template" : "the name");
    } else if (jinja) {
        nb_notice(x->quiet, "the file has a chat template of a kind nibble does not know: the "
                         "model will chat as plain completion (nibble chat --template picks one)");
    }
    snprintf(x->meta.chat_template, sizeof x->meta.chat_template, "%s", t);
    nb_kvw_str(&x->kv, "general.architecture", x->arch->name);
    nb_rope_write(&x->rope, &x->kv);
    if (jinja)
        nb_kvw_str(&x->kv, "tokenizer.chat_template", jinja);
    free(jinja);
    x->kv_bytes = nb_kvw_bytes(&x->kv, &x->kv_size, e);
    return x->kv_bytes ? 0 : -1;
}

static void set_name(gg *x, const char *given)
{
    const char *s = NULL;
    size_t n = 0;
    char buf[64];
    if (given)
        s = given, n = strlen(given);
    else if (nb_gguf_get_str(&x->g, "general.name", &s, &n, NULL) != 1 || !n) {
        s = strrchr(x->path, '/');
        s = s ? s + 1 : x->path;
        n = strlen(s);
        if (n > 5 && !strcmp(s + n - 5, ".gguf"))
            n -= 5;
    }
    snprintf(buf, sizeof buf, "%.*s", (int)(n < 63 ? n : 63), s);
    /* cut at a whole character, keep it printable */
    size_t ok = nb_utf8_bad_offset((const unsigned char *)buf, strlen(buf));
    buf[ok] = 0;
    for (char *p = buf; *p; p++)
        if ((unsigned char)*p < 0x20)
            *p = ' ';
    snprintf(x->meta.name, sizeof x->meta.name, "%s", buf);
}

/* ---- the tensors ---- */

static int check_type(const nb_gguf_tensor *t, nb_err *e)
{
    if (nb_ggml_can_dequant(t->type))
        return 0;
    return nb_fail(e, "tensor '%s' is %s: nibble imports F32, F16, BF16, Q8_0, Q4_0, Q4_1, "
                      "Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K and Q6_K",
                   t->name, nb_ggml_type_name(t->type));
}

/* Adds an item: src is the GGUF name, required unless optional. */
static int add(gg *x, const char *src, const char *dst, int kind, uint64_t rows, uint64_t cols,
               int optional, nb_err *e)
{
    const nb_gguf_tensor *t = nb_gguf_tensor_find(&x->g, src);
    if (!t && optional)
        return 0;
    if (!t)
        return nb_fail(e, "tensor '%s' is missing (a %s model has it)", src, x->arch->name);
    x->used[t - x->g.tensors] = 1;
    if (check_type(t, e))
        return -1;
    item *it = &x->items[x->n_items++];
    it->t = t;
    snprintf(it->dst, sizeof it->dst, "%s", dst);
    it->kind = kind;
    it->n_dims = cols ? 2 : 1;
    it->shape[0] = rows, it->shape[1] = cols;
    uint64_t got[NB_GGUF_MAX_DIMS];
    for (uint32_t d = 0; d < t->n_dims; d++)
        got[d] = t->ne[t->n_dims - 1 - d];
    int same = (int)t->n_dims == it->n_dims;
    for (int d = 0; d < it->n_dims && same; d++)
        same = got[d] == it->shape[d];
    if (!same) {
        char a[96], b[64];
        nb_shape_text(a, sizeof a, (int)t->n_dims, got);
        nb_shape_text(b, sizeof b, it->n_dims, it->shape);
        return nb_fail(e, "tensor '%s' has shape %s, but the metadata implies %s", src, a, b);
    }
    return 0;
}

static int plan(gg *x, nb_err *e)
{
    const struct nb_meta *m = &x->meta;
    uint64_t dim = m->dim, q = (uint64_t)m->n_heads * m->head_dim,
             kv = (uint64_t)m->n_kv_heads * m->head_dim, ffn = m->ffn_dim, hd = m->head_dim;
    x->items = calloc(16 * (size_t)m->n_layers + 3, sizeof *x->items);
    if (!x->items)
        return nb_fail(e, "out of memory");
    if (add(x, "token_embd.weight", NB_T_EMBED, K_EMBED, m->vocab_size, dim, 0, e))
        return -1;
    for (uint32_t l = 0; l < m->n_layers; l++) {
        static const struct part {
            const char *src, *dst;
            int kind, rows, cols; /* 0 dim, 1 q, 2 kv, 3 ffn, 4 head_dim, -1 none */
            unsigned has;
        } parts[] = {
            {"attn_norm.weight", NB_T_ATTN_NORM, K_NORM, 0, -1, 0},
            {"attn_q.weight", NB_T_Q, K_LINEAR, 1, 0, 0},
            {"attn_k.weight", NB_T_K, K_LINEAR, 2, 0, 0},
            {"attn_v.weight", NB_T_V, K_LINEAR, 2, 0, 0},
            {"attn_output.weight", NB_T_O, K_LINEAR, 0, 1, 0},
            {"ffn_norm.weight", NB_T_FFN_NORM, K_NORM, 0, -1, 0},
            {"ffn_gate.weight", NB_T_GATE, K_LINEAR, 3, 0, 0},
            {"ffn_up.weight", NB_T_UP, K_LINEAR, 3, 0, 0},
            {"ffn_down.weight", NB_T_DOWN, K_LINEAR, 0, 3, 0},
            {"attn_q.bias", NB_T_Q_BIAS, K_NORM, 1, -1, NB_HAS_QKV_BIAS},
            {"attn_k.bias", NB_T_K_BIAS, K_NORM, 2, -1, NB_HAS_QKV_BIAS},
            {"attn_v.bias", NB_T_V_BIAS, K_NORM, 2, -1, NB_HAS_QKV_BIAS},
            {"attn_q_norm.weight", NB_T_Q_NORM, K_NORM, 4, -1, NB_HAS_QK_NORM},
            {"attn_k_norm.weight", NB_T_K_NORM, K_NORM, 4, -1, NB_HAS_QK_NORM},
        };
        uint64_t size[5] = {dim, q, kv, ffn, hd};
        for (size_t p = 0; p < sizeof parts / sizeof *parts; p++) {
            if (parts[p].has && !(x->arch->has & parts[p].has))
                continue;
            char src[96], dst[NB_NAME_LEN];
            snprintf(src, sizeof src, "blk.%u.%s", l, parts[p].src);
            snprintf(dst, sizeof dst, parts[p].dst, (int)l);
            if (add(x, src, dst, parts[p].kind, size[parts[p].rows],
                    parts[p].cols < 0 ? 0 : size[parts[p].cols], 0, e))
                return -1;
        }
    }
    size_t before = x->n_items;
    if (add(x, "output_norm.weight", NB_T_OUT_NORM, K_NORM, dim, 0, 0, e) ||
        add(x, "output.weight", NB_T_OUTPUT, K_HEAD, m->vocab_size, dim, 1, e))
        return -1;
    x->meta.tied_embeddings = x->n_items == before + 1;
    for (size_t i = 0; i < x->g.n_tensors; i++)
        if (!x->used[i]) {
            const char *n = x->g.tensors[i].name;
            char buf[160];
            nb_utf8_escape(buf, sizeof buf, n);
            if (strstr(n, ".bias"))
                return nb_fail(e, "tensor '%s': a %s model has no such bias (not supported)",
                               buf, x->arch->name);
            return nb_fail(e, "unexpected tensor '%s' for a %u-layer %s model", buf,
                           m->n_layers, x->arch->name);
        }
    return 0;
}

/* token_embd's rows are the vocabulary; <arch>.vocab_size must agree. */
static int read_vocab_size(gg *x, nb_err *e)
{
    const nb_gguf_tensor *t = nb_gguf_tensor_find(&x->g, "token_embd.weight");
    uint64_t v;
    if (!t)
        return nb_fail(e, "tensor 'token_embd.weight' is missing");
    if (t->n_dims != 2 || t->ne[1] > NB_LIMIT_DIM)
        return nb_fail(e, "token_embd.weight must be [vocab, dim] with a vocabulary up to %d",
                       NB_LIMIT_DIM);
    x->meta.vocab_size = (uint32_t)t->ne[1];
    int rc = nb_gguf_get_uint(&x->g, akey(x, "vocab_size"), UINT32_MAX, &v, e);
    if (rc < 0 || (rc && v != x->meta.vocab_size))
        return rc < 0 ? -1 : nb_fail(e, "%s.vocab_size %llu, but token_embd has %u rows",
                                     x->arch->name, (unsigned long long)v, x->meta.vocab_size);
    return 0;
}

/* ---- writing ---- */

static void store(uint32_t dtype, void *dst, size_t i, float v)
{
    if (dtype == NB_F16)
        ((uint16_t *)dst)[i] = nb_f32_to_f16(v);
    else if (dtype == NB_BF16)
        ((uint16_t *)dst)[i] = nb_f32_to_bf16(v);
    else
        ((float *)dst)[i] = v;
}

/* 1 when every value of the tensor is exactly an f16. */
static int f16_exact(const item *it, float *buf, size_t rows_per)
{
    uint64_t rows = it->t->n_elems / it->t->ne[0], cols = it->t->ne[0];
    size_t row_bytes = (size_t)(it->t->size / rows);
    for (uint64_t r = 0; r < rows; r += rows_per) {
        size_t k = (size_t)(rows - r < rows_per ? rows - r : rows_per);
        nb_ggml_dequant(it->t->type, it->t->data + r * row_bytes, k * cols, buf);
        for (size_t i = 0; i < k * cols; i++)
            if (!(nb_f16_to_f32(nb_f32_to_f16(buf[i])) == buf[i]) &&
                !(buf[i] != buf[i]))
                return 0;
    }
    return 1;
}

/* Dequantized in chunks of rows into dtype. */
static int put_dequant(nb_writer *w, const item *it, uint32_t dtype, nb_err *e)
{
    enum { CHUNK = 1 << 16 };
    uint64_t cols = it->t->ne[0], rows = it->t->n_elems / cols;
    size_t rows_per = cols >= CHUNK ? 1 : (size_t)(CHUNK / cols);
    size_t row_bytes = (size_t)(it->t->size / rows);
    float *buf = malloc(sizeof(float) * rows_per * (size_t)cols);
    void *conv = malloc(sizeof(float) * rows_per * (size_t)cols);
    struct nb_tensor_entry t;
    int rc = buf && conv ? 0 : nb_fail(e, "out of memory");
    if (!rc && (int)dtype == -2)
        dtype = f16_exact(it, buf, rows_per) ? NB_F16 : NB_F32;
    if (!rc)
        rc = nb_entry_init(&t, it->dst, dtype, it->n_dims, it->shape, e) ||
             nb_writer_begin(w, &t, e);
    for (uint64_t r = 0; r < rows && !rc; r += rows_per) {
        size_t k = (size_t)(rows - r < rows_per ? rows - r : rows_per), n = k * (size_t)cols;
        nb_ggml_dequant(it->t->type, it->t->data + r * row_bytes, n, buf);
        for (size_t i = 0; i < n; i++)
            store(dtype, conv, i, buf[i]);
        rc = nb_writer_append(w, conv, n * nb_dtype_width(dtype), e);
    }
    free(buf);
    free(conv);
    return rc || nb_writer_end(w, e) ? -1 : 0;
}

/* Q4_0 into NB_Q4: code q, zero point 8, the block's fp16 scale: the same
 * values, (q - 8) * d. */
static int put_q4_0(nb_writer *w, const item *it, nb_err *e)
{
    nb_qlayout l;
    uint64_t rows = it->shape[0], cols = it->shape[1];
    if (nb_qlayout_init(&l, rows, cols, 4, 32))
        return nb_fail(e, "%s: cannot be packed", it->dst);
    size_t ng = l.n_groups;
    uint8_t *codes = malloc((size_t)(rows * cols)), *zeros = malloc(rows * ng);
    float *scales = malloc(sizeof(float) * rows * ng);
    void *out = malloc(l.total_bytes);
    int rc = codes && zeros && scales && out ? 0 : nb_fail(e, "out of memory");
    for (size_t b = 0; !rc && b < rows * ng; b++) {
        const uint8_t *blk = it->t->data + 18 * b;
        scales[b] = nb_f16_to_f32((uint16_t)(blk[0] | blk[1] << 8)); /* exact */
        zeros[b] = 8;
        uint8_t *c = codes + 32 * b; /* blocks run along rows: block b = row b / ng */
        for (int j = 0; j < 16; j++) {
            c[j] = blk[2 + j] & 0xF;
            c[j + 16] = blk[2 + j] >> 4;
        }
    }
    struct nb_tensor_entry t;
    if (!rc) {
        nb_qpack(&l, codes, scales, zeros, out);
        rc = nb_qentry_init(&t, it->dst, &l, e) || nb_writer_add_entry(w, &t, out, e) ? -1 : 0;
    }
    free(codes), free(zeros), free(scales), free(out);
    return rc;
}

/* What each GGUF type becomes (docs/gguf.md, the type table). */
static int put(gg *x, nb_writer *w, const item *it, nb_err *e)
{
    uint32_t type = it->t->type;
    int asked = x->out_dtype;
    if (it->kind == K_NORM)
        return put_dequant(w, it, NB_F32, e); /* norms and biases: always f32 */
    if (type == NB_GGML_Q4_0 && (it->kind == K_LINEAR || it->kind == K_HEAD))
        return put_q4_0(w, it, e);
    if (type == NB_GGML_F32 || type == NB_GGML_F16 || type == NB_GGML_BF16) {
        uint32_t src = type == NB_GGML_F32 ? NB_F32 : type == NB_GGML_F16 ? NB_F16 : NB_BF16;
        return nb_convert_tensor(w, it->dst, src, it->t->data, it->n_dims, it->shape, asked, e);
    }
    if (asked >= 0)
        return put_dequant(w, it, (uint32_t)asked, e);
    if (type == NB_GGML_Q8_0 || type == NB_GGML_Q4_0)
        return put_dequant(w, it, (uint32_t)-2, e); /* exact: f16 if it holds them, else f32 */
    return put_dequant(w, it, NB_F32, e);
}

/* One line on what was dequantized, and what it costs. */
static void note_dequantized(const gg *x)
{
    uint64_t src = 0, dst = 0;
    size_t n = 0;
    char types[96] = "";
    for (size_t i = 0; i < x->n_items; i++) {
        const item *it = &x->items[i];
        uint32_t t = it->t->type;
        if (it->kind == K_NORM || t == NB_GGML_F32 || t == NB_GGML_F16 || t == NB_GGML_BF16 ||
            t == NB_GGML_Q8_0 || t == NB_GGML_Q4_0)
            continue;
        n++;
        src += it->t->size;
        dst += it->t->n_elems * (x->out_dtype >= 0 ? nb_dtype_width((uint32_t)x->out_dtype) : 4);
        const char *name = nb_ggml_type_name(t);
        if (!strstr(types, name) && strlen(types) + strlen(name) + 3 < sizeof types)
            strcat(strcat(types, types[0] ? ", " : ""), name);
    }
    if (n)
        nb_notice(x->quiet, "%zu tensors (%s) are dequantized to %s: %.1f MiB in the GGUF become "
                         "%.1f MiB; convert --quantize rtn|awq quantizes them again (a second "
                         "rounding on top of the GGUF's: --check TEXT says what it costs)",
               n, types, x->out_dtype >= 0 ? nb_dtype_name((uint32_t)x->out_dtype) : "f32",
               (double)src / (1 << 20), (double)dst / (1 << 20));
}

static int write_all(gg *x, const char *out, nb_err *e)
{
    nb_writer *w = nb_writer_open_kv(out, &x->meta, x->kv_bytes, x->kv_size, x->vocab,
                                     x->vocab_size, e);
    if (!w)
        return -1;
    uint64_t total = 0, done = 0;
    for (size_t i = 0; i < x->n_items; i++)
        total += x->items[i].t->size;
    nb_progress p;
    nb_progress_start(&p, "converting", total, x->quiet);
    for (size_t i = 0; i < x->n_items; i++) {
        if (put(x, w, &x->items[i], e)) {
            nb_writer_abort(w);
            return -1;
        }
        done += x->items[i].t->size;
        nb_progress_update(&p, done);
    }
    nb_progress_done(&p);
    return nb_writer_commit(w, e);
}

static int import(gg *x, const char *out, const nb_convert_opts *o, nb_err *e)
{
    int d = o->out_dtype;
    if (d != -1 && d != NB_F32 && d != NB_F16 && d != NB_BF16)
        return nb_fail(e, "the GGUF importer writes f32, f16 or bf16, not dtype %d", d);
    if (nb_gguf_open(&x->g, x->path, e))
        return -1;
    x->used = calloc(x->g.n_tensors + 1, 1);
    if (!x->used)
        return nb_fail(e, "out of memory");
    nb_err why;
    if (read_arch(x, &why) || read_vocab_size(x, &why) || read_hparams(x, &why) ||
        plan(x, &why))
        return nb_fail(e, "'%s': %s", x->path, why.msg);
    set_name(x, o->name);
    if (nb_gguf_tokenizer(&x->g, &x->meta, x->quiet, &x->vocab, &x->vocab_size, &x->tok,
                          &why) ||
        set_template_and_kv(x, &why))
        return nb_fail(e, "'%s': %s", x->path, why.msg);
    note_dequantized(x);
    return write_all(x, out, e);
}

int nb_import_gguf(const char *path, const char *out, const nb_convert_opts *o, nb_err *e)
{
    gg x;
    memset(&x, 0, sizeof x);
    x.path = path;
    x.quiet = o->quiet;
    x.out_dtype = o->out_dtype;
    x.meta.bos_id = x.meta.eos_id = x.meta.unk_id = x.meta.pad_id = -1;
    int rc = import(&x, out, o, e);
    nb_tok_free(x.tok);
    free(x.vocab);
    free(x.items);
    free(x.used);
    nb_kvw_free(&x.kv);
    nb_gguf_close(&x.g);
    return rc;
}
