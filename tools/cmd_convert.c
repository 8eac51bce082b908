#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "convert.h"

static const char help[] =
    "usage: nibble convert [--from llama2c|hf|autoawq] INPUT -o OUT.nib [options]\n"
    "\n"
    "Converts a model into one nibble file (written atomically: OUT appears\n"
    "only when complete).\n"
    "  INPUT              a llama2.c v0 checkpoint (.bin) or a Hugging Face folder\n"
    "                     (fp32/fp16/bf16, or an AutoAWQ 4-bit gemm/gemv checkpoint:\n"
    "                     its weights are repacked exactly, never re-quantized)\n"
    "  --from FORMAT      llama2c, hf or autoawq (default: hf for a folder, autoawq\n"
    "                     when its config has a quantization_config, llama2c for a file)\n"
    "  -o, --output FILE  the .nib file to write\n"
    "  --tokenizer FILE   SentencePiece .model (default: tokenizer.model beside/in INPUT)\n"
    "  --dtype TYPE       f32, f16 or bf16 for the matrices (default: as the input;\n"
    "                     norm weights stay f32)\n"
    "  --name NAME        model name stored in the file (default: from INPUT)\n"
    "  -q, --quiet        no progress on stderr\n";

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

int cmd_convert(int argc, char **argv)
{
    nb_convert_opts o = {.out_dtype = -1};
    const char *from = NULL, *in = NULL, *out = NULL, *v = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (nb_is_help(a))
            return fputs(help, stdout), 0;
        if (!strcmp(a, "-q") || !strcmp(a, "--quiet"))
            o.quiet = 1;
        else if (a[0] == '-' && a[1] && !(v = nb_arg(argc, argv, &i)))
            return 1;
        else if (!strcmp(a, "--from"))
            from = v;
        else if (!strcmp(a, "-o") || !strcmp(a, "--output"))
            out = v;
        else if (!strcmp(a, "--tokenizer"))
            o.tokenizer_path = v;
        else if (!strcmp(a, "--name"))
            o.name = v;
        else if (!strcmp(a, "--dtype")) {
            if ((o.out_dtype = parse_dtype(v)) == -2)
                return 1;
        } else if (a[0] == '-' && a[1])
            return nb_error("convert: unknown option '%s' (see --help)", a);
        else if (in)
            return nb_error("convert: more than one input ('%s' and '%s')", in, a);
        else
            in = a;
    }
    if (!in || !out)
        return nb_error("convert needs an INPUT and -o OUT (see nibble convert --help)");
    struct stat st;
    if (stat(in, &st))
        return nb_error("cannot open '%s': no such file or directory", in);
    if (!from)
        from = S_ISDIR(st.st_mode) ? "hf" : "llama2c";
    nb_err e = {{0}};
    int rc;
    if (!strcmp(from, "llama2c"))
        rc = nb_import_llama2c(in, out, &o, &e);
    else if (!strcmp(from, "autoawq") || (!strcmp(from, "hf") && nb_hf_is_quantized(in)))
        rc = nb_import_autoawq(in, out, &o, &e);
    else if (!strcmp(from, "hf"))
        rc = nb_import_hf(in, out, &o, &e);
    else
        return nb_error("--from must be llama2c, hf or autoawq, got '%s'", from);
    if (rc)
        return nb_error("%s", e.msg);
    if (!o.quiet)
        fprintf(stderr, "wrote %s\n", out);
    return 0;
}
