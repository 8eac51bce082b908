/* The fixtures of test_gguf (declared in gguf_fixtures.h): a GGUF writer,
 * tiny models, what stories260K's GGUF is built from, and the modes that
 * write fixtures for tests/ref/check_gguf.py and the fuzz corpus, and dump
 * what nibble's reader sees of a file for the same cross-check. */
#define _POSIX_C_SOURCE 200809L
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../neon/f16.h"
#include "../tools/import/convert.h"
#include "../tools/import/gguf.h"
#include "gguf_fixtures.h"
#include "testutil.h"

/* ---- a GGUF writer ---- */

static void put(buf *b, const void *s, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 256;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

void put_u32(buf *b, uint32_t v)
{
    put(b, &v, 4);
}

void put_u64(buf *b, uint64_t v)
{
    put(b, &v, 8);
}

static void put_str(buf *b, const char *s, size_t n)
{
    put_u64(b, n);
    put(b, s, n);
}

void gw_init(gw *w)
{
    memset(w, 0, sizeof *w);
    w->version = 3;
    w->align = 32;
}

void gw_free(gw *w)
{
    free(w->kv.p);
    for (size_t i = 0; i < w->n_t; i++)
        free(w->t[i].data);
}

void gw_key(gw *w, const char *key, uint32_t type)
{
    put_str(&w->kv, key, strlen(key));
    put_u32(&w->kv, type);
    w->n_kv++;
}

void gw_u32(gw *w, const char *key, uint32_t v)
{
    gw_key(w, key, NB_GGUF_U32);
    put_u32(&w->kv, v);
}

void gw_f32(gw *w, const char *key, float v)
{
    gw_key(w, key, NB_GGUF_F32);
    put(&w->kv, &v, 4);
}

void gw_bool(gw *w, const char *key, int v)
{
    uint8_t b = (uint8_t)v;
    gw_key(w, key, NB_GGUF_BOOL);
    put(&w->kv, &b, 1);
}

void gw_str(gw *w, const char *key, const char *s)
{
    gw_key(w, key, NB_GGUF_STR);
    put_str(&w->kv, s, strlen(s));
}

void gw_strs(gw *w, const char *key, const char *const *s, size_t n)
{
    gw_key(w, key, NB_GGUF_ARR);
    put_u32(&w->kv, NB_GGUF_STR);
    put_u64(&w->kv, n);
    for (size_t i = 0; i < n; i++)
        put_str(&w->kv, s[i], strlen(s[i]));
}

void gw_arr(gw *w, const char *key, uint32_t type, const void *v, size_t n, size_t width)
{
    gw_key(w, key, NB_GGUF_ARR);
    put_u32(&w->kv, type);
    put_u64(&w->kv, n);
    put(&w->kv, v, n * width);
}

uint8_t *gw_build(const gw *w, size_t *size)
{
    buf b = {0};
    put(&b, "GGUF", 4);
    put_u32(&b, w->version);
    put_u64(&b, w->n_t);
    put_u64(&b, w->n_kv);
    put(&b, w->kv.p, w->kv.n);
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        const gt *t = &w->t[i];
        put_str(&b, t->name, strlen(t->name));
        put_u32(&b, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++)
            put_u64(&b, t->ne[d]);
        put_u32(&b, t->type);
        put_u64(&b, off);
        off += (t->size + w->align - 1) / w->align * w->align;
    }
    static const uint8_t zeros[4096];
    put(&b, zeros, (w->align - b.n % w->align) % w->align);
    for (size_t i = 0; i < w->n_t; i++) {
        put(&b, w->t[i].data, w->t[i].size);
        put(&b, zeros, (w->align - w->t[i].size % w->align) % w->align);
    }
    *size = b.n;
    return b.p;
}

int gw_write(const gw *w, const char *path)
{
    size_t n;
    uint8_t *p = gw_build(w, &n);
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(p, 1, n, f) == n;
    if (f)
        fclose(f);
    free(p);
    return ok ? 0 : -1;
}

