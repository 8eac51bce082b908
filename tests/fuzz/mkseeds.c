/* Writes the small seed inputs of the fuzz targets: mkseeds OUT_DIR DATA_DIR
 * makes OUT_DIR/<target>/ for every target, from tiny models built here
 * and the small real files of DATA_DIR (tests/data). tests/fuzz/corpus/
 * is its output; tests/fuzz/run.sh adds seeds from the large real files
 * (stories260K as .bin, .safetensors and converted .nib files). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../../models/net.h"
#include "../../neon/f16.h"
#include "../../runtime/kv.h"
#include "../../runtime/qtensor.h"
#include "../../runtime/writer.h"
#include "../../tokenizer/tokenizer.h"
#include "../testutil.h"
#include "fuzz_util.h"

static const char *out_dir, *data_dir;
static int failures;

static const char *path(const char *target, const char *name)
{
    static char buf[1024];
    snprintf(buf, sizeof buf, "%s/%s", out_dir, target);
    mkdir(buf, 0755);
    snprintf(buf, sizeof buf, "%s/%s/%s", out_dir, target, name);
    return buf;
}

static void put(const char *target, const char *name, const void *data, size_t size)
{
    failures += fz_write(path(target, name), data, size) != 0;
}

static void put_text(const char *target, const char *name, const char *text)
{
    put(target, name, text, strlen(text));
}

static void copy(const char *target, const char *name, const char *src)
{
    char full[1024];
    size_t n;
    snprintf(full, sizeof full, "%s/%s", data_dir, src);
    void *data = fz_read(full, &n);
    if (!data) {
        fprintf(stderr, "mkseeds: cannot read %s\n", full);
        failures++;
        return;
    }
    put(target, name, data, n);
    free(data);
}

/* ---- .nib models ---- */

static struct nb_meta meta(uint32_t dim, uint32_t heads, uint32_t kv_heads, uint32_t ffn,
                           uint32_t vocab, uint32_t rope_pairs, int tied)
{
    struct nb_meta m;
    memset(&m, 0, sizeof m);
    m.arch = NB_ARCH_LLAMA;
    m.dim = dim, m.n_layers = 1, m.n_heads = heads, m.n_kv_heads = kv_heads;
    m.head_dim = dim / heads, m.ffn_dim = ffn, m.vocab_size = vocab, m.max_ctx = 16;
    m.rope_pairs = rope_pairs, m.rope_theta = 10000.0f, m.norm_eps = 1e-5f;
    m.bos_id = 1, m.eos_id = 2, m.unk_id = 0, m.pad_id = -1;
    m.tied_embeddings = (uint32_t)tied;
    strcpy(m.name, "fuzz seed");
    return m;
}

static int add_plain(nb_writer *w, const char *name, uint32_t dtype, uint64_t rows, uint64_t cols,
                     uint64_t *seed, nb_err *e)
{
    size_t n = (size_t)(rows * (cols ? cols : 1)), width = nb_dtype_width(dtype);
    uint8_t *buf = malloc(n * width);
    for (size_t i = 0; i < n; i++) {
        float v = cols ? 0.3f * tu_randf(seed) : 1.0f + 0.1f * tu_randf(seed);
        uint16_t h = dtype == NB_F16 ? nb_f32_to_f16(v) : nb_f32_to_bf16(v);
        memcpy(buf + i * width, width == 4 ? (void *)&v : (void *)&h, width);
    }
    uint64_t shape[2] = {rows, cols};
    int rc = nb_writer_add(w, name, dtype, cols ? 2 : 1, shape, buf, n * width, e);
    free(buf);
    return rc;
}

