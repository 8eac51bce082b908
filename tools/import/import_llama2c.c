/* llama2.c legacy (v0) checkpoints: 7 int32 (dim, hidden_dim, n_layers,
 * n_heads, n_kv_heads, vocab_size, seq_len; a negative vocab_size means a
 * separate classifier follows), then fp32 arrays, each stacked over the
 * layers: tok_emb, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final,
 * freq_cos, freq_sin, [wcls]. RoPE rotates interleaved pairs. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../models/net.h"
#include "../progress.h"
#include "convert.h"

struct l2c {
    int32_t dim, hidden, n_layers, n_heads, n_kv_heads, vocab, seq_len;
    int shared_classifier;
    const float *p; /* the fp32 arrays, in file order */
    size_t n_floats;
};

/* One stacked array of the checkpoint: per layer, rows x cols. */
struct l2c_array {
    const char *name; /* NULL: not a per-layer tensor of ours */
    uint64_t rows, cols;
    int layered, keep_f32;
};

static int l2c_header(struct l2c *c, const uint8_t *base, size_t size, nb_err *e)
{
    if (size < 28)
        return nb_fail(e, "file is too short for a llama2.c header");
    int32_t h[7];
    memcpy(h, base, sizeof h);
    c->dim = h[0], c->hidden = h[1], c->n_layers = h[2], c->n_heads = h[3];
    c->n_kv_heads = h[4], c->vocab = h[5], c->seq_len = h[6];
    c->shared_classifier = c->vocab > 0;
    if (c->vocab < 0 && c->vocab != INT32_MIN) /* INT32_MIN stays negative: refused below */
        c->vocab = -c->vocab;
    if (c->dim <= 0 || c->hidden <= 0 || c->n_layers <= 0 || c->n_heads <= 0 ||
        c->n_kv_heads <= 0 || c->vocab <= 0 || c->seq_len <= 0 || c->dim % c->n_heads ||
        c->n_heads % c->n_kv_heads || (c->dim / c->n_heads) % 2 || c->dim > 65536 ||
        c->hidden > 262144 || c->n_layers > 1024 || c->vocab > 1048576 || c->seq_len > 1048576)
        return nb_fail(e, "not a llama2.c v0 checkpoint (header %d %d %d %d %d %d %d)", h[0], h[1],
                       h[2], h[3], h[4], h[5], h[6]);
    c->p = (const float *)(base + 28);
    c->n_floats = (size - 28) / 4;
    return 0;
}

static int l2c_arrays(const struct l2c *c, struct l2c_array *a)
{
    uint64_t d = (uint64_t)c->dim, hd = d / (uint64_t)c->n_heads;
    uint64_t kv = hd * (uint64_t)c->n_kv_heads, f = (uint64_t)c->hidden;
    uint64_t v = (uint64_t)c->vocab, half = hd / 2, ctx = (uint64_t)c->seq_len;
    struct l2c_array list[] = {
        {NB_T_EMBED, v, d, 0, 0},         {NB_T_ATTN_NORM, d, 1, 1, 1},
        {NB_T_Q, d, d, 1, 0},             {NB_T_K, kv, d, 1, 0},
        {NB_T_V, kv, d, 1, 0},            {NB_T_O, d, d, 1, 0},
        {NB_T_FFN_NORM, d, 1, 1, 1},      {NB_T_GATE, f, d, 1, 0},
        {NB_T_DOWN, d, f, 1, 0},          {NB_T_UP, f, d, 1, 0},
        {NB_T_OUT_NORM, d, 1, 0, 1},      {NULL, ctx, half, 0, 0},
        {NULL, ctx, half, 0, 0},          {NB_T_OUTPUT, v, d, 0, 0},
    };
    int n = (int)(sizeof list / sizeof *list) - (c->shared_classifier ? 1 : 0);
    memcpy(a, list, (size_t)n * sizeof *a);
    return n;
}

static int write_array(nb_writer *w, const struct l2c *c, const struct l2c_array *a,
                       const float *src, int out_dtype, nb_err *e)
{
    char name[NB_NAME_LEN];
    int layers = a->layered ? c->n_layers : 1;
    for (int l = 0; l < layers; l++) {
        snprintf(name, sizeof name, a->name, l);
        uint64_t shape[2] = {a->rows, a->cols};
        int dims = a->keep_f32 ? 1 : 2; /* the norms; ffn_down of hidden_dim 1 is [dim, 1] */
        if (nb_convert_tensor(w, name, NB_F32, src + (uint64_t)l * a->rows * a->cols, dims,
                              shape, a->keep_f32 ? -1 : out_dtype, e))
            return -1;
    }
    return 0;
}

