#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#define _POSIX_C_SOURCE 200809L
#include "synth.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "../models/net.h"
#include "../neon/f16.h"
#include "../runtime/kv.h"
#include "../runtime/qtensor.h"
#include "../runtime/writer.h"

/* Hyper-parameters from each model's config.json. */
static const struct shape {
    const char *name;
    uint32_t arch, dim, layers, heads, kv_heads, head_dim, ffn, vocab, ctx, tied;
    float theta;
    nb_rope rope;
} shapes[] = {
    {"tinyllama-1.1b", NB_ARCH_LLAMA, 2048, 22, 32, 4, 64, 5632, 32000, 2048, 0, 1e4f, {0}},
    {"llama2-7b", NB_ARCH_LLAMA, 4096, 32, 32, 32, 128, 11008, 32000, 4096, 0, 1e4f, {0}},
    {"llama2-13b", NB_ARCH_LLAMA, 5120, 40, 40, 40, 128, 13824, 32000, 4096, 0, 1e4f, {0}},
    {"mistral-7b", NB_ARCH_LLAMA, 4096, 32, 32, 8, 128, 14336, 32000, 32768, 0, 1e6f, {0}},
    {"llama3.2-1b", NB_ARCH_LLAMA, 2048, 16, 32, 8, 64, 8192, 128256, 131072, 1, 5e5f,
     {NB_ROPE_SCALE_LLAMA3, 32, 1, 4, 8192}},
    {"llama3.2-3b", NB_ARCH_LLAMA, 3072, 28, 24, 8, 128, 8192, 128256, 131072, 1, 5e5f,
     {NB_ROPE_SCALE_LLAMA3, 32, 1, 4, 8192}},
    {"qwen2.5-0.5b", NB_ARCH_QWEN2, 896, 24, 14, 2, 64, 4864, 151936, 32768, 1, 1e6f, {0}},
    {"qwen2.5-1.5b", NB_ARCH_QWEN2, 1536, 28, 12, 2, 128, 8960, 151936, 32768, 1, 1e6f, {0}},
    {"qwen2.5-3b", NB_ARCH_QWEN2, 2048, 36, 16, 2, 128, 11008, 151936, 32768, 1, 1e6f, {0}},
    {"qwen3-0.6b", NB_ARCH_QWEN3, 1024, 28, 16, 8, 128, 3072, 151936, 40960, 1, 1e6f, {0}},
    {"qwen3-1.7b", NB_ARCH_QWEN3, 2048, 28, 16, 8, 128, 6144, 151936, 40960, 1, 1e6f, {0}},
    {"smollm2-135m", NB_ARCH_LLAMA, 576, 30, 9, 3, 64, 1536, 49152, 8192, 1, 1e5f, {0}},
    {"smollm2-1.7b", NB_ARCH_LLAMA, 2048, 24, 32, 32, 64, 8192, 49152, 8192, 1, 1.3e5f, {0}},
};

const char nb_shape_names[] = "tinyllama-1.1b, llama2-7b, llama2-13b, mistral-7b, llama3.2-1b, "
                              "llama3.2-3b, qwen2.5-0.5b, qwen2.5-1.5b, qwen2.5-3b, qwen3-0.6b, "
                              "qwen3-1.7b, smollm2-135m, smollm2-1.7b";

static void fill_shape(nb_shape *out, const struct shape *s)
{
    struct nb_meta *m = &out->meta;
    memset(out, 0, sizeof *out);
    m->arch = s->arch;
    m->dim = s->dim, m->n_layers = s->layers, m->n_heads = s->heads;
    m->n_kv_heads = s->kv_heads, m->head_dim = s->head_dim;
    m->ffn_dim = s->ffn, m->vocab_size = s->vocab, m->max_ctx = s->ctx;
    m->tied_embeddings = s->tied;
    m->rope_pairs = NB_ROPE_HALVES;
    m->rope_theta = s->theta, m->norm_eps = 1e-5f;
    m->bos_id = 1, m->eos_id = 2, m->unk_id = 0, m->pad_id = -1;
    snprintf(m->name, sizeof m->name, "%s", s->name);
    out->rope = s->rope;
}

