/* nibble export: a quantized .nib written in another program's format.
 * One target so far, AutoAWQ's "gemm" Hugging Face folder
 * (tools/export_autoawq.c, docs/export.md). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "export/export_autoawq.h"

int cmd_export(int argc, char **argv);

static void help(void)
{
    fputs("usage: nibble export MODEL.nib [--to autoawq] -o OUTDIR [options]\n"
          "\n"
          "Writes a 4-bit model (INT4 with zero points, groups of 32, 64 or 128) as an\n"
          "AutoAWQ \"gemm\" folder that transformers and vLLM load: config.json with its\n"
          "quantization_config, model.safetensors (qweight, qzeros, scales; the rest in\n"
          "fp16), generation_config.json and the tokenizer. OUTDIR must not exist; it is\n"
          "written as OUTDIR.tmp<pid> and renamed when complete (removed on failure or\n"
          "Ctrl-C; after a kill -9, by the next export to OUTDIR). `nibble convert OUTDIR`\n"
          "gives back the same packed weights.\n"
          "  --to FORMAT        autoawq (the only one, and the default)\n"
          "  -o, --output DIR   the folder to write\n"
          "  --tokenizer DIR    copy the tokenizer files (tokenizer.json,\n"
          "                     tokenizer_config.json, ...) from DIR, the folder the model\n"
          "                     was converted from, or rebuild tokenizer.json from the GGUF\n"
          "                     file it was converted from; its tokenizer must be the model's.\n"
          "                     Needed for a BPE tokenizer (the .nib keeps a parsed form\n"
          "                     from which the original tokenizer.json cannot be rebuilt);\n"
          "                     a SentencePiece model is written as tokenizer.model\n"
          "  --keep-dtypes      write the unquantized tensors as the .nib stores them\n"
          "                     (f32 norms, bf16 or f32 embeddings) instead of fp16, and a\n"
          "                     quantized output layer dequantized to f32: exact\n"
          "  -q, --quiet        no progress or notes on stderr\n"
          "Refused, with one line: INT3, one group per row, other group sizes, dimensions\n"
          "not whole groups or not multiples of 8, a model that is not quantized.\n",
          stdout);
}

struct args {
    nb_export_opts o;
    const char *in, *out, *to;
};

/* 0: parsed, 1: --help shown, -1: bad (after an error line). */
static int parse(struct args *p, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (nb_is_help(a))
            return help(), 1;
        if (!strcmp(a, "-q") || !strcmp(a, "--quiet"))
            p->o.quiet = 1;
        else if (!strcmp(a, "--keep-dtypes"))
            p->o.keep_dtypes = 1;
        else if (a[0] != '-' || !a[1]) {
            if (p->in)
                return nb_error("export: more than one model ('%s' and '%s')", p->in, a), -1;
            p->in = a;
        } else if (!(v = nb_arg(argc, argv, &i)))
            return -1;
        else if (!strcmp(a, "-o") || !strcmp(a, "--output"))
            p->out = v;
        else if (!strcmp(a, "--to"))
            p->to = v;
        else if (!strcmp(a, "--tokenizer"))
            p->o.tokenizer_dir = v;
        else
            return nb_error("export: unknown option '%s' (see nibble export --help)", a), -1;
    }
    if (!p->in || !p->out)
        return nb_error("export needs a MODEL.nib and -o OUTDIR (see nibble export --help)"), -1;
    if (strcmp(p->to, "autoawq"))
        return nb_error("--to must be autoawq, got '%s'", p->to), -1;
    return 0;
}

int cmd_export(int argc, char **argv)
{
    struct args p = {.to = "autoawq"};
    int rc = parse(&p, argc, argv);
    if (rc)
        return rc < 0;
    nb_err e = {{0}};
    if (nb_export_autoawq(p.in, p.out, &p.o, &e))
        return nb_error("%s", e.msg);
    if (!p.o.quiet)
        fprintf(stderr, "wrote %s\n", p.out);
    return 0;
}