static int add_packed(nb_writer *w, const char *name, uint64_t rows, uint64_t cols, int bits,
                      int group, uint64_t *seed, nb_err *e)
{
    nb_qlayout l;
    struct nb_tensor_entry t;
    if (nb_qlayout_init(&l, rows, cols, bits, group) || nb_qentry_init(&t, name, &l, e))
        return nb_fail(e, "cannot lay out %s", name);
    size_t ng = l.n_groups;
    uint8_t *codes = malloc(rows * cols), *zeros = malloc(rows * ng), *out = malloc(l.total_bytes);
    float *scales = malloc(rows * ng * sizeof *scales);
    for (size_t i = 0; i < rows * cols; i++)
        codes[i] = (uint8_t)(tu_rand(seed) % (1u << bits));
    for (size_t i = 0; i < rows * ng; i++) {
        zeros[i] = (uint8_t)(tu_rand(seed) % (1u << bits));
        scales[i] = 0.02f * (1.5f + tu_randf(seed));
    }
    nb_qpack(&l, codes, scales, zeros, out);
    int rc = nb_writer_add_entry(w, &t, out, e);
    free(codes), free(zeros), free(out), free(scales);
    return rc;
}

/* The family's optional tensors of layer 0: q/k/v biases, q/k norms. */
static int add_optional(nb_writer *w, const struct nb_meta *m, uint64_t *seed, nb_err *e)
{
    unsigned has = nb_arch_by_id(m->arch)->has;
    uint64_t q = (uint64_t)m->n_heads * m->head_dim, kv = (uint64_t)m->n_kv_heads * m->head_dim;
    char name[NB_NAME_LEN];
    const struct { const char *fmt; uint64_t n; unsigned has; } opt[] = {
        {NB_T_Q_BIAS, q, NB_HAS_QKV_BIAS},         {NB_T_K_BIAS, kv, NB_HAS_QKV_BIAS},
        {NB_T_V_BIAS, kv, NB_HAS_QKV_BIAS},        {NB_T_Q_NORM, m->head_dim, NB_HAS_QK_NORM},
        {NB_T_K_NORM, m->head_dim, NB_HAS_QK_NORM},
    };
    for (size_t i = 0; i < sizeof opt / sizeof *opt; i++) {
        snprintf(name, sizeof name, opt[i].fmt, 0);
        if ((has & opt[i].has) && add_plain(w, name, NB_F32, opt[i].n, 0, seed, e))
            return -1;
    }
    return 0;
}

/* Key/values of the seeds: the architecture, and RoPE scaling when given. */
static nb_writer *open_nib(const char *name, const struct nb_meta *m, const nb_rope *rope,
                           nb_err *e)
{
    nb_kvw kv = {0};
    size_t n;
    nb_kvw_str(&kv, "general.architecture", nb_arch_name(m->arch));
    if (rope)
        nb_rope_write(rope, &kv);
    const void *bytes = nb_kvw_bytes(&kv, &n, e);
    nb_writer *w = bytes ? nb_writer_open_kv(path("nib", name), m, bytes, n, "\0\0\0\0\0\0\0",
                                             8, e)
                         : NULL;
    nb_kvw_free(&kv);
    return w;
}

