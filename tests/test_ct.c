/* compressed-tensors import: test_ct TOKENIZER.model [--write DIR]
 * Writes tiny random pack-quantized checkpoints as llm-compressor saves
 * them (signed 4-bit codes and zero points drawn here, packed as
 * compressed-tensors' pack_to_int32 does: value + 8, eight per int32,
 * along the row for weight_packed and along the column of rows for
 * weight_zero_point), converts them with `nibble convert` (in process)
 * and reads the packed tensors back through the layout of docs/format.md,
 * written out again here: every code, zero point and scale must be the
 * fixture's, and every dequantized weight (nb_qrow_ref) must equal
 * (q - z) * s computed here. Hostile variants must fail with one line and
 * leave no output. With --write DIR it only writes one fixture (and the
 * signed ints in DIR/reference.safetensors) for tests/ref/check_ct.py. */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../models/net.h"
#include "../neon/f16.h"
#include "../neon/qpack.h"
#include "../runtime/qtensor.h"
#include "../tools/cli.h"
#include "testutil.h"

enum { DIM = 128, HEADS = 4, KV_HEADS = 2, HEAD_DIM = 32, FFN = 256, LAYERS = 2, VOCAB = 512 };

static const char *tokenizer_path;

struct st_t {
    char name[160];
    const char *dtype;
    uint64_t shape[2];
    int n_dims;
    uint8_t *data;
    size_t size;
};

/* One quantized linear as the fixture drew it. */
struct lin {
    char src[96], dst[64];
    size_t n, k, ng;
    int8_t *q, *z; /* signed, [n][k] and [n][ng] */
    float *s;      /* [n][ng], exact in the stored dtype and in fp16 */
};

struct fixture {
    struct st_t t[160], ref[64];
    int n, n_ref;
    struct lin lin[16];
    int n_lin;
};

struct variant {
    const char *dir, *family; /* family NULL: llama */
    int group, sym;           /* group 0: strategy channel */
    const char *scale_dtype;  /* "BF16", or NULL: "F16" */
    int zp_i8;                /* zero points unpacked, one int8 each (older files) */
    const char *config;       /* quantization_config, NULL: from group and sym */
    /* hostile knobs */
    int shape_off, truncate, zp_out, drop_scale;
};

static struct st_t *add(struct st_t *t, const char *name, const char *dtype, uint64_t rows,
                        uint64_t cols, size_t width)
{
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = dtype;
    t->shape[0] = rows, t->shape[1] = cols;
    t->n_dims = cols ? 2 : 1;
    t->size = (size_t)(rows * (cols ? cols : 1)) * width;
    t->data = calloc(t->size ? t->size : 1, 1);
    return t;
}

static void write_st(const struct st_t *t, int n, const char *path, size_t cut)
{
    char header[32768], shape[64];
    size_t at = (size_t)snprintf(header, sizeof header, "{"), off = 0;
    for (int i = 0; i < n; i++) {
        if (t[i].n_dims == 2)
            snprintf(shape, sizeof shape, "%llu,%llu", (unsigned long long)t[i].shape[0],
                     (unsigned long long)t[i].shape[1]);
        else
            snprintf(shape, sizeof shape, "%llu", (unsigned long long)t[i].shape[0]);
        at += (size_t)snprintf(header + at, sizeof header - at,
                               "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[%s],\"data_offsets\":[%zu,%zu]}",
                               i ? "," : "", t[i].name, t[i].dtype, shape, off, off + t[i].size);
        off += t[i].size;
    }
    at += (size_t)snprintf(header + at, sizeof header - at, "}");
    FILE *out = fopen(path, "wb");
    uint64_t len = at;
    fwrite(&len, 8, 1, out);
    fwrite(header, 1, at, out);
    for (int i = 0; i < n; i++) /* the last tensor loses cut bytes */
        fwrite(t[i].data, 1, t[i].size - (i == n - 1 ? cut : 0), out);
    fclose(out);
}

/* ---- drawing and packing as compressed-tensors does ---- */

static void put_nibble(uint8_t *data, size_t word, size_t i, int v)
{
    uint32_t w;
    memcpy(&w, data + 4 * word, 4);
    w |= (uint32_t)(v + 8) << (4 * i); /* pack_to_int32: value + 8 */
    memcpy(data + 4 * word, &w, 4);
}

