/* The quantization pipeline quantize and convert --quantize share: an
 * input converted on the way into a temporary file that never outlives
 * the run, the calibration text tokenized into blocks, nb_awq_quantize. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../runtime/affinity.h"
#include "../../runtime/qtensor.h"
#include "../cli.h"
#include "../ppl.h"
#include "../progress.h"
#include "awq.h"
#include "quant_flags.h"

enum { PREFIX_BYTES = 16 }; /* generous bytes per token for a first prefix */

/* "nibble: warning: ..." or "nibble: note: ..." on stderr. */
static void say(const char *kind, const char *fmt, ...) NB_PRINTF(2, 3);

static void say(const char *kind, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "nibble: %s: ", kind);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int nb_quant_refuse_autoawq(const char *dir)
{
    return nb_error("'%s' is an AutoAWQ checkpoint, already quantized: nibble convert "
                    "imports it as it is (without --quantize)", dir);
}

/* The intermediate sits beside out, on the disk the user chose for the
 * output (a temporary folder may be RAM on a board), under a name no
 * other run uses. */
int nb_quant_open_converted(nb_model *m, nb_importer import, const char *in,
                            const nb_convert_opts *o, const char *out)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s.tmp%ld-unquantized", out, (long)getpid()) >=
        (int)sizeof path)
        return nb_error("output path too long: '%.64s...'", out);
    nb_remove_on_signal(path);
    nb_err e = {{0}};
    int rc = import(in, path, o, &e) || nb_model_open(m, path, &e);
    unlink(path); /* the mapping keeps the data */
    nb_remove_on_signal(NULL);
    return rc ? nb_error("%s", e.msg) : 0;
}

/* The input must be whole and hold finite values, which the quantizer's
 * arithmetic assumes (a pass over the file: little next to the search). */
static int check_input(const nb_model *m, const char *path)
{
    for (uint32_t i = 0; i < m->n_tensors; i++) {
        const struct nb_tensor_entry *t =
            (const void *)((const uint8_t *)m->table + (size_t)i * m->header->entry_size);
        if (nb_dtype_packed(t->dtype))
            return nb_error("'%s' is already quantized (%s is %s): quantize the original model",
                            path, t->name, nb_dtype_name(t->dtype));
    }
    nb_err e = {{0}};
    return nb_model_verify(m, &e) ? nb_error("'%s': %s", path, e.msg) : 0;
}

/* Tokenizes text [0, size) with BOS, or a prefix of it: tokenizing a
 * whole large file to keep its first blocks would be slow, so a prefix of
 * PREFIX_BYTES per wanted token, cut after a line break, goes first, and
 * the whole text only if that falls short. SentencePiece splits at
 * whitespace, so the prefix's tokens are the first tokens of the whole. */
static int tokenize(const nb_tokenizer *tok, const char *text, size_t size, size_t want,
                    int32_t **ids, size_t *n, nb_err *e)
{
    size_t cut = size;
    if (want <= size / PREFIX_BYTES) {
        cut = want * PREFIX_BYTES;
        while (cut > 0 && text[cut - 1] != '\n')
            cut--;
    }
    if (cut > 0 && cut < size) {
        if (nb_tok_encode(tok, text, cut, 1, ids, n, e))
            return -1;
        if (*n >= want)
            return 0;
        free(*ids);
        *ids = NULL;
    }
    return nb_tok_encode(tok, text, size, 1, ids, n, e);
}

