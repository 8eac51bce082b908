/* What nibble quantize and nibble convert --quantize share: the
 * quantization flags with one parser and one help text
 * (tools/quant_flags.c), and one pipeline from an input to a quantized
 * file (tools/quant_run.c), so the two commands cannot drift apart. */
#ifndef NIBBLE_QUANT_FLAGS_H
#define NIBBLE_QUANT_FLAGS_H

#include <stdio.h>

#include "../../runtime/model.h"
#include "../import/convert.h"

enum {
    NB_QUANT_BLOCK = 512,         /* calibration tokens per independent sequence */
    NB_QUANT_TOKENS = 65536,      /* 128 blocks, as the reference implementations */
    NB_QUANT_SEARCH_TOKENS = 16384, /* tokens the scale search evaluates its losses on */
    NB_QUANT_OUTPUT_BITS = 4,       /* the output layer's, whatever --bits */
    NB_QUANT_OUTPUT_GROUP = 32,     /* the output layer's default group */
    NB_QUANT_CHECK_WINDOWS = 16     /* --check's windows, 8192 tokens */
};

typedef struct nb_quant {
    const char *calib; /* calibration text file */
    long bits, group;  /* group 0: one per row */
    long calib_tokens, search_tokens; /* search_tokens 0: all of them */
    long threads;                     /* 0: one per CPU */
    int rtn, x_only, no_scale, no_clip, fake, symmetric;
    /* The output layer: INT4 in groups of output_group (0: per row), by
     * output_method (NB_QUANT_AS_LINEARS: as the linears); output_f16
     * keeps it as it is. */
    long output_group;
    int output_f16, output_method;
    const char *check;  /* --check TEXT: perplexity before and after, on TEXT */
    long check_windows; /* of NB_QUANT_BLOCK tokens (the context if shorter) */
    const char *first; /* the first of these flags given (convert refuses them alone) */
} nb_quant;

enum { NB_QUANT_AS_LINEARS, NB_QUANT_AWQ, NB_QUANT_RTN }; /* output_method */

void nb_quant_init(nb_quant *q); /* the defaults */

/* 1 when the output layer is quantized with its searches (AWQ). */
int nb_quant_output_awq(const nb_quant *q);

/* The last of a command's flags with a value: 0 parsed; -1 after an error
 * line (a bad value, or "CMD: unknown option" when it is not one of
 * these either). */
int nb_quant_flag(nb_quant *q, const char *cmd, const char *flag, const char *value);

/* 1 when flag is one of the switches (--symmetric, --no-clip...): set. */
int nb_quant_switch(nb_quant *q, const char *flag);

/* The method, awq or rtn, as the value of flag (--method, --quantize). */
int nb_quant_method(nb_quant *q, const char *flag, const char *value);

/* 1 unless nothing is searched (RTN, the output layer's too): nothing to
 * calibrate. */
int nb_quant_needs_calib(const nb_quant *q);

/* After parsing, before any model is read: AWQ needs --calib (else the
 * hint names method_flag), and the calibration file must be a non-empty
 * regular file, so a typo costs no conversion. 0, or 1 after an error. */
int nb_quant_check(const nb_quant *q, const char *method_flag);

/* The flags' help lines, defaults included. */
void nb_quant_help(FILE *out);

/* ---- the pipeline (tools/quant_run.c) ---- */

typedef int (*nb_importer)(const char *in, const char *out, const nb_convert_opts *o, nb_err *e);

/* An AutoAWQ folder is refused: its weights are quantized already.
 * 0, or 1 after an error line. */
int nb_quant_refuse_autoawq(const char *dir);

/* Converts in with import into a temporary file beside out, maps it as m
 * and removes the file at once (the mapping keeps the data); Ctrl-C on the
 * way removes it too. 0, or 1 after an error line. */
int nb_quant_open_converted(nb_model *m, nb_importer import, const char *in,
                            const nb_convert_opts *o, const char *out);

/* Quantizes the mapped model m (path names it in errors) into out,
 * atomically: refuses an already quantized model, tokenizes the
 * calibration text when the method needs it, runs the search. What it
 * decided goes to stdout, progress to stderr unless quiet. 0, or 1 after
 * an error line. */
int nb_quant_model(const nb_quant *q, const nb_model *m, const char *path, const char *out,
                   int quiet);

#endif
