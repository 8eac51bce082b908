/* compressed-tensors checkpoints (llm-compressor's format, quant_method
 * "compressed-tensors", format "pack-quantized"): a Hugging Face folder
 * whose quantized linears P are stored as P.weight_packed (int32 words of
 * eight 4-bit codes along each row, the code q + 8 of a signed q in
 * [-8, 7]), P.weight_scale (one scale per group or per row),
 * P.weight_zero_point (asymmetric schemes: z + 8, eight rows per int32
 * word) and P.weight_shape. docs/compressed-tensors.md has the layout.
 * Since (q + 8) - (z + 8) = q - z, the stored nibbles are nibble's codes
 * and zero points as they are (8 when symmetric), and every dequantized
 * weight (q - z) * s equals the library's bit for bit; a scale fp16
 * cannot hold exactly is refused, never rounded. Whatever else a scheme
 * could mean (other bit widths, float types, activation quantization,
 * g_idx, transforms) is refused with one line. Config, names, plain
 * tensors and tokenizer are import_hf.c's. */
#define _POSIX_C_SOURCE 200809L
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../neon/f16.h"
#include "../../neon/qpack.h"
#include "../../runtime/model.h"
#include "../../runtime/qtensor.h"
#include "convert.h"

#define MAX_CONFIG_BYTES (1u << 20)
#define PACK "pack-quantized"

struct ct_cfg {
    int64_t group;  /* 0: strategy channel, one group per row */
    int symmetric;
    json_t *doc;    /* config.json, kept for the ignore list */
    const json_t *ignore;
};

/* The tensors of one quantized linear (wp NULL: a plain one). */
struct ct_lin {
    const nb_st_tensor *wp, *sc, *zp, *shape;
};

static json_t *read_config(const char *dir, nb_err *e)
{
    char *path = nb_hf_path(dir, "config.json");
    json_t *doc = path ? nb_json_file(path, MAX_CONFIG_BYTES, e) : NULL;
    free(path);
    return doc;
}

static const char *str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

int nb_hf_is_ct(const char *dir)
{
    json_t *doc = read_config(dir, NULL);
    const char *m = str(json_object_get(doc, "quantization_config"), "quant_method");
    int found = m && !strcmp(m, "compressed-tensors");
    json_decref(doc);
    return found;
}

/* ---- the quantization config ---- */

/* null, false, {} or a missing key: nothing asked of the runtime. */
static int is_none(const json_t *v)
{
    return !v || json_is_null(v) || json_is_false(v) || (json_is_object(v) && !json_object_size(v));
}

static int read_group_size(const json_t *w, const char *strat, int64_t *group, nb_err *e)
{
    *group = 0;
    if (!strcmp(strat, "channel"))
        return 0;
    const json_t *v = json_object_get(w, "group_size");
    if (!v || nb_json_i64(v, group))
        return nb_fail(e, "compressed-tensors: strategy group needs an integer group_size, "
                          "got %s", nb_json_kind(v));
    if (*group <= 0 || *group % 32 || *group > 65535)
        return nb_fail(e, "compressed-tensors group_size %lld: nibble's groups are positive "
                          "multiples of 32 (32, 64, 128, ...)", (long long)*group);
    return 0;
}

/* A group's weights scheme: int, 4 bits, group or channel, static, no
 * activation reordering that stores a g_idx. */