/* Tokenizes the calibration text and keeps whole blocks. */
static int load_calib(const nb_quant *q, const nb_model *m, int32_t **ids, size_t *n_tokens,
                      size_t *block)
{
    nb_err e = {{0}};
    size_t size = 0, n = 0;
    *block = m->meta.max_ctx < NB_QUANT_BLOCK ? m->meta.max_ctx : NB_QUANT_BLOCK;
    if ((size_t)q->calib_tokens < *block)
        return nb_error("--calib-tokens %ld is less than one block of %zu tokens",
                        q->calib_tokens, *block);
    size_t want = (size_t)q->calib_tokens / *block;
    char *text = nb_read_file(q->calib, (size_t)1 << 31, &size, &e);
    nb_tokenizer *tok = text ? nb_tok_load_bytes(m->vocab, m->vocab_size, &e) : NULL;
    int rc = 0;
    if (!tok)
        rc = nb_error("%s", e.msg);
    else if (tokenize(tok, text, size, want * *block, ids, &n, &e))
        rc = nb_error("calibration text %s: %s", q->calib, e.msg);
    else if (n < *block)
        rc = nb_error("calibration text '%s' has %zu tokens, fewer than one block of %zu",
                      q->calib, n, *block);
    free(text);
    nb_tok_free(tok);
    if (rc)
        return rc;
    size_t have = n / *block;
    if (have < want)
        say("warning", "calibration text gives %zu blocks of %zu tokens, fewer than the %zu "
                       "asked for", have, *block, want);
    if (*block < NB_QUANT_BLOCK)
        say("note", "the model's context is %u tokens: calibration blocks of %zu",
            m->meta.max_ctx, *block);
    *n_tokens = (have < want ? have : want) * *block;
    return 0;
}

static void describe(const nb_quant *q, const nb_awq_opts *o, size_t n_tokens, size_t block,
                     int threads)
{
    int searched = o->scales || o->clip;
    printf("%s INT%ld, %s%s", searched ? "AWQ" : "RTN", q->bits, q->group ? "group " : "per row",
           q->symmetric ? ", symmetric" : "");
    if (q->group)
        printf("%ld%s", q->group, q->symmetric ? "" : " with zero points");
    if (searched)
        printf("; scales: %s; clip: %s; %zu calibration tokens (%zu blocks of %zu, the scale "
               "losses on %zu of them)",
               !o->scales ? "off" : o->duo ? "duo" : "activations only", o->clip ? "on" : "off",
               n_tokens, n_tokens / block, block,
               nb_awq_search_blocks(n_tokens, block, o->search_tokens));
    else if (n_tokens) /* for the output layer's searches only */
        printf("; %zu calibration tokens (%zu blocks of %zu)", n_tokens, n_tokens / block, block);
    if (!o->out_q.bits)
        printf("; output layer kept as it is");
    else if (o->out_q.group)
        printf("; output layer %s INT%d, group %d", o->out_scales || o->out_clip ? "AWQ" : "RTN",
               o->out_q.bits, o->out_q.group);
    else
        printf("; output layer %s INT%d, per row", o->out_scales || o->out_clip ? "AWQ" : "RTN",
               o->out_q.bits);
    printf("; %d thread%s\n", threads, threads > 1 ? "s" : "");
}

/* Refuses a run that would not fit in RAM before hours are spent on it:
 * Linux overcommits, so a failing malloc would not tell, the OOM killer
 * would, midway. */
static int check_memory(const nb_model *m, size_t n_tokens, const nb_awq_opts *o)
{
    double need = nb_layer_awq_bytes(&m->meta, n_tokens);
    double out = o->out_q.bits ? nb_awq_output_bytes(&m->meta, n_tokens) : 0;
    need = out > need ? out : need;
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    double have = pages > 0 && page > 0 ? (double)pages * (double)page : 0;
    if (have > 0 && need > 0.9 * have)
        return nb_error("quantizing with %zu calibration tokens needs about %.1f GB, this machine "
                        "has %.1f GB: lower --calib-tokens", n_tokens, need / 1e9, have / 1e9);
    printf("memory: about %.2f GB for the calibration activations and one layer\n", need / 1e9);
    return 0;
}

