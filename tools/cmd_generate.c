/* nibble generate: continues a prompt through the engine's generation
 * loop (runtime/gen.h) and streams the text, or the ids, to stdout. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/gen.h"
#include "cli.h"

static const char help[] =
    "usage: nibble generate -m MODEL.nib [-p PROMPT] [options]\n"
    "\n"
    "Continues PROMPT (or starts from nothing) and streams the text to stdout.\n"
    "  -m, --model FILE   the .nib model\n"
    "  -p, --prompt TEXT  text to continue (default: empty)\n"
    "  -n, --n-predict N  tokens to generate, 1..1000000 (default 256); stops early at\n"
    "                     end of text or when the context is full (a notice says so)\n"
    "  -c, --ctx-size N   context in tokens (default: the model's maximum); a prompt\n"
    "                     that does not fit is an error, never silently cut\n"
    "  --ignore-eos       keep going past the end-of-text tokens\n"
    "  --ids              print token ids, one per line, instead of text\n"
    "  --margins          with --ids and --temp 0: after each id, a tab and how far\n"
    "                     its logit leads the runner-up's (how near a tie it was)\n"
    "  -q, --quiet        no statistics on stderr\n";

static const nb_sampler_opts defaults = {.temp = 0.8f, .top_k = 40, .top_p = 0.95f,
                                         .repeat_penalty = 1.0f, .repeat_last_n = 64};

struct gen_opts {
    const char *model, *prompt;
    long n, ctx;
    nb_sampling s;
    nb_session_opts run;
    int ignore_eos, ids, margins, quiet;
};

static int parse_value(struct gen_opts *g, const char *a, const char *v)
{
    int r = nb_sampling_flag(&g->s, a, v);
    if (r <= 0 || (r = nb_run_flag(&g->run, a, v)) <= 0)
        return r;
    if (!strcmp(a, "-m") || !strcmp(a, "--model"))
        g->model = v;
    else if (!strcmp(a, "-p") || !strcmp(a, "--prompt"))
        g->prompt = v;
    else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict"))
        return nb_parse_int(a, v, 1, 1000000, &g->n);
    else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size"))
        return nb_parse_int(a, v, 1, 1 << 22, &g->ctx);
    else
        return nb_error("generate: unknown option '%s' (see --help)", a), -1;
    return 0;
}

/* 0 to go on, 1 when --help was printed, -1 on a bad argument. */
static int parse(struct gen_opts *g, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (nb_is_help(a))
            return fputs(help, stdout), nb_sampling_help(stdout, &defaults), putchar('\n'),
                   nb_run_help(stdout), 1;
        if (nb_run_switch(&g->run, a))
            continue;
        if (!strcmp(a, "--ignore-eos"))
            g->ignore_eos = 1;
        else if (!strcmp(a, "--ids"))
            g->ids = 1;
        else if (!strcmp(a, "--margins"))
            g->margins = 1;
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet"))
            g->quiet = 1;
        else if (!(v = nb_arg(argc, argv, &i)) || parse_value(g, a, v))
            return -1;
    }
    if (!g->model)
        return nb_error("generate needs -m MODEL (see nibble generate --help)"), -1;
    if (g->margins && (!g->ids || g->s.o.temp != 0))
        return nb_error("--margins needs --ids and --temp 0 (greedy)"), -1;
    nb_sampling_seed(&g->s);
    return 0;
}

struct run {
    nb_session *s;
    const nb_sampler *smp;
    const struct gen_opts *g;
    nb_detok d;
    int32_t *ids;
    size_t n_ids;
    nb_gen_stats st;
    int write_errno; /* why the output could not be written */
};

/* A reader that went away (EPIPE: `| head`) ends the text quietly, as in
 * chat; any other write error is one. */
static int write_failed(int err)
{
    return err == EPIPE ? 0 : nb_error("cannot write the output: %s", strerror(err));
}

static int emit(void *ctx, int id)
{
    struct run *r = ctx;
    char buf[32];
    size_t n = 0;
    const char *text = buf;
    if (r->g->margins)
        n = (size_t)snprintf(buf, sizeof buf, "%d\t%.6g\n", id, (double)r->smp->gap);
    else if (r->g->ids)
        n = (size_t)snprintf(buf, sizeof buf, "%d\n", id);
    else if (!(text = nb_detok_next(&r->d, id, &n)))
        return r->write_errno = ENOMEM, -1;
    if (n && (fwrite(text, 1, n, stdout) != n || fflush(stdout)))
        return r->write_errno = errno, -1;
    return 0;
}