/* A one-layer model: linears packed (bits 3 or 4) or plain of dtype. */
static void write_nib_kv(const char *name, const struct nb_meta *m, const nb_rope *rope,
                         uint32_t dtype, int bits, int group)
{
    nb_err e;
    uint64_t seed = 7, d = m->dim, q = (uint64_t)m->n_heads * m->head_dim;
    uint64_t kv = (uint64_t)m->n_kv_heads * m->head_dim, f = m->ffn_dim;
    nb_writer *w = open_nib(name, m, rope, &e);
    int rc = !w || add_plain(w, NB_T_EMBED, dtype, m->vocab_size, d, &seed, &e) ||
             add_plain(w, NB_T_OUT_NORM, NB_F32, d, 0, &seed, &e) ||
             (!m->tied_embeddings && add_plain(w, NB_T_OUTPUT, dtype, m->vocab_size, d, &seed, &e));
    const struct { const char *fmt; uint64_t rows, cols; } lin[] = {
        {NB_T_ATTN_NORM, d, 0}, {NB_T_Q, q, d},       {NB_T_K, kv, d},   {NB_T_V, kv, d},
        {NB_T_O, d, q},         {NB_T_FFN_NORM, d, 0}, {NB_T_GATE, f, d}, {NB_T_UP, f, d},
        {NB_T_DOWN, d, f},
    };
    for (size_t i = 0; i < sizeof lin / sizeof *lin && !rc; i++) {
        char tname[NB_NAME_LEN];
        snprintf(tname, sizeof tname, lin[i].fmt, 0);
        rc = !lin[i].cols ? add_plain(w, tname, NB_F32, lin[i].rows, 0, &seed, &e)
             : bits       ? add_packed(w, tname, lin[i].rows, lin[i].cols, bits, group, &seed, &e)
                          : add_plain(w, tname, dtype, lin[i].rows, lin[i].cols, &seed, &e);
    }
    rc = rc || add_optional(w, m, &seed, &e);
    if (rc && w)
        nb_writer_abort(w);
    if (rc || nb_writer_commit(w, &e)) {
        fprintf(stderr, "mkseeds: %s: %s\n", name, e.msg);
        failures++;
    }
}

static void write_nib(const char *name, const struct nb_meta *m, uint32_t dtype, int bits,
                      int group)
{
    write_nib_kv(name, m, NULL, dtype, bits, group);
}

static void nib_seeds(void)
{
    struct nb_meta qwen2 = meta(16, 4, 2, 24, 32, NB_ROPE_HALVES, 1);
    struct nb_meta qwen3 = meta(16, 2, 1, 32, 32, NB_ROPE_HALVES, 0);
    const nb_rope llama3 = {NB_ROPE_SCALE_LLAMA3, 8, 1, 4, 8};
    qwen2.arch = NB_ARCH_QWEN2;
    qwen3.arch = NB_ARCH_QWEN3;
    qwen3.head_dim = 12; /* not dim / heads, as in Qwen3 */
    write_nib_kv("qwen2-bias.nib", &qwen2, NULL, NB_F16, 0, 0);
    write_nib_kv("qwen3-llama3-q4.nib", &qwen3, &llama3, NB_F16, 4, 0);
    struct nb_meta small = meta(16, 2, 1, 24, 32, NB_ROPE_INTERLEAVED, 1);
    struct nb_meta untied = meta(16, 4, 2, 24, 32, NB_ROPE_HALVES, 0);
    struct nb_meta ragged = meta(40, 2, 1, 72, 20, NB_ROPE_HALVES, 0);
    struct nb_meta tiles = meta(64, 2, 1, 64, 16, NB_ROPE_INTERLEAVED, 1);
    write_nib("f32.nib", &small, NB_F32, 0, 0);
    write_nib("f16-untied.nib", &untied, NB_F16, 0, 0);
    write_nib("bf16.nib", &small, NB_BF16, 0, 0);
    write_nib("q4-g32-ragged.nib", &ragged, NB_F16, 4, 32);
    write_nib("q3-row.nib", &ragged, NB_F16, 3, 0);
    write_nib("q4-g64.nib", &tiles, NB_F16, 4, 64);
}

/* ---- AutoAWQ folders: u32 length, config.json, model.safetensors ---- */

struct st_list {
    fz_st_tensor t[32];
    char names[32][128];
    void *bufs[32];
    int n;
};

/* Appends a zeroed tensor and returns its bytes. */
static void *add(struct st_list *l, const char *name, const char *dtype, uint64_t rows,
                 uint64_t cols, size_t width)
{
    size_t bytes = (size_t)(rows * (cols ? cols : 1)) * width;
    snprintf(l->names[l->n], sizeof l->names[0], "%s", name);
    l->bufs[l->n] = calloc(1, bytes);
    l->t[l->n] = (fz_st_tensor){l->names[l->n], dtype, cols ? 2 : 1, {rows, cols}, l->bufs[l->n],
                                bytes};
    return l->bufs[l->n++];
}

