/* nibble tokenize: a model's tokenizer on a text, from a .nib, a
 * tokenizer.json (or the folder that holds it) or a SentencePiece .model;
 * the flags follow llama.cpp's llama-tokenize. --jsonl turns a stream of
 * {"text": ...} lines into {"ids": [...]} lines, as the tokenizers
 * library's encode(text, add_special_tokens=False) gives them. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "import/convert.h"

static const char help[] =
    "usage: nibble tokenize -m MODEL (-p TEXT | -f FILE | --jsonl) [--ids] [--no-bos]\n"
    "\n"
    "Prints the tokens of a text: one line per token, its id and its piece.\n"
    "  -m, --model PATH   a .nib, a tokenizer.json or the folder holding it (as\n"
    "                     convert picks: tokenizer.model if it is the same tokenizer),\n"
    "                     or a SentencePiece .model\n"
    "  -p, --prompt TEXT  the text\n"
    "  -f, --file FILE    the text, from a file\n"
    "  --ids              only the ids, on one line: [1, 2, 3]\n"
    "  --no-bos           add nothing (default: what the model adds to a text: BOS,\n"
    "                     or what a tokenizer.json's post-processor adds)\n"
    "  --jsonl            read one JSON object {\"text\": ...} per line of stdin and\n"
    "                     write {\"ids\": [...]} per line, adding nothing; a bad line\n"
    "                     gets {\"error\": ...} and a line on stderr, and the exit\n"
    "                     code is 1\n";

struct tok_opts {
    const char *model, *prompt, *file;
    int ids, no_bos, jsonl;
};

/* 0 to go on, 1 when --help was printed, -1 on a bad argument. */
static int parse(struct tok_opts *o, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (nb_is_help(a))
            return fputs(help, stdout), 1;
        int *f = !strcmp(a, "--ids")      ? &o->ids
                 : !strcmp(a, "--no-bos") ? &o->no_bos
                 : !strcmp(a, "--jsonl")  ? &o->jsonl
                                          : NULL;
        const char **s = !strcmp(a, "-m") || !strcmp(a, "--model")    ? &o->model
                         : !strcmp(a, "-p") || !strcmp(a, "--prompt") ? &o->prompt
                         : !strcmp(a, "-f") || !strcmp(a, "--file")   ? &o->file
                                                                      : NULL;
        if (f)
            *f = 1;
        else if (!s)
            return nb_error("tokenize: unknown option '%s' (see --help)", a), -1;
        else if (!(v = nb_arg(argc, argv, &i)))
            return -1;
        else
            *s = v;
    }
    if (!o->model)
        return nb_error("tokenize needs -m MODEL (see nibble tokenize --help)"), -1;
    int sources = !!o->prompt + !!o->file + o->jsonl;
    if (sources != 1)
        return nb_error("tokenize needs one text: -p TEXT, -f FILE or --jsonl"), -1;
    if (o->jsonl && o->ids)
        return nb_error("tokenize: --jsonl writes ids already; drop --ids"), -1;
    return 0;
}

/* ---- the tokenizer ---- */

static int is_nib(const char *path)
{
    char magic[8];
    FILE *f = fopen(path, "rb");
    size_t got = f ? fread(magic, 1, sizeof magic, f) : 0;
    if (f)
        fclose(f);
    return got == sizeof magic && !memcmp(magic, NB_MAGIC, sizeof magic);
}

static nb_tokenizer *from_nib(const char *path, nb_err *e)
{
    nb_model m;
    if (nb_model_open(&m, path, e))
        return NULL;
    nb_err why;
    nb_tokenizer *t = nb_tok_load_bytes(m.vocab, m.vocab_size, &why);
    nb_model_close(&m);
    if (!t)
        nb_fail(e, "%s: %s", path, why.msg);
    return t;
}

static nb_tokenizer *open_tokenizer(const char *path, nb_err *e)
{
    struct stat st;
    if (stat(path, &st)) {
        nb_fail(e, "cannot open '%s': %s", path, strerror(errno));
        return NULL;
    }
    if (!S_ISDIR(st.st_mode) && is_nib(path))
        return from_nib(path, e);
    char *file = S_ISDIR(st.st_mode) ? nb_hf_tokenizer_path(path, e) : strdup(path);
    if (!file)
        return NULL;
    nb_tokenizer *t = NULL;
    size_t size;
    free(nb_tokenizer_file(file, &size, &t, e));
    free(file);
    return t;
}

/* ---- output ---- */