/* A scale exact in bf16 and fp16 (8 significant bits, normal in fp16). */
static float draw_scale(uint64_t *seed)
{
    return (float)(64 + tu_rand(seed) % 192) * 0x1p-14f;
}

static void put_scale(uint8_t *data, const char *dtype, size_t i, float s)
{
    uint32_t b;
    memcpy(&b, &s, 4);
    uint16_t h = !strcmp(dtype, "F16") ? nb_f32_to_f16(s) : (uint16_t)(b >> 16);
    memcpy(data + 2 * i, &h, 2);
}

static void draw(struct lin *L, const struct variant *v, uint64_t *seed)
{
    L->ng = v->group ? L->k / (size_t)v->group : 1;
    L->q = malloc(L->n * L->k), L->z = calloc(L->n * L->ng, 1);
    L->s = malloc(L->n * L->ng * sizeof *L->s);
    for (size_t i = 0; i < L->n * L->k; i++)
        L->q[i] = (int8_t)((int)(tu_rand(seed) % 16) - 8);
    for (size_t i = 0; i < L->n * L->ng; i++) {
        L->z[i] = v->sym ? 0 : (int8_t)((int)(tu_rand(seed) % 16) - 8);
        L->s[i] = draw_scale(seed);
    }
    if (v->zp_out)
        L->z[L->n * L->ng - 1] = 9; /* one past int4's [-8, 7] */
}

static void pack(struct fixture *f, const struct lin *L, const struct variant *v)
{
    char name[160];
    size_t kw = (L->k + 7) / 8, n = L->n, k = L->k, ng = L->ng;
    snprintf(name, sizeof name, "%s.weight_packed", L->src);
    uint8_t *wp = add(&f->t[f->n++], name, "I32", n, kw, 4)->data;
    for (size_t r = 0; r < n; r++)
        for (size_t c = 0; c < k; c++)
            put_nibble(wp, r * kw + c / 8, c % 8, L->q[r * k + c]);
    snprintf(name, sizeof name, "%s.weight_scale", L->src);
    const char *sd = v->scale_dtype ? v->scale_dtype : "F16";
    struct st_t *sc = add(&f->t[f->n++], name, sd, n, ng, 2);
    for (size_t i = 0; i < n * ng; i++)
        put_scale(sc->data, sd, i, L->s[i]);
    if (v->drop_scale)
        free(sc->data), f->n--;
    snprintf(name, sizeof name, "%s.weight_shape", L->src);
    int64_t shape[2] = {(int64_t)n, (int64_t)k + v->shape_off};
    memcpy(add(&f->t[f->n++], name, "I64", 2, 0, 8)->data, shape, 16);
    snprintf(name, sizeof name, "%s.weight_zero_point", L->src);
    if (v->sym)
        return; /* the library leaves symmetric zero points out */
    if (v->zp_i8) {
        memcpy(add(&f->t[f->n++], name, "I8", n, ng, 1)->data, L->z, n * ng);
        return;
    }
    uint8_t *zp = add(&f->t[f->n++], name, "I32", (n + 7) / 8, ng, 4)->data;
    for (size_t r = 0; r < n; r++)
        for (size_t j = 0; j < ng; j++)
            put_nibble(zp, (r / 8) * ng + j, r % 8, L->z[r * ng + j]);
}

static void add_half(struct fixture *f, const char *name, uint64_t rows, uint64_t cols,
                     float base, uint64_t *seed)
{
    struct st_t *t = add(&f->t[f->n++], name, "F16", rows, cols, 2);
    for (size_t i = 0; i < t->size / 2; i++) {
        uint16_t h = nb_f32_to_f16(base + 0.3f * tu_randf(seed));
        memcpy(t->data + 2 * i, &h, 2);
    }
}