static int decode(struct run *r, nb_sampler *smp)
{
    const struct gen_opts *g = r->g;
    nb_gen gen;
    nb_err e = {{0}};
    if (nb_gen_init(&gen, r->s, smp, &e) || nb_gen_prompt(&gen, r->ids, (int)r->n_ids, &e)) {
        nb_gen_free(&gen);
        return nb_error("%s", e.msg);
    }
    if (nb_detok_init(&r->d, r->s->tok)) {
        nb_gen_free(&gen);
        return nb_error("out of memory");
    }
    r->d.at_start = !g->prompt || !g->prompt[0];
    nb_gen_opts o = {.max_tokens = (int)g->n, .ignore_eos = g->ignore_eos,
                     .should_stop = nb_stop_on_interrupt};
    nb_gen_sink sink = {.token = emit, .ctx = r};
    nb_gen_run(&gen, &o, &sink, &r->st);
    nb_gen_free(&gen);
    if (r->st.stop == NB_STOP_WRITE)
        return write_failed(r->write_errno);
    if (r->st.stop == NB_STOP_ERROR) { /* end the text's line, then say why */
        if (!g->ids)
            putchar('\n');
        return fflush(stdout), nb_error("%s", r->st.err.msg);
    }
    if (r->st.stop == NB_STOP_FULL)
        fprintf(stderr, "\nnibble: stopping: the context of %d tokens is full\n",
                r->s->net.ctx);
    size_t n = 0;
    const char *tail = g->ids ? NULL : nb_detok_end(&r->d, &n);
    if (n)
        fwrite(tail, 1, n, stdout);
    if (!g->ids)
        putchar('\n');
    if (r->st.stop == NB_STOP_CANCEL)
        fputs("nibble: interrupted\n", stderr);
    return fflush(stdout) ? write_failed(errno) : 0;
}

static int encode_prompt(struct run *r)
{
    nb_err e = {{0}};
    const char *p = r->g->prompt ? r->g->prompt : "";
    if (nb_tok_encode(r->s->tok, p, strlen(p), 1, &r->ids, &r->n_ids, &e))
        return nb_error("prompt: %s", e.msg);
    if (!r->n_ids) /* a BPE model that adds no BOS (Qwen): nothing to start from */
        return nb_error("the prompt is empty and the model adds no BOS to start from: give -p "
                        "TEXT");
    if (r->n_ids > (size_t)r->s->net.ctx)
        return nb_error("the prompt is %zu tokens, longer than the context of %d (raise -c or "
                        "shorten it)",
                        r->n_ids, r->s->net.ctx);
    if (!r->g->ids && fputs(p, stdout) == EOF)
        return nb_error("cannot write the output");
    return 0;
}

static void report(const struct run *r)
{
    if (r->g->quiet)
        return;
    double t_gen = r->st.t_total - r->st.t_prefill;
    fprintf(stderr, "nibble: seed %llu; prompt %zu tokens in %.2fs; generated %d tokens, "
                    "%.1f tokens/s (%s kernels, %d threads)\n",
            (unsigned long long)r->g->s.o.seed, r->n_ids, r->st.t_prefill,
            r->st.n_reply, t_gen > 0 ? r->st.n_reply / t_gen : 0.0,
            nb_net_kernels(&r->s->net), nb_net_threads(&r->s->net));
}

int cmd_generate(int argc, char **argv)
{
    struct gen_opts g = {.n = 256, .s = {.o = defaults}};
    int rc = parse(&g, argc, argv);
    if (rc)
        return rc < 0;
    nb_session s;
    nb_err e = {{0}};
    if (nb_session_open_with(&s, g.model, (int)g.ctx, &g.run, &e))
        return nb_error("%s", e.msg);
    nb_sampler smp;
    struct run r = {.s = &s, .smp = &smp, .g = &g};
    if (nb_sampler_init(&smp, (int)s.model.meta.vocab_size, &g.s.o, &e))
        rc = nb_error("%s", e.msg);
    else if (!(rc = encode_prompt(&r))) {
        nb_catch_interrupt();
        rc = decode(&r, &smp);
        if (!rc)
            report(&r);
    }
    free(r.ids);
    nb_detok_free(&r.d);
    nb_sampler_free(&smp);
    nb_session_close(&s);
    return rc ? 1 : (r.st.stop == NB_STOP_CANCEL ? 130 : 0);
}
