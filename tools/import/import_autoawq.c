/* AutoAWQ checkpoints: a Hugging Face folder (Llama, Mistral, Qwen2,
 * Qwen3) whose quantized linears
 * P are stored as P.qweight, P.qzeros (int32 words of eight 4-bit values)
 * and P.scales (fp16), in the "gemm" or "gemv" packing order
 * (awq-spec.md §7). They are repacked into NB_Q4 without re-quantizing:
 * the codes, fp16 scales and zero points are taken exactly, so every
 * dequantized weight (q - z) * s equals AutoAWQ's own bit for bit. Norms
 * (which already hold the folded AWQ scales), embeddings, lm_head and any
 * linear left unquantized (modules_to_not_convert) are taken as they are,
 * and so are Qwen2's fp16 q/k/v biases and Qwen3's q/k norms (written as
 * f32). Everything else, config, names and tokenizer, is import_hf.c's. */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../../neon/f16.h"
#include "../../neon/qpack.h"
#include "../../runtime/qtensor.h"
#include "convert.h"

#define MAX_CONFIG_BYTES (1u << 20)

enum { GEMM, GEMV };

struct awq_cfg {
    int64_t bits, group;
    int zero_point, version;
};

/* The three tensors of one quantized linear (qw NULL: a plain one). */
struct awq_lin {
    const nb_st_tensor *qw, *qz, *sc;
};

static json_t *parse(const char *dir, const char *name, nb_err *e)
{
    char *path = nb_hf_path(dir, name);
    json_t *doc = path ? nb_json_file(path, MAX_CONFIG_BYTES, e) : NULL;
    free(path);
    return doc;
}

static int file_exists(const char *dir, const char *name)
{
    struct stat st;
    char *path = nb_hf_path(dir, name);
    int ok = path && !stat(path, &st);
    free(path);
    return ok;
}

int nb_hf_is_quantized(const char *dir)
{
    json_t *doc = parse(dir, "config.json", NULL);
    const json_t *q = json_object_get(doc, "quantization_config");
    int found = q && !json_is_null(q);
    json_decref(doc);
    return found || file_exists(dir, "quant_config.json");
}

/* ---- the quantization config ---- */

/* An integer under either of two names (AutoAWQ renamed its keys). */
static int get_int(const json_t *q, const char *key, const char *old, int64_t def,
                   int64_t *out, nb_err *e)
{
    const json_t *v = json_object_get(q, key);
    if (!v)
        v = json_object_get(q, old);
    *out = def;
    if (v && nb_json_i64(v, out))
        return nb_fail(e, "quantization config: '%s' must be an integer", key);
    return 0;
}

static int read_version(const json_t *q, int *version, nb_err *e)
{
    const json_t *v = json_object_get(q, "version");
    const char *s = v ? json_string_value(v) : "gemm";
    char low[32];
    size_t n = 0;
    for (; s && s[n] && n + 1 < sizeof low; n++)
        low[n] = (char)tolower((unsigned char)s[n]); /* checkpoints write "GEMM" or "gemm" */
    low[n] = 0;
    if (!s)
        return nb_fail(e, "quantization config: 'version' must be a string");
    if (!strcmp(low, "gemm") || !strcmp(low, "gemv")) {
        *version = !strcmp(low, "gemm") ? GEMM : GEMV;
        return 0;
    }
    if (!strcmp(low, "gemv_fast"))
        return nb_fail(e, "AutoAWQ version gemv_fast is not supported: it stores each zero point "
                          "multiplied by its scale in fp16 (-s*z), so the integer zero points "
                          "cannot be recovered exactly; use a gemm or gemv checkpoint");
    return nb_fail(e, "unknown AutoAWQ version '%.32s' (supported: gemm, gemv)", s);
}

static int read_method(const json_t *q, nb_err *e)
{
    const json_t *v = json_object_get(q, "quant_method");
    const char *m = json_string_value(v);
    if (v && (!m || strcmp(m, "awq")))
        return nb_fail(e, "quantization_config: quant_method '%.32s' is not supported (nibble "
                          "imports AutoAWQ checkpoints, quant_method awq)",
                       m ? m : "?");
    return 0;
}

static int check_cfg(const struct awq_cfg *q, nb_err *e)
{
    if (q->bits != 4)
        return nb_fail(e, "AutoAWQ checkpoint with %lld-bit weights: nibble imports 4-bit ones",
                       (long long)q->bits);
    if (q->group <= 0 || q->group % 32 || q->group > 65535)
        return nb_fail(e, "AutoAWQ group_size %lld: nibble needs a positive multiple of 32",
                       (long long)q->group);
    if (!q->zero_point)
        return nb_fail(e, "AutoAWQ checkpoint without zero points: nibble imports zero_point "
                          "true ones");
    return 0;
}