/* f16 fields of a block (byte offsets, -1 ends), for sane random scales. */
static void block_scales(uint32_t type, int *at, int *mins)
{
    static const struct {
        uint32_t type;
        int at[2], min;
    } t[] = {{NB_GGML_Q4_0, {0, -1}, -1},  {NB_GGML_Q4_1, {0, -1}, 2},
             {NB_GGML_Q5_0, {0, -1}, -1},  {NB_GGML_Q5_1, {0, -1}, 2},
             {NB_GGML_Q8_0, {0, -1}, -1},  {NB_GGML_Q2_K, {80, -1}, 82},
             {NB_GGML_Q3_K, {108, -1}, -1}, {NB_GGML_Q4_K, {0, -1}, 2},
             {NB_GGML_Q5_K, {0, -1}, 2},   {NB_GGML_Q6_K, {208, -1}, -1}};
    at[0] = -1, *mins = -1;
    for (size_t i = 0; i < sizeof t / sizeof *t; i++)
        if (t[i].type == type)
            at[0] = t[i].at[0], *mins = t[i].min;
}

void put_f16(uint8_t *p, float v)
{
    uint16_t h = nb_f32_to_f16(v);
    memcpy(p, &h, 2);
}

/* A tensor (ne in ggml order, ne[0] innermost); data copied, or made
 * random for its type from seed when NULL. */
gt *gw_tensor(gw *w, const char *name, uint32_t type, uint32_t n_dims, uint64_t ne0,
              uint64_t ne1, const void *data, uint64_t *seed)
{
    gt *t = &w->t[w->n_t++];
    uint32_t block, bytes;
    nb_ggml_type_block(type, &block, &bytes);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->n_dims = n_dims, t->type = type;
    t->ne[0] = ne0, t->ne[1] = n_dims > 1 ? ne1 : 1, t->ne[2] = t->ne[3] = t->ne[4] = 1;
    size_t n = (size_t)(t->ne[0] * t->ne[1]);
    t->size = n / block * bytes;
    t->data = malloc(t->size ? t->size : 1);
    if (data) {
        memcpy(t->data, data, t->size);
        return t;
    }
    for (size_t i = 0; i < n / block; i++) {
        uint8_t *p = t->data + i * bytes;
        for (uint32_t k = 0; k < bytes; k++)
            p[k] = (uint8_t)tu_rand(seed);
        float f = tu_randf(seed) * 0.5f;
        if (type == NB_GGML_F32)
            memcpy(p, &f, 4);
        else if (type == NB_GGML_F16)
            put_f16(p, f);
        else if (type == NB_GGML_BF16) {
            uint16_t h = nb_f32_to_bf16(f);
            memcpy(p, &h, 2);
        } else {
            int at[2], min;
            block_scales(type, at, &min);
            put_f16(p + at[0], 0.002f + 0.03f * fabsf(tu_randf(seed)));
            if (min >= 0)
                put_f16(p + min, 0.05f * tu_randf(seed));
        }
    }
    return t;
}

gt *find_gt(gw *w, const char *name)
{
    for (size_t i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, name))
            return &w->t[i];
    return NULL;
}

/* ---- tiny models ---- */

/* GPT-2's bytes_to_unicode: the character standing for byte b. */
static void byte_char(int b, char *out)
{
    int cp = b;
    if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))) {
        int k = 0;
        for (int c = 0; c < b; c++)
            k += !((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 255));
        cp = 256 + k;
    }
    if (cp < 0x80)
        out[0] = (char)cp, out[1] = 0;
    else
        out[0] = (char)(0xC0 | cp >> 6), out[1] = (char)(0x80 | (cp & 0x3F)), out[2] = 0;
}

/* A byte-level vocabulary of TINY_VOCAB tokens: 256 bytes, a few merges,
 * ChatML's markers as CONTROL tokens. */