enum { A_DIM = 32, A_HEADS = 2, A_KV = 1, A_HD = 16, A_FFN = 32, A_VOCAB = 512, A_GROUP = 32 };

static void awq_seed(const char *name, int gemv, int plain_down)
{
    char config[1024];
    snprintf(config, sizeof config,
             "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\",\n"
             " \"hidden_size\": %d, \"intermediate_size\": %d, \"num_hidden_layers\": 1,\n"
             " \"num_attention_heads\": %d, \"num_key_value_heads\": %d, \"vocab_size\": %d,\n"
             " \"max_position_embeddings\": 64, \"rms_norm_eps\": 1e-05, \"bos_token_id\": 1,\n"
             " \"eos_token_id\": 2, \"tie_word_embeddings\": true, \"torch_dtype\": \"float16\",\n"
             " \"quantization_config\": {\"quant_method\": \"awq\", \"bits\": 4,\n"
             "  \"group_size\": %d, \"zero_point\": true, \"version\": \"%s\"%s}}\n",
             A_DIM, A_FFN, A_HEADS, A_KV, A_VOCAB, A_GROUP, gemv ? "gemv" : "gemm",
             plain_down ? ", \"modules_to_not_convert\": [\"down_proj\"]" : "");
    static const struct { const char *part; uint64_t n, k; } parts[] = {
        {"self_attn.q_proj", A_HEADS * A_HD, A_DIM}, {"self_attn.k_proj", A_KV * A_HD, A_DIM},
        {"self_attn.v_proj", A_KV * A_HD, A_DIM},    {"self_attn.o_proj", A_DIM, A_HEADS * A_HD},
        {"mlp.gate_proj", A_FFN, A_DIM},             {"mlp.up_proj", A_FFN, A_DIM},
        {"mlp.down_proj", A_DIM, A_FFN},
    };
    struct st_list l = {.n = 0};
    uint64_t seed = 3;
    add(&l, "model.embed_tokens.weight", "F16", A_VOCAB, A_DIM, 2);
    add(&l, "model.norm.weight", "F16", A_DIM, 0, 2);
    add(&l, "model.layers.0.input_layernorm.weight", "F16", A_DIM, 0, 2);
    add(&l, "model.layers.0.post_attention_layernorm.weight", "F16", A_DIM, 0, 2);
    for (int i = 0; i < 4; i++) { /* embeddings small, norms near 1 */
        uint16_t *h = l.bufs[i];
        for (size_t k = 0; k < l.t[i].size / 2; k++)
            h[k] = nb_f32_to_f16(i ? 1.0f + 0.1f * tu_randf(&seed) : 0.3f * tu_randf(&seed));
    }
    for (size_t p = 0; p < sizeof parts / sizeof *parts; p++) {
        char base[64], full[128];
        uint64_t rows = parts[p].n, k = parts[p].k, ng = k / A_GROUP, zw = (ng + 7) / 8 * 4;
        snprintf(base, sizeof base, "model.layers.0.%s", parts[p].part);
        if (plain_down && !strcmp(parts[p].part, "mlp.down_proj")) {
            snprintf(full, sizeof full, "%s.weight", base);
            add(&l, full, "F16", rows, k, 2);
            continue;
        }
        /* gemm: qweight [k, n/8], qzeros [k/g, n/8], scales [k/g, n];
         * gemv: qweight [n, k/8], qzeros [n, zw], scales [n, 8 zw] */
        snprintf(full, sizeof full, "%s.qweight", base);
        uint8_t *qw = add(&l, full, "I32", gemv ? rows : k, gemv ? k / 8 : rows / 8, 4);
        for (size_t i = 0; i < l.t[l.n - 1].size; i++)
            qw[i] = (uint8_t)tu_rand(&seed);
        snprintf(full, sizeof full, "%s.qzeros", base);
        uint8_t *qz = add(&l, full, "I32", gemv ? rows : ng, gemv ? zw : rows / 8, 4);
        memset(qz, 0x88, l.t[l.n - 1].size); /* zero points 8 */
        snprintf(full, sizeof full, "%s.scales", base);
        uint16_t *sc = add(&l, full, "F16", gemv ? rows : ng, gemv ? 8 * zw : rows, 2);
        for (size_t i = 0; i < l.t[l.n - 1].size / 2; i++)
            sc[i] = nb_f32_to_f16(0.01f * (1.5f + tu_randf(&seed)));
    }
    size_t st_size, cfg = strlen(config);
    uint8_t *st = fz_st_image(l.t, l.n, &st_size);
    uint8_t *all = malloc(4 + cfg + st_size);
    uint32_t len = (uint32_t)cfg;
    memcpy(all, &len, 4); /* little-endian hosts only, as nibble itself */
    memcpy(all + 4, config, cfg);
    memcpy(all + 4 + cfg, st, st_size);
    put("autoawq", name, all, 4 + cfg + st_size);
    if (!gemv && !plain_down)
        put("safetensors", "awq-gemm.safetensors", st, st_size);
    free(all), free(st);
    for (int i = 0; i < l.n; i++)
        free(l.bufs[i]);
}

