#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../models/net.h"
#include "../neon/f16.h"
#include "../runtime/kv.h"
#include "../runtime/writer.h"

int tu_failures;

int tu_finish(const char *name)
{
    tu_cleanup();
    if (tu_failures) {
        fprintf(stderr, "%s: %d check(s) failed\n", name, tu_failures);
        return 1;
    }
    printf("%s: all checks passed\n", name);
    return 0;
}

int tu_run_sections(const tu_section *sections, size_t n, int argc, char **argv,
                    const char *name)
{
    for (int i = 1; i < argc; i++) {
        size_t k = 0;
        while (k < n && strcmp(argv[i], sections[k].name) != 0)
            k++;
        if (k == n) {
            fprintf(stderr, "FAIL: no section '%s' in %s\n", argv[i], name);
            return 1;
        }
    }
    for (size_t k = 0; k < n; k++) {
        int run = argc == 1;
        for (int i = 1; i < argc; i++)
            run |= strcmp(argv[i], sections[k].name) == 0;
        if (run)
            sections[k].run();
    }
    return tu_finish(name);
}

float tu_magnitude(uint64_t *state, double lo, double hi)
{
    double e = lo + (hi - lo) * (0.5 * (tu_randf(state) + 1.0));
    float v = (float)pow(10.0, e);
    return tu_rand(state) & 1 ? -v : v;
}

int tu_same_float(float a, float b)
{
    uint32_t x, y;
    memcpy(&x, &a, sizeof x), memcpy(&y, &b, sizeof y);
    return x == y || (a != a && b != b);
}

uint64_t tu_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

float tu_randf(uint64_t *s)
{
    return (float)((double)(tu_rand(s) >> 11) / 4503599627370496.0 - 1.0);
}

static char tmp_dir[256];

const char *tu_tmp(const char *name)
{
    static char path[512];
    if (!tmp_dir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(tmp_dir, sizeof tmp_dir, "%s/nibble-test-XXXXXX", base ? base : "/tmp");
        if (!mkdtemp(tmp_dir)) {
            perror("mkdtemp");
            exit(2);
        }
    }
    snprintf(path, sizeof path, "%s/%s", tmp_dir, name);
    return path;
}

void tu_cleanup(void)
{
    if (!tmp_dir[0])
        return;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", tmp_dir);
    tmp_dir[0] = 0;
}

void *tu_read(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    /* 8-byte aligned, as a mapping would be */
    void *buf = aligned_alloc(64, ((size_t)n + 64) / 64 * 64);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return buf;
}

struct nb_meta tu_tiny_meta(void)
{
    struct nb_meta m;
    memset(&m, 0, sizeof m);
    m.arch = NB_ARCH_LLAMA;
    m.dim = 16, m.n_layers = 2, m.n_heads = 4, m.n_kv_heads = 2, m.head_dim = 4;
    m.ffn_dim = 24, m.vocab_size = 512, m.max_ctx = 32;
    m.rope_theta = 10000.0f, m.norm_eps = 1e-5f;
    m.bos_id = 1, m.eos_id = 2, m.unk_id = 0, m.pad_id = -1;
    m.tied_embeddings = 1;
    strcpy(m.name, "tiny");
    return m;
}

static int add_random(nb_writer *w, const char *name, uint32_t dtype, uint64_t rows,
                      uint64_t cols, uint64_t *seed)
{
    size_t n = (size_t)(rows * cols), width = nb_dtype_width(dtype);
    uint8_t *buf = malloc(n * width);
    for (size_t i = 0; i < n; i++) {
        float v = cols == 1 ? 1.0f + 0.1f * tu_randf(seed) : 0.3f * tu_randf(seed);
        if (dtype == NB_F16)
            ((uint16_t *)buf)[i] = nb_f32_to_f16(v);
        else if (dtype == NB_BF16)
            ((uint16_t *)buf)[i] = nb_f32_to_bf16(v);
        else
            memcpy(buf + 4 * i, &v, 4);
    }
    uint64_t shape[2] = {rows, cols};
    nb_err e;
    int rc = nb_writer_add(w, name, dtype, cols == 1 ? 1 : 2, shape, buf, n * width, &e);
    if (rc)
        fprintf(stderr, "tu_write_model: %s\n", e.msg);
    free(buf);
    return rc;
}

