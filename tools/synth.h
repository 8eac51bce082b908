/* Random models of a given shape, built in memory for benchmarks: the
 * packed weights get random codes, scales and zero points written
 * straight into their sections (nothing is quantized), so a 7B shape
 * takes seconds. The image is a valid nibble file in an anonymous
 * mapping, validated by nb_model_parse like any file. */
#ifndef NIBBLE_SYNTH_H
#define NIBBLE_SYNTH_H

#include <stdint.h>

#include "../runtime/model.h"

/* "tinyllama-1.1b", "llama2-7b", "llama2-13b", "mistral-7b", or
 * "DIM,LAYERS,HEADS,KV_HEADS,FFN,VOCAB" (head_dim = DIM / HEADS). */
int nb_shape_parse(const char *s, struct nb_meta *meta, nb_err *e);

/* The names nb_shape_parse knows, for --help. */
extern const char nb_shape_names[];

/* A random model of meta's shape with packed decoder linears (bits 4 or
 * 3, groups of group columns, 0 = one per row), and an f16 embedding and
 * untied f16 output, as AWQ models keep them (nibble quantize and AutoAWQ
 * leave the output layer unquantized); the same bytes every time.
 * nb_model_close unmaps it. */
int nb_synth_model(nb_model *m, const struct nb_meta *meta, int bits, int group, nb_err *e);

#endif
