/* Group quantization as the AWQ reference code does it (awq-spec.md §1):
 * asymmetric min-max with a clamped zero point (the default), or
 * symmetric absmax; groups of `group` input channels along a row, the
 * last one ragged when the row length is not a multiple; round half to
 * even. Scales are rounded to fp16 *before* the codes are computed, so
 * (q - z) * s is exactly what a file stores and the search sees. */
#ifndef NIBBLE_QUANT_H
#define NIBBLE_QUANT_H

#include <stddef.h>
#include <stdint.h>

typedef struct nb_qspec {
    int bits;      /* 3 or 4 (2..8 work) */
    int group;     /* input channels per group; 0 = one group per row */
    int symmetric; /* 0: zero point (default); 1: absmax, zero fixed at 2^(bits-1) */
} nb_qspec;

/* Groups in a row of n: ceil(n / group), or 1 per row. */
size_t nb_qgroups(size_t n, const nb_qspec *q);

/* Quantizes one row of n weights: codes[n] in 0..2^bits-1, and per group
 * scales (fp16-representable floats) and zero points. Symmetric codes are
 * stored offset by 2^(bits-1) with that zero point, so every packed
 * tensor dequantizes as (q - z) * s. */
void nb_quant_row(const float *w, size_t n, const nb_qspec *q, uint8_t *codes, float *scales,
                  uint8_t *zeros);

/* w <- dequantize(quantize(w)), in place: the "fake quantization" Q(). */
void nb_fake_quant_row(float *w, size_t n, const nb_qspec *q);

#endif