static void add_linear(struct fixture *f, const struct variant *v, int layer, const char *part,
                       const char *dst, size_t n, size_t k, uint64_t *seed)
{
    struct lin *L = &f->lin[f->n_lin++];
    snprintf(L->src, sizeof L->src, "model.layers.%d.%s", layer, part);
    snprintf(L->dst, sizeof L->dst, dst, layer);
    L->n = n, L->k = k;
    draw(L, v, seed);
    pack(f, L, v);
    char name[160];
    snprintf(name, sizeof name, "%s.q", L->src); /* the ints, for check_ct.py */
    memcpy(add(&f->ref[f->n_ref++], name, "I8", n, k, 1)->data, L->q, n * k);
    snprintf(name, sizeof name, "%s.z", L->src);
    memcpy(add(&f->ref[f->n_ref++], name, "I8", n, L->ng, 1)->data, L->z, n * L->ng);
}

static void build(struct fixture *f, const struct variant *v, uint64_t seed)
{
    static const struct {
        const char *part, *dst;
        size_t n, k;
    } parts[] = {
        {"self_attn.q_proj", NB_T_Q, HEADS * HEAD_DIM, DIM},
        {"self_attn.k_proj", NB_T_K, KV_HEADS * HEAD_DIM, DIM},
        {"self_attn.v_proj", NB_T_V, KV_HEADS * HEAD_DIM, DIM},
        {"self_attn.o_proj", NB_T_O, DIM, HEADS * HEAD_DIM},
        {"mlp.gate_proj", NB_T_GATE, FFN, DIM},
        {"mlp.up_proj", NB_T_UP, FFN, DIM},
        {"mlp.down_proj", NB_T_DOWN, DIM, FFN},
    };
    static const char *const qkv[3] = {"q", "k", "v"};
    const char *fam = v->family ? v->family : "";
    char name[96];
    memset(f, 0, sizeof *f);
    add_half(f, "model.embed_tokens.weight", VOCAB, DIM, 0.0f, &seed);
    add_half(f, "lm_head.weight", VOCAB, DIM, 0.0f, &seed); /* in the ignore list */
    add_half(f, "model.norm.weight", DIM, 0, 1.0f, &seed); /* the last is a packed tensor */
    for (int l = 0; l < LAYERS; l++) {
        snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", l);
        add_half(f, name, DIM, 0, 1.0f, &seed);
        snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", l);
        add_half(f, name, DIM, 0, 1.0f, &seed);
        for (size_t p = 0; p < sizeof parts / sizeof *parts; p++)
            add_linear(f, v, l, parts[p].part, parts[p].dst, parts[p].n, parts[p].k, &seed);
        for (int i = 0; !strcmp(fam, "qwen2") && i < 3; i++) {
            snprintf(name, sizeof name, "model.layers.%d.self_attn.%s_proj.bias", l, qkv[i]);
            add_half(f, name, (i ? KV_HEADS : HEADS) * HEAD_DIM, 0, 0.0f, &seed);
        }
        for (int i = 0; !strcmp(fam, "qwen3") && i < 2; i++) {
            snprintf(name, sizeof name, "model.layers.%d.self_attn.%s_norm.weight", l, qkv[i]);
            add_half(f, name, HEAD_DIM, 0, 1.0f, &seed);
        }
    }
}

static void free_fixture(struct fixture *f)
{
    for (int i = 0; i < f->n; i++)
        free(f->t[i].data);
    for (int i = 0; i < f->n_ref; i++)
        free(f->ref[i].data);
    for (int i = 0; i < f->n_lin; i++)
        free(f->lin[i].q), free(f->lin[i].z), free(f->lin[i].s);
}

/* ---- the folder ---- */

#define CT(bits, fmt, sym, strategy, group, actorder)                                          \
    "{\"quant_method\": \"compressed-tensors\", \"format\": \"" fmt "\",\n"                 \
    " \"quantization_status\": \"compressed\", \"config_groups\": {\"group_0\": {\n"        \
    "  \"targets\": [\"Linear\"], \"input_activations\": null, \"output_activations\": null,\n" \
    "  \"weights\": {\"num_bits\": " #bits ", \"type\": \"int\", \"symmetric\": " sym ",\n"  \
    "   \"strategy\": \"" strategy "\", \"group_size\": " group ", \"actorder\": " actorder ",\n"   \
    "   \"dynamic\": false, \"block_structure\": null, \"observer\": \"minmax\"}}},\n" \
    " \"ignore\": [\"lm_head\"], \"kv_cache_scheme\": null, \"sparsity_config\": {},\n"      \
    " \"version\": \"0.10.2\"}"

