/* nibble quantize: AWQ (or round-to-nearest) INT4/INT3 quantization of a
 * model's decoder linears (and INT4 of its output layer), calibrated on a
 * text file. Everything that can
 * be wrong with the input is checked before the output is opened, and the
 * output is written atomically: a failed or interrupted run leaves none.
 * The flags and the pipeline are shared with convert --quantize
 * (tools/quant_flags.h). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "awq/quant_flags.h"
#include "cli.h"
#include "import/convert.h"

static void help(void)
{
    fputs("usage: nibble quantize -m MODEL --calib TEXT -o OUT.nib [options]\n"
          "\n"
          "Quantizes the decoder linears and the output layer of MODEL with AWQ\n"
          "(activation-aware weight quantization) and writes OUT atomically; the\n"
          "embedding and the norms stay as they are (but for the scales folded into\n"
          "them). Progress goes to stderr; what the search decided (per layer: the alpha\n"
          "of each scale group, how much each linear was clipped) to stdout. nibble\n"
          "convert --quantize does the same on the way from a download.\n"
          "  -m, --model MODEL   a .nib (f32, f16 or bf16), or a Hugging Face folder\n"
          "                      (converted first, into a temporary file beside OUT that\n"
          "                      is removed at once)\n"
          "  -o, --output FILE   the quantized .nib to write\n"
          "  --method M          awq (default) or rtn: plain round to nearest, no --calib\n",
          stdout);
    nb_quant_help(stdout);
    fputs("  -q, --quiet         no progress on stderr\n", stdout);
}

struct args {
    const char *model, *out;
    int quiet;
    nb_quant q;
};

/* 0: parsed; -1: bad or unknown (after an error line). */
static int value_flag(struct args *p, const char *a, const char *v)
{
    if (!strcmp(a, "-m") || !strcmp(a, "--model"))
        p->model = v;
    else if (!strcmp(a, "-o") || !strcmp(a, "--output"))
        p->out = v;
    else if (!strcmp(a, "--method"))
        return nb_quant_method(&p->q, a, v);
    else
        return nb_quant_flag(&p->q, "quantize", a, v);
    return 0;
}

static int parse(struct args *p, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (nb_is_help(a))
            return help(), 1;
        if (!strcmp(a, "-q") || !strcmp(a, "--quiet"))
            p->quiet = 1;
        else if (!nb_quant_switch(&p->q, a) &&
                 (!(v = nb_arg(argc, argv, &i)) || value_flag(p, a, v)))
            return -1;
    }
    if (!p->model || !p->out)
        return nb_error("quantize needs -m MODEL and -o OUT (see nibble quantize --help)"), -1;
    nb_err e;
    if (nb_writer_check_path(p->out, &e))
        return nb_error("%s", e.msg), -1;
    return nb_quant_check(&p->q, "--method") ? -1 : 0;
}

/* A .nib is mapped; a Hugging Face folder goes through the converter. */
static int open_model(const struct args *p, nb_model *m)
{
    struct stat st;
    nb_err e = {{0}};
    if (stat(p->model, &st))
        return nb_error("cannot open '%s': %s", p->model, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        nb_convert_opts o = {.out_dtype = -1, .quiet = p->quiet};
        if (nb_hf_is_quantized(p->model))
            return nb_quant_refuse_autoawq(p->model);
        return nb_quant_open_converted(m, nb_import_hf, p->model, &o, p->out);
    }
    return nb_model_open(m, p->model, &e) ? nb_error("%s", e.msg) : 0;
}

int cmd_quantize(int argc, char **argv)
{
    struct args p = {0};
    nb_quant_init(&p.q);
    int rc = parse(&p, argc, argv);
    if (rc)
        return rc < 0;
    nb_model m;
    if (open_model(&p, &m))
        return 1;
    rc = nb_quant_model(&p.q, &m, p.model, p.out, p.quiet);
    nb_model_close(&m);
    return rc;
}