static void tiny_tokenizer(gw *w)
{
    static char bytes[256][4];
    const char *toks[TINY_VOCAB];
    int32_t types[TINY_VOCAB];
    for (int b = 0; b < 256; b++) {
        byte_char(b, bytes[b]);
        toks[b] = bytes[b], types[b] = 1;
    }
    const char *extra[] = {"\xc4\xa0t", "he", "\xc4\xa0the", "in", "<|endoftext|>", "<|im_start|>",
                           "<|im_end|>", "<think>"};
    for (int i = 0; i < 8; i++)
        toks[256 + i] = extra[i], types[256 + i] = i < 4 ? 1 : i < 7 ? 3 : 4;
    const char *merges[] = {"\xc4\xa0 t", "h e", "\xc4\xa0t he", "i n"};
    gw_str(w, "tokenizer.ggml.model", "gpt2");
    gw_str(w, "tokenizer.ggml.pre", "smollm");
    gw_strs(w, "tokenizer.ggml.tokens", toks, TINY_VOCAB);
    gw_arr(w, "tokenizer.ggml.token_type", NB_GGUF_I32, types, TINY_VOCAB, 4);
    gw_strs(w, "tokenizer.ggml.merges", merges, 4);
    gw_u32(w, "tokenizer.ggml.bos_token_id", 261);
    gw_u32(w, "tokenizer.ggml.eos_token_id", 262);
    gw_bool(w, "tokenizer.ggml.add_bos_token", 0);
    gw_str(w, "tokenizer.chat_template",
           "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
           "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt "
           "%}{{ '<|im_start|>assistant\\n' }}{% endif %}");
}

void hparams(gw *w, const spec *s)
{
    char k[96];
#define KEY(x) (snprintf(k, sizeof k, "%s." x, s->arch), k)
    gw_str(w, "general.architecture", s->arch);
    gw_str(w, "general.name", "tiny gguf");
    gw_u32(w, KEY("embedding_length"), s->dim);
    gw_u32(w, KEY("block_count"), s->layers);
    gw_u32(w, KEY("attention.head_count"), s->heads);
    gw_u32(w, KEY("attention.head_count_kv"), s->kv_heads);
    gw_u32(w, KEY("attention.key_length"), s->head_dim);
    gw_u32(w, KEY("attention.value_length"), s->head_dim);
    gw_u32(w, KEY("feed_forward_length"), s->ffn);
    gw_u32(w, KEY("context_length"), 64);
    gw_f32(w, KEY("rope.freq_base"), 10000.0f);
    gw_f32(w, KEY("attention.layer_norm_rms_epsilon"), 1e-5f);
#undef KEY
}

void tiny_model(gw *w, const spec *s, uint64_t seed)
{
    gw_init(w);
    hparams(w, s);
    tiny_tokenizer(w);
    uint64_t q = (uint64_t)s->heads * s->head_dim, kv = (uint64_t)s->kv_heads * s->head_dim;
    gw_tensor(w, "token_embd.weight", s->etype, 2, s->dim, TINY_VOCAB, NULL, &seed);
    for (uint32_t l = 0; l < s->layers; l++) {
        char n[64];
#define T(name, type, dims, a, b) \
    (snprintf(n, sizeof n, "blk.%u." name, l), gw_tensor(w, n, type, dims, a, b, NULL, &seed))
        T("attn_norm.weight", NB_GGML_F32, 1, s->dim, 0);
        T("attn_q.weight", s->wtype, 2, s->dim, q);
        T("attn_k.weight", s->wtype, 2, s->dim, kv);
        T("attn_v.weight", s->wtype, 2, s->dim, kv);
        T("attn_output.weight", s->wtype, 2, q, s->dim);
        T("ffn_norm.weight", NB_GGML_F32, 1, s->dim, 0);
        T("ffn_gate.weight", s->wtype, 2, s->dim, s->ffn);
        T("ffn_up.weight", s->wtype, 2, s->dim, s->ffn);
        T("ffn_down.weight", s->wtype, 2, s->ffn, s->dim);
        if (!strcmp(s->arch, "qwen2")) {
            T("attn_q.bias", NB_GGML_F32, 1, q, 0);
            T("attn_k.bias", NB_GGML_F32, 1, kv, 0);
            T("attn_v.bias", NB_GGML_F32, 1, kv, 0);
        }
        if (!strcmp(s->arch, "qwen3")) {
            T("attn_q_norm.weight", NB_GGML_F32, 1, s->head_dim, 0);
            T("attn_k_norm.weight", NB_GGML_F32, 1, s->head_dim, 0);
        }
#undef T
    }
    gw_tensor(w, "output_norm.weight", NB_GGML_F32, 1, s->dim, 0, NULL, &seed);
    if (s->otype != (uint32_t)-1)
        gw_tensor(w, "output.weight", s->otype, 2, s->dim, TINY_VOCAB, NULL, &seed);
}