static int read_weights(const json_t *w, struct ct_cfg *c, nb_err *e)
{
    const char *type = str(w, "type"), *strat = str(w, "strategy"), *ord = str(w, "actorder");
    int64_t bits = 0;
    if (!json_is_object(w))
        return nb_fail(e, "compressed-tensors: a config group has no weights scheme");
    if (!type || strcmp(type, "int"))
        return nb_fail(e, "compressed-tensors weights of type '%.32s': nibble imports int weights "
                          "(its packed type holds integer codes)", type ? type : "?");
    if (nb_json_i64(json_object_get(w, "num_bits"), &bits) || bits != 4)
        return nb_fail(e, "compressed-tensors checkpoint with %lld-bit weights: nibble's packed "
                          "type is INT4, so only num_bits 4 is repacked exactly", (long long)bits);
    if (!strat || (strcmp(strat, "group") && strcmp(strat, "channel")))
        return nb_fail(e, "compressed-tensors strategy '%.32s': nibble has scales per group or "
                          "per row (group, channel)", strat ? strat : "?");
    if (ord && (!strcmp(ord, "group") || !strcmp(ord, "dynamic")))
        return nb_fail(e, "compressed-tensors actorder '%s' stores a g_idx (groups of scattered "
                          "columns): nibble's groups are runs of consecutive columns", ord);
    if (!is_none(json_object_get(w, "dynamic")) || !is_none(json_object_get(w, "block_structure")))
        return nb_fail(e, "compressed-tensors: dynamic or block-structured weight scales are "
                          "not supported");
    const json_t *sym = json_object_get(w, "symmetric");
    if (sym && !json_is_boolean(sym))
        return nb_fail(e, "compressed-tensors: 'symmetric' must be true or false");
    c->symmetric = !sym || json_is_true(sym); /* the library's default */
    return read_group_size(w, strat, &c->group, e);
}

static int read_group(const char *name, const json_t *g, struct ct_cfg *c, int first, nb_err *e)
{
    const char *fmt = str(g, "format");
    if (!is_none(json_object_get(g, "input_activations")) ||
        !is_none(json_object_get(g, "output_activations")))
        return nb_fail(e, "compressed-tensors group '%.32s' quantizes activations: nibble imports "
                          "weight-only checkpoints (W4A16)", name);
    if (fmt && strcmp(fmt, PACK))
        return nb_fail(e, "compressed-tensors group '%.32s' has format '%.32s' (nibble imports "
                          PACK ")", name, fmt);
    struct ct_cfg one = *c;
    if (read_weights(json_object_get(g, "weights"), &one, e))
        return -1;
    if (!first && (one.group != c->group || one.symmetric != c->symmetric))
        return nb_fail(e, "compressed-tensors config groups with different weight schemes: "
                          "nibble imports one scheme for every linear");
    *c = one;
    return 0;
}

static int read_top(const json_t *q, nb_err *e)
{
    const char *fmt = str(q, "format");
    if (!fmt || (strcmp(fmt, PACK) && strcmp(fmt, "mixed-precision")))
        return nb_fail(e, "compressed-tensors format '%.32s' is not supported: nibble imports "
                          PACK " (4-bit ints in int32 words)", fmt ? fmt : "?");
    const json_t *sp = json_object_get(q, "sparsity_config");
    const char *spf = str(sp, "format");
    if (!is_none(sp) && (!spf || strcmp(spf, "dense")))
        return nb_fail(e, "compressed-tensors sparsity (format '%.32s') is not supported",
                       spf ? spf : "?");
    if (!is_none(json_object_get(q, "transform_config")))
        return nb_fail(e, "compressed-tensors transform_config (rotations applied at run time) "
                          "is not supported");
    if (!is_none(json_object_get(q, "kv_cache_scheme")))
        return nb_fail(e, "compressed-tensors kv_cache_scheme (a quantized KV cache) is not "
                          "supported");
    return 0;
}

static int read_cfg(const char *dir, struct ct_cfg *c, nb_err *e)
{
    if (!(c->doc = read_config(dir, e)))
        return -1;
    const json_t *q = json_object_get(c->doc, "quantization_config"), *g;
    const char *m = str(q, "quant_method"), *name;
    if (!m || strcmp(m, "compressed-tensors"))
        return nb_fail(e, "config.json's quantization_config is not compressed-tensors "
                          "(quant_method '%.32s')", m ? m : "?");
    if (read_top(q, e))
        return -1;
    const json_t *groups = json_object_get(q, "config_groups");
    if (!json_is_object(groups) || !json_object_size(groups))
        return nb_fail(e, "compressed-tensors: config_groups is missing or empty");
    int first = 1;
    json_object_foreach((json_t *)groups, name, g) {
        if (read_group(name, g, c, first, e))
            return -1;
        first = 0;
    }
    c->ignore = json_object_get(q, "ignore");
    if (c->ignore && !json_is_null(c->ignore) && !json_is_array(c->ignore))
        return nb_fail(e, "compressed-tensors: 'ignore' must be a list of module names");
    return 0;
}

