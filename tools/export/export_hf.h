/* Inside nibble export --to autoawq: the state export_autoawq.c (tensors,
 * the temporary folder) and export_hf.c (config.json,
 * generation_config.json, tokenizer files) share. */
#ifndef NIBBLE_EXPORT_HF_H
#define NIBBLE_EXPORT_HF_H

#include <stdio.h>

#include "../../models/arch.h"
#include "../../runtime/model.h"
#include "../import/convert.h"
#include "../import/safetensors.h"
#include "export_autoawq.h"

struct job;
struct json_t;

typedef struct nb_export {
    nb_model m;
    nb_hparams hp;
    const nb_export_opts *o;
    nb_st_spec *spec; /* per safetensors tensor, in file order */
    struct job *job;
    size_t n, cap, n_packed;
    int group;                /* the linears' group size */
    struct json_t *skip;      /* linears left unquantized: modules_to_not_convert */
    int output_dequant;       /* lm_head is a dequantized INT4 output layer */
    size_t rounded;           /* plain tensors fp16 did not hold exactly */
    int inexact_now;
} nb_export;

/* A file in the temporary folder, listed for removal before it exists. */
FILE *nb_export_create(const char *name, nb_err *e);
/* Flushes, syncs and closes; a message naming the file on failure. */
int nb_export_close(FILE *f, const char *name, nb_err *e);

/* Refuses a BPE model without --tokenizer DIR, and a DIR whose tokenizer
 * is not the model's. Before anything is written. */
int nb_export_check_tokenizer(const nb_export *x, nb_err *e);
/* config.json and generation_config.json. */
int nb_export_json(const nb_export *x, nb_err *e);
/* tokenizer.model or the files of DIR, and tokenizer_config.json. */
int nb_export_tokenizer(const nb_export *x, nb_err *e);
/* 1 when name is a file the three above may write (the tokenizer files
 * of any DIR): what a leftover folder may hold besides the tensors. */
int nb_export_hf_file(const char *name);

#endif