/* ---- llama2.c checkpoints (vocab 512: tok512's) ---- */

static void llama2c_seed(const char *name, int shared)
{
    enum { D = 8, F = 16, L = 1, H = 2, KV = 1, V = 512, CTX = 8 };
    int32_t header[7] = {D, F, L, H, KV, shared ? V : -V, CTX};
    size_t hd = D / H, kv = hd * KV;
    size_t floats = (size_t)V * D + L * (D + D * D + 2 * kv * D + D * D + D + 3 * (size_t)F * D) +
                    D + CTX * hd + (shared ? 0 : (size_t)V * D);
    uint8_t *buf = malloc(28 + 4 * floats);
    uint64_t seed = 5;
    memcpy(buf, header, 28);
    for (size_t i = 0; i < floats; i++) {
        float v = 0.3f * tu_randf(&seed);
        memcpy(buf + 28 + 4 * i, &v, 4);
    }
    put("llama2c", name, buf, 28 + 4 * floats);
    free(buf);
}

/* ---- token id streams over tok512 (each id stored as id + 4) ---- */

static void detok_seed(const nb_tokenizer *t, const char *name, int flags, const int32_t *ids,
                       size_t n)
{
    uint8_t *buf = malloc(1 + 2 * n);
    buf[0] = (uint8_t)flags;
    for (size_t i = 0; i < n; i++) {
        uint32_t v = (uint32_t)(ids[i] + 4);
        buf[1 + 2 * i] = (uint8_t)v, buf[2 + 2 * i] = (uint8_t)(v >> 8);
    }
    (void)t;
    put("detok", name, buf, 1 + 2 * n);
    free(buf);
}

static void detok_seeds(void)
{
    nb_err e;
    nb_tokenizer *t = nb_tok_load_file(fz_tokenizer_path(), &e);
    if (!t) {
        fprintf(stderr, "mkseeds: %s\n", e.msg);
        failures++;
        return;
    }
    const char *text = "Once upon a time, there was a little girl named Lily. "
                       "She saw a b\xC3\xBCg \xF0\x9F\xA6\x99 and said \"\xE6\x97\xA5!\"\n";
    int32_t *ids;
    size_t n;
    if (!nb_tok_encode(t, text, strlen(text), 1, &ids, &n, &e)) {
        detok_seed(t, "story.ids", 0, ids, n);
        detok_seed(t, "story-small-buffer.ids", 1 | 6 << 1, ids, n);
        free(ids);
    }
    /* byte pieces: a whole character, one cut short, stray continuations,
     * a character broken by a control piece, then an unknown id */
    const unsigned char bytes[] = {0xE6, 0x97, 0xA5, 0xF0, 0x9F, 0xA6, 0x80, 0x80, 0xC3};
    int32_t run[32];
    size_t k = 0;
    for (size_t i = 0; i < sizeof bytes; i++) {
        char piece[8];
        snprintf(piece, sizeof piece, "<0x%02X>", bytes[i]);
        run[k++] = nb_tok_piece_to_id(t, piece);
        if (i == 5)
            run[k++] = nb_tok_eos(t);
    }
    run[k++] = nb_tok_unk(t);
    run[k++] = nb_tok_piece_to_id(t, "\xE2\x96\x81the");
    detok_seed(t, "bytes.ids", 0, run, k);
    nb_tok_free(t);
}

