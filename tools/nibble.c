/* nibble: run AWQ-quantized language models offline on ARM boards. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

int cmd_export(int argc, char **argv); /* tools/cmd_export.c */

static const struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *what;
} commands[] = {
    {"chat", cmd_chat, "chat with a model (the default when no command is given)"},
    {"generate", cmd_generate, "continue a prompt (greedy or sampled)"},
    {"convert", cmd_convert, "turn a llama2.c checkpoint or Hugging Face folder into a .nib file"},
    {"info", cmd_info, "show a model file's metadata and tensors"},
    {"ppl", cmd_ppl, "measure perplexity on a text file"},
    {"bench", cmd_bench, "measure prefill and decode speed (like llama-bench)"},
    {"quantize", cmd_quantize, "quantize a model to INT4 or INT3 with AWQ"},
    {"tokenize", cmd_tokenize, "show the tokens of a text (a model's, or a tokenizer file's)"},
    {"serve", cmd_serve, "serve a model over HTTP with OpenAI's API (docs/serve.md)"},
    {"export", cmd_export, "write a 4-bit model as an AutoAWQ folder (docs/export.md)"},
};

static int usage(FILE *out)
{
    fputs("usage: nibble <command> [options]   (nibble <command> --help for its options)\n\n"
          "commands:\n",
          out);
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].what);
    return out == stdout ? 0 : 1;
}

/* No command (or only options): chat, with -m as given, else the model
 * $NIBBLE_MODEL names, else the demo model tools/setup.sh converts. */
static int default_chat(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model"))
            return cmd_chat(argc, argv);
    const char *env = getenv("NIBBLE_MODEL"), *demo = "build/stories260K.nib";
    const char *model = env && env[0] ? env : access(demo, R_OK) == 0 ? demo : NULL;
    if (!model)
        return nb_error("no model: give -m MODEL.nib or set NIBBLE_MODEL (bash tools/setup.sh "
                        "converts a demo model to build/stories260K.nib)");
    char **args = malloc(((size_t)argc + 3) * sizeof *args);
    if (!args)
        return nb_error("out of memory");
    args[0] = "chat", args[1] = "-m", args[2] = (char *)model;
    memcpy(args + 3, argv + 1, (size_t)argc * sizeof *args); /* argv[argc] is NULL */
    int rc = cmd_chat(argc + 2, args);
    free(args);
    return rc;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN); /* a closed stdout becomes a write error we report */
    if (argc < 2 || (argv[1][0] == '-' && !nb_is_help(argv[1])))
        return default_chat(argc, argv);
    if (nb_is_help(argv[1]) || !strcmp(argv[1], "help"))
        return usage(stdout);
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    return nb_error("unknown command '%s' (see nibble --help)", argv[1]);
}
