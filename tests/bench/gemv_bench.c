/* Runs one kernel of a chosen set on a 4096 x 4096 packed tensor, reps
 * times, for tests/bench/icount.sh to count instructions under qemu (the
 * difference between reps N and 2N leaves out the setup).
 *   gemv_bench SET MODE REPS [TOKENS [BITS [GROUP]]]
 * SET: ref neon dotprod i8mm auto; MODE: gemv (int8 decode), gemm (int8
 * prefill of TOKENS tokens), f32 (exact decode), quant (activation
 * quantization of TOKENS tokens only). Exit 2: the CPU cannot run SET. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../neon/f16.h"
#include "../../neon/qkern.h"

static uint64_t state = 42;

static uint64_t next(void)
{
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float uniform(void) /* [-1, 1) */
{
    return (float)((double)(next() >> 11) / 4503599627370496.0 - 1.0);
}

/* Random codes and sane parameters: speed does not depend on values. */
static uint8_t *random_tensor(const nb_qlayout *l)
{
    uint8_t *p = malloc(l->total_bytes);
    for (size_t i = 0; i < l->scale_offset; i++)
        p[i] = (uint8_t)next();
    for (size_t i = l->scale_offset; i < l->zero_offset; i += 2) {
        uint16_t h = nb_f32_to_f16(0.001f + 0.01f * (uniform() + 1.0f));
        memcpy(p + i, &h, 2);
    }
    for (size_t i = l->zero_offset; i < l->total_bytes; i++)
        p[i] = (uint8_t)(next() % (1u << l->bits));
    return p;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: gemv_bench SET gemv|gemm|f32|quant REPS [TOKENS [BITS [GROUP]]]\n");
        return 1;
    }
    const nb_qkernels *k = nb_kernels_get(argv[1]);
    if (!k) {
        fprintf(stderr, "gemv_bench: set %s not available on this CPU\n", argv[1]);
        return 2;
    }
    const char *mode = argv[2];
    long reps = atol(argv[3]);
    size_t ntok = argc > 4 ? (size_t)atol(argv[4]) : 8;
    int bits = argc > 5 ? atoi(argv[5]) : 4, group = argc > 6 ? atoi(argv[6]) : 128;
    size_t rows = 4096, cols = 4096;
    if (strcmp(mode, "gemm") && strcmp(mode, "quant"))
        ntok = 1;

    nb_qlayout l;
    if (nb_qlayout_init(&l, rows, cols, bits, group)) {
        fprintf(stderr, "gemv_bench: bad layout\n");
        return 1;
    }
    uint8_t *w = random_tensor(&l);
    float *x = malloc(ntok * cols * sizeof *x), *y = calloc(ntok * rows, sizeof *y);
    for (size_t i = 0; i < ntok * cols; i++)
        x[i] = uniform();
    nb_qact a;
    if (nb_qact_init(&a, cols, ntok))
        return 1;
    int form = ntok > 1 ? k->gemm_form : k->gemv_form;
    nb_qact_quantize(&a, x, cols, ntok, form);

    for (long i = 0; i < reps; i++) {
        if (!strcmp(mode, "gemv"))
            k->gemv(&l, w, &a, y, 0, rows);
        else if (!strcmp(mode, "gemm"))
            k->gemm(&l, w, &a, y, rows, 0, rows);
        else if (!strcmp(mode, "f32"))
            k->gemv_f32(&l, w, x, y, 0, rows);
        else
            nb_qact_quantize(&a, x, cols, ntok, form);
    }
    double sum = 0;
    for (size_t i = 0; i < ntok * rows; i++)
        sum += y[i];
    printf("gemv_bench: %s %s reps %ld tokens %zu bits %d group %d checksum %g\n", k->name, mode,
           reps, ntok, bits, group, sum);
    nb_qact_free(&a);
    free(w);
    free(x);
    free(y);
    return 0;
}