/* Packed tiles are 32 columns wide and 4 rows high; a shape that fills
 * them exactly needs no padding, which random bytes could not respect. */
static int check_shape(const struct nb_meta *m, const char *s, nb_err *e)
{
    if (!m->n_heads || !m->n_kv_heads || m->dim % m->n_heads || m->n_heads % m->n_kv_heads ||
        m->head_dim % 2)
        return nb_fail(e, "--shape %s: HEADS must divide DIM into an even head size and "
                          "KV_HEADS must divide HEADS", s);
    if (m->dim % 32 || m->ffn_dim % 32 || (m->n_kv_heads * m->head_dim) % 4 ||
        m->vocab_size % 4)
        return nb_fail(e, "--shape %s: DIM and FFN must be multiples of 32 and VOCAB and the "
                          "kv rows of 4 (whole packed tiles)", s);
    return 0;
}

int nb_shape_parse(const char *s, nb_shape *shape, nb_err *e)
{
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
        if (!strcmp(s, shapes[i].name)) {
            fill_shape(shape, &shapes[i]);
            return 0;
        }
    struct shape c = {s, NB_ARCH_LLAMA, 0, 0, 0, 0, 0, 0, 0, 4096, 0, 1e4f, {0}};
    char tail;
    if (sscanf(s, "%u,%u,%u,%u,%u,%u%c", &c.dim, &c.layers, &c.heads, &c.kv_heads, &c.ffn,
               &c.vocab, &tail) != 6 ||
        !c.dim || !c.layers || !c.ffn || !c.vocab || c.dim > 65536 || c.ffn > 262144 ||
        c.vocab > 1000000 || c.layers > 1024 || strchr(s, '-'))
        return nb_fail(e, "--shape expects one of %s, or DIM,LAYERS,HEADS,KV_HEADS,FFN,VOCAB; "
                          "got '%s'",
                       nb_shape_names, s);
    c.head_dim = c.heads ? c.dim / c.heads : 0;
    fill_shape(shape, &c);
    snprintf(shape->meta.name, sizeof shape->meta.name, "shape %.50s", s);
    return check_shape(&shape->meta, s, e);
}

/* ---- the image ---- */

typedef struct image {
    struct nb_tensor_entry *entries;
    uint32_t n, cap;
    uint64_t end; /* next free byte of the data section */
} image;

static uint64_t align(uint64_t x)
{
    return (x + NB_ALIGN - 1) / NB_ALIGN * NB_ALIGN;
}

static int push(image *im, const struct nb_tensor_entry *t, nb_err *e)
{
    if (im->n == im->cap) {
        uint32_t cap = im->cap ? 2 * im->cap : 64;
        void *p = realloc(im->entries, cap * sizeof *im->entries);
        if (!p)
            return nb_fail(e, "out of memory");
        im->entries = p, im->cap = cap;
    }
    im->entries[im->n] = *t;
    im->entries[im->n].offset = im->end;
    im->end = align(im->end + t->size);
    im->n++;
    return 0;
}

static int plan_plain(image *im, const char *name, uint32_t dtype, uint64_t rows, uint64_t cols,
                      nb_err *e)
{
    struct nb_tensor_entry t;
    uint64_t shape[2] = {rows, cols};
    return nb_entry_init(&t, name, dtype, cols ? 2 : 1, shape, e) || push(im, &t, e);
}

static int plan_packed(image *im, const char *name, uint64_t rows, uint64_t cols, int bits,
                       int group, nb_err *e)
{
    nb_qlayout l;
    struct nb_tensor_entry t;
    if (nb_qlayout_init(&l, rows, cols, bits, group))
        return nb_fail(e, "cannot pack %s: %llu x %llu, %d bits, group %d", name,
                       (unsigned long long)rows, (unsigned long long)cols, bits, group);
    return nb_qentry_init(&t, name, &l, e) || push(im, &t, e);
}

