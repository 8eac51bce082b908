/* nibble export --to autoawq: a 4-bit .nib written as the Hugging Face
 * folder AutoAWQ's "gemm" version saves, which transformers and vLLM load
 * (docs/export.md). Each packed linear P becomes
 *   P.qweight  int32 [in, out/8]    codes, transposed to [in, out], eight
 *                                   output columns per word in AutoAWQ's
 *                                   order (nibble i holds column 8c +
 *                                   {0,2,4,6,1,3,5,7}[i]);
 *   P.qzeros   int32 [in/G, out/8]  zero points, packed the same way;
 *   P.scales   fp16  [in/G, out]    the .nib's fp16 scales, bit for bit;
 * so AutoAWQ's (q - z) * s is nibble's, and `nibble convert` of the folder
 * (tools/import_autoawq.c) gives back the same packed bytes. The rest is
 * plain: fp16 by default (what AutoAWQ writes; values fp16 cannot hold
 * exactly are rounded and counted), or as stored with keep_dtypes. A
 * quantized output layer is dequantized (AutoAWQ keeps lm_head in fp16).
 * q/k rows of a file with interleaved RoPE pairs (llama2.c, GGUF llama)
 * are reordered into Hugging Face's rotate-half order, per head, as
 * transformers' conversion script permutes them. The folder is written
 * as OUTDIR.tmp<pid> and renamed into place when complete; one that a
 * SIGKILL left is removed by the next export to OUTDIR. The JSON files
 * are export_hf.c's. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../models/net.h"
#include "../../neon/f16.h"
#include "../../runtime/qtensor.h"
#include "../../runtime/writer.h"
#include "../progress.h"
#include "export_hf.h"

/* ---- the temporary folder, removed on failure and on signals ---- */

#define MAX_FILES 16
static struct {
    char dir[4096], files[MAX_FILES][4200];
    volatile sig_atomic_t n, set;
} pending;