/* base is named in the ignore list (exactly; "re:" patterns are not
 * matched: a plain weight is taken as plain anyway). */
static int ignored(const struct ct_cfg *c, const char *base)
{
    size_t i;
    const json_t *v;
    json_array_foreach(c->ignore, i, v) {
        const char *s = json_string_value(v);
        if (s && !strcmp(s, base))
            return 1;
    }
    return 0;
}

/* ---- binding each quantized linear ---- */

static int wrong_shape(const nb_st_tensor *t, uint64_t rows, uint64_t cols, nb_err *e)
{
    char got[96];
    nb_shape_text(got, sizeof got, t->n_dims, t->shape);
    return nb_fail(e, "tensor '%s' has shape %s, but the linear needs [%llu, %llu]", t->name, got,
                   (unsigned long long)rows, (unsigned long long)cols);
}

static int check_2d(const nb_st_tensor *t, uint64_t rows, uint64_t cols, nb_err *e)
{
    int ok = t->n_dims == 2 && t->shape[0] == rows && t->shape[1] == cols;
    return ok ? 0 : wrong_shape(t, rows, cols, e);
}

/* weight_shape, the [out, in] the library unpacks to: it must be the
 * shape config.json implies. */
static int check_weight_shape(const nb_st_tensor *t, const nb_hf_item *it, nb_err *e)
{
    int64_t v[2] = {0, 0};
    int wide = t->dtype == NB_ST_I64;
    if ((!wide && t->dtype != NB_ST_I32) || t->n_dims != 1 || t->shape[0] != 2)
        return nb_fail(e, "tensor '%s' must be 2 integers (I32 or I64), the weight's shape",
                       t->name);
    for (int i = 0; i < 2; i++) {
        int32_t n32;
        if (wide)
            memcpy(&v[i], (const char *)t->data + 8 * i, 8);
        else
            memcpy(&n32, (const char *)t->data + 4 * i, 4), v[i] = n32;
    }
    if (v[0] != (int64_t)it->shape[0] || v[1] != (int64_t)it->shape[1])
        return nb_fail(e, "tensor '%s' says [%lld, %lld], but config.json implies [%llu, %llu]%s%s%s",
                       t->name, (long long)v[0], (long long)v[1],
                       (unsigned long long)it->shape[0], (unsigned long long)it->shape[1],
                       it->dims[0] ? " (" : "", it->dims, it->dims[0] ? ")" : "");
    return 0;
}

/* Zero points: int32 words of eight rows (packed_dim 0), or one int8 per
 * (row, group) as older checkpoints stored them. */
static int check_zeros(const nb_st_tensor *z, uint64_t n, uint64_t ng, nb_err *e)
{
    if (z->dtype == NB_ST_I8)
        return check_2d(z, n, ng, e);
    if (z->dtype != NB_ST_I32)
        return nb_fail(e, "tensor '%s' is %s; compressed-tensors stores zero points as I32 (or I8)",
                       z->name, nb_st_dtype_name(z->dtype));
    return check_2d(z, (n + 7) / 8, ng, e);
}