static void write_config(const char *dir, const struct variant *v)
{
    char text[4096], qc[1024];
    const char *fam = v->family ? v->family : "llama";
    const char *cls = !strcmp(fam, "qwen2")   ? "Qwen2ForCausalLM"
                      : !strcmp(fam, "qwen3") ? "Qwen3ForCausalLM"
                                              : "LlamaForCausalLM";
    snprintf(qc, sizeof qc,
             "{\"quant_method\": \"compressed-tensors\", \"format\": \"pack-quantized\", "
             "\"config_groups\": {\"group_0\": {\"targets\": [\"Linear\"], \"weights\": "
             "{\"num_bits\": 4, \"type\": \"int\", \"symmetric\": %s, \"strategy\": \"%s\", "
             "\"group_size\": %d}}}, \"ignore\": [\"lm_head\"]}",
             v->sym ? "true" : "false", v->group ? "group" : "channel", v->group);
    snprintf(text, sizeof text,
             "{\"architectures\": [\"%s\"], \"model_type\": \"%s\", \"head_dim\": %d,\n"
             " \"hidden_size\": %d, \"intermediate_size\": %d, \"num_hidden_layers\": %d,\n"
             " \"num_attention_heads\": %d, \"num_key_value_heads\": %d, \"vocab_size\": %d,\n"
             " \"max_position_embeddings\": 64, \"rms_norm_eps\": 1e-06, \"bos_token_id\": 1,\n"
             " \"eos_token_id\": 2, \"tie_word_embeddings\": false, \"torch_dtype\": \"bfloat16\",\n"
             " \"quantization_config\": %s}\n",
             cls, fam, HEAD_DIM, DIM, FFN, LAYERS, HEADS, KV_HEADS, VOCAB,
             v->config ? v->config : qc);
    tu_write_text(tu_path_in(dir, "config.json"), text);
}

static void write_variant(const char *dir, const struct variant *v, struct fixture *f)
{
    mkdir(dir, 0755);
    build(f, v, 7);
    write_config(dir, v);
    size_t n;
    void *tok = tu_read(tokenizer_path, &n);
    FILE *out = fopen(tu_path_in(dir, "tokenizer.model"), "wb");
    fwrite(tok, 1, n, out);
    fclose(out);
    free(tok);
    write_st(f->t, f->n, tu_path_in(dir, "model.safetensors"), v->truncate ? 4 : 0);
    write_st(f->ref, f->n_ref, tu_path_in(dir, "reference.safetensors"), 0);
}

/* cmd_convert in this process, stderr captured into err. */
static int convert(const char *dir, const char *out, char *err, size_t cap)
{
    char *argv[] = {"convert", "-q", (char *)dir, "-o", (char *)out, NULL};
    return tu_run_captured(cmd_convert, 5, argv, err, cap);
}

/* ---- reading nibble's layout back (docs/format.md, Packed tensors) ---- */

static unsigned code_at(const nb_qlayout *l, const uint8_t *d, size_t row, size_t col)
{
    size_t tile = (row / 4) * (l->cols_p / 32) + col / 32, c = col % 32;
    uint8_t b = d[tile * 64 + 16 * (c / 8) + 4 * (row % 4) + c % 4];
    return c % 8 < 4 ? b & 15u : b >> 4;
}

static size_t side_at(const nb_qlayout *l, size_t row, size_t g)
{
    return ((row / 4) * l->n_groups + g) * 4 + row % 4;
}