static int run(const nb_quant *q, const nb_model *m, const int32_t *ids, size_t n_tokens,
               size_t block, const char *out, int quiet, double t0)
{
    nb_awq_opts o = {
        .q = {.bits = (int)q->bits, .group = (int)q->group, .symmetric = q->symmetric},
        .scales = !q->rtn && !q->no_scale,
        .duo = !q->x_only,
        .clip = !q->rtn && !q->no_clip,
        .search_tokens = (size_t)q->search_tokens,
        .output = q->fake ? NB_AWQ_DEQUANT : NB_AWQ_PACKED,
        .out_q = {.bits = q->output_f16 ? 0 : NB_QUANT_OUTPUT_BITS, .group = (int)q->output_group,
                  .symmetric = q->symmetric},
        .out_scales = nb_quant_output_awq(q) && !q->no_scale,
        .out_clip = nb_quant_output_awq(q) && !q->no_clip,
        .quiet = quiet,
        .report = stdout,
    };
    int threads = q->threads ? (int)q->threads : nb_default_threads();
    describe(q, &o, n_tokens, block, threads);
    if (fflush(stdout)) /* the report has nowhere to go: say so before hours of work */
        return nb_error("cannot write the report to stdout: %s", strerror(errno));
    if (n_tokens && check_memory(m, n_tokens, &o))
        return 1;
    nb_pool *pool = nb_pool_create(threads);
    if (!pool)
        return nb_error("cannot start %d threads", threads);
    nb_err e = {{0}};
    int rc = nb_awq_quantize(m, ids, n_tokens, block, out, &o, pool, &e);
    nb_pool_free(pool);
    if (rc)
        return nb_error("%s", e.msg);
    printf("quantized %u layers in %.1f s\n", m->meta.n_layers, nb_now() - t0);
    if (fflush(stdout) || ferror(stdout))
        return nb_error("cannot write the report to stdout (%s was written)", out);
    if (!quiet)
        fprintf(stderr, "wrote %s\n", out);
    return 0;
}

/* One model's perplexity on q->check: the session (on the mapped model
 * when m is given, else on the file) scores the text's first windows. */
static int check_one(const nb_quant *q, const nb_model *m, const char *path, const char *what,
                     int quiet, nb_ppl *r)
{
    nb_session_opts so = {.run = {.threads = (int)q->threads}};
    nb_ppl_opts po = {.windows = q->check_windows, .quiet = quiet};
    nb_session s;
    nb_err e = {{0}};
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = m ? nb_session_open_on(&s, m, path, 0, &so, &e)
               : nb_session_open_with(&s, path, 0, &so, &e);
    if (rc)
        return nb_error("%s", e.msg);
    if (s.net.ctx > NB_QUANT_BLOCK)
        po.ctx = NB_QUANT_BLOCK;
    rc = nb_ppl_text(&s, q->check, &po, &ids, &n) || nb_ppl_eval(&s, ids, n, &po, what, r);
    free(ids);
    nb_session_close(&s);
    return rc;
}

/* --check: what the quantization cost, as perplexity on a text before
 * (the model as it came) and after (the file written). */
static int check_cost(const nb_quant *q, const nb_model *m, const char *path, const char *out,
                      int quiet)
{
    nb_ppl before, after;
    if (check_one(q, m, path, "perplexity before", quiet, &before) ||
        check_one(q, NULL, out, "perplexity after", quiet, &after))
        return 1;
    printf("check: perplexity on %s (%ld windows of %ld tokens): %.4f before, %.4f after "
           "(%+.2f%%)\n",
           q->check, after.windows, after.ctx, before.ppl, after.ppl,
           100.0 * (after.ppl / before.ppl - 1.0));
    return fflush(stdout) ? nb_error("cannot write to stdout: %s", strerror(errno)) : 0;
}

int nb_quant_model(const nb_quant *q, const nb_model *m, const char *path, const char *out,
                   int quiet)
{
    double t0 = nb_now();
    int32_t *ids = NULL;
    size_t n_tokens = 0, block = NB_QUANT_BLOCK;
    int rc = check_input(m, path);
    if (!rc && nb_quant_needs_calib(q))
        rc = load_calib(q, m, &ids, &n_tokens, &block);
    if (!rc)
        rc = run(q, m, ids, n_tokens, block, out, quiet, t0);
    free(ids);
    if (!rc && q->check)
        rc = check_cost(q, m, path, out, quiet);
    return rc;
}