spec small_spec(void)
{
    spec s = {"llama", 32, 2, 1, 16, 32, 1, NB_GGML_F32, NB_GGML_F32, (uint32_t)-1};
    return s;
}

spec type_spec(uint32_t type, size_t i)
{
    /* dim and ffn multiples of 256 for the K types; every other file
     * untied, its output in the type; the embedding in the type too for
     * the Q8_0 and Q4_0 rules (f16 when exact, else f32) */
    spec s = {"llama", 256, 4, 2, 64, 512, 1, type, i % 3 ? NB_GGML_F32 : type,
              i % 2 ? type : (uint32_t)-1};
    if (type == NB_GGML_Q8_0 || type == NB_GGML_Q4_0)
        s.etype = type;
    return s;
}

/* Every value type the reader knows, nested arrays among them. */
void kv_variety(gw *w)
{
    uint8_t u8[3] = {1, 2, 255};
    int8_t i8[2] = {-5, 7};
    uint16_t u16[2] = {65535, 3};
    int16_t i16[2] = {-300, 300};
    int64_t i64[2] = {-1, 1ll << 40};
    uint64_t u64[2] = {1ull << 63, 9};
    double f64[2] = {1.5, -0.25};
    float f32[2] = {0.5f, -3.0f};
    gw_arr(w, "variety.u8", NB_GGUF_U8, u8, 3, 1);
    gw_arr(w, "variety.i8", NB_GGUF_I8, i8, 2, 1);
    gw_arr(w, "variety.u16", NB_GGUF_U16, u16, 2, 2);
    gw_arr(w, "variety.i16", NB_GGUF_I16, i16, 2, 2);
    gw_arr(w, "variety.i64", NB_GGUF_I64, i64, 2, 8);
    gw_arr(w, "variety.u64", NB_GGUF_U64, u64, 2, 8);
    gw_arr(w, "variety.f64", NB_GGUF_F64, f64, 2, 8);
    gw_arr(w, "variety.f32", NB_GGUF_F32, f32, 2, 4);
    gw_arr(w, "variety.bools", NB_GGUF_BOOL, u8, 2, 1);
    gw_key(w, "variety.f64_scalar", NB_GGUF_F64);
    put(&w->kv, &f64[0], 8);
    gw_key(w, "variety.i64_scalar", NB_GGUF_I64);
    put(&w->kv, &i64[1], 8);
    gw_key(w, "variety.nested", NB_GGUF_ARR); /* [[1, 2], ["a"]]: arrays of arrays */
    put_u32(&w->kv, NB_GGUF_ARR);
    put_u64(&w->kv, 2);
    put_u32(&w->kv, NB_GGUF_U8);
    put_u64(&w->kv, 2);
    put(&w->kv, u8, 2);
    put_u32(&w->kv, NB_GGUF_STR);
    put_u64(&w->kv, 1);
    put_str(&w->kv, "a", 1);
}

/* ---- stories260K's pieces and rows, for its GGUF as llama.cpp writes it ---- */

static uint64_t pb_varint(const uint8_t **p, const uint8_t *end)
{
    uint64_t v = 0;
    for (int sh = 0; *p < end && sh < 64; sh += 7) {
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7F) << sh;
        if (!(b & 0x80))
            break;
    }
    return v;
}

/* The pieces of a SentencePiece .model (field 1 of ModelProto). */
size_t spm_pieces(const uint8_t *p, size_t size, spm_piece *out, size_t cap)
{
    const uint8_t *end = p + size;
    size_t n = 0;
    while (p < end) {
        uint64_t tag = pb_varint(&p, end), len = 0;
        if ((tag & 7) == 0) {
            pb_varint(&p, end);
            continue;
        }
        if ((tag & 7) == 5) {
            p += 4;
            continue;
        }
        len = pb_varint(&p, end);
        if (tag >> 3 == 1 && n < cap) {
            const uint8_t *q = p, *qe = p + len;
            spm_piece sp = {NULL, 0, 1};
            while (q < qe) {
                uint64_t t = pb_varint(&q, qe);
                if (t >> 3 == 1 && (t & 7) == 2) {
                    uint64_t k = pb_varint(&q, qe);
                    sp.s = strndup((const char *)q, (size_t)k);
                    q += k;
                } else if ((t & 7) == 5) {
                    memcpy(&sp.score, q, 4);
                    q += 4;
                } else {
                    uint64_t v = pb_varint(&q, qe);
                    if (t >> 3 == 3)
                        sp.type = (int)v;
                }
            }
            out[n++] = sp;
        }
        p += len;
    }
    return n;
}

