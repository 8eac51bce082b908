/* nibble ppl: perplexity as in the AWQ/GPTQ evaluations (runtime/ppl.h
 * scores; this file reads the text, shows progress and prints). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "import/convert.h"
#include "ppl.h"
#include "progress.h"

static const char help[] =
    "usage: nibble ppl -m MODEL.nib -f TEXT [-c N] [--windows W]\n"
    "\n"
    "Prints the perplexity of MODEL on a UTF-8 text file, with its standard error.\n"
    "  -m, --model FILE   the .nib model\n"
    "  -f, --file FILE    the text (e.g. wiki.test.raw)\n"
    "  -c, --ctx-size N   window length in tokens (default: 512, or the model's\n"
    "                     maximum if smaller)\n"
    "  --windows W        evaluate only the first W windows (default: all)\n"
    "  -q, --quiet        no progress on stderr\n";

struct ppl_opts {
    const char *model, *file;
    nb_ppl_opts ppl;
    nb_session_opts run;
};

static int parse_value(struct ppl_opts *p, const char *a, const char *v)
{
    int r = nb_run_flag(&p->run, a, v);
    if (r <= 0)
        return r;
    if (!strcmp(a, "-m") || !strcmp(a, "--model"))
        p->model = v;
    else if (!strcmp(a, "-f") || !strcmp(a, "--file"))
        p->file = v;
    else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size"))
        return nb_parse_int(a, v, 2, 1 << 22, &p->ppl.ctx);
    else if (!strcmp(a, "--windows"))
        return nb_parse_int(a, v, 1, 1L << 30, &p->ppl.windows);
    else
        return nb_error("ppl: unknown option '%s' (see --help)", a), -1;
    return 0;
}

static int parse(struct ppl_opts *p, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (nb_is_help(a))
            return fputs(help, stdout), putchar('\n'), nb_run_help(stdout), 1;
        if (!strcmp(a, "-q") || !strcmp(a, "--quiet"))
            p->ppl.quiet = 1;
        else if (!nb_run_switch(&p->run, a) &&
                 (!(v = nb_arg(argc, argv, &i)) || parse_value(p, a, v)))
            return -1;
    }
    if (!p->model || !p->file)
        return nb_error("ppl needs -m MODEL and -f TEXT (see nibble ppl --help)"), -1;
    return 0;
}

/* The engine's progress, drawn by nb_progress. */
static void on_progress(void *ctx, long done, long total)
{
    nb_progress *p = ctx;
    if (!done)
        nb_progress_start(p, p->what, (uint64_t)total, p->quiet);
    else
        nb_progress_update(p, (uint64_t)done);
    if (done == total)
        nb_progress_done(p);
}

int nb_ppl_eval(nb_session *s, const int32_t *ids, size_t n_ids, const nb_ppl_opts *o,
                const char *what, nb_ppl *r)
{
    nb_progress prog = {.what = what, .quiet = o->quiet};
    nb_ppl_params p = {.ctx = o->ctx, .windows = o->windows, .progress = on_progress,
                       .should_stop = nb_stop_on_interrupt, .user = &prog};
    nb_err e = {{0}};
    nb_catch_interrupt();
    return nb_ppl_score(s, ids, n_ids, &p, r, &e) ? nb_error("%s", e.msg) : 0;
}

int nb_ppl_text(nb_session *s, const char *path, nb_ppl_opts *o, int32_t **ids, size_t *n_ids)
{
    if (!o->ctx)
        o->ctx = s->net.ctx < 512 ? s->net.ctx : 512;
    if (o->ctx > s->net.ctx)
        return nb_error("a window of %ld tokens is longer than the model's context of %d", o->ctx,
                        s->net.ctx);
    nb_err e = {{0}};
    size_t size;
    char *text = nb_read_file(path, (size_t)1 << 31, &size, &e);
    if (!text)
        return nb_error("%s", e.msg);
    *ids = NULL, *n_ids = 0;
    int rc = nb_tok_encode(s->tok, text, size, 1, ids, n_ids, &e);
    free(text);
    return rc ? nb_error("%s: %s", path, e.msg) : 0;
}

int cmd_ppl(int argc, char **argv)
{
    struct ppl_opts p = {0};
    int rc = parse(&p, argc, argv);
    if (rc)
        return rc < 0;
    nb_session s;
    nb_err e = {{0}};
    if (nb_session_open_with(&s, p.model, 0, &p.run, &e))
        return nb_error("%s", e.msg);
    size_t n_ids = 0;
    int32_t *ids = NULL;
    nb_ppl r;
    rc = nb_ppl_text(&s, p.file, &p.ppl, &ids, &n_ids) ||
         nb_ppl_eval(&s, ids, n_ids, &p.ppl, "perplexity", &r);
    if (!rc)
        printf("PPL = %.4f +/- %.4f  (%ld tokens scored, %ld windows of %ld)\n", r.ppl, r.se,
               r.tokens, r.windows, r.ctx);
    free(ids);
    nb_session_close(&s);
    if (rc)
        return nb_interrupted() ? 130 : 1; /* Ctrl-C: the status a shell expects, as generate */
    return fflush(stdout) || ferror(stdout)
               ? nb_error("cannot write the output: %s", strerror(errno))
               : 0;
}