static int read_fields(const json_t *q, struct awq_cfg *c, nb_err *e)
{
    if (!json_is_object(q))
        return nb_fail(e, "the quantization config is not a JSON object");
    const json_t *zp = json_object_get(q, "zero_point");
    c->zero_point = !zp || json_is_true(zp);
    if (zp && !json_is_boolean(zp))
        return nb_fail(e, "quantization config: 'zero_point' must be true or false");
    if (read_method(q, e) || get_int(q, "bits", "w_bit", 4, &c->bits, e) ||
        get_int(q, "group_size", "q_group_size", 128, &c->group, e) ||
        read_version(q, &c->version, e))
        return -1;
    return check_cfg(c, e);
}

/* config.json's quantization_config, else the older quant_config.json. */
static int read_cfg(const char *dir, struct awq_cfg *c, nb_err *e)
{
    json_t *doc = parse(dir, "config.json", e);
    if (!doc)
        return -1;
    const json_t *q = json_object_get(doc, "quantization_config");
    json_t *old = NULL;
    if (!q || json_is_null(q)) {
        if (!(old = parse(dir, "quant_config.json", e))) {
            json_decref(doc);
            return -1;
        }
        q = old;
    }
    int rc = read_fields(q, c, e);
    json_decref(old);
    json_decref(doc);
    return rc;
}

/* ---- binding each quantized linear ---- */

/* AutoAWQ's gemv pads each row of zero words (calculate_zeros_width). */
static uint64_t gemv_zero_words(uint64_t k, uint64_t group)
{
    uint64_t mult = group >= 128 ? 1 : group == 64 ? 2 : group == 32 ? 4 : 1;
    uint64_t words = (k / group + 7) / 8;
    return (words + mult - 1) / mult * mult;
}

static int shape_is(const nb_st_tensor *t, uint64_t rows, uint64_t cols)
{
    return t->n_dims == 2 && t->shape[0] == rows && t->shape[1] == cols;
}

static int wrong_shape(const nb_st_tensor *t, uint64_t rows, uint64_t cols, nb_err *e)
{
    return nb_fail(e, "tensor '%s' has shape [%llu%s%llu], but the linear needs [%llu, %llu]",
                   t->name, (unsigned long long)t->shape[0], t->n_dims == 2 ? ", " : " ...",
                   (unsigned long long)(t->n_dims == 2 ? t->shape[1] : 0),
                   (unsigned long long)rows, (unsigned long long)cols);
}

static int check_shapes(const struct awq_lin *L, const struct awq_cfg *q, uint64_t n,
                        uint64_t k, nb_err *e)
{
    uint64_t g = (uint64_t)q->group, ng = k / g;
    if (q->version == GEMM) {
        if (!shape_is(L->qw, k, n / 8))
            return wrong_shape(L->qw, k, n / 8, e);
        if (!shape_is(L->qz, ng, n / 8))
            return wrong_shape(L->qz, ng, n / 8, e);
        return shape_is(L->sc, ng, n) ? 0 : wrong_shape(L->sc, ng, n, e);
    }
    uint64_t zw = L->qz->n_dims == 2 ? L->qz->shape[1] : 0, need = (ng + 7) / 8;
    if (!shape_is(L->qw, n, k / 8))
        return wrong_shape(L->qw, n, k / 8, e);
    if (!shape_is(L->qz, n, zw) || zw < need || zw > gemv_zero_words(k, g))
        return wrong_shape(L->qz, n, gemv_zero_words(k, g), e);
    return shape_is(L->sc, n, 8 * zw) ? 0 : wrong_shape(L->sc, n, 8 * zw, e);
}

static int check_dtypes(const struct awq_lin *L, nb_err *e)
{
    const nb_st_tensor *t[3] = {L->qw, L->qz, L->sc};
    for (int i = 0; i < 3; i++)
        if (t[i]->dtype != (i < 2 ? NB_ST_I32 : NB_ST_F16))
            return nb_fail(e, "tensor '%s' is %s; AutoAWQ stores %s", t[i]->name,
                           nb_st_dtype_name(t[i]->dtype), i < 2 ? "I32" : "F16");
    return 0;
}

static const nb_st_tensor *take_part(nb_hf *h, const char *base, const char *part, char *name,
                                     size_t cap)
{
    snprintf(name, cap, "%s.%s", base, part);
    return nb_hf_take(h, name);
}

/* A linear: qweight, qzeros and scales, or a plain weight (a module
 * AutoAWQ left unquantized). */
static int bind(nb_hf *h, const struct awq_cfg *q, nb_hf_item *it, struct awq_lin *L, nb_err *e)
{
    char base[96], name[128];
    snprintf(base, sizeof base, "%.*s", (int)(strlen(it->src) - strlen(".weight")), it->src);
    L->qw = take_part(h, base, "qweight", name, sizeof name);
    if (!L->qw && nb_st_find(h->st, it->src))
        return nb_hf_check_plain(it, nb_hf_take(h, it->src), e);
    if (!L->qw)
        return nb_fail(e, "tensor '%s' is missing (and there is no plain %s)", name, it->src);
    const char *parts[2] = {"qzeros", "scales"};
    const nb_st_tensor **dst[2] = {&L->qz, &L->sc};
    for (int i = 0; i < 2; i++)
        if (!(*dst[i] = take_part(h, base, parts[i], name, sizeof name)))
            return nb_fail(e, "tensor '%s' is missing: AutoAWQ stores qweight, qzeros and scales "
                              "for every quantized linear", name);
    uint64_t n = it->shape[0], k = it->shape[1];
    if (k % (uint64_t)q->group)
        return nb_fail(e, "group_size %lld does not divide the %llu input columns of '%s'",
                       (long long)q->group, (unsigned long long)k, base);
    if (n % 8 || k % 8)
        return nb_fail(e, "'%s' is %llu x %llu; AutoAWQ packs multiples of 8", base,
                       (unsigned long long)n, (unsigned long long)k);
    if (check_dtypes(L, e) || check_shapes(L, q, n, k, e))
        return -1;
    it->bytes = L->qw->size + L->qz->size + L->sc->size;
    return 0;
}

