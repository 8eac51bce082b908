#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../runtime/sampler.h"
#include "cli.h"
#include "progress.h"

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
    "  --temp T           temperature, 0 = greedy (default 0.8)\n"
    "  --top-k K          keep the K likeliest tokens, 0 = off (default 40)\n"
    "  --top-p P          keep the smallest set of probability >= P (default 0.95)\n"
    "  --seed S           random seed (default: from the clock, printed on stderr)\n"
    "  --ignore-eos       keep going past the end-of-text token\n"
    "  --ids              print token ids, one per line, instead of text\n"
    "  -q, --quiet        no statistics on stderr\n";

struct gen_opts {
    const char *model, *prompt;
    long n, ctx;
    nb_sampler_opts s;
    int ignore_eos, ids, quiet, seeded;
};

static int parse_value(struct gen_opts *g, const char *a, const char *v)
{
    double d;
    long l;
    if (!strcmp(a, "-m") || !strcmp(a, "--model"))
        g->model = v;
    else if (!strcmp(a, "-p") || !strcmp(a, "--prompt"))
        g->prompt = v;
    else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict"))
        return nb_parse_int(a, v, 1, 1000000, &g->n);
    else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size"))
        return nb_parse_int(a, v, 1, 1 << 22, &g->ctx);
    else if (!strcmp(a, "--temp")) {
        if (nb_parse_float(a, v, 0, 100, &d))
            return -1;
        g->s.temp = (float)d;
    } else if (!strcmp(a, "--top-p")) {
        if (nb_parse_float(a, v, 1e-9, 1, &d))
            return -1;
        g->s.top_p = (float)d;
    } else if (!strcmp(a, "--top-k")) {
        if (nb_parse_int(a, v, 0, 1 << 30, &l))
            return -1;
        g->s.top_k = (int)l;
    } else if (!strcmp(a, "--seed")) {
        if (nb_parse_int(a, v, 0, 0x7fffffffffffffffL, &l))
            return -1;
        g->s.seed = (uint64_t)l;
        g->seeded = 1;
    } else
        return nb_error("generate: unknown option '%s' (see --help)", a), -1;
    return 0;
}

/* 0 to go on, 1 when --help was printed, -1 on a bad argument. */
static int parse(struct gen_opts *g, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (nb_is_help(a))
            return fputs(help, stdout), 1;
        if (!strcmp(a, "--ignore-eos"))
            g->ignore_eos = 1;
        else if (!strcmp(a, "--ids"))
            g->ids = 1;
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet"))
            g->quiet = 1;
        else if (!(v = nb_arg(argc, argv, &i)) || parse_value(g, a, v))
            return -1;
    }
    if (!g->model)
        return nb_error("generate needs -m MODEL (see nibble generate --help)"), -1;
    if (!g->seeded)
        g->s.seed = (uint64_t)time(NULL);
    return 0;
}

static int emit(nb_detok *d, const struct gen_opts *g, int id)
{
    char buf[512];
    size_t n = g->ids ? (size_t)snprintf(buf, sizeof buf, "%d\n", id)
                      : nb_detok_push(d, id, buf, sizeof buf);
    if (n && (fwrite(buf, 1, n, stdout) != n || fflush(stdout)))
        return -1;
    return 0;
}

struct run {
    nb_session *s;
    int32_t *ids;
    size_t n_ids;
    int generated;
    double t_prompt, t_gen;
};

static int prefill(struct run *r)
{
    double t0 = nb_now();
    for (size_t i = 0; i + 1 < r->n_ids; i++)
        nb_llama_forward(&r->s->llama, r->ids[i], (int)i);
    r->t_prompt = nb_now() - t0;
    return 0;
}

static int decode(struct run *r, const struct gen_opts *g, nb_sampler *smp)
{
    nb_detok d;
    nb_detok_init(&d, r->s->tok);
    d.at_start = !g->prompt || !g->prompt[0];
    int pos = (int)r->n_ids - 1, tok = r->ids[pos], eos = nb_tok_eos(r->s->tok);
    double t0 = nb_now();
    for (; r->generated < g->n && !nb_interrupted(); r->generated++) {
        if (pos >= r->s->llama.ctx) {
            fprintf(stderr, "\nnibble: stopping: the context of %d tokens is full\n",
                    r->s->llama.ctx);
            break;
        }
        tok = nb_sample(smp, nb_llama_forward(&r->s->llama, tok, pos++));
        if (tok == eos && !g->ignore_eos)
            break;
        if (emit(&d, g, tok))
            return nb_error("cannot write the output (closed pipe?)");
    }
    r->t_gen = nb_now() - t0;
    char tail[16];
    size_t n = g->ids ? 0 : nb_detok_flush(&d, tail, sizeof tail);
    fwrite(tail, 1, n, stdout);
    if (!g->ids)
        putchar('\n');
    if (nb_interrupted())
        fputs("nibble: interrupted\n", stderr);
    return fflush(stdout) ? nb_error("cannot write the output") : 0;
}

static int encode_prompt(struct run *r, const struct gen_opts *g)
{
    nb_err e = {{0}};
    const char *p = g->prompt ? g->prompt : "";
    if (nb_tok_encode(r->s->tok, p, strlen(p), 1, &r->ids, &r->n_ids, &e))
        return nb_error("prompt: %s", e.msg);
    if (r->n_ids > (size_t)r->s->llama.ctx)
        return nb_error("the prompt is %zu tokens, longer than the context of %d (raise -c or "
                        "shorten it)",
                        r->n_ids, r->s->llama.ctx);
    if (!g->ids && fputs(p, stdout) == EOF)
        return nb_error("cannot write the output");
    return 0;
}

static void report(const struct run *r, const struct gen_opts *g)
{
    if (g->quiet)
        return;
    fprintf(stderr, "nibble: seed %llu; prompt %zu tokens in %.2fs; generated %d tokens, "
                    "%.1f tokens/s\n",
            (unsigned long long)g->s.seed, r->n_ids, r->t_prompt, r->generated,
            r->t_gen > 0 ? r->generated / r->t_gen : 0.0);
}

int cmd_generate(int argc, char **argv)
{
    struct gen_opts g = {.n = 256, .s = {.temp = 0.8f, .top_k = 40, .top_p = 0.95f}};
    int rc = parse(&g, argc, argv);
    if (rc)
        return rc < 0;
    nb_session s;
    nb_err e = {{0}};
    if (nb_session_open(&s, g.model, (int)g.ctx, &e))
        return nb_error("%s", e.msg);
    nb_sampler smp;
    struct run r = {.s = &s};
    if (nb_sampler_init(&smp, (int)s.model.meta.vocab_size, &g.s, &e))
        rc = nb_error("%s", e.msg);
    else if (!(rc = encode_prompt(&r, &g))) {
        nb_catch_interrupt();
        prefill(&r);
        rc = decode(&r, &g, &smp);
        report(&r, &g);
    }
    free(r.ids);
    nb_sampler_free(&smp);
    nb_session_close(&s);
    return rc ? 1 : (nb_interrupted() ? 130 : 0);
}
