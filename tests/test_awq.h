/* What test_awq.c and test_awq_family.c, one executable, share: the
 * helpers of test_awq.c the family tests use, and those tests. */
#ifndef NIBBLE_TEST_AWQ_H
#define NIBBLE_TEST_AWQ_H

#include <stddef.h>
#include <stdint.h>

#include "../runtime/model.h"
#include "../tools/awq/awq.h"

/* Largest |a - b|; largest |x|. */
double max_gap(const float *a, const float *b, size_t n);
double max_abs(const float *x, size_t n);

/* nb_awq_quantize of m on n_tokens of ids in blocks of block tokens into
 * out, on threads threads; 0, or -1 after a line on stderr. */
int quantize_blocks(const nb_model *m, const int32_t *ids, size_t n_tokens, size_t block,
                    const char *out, const nb_awq_opts *o, int threads);

/* Largest logit difference of the two files over the first n positions
 * of ids; *top (may be NULL) the largest |logit| of a_path's. */
double logit_gap_top(const char *a_path, const char *b_path, const int32_t *ids, int n,
                     double *top);

/* The batched layer forward of T tokens in blocks of B against the
 * reference: the largest logit difference, *top the largest |logit|. */
double forward_gap(const nb_model *m, const int32_t *ids, size_t B, size_t T, double *top);

/* The random model of each family (tests/test_awq_family.c). */
void test_families(void);

#endif
