/* What the subcommands share: strict number parsing, one-line errors,
 * opening a model with its tokenizer, and interruption by Ctrl-C. */
#ifndef NIBBLE_CLI_H
#define NIBBLE_CLI_H

#include "../models/llama.h"
#include "../runtime/model.h"
#include "../tokenizer/tokenizer.h"

/* Every subcommand: argv[0] is its name; returns the exit code. */
int cmd_convert(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_ppl(int argc, char **argv);

/* Prints "nibble: <msg>" on stderr and returns 1 (the exit code). */
int nb_error(const char *fmt, ...) NB_PRINTF(1, 2);

/* The value after flag argv[*i]; NULL (after an error line) if missing. */
const char *nb_arg(int argc, char **argv, int *i);
int nb_parse_int(const char *flag, const char *s, long min, long max, long *out);
int nb_parse_float(const char *flag, const char *s, double min, double max, double *out);
int nb_is_help(const char *arg);

/* A model opened for running: the mapped file, its tokenizer, its state. */
typedef struct nb_session {
    nb_model model;
    nb_tokenizer *tok;
    nb_llama llama;
} nb_session;

int nb_session_open(nb_session *s, const char *path, int ctx, nb_err *e);
void nb_session_close(nb_session *s);

/* Ctrl-C sets a flag that long loops poll, so they stop cleanly. */
void nb_catch_interrupt(void);
int nb_interrupted(void);

#endif