/* ---- unpacking (awq-spec.md §7) ---- */

static unsigned nibble(const nb_st_tensor *t, size_t word, unsigned shift)
{
    uint32_t w; /* read unsigned: the sign bit is just the top nibble's */
    memcpy(&w, (const char *)t->data + 4 * word, 4);
    return (w >> shift) & 15u;
}

static float half(const nb_st_tensor *t, size_t i)
{
    uint16_t h;
    memcpy(&h, (const char *)t->data + 2 * i, 2);
    return nb_f16_to_f32(h);
}

/* gemm interleaves: nibble i of a word holds column 8c + {0,2,4,6,1,3,5,7}[i],
 * so column n sits at nibble rev[n % 8]. */
static const unsigned gemm_rev[8] = {0, 4, 1, 5, 2, 6, 3, 7};

static int check_scales(const struct awq_lin *L, const float *scales, size_t count, nb_err *e)
{
    for (size_t i = 0; i < count; i++)
        if (!isfinite(scales[i]))
            return nb_fail(e, "tensor '%s' holds a scale that is not finite", L->sc->name);
    return 0;
}

struct awq_unpack {
    const struct awq_lin *L;
    int version;
};

/* Codes [n][k], scales and zeros [n][ng], as nb_qpack takes them
 * (nb_hf_unpack); the scales checked. */
static int unpack(const void *ctx, size_t n, size_t k, size_t ng, uint8_t *codes, float *scales,
                  uint8_t *zeros, nb_err *e)
{
    const struct awq_unpack *u = ctx;
    const struct awq_lin *L = u->L;
    int version = u->version;
    size_t zw = version == GEMV ? L->qz->shape[1] : 0;
    for (size_t r = 0; r < n; r++) {
        for (size_t c = 0; c < k; c++)
            codes[r * k + c] = (uint8_t)(version == GEMM
                                             ? nibble(L->qw, c * (n / 8) + r / 8, 4 * gemm_rev[r % 8])
                                             : nibble(L->qw, r * (k / 8) + c / 8, 4 * (c % 8)));
        for (size_t j = 0; j < ng; j++) {
            zeros[r * ng + j] = (uint8_t)(version == GEMM
                                              ? nibble(L->qz, j * (n / 8) + r / 8, 4 * gemm_rev[r % 8])
                                              : nibble(L->qz, r * zw + j / 8, 4 * (j % 8)));
            scales[r * ng + j] = half(L->sc, version == GEMM ? j * n + r : r * 8 * zw + j);
        }
    }
    return check_scales(L, scales, n * ng, e);
}

static int put_packed(nb_writer *w, const nb_hf_item *it, const struct awq_lin *L,
                      const struct awq_cfg *q, nb_err *e)
{
    struct awq_unpack u = {L, q->version};
    return nb_hf_write_int4(w, it, q->group, unpack, &u, e);
}

/* ---- the importer ---- */

struct awq {
    nb_hf h;
    struct awq_cfg q;
    struct awq_lin *lin; /* per item */
    int out_dtype;
};

static int put(void *ctx, nb_writer *w, const nb_hf_item *it, nb_err *e)
{
    struct awq *a = ctx;
    const struct awq_lin *L = &a->lin[it - a->h.items];
    return L->qw ? put_packed(w, it, L, &a->q, e) : nb_hf_write_plain(w, it, a->out_dtype, e);
}

/* nb_hf_bind: the linear of item i and its tensors. */
static int bind_at(void *ctx, nb_hf_item *it, size_t i, nb_err *e)
{
    struct awq *a = ctx;
    return bind(&a->h, &a->q, it, &a->lin[i], e);
}

static int resolve(struct awq *a, nb_err *e)
{
    a->lin = calloc(a->h.n_items + 1, sizeof *a->lin);
    if (!a->lin)
        return nb_fail(e, "out of memory");
    return nb_hf_resolve(&a->h, bind_at, a, e);
}

int nb_import_autoawq(const char *dir, const char *out, const nb_convert_opts *o, nb_err *e)
{
    struct awq a;
    memset(&a, 0, sizeof a);
    a.out_dtype = o->out_dtype;
    int rc = read_cfg(dir, &a.q, e) || nb_hf_open(&a.h, dir, o, e) || resolve(&a, e) ||
             nb_hf_write(&a.h, out, o->quiet, put, &a, e);
    nb_hf_close(&a.h);
    free(a.lin);
    return rc ? -1 : 0;
}
