/* Runs the attention of one decode token (every query head over N cached
 * positions, neon/attn.h) reps times, for tests/bench/icount_attn.sh to
 * count instructions under qemu (the difference between reps R and 2R
 * leaves out the setup): head by head through nb_attend_f16 ("single",
 * the default), or each kv head's query heads together through
 * nb_attend_group_f16 ("group"), or as the int8-activation path does
 * (nb_attend_fast, "fast": fp16 scores where the CPU has them, keys in
 * blocks of 8 positions).
 *   attn_bench REPS POSITIONS HEAD_DIM HEADS KV_HEADS [single|group|fast] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../neon/attn.h"

static uint64_t state = 7;

static float uniform(void) /* [-1, 1) */
{
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(state >> 11) / 4503599627370496.0 - 1.0);
}

static float *random_floats(size_t n)
{
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; x && i < n; i++)
        x[i] = uniform();
    return x;
}

static uint16_t *random_cache(size_t n)
{
    float *x = random_floats(n);
    uint16_t *h = malloc(n * sizeof *h);
    if (x && h)
        nb_f32_to_f16_row(h, x, n);
    free(x);
    return h;
}

int main(int argc, char **argv)
{
    if (argc != 6 && !(argc == 7 && (!strcmp(argv[6], "single") || !strcmp(argv[6], "group") ||
                                     !strcmp(argv[6], "fast")))) {
        fputs("usage: attn_bench REPS POSITIONS HEAD_DIM HEADS KV_HEADS [single|group|fast]\n",
              stderr);
        return 1;
    }
    int fast = argc == 7 && !strcmp(argv[6], "fast");
    int grouped = fast || (argc == 7 && !strcmp(argv[6], "group"));
    long reps = atol(argv[1]), n = atol(argv[2]), hd = atol(argv[3]);
    long heads = atol(argv[4]), kv = atol(argv[5]);
    if (reps < 0 || n < 1 || hd < 2 || kv < 1 || heads < kv || heads % kv) {
        fputs("attn_bench: bad shape\n", stderr);
        return 1;
    }
    size_t stride = (size_t)(kv * hd);
    float *q = random_floats((size_t)(heads * hd)), *out = random_floats((size_t)(heads * hd));
    size_t rows = ((size_t)n + NB_ATTEND_KBLOCK - 1) / NB_ATTEND_KBLOCK * NB_ATTEND_KBLOCK;
    uint16_t *k = random_cache(rows * stride), *v = random_cache(rows * stride);
    if (!q || !out || !k || !v) {
        fputs("attn_bench: out of memory\n", stderr);
        return 1;
    }
    nb_attend_fn *attend = nb_attend_f16();
    const nb_attend_set *set = fast ? nb_attend_fast() : nb_attend_exact();
    nb_attend_group_fn *group = set->group;
    size_t kblock = set->key_block ? (size_t)set->key_block : 1; /* a kv head's first key */
    size_t vtiles = set->val_block && hd % NB_ATTEND_VBLOCK == 0; /* and value (attn.h) */
    float scale = 1.0f / sqrtf((float)hd);
    size_t g = (size_t)(heads / kv);
    for (long r = 0; r < reps; r++) {
        if (grouped) {
            for (long h = 0; h < kv; h++) {
                size_t at = (size_t)(h * hd), qat = at * g;
                group(out + qat, (size_t)hd, q + qat, (size_t)hd, g, k + at * kblock,
                      v + (vtiles ? nb_attend_val_at(0, at, stride, (size_t)hd) : at), stride,
                      (size_t)n, (size_t)hd, scale);
            }
            continue;
        }
        for (long h = 0; h < heads; h++) {
            size_t at = (size_t)(h / (heads / kv) * hd);
            attend(out + h * hd, q + h * hd, k + at, v + at, stride, (size_t)n, (size_t)hd,
                   scale);
        }
    }
    printf("%g\n", (double)out[0]); /* the work is used */
    free(q), free(out), free(k), free(v);
    return 0;
}