int tu_write_model(const char *path, const struct nb_meta *m, uint32_t dtype,
                   const char *vocab_path, uint64_t seed)
{
    size_t vsize = 8;
    void *vocab = vocab_path ? tu_read(vocab_path, &vsize) : calloc(1, 8);
    nb_err e;
    nb_writer *w = nb_writer_open(path, m, vocab, vsize, &e);
    free(vocab);
    if (!w)
        return fprintf(stderr, "tu_write_model: %s\n", e.msg), -1;
    uint64_t d = m->dim, q = (uint64_t)m->n_heads * m->head_dim;
    uint64_t kv = (uint64_t)m->n_kv_heads * m->head_dim, f = m->ffn_dim;
    int rc = add_random(w, NB_T_EMBED, dtype, m->vocab_size, d, &seed) ||
             add_random(w, NB_T_OUT_NORM, NB_F32, d, 1, &seed);
    if (!m->tied_embeddings)
        rc = rc || add_random(w, NB_T_OUTPUT, dtype, m->vocab_size, d, &seed);
    char name[64];
    struct { const char *fmt; uint64_t rows, cols; } per_layer[] = {
        {NB_T_ATTN_NORM, d, 1}, {NB_T_Q, q, d},    {NB_T_K, kv, d},   {NB_T_V, kv, d},
        {NB_T_O, d, q},         {NB_T_FFN_NORM, d, 1}, {NB_T_GATE, f, d}, {NB_T_UP, f, d},
        {NB_T_DOWN, d, f},
    };
    for (uint32_t l = 0; l < m->n_layers && !rc; l++)
        for (size_t i = 0; i < sizeof per_layer / sizeof *per_layer && !rc; i++) {
            snprintf(name, sizeof name, per_layer[i].fmt, (int)l);
            rc = add_random(w, name, per_layer[i].cols == 1 ? NB_F32 : dtype, per_layer[i].rows,
                            per_layer[i].cols, &seed);
        }
    if (rc) {
        nb_writer_abort(w);
        return -1;
    }
    if (nb_writer_commit(w, &e))
        return fprintf(stderr, "tu_write_model: %s\n", e.msg), -1;
    return 0;
}

/* ---- any family (tu_write_family) ---- */

/* n values base + spread * uniform[-1, 1), f32, of the given rank. */
static int add_f32(nb_writer *w, const char *name, int n_dims, uint64_t rows, uint64_t cols,
                   float base, float spread, uint64_t *seed)
{
    size_t n = (size_t)(rows * cols);
    float *buf = malloc(n * sizeof *buf);
    for (size_t i = 0; buf && i < n; i++)
        buf[i] = base + spread * tu_randf(seed);
    uint64_t shape[2] = {rows, cols};
    nb_err e;
    int rc = !buf || nb_writer_add(w, name, NB_F32, n_dims, shape, buf, n * sizeof *buf, &e);
    if (rc)
        fprintf(stderr, "tu_write_family: %s\n", buf ? e.msg : "out of memory");
    free(buf);
    return rc ? -1 : 0;
}

