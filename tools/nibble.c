/* nibble: run AWQ-quantized language models offline on ARM boards. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *what;
} commands[] = {
    {"generate", cmd_generate, "continue a prompt (greedy or sampled)"},
    {"convert", cmd_convert, "turn a llama2.c checkpoint or Hugging Face folder into a .nib file"},
    {"info", cmd_info, "show a model file's metadata and tensors"},
    {"ppl", cmd_ppl, "measure perplexity on a text file"},
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

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN); /* a closed stdout becomes a write error we report */
    if (argc < 2)
        return usage(stderr);
    if (nb_is_help(argv[1]) || !strcmp(argv[1], "help"))
        return usage(stdout);
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    return nb_error("unknown command '%s' (see nibble --help)", argv[1]);
}
