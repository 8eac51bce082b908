/* nibble convert: one foreign model into one nibble file, quantized on the
 * way with --quantize (the flags and pipeline of nibble quantize, from
 * tools/quant_flags.h), so one command takes a download to a ready file. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "awq/quant_flags.h"
#include "cli.h"
#include "import/convert.h"
#include "import/gguf.h"

static void help(void)
{
    fputs("usage: nibble convert [--from llama2c|hf|autoawq|ct|gguf] INPUT -o OUT.nib [options]\n"
          "       nibble convert INPUT -o OUT.nib --quantize awq|rtn [--calib TEXT] [...]\n"
          "\n"
          "Converts a model into one nibble file (written atomically: OUT appears\n"
          "only when complete), quantizing it on the way with --quantize.\n"
          "  INPUT               a llama2.c v0 checkpoint (.bin) or a Hugging Face folder\n"
          "                      (fp32/fp16/bf16, or an AutoAWQ 4-bit gemm/gemv checkpoint:\n"
          "                      its weights are repacked exactly, never re-quantized),\n"
          "                      or a GGUF file (llama.cpp; see docs/gguf.md)\n"
          "  --from FORMAT       llama2c, hf, autoawq, ct or gguf (default: hf for a folder,\n"
          "                      autoawq when its config has a quantization_config; gguf\n"
          "                      for a file that starts with GGUF, else llama2c)\n"
          "                      ct: a compressed-tensors (llm-compressor) pack-quantized\n"
          "                      4-bit folder, repacked exactly (also detected from its\n"
          "                      quant_method; see docs/compressed-tensors.md)\n"
          "  -o, --output FILE   the .nib file to write\n"
          "  --tokenizer FILE    a SentencePiece .model or a tokenizer.json (default:\n"
          "                      tokenizer.model beside a llama2.c checkpoint; in a folder,\n"
          "                      tokenizer.model if it is a SentencePiece model as large as\n"
          "                      tokenizer.json, else tokenizer.json)\n"
          "  --dtype TYPE        f32, f16 or bf16 for the matrices (default: as the input;\n"
          "                      norm weights stay f32). With --quantize: for the tensors\n"
          "                      that stay unquantized (embeddings; the output layer with --output-f16), and the\n"
          "                      weights the calibration runs on\n"
          "  --name NAME         model name stored in the file (default: from INPUT)\n"
          "  -q, --quiet         no progress on stderr\n"
          "  --quantize M        awq or rtn (round to nearest, no --calib): OUT is written\n"
          "                      quantized, the same bytes as convert then nibble quantize\n"
          "                      with the same flags. The converted model in between is a\n"
          "                      temporary file beside OUT, removed at once (and on\n"
          "                      failure or Ctrl-C). What the search decided goes to\n"
          "                      stdout. Not for AutoAWQ input (quantized already)\n"
          "quantization, with --quantize (as in nibble quantize):\n",
          stdout);
    nb_quant_help(stdout);
}

struct args {
    nb_convert_opts o;
    const char *from, *in, *out;
    int quantize; /* --quantize given: q holds the method */
    nb_quant q;
};

static int parse_dtype(const char *s)
{
    if (!strcmp(s, "f32"))
        return NB_F32;
    if (!strcmp(s, "f16"))
        return NB_F16;
    if (!strcmp(s, "bf16"))
        return NB_BF16;
    return nb_error("--dtype must be f32, f16 or bf16, got '%s'", s), -2;
}

/* 0: parsed; -1: bad or unknown (after an error line). */
static int value_flag(struct args *p, const char *a, const char *v)
{
    if (!strcmp(a, "--from"))
        p->from = v;
    else if (!strcmp(a, "-o") || !strcmp(a, "--output"))
        p->out = v;
    else if (!strcmp(a, "--tokenizer"))
        p->o.tokenizer_path = v;
    else if (!strcmp(a, "--name"))
        p->o.name = v;
    else if (!strcmp(a, "--dtype"))
        return (p->o.out_dtype = parse_dtype(v)) == -2 ? -1 : 0;
    else if (!strcmp(a, "--quantize"))
        return p->quantize = 1, nb_quant_method(&p->q, a, v);
    else
        return nb_quant_flag(&p->q, "convert", a, v);
    return 0;
}