static int check_tensors(const struct ct_lin *L, const struct ct_cfg *q, uint64_t n, uint64_t k,
                         nb_err *e)
{
    uint64_t ng = q->group ? k / (uint64_t)q->group : 1;
    if (L->wp->dtype != NB_ST_I32)
        return nb_fail(e, "tensor '%s' is %s; weight_packed is I32", L->wp->name,
                       nb_st_dtype_name(L->wp->dtype));
    if (L->sc->dtype != NB_ST_F16 && L->sc->dtype != NB_ST_BF16 && L->sc->dtype != NB_ST_F32)
        return nb_fail(e, "tensor '%s' is %s; scales must be F16, BF16 or F32", L->sc->name,
                       nb_st_dtype_name(L->sc->dtype));
    if (check_2d(L->wp, n, (k + 7) / 8, e) || check_2d(L->sc, n, ng, e))
        return -1;
    return L->zp ? check_zeros(L->zp, n, ng, e) : 0;
}

static const nb_st_tensor *take_part(nb_hf *h, const char *base, const char *part, char *name,
                                     size_t cap)
{
    snprintf(name, cap, "%s.%s", base, part);
    return nb_hf_take(h, name);
}

static int take_parts(nb_hf *h, const struct ct_cfg *q, const char *base, struct ct_lin *L,
                      nb_err *e)
{
    char name[128];
    if (take_part(h, base, "weight_g_idx", name, sizeof name))
        return nb_fail(e, "tensor '%s' (activation order) is not supported: nibble's groups are "
                          "runs of consecutive columns", name);
    L->zp = take_part(h, base, "weight_zero_point", name, sizeof name);
    if (!L->zp && !q->symmetric)
        return nb_fail(e, "tensor '%s' is missing: the scheme is asymmetric", name);
    if (!(L->sc = take_part(h, base, "weight_scale", name, sizeof name)) ||
        !(L->shape = take_part(h, base, "weight_shape", name, sizeof name)))
        return nb_fail(e, "tensor '%s' is missing: a pack-quantized linear has weight_packed, "
                          "weight_scale and weight_shape", name);
    return 0;
}

static int bind(nb_hf *h, const struct ct_cfg *q, nb_hf_item *it, struct ct_lin *L, nb_err *e)
{
    char base[96], name[128];
    snprintf(base, sizeof base, "%.*s", (int)(strlen(it->src) - strlen(".weight")), it->src);
    L->wp = take_part(h, base, "weight_packed", name, sizeof name);
    if (!L->wp && nb_st_find(h->st, it->src))
        return nb_hf_check_plain(it, nb_hf_take(h, it->src), e);
    if (!L->wp)
        return nb_fail(e, "tensor '%s' is missing (and there is no plain %s)", name, it->src);
    if (ignored(q, base))
        return nb_fail(e, "'%s' is in the ignore list, yet stored quantized", base);
    uint64_t n = it->shape[0], k = it->shape[1];
    if (take_parts(h, q, base, L, e) || check_weight_shape(L->shape, it, e))
        return -1;
    if (q->group && k % (uint64_t)q->group)
        return nb_fail(e, "group_size %lld does not divide the %llu input columns of '%s'",
                       (long long)q->group, (unsigned long long)k, base);
    if (check_tensors(L, q, n, k, e))
        return -1;
    it->bytes = L->wp->size + L->sc->size + (L->zp ? L->zp->size : 0);
    return 0;
}

/* ---- unpacking ---- */

static unsigned nibble(const nb_st_tensor *t, size_t word, size_t i)
{
    uint32_t w; /* unsigned: the top nibble is just bits 28..31 */
    memcpy(&w, (const char *)t->data + 4 * word, 4);
    return (w >> (4 * i)) & 15u;
}

/* The scale as a float fp16 holds exactly, or NaN. */
static float scale_at(const nb_st_tensor *t, size_t i)
{
    const char *p = (const char *)t->data;
    uint16_t h;
    float f;
    if (t->dtype == NB_ST_F32)
        memcpy(&f, p + 4 * i, 4);
    else
        memcpy(&h, p + 2 * i, 2), f = t->dtype == NB_ST_F16 ? nb_f16_to_f32(h) : nb_bf16_to_f32(h);
    return isfinite(f) && nb_f16_to_f32(nb_f32_to_f16(f)) == f ? f : NAN;
}