/* One layer's tensors, the family's optional ones included. */
static int add_family_layer(nb_writer *w, const struct nb_meta *m, unsigned has, int l,
                            uint64_t *seed)
{
    uint64_t d = m->dim, q = (uint64_t)m->n_heads * m->head_dim, hd = m->head_dim;
    uint64_t kv = (uint64_t)m->n_kv_heads * m->head_dim, f = m->ffn_dim;
    struct { const char *fmt; uint64_t rows, cols; unsigned need; } t[] = {
        {NB_T_ATTN_NORM, d, 0, 0}, {NB_T_Q, q, d, 0},   {NB_T_K, kv, d, 0},
        {NB_T_V, kv, d, 0},        {NB_T_O, d, q, 0},   {NB_T_FFN_NORM, d, 0, 0},
        {NB_T_GATE, f, d, 0},      {NB_T_UP, f, d, 0},  {NB_T_DOWN, d, f, 0},
        {NB_T_Q_BIAS, q, 0, NB_HAS_QKV_BIAS}, {NB_T_K_BIAS, kv, 0, NB_HAS_QKV_BIAS},
        {NB_T_V_BIAS, kv, 0, NB_HAS_QKV_BIAS}, {NB_T_Q_NORM, hd, 0, NB_HAS_QK_NORM},
        {NB_T_K_NORM, hd, 0, NB_HAS_QK_NORM},
    };
    char name[64];
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        if (t[i].need && !(has & t[i].need))
            continue;
        int vec = !t[i].cols, bias = t[i].need == NB_HAS_QKV_BIAS;
        float base = vec && !bias ? 1.0f : 0.0f, spread = vec && !bias ? 0.1f : bias ? 0.5f : 0.3f;
        snprintf(name, sizeof name, t[i].fmt, l);
        if (add_f32(w, name, vec ? 1 : 2, t[i].rows, vec ? 1 : t[i].cols, base, spread, seed))
            return -1;
    }
    return 0;
}

static nb_writer *open_family(const char *path, const struct nb_meta *m, const nb_rope *rope)
{
    nb_kvw kw = {0};
    nb_err e;
    size_t n = 0;
    nb_kvw_str(&kw, "general.architecture", nb_arch_name(m->arch));
    if (rope)
        nb_rope_write(rope, &kw);
    const void *kv = nb_kvw_bytes(&kw, &n, &e);
    uint8_t vocab[8] = {0};
    nb_writer *w = kv ? nb_writer_open_kv(path, m, kv, n, vocab, sizeof vocab, &e) : NULL;
    if (!w)
        fprintf(stderr, "tu_write_family: %s\n", e.msg);
    nb_kvw_free(&kw);
    return w;
}

int tu_write_family(const char *path, const struct nb_meta *m, const nb_rope *rope,
                    uint64_t seed)
{
    const nb_arch *arch = nb_arch_by_id(m->arch);
    nb_writer *w = arch ? open_family(path, m, rope) : NULL;
    if (!w)
        return -1;
    int rc = add_f32(w, NB_T_EMBED, 2, m->vocab_size, m->dim, 0, 1, &seed) ||
             add_f32(w, NB_T_OUT_NORM, 1, m->dim, 1, 1, 0.1f, &seed) ||
             (!m->tied_embeddings &&
              add_f32(w, NB_T_OUTPUT, 2, m->vocab_size, m->dim, 0, 0.3f, &seed));
    for (uint32_t l = 0; l < m->n_layers && !rc; l++)
        rc = add_family_layer(w, m, arch->has, (int)l, &seed);
    nb_err e;
    if (rc) {
        nb_writer_abort(w);
        return -1;
    }
    if (nb_writer_commit(w, &e))
        return fprintf(stderr, "tu_write_family: %s\n", e.msg), -1;
    return 0;
}

const char *tu_path_in(const char *dir, const char *name)
{
    static char buf[600];
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    return buf;
}

void tu_write_text(const char *path, const char *text)
{
    FILE *out = fopen(path, "w");
    CHECK(out && fputs(text, out) >= 0 && !fclose(out), "cannot write %s", path);
}

int tu_run_captured(int (*cmd)(int, char **), int argc, char **argv, char *err, size_t cap)
{
    const char *err_path = tu_tmp("stderr.txt");
    fflush(stderr);
    int saved = dup(2), fd = open(err_path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    dup2(fd, 2);
    close(fd);
    int rc = cmd(argc, argv);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    FILE *in = fopen(err_path, "r");
    size_t n = in ? fread(err, 1, cap - 1, in) : 0;
    err[n] = 0;
    if (in)
        fclose(in);
    return rc;
}