static int parse(struct args *p, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (nb_is_help(a))
            return help(), 1;
        if (!strcmp(a, "-q") || !strcmp(a, "--quiet"))
            p->o.quiet = 1;
        else if (a[0] != '-' || !a[1]) {
            if (p->in)
                return nb_error("convert: more than one input ('%s' and '%s')", p->in, a), -1;
            p->in = a;
        } else if (!nb_quant_switch(&p->q, a) &&
                   (!(v = nb_arg(argc, argv, &i)) || value_flag(p, a, v)))
            return -1;
    }
    if (!p->in || !p->out)
        return nb_error("convert needs an INPUT and -o OUT (see nibble convert --help)"), -1;
    nb_err e;
    if (nb_writer_check_path(p->out, &e))
        return nb_error("%s", e.msg), -1;
    if (!p->quantize && p->q.first)
        return nb_error("convert: %s is a quantization option: it needs --quantize awq|rtn",
                        p->q.first), -1;
    return p->quantize && nb_quant_check(&p->q, "--quantize") ? -1 : 0;
}

/* The importer for INPUT, or NULL after an error line. */
static nb_importer importer(const struct args *p)
{
    struct stat st;
    if (stat(p->in, &st))
        return nb_error("cannot open '%s': %s", p->in, strerror(errno)), NULL;
    const char *from = p->from ? p->from : S_ISDIR(st.st_mode) ? "hf"
                                       : nb_gguf_is(p->in)     ? "gguf"
                                                               : "llama2c";
    if (!strcmp(from, "gguf"))
        return nb_import_gguf;
    if (!strcmp(from, "llama2c"))
        return nb_import_llama2c;
    if (!strcmp(from, "ct") || (!strcmp(from, "hf") && nb_hf_is_ct(p->in)))
        return nb_import_ct; /* before AutoAWQ: it has a quantization_config too */
    if (!strcmp(from, "autoawq") || (!strcmp(from, "hf") && nb_hf_is_quantized(p->in)))
        return nb_import_autoawq;
    if (!strcmp(from, "hf"))
        return nb_import_hf;
    return nb_error("--from must be llama2c, hf, autoawq, ct or gguf, got '%s'", from), NULL;
}

/* Converted into a temporary file, mapped, quantized into OUT. */
static int convert_quantized(const struct args *p, nb_importer import)
{
    nb_model m;
    if (import == nb_import_autoawq)
        return nb_quant_refuse_autoawq(p->in);
    if (import == nb_import_ct)
        return nb_error("'%s' is a compressed-tensors checkpoint, already quantized: nibble "
                        "convert imports it as it is (without --quantize)", p->in);
    if (nb_quant_open_converted(&m, import, p->in, &p->o, p->out))
        return 1;
    int rc = nb_quant_model(&p->q, &m, p->in, p->out, p->o.quiet);
    nb_model_close(&m);
    return rc;
}

int cmd_convert(int argc, char **argv)
{
    struct args p = {.o = {.out_dtype = -1}};
    nb_quant_init(&p.q);
    int rc = parse(&p, argc, argv);
    if (rc)
        return rc < 0;
    nb_importer import = importer(&p);
    if (!import)
        return 1;
    if (p.quantize)
        return convert_quantized(&p, import);
    nb_err e = {{0}};
    if (import(p.in, p.out, &p.o, &e))
        return nb_error("%s", e.msg);
    if (!p.o.quiet)
        fprintf(stderr, "wrote %s\n", p.out);
    return 0;
}
