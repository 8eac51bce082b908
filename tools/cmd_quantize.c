/* nibble quantize: AWQ (or round-to-nearest) INT4/INT3 quantization of a
 * model's decoder linears, calibrated on a text file. Everything that can
 * be wrong with the input is checked before the output is opened, and the
 * output is written atomically: a failed or interrupted run leaves none. */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../runtime/qtensor.h"
#include "awq.h"
#include "cli.h"
#include "convert.h"
#include "progress.h"

enum {
    BLOCK = 512,            /* calibration tokens per independent sequence */
    DEFAULT_TOKENS = 65536, /* 128 blocks, as the reference implementations */
    PREFIX_BYTES = 16,      /* generous bytes per token for a first prefix */
};

static const char help[] =
    "usage: nibble quantize -m MODEL --calib TEXT -o OUT.nib [options]\n"
    "\n"
    "Quantizes the decoder linears of MODEL with AWQ (activation-aware weight\n"
    "quantization) and writes OUT atomically; embeddings, norms and the output\n"
    "layer stay as they are. Progress goes to stderr; what the search decided (per\n"
    "layer: the alpha of each scale group, how much each linear was clipped) to\n"
    "stdout.\n"
    "  -m, --model MODEL   a .nib (f32, f16 or bf16), or a Hugging Face folder\n"
    "                      (converted to a temporary file first)\n"
    "  --calib TEXT        calibration text, UTF-8, like what the model will see;\n"
    "                      tokenized once with BOS and cut into blocks of 512 tokens\n"
    "                      (the model's context if shorter)\n"
    "  -o, --output FILE   the quantized .nib to write\n"
    "  --bits N            4 or 3 (default: 4)\n"
    "  --group G           input channels sharing a scale and zero point: 32, 64, 128,\n"
    "                      or row (also 0) for one group per row (default: 128). A\n"
    "                      group wider than a linear's input spans the whole row; the\n"
    "                      last group of a row is shorter when G does not divide it\n"
    "  --method M          awq (default) or rtn: plain round to nearest, no --calib\n"
    "  --calib-tokens N    calibration tokens (default: 65536, 128 blocks of 512)\n"
    "  -t, --threads N     worker threads (default: one per CPU); the output is the\n"
    "                      same for any number\n"
    "  --symmetric         symmetric groups (zero point fixed at the middle)\n"
    "  --scale S           duo (default): activation and weight statistics; x:\n"
    "                      activations only, as in the paper\n"
    "  --no-scale, --no-clip  ablations: skip the scale or the clip search\n"
    "  --fake-quant        store the quantized weights dequantized, as f32 (for\n"
    "                      measurements; the packed file computes the same)\n"
    "  -q, --quiet         no progress on stderr\n";

struct quant_opts {
    const char *model, *calib, *out;
    long bits, group, calib_tokens, threads;
    int rtn, x_only, no_scale, no_clip, fake, symmetric, quiet;
};

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

static int parse_group(const char *s, long *group)
{
    if (!strcmp(s, "row") || !strcmp(s, "0"))
        return *group = 0, 0;
    if (!strcmp(s, "32") || !strcmp(s, "64") || !strcmp(s, "128"))
        return *group = atol(s), 0;
    return nb_error("--group must be 32, 64, 128 or row, got '%s'", s), -1;
}

static int parse_choice(const char *flag, const char *s, const char *a, const char *b, int *is_b)
{
    if (strcmp(s, a) && strcmp(s, b))
        return nb_error("%s must be %s or %s, got '%s'", flag, a, b, s), -1;
    *is_b = !strcmp(s, b);
    return 0;
}