/* Rows whose codes, zero points, scales or dequantized weights differ. */
static size_t bad_rows(const nb_qlayout *l, const uint8_t *d, const struct lin *L)
{
    size_t bad = 0, gs = l->group ? (size_t)l->group : l->cols;
    float *row = malloc(l->cols * sizeof *row);
    for (size_t r = 0; r < l->rows; r++) {
        int ok = 1;
        nb_qrow_ref(l, d, r, row);
        for (size_t c = 0; c < l->cols; c++) {
            size_t g = c / gs;
            int q = L->q[r * L->k + c], z = L->z[r * L->ng + g];
            uint16_t h;
            memcpy(&h, d + l->scale_offset + 2 * side_at(l, r, g), 2);
            ok &= code_at(l, d, r, c) == (unsigned)(q + 8);
            ok &= d[l->zero_offset + side_at(l, r, g)] == z + 8;
            ok &= nb_f16_to_f32(h) == L->s[r * L->ng + g];
            ok &= row[c] == (float)(q - z) * L->s[r * L->ng + g];
        }
        bad += !ok;
    }
    free(row);
    return bad;
}

static void check_packed(const nb_model *m, const struct fixture *f, const struct variant *v)
{
    for (int i = 0; i < f->n_lin; i++) {
        nb_tensor t;
        nb_qlayout l;
        nb_err e;
        if (!nb_model_find(m, f->lin[i].dst, &t) || nb_qentry_layout(t.entry, &l, &e)) {
            CHECK(0, "%s: %s is missing or not packed", v->dir, f->lin[i].dst);
            continue;
        }
        CHECK(t.entry->dtype == NB_Q4 && l.group == v->group, "%s: %s is %s group %d", v->dir,
              f->lin[i].dst, nb_dtype_name(t.entry->dtype), l.group);
        size_t bad = bad_rows(&l, t.data, &f->lin[i]);
        CHECK(!bad, "%s: %s: %zu rows differ from the fixture", v->dir, f->lin[i].dst, bad);
    }
}

/* lm_head (ignored) keeps its f16 bytes; the family's blocks are f32. */
static void check_plain(const nb_model *m, const struct fixture *f, const struct variant *v)
{
    nb_tensor t;
    const struct st_t *head = NULL;
    for (int j = 0; j < f->n; j++)
        if (!strcmp(f->t[j].name, "lm_head.weight"))
            head = &f->t[j];
    int same = nb_model_find(m, NB_T_OUTPUT, &t) && t.entry->dtype == NB_F16 &&
               t.entry->size == head->size && !memcmp(t.data, head->data, head->size);
    CHECK(same, "%s: lm_head did not come through as stored", v->dir);
    const char *fam = v->family ? v->family : "";
    const char *block = !strcmp(fam, "qwen2") ? "blk.1.attn_v.bias"
                        : !strcmp(fam, "qwen3") ? "blk.1.attn_k_norm"
                                                : NULL;
    if (block)
        CHECK(nb_model_find(m, block, &t) && t.entry->dtype == NB_F32, "%s: %s", v->dir, block);
}

static void check_runs(const nb_model *m, const char *what)
{
    nb_net net;
    nb_err e;
    if (nb_net_init(&net, m, 8, &e)) {
        CHECK(0, "%s: %s", what, e.msg);
        return;
    }
    float *logits = nb_net_forward(&net, 1, 0);
    int finite = 1;
    for (int i = 0; i < VOCAB; i++)
        finite &= isfinite(logits[i]) != 0;
    CHECK(finite, "%s: logits are not finite", what);
    nb_net_free(&net);
}

static void check_good(const struct variant *v)
{
    struct fixture f;
    char dir[512], out[600], err[2048];
    snprintf(dir, sizeof dir, "%s", tu_tmp(v->dir));
    write_variant(dir, v, &f);
    snprintf(out, sizeof out, "%s.nib", dir);
    int rc = convert(dir, out, err, sizeof err);
    CHECK(rc == 0, "%s: convert failed: %s", v->dir, err);
    nb_model m;
    nb_err e;
    if (!rc && !nb_model_open(&m, out, &e)) {
        check_packed(&m, &f, v);
        check_plain(&m, &f, v);
        check_runs(&m, v->dir);
        nb_model_close(&m);
        printf("ok: %s\n", v->dir);
    } else if (!rc) {
        CHECK(0, "%s: %s", v->dir, e.msg);
    }
    free_fixture(&f);
}