static void put_ids(FILE *out, const int32_t *ids, size_t n)
{
    fputc('[', out);
    for (size_t i = 0; i < n; i++)
        fprintf(out, "%s%d", i ? ", " : "", ids[i]);
    fputc(']', out);
}

static void put_pieces(const nb_tokenizer *t, const int32_t *ids, size_t n)
{
    char safe[1024];
    for (size_t i = 0; i < n; i++) {
        const char *p = nb_tok_piece(t, ids[i]);
        printf("%6d -> '%s'\n", ids[i], nb_utf8_escape(safe, sizeof safe, p ? p : ""));
    }
}

static int write_error(void)
{
    return nb_error("cannot write the output: %s", strerror(errno ? errno : EIO));
}

/* ---- one text ---- */

static int tokenize_text(const nb_tokenizer *t, const struct tok_opts *o)
{
    size_t len = 0;
    nb_err e;
    char *text = o->file ? nb_read_file(o->file, (size_t)1 << 31, &len, &e) : NULL;
    if (o->file && !text)
        return nb_error("%s", e.msg);
    const char *s = text ? text : o->prompt;
    int32_t *ids;
    size_t n;
    int rc = nb_tok_encode(t, s, text ? len : strlen(s), !o->no_bos, &ids, &n, &e);
    free(text);
    if (rc)
        return nb_error("%s: %s", o->file ? o->file : "prompt", e.msg);
    if (o->ids) {
        put_ids(stdout, ids, n);
        putchar('\n');
    } else {
        put_pieces(t, ids, n);
    }
    free(ids);
    return fflush(stdout) || ferror(stdout) ? write_error() : 0;
}

/* ---- --jsonl ---- */

/* {"error": msg} on stdout, "nibble: msg" on stderr. */
static void line_error(unsigned long line, const char *fmt, ...) NB_PRINTF(2, 3);

static void line_error(unsigned long line, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    int k = snprintf(msg, sizeof msg, "line %lu: ", line);
    vsnprintf(msg + k, sizeof msg - (size_t)k, fmt, ap);
    va_end(ap);
    nb_error("%s", msg);
    json_t *obj = json_pack("{s:s}", "error", msg);
    char *s = obj ? json_dumps(obj, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    printf("%s\n", s ? s : "{\"error\": \"out of memory\"}");
    free(s);
    json_decref(obj);
}

/* One line: 0 when it gave ids, 1 when it was bad (and said so). */
static int jsonl_line(const nb_tokenizer *t, const char *line, size_t len, unsigned long no)
{
    size_t bad = nb_utf8_bad_offset((const unsigned char *)line, len);
    if (bad < len)
        return line_error(no, "invalid UTF-8 at byte offset %zu (byte 0x%02X)", bad,
                          (unsigned char)line[bad]), 1;
    json_error_t jerr;
    json_t *doc = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    json_t *text = json_object_get(doc, "text");
    if (!doc || !json_is_object(doc) || !json_is_string(text)) {
        if (!doc)
            line_error(no, "not JSON: %s (column %d)", jerr.text, jerr.column);
        else
            line_error(no, "not an object with a \"text\" string");
        json_decref(doc);
        return 1;
    }
    int32_t *ids;
    size_t n;
    nb_err e;
    int rc = nb_tok_encode(t, json_string_value(text), json_string_length(text), 0, &ids, &n, &e);
    json_decref(doc);
    if (rc)
        return line_error(no, "%s", e.msg), 1;
    fputs("{\"ids\": ", stdout);
    put_ids(stdout, ids, n);
    fputs("}\n", stdout);
    free(ids);
    return 0;
}

static int tokenize_jsonl(const nb_tokenizer *t)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    unsigned long no = 0;
    int bad = 0;
    while ((got = getline(&line, &cap, stdin)) >= 0) {
        size_t len = (size_t)got;
        if (len && line[len - 1] == '\n')
            len--;
        bad |= jsonl_line(t, line, len, ++no);
        if (fflush(stdout) || ferror(stdout)) {
            free(line);
            return write_error();
        }
    }
    free(line);
    if (ferror(stdin))
        return nb_error("cannot read stdin: %s", strerror(errno));
    return bad;
}

int cmd_tokenize(int argc, char **argv)
{
    struct tok_opts o = {0};
    int rc = parse(&o, argc, argv);
    if (rc)
        return rc < 0;
    nb_err e = {{0}};
    nb_tokenizer *t = open_tokenizer(o.model, &e);
    if (!t)
        return nb_error("%s", e.msg);
    rc = o.jsonl ? tokenize_jsonl(t) : tokenize_text(t, &o);
    nb_tok_free(t);
    return rc;
}