/* ---- JSON texts ---- */

static void json_seeds(void)
{
    put_text("json", "config.json", FZ_TINY_CONFIG);
    put_text("json", "values.json",
             "\xEF\xBB\xBF[null, true, false, 0, -0, 4096.0, 4e3, 1.5e-3, -12345678901234567,\n"
             " 9007199254740993, 1e308, 2.5E+2, \"\", \"a\\u0000b\",\n"
             " \"\\ud83e\\udd99 \\u00fc\\n\\t\\\\\\\"\\/\", \"\xE6\x97\xA5\xE6\x9C\xAC\", [], {},\n"
             " [[[[1]]]], {\"a\": {\"b\": [1, {\"c\": null}]}}]");
    put_text("json", "header.json",
             "{\"__metadata__\": {\"format\": \"pt\"}, \"w\": {\"dtype\": \"F16\","
             " \"shape\": [2, 3], \"data_offsets\": [0, 12]}, \"a\\u0000b\": 1, \"\": []}");
    put_text("json", "tokenizer_config.json",
             "{\"bos_token\": \"<s>\", \"chat_template\": \"{% for m in messages %}[INST] "
             "{{ m['content'] }} [/INST]{% endfor %}\", \"added_tokens_decoder\": {\"0\": "
             "{\"content\": \"<unk>\", \"special\": true}}}");
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: mkseeds OUT_DIR DATA_DIR\n");
        return 2;
    }
    out_dir = argv[1], data_dir = argv[2];
    mkdir(out_dir, 0755);
    nib_seeds();
    awq_seed("gemm.awq", 0, 0);
    awq_seed("gemv.awq", 1, 0);
    awq_seed("gemm-plain-down.awq", 0, 1);
    llama2c_seed("tiny-shared.bin", 1);
    llama2c_seed("tiny-classifier.bin", 0);
    detok_seeds();
    json_seeds();
    size_t st_size;
    uint8_t *st = fz_tiny_hf(&st_size);
    put("safetensors", "tiny-hf.safetensors", st, st_size);
    free(st);
    put("safetensors", "empty.safetensors", "\x02\0\0\0\0\0\0\0{}", 10);
    put_text("config", "tiny.json", FZ_TINY_CONFIG);
    put_text("config", "mistral.json",
             "{\"architectures\": [\"MistralForCausalLM\"], \"model_type\": \"mistral\", "
             "\"hidden_size\": 8, \"intermediate_size\": 16, \"num_hidden_layers\": 1, "
             "\"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"head_dim\": 4, "
             "\"vocab_size\": 512, \"max_position_embeddings\": 64, \"sliding_window\": 16, "
             "\"rms_norm_eps\": 1e-6, \"rope_theta\": 1000000.0, \"tie_word_embeddings\": true}");
    copy("config", "stories260K.json", "stories260K/hf/config.json");
    copy("json", "stories260K-config.json", "stories260K/hf/config.json");
    copy("spm", "tok512.model", "stories260K/tok512.model");
    if (failures)
        fprintf(stderr, "mkseeds: %d seed(s) failed\n", failures);
    return failures ? 1 : 0;
}