static void on_signal(int sig)
{
    if (pending.set) {
        for (int i = 0; i < pending.n; i++)
            unlink(pending.files[i]);
        rmdir(pending.dir);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void remove_tmp(void)
{
    pending.set = 0; /* the handler must not run half-way through this */
    for (int i = 0; i < pending.n; i++)
        unlink(pending.files[i]);
    rmdir(pending.dir);
    pending.n = 0;
}

/* ---- the folders an export killed by SIGKILL left (no handler ran) ---- */

enum { PATH_BYTES = 4400 }; /* a path (< 4096 bytes) and a name in it (< 256) */

/* 1 when name, in folder dir, is a plain file (a link is not followed)
 * of those export writes; path [PATH_BYTES] gets dir/name. */
static int own_file(const char *dir, const char *name, char *path)
{
    struct stat st;
    int n = snprintf(path, PATH_BYTES, "%s/%s", dir, name);
    return n > 0 && n < PATH_BYTES && !lstat(path, &st) && S_ISREG(st.st_mode) &&
           (!strcmp(name, "model.safetensors") || nb_export_hf_file(name));
}

static int dot(const char *name)
{
    return !strcmp(name, ".") || !strcmp(name, "..");
}

/* The first entry of the folder dir (read through d) that is not a file
 * export writes; NULL when there is none. */
static const char *stranger(DIR *d, const char *dir)
{
    char path[PATH_BYTES];
    struct dirent *ent;
    while ((ent = readdir(d)))
        if (!dot(ent->d_name) && !own_file(dir, ent->d_name, path))
            return ent->d_name;
    return NULL;
}

/* Removes the files export writes from the folder dir (read through d). */
static void remove_files(DIR *d, const char *dir)
{
    char path[PATH_BYTES];
    struct dirent *ent;
    rewinddir(d);
    while ((ent = readdir(d)))
        if (!dot(ent->d_name) && own_file(dir, ent->d_name, path))
            unlink(path);
}

/* Empties and removes the leftover folder dir if it holds nothing but
 * files export writes: anything else may be someone's, so the folder
 * stays as it is, with one line saying so (a warning, even with -q: the
 * user has to look). Nothing is recursed into. */
static void remove_leftover(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    const char *other = stranger(d, dir);
    if (other)
        fprintf(stderr, "nibble: warning: '%s', left by an export that was killed, holds '%s', "
                "which export does not write: left as it is\n", dir, other);
    else
        remove_files(d, dir);
    closedir(d);
    if (!other)
        rmdir(dir);
}

/* The folders OUTDIR.tmp<pid> (that exact name) whose process is gone,
 * as nb_writer removes the files OUT.tmp<pid> of a killed writer. */
static void remove_leftovers(const char *outdir)
{
    char parent[4096], path[PATH_BYTES], want[PATH_BYTES];
    const char *slash = strrchr(outdir, '/'), *base = slash ? slash + 1 : outdir;
    int n = slash ? snprintf(parent, sizeof parent, "%.*s", (int)(slash - outdir + 1), outdir)
                  : snprintf(parent, sizeof parent, "./");
    DIR *d = *base && n > 0 && (size_t)n < sizeof parent ? opendir(parent) : NULL;
    struct dirent *ent;
    struct stat st;
    while (d && (ent = readdir(d))) {
        long pid = nb_leftover_pid(ent->d_name, base);
        snprintf(want, sizeof want, "%s.tmp%ld", base, pid); /* not OUTDIR.tmp<pid>-x, .tmp+1 */
        if (!pid || strcmp(want, ent->d_name) || !nb_process_gone(pid))
            continue;
        snprintf(path, sizeof path, "%s%s", parent, ent->d_name);
        if (!lstat(path, &st) && S_ISDIR(st.st_mode))
            remove_leftover(path);
    }
    if (d)
        closedir(d);
}

static int make_tmp(const char *outdir, nb_err *e)
{
    struct stat st;
    if (!stat(outdir, &st))
        return nb_fail(e, "'%s' exists: give a new folder (nothing is overwritten)", outdir);
    remove_leftovers(outdir);
    int n = snprintf(pending.dir, sizeof pending.dir, "%s.tmp%ld", outdir, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof pending.dir - 128)
        return nb_fail(e, "output path '%.64s...' is too long", outdir);
    pending.n = 0;
    pending.set = 1;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGHUP, on_signal);
    if (mkdir(pending.dir, 0777)) {
        pending.set = 0;
        return nb_fail(e, "cannot create '%s': %s", pending.dir, strerror(errno));
    }
    return 0;
}

FILE *nb_export_create(const char *name, nb_err *e)
{
    if (pending.n == MAX_FILES)
        return nb_fail(e, "too many files"), NULL;
    char *path = pending.files[pending.n];
    size_t d = strlen(pending.dir), n = strlen(name); /* make_tmp left room for a name */
    memcpy(path, pending.dir, d);
    path[d] = '/';
    memcpy(path + d + 1, name, n + 1);
    pending.n++; /* listed before it exists: no window without it */
    FILE *f = fopen(path, "wb");
    if (!f)
        nb_fail(e, "cannot create '%s': %s", path, strerror(errno));
    return f;
}

int nb_export_close(FILE *f, const char *name, nb_err *e)
{
    int bad = ferror(f) | fflush(f) | fsync(fileno(f));
    bad |= fclose(f);
    return bad ? nb_fail(e, "cannot write '%s/%s': %s", pending.dir, name, strerror(errno)) : 0;
}

/* ---- the plan: one job per safetensors tensor ---- */

enum part { P_PLAIN, P_QWEIGHT, P_QZEROS, P_SCALES, P_DEQUANT };

struct job {
    nb_tensor t;
    nb_qlayout l; /* packed tensors */
    int part, unweave;
};

static const struct {
    const char *hf, *nb;
    int linear;   /* a matrix AutoAWQ quantizes */
    unsigned has; /* the optional block it belongs to (models/arch.h) */
    int qk;       /* rows in RoPE pairs */
} layer_parts[] = {
    {"input_layernorm.weight", NB_T_ATTN_NORM, 0, 0, 0},
    {"self_attn.q_proj", NB_T_Q, 1, 0, 1},
    {"self_attn.q_proj.bias", NB_T_Q_BIAS, 0, NB_HAS_QKV_BIAS, 1},
    {"self_attn.k_proj", NB_T_K, 1, 0, 1},
    {"self_attn.k_proj.bias", NB_T_K_BIAS, 0, NB_HAS_QKV_BIAS, 1},
    {"self_attn.v_proj", NB_T_V, 1, 0, 0},
    {"self_attn.v_proj.bias", NB_T_V_BIAS, 0, NB_HAS_QKV_BIAS, 0},
    {"self_attn.q_norm.weight", NB_T_Q_NORM, 0, NB_HAS_QK_NORM, 1},
    {"self_attn.k_norm.weight", NB_T_K_NORM, 0, NB_HAS_QK_NORM, 1},
    {"self_attn.o_proj", NB_T_O, 1, 0, 0},
    {"post_attention_layernorm.weight", NB_T_FFN_NORM, 0, 0, 0},
    {"mlp.gate_proj", NB_T_GATE, 1, 0, 0},
    {"mlp.up_proj", NB_T_UP, 1, 0, 0},
    {"mlp.down_proj", NB_T_DOWN, 1, 0, 0},
};
#define N_PARTS (sizeof layer_parts / sizeof *layer_parts)

static int add_job(nb_export *x, const char *name, const nb_tensor *t, int part, int st_dtype,
                   nb_err *e)
{
    if (x->n == x->cap) {
        size_t cap = x->cap ? 2 * x->cap : 64;
        void *s = realloc(x->spec, cap * sizeof *x->spec), *j = s ? realloc(x->job, cap * sizeof *x->job) : NULL;
        if (s)
            x->spec = s;
        if (!j)
            return nb_fail(e, "out of memory");
        x->job = j, x->cap = cap;
    }
    nb_st_spec *s = &x->spec[x->n];
    struct job *j = &x->job[x->n++];
    const struct nb_tensor_entry *en = t->entry;
    memset(j, 0, sizeof *j);
    j->t = *t, j->part = part;
    snprintf(s->name, sizeof s->name, "%s", name);
    s->dtype = st_dtype;
    s->n_dims = part == P_PLAIN ? (int)en->n_dims : 2;
    uint64_t rows = en->shape[0], cols = en->shape[1], g = x->group ? (uint64_t)x->group : 1;
    uint64_t shape[][2] = {[P_PLAIN] = {rows, cols},       [P_QWEIGHT] = {cols, rows / 8},
                           [P_QZEROS] = {cols / g, rows / 8}, [P_SCALES] = {cols / g, rows},
                           [P_DEQUANT] = {rows, cols}};
    s->shape[0] = shape[part][0], s->shape[1] = shape[part][1];
    if (nb_dtype_packed(en->dtype) && nb_qentry_layout(en, &j->l, e))
        return -1;
    return 0;
}

static int plain_dtype(const nb_export *x, uint32_t dtype)
{
    if (!x->o->keep_dtypes)
        return NB_ST_F16;
    return dtype == NB_F32 ? NB_ST_F32 : dtype == NB_BF16 ? NB_ST_BF16 : NB_ST_F16;
}

/* What AutoAWQ cannot express, in one line naming the tensor. */
static int check_packed(nb_export *x, const struct nb_tensor_entry *t, nb_err *e)
{
    char why[96] = "";
    int g = t->group_size;
    if (t->dtype != NB_Q4)
        return nb_fail(e, "%s is INT%u: AutoAWQ stores 4-bit weights only (quantize with --bits 4)",
                       t->name, t->bits);
    if (g != 32 && g != 64 && g != 128)
        return nb_fail(e, "%s has %s: AutoAWQ needs groups of 32, 64 or 128 (quantize with "
                          "--group 32|64|128)", t->name, g ? "groups of another size" : "one group per row");
    if (x->group && g != x->group)
        return nb_fail(e, "%s has groups of %d, other linears %d: AutoAWQ has one group_size per "
                          "model", t->name, g, x->group);
    if (t->shape[1] % (uint64_t)g)
        snprintf(why, sizeof why, "input columns that are not whole groups of %d", g);
    else if (t->shape[0] % 8)
        snprintf(why, sizeof why, "output rows that are not a multiple of 8 (AutoAWQ packs 8 "
                                  "per int32)");
    if (*why)
        return nb_fail(e, "%s is [%llu, %llu], with %s", t->name,
                       (unsigned long long)t->shape[0], (unsigned long long)t->shape[1], why);
    x->group = g;
    return 0;
}

static int plan_linear(nb_export *x, const char *hf, const nb_tensor *t, int qk, nb_err *e)
{
    static const char *const parts[] = {"qweight", "qzeros", "scales"};
    char name[128];
    if (!nb_dtype_packed(t->entry->dtype)) {
        snprintf(name, sizeof name, "%s.weight", hf);
        json_array_append_new(x->skip, json_string(hf)); /* AutoAWQ's modules_to_not_convert */
        if (add_job(x, name, t, P_PLAIN, plain_dtype(x, t->entry->dtype), e))
            return -1;
        x->job[x->n - 1].unweave = qk;
        return 0;
    }
    if (check_packed(x, t->entry, e))
        return -1;
    for (int p = 0; p < 3; p++) {
        snprintf(name, sizeof name, "%s.%s", hf, parts[p]);
        if (add_job(x, name, t, P_QWEIGHT + p, p < 2 ? NB_ST_I32 : NB_ST_F16, e))
            return -1;
        x->job[x->n - 1].unweave = qk;
    }
    x->n_packed++;
    return 0;
}

static int find(const nb_export *x, const char *name, nb_tensor *t, nb_err *e)
{
    if (nb_model_find(&x->m, name, t))
        return 0;
    return nb_fail(e, "the model has no tensor %s", name);
}

static int plan_part(nb_export *x, int layer, size_t p, nb_err *e)
{
    char hf[96], nb[NB_NAME_LEN];
    nb_tensor t;
    snprintf(hf, sizeof hf, "model.layers.%d.%s", layer, layer_parts[p].hf);
    snprintf(nb, sizeof nb, layer_parts[p].nb, layer);
    int qk = layer_parts[p].qk && x->m.meta.rope_pairs == NB_ROPE_INTERLEAVED;
    if (find(x, nb, &t, e))
        return -1;
    if (layer_parts[p].linear)
        return plan_linear(x, hf, &t, qk, e);
    if (add_job(x, hf, &t, P_PLAIN, plain_dtype(x, t.entry->dtype), e))
        return -1;
    x->job[x->n - 1].unweave = qk;
    return 0;
}

/* The output layer: AutoAWQ keeps lm_head unquantized. */
static int plan_output(nb_export *x, nb_err *e)
{
    nb_tensor t;
    if (x->m.meta.tied_embeddings)
        return 0;
    if (find(x, NB_T_OUTPUT, &t, e))
        return -1;
    uint32_t d = t.entry->dtype;
    if (!nb_dtype_packed(d))
        return add_job(x, "lm_head.weight", &t, P_PLAIN, plain_dtype(x, d), e);
    x->output_dequant = 1;
    return add_job(x, "lm_head.weight", &t, P_DEQUANT, x->o->keep_dtypes ? NB_ST_F32 : NB_ST_F16,
                   e);
}

static int plan(nb_export *x, nb_err *e)
{
    nb_tensor t;
    const struct nb_meta *c = &x->m.meta;
    if (!(x->skip = json_array()) || find(x, NB_T_EMBED, &t, e) ||
        add_job(x, "model.embed_tokens.weight", &t, P_PLAIN, plain_dtype(x, t.entry->dtype), e))
        return x->skip ? -1 : nb_fail(e, "out of memory");
    for (int l = 0; l < (int)c->n_layers; l++)
        for (size_t p = 0; p < N_PARTS; p++)
            if ((!layer_parts[p].has || (x->hp.arch->has & layer_parts[p].has)) &&
                plan_part(x, l, p, e))
                return -1;
    if (find(x, NB_T_OUT_NORM, &t, e) ||
        add_job(x, "model.norm.weight", &t, P_PLAIN, plain_dtype(x, t.entry->dtype), e) ||
        plan_output(x, e))
        return -1;
    if (!x->n_packed)
        return nb_fail(e, "the model is not quantized: AutoAWQ holds 4-bit linears (nibble "
                          "quantize it first)");
    return 0;
}

/* ---- the tensor data ---- */

/* Hugging Face row r of q or k from the row of an interleaved file:
 * within a head, HF's row j * hd/2 + i is the pair (2i, 2i+1)'s j-th. */
static size_t src_row(const nb_export *x, const struct job *j, size_t r)
{
    size_t hd = x->m.meta.head_dim, half = hd / 2, in = r % hd;
    return j->unweave ? r - in + 2 * (in % half) + in / half : r;
}

static unsigned q4_code(const nb_qlayout *l, const uint8_t *d, size_t row, size_t col)
{
    size_t tile = (row / 4) * (l->cols_p / 32) + col / 32, c = col % 32;
    uint8_t b = d[tile * 64 + 16 * (c / 8) + 4 * (row % 4) + c % 4];
    return c % 8 < 4 ? b & 15u : (unsigned)b >> 4;
}

static size_t q_index(const nb_qlayout *l, size_t row, size_t g)
{
    return ((row / 4) * l->n_groups + g) * 4 + row % 4;
}

static float elem(const nb_tensor *t, size_t i)
{
    const uint8_t *p = t->data;
    uint16_t h;
    float f;
    if (t->entry->dtype == NB_F32)
        return memcpy(&f, p + 4 * i, 4), f;
    memcpy(&h, p + 2 * i, 2);
    return t->entry->dtype == NB_BF16 ? nb_bf16_to_f32(h) : nb_f16_to_f32(h);
}

/* One row of out_dtype values from floats; fp16 overflow refused. */
static int put_f16(nb_export *x, const float *v, size_t n, uint16_t *buf, const char *name,
                   nb_err *e)
{
    int inexact = 0;
    for (size_t i = 0; i < n; i++) {
        buf[i] = nb_f32_to_f16(v[i]);
        float back = nb_f16_to_f32(buf[i]);
        if (isinf(back) && isfinite(v[i]))
            return nb_fail(e, "%s holds %g, beyond fp16's range: export with --keep-dtypes", name,
                           (double)v[i]);
        inexact |= back != v[i];
    }
    x->inexact_now |= inexact;
    return 0;
}

static int put_rows(nb_export *x, FILE *f, const struct job *j, const nb_st_spec *s, void *buf,
                    float *row, nb_err *e)
{
    const struct nb_tensor_entry *t = j->t.entry;
    size_t rows = t->n_dims == 2 ? t->shape[0] : 1, cols = t->n_dims == 2 ? t->shape[1] : t->shape[0];
    size_t w = nb_st_dtype_size(s->dtype);
    for (size_t r = 0; r < rows; r++) {
        size_t from = src_row(x, j, t->n_dims == 2 ? r : 0);
        if (j->part == P_DEQUANT)
            nb_qrow_ref(&j->l, j->t.data, from, row);
        for (size_t c = 0; c < cols && j->part == P_PLAIN; c++)
            row[c] = elem(&j->t, t->n_dims == 2 ? from * cols + c : src_row(x, j, c));
        if (s->dtype == NB_ST_F32)
            memcpy(buf, row, cols * 4);
        else if (s->dtype == NB_ST_BF16)
            for (size_t c = 0; c < cols; c++) /* exact: the values came from bf16 */
                ((uint16_t *)buf)[c] = nb_f32_to_bf16(row[c]);
        else if (put_f16(x, row, cols, buf, t->name, e))
            return -1;
        if (fwrite(buf, w, cols, f) != cols)
            return nb_fail(e, "cannot write model.safetensors: %s", strerror(errno));
    }
    return 0;
}

/* qweight, qzeros: [in or in/G][out/8] words; scales [in/G][out]. */
static int put_packed(nb_export *x, FILE *f, const struct job *j, uint32_t *buf, nb_err *e)
{
    static const unsigned order[8] = {0, 2, 4, 6, 1, 3, 5, 7};
    const nb_qlayout *l = &j->l;
    const uint8_t *d = j->t.data, *zp = d + l->zero_offset, *sc = d + l->scale_offset;
    size_t n = l->rows, outer = j->part == P_QWEIGHT ? l->cols : l->n_groups;
    size_t words = j->part == P_SCALES ? n / 2 : n / 8;
    for (size_t k = 0; k < outer; k++) {
        for (size_t c = 0; c < n / 8 && j->part != P_SCALES; c++) {
            uint32_t w = 0;
            for (unsigned i = 0; i < 8; i++) {
                size_t row = src_row(x, j, 8 * c + order[i]);
                unsigned v = j->part == P_QWEIGHT ? q4_code(l, d, row, k) : zp[q_index(l, row, k)];
                if (v > 15)
                    return nb_fail(e, "%s holds a zero point of %u, past 4 bits", j->t.entry->name, v);
                w |= (uint32_t)v << (4 * i);
            }
            buf[c] = w;
        }
        for (size_t r = 0; r < n && j->part == P_SCALES; r++)
            memcpy((uint16_t *)buf + r, sc + 2 * q_index(l, src_row(x, j, r), k), 2);
        if (fwrite(buf, 4, words, f) != words)
            return nb_fail(e, "cannot write model.safetensors: %s", strerror(errno));
    }
    return 0;
}

static int put_job(nb_export *x, FILE *f, size_t i, void *buf, float *row, nb_err *e)
{
    const struct job *j = &x->job[i];
    x->inexact_now = 0;
    int rc = j->part == P_PLAIN || j->part == P_DEQUANT
                 ? put_rows(x, f, j, &x->spec[i], buf, row, e)
                 : put_packed(x, f, j, buf, e);
    x->rounded += x->inexact_now && j->part == P_PLAIN;
    return rc;
}

static int write_tensors(nb_export *x, nb_err *e)
{
    uint64_t total = 0, done = 0;
    size_t widest = 8;
    for (size_t i = 0; i < x->n; i++) {
        total += nb_st_spec_size(&x->spec[i]);
        widest = x->job[i].t.entry->shape[0] > widest ? x->job[i].t.entry->shape[0] : widest;
        widest = x->job[i].t.entry->shape[1] > widest ? x->job[i].t.entry->shape[1] : widest;
    }
    FILE *f = nb_export_create("model.safetensors", e);
    void *buf = malloc(widest * 4);
    float *row = malloc(widest * 4);
    int rc = !f || !buf || !row ? (f ? nb_fail(e, "out of memory") : -1)
                                : nb_st_write_header(f, x->spec, x->n, "model.safetensors", e);
    nb_progress p;
    nb_progress_start(&p, "exporting", total, x->o->quiet);
    for (size_t i = 0; i < x->n && !rc; i++) {
        rc = put_job(x, f, i, buf, row, e);
        nb_progress_update(&p, done += nb_st_spec_size(&x->spec[i]));
    }
    nb_progress_done(&p);
    if (f && nb_export_close(f, "model.safetensors", rc ? NULL : e))
        rc = -1;
    free(buf), free(row);
    return rc;
}

/* ---- the whole folder ---- */

static void notes(const nb_export *x)
{
    const struct nb_meta *c = &x->m.meta;
    nb_tensor t;
    if (x->output_dequant && nb_model_find(&x->m, NB_T_OUTPUT, &t))
        nb_notice(x->o->quiet, "the output layer is INT%u g%u in the .nib: lm_head.weight is its "
                  "dequantization (%s), as AutoAWQ keeps lm_head unquantized (quantize with "
                  "--output-f16 to export it exactly)", t.entry->bits, t.entry->group_size,
                  x->o->keep_dtypes ? "f32, exact" : "fp16");
    if (x->rounded)
        nb_notice(x->o->quiet, "%zu plain tensors held values fp16 cannot represent exactly and "
                  "were rounded to nearest (--keep-dtypes writes them as stored)", x->rounded);
    if (c->rope_pairs == NB_ROPE_INTERLEAVED)
        nb_notice(x->o->quiet, "q/k rows reordered from interleaved RoPE pairs into Hugging "
                  "Face's rotate-half order");
}

int nb_export_autoawq(const char *model, const char *outdir, const nb_export_opts *o, nb_err *e)
{
    nb_export x;
    memset(&x, 0, sizeof x);
    x.o = o;
    if (nb_model_open(&x.m, model, e))
        return -1;
    int rc = nb_hparams_read(&x.m, &x.hp, e) || plan(&x, e);
    if (rc) { /* the tensor names: say which file */
        nb_err why = *e;
        nb_fail(e, "%s: %s", model, why.msg);
    }
    rc = rc || nb_export_check_tokenizer(&x, e) || make_tmp(outdir, e);
    if (!rc) {
        rc = nb_export_json(&x, e) || nb_export_tokenizer(&x, e) || write_tensors(&x, e);
        if (!rc && rename(pending.dir, outdir))
            rc = nb_fail(e, "cannot move '%s' into place: %s", pending.dir, strerror(errno));
        if (rc)
            remove_tmp();
        pending.set = 0;
    }
    if (!rc)
        notes(&x);
    json_decref(x.skip);
    free(x.spec), free(x.job);
    nb_model_close(&x.m);
    return rc ? -1 : 0;
}