static void fill_meta(struct nb_meta *m, const struct l2c *c, const char *name)
{
    memset(m, 0, sizeof *m);
    m->arch = NB_ARCH_LLAMA;
    m->dim = (uint32_t)c->dim;
    m->n_layers = (uint32_t)c->n_layers;
    m->n_heads = (uint32_t)c->n_heads;
    m->n_kv_heads = (uint32_t)c->n_kv_heads;
    m->head_dim = (uint32_t)(c->dim / c->n_heads);
    m->ffn_dim = (uint32_t)c->hidden;
    m->vocab_size = (uint32_t)c->vocab;
    m->max_ctx = (uint32_t)c->seq_len;
    m->rope_pairs = NB_ROPE_INTERLEAVED;
    m->rope_theta = 10000.0f;
    m->norm_eps = 1e-5f;
    m->tied_embeddings = (uint32_t)c->shared_classifier;
    snprintf(m->name, sizeof m->name, "%s", name);
}

/* llama2.c's models end a text with EOS, and TinyStories ones a story by
 * starting the next with BOS, where llama2.c's run.c stops: both end it. */
static void set_end_ids(struct nb_meta *m)
{
    int32_t ids[2] = {m->eos_id, m->bos_id};
    for (int i = 0; i < 2; i++)
        if (ids[i] >= 0 && (m->n_end_ids == 0 || m->end_ids[0] != ids[i]))
            m->end_ids[m->n_end_ids++] = ids[i];
}

static int write_model(const struct l2c *c, const char *out, const nb_convert_opts *o,
                       const char *tok_path, const char *name, nb_err *e)
{
    struct nb_meta meta;
    fill_meta(&meta, c, name);
    size_t vocab_size;
    void *vocab = nb_load_vocab(tok_path, &meta, &vocab_size, e);
    if (!vocab)
        return -1;
    set_end_ids(&meta);
    nb_writer *w = nb_writer_open(out, &meta, vocab, vocab_size, e);
    free(vocab);
    if (!w)
        return -1;
    struct l2c_array arrays[16];
    int n = l2c_arrays(c, arrays);
    uint64_t need = 0;
    for (int i = 0; i < n; i++)
        need += arrays[i].rows * arrays[i].cols * (arrays[i].layered ? (uint64_t)c->n_layers : 1);
    if (need > c->n_floats) {
        nb_writer_abort(w);
        return nb_fail(e, "checkpoint is truncated: its header needs %llu floats, it has %zu",
                       (unsigned long long)need, c->n_floats);
    }
    nb_progress prog;
    nb_progress_start(&prog, "converting", (uint64_t)n, o->quiet);
    const float *src = c->p;
    for (int i = 0; i < n; i++) {
        const struct l2c_array *a = &arrays[i];
        if (a->name && write_array(w, c, a, src, o->out_dtype, e)) {
            nb_writer_abort(w);
            return -1;
        }
        src += a->rows * a->cols * (a->layered ? (uint64_t)c->n_layers : 1);
        nb_progress_update(&prog, (uint64_t)i + 1);
    }
    nb_progress_done(&prog);
    return nb_writer_commit(w, e);
}

/* The tokenizer defaults to tokenizer.model beside the checkpoint. */
static char *default_tokenizer(const char *ckpt)
{
    char *copy = strdup(ckpt), *path = NULL;
    if (copy) {
        const char *dir = dirname(copy);
        size_t n = strlen(dir) + 20;
        path = malloc(n);
        if (path)
            snprintf(path, n, "%s/tokenizer.model", dir);
    }
    free(copy);
    return path;
}

static char *default_name(const char *ckpt)
{
    char *copy = strdup(ckpt);
    if (!copy)
        return NULL;
    char *base = strdup(basename(copy));
    free(copy);
    char *dot = base ? strrchr(base, '.') : NULL;
    if (dot && dot != base)
        *dot = 0;
    return base;
}

int nb_import_llama2c(const char *ckpt, const char *out, const nb_convert_opts *o, nb_err *e)
{
    int fd = open(ckpt, O_RDONLY);
    struct stat st;
    if (fd < 0)
        return nb_fail(e, "cannot open '%s': %s", ckpt, strerror(errno));
    if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size < 28) {
        close(fd);
        return nb_fail(e, "'%s' is not a llama2.c checkpoint (not a file, or too short)", ckpt);
    }
    size_t size = (size_t)st.st_size;
    void *base = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (base == MAP_FAILED)
        return nb_fail(e, "cannot map '%s': %s", ckpt, strerror(errno));
    struct l2c c = {0};
    char *tok = o->tokenizer_path ? strdup(o->tokenizer_path) : default_tokenizer(ckpt);
    char *name = o->name ? strdup(o->name) : default_name(ckpt);
    int rc = !tok || !name ? nb_fail(e, "out of memory") : l2c_header(&c, base, size, e);
    if (!rc)
        rc = write_model(&c, out, o, tok, name, e);
    free(tok);
    free(name);
    munmap(base, size);
    return rc;
}