static void check_hostile(const struct variant *v, const char *words)
{
    struct fixture f;
    char dir[512], out[600], err[2048];
    snprintf(dir, sizeof dir, "%s", tu_tmp(v->dir));
    write_variant(dir, v, &f);
    snprintf(out, sizeof out, "%s.nib", dir);
    int rc = convert(dir, out, err, sizeof err);
    char *nl = strchr(err, '\n');
    CHECK(rc == 1, "%s: exit code %d", v->dir, rc);
    CHECK(nl && !nl[1], "%s: not one line: '%s'", v->dir, err);
    CHECK(strstr(err, words) != NULL, "%s: '%s' lacks '%s'", v->dir, err, words);
    CHECK(access(out, F_OK) != 0, "%s: an output file was left", v->dir);
    printf("ok: %s: %s", v->dir, err);
    free_fixture(&f);
}

#define V(...) (&(struct variant){__VA_ARGS__})

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_ct TOKENIZER.model [--write DIR]\n");
        return 2;
    }
    tokenizer_path = argv[1];
    if (argc == 4 && !strcmp(argv[2], "--write")) { /* the fixture of tests/ref/check_ct.py */
        struct fixture f;
        write_variant(argv[3], V(.dir = "ref", .family = "qwen3", .group = 64, .sym = 0), &f);
        free_fixture(&f);
        return 0;
    }
    check_good(V(.dir = "sym-g128", .group = 128, .sym = 1));
    check_good(V(.dir = "asym-g32-bf16", .group = 32, .sym = 0, .scale_dtype = "BF16"));
    check_good(V(.dir = "qwen2-asym-g64", .family = "qwen2", .group = 64, .sym = 0));
    check_good(V(.dir = "qwen3-channel-sym", .family = "qwen3", .group = 0, .sym = 1));
    check_good(V(.dir = "channel-asym", .group = 0, .sym = 0));
    check_good(V(.dir = "asym-g64-i8-zeros", .group = 64, .sym = 0, .zp_i8 = 1));
    check_good(V(.dir = "full-config", .group = 128, .sym = 1,
                 .config = CT(4, "pack-quantized", "true", "group", "128", "null")));

    check_hostile(V(.dir = "bits-8", .group = 128, .sym = 1,
                    .config = CT(8, "pack-quantized", "true", "group", "128", "null")),
                  "8-bit weights");
    check_hostile(V(.dir = "format-marlin", .group = 128, .sym = 1,
                    .config = CT(4, "marlin-24", "true", "group", "128", "null")),
                  "format 'marlin-24' is not supported");
    check_hostile(V(.dir = "w4a8", .group = 128, .sym = 1,
                    .config = "{\"quant_method\": \"compressed-tensors\", \"format\": "
                              "\"pack-quantized\", \"config_groups\": {\"g\": {\"weights\": "
                              "{\"num_bits\": 4, \"type\": \"int\", \"strategy\": \"group\", "
                              "\"group_size\": 128}, \"input_activations\": {\"num_bits\": 8}}}}"),
                  "quantizes activations");
    check_hostile(V(.dir = "actorder-group", .group = 128, .sym = 1,
                    .config = CT(4, "pack-quantized", "true", "group", "128", "\"group\"")),
                  "actorder 'group'");
    check_hostile(V(.dir = "group-48", .group = 128, .sym = 1,
                    .config = CT(4, "pack-quantized", "true", "group", "48", "null")),
                  "group_size 48");
    check_hostile(V(.dir = "shape-contradicts", .group = 128, .sym = 1, .shape_off = 8),
                  "weight_shape' says [128, 136], but config.json implies [128, 128]");
    check_hostile(V(.dir = "truncated", .group = 64, .sym = 0, .truncate = 1),
                  "down_proj.weight_zero_point': data_offsets");
    check_hostile(V(.dir = "zero-out-of-range", .group = 64, .sym = 0, .zp_i8 = 1, .zp_out = 1),
                  "zero point outside [-8, 7]");
    check_hostile(V(.dir = "no-scale", .group = 128, .sym = 1, .drop_scale = 1),
                  "weight_scale' is missing");
    check_hostile(V(.dir = "asym-no-zeros", .group = 128, .sym = 1,
                    .config = CT(4, "pack-quantized", "false", "group", "128", "null")),
                  "weight_zero_point' is missing: the scheme is asymmetric");
    return tu_finish("test_ct");
}
