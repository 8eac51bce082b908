/* What the three files of the AWQ quantizer share, and only they:
 * awq_search.c (the statistics, the scale grid, the clip search: the
 * spec's maths on a layer view), awq.c (the driver: layer by layer, then
 * the rest of the model) and awq_output.c (the output layer's search and
 * writing). */
#ifndef NIBBLE_AWQ_IMPL_H
#define NIBBLE_AWQ_IMPL_H

#include <stdint.h>

#include "../../runtime/model.h"
#include "../../runtime/pool.h"
#include "../../runtime/writer.h"
#include "awq.h"

enum {
    CLIP_TOKENS = 512, /* calibration rows the clip search samples */
    CLIP_GRID = 20,    /* shrink step 1/20 ... */
    CLIP_STEPS = 10,   /* ... down to half the original max */
    DEFAULT_GRID = 20,
    ROW_CHUNK = 16, /* weight rows per parallel chunk */
    COL_BLOCK = 64, /* columns whose sums are kept on the stack */
};

static inline size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

struct scale_choice {
    int best;    /* grid index, -1 when no trial gave a finite loss */
    double loss; /* at the best alpha */
    double base; /* with s = 1 (plain rounding) */
};
/* Buffers of one group's search, carved from one allocation. */
struct search_bufs {
    float *x_mean, *w_mean, *s, *trial[NB_AWQ_MAX_SCALED];
    float *mem;
};
typedef int (*loss_fn)(void *ctx, const float *s, double *loss);
struct run {
    const nb_model *m;
    const nb_awq_opts *o;
    nb_pool *pool;
    nb_writer *w;
    uint8_t *written; /* per tensor of m: already in the output */
    nb_layer_awq a;
    float *x; /* the current layer's input [n_tokens, dim] */
    size_t n_tokens; /* calibration tokens, 0 when nothing is searched */
    uint64_t rng; /* o->random_scales' generator state */
    double t_forward, t_scales, t_clip, t_write, t_output;
};

/* fn over rows [0, rows) in chunks of chunk rows, chunk c = [c * chunk, ...). */
void awq_for_chunks(nb_pool *pool, size_t rows, size_t chunk,
                    void (*fn)(void *, size_t, size_t), void *ctx);
void awq_for_rows(nb_pool *pool, size_t rows, void (*fn)(void *, size_t, size_t), void *ctx);
void awq_duo_statistic(const nb_awq_layer *L, const nb_awq_group *G, const nb_qspec *q,
                       float *out);
/* The grid (spec §4) over scales of cols channels from the statistics in
 * b (w_mean unused unless o->duo), b->s as scratch: the first alpha with
 * the lowest loss(s) wins. */
int awq_run_grid(loss_fn loss_of, void *ctx, struct search_bufs *b, size_t cols,
                 const nb_awq_opts *o, float *best_s, struct scale_choice *ch);
int awq_search_group(const nb_awq_layer *L, int g, const nb_awq_opts *o, nb_pool *pool,
                     float *best_s, struct scale_choice *ch, nb_err *e);
const struct nb_tensor_entry *awq_entry_at(const nb_model *m, uint32_t i);
void awq_report_scales(const struct run *r, const nb_awq_layer *L, const float *const *s,
                       const struct scale_choice *ch);
/* Tests (o->random_scales): e^u per channel, u uniform in [-1, 1). */
void awq_random_scales(struct run *r, float *s, size_t n, struct scale_choice *ch);
/* The clip search of one linear on a sample of its n_tokens inputs. */
int awq_clip_linear(struct run *r, nb_awq_linear *l, size_t n_tokens, const nb_qspec *q,
                    nb_err *e);
int awq_write_f32(struct run *r, const char *name, int n_dims, size_t rows, size_t cols,
                  const float *w, nb_err *e);
/* A linear as r->o->output says: packed with q, dequantized (f32), or as
 * it is (f32, folding only). */
int awq_write_linear(struct run *r, nb_awq_linear *l, const nb_qspec *q, nb_err *e);
/* Adds the time since *t to *acc and restarts the clock. */
void awq_lap(double *acc, double *t);
/* The output layer quantized with o->out_q (after the last layer: the
 * layer view and its captured inputs are freed first), written as a
 * tensor of its own; the final norm rewritten when scales were folded. */
int awq_quantize_output(struct run *r, nb_err *e);

#endif
