/* The AWQ search (awq-spec.md §3-§5) and the layer-by-layer driver that
 * writes a quantized model. Model-agnostic: it works on the layer view of
 * models/awq_layer.h (linears with their captured inputs, scale groups, a
 * module function) and knows nothing of attention or MLPs. */
#ifndef NIBBLE_AWQ_H
#define NIBBLE_AWQ_H

#include <stdio.h>

#include "../../models/awq_layer.h"
#include "../../neon/quant.h"

typedef enum {
    NB_AWQ_PACKED,    /* NB_Q4 / NB_Q3 tensors: the normal output */
    NB_AWQ_DEQUANT,   /* the same weights dequantized, as f32 (measurements) */
    NB_AWQ_FOLD_ONLY, /* scales folded, nothing clipped or quantized (tests) */
} nb_awq_output;

typedef struct nb_awq_opts {
    nb_qspec q;
    int scales; /* search and fold scales; 0 with clip 0 is round to nearest */
    int duo;    /* scale statistic of weights and activations (else activations only) */
    int clip;   /* clip search */
    int n_grid; /* scale grid points (alpha = i / n_grid); 0 means 20 */
    /* Calibration tokens on which the scale search evaluates its losses
     * (whole blocks, spread over the set); the statistics use every token.
     * 0 means all of them. */
    size_t search_tokens;
    nb_awq_output output;
    /* The output layer. out_q.bits 0 keeps it as it is (a tied model stays
     * tied). Else it is quantized with out_q, its own spec (the output
     * layer is sensitive: a finer group than the linears'), and written as
     * a separate "output" tensor, also when the model ties it to the
     * embedding (which stays plain, for lookups; the file says untied).
     * With out_scales its group output_norm -> output is searched (duo as
     * for the linears) and folded, with losses on every calibration token
     * (through their Gram matrix); with out_clip it is clipped. Neither:
     * round to nearest. */
    nb_qspec out_q;
    int out_scales, out_clip;
    /* Tests: nonzero folds random scales (e^u, u uniform in [-1, 1), drawn
     * from this seed) into every group instead of searching them, so that
     * NB_AWQ_FOLD_ONLY checks folding and writing on scales far from 1. */
    uint64_t random_scales;
    int quiet;    /* no progress on stderr */
    FILE *report; /* what the search decided, per layer; NULL for none */
} nb_awq_opts;

/* Quantizes every decoder linear of m, and the output layer unless
 * o->out_q.bits is 0, and writes the model to out (atomically): ids holds
 * n_tokens calibration tokens, independent blocks of block tokens (unused,
 * may be NULL, when nothing is searched: nb_awq_calibrated). The embedding
 * stays as it is; the final norm too unless scales are folded into it. */
int nb_awq_quantize(const nb_model *m, const int32_t *ids, size_t n_tokens, size_t block,
                    const char *out, const nb_awq_opts *o, nb_pool *pool, nb_err *e);

/* Bytes the output layer's step holds at its peak (its fp32 copy, codes
 * and packed form, the final norm's output on the calibration tokens, the
 * Gram matrix), for a model of shape cfg. */
double nb_awq_output_bytes(const struct nb_meta *cfg, size_t n_tokens);

/* 1 when o searches anything (scales or clip, of the linears or of the
 * quantized output layer): calibration tokens are needed. */
int nb_awq_calibrated(const nb_awq_opts *o);

/* How many calibration blocks the scale search measures its losses on. */
size_t nb_awq_search_blocks(size_t n_tokens, size_t block, size_t search_tokens);

/* ---- the pieces, for the tests ---- */

/* out[c] = mean over the n tokens of |x[t, c]| (the activation statistic). */
void nb_awq_act_mean(const float *x, size_t n, size_t cols, float *out);

/* Duo scaling's weight statistic over n_mats matrices of cols columns
 * stacked along rows: out[c] = mean over rows of |w| / (max |w| over its
 * quantization group + 1e-6). */
void nb_awq_weight_mean(const float *const *w, const size_t *rows, int n_mats, size_t cols,
                        const nb_qspec *q, float *out);

/* The scales of one grid point: x_mean^alpha, divided by
 * (w_mean^(1-alpha) + 1e-4) when w_mean is not NULL (duo), at least 1e-4,
 * normalized by sqrt(max * min), inf and NaN replaced by 1. */
void nb_awq_scales(const float *x_mean, const float *w_mean, size_t n, float alpha, float *s);

/* Clip search of one linear w [rows, cols] on n tokens x [n, cols]: per
 * row and quantization group, the max |w| that minimizes the error of the
 * group's output after quantization, among 1 - i/20 times the original
 * (i = 0..9); w is clamped in place. ratio [rows][groups] gets the chosen
 * fraction of the original max (may be NULL). -1 when out of memory. */
int nb_awq_clip(float *w, size_t rows, size_t cols, const float *x, size_t n, const nb_qspec *q,
                nb_pool *pool, float *ratio);

/* The output group's loss for scales s [cols]: the mean over the n
 * tokens of x [n, cols] and the rows of w [rows, cols] of the squared
 * error of x times (Q(w diag(s)) diag(1/s) - w)^T, computed as the search
 * does, through the Gram matrix of x. -1 when out of memory. */
int nb_awq_output_loss(const float *w, size_t rows, size_t cols, const float *x, size_t n,
                       const float *s, const nb_qspec *q, nb_pool *pool, double *loss);

#endif