/* The stored zero point as nibble's (z + 8), or -1 out of range. */
static int zero_at(const nb_st_tensor *z, size_t r, size_t j, size_t ng)
{
    if (!z)
        return 8; /* symmetric: z = 0 */
    if (z->dtype == NB_ST_I32)
        return (int)nibble(z, (r / 8) * ng + j, r % 8);
    int v = ((const int8_t *)z->data)[r * ng + j];
    return v >= -8 && v <= 7 ? v + 8 : -1;
}

/* Codes [n][k], scales and zeros [n][ng], as nb_qpack takes them (nb_hf_unpack). */
static int unpack(const void *ctx, size_t n, size_t k, size_t ng, uint8_t *codes, float *scales,
                  uint8_t *zeros, nb_err *e)
{
    const struct ct_lin *L = ctx;
    size_t kw = (k + 7) / 8;
    for (size_t r = 0; r < n; r++) {
        for (size_t c = 0; c < k; c++)
            codes[r * k + c] = (uint8_t)nibble(L->wp, r * kw + c / 8, c % 8);
        for (size_t j = 0; j < ng; j++) {
            int z = zero_at(L->zp, r, j, ng);
            float s = scale_at(L->sc, r * ng + j);
            if (z < 0)
                return nb_fail(e, "tensor '%s' holds a zero point outside [-8, 7] (row %zu)",
                               L->zp->name, r);
            if (isnan(s))
                return nb_fail(e, "tensor '%s' holds a scale that is not finite or not exact in "
                                  "fp16 (row %zu), nibble's scale type", L->sc->name, r);
            zeros[r * ng + j] = (uint8_t)z;
            scales[r * ng + j] = s;
        }
    }
    return 0;
}

static int put_packed(nb_writer *w, const nb_hf_item *it, const struct ct_lin *L,
                      const struct ct_cfg *q, nb_err *e)
{
    return nb_hf_write_int4(w, it, q->group, unpack, L, e);
}

/* ---- the importer ---- */

struct ct {
    nb_hf h;
    struct ct_cfg q;
    struct ct_lin *lin; /* per item */
    int out_dtype;
};

static int put(void *ctx, nb_writer *w, const nb_hf_item *it, nb_err *e)
{
    struct ct *a = ctx;
    const struct ct_lin *L = &a->lin[it - a->h.items];
    return L->wp ? put_packed(w, it, L, &a->q, e) : nb_hf_write_plain(w, it, a->out_dtype, e);
}

/* nb_hf_bind: the linear of item i and its tensors. */
static int bind_at(void *ctx, nb_hf_item *it, size_t i, nb_err *e)
{
    struct ct *a = ctx;
    return bind(&a->h, &a->q, it, &a->lin[i], e);
}

static int resolve(struct ct *a, nb_err *e)
{
    /* import_hf.c plans lm_head only when lm_head.weight is there */
    if (a->h.meta.tied_embeddings && !a->h.c.tied && nb_st_find(a->h.st, "lm_head.weight_packed"))
        return nb_fail(e, "a quantized lm_head is not supported yet: keep it in the ignore list");
    a->lin = calloc(a->h.n_items + 1, sizeof *a->lin);
    if (!a->lin)
        return nb_fail(e, "out of memory");
    return nb_hf_resolve(&a->h, bind_at, a, e);
}

int nb_import_ct(const char *dir, const char *out, const nb_convert_opts *o, nb_err *e)
{
    struct ct a;
    memset(&a, 0, sizeof a);
    a.out_dtype = o->out_dtype;
    int rc = read_cfg(dir, &a.q, e) || nb_hf_open(&a.h, dir, o, e) || resolve(&a, e) ||
             nb_hf_write(&a.h, out, o->quiet, put, &a, e);
    nb_hf_close(&a.h);
    free(a.lin);
    json_decref(a.q.doc);
    return rc ? -1 : 0;
}