/* 1 when the flag takes no value and was handled. */
static int switch_flag(struct quant_opts *p, const char *a)
{
    int *flags[] = {&p->symmetric, &p->no_scale, &p->no_clip, &p->fake, &p->quiet, &p->quiet};
    const char *names[] = {"--symmetric", "--no-scale", "--no-clip", "--fake-quant", "-q",
                           "--quiet"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (!strcmp(a, names[i]))
            return *flags[i] = 1;
    return 0;
}

static int value_flag(struct quant_opts *p, const char *a, const char *v)
{
    if (!strcmp(a, "-m") || !strcmp(a, "--model"))
        p->model = v;
    else if (!strcmp(a, "--calib"))
        p->calib = v;
    else if (!strcmp(a, "-o") || !strcmp(a, "--output"))
        p->out = v;
    else if (!strcmp(a, "--bits")) {
        if (strcmp(v, "3") && strcmp(v, "4"))
            return nb_error("--bits must be 4 or 3, got '%s'", v), -1;
        p->bits = atol(v);
    } else if (!strcmp(a, "--group"))
        return parse_group(v, &p->group);
    else if (!strcmp(a, "--method"))
        return parse_choice(a, v, "awq", "rtn", &p->rtn);
    else if (!strcmp(a, "--scale"))
        return parse_choice(a, v, "duo", "x", &p->x_only);
    else if (!strcmp(a, "--calib-tokens"))
        return nb_parse_int(a, v, 1, 1L << 26, &p->calib_tokens);
    else if (!strcmp(a, "-t") || !strcmp(a, "--threads"))
        return nb_parse_int(a, v, 1, 256, &p->threads);
    else
        return nb_error("quantize: unknown option '%s' (see --help)", a), -1;
    return 0;
}

static int parse(struct quant_opts *p, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (nb_is_help(a))
            return fputs(help, stdout), 1;
        if (switch_flag(p, a))
            continue;
        if (!(v = nb_arg(argc, argv, &i)) || value_flag(p, a, v))
            return -1;
    }
    if (!p->model || !p->out)
        return nb_error("quantize needs -m MODEL and -o OUT (see nibble quantize --help)"), -1;
    if (!p->rtn && !p->calib)
        return nb_error("AWQ needs calibration text: --calib TEXT (or --method rtn)"), -1;
    return 0;
}

/* A Hugging Face folder goes through the converter into a temporary file,
 * which is unlinked as soon as it is mapped. */
static int convert_folder(const char *dir, char *path, size_t cap, int quiet)
{
    const char *base = getenv("TMPDIR");
    char tmp_dir[256];
    snprintf(tmp_dir, sizeof tmp_dir, "%s/nibble-hf-XXXXXX", base ? base : "/tmp");
    if (!mkdtemp(tmp_dir))
        return nb_error("cannot create a temporary folder in %s", base ? base : "/tmp");
    snprintf(path, cap, "%s/model.nib", tmp_dir);
    nb_convert_opts o = {.out_dtype = -1, .quiet = quiet};
    nb_err e = {{0}};
    if (nb_import_hf(dir, path, &o, &e)) {
        rmdir(tmp_dir);
        return nb_error("%s", e.msg);
    }
    return 0;
}

static void remove_converted(const char *path)
{
    char dir[300];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    unlink(path);
    if (slash) {
        *slash = 0;
        rmdir(dir);
    }
}

static int open_model(const struct quant_opts *p, nb_model *m)
{
    struct stat st;
    char converted[300] = "";
    nb_err e = {{0}};
    if (stat(p->model, &st))
        return nb_error("cannot open '%s': no such file or directory", p->model);
    if (S_ISDIR(st.st_mode) && convert_folder(p->model, converted, sizeof converted, p->quiet))
        return 1;
    int rc = nb_model_open(m, converted[0] ? converted : p->model, &e);
    if (converted[0])
        remove_converted(converted); /* the mapping keeps the data */
    return rc ? nb_error("%s", e.msg) : 0;
}

