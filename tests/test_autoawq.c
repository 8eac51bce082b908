/* AutoAWQ import: test_autoawq TOKENIZER.model
 * Writes tiny random AutoAWQ checkpoints (weights quantized here with
 * nb_quant_row, packed by the gemm and gemv orders of awq-spec.md §7 as
 * AutoAWQ packs them), converts them with `nibble convert` (in process)
 * and checks every dequantized weight of the result bit for bit against
 * (q - z) * s; plain tensors must come through unchanged. Hostile variants
 * must fail with one clear line and leave no output. Qwen2 checkpoints
 * carry fp16 q/k/v biases beside the packed linears, Qwen3 ones fp16
 * q_norm/k_norm: both come through as f32. */
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
#include "../neon/quant.h"
#include "../runtime/qtensor.h"
#include "../tools/cli.h"
#include "testutil.h"

enum { DIM = 128, HEADS = 4, KV_HEADS = 2, HEAD_DIM = 32, FFN = 256, LAYERS = 2, VOCAB = 512 };
enum { GEMM, GEMV };

static const char *tokenizer_path;

/* ---- a safetensors writer ---- */

struct st_t {
    char name[128];
    const char *dtype;
    uint64_t shape[2];
    int n_dims;
    uint8_t *data;
    size_t size;
};

struct fixture {
    struct st_t t[160];
    int n;
    /* expected dequantized weights of each quantized linear, by nibble name */
    char qname[16][64];
    float *want[16];
    int n_q;
};

