/* What attn.c's fp32 NEON attention shares with attn_f32b.c (aarch64
 * only): the value sums of a block. */
#ifndef NIBBLE_ATTN_NEON_H
#define NIBBLE_ATTN_NEON_H

#include <stddef.h>
#include <stdint.h>

/* out + j * ldo += sum_r w[j * ldw + r] * v_r over the m <= 8 value rows of
 * a block (v + r * stride), for g heads: per output column, the rows in
 * order, each product fused into the sum (fmaf), as the reference
 * nb_attend_f32b_ref adds them. Each value row is loaded and converted
 * once for up to 6 heads. */
void nb_attn_values_f32_neon(float *out, size_t ldo, size_t g, const float *w, size_t ldw,
                             const uint16_t *v, size_t stride, size_t m, size_t hd);

#endif