/* The family's optional blocks of layer l (biases, q/k norms). */
static int plan_optional(image *im, const struct nb_meta *m, int l, nb_err *e)
{
    const nb_arch *a = nb_arch_by_id(m->arch);
    uint64_t q = (uint64_t)m->n_heads * m->head_dim, kv = (uint64_t)m->n_kv_heads * m->head_dim;
    const struct { const char *fmt; uint64_t n; unsigned has; } opt[] = {
        {NB_T_Q_BIAS, q, NB_HAS_QKV_BIAS},         {NB_T_K_BIAS, kv, NB_HAS_QKV_BIAS},
        {NB_T_V_BIAS, kv, NB_HAS_QKV_BIAS},        {NB_T_Q_NORM, m->head_dim, NB_HAS_QK_NORM},
        {NB_T_K_NORM, m->head_dim, NB_HAS_QK_NORM},
    };
    char name[NB_NAME_LEN];
    for (size_t i = 0; i < sizeof opt / sizeof *opt; i++) {
        snprintf(name, sizeof name, opt[i].fmt, l);
        if ((a->has & opt[i].has) && plan_plain(im, name, NB_F32, opt[i].n, 0, e))
            return -1;
    }
    return 0;
}

/* The embedding, the final norm and the output layer. */
static int plan_ends(image *im, struct nb_meta *m, const nb_synth_opts *o, nb_err *e)
{
    uint64_t d = m->dim;
    if (plan_plain(im, NB_T_EMBED, NB_F16, m->vocab_size, d, e) ||
        plan_plain(im, NB_T_OUT_NORM, NB_F32, d, 0, e))
        return -1;
    if (o->output_bits) {
        m->tied_embeddings = 0; /* the packed copy is the output */
        return plan_packed(im, NB_T_OUTPUT, m->vocab_size, d, o->output_bits, o->output_group,
                           e);
    }
    return m->tied_embeddings ? 0 : plan_plain(im, NB_T_OUTPUT, NB_F16, m->vocab_size, d, e);
}

/* Every tensor of the model, in file order, with offsets from data start. */
static int plan(image *im, struct nb_meta *m, const nb_synth_opts *o, nb_err *e)
{
    int bits = o->bits, group = o->group;
    uint64_t d = m->dim, q = (uint64_t)m->n_heads * m->head_dim;
    uint64_t kv = (uint64_t)m->n_kv_heads * m->head_dim, f = m->ffn_dim;
    if (plan_ends(im, m, o, e))
        return -1;
    const struct { const char *fmt; uint64_t rows, cols; } lin[] = {
        {NB_T_Q, q, d}, {NB_T_K, kv, d},   {NB_T_V, kv, d},   {NB_T_O, d, q},
        {NB_T_GATE, f, d}, {NB_T_UP, f, d}, {NB_T_DOWN, d, f},
    };
    char name[NB_NAME_LEN];
    for (uint32_t l = 0; l < m->n_layers; l++) {
        snprintf(name, sizeof name, NB_T_ATTN_NORM, (int)l);
        if (plan_plain(im, name, NB_F32, d, 0, e))
            return -1;
        snprintf(name, sizeof name, NB_T_FFN_NORM, (int)l);
        if (plan_plain(im, name, NB_F32, d, 0, e))
            return -1;
        for (size_t i = 0; i < sizeof lin / sizeof *lin; i++) {
            snprintf(name, sizeof name, lin[i].fmt, (int)l);
            if (plan_packed(im, name, lin[i].rows, lin[i].cols, bits, group, e))
                return -1;
        }
        if (plan_optional(im, m, (int)l, e))
            return -1;
    }
    return 0;
}

/* ---- random contents ---- */

static uint64_t next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void random_bytes(uint8_t *p, size_t n, uint64_t *s)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t r = next(s);
        memcpy(p + i, &r, 8);
    }
    for (; i < n; i++)
        p[i] = (uint8_t)next(s);
}

/* Halves of random sign and mantissa, magnitude in [base, 2 base). */
static void random_halves(uint16_t *h, size_t n, float base, uint64_t *s)
{
    uint16_t b = nb_f32_to_f16(base);
    for (size_t i = 0; i < n; i += 4) {
        uint64_t r = next(s);
        for (size_t k = 0; k < 4 && i + k < n; k++, r >>= 16)
            h[i + k] = (uint16_t)((b & 0x7c00) | (r & 0x83ff));
    }
}

