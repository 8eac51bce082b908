/* What the subcommands share: strict number parsing, one-line errors,
 * the flags that choose how a model runs and samples, and interruption by
 * Ctrl-C. Opening and running a model is the engine's (runtime/session.h,
 * gen.h, convo.h, ppl.h). */
#ifndef NIBBLE_CLI_H
#define NIBBLE_CLI_H

#include <stdio.h>

#include "../runtime/sampler.h"
#include "../runtime/session.h"
#include "../tokenizer/tokenizer.h"
#include "../runtime/base/utf8.h"

/* Every subcommand: argv[0] is its name; returns the exit code. */
int cmd_chat(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_ppl(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_serve(int argc, char **argv);

/* Prints "nibble: <msg>" on stderr and returns 1 (the exit code). */
int nb_error(const char *fmt, ...) NB_PRINTF(1, 2);

/* The value after flag argv[*i]; NULL (after an error line) if missing. */
const char *nb_arg(int argc, char **argv, int *i);
int nb_parse_int(const char *flag, const char *s, long min, long max, long *out);
int nb_parse_float(const char *flag, const char *s, double min, double max, double *out);
int nb_is_help(const char *arg);

/* The flags that choose how a model runs (tools/run_flags.c), shared by
 * the subcommands: -t/--threads N, --cpus LIST, --kernels NAME take a
 * value (0: parsed; 1: not one of them; -1: bad value, after an error
 * line); --exact and --reference do not (1 when flag is one of them). */
int nb_run_flag(nb_session_opts *o, const char *flag, const char *value);
int nb_run_switch(nb_session_opts *o, const char *flag);
void nb_run_help(FILE *out);

/* Ctrl-C sets a flag of the CLI's, so long work stops cleanly; chat
 * clears it to go on after a stopped reply. The engine never sees the
 * flag: it gets nb_stop_on_interrupt as its should_stop callback. */
void nb_catch_interrupt(void);
int nb_interrupted(void);
void nb_clear_interrupt(void);
int nb_stop_on_interrupt(void *unused);

/* Sampling flags (tools/sampling_flags.c), shared by generate and chat. */
typedef struct nb_sampling {
    nb_sampler_opts o;
    int seeded; /* --seed was given */
} nb_sampling;

/* 0: parsed; 1: not a sampling flag; -1: bad value (after an error line). */
int nb_sampling_flag(nb_sampling *s, const char *flag, const char *value);
void nb_sampling_seed(nb_sampling *s); /* from the clock unless --seed was given */
void nb_sampling_help(FILE *out, const nb_sampler_opts *defaults);

#endif
