/* Random models of a given shape, built in memory for benchmarks: the
 * packed weights get random codes, scales and zero points written
 * straight into their sections (nothing is quantized), so a 7B shape
 * takes seconds. The image is a valid nibble file in an anonymous
 * mapping, validated by nb_model_parse like any file. */
#ifndef NIBBLE_SYNTH_H
#define NIBBLE_SYNTH_H

#include <stdint.h>

#include "../runtime/model.h"

#include "../models/arch.h"

/* A shape: the fixed metadata and the RoPE scaling (Llama-3.x). */
typedef struct nb_shape {
    struct nb_meta meta;
    nb_rope rope;
} nb_shape;

/* A name of nb_shape_names, or "DIM,LAYERS,HEADS,KV_HEADS,FFN,VOCAB"
 * (llama, head_dim = DIM / HEADS). */
int nb_shape_parse(const char *s, nb_shape *shape, nb_err *e);

/* The names nb_shape_parse knows, for --help. */
extern const char nb_shape_names[];

/* How the random model is stored. */
typedef struct nb_synth_opts {
    int bits, group;   /* decoder linears: 4 or 3 bits, groups of group columns (0: a row) */
    int output_bits;   /* 0: the output layer in f16; 4: packed like the linears */
    int output_group;  /* its groups (0: a row) */
} nb_synth_opts;

/* A random model of the shape with packed decoder linears, an f16
 * embedding and the output layer as o says (a tied model keeps it tied
 * when f16, and gets its own packed copy otherwise); the family's biases
 * and q/k norms; the same bytes every time. nb_model_close unmaps it. */
int nb_synth_model(nb_model *m, const nb_shape *shape, const nb_synth_opts *o, nb_err *e);

#endif