static int check_not_quantized(const nb_model *m, const char *path)
{
    for (uint32_t i = 0; i < m->n_tensors; i++) {
        const struct nb_tensor_entry *t =
            (const void *)((const uint8_t *)m->table + (size_t)i * m->header->entry_size);
        if (nb_dtype_packed(t->dtype))
            return nb_error("'%s' is already quantized (%s is %s): quantize the original model",
                            path, t->name, nb_dtype_name(t->dtype));
    }
    return 0;
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
static int load_calib(const struct quant_opts *p, const nb_model *m, int32_t **ids,
                      size_t *n_tokens, size_t *block)
{
    nb_err e = {{0}};
    size_t size = 0, n = 0;
    *block = m->meta.max_ctx < BLOCK ? m->meta.max_ctx : BLOCK;
    if ((size_t)p->calib_tokens < *block)
        return nb_error("--calib-tokens %ld is less than one block of %zu tokens", p->calib_tokens,
                        *block);
    size_t want = (size_t)p->calib_tokens / *block;
    char *text = nb_read_file(p->calib, (size_t)1 << 31, &size, &e);
    nb_tokenizer *tok = text ? nb_tok_load_bytes(m->vocab, m->vocab_size, &e) : NULL;
    int rc = 0;
    if (!tok)
        rc = nb_error("%s", e.msg);
    else if (!size)
        rc = nb_error("calibration text '%s' is empty", p->calib);
    else if (tokenize(tok, text, size, want * *block, ids, &n, &e))
        rc = nb_error("calibration text %s: %s", p->calib, e.msg);
    else if (n < *block)
        rc = nb_error("calibration text '%s' has %zu tokens, fewer than one block of %zu",
                      p->calib, n, *block);
    free(text);
    nb_tok_free(tok);
    if (rc)
        return rc;
    size_t have = n / *block;
    if (have < want)
        say("warning", "calibration text gives %zu blocks of %zu tokens, fewer than the %zu "
                       "asked for", have, *block, want);
    if (*block < BLOCK)
        say("note", "the model's context is %u tokens: calibration blocks of %zu",
            m->meta.max_ctx, *block);
    *n_tokens = (have < want ? have : want) * *block;
    return 0;
}

static void describe(const struct quant_opts *p, const nb_awq_opts *o, size_t n_tokens,
                     size_t block, int threads)
{
    int searched = o->scales || o->clip;
    printf("%s INT%ld, %s%s", searched ? "AWQ" : "RTN", p->bits, p->group ? "group " : "per row",
           p->symmetric ? ", symmetric" : "");
    if (p->group)
        printf("%ld%s", p->group, p->symmetric ? "" : " with zero points");
    if (searched)
        printf("; scales: %s; clip: %s; %zu calibration tokens (%zu blocks of %zu)",
               !o->scales ? "off" : o->duo ? "duo" : "activations only", o->clip ? "on" : "off",
               n_tokens, n_tokens / block, block);
    printf("; %d thread%s\n", threads, threads > 1 ? "s" : "");
}

static int run(const struct quant_opts *p, const nb_model *m, const int32_t *ids, size_t n_tokens,
               size_t block, double t0)
{
    nb_awq_opts o = {
        .q = {.bits = (int)p->bits, .group = (int)p->group, .symmetric = p->symmetric},
        .scales = !p->rtn && !p->no_scale,
        .duo = !p->x_only,
        .clip = !p->rtn && !p->no_clip,
        .output = p->fake ? NB_AWQ_DEQUANT : NB_AWQ_PACKED,
        .quiet = p->quiet,
        .report = stdout,
    };
    int threads = p->threads ? (int)p->threads : nb_cpu_count();
    nb_pool *pool = nb_pool_create(threads);
    if (!pool)
        return nb_error("cannot start %d threads", threads);
    describe(p, &o, n_tokens, block, threads);
    nb_err e = {{0}};
    int rc = nb_awq_quantize(m, ids, n_tokens, block, p->out, &o, pool, &e);
    nb_pool_free(pool);
    if (rc)
        return nb_error("%s", e.msg);
    printf("quantized %u layers in %.1f s\n", m->meta.n_layers, nb_now() - t0);
    if (!p->quiet)
        fprintf(stderr, "wrote %s\n", p->out);
    return 0;
}

int cmd_quantize(int argc, char **argv)
{
    struct quant_opts p = {.bits = 4, .group = 128, .calib_tokens = DEFAULT_TOKENS};
    double t0 = nb_now();
    int rc = parse(&p, argc, argv);
    if (rc)
        return rc < 0;
    nb_model m;
    if (open_model(&p, &m))
        return 1;
    int32_t *ids = NULL;
    size_t n_tokens = 0, block = BLOCK;
    rc = check_not_quantized(&m, p.model);
    if (!rc && !p.rtn && !(p.no_scale && p.no_clip))
        rc = load_calib(&p, &m, &ids, &n_tokens, &block);
    if (!rc)
        rc = run(&p, &m, ids, n_tokens, block, t0);
    free(ids);
    nb_model_close(&m);
    return rc;
}