/* Codes uniform, zero points in the middle, scales so that an output
 * has about the spread of its input (the stream neither dies nor blows
 * up across layers). */
static void fill_packed(uint8_t *p, const struct nb_tensor_entry *t)
{
    nb_qlayout l;
    nb_qentry_layout(t, &l, NULL);
    uint64_t s = nb_crc32(0, t->name, strlen(t->name));
    random_bytes(p, l.weight_bytes, &s);
    size_t n = l.rows_p * l.n_groups;
    float spread = l.bits == 4 ? 4.6f : 2.3f; /* sd of q - z for uniform codes */
    random_halves((uint16_t *)(p + l.scale_offset), n, 1.0f / (spread * sqrtf((float)l.cols)), &s);
    memset(p + l.zero_offset, 1 << (l.bits - 1), n);
}

static void fill(uint8_t *p, const struct nb_tensor_entry *t)
{
    if (nb_dtype_packed(t->dtype)) {
        fill_packed(p, t);
    } else if (t->dtype == NB_F16) {
        uint64_t s = 1;
        random_halves((uint16_t *)p, t->size / 2, 0.5f, &s);
    } else if (!strstr(t->name, ".bias")) { /* norm weights; biases stay zero */
        for (uint64_t i = 0; i < t->size / 4; i++)
            memcpy(p + 4 * i, &(float){1.0f}, 4);
    }
}

static void *build(const image *im, const struct nb_meta *meta, const void *kv, size_t kv_size,
                   uint64_t *size, nb_err *e)
{
    uint64_t meta_off = sizeof(struct nb_header), kv_off = align(meta_off + sizeof *meta);
    uint64_t vocab_off = align(kv_off + kv_size);
    uint64_t data_off = align(vocab_off + 8), table_off = data_off + im->end;
    *size = table_off + (uint64_t)im->n * sizeof(struct nb_tensor_entry);
    uint8_t *p = mmap(NULL, *size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return nb_fail(e, "cannot map %.1f GB for the model", *size / 1e9), NULL;
    struct nb_header h = {.version_major = NB_VERSION_MAJOR, .version_minor = NB_VERSION_MINOR};
    memcpy(h.magic, NB_MAGIC, 8);
    h.header_size = sizeof h, h.file_size = *size;
    h.meta_offset = meta_off, h.meta_size = sizeof *meta;
    h.kv_offset = kv_off, h.kv_size = kv_size;
    h.vocab_offset = vocab_off, h.vocab_size = 8;
    h.data_offset = data_off, h.data_size = im->end;
    h.table_offset = table_off, h.n_tensors = im->n, h.entry_size = sizeof *im->entries;
    memcpy(p, &h, sizeof h);
    memcpy(p + meta_off, meta, sizeof *meta);
    memcpy(p + kv_off, kv, kv_size);
    for (uint32_t i = 0; i < im->n; i++) {
        struct nb_tensor_entry t = im->entries[i];
        t.offset += data_off;
        fill(p + t.offset, &t);
        memcpy(p + table_off + (uint64_t)i * sizeof t, &t, sizeof t);
    }
    return p;
}

int nb_synth_model(nb_model *m, const nb_shape *shape, const nb_synth_opts *o, nb_err *e)
{
    image im = {0};
    uint64_t size;
    struct nb_meta meta = shape->meta;
    nb_kvw kvw = {0};
    size_t kv_size = 0;
    nb_kvw_str(&kvw, "general.architecture", nb_arch_name(meta.arch));
    nb_rope_write(&shape->rope, &kvw);
    const void *kv = nb_kvw_bytes(&kvw, &kv_size, e);
    void *p = !kv || plan(&im, &meta, o, e) ? NULL : build(&im, &meta, kv, kv_size, &size, e);
    free(im.entries);
    nb_kvw_free(&kvw);
    if (!p)
        return -1;
    if (nb_model_parse(m, p, (size_t)size, e)) {
        munmap(p, (size_t)size);
        return -1;
    }
    return 0;
}