static struct st_t *add(struct fixture *f, const char *name, const char *dtype, uint64_t rows,
                        uint64_t cols, size_t width)
{
    struct st_t *t = &f->t[f->n++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = dtype;
    t->shape[0] = rows, t->shape[1] = cols;
    t->n_dims = cols ? 2 : 1;
    t->size = (size_t)(rows * (cols ? cols : 1)) * width;
    t->data = calloc(t->size ? t->size : 1, 1);
    return t;
}

static void write_shard(const struct fixture *f, const char *path, int shard, int n_shards)
{
    char header[32768], shape[64];
    size_t at = (size_t)snprintf(header, sizeof header, "{"), off = 0;
    for (int i = 0; i < f->n; i++) {
        const struct st_t *t = &f->t[i];
        if (i % n_shards != shard)
            continue;
        if (t->n_dims == 2)
            snprintf(shape, sizeof shape, "%llu,%llu", (unsigned long long)t->shape[0],
                     (unsigned long long)t->shape[1]);
        else
            snprintf(shape, sizeof shape, "%llu", (unsigned long long)t->shape[0]);
        at += (size_t)snprintf(header + at, sizeof header - at,
                               "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[%s],"
                               "\"data_offsets\":[%zu,%zu]}",
                               at > 1 ? "," : "", t->name, t->dtype, shape, off, off + t->size);
        off += t->size;
    }
    at += (size_t)snprintf(header + at, sizeof header - at, "}");
    FILE *out = fopen(path, "wb");
    uint64_t n = at;
    fwrite(&n, 8, 1, out);
    fwrite(header, 1, at, out);
    for (int i = 0; i < f->n; i++)
        if (i % n_shards == shard)
            fwrite(f->t[i].data, 1, f->t[i].size, out);
    fclose(out);
}

/* ---- quantizing and packing as AutoAWQ does ---- */

struct variant {
    const char *dir;
    int version, group;
    const char *config;   /* the quantization config JSON */
    int old_config;       /* in quant_config.json instead of config.json */
    int shards;           /* 1, or 2 with model.safetensors.index.json */
    int plain_down;       /* layer 1's down_proj left unquantized */
    const char *template; /* tokenizer_config.json's chat_template, or NULL */
    const char *family;   /* NULL: llama; "qwen2" (q/k/v biases), "qwen3" (q/k norms) */
    /* hostile knobs */
    int drop_qzeros, widen_qweight, drop_bias;
};

static void put_word(uint8_t *data, size_t word, unsigned nib, unsigned v)
{
    uint32_t w;
    memcpy(&w, data + 4 * word, 4);
    w |= (uint32_t)v << (4 * nib);
    memcpy(data + 4 * word, &w, 4);
}

static void put_half(uint8_t *data, size_t i, float v)
{
    uint16_t h = nb_f32_to_f16(v);
    memcpy(data + 2 * i, &h, 2);
}

/* AutoAWQ's gemm order: nibble i of word c holds column 8c + order[i]. */
static const int gemm_order[8] = {0, 2, 4, 6, 1, 3, 5, 7};

static void pack_gemm(struct fixture *f, const char *base, const struct variant *v, size_t n,
                      size_t k, const uint8_t *q, const float *s, const uint8_t *z)
{
    size_t ng = k / (size_t)v->group, extra = v->widen_qweight ? 1 : 0;
    char name[128];
    snprintf(name, sizeof name, "%s.qweight", base);
    uint8_t *qw = add(f, name, "I32", k, n / 8 + extra, 4)->data;
    snprintf(name, sizeof name, "%s.qzeros", base);
    uint8_t *qz = v->drop_qzeros ? NULL : add(f, name, "I32", ng, n / 8, 4)->data;
    snprintf(name, sizeof name, "%s.scales", base);
    uint8_t *sc = add(f, name, "F16", ng, n, 2)->data;
    for (size_t c = 0; c < n / 8; c++)
        for (unsigned i = 0; i < 8; i++) {
            size_t col = 8 * c + (size_t)gemm_order[i];
            for (size_t r = 0; r < k; r++)
                put_word(qw, r * (n / 8 + extra) + c, i, q[col * k + r]);
            for (size_t g = 0; g < ng; g++)
                if (qz)
                    put_word(qz, g * (n / 8) + c, i, z[col * ng + g]);
        }
    for (size_t g = 0; g < ng; g++)
        for (size_t col = 0; col < n; col++)
            put_half(sc, g * n + col, s[col * ng + g]);
}

/* AutoAWQ's calculate_zeros_width: words of zeros per row, padded. */
static size_t zeros_width(size_t k, size_t group)
{
    size_t mult = group >= 128 ? 1 : group == 64 ? 2 : 4;
    size_t base = (k / group + 7) / 8;
    return (base + mult - 1) / mult * mult;
}

static void pack_gemv(struct fixture *f, const char *base, const struct variant *v, size_t n,
                      size_t k, const uint8_t *q, const float *s, const uint8_t *z)
{
    size_t ng = k / (size_t)v->group, zw = zeros_width(k, (size_t)v->group);
    size_t extra = v->widen_qweight ? 1 : 0;
    char name[128];
    snprintf(name, sizeof name, "%s.qweight", base);
    uint8_t *qw = add(f, name, "I32", n, k / 8 + extra, 4)->data;
    snprintf(name, sizeof name, "%s.qzeros", base);
    uint8_t *qz = v->drop_qzeros ? NULL : add(f, name, "I32", n, zw, 4)->data;
    snprintf(name, sizeof name, "%s.scales", base);
    uint8_t *sc = add(f, name, "F16", n, 8 * zw, 2)->data;
    for (size_t r = 0; r < n; r++) {
        for (size_t c = 0; c < k; c++)
            put_word(qw, r * (k / 8 + extra) + c / 8, c % 8, q[r * k + c]);
        for (size_t g = 0; g < ng; g++) {
            if (qz)
                put_word(qz, r * zw + g / 8, g % 8, z[r * ng + g]);
            put_half(sc, r * 8 * zw + g, s[r * ng + g]);
        }
    }
}

static void add_half(struct fixture *f, const char *name, uint64_t rows, uint64_t cols,
                     float base, uint64_t *seed)
{
    struct st_t *t = add(f, name, "F16", rows, cols, 2);
    for (size_t i = 0; i < t->size / 2; i++)
        put_half(t->data, i, base + 0.3f * tu_randf(seed));
}

/* One linear: random weights, quantized, packed (or left plain). */
static void add_linear(struct fixture *f, const struct variant *v, int layer, const char *part,
                       const char *dst_fmt, size_t n, size_t k, uint64_t *seed)
{
    char base[96], name[128];
    snprintf(base, sizeof base, "model.layers.%d.%s", layer, part);
    if (v->plain_down && layer == 1 && !strcmp(part, "mlp.down_proj")) {
        snprintf(name, sizeof name, "%s.weight", base);
        add_half(f, name, n, k, 0.0f, seed);
        return;
    }
    nb_qspec spec = {.bits = 4, .group = v->group};
    size_t ng = k / (size_t)v->group;
    float *w = malloc(k * sizeof *w), *s = malloc(n * ng * sizeof *s);
    uint8_t *q = malloc(n * k), *z = malloc(n * ng);
    float *want = malloc(n * k * sizeof *want);
    for (size_t r = 0; r < n; r++) {
        for (size_t c = 0; c < k; c++)
            w[c] = 0.3f * tu_randf(seed);
        nb_quant_row(w, k, &spec, q + r * k, s + r * ng, z + r * ng);
        for (size_t c = 0; c < k; c++)
            want[r * k + c] = (float)(q[r * k + c] - z[r * ng + c / (size_t)v->group]) *
                              s[r * ng + c / (size_t)v->group];
    }
    (v->version == GEMM ? pack_gemm : pack_gemv)(f, base, v, n, k, q, s, z);
    snprintf(f->qname[f->n_q], sizeof f->qname[0], dst_fmt, layer);
    f->want[f->n_q++] = want;
    free(w), free(s), free(q), free(z);
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
    memset(f, 0, sizeof *f);
    add_half(f, "model.embed_tokens.weight", VOCAB, DIM, 0.0f, &seed);
    for (int l = 0; l < LAYERS; l++) {
        char name[96];
        snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", l);
        add_half(f, name, DIM, 0, 1.0f, &seed);
        snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", l);
        add_half(f, name, DIM, 0, 1.0f, &seed);
        for (size_t p = 0; p < sizeof parts / sizeof *parts; p++)
            add_linear(f, v, l, parts[p].part, parts[p].dst, parts[p].n, parts[p].k, &seed);
        static const char *const qkv[3] = {"q", "k", "v"};
        for (int i = 0; v->family && !strcmp(v->family, "qwen2") && i < 3; i++) {
            snprintf(name, sizeof name, "model.layers.%d.self_attn.%s_proj.bias", l, qkv[i]);
            if (!(v->drop_bias && l == 1 && i == 2))
                add_half(f, name, (i ? KV_HEADS : HEADS) * HEAD_DIM, 0, 0.0f, &seed);
        }
        for (int i = 0; v->family && !strcmp(v->family, "qwen3") && i < 2; i++) {
            snprintf(name, sizeof name, "model.layers.%d.self_attn.%s_norm.weight", l, qkv[i]);
            add_half(f, name, HEAD_DIM, 0, 1.0f, &seed);
        }
    }
    add_half(f, "model.norm.weight", DIM, 0, 1.0f, &seed);
    add_half(f, "lm_head.weight", VOCAB, DIM, 0.0f, &seed);
}

static void free_fixture(struct fixture *f)
{
    for (int i = 0; i < f->n; i++)
        free(f->t[i].data);
    for (int i = 0; i < f->n_q; i++)
        free(f->want[i]);
}

static void copy_file(const char *from, const char *to)
{
    size_t n;
    void *data = tu_read(from, &n);
    FILE *out = fopen(to, "wb");
    fwrite(data, 1, n, out);
    fclose(out);
    free(data);
}

static void write_config(const char *dir, const struct variant *v)
{
    char text[2048];
    const char *fam = v->family ? v->family : "llama";
    const char *cls = !strcmp(fam, "qwen2")   ? "Qwen2ForCausalLM"
                      : !strcmp(fam, "qwen3") ? "Qwen3ForCausalLM"
                                              : "LlamaForCausalLM";
    snprintf(text, sizeof text,
             "{\"architectures\": [\"%s\"], \"model_type\": \"%s\", \"head_dim\": %d,\n"
             " \"hidden_size\": %d, \"intermediate_size\": %d, \"num_hidden_layers\": %d,\n"
             " \"num_attention_heads\": %d, \"num_key_value_heads\": %d, \"vocab_size\": %d,\n"
             " \"max_position_embeddings\": 64, \"rms_norm_eps\": 1e-05, \"bos_token_id\": 1,\n"
             " \"eos_token_id\": 2, \"tie_word_embeddings\": false, \"torch_dtype\": \"float16\"%s%s}\n",
             cls, fam, HEAD_DIM, DIM, FFN, LAYERS, HEADS, KV_HEADS, VOCAB,
             v->old_config ? "" : ",\n \"quantization_config\": ", v->old_config ? "" : v->config);
    tu_write_text(tu_path_in(dir, "config.json"), text);
    if (v->old_config)
        tu_write_text(tu_path_in(dir, "quant_config.json"), v->config);
}

static void write_index(const char *dir, const struct fixture *f)
{
    char text[32768];
    size_t at = (size_t)snprintf(text, sizeof text, "{\"metadata\": {}, \"weight_map\": {");
    for (int i = 0; i < f->n; i++)
        at += (size_t)snprintf(text + at, sizeof text - at, "%s\"%s\": \"model-0000%d-of-00002.safetensors\"",
                               i ? ", " : "", f->t[i].name, i % 2 + 1);
    snprintf(text + at, sizeof text - at, "}}\n");
    tu_write_text(tu_path_in(dir, "model.safetensors.index.json"), text);
}

/* Writes the checkpoint folder and returns its path. */
static const char *write_variant(const struct variant *v, struct fixture *f)
{
    static char dir[512];
    snprintf(dir, sizeof dir, "%s", tu_tmp(v->dir));
    mkdir(dir, 0755);
    build(f, v, 42);
    write_config(dir, v);
    copy_file(tokenizer_path, tu_path_in(dir, "tokenizer.model"));
    if (v->template) {
        char text[1024];
        snprintf(text, sizeof text, "{\"bos_token\": \"<s>\", \"chat_template\": \"%s\"}",
                 v->template);
        tu_write_text(tu_path_in(dir, "tokenizer_config.json"), text);
    }
    if (v->shards == 2) {
        write_shard(f, tu_path_in(dir, "model-00001-of-00002.safetensors"), 0, 2);
        write_shard(f, tu_path_in(dir, "model-00002-of-00002.safetensors"), 1, 2);
        write_index(dir, f);
    } else {
        write_shard(f, tu_path_in(dir, "model.safetensors"), 0, 1);
    }
    return dir;
}

/* ---- running nibble convert ---- */

/* cmd_convert in this process, stderr captured into err. */
static int convert(const char *dir, const char *out, char *err, size_t cap)
{
    char *argv[] = {"convert", "-q", (char *)dir, "-o", (char *)out, NULL};
    return tu_run_captured(cmd_convert, 5, argv, err, cap);
}

/* ---- checking the result ---- */

static void check_packed(const nb_model *m, const struct fixture *f, const struct variant *v)
{
    for (int i = 0; i < f->n_q; i++) {
        nb_tensor t;
        nb_qlayout l;
        nb_err e;
        if (!nb_model_find(m, f->qname[i], &t) || nb_qentry_layout(t.entry, &l, &e)) {
            CHECK(0, "%s: %s is missing or not packed", v->dir, f->qname[i]);
            continue;
        }
        CHECK(t.entry->dtype == NB_Q4 && l.group == v->group, "%s: %s is %s group %d", v->dir,
              f->qname[i], nb_dtype_name(t.entry->dtype), l.group);
        float *row = malloc(l.cols * sizeof *row);
        size_t bad = 0;
        for (size_t r = 0; r < l.rows; r++) {
            nb_qrow_ref(&l, t.data, r, row);
            bad += memcmp(row, f->want[i] + r * l.cols, l.cols * sizeof *row) != 0;
        }
        CHECK(!bad, "%s: %s: %zu rows differ from (q - z) * s", v->dir, f->qname[i], bad);
        free(row);
    }
}

/* Norms become f32 exactly; the embeddings, lm_head and a plain linear
 * keep their f16 bytes. */
static void check_plain(const nb_model *m, const struct fixture *f, const struct variant *v)
{
    static const struct {
        const char *src, *dst;
    } map[] = {
        {"model.embed_tokens.weight", NB_T_EMBED},
        {"lm_head.weight", NB_T_OUTPUT},
        {"model.norm.weight", NB_T_OUT_NORM},
        {"model.layers.1.input_layernorm.weight", "blk.1.attn_norm"},
        {"model.layers.1.mlp.down_proj.weight", "blk.1.ffn_down"},
        {"model.layers.1.self_attn.q_proj.bias", "blk.1.attn_q.bias"},
        {"model.layers.0.self_attn.v_proj.bias", "blk.0.attn_v.bias"},
        {"model.layers.1.self_attn.q_norm.weight", "blk.1.attn_q_norm"},
        {"model.layers.0.self_attn.k_norm.weight", "blk.0.attn_k_norm"},
    };
    for (size_t i = 0; i < sizeof map / sizeof *map; i++) {
        const struct st_t *s = NULL;
        for (int j = 0; j < f->n; j++)
            if (!strcmp(f->t[j].name, map[i].src))
                s = &f->t[j];
        nb_tensor t;
        if (!s)
            continue;
        if (!nb_model_find(m, map[i].dst, &t)) {
            CHECK(0, "%s: %s missing", v->dir, map[i].dst);
            continue;
        }
        int same = 1;
        size_t n = s->size / 2;
        for (size_t k = 0; k < n; k++) {
            uint16_t h;
            memcpy(&h, s->data + 2 * k, 2);
            same &= t.entry->dtype == NB_F32 ? ((const float *)t.data)[k] == nb_f16_to_f32(h)
                                             : ((const uint16_t *)t.data)[k] == h;
        }
        CHECK(same, "%s: %s differs from %s", v->dir, map[i].dst, map[i].src);
    }
}

/* The converted model loads and runs. */
static void check_runs(const nb_model *m, const char *what)
{
    nb_net llama;
    nb_err e;
    if (nb_net_init(&llama, m, 8, &e)) {
        CHECK(0, "%s: %s", what, e.msg);
        return;
    }
    float *logits = nb_net_forward(&llama, 1, 0);
    int finite = 1;
    for (int i = 0; i < VOCAB; i++)
        finite &= isfinite(logits[i]) != 0;
    CHECK(finite, "%s: logits are not finite", what);
    nb_net_free(&llama);
}

static void check_good(const struct variant *v, const char *want_template)
{
    struct fixture f;
    const char *dir = write_variant(v, &f);
    char out[600], err[2048];
    snprintf(out, sizeof out, "%s.nib", dir);
    int rc = convert(dir, out, err, sizeof err);
    CHECK(rc == 0, "%s: convert failed: %s", v->dir, err);
    nb_model m;
    nb_err e;
    if (!rc && !nb_model_open(&m, out, &e)) {
        check_packed(&m, &f, v);
        check_plain(&m, &f, v);
        CHECK(!strcmp(m.meta.chat_template, want_template), "%s: template '%s', want '%s'",
              v->dir, m.meta.chat_template, want_template);
        CHECK(!m.meta.tied_embeddings, "%s: lm_head was dropped", v->dir);
        uint32_t arch = !v->family                      ? NB_ARCH_LLAMA
                        : !strcmp(v->family, "qwen2") ? NB_ARCH_QWEN2
                                                       : NB_ARCH_QWEN3;
        CHECK(m.meta.arch == arch, "%s: architecture %u, want %u", v->dir, m.meta.arch, arch);
        nb_tensor t;
        int has_bias = nb_model_find(&m, "blk.0.attn_q.bias", &t) != NULL;
        CHECK(has_bias == (arch == NB_ARCH_QWEN2) && (!has_bias || t.entry->dtype == NB_F32),
              "%s: q bias %s", v->dir, has_bias ? nb_dtype_name(t.entry->dtype) : "absent");
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
    const char *dir = write_variant(v, &f);
    char out[600], err[2048];
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

#define AWQ(version, group) \
    "{\"quant_method\": \"awq\", \"bits\": 4, \"group_size\": " #group \
    ", \"zero_point\": true, \"version\": \"" version "\", \"modules_to_not_convert\": null}"

static const char zephyr_jinja[] =
    "{% for message in messages %}{% if message['role'] == 'user' %}{{ '<|user|>\\\\n' + "
    "message['content'] + eos_token }}{% elif message['role'] == 'assistant' %}{{ "
    "'<|assistant|>\\\\n' + message['content'] + eos_token }}{% endif %}{% endfor %}";

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_autoawq TOKENIZER.model\n");
        return 2;
    }
    tokenizer_path = argv[1];
    check_good(&(struct variant){.dir = "gemm-g128", .version = GEMM, .group = 128,
                                 .config = AWQ("GEMM", 128), .shards = 1,
                                 .template = zephyr_jinja},
               "zephyr");
    check_good(&(struct variant){.dir = "Llama-2-7b-chat-awq-gemv-g64", .version = GEMV,
                                 .group = 64, .config = AWQ("gemv", 64), .shards = 2},
               "llama2");
    check_good(&(struct variant){.dir = "old-gemm-g32", .version = GEMM, .group = 32,
                                 .config = "{\"zero_point\": true, \"q_group_size\": 32, "
                                           "\"w_bit\": 4, \"version\": \"GEMM\"}",
                                 .old_config = 1, .shards = 1, .plain_down = 1},
               "");
    check_good(&(struct variant){.dir = "gemv-g32", .version = GEMV, .group = 32,
                                 .config = AWQ("GEMV", 32), .shards = 1},
               "");
    check_good(&(struct variant){.dir = "qwen2-gemm-g64", .version = GEMM, .group = 64,
                                 .config = AWQ("gemm", 64), .shards = 2, .family = "qwen2"},
               "");
    check_good(&(struct variant){.dir = "qwen3-gemv-g128", .version = GEMV, .group = 128,
                                 .config = AWQ("gemv", 128), .shards = 1, .family = "qwen3"},
               "");

    check_hostile(&(struct variant){.dir = "bad-shape", .version = GEMM, .group = 128,
                                    .config = AWQ("gemm", 128), .shards = 1, .widen_qweight = 1},
                  "has shape");
    check_hostile(&(struct variant){.dir = "qwen2-no-v-bias", .version = GEMM, .group = 128,
                                    .config = AWQ("gemm", 128), .shards = 1, .family = "qwen2",
                                    .drop_bias = 1},
                  "'model.layers.1.self_attn.v_proj.bias' is missing");
    check_hostile(&(struct variant){.dir = "no-qzeros", .version = GEMV, .group = 128,
                                    .config = AWQ("gemv", 128), .shards = 1, .drop_qzeros = 1},
                  "qzeros' is missing");
    check_hostile(&(struct variant){.dir = "bits-3", .version = GEMM, .group = 128,
                                    .config = "{\"quant_method\": \"awq\", \"bits\": 3, "
                                              "\"group_size\": 128, \"version\": \"gemm\"}",
                                    .shards = 1},
                  "3-bit");
    check_hostile(&(struct variant){.dir = "group-96", .version = GEMM, .group = 128,
                                    .config = AWQ("gemm", 96), .shards = 1},
                  "does not divide");
    check_hostile(&(struct variant){.dir = "version-exllama", .version = GEMM, .group = 128,
                                    .config = AWQ("exllama", 128), .shards = 1},
                  "unknown AutoAWQ version 'exllama'");
    check_hostile(&(struct variant){.dir = "gemv-fast", .version = GEMV, .group = 128,
                                    .config = AWQ("gemv_fast", 128), .shards = 1},
                  "gemv_fast is not supported");
    check_hostile(&(struct variant){.dir = "gptq", .version = GEMM, .group = 128,
                                    .config = "{\"quant_method\": \"gptq\", \"bits\": 4}",
                                    .shards = 1},
                  "quant_method 'gptq'");
    check_hostile(&(struct variant){.dir = "no-zero-point", .version = GEMM, .group = 128,
                                    .config = "{\"quant_method\": \"awq\", \"bits\": 4, "
                                              "\"group_size\": 128, \"zero_point\": false}",
                                    .shards = 1},
                  "without zero points");
    return tu_finish("test_autoawq");
}