/* Rows of q or k back from Hugging Face's order to Meta's, as
 * convert_hf_to_gguf.py's LlamaModel.permute: per head, row j*(hd/2)+i
 * goes to 2i+j. */
void unpermute(float *dst, const float *src, int heads, int hd, int cols)
{
    for (int h = 0; h < heads; h++)
        for (int j = 0; j < 2; j++)
            for (int i = 0; i < hd / 2; i++)
                memcpy(dst + ((size_t)h * hd + 2 * i + j) * cols,
                       src + ((size_t)h * hd + j * hd / 2 + i) * cols, sizeof(float) * cols);
}

/* ---- modes for the Python cross-check and the fuzz corpus ---- */

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ ((const uint8_t *)p)[i]) * 0x100000001b3ull;
    return h;
}

int dump(const char *path)
{
    nb_gguf g;
    nb_err e;
    if (nb_gguf_open(&g, path, &e))
        return fprintf(stderr, "%s\n", e.msg), 1;
    printf("{\"version\": %u, \"alignment\": %u, \"data_offset\": %llu}\n", g.version,
           g.alignment, (unsigned long long)g.data_offset);
    for (size_t i = 0; i < g.n_kv; i++) {
        const nb_gguf_kv *kv = &g.kv[i];
        json_t *o = json_object();
        json_object_set_new(o, "key", json_stringn(kv->key, kv->key_len));
        json_object_set_new(o, "type", json_integer(kv->type));
        if (kv->type == NB_GGUF_STR)
            json_object_set_new(o, "value", json_stringn((const char *)kv->val, (size_t)kv->n));
        else if (kv->type == NB_GGUF_F32 || kv->type == NB_GGUF_F64)
            json_object_set_new(o, "value", json_real(
                kv->type == NB_GGUF_F32 ? (double)nb_bits_to_f32((uint32_t)kv->val[0] |
                                                                 (uint32_t)kv->val[1] << 8 |
                                                                 (uint32_t)kv->val[2] << 16 |
                                                                 (uint32_t)kv->val[3] << 24)
                                        : *(const double *)(const void *)memcpy(
                                              &(double){0}, kv->val, 8)));
        else if (kv->type == NB_GGUF_ARR) {
            json_object_set_new(o, "elem_type", json_integer(kv->elem_type));
            json_object_set_new(o, "n", json_integer((json_int_t)kv->n));
            uint64_t h = 0xcbf29ce484222325ull;
            if (kv->elem_type == NB_GGUF_STR) {
                nb_gguf_iter it;
                const char *s;
                size_t k;
                nb_gguf_iter_init(&it, kv);
                while (nb_gguf_iter_str(&it, &s, &k))
                    h = fnv(fnv(h, s, k), "\n", 1);
            } else if (kv->elem_type != NB_GGUF_ARR) {
                for (uint64_t j = 0; j < kv->n; j++) {
                    char num[64];
                    double x = nb_gguf_arr_float(kv, j);
                    if (nb_gguf_vtype_is_int(kv->elem_type) && kv->elem_type != NB_GGUF_U64)
                        snprintf(num, sizeof num, "%lld\n", (long long)nb_gguf_arr_int(kv, j));
                    else if (kv->elem_type == NB_GGUF_U64)
                        snprintf(num, sizeof num, "%llu\n",
                                 (unsigned long long)nb_gguf_arr_int(kv, j));
                    else
                        snprintf(num, sizeof num, "%.17g\n", x);
                    h = fnv(h, num, strlen(num));
                }
            }
            char hex[20];
            snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
            json_object_set_new(o, "fnv", json_string(hex));
        } else {
            uint64_t u = 0;
            nb_err e2;
            char key[1024];
            snprintf(key, sizeof key, "%.*s", (int)kv->key_len, kv->key);
            if (kv->type == NB_GGUF_BOOL)
                json_object_set_new(o, "value", json_boolean(kv->val[0]));
            else if (nb_gguf_get_uint(&g, key, UINT64_MAX, &u, &e2) == 1)
                json_object_set_new(o, "value", json_integer((json_int_t)u));
            else
                json_object_set_new(o, "value", json_integer(kv->type == NB_GGUF_I8
                                                                 ? (int8_t)kv->val[0]
                                                             : kv->type == NB_GGUF_I16
                                                                 ? (int16_t)(kv->val[0] |
                                                                             kv->val[1] << 8)
                                                                 : (int32_t)(kv->val[0] |
                                                                             kv->val[1] << 8 |
                                                                             kv->val[2] << 16 |
                                                                             (uint32_t)kv->val[3]
                                                                                 << 24)));
        }
        char *s = json_dumps(o, JSON_COMPACT);
        puts(s);
        free(s);
        json_decref(o);
    }
    for (size_t i = 0; i < g.n_tensors; i++) {
        const nb_gguf_tensor *t = &g.tensors[i];
        printf("{\"tensor\": \"%s\", \"type\": %u, \"ne\": [", t->name, t->type);
        for (uint32_t d = 0; d < t->n_dims; d++)
            printf("%s%llu", d ? ", " : "", (unsigned long long)t->ne[d]);
        printf("], \"offset\": %llu, \"size\": %llu}\n", (unsigned long long)t->offset,
               (unsigned long long)t->size);
    }
    nb_gguf_close(&g);
    return 0;
}

