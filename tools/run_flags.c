/* The flags that choose how a model runs, shared by generate, ppl and
 * bench (and chat, should it take them). Values are checked here, before
 * a model is loaded, so a typo costs no load time. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* The options so far, as the model would take them. */
static int check(const nb_session_opts *o)
{
    nb_err e = {{0}};
    if (nb_run_opts_check(&o->run, &e))
        return nb_error("%s", e.msg), -1;
    return 0;
}

int nb_run_flag(nb_session_opts *o, const char *flag, const char *value)
{
    if (!strcmp(flag, "-t") || !strcmp(flag, "--threads")) {
        long n;
        if (nb_parse_int(flag, value, 1, 256, &n))
            return -1;
        o->run.threads = (int)n;
    } else if (!strcmp(flag, "--cpus")) {
        o->run.cpus = value;
        return check(o);
    } else if (!strcmp(flag, "--kernels")) {
        o->run.kernels = value;
        return check(o);
    } else {
        return 1;
    }
    return 0;
}

int nb_run_switch(nb_session_opts *o, const char *flag)
{
    if (!strcmp(flag, "--exact"))
        o->run.exact = 1;
    else if (!strcmp(flag, "--reference"))
        o->reference = 1;
    else
        return 0;
    return 1;
}

void nb_run_help(FILE *out)
{
    fputs("how the model runs:\n"
          "  -t, --threads N    threads, 1..256 (default: one per big core, or per CPU of --cpus)\n"
          "  --cpus LIST        pin the threads to these CPUs, e.g. 0-3 or 4-7,2\n"
          "  --kernels NAME     packed-weight kernels: auto (default: the fastest this\n"
          "                     CPU runs), neon, dotprod, i8mm (aarch64), avx2 (x86-64),\n"
          "                     generic (portable C) or ref (the plain-C references)\n"
          "  --exact            fp32 activations into the packed weights (W4A16, as in the\n"
          "                     AWQ paper) instead of int8 (W4A8): slower, closer\n"
          "  --reference        the plain-C reference path (fp32 KV cache, one token at a\n"
          "                     time): the oracle, slow\n",
          out);
}