int write_fixtures(const char *dir)
{
    mkdir(dir, 0755);
    char path[1024];
    int rc = 0;
    for (size_t i = 0; i < N_TYPES; i++) {
        gw w;
        spec s = type_spec(all_types[i], i);
        tiny_model(&w, &s, 100 + i);
        if (i == 0)
            kv_variety(&w);
        snprintf(path, sizeof path, "%s/type-%s.gguf", dir, nb_ggml_type_name(all_types[i]));
        rc |= gw_write(&w, path);
        char out[1100];
        snprintf(out, sizeof out, "%s/type-%s.nib", dir, nb_ggml_type_name(all_types[i]));
        nb_convert_opts o = {.out_dtype = -1, .quiet = 1};
        nb_err e;
        if (nb_import_gguf(path, out, &o, &e))
            rc = 1, fprintf(stderr, "%s\n", e.msg);
        gw_free(&w);
    }
    return rc;
}

int write_seeds(const char *dir)
{
    mkdir(dir, 0755);
    static const struct {
        const char *name, *arch;
        uint32_t type, hd;
        int variety;
    } seeds[] = {{"f32-variety", "llama", NB_GGML_F32, 16, 1}, {"q4_0", "llama", NB_GGML_Q4_0, 16, 0},
                 {"q8_0", "llama", NB_GGML_Q8_0, 16, 0},       {"q4_1", "llama", NB_GGML_Q4_1, 16, 0},
                 {"q5_1", "llama", NB_GGML_Q5_1, 16, 0},       {"qwen2-f16", "qwen2", NB_GGML_F16, 16, 0},
                 {"qwen3-bf16", "qwen3", NB_GGML_BF16, 32, 0}};
    int rc = 0;
    for (size_t i = 0; i < sizeof seeds / sizeof *seeds; i++) {
        spec s = small_spec();
        s.arch = seeds[i].arch, s.wtype = seeds[i].type, s.head_dim = seeds[i].hd;
        s.otype = i % 2 ? seeds[i].type : (uint32_t)-1;
        s.etype = NB_GGML_F16; /* small seeds */
        gw w;
        tiny_model(&w, &s, 1000 + i);
        if (seeds[i].variety)
            kv_variety(&w);
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.gguf", dir, seeds[i].name);
        rc |= gw_write(&w, path);
        gw_free(&w);
    }
    return rc;
}
