/* The .nib loader on arbitrary bytes, then, on whatever it accepts, both
 * forward passes over one token: the reference (models/ref.c) and the
 * fast path on the portable kernels with int8 activations and on the best
 * kernels with fp32 ones. The weights' values are exercised too: NaN, Inf,
 * huge scales, zero points out of range. */
#include <stdlib.h>
#include <string.h>

#include "../../models/net.h"
#include "fuzz_util.h"

static void run(nb_net *L, const nb_model *m)
{
    int32_t vocab = (int32_t)m->meta.vocab_size;
    int token = m->meta.bos_id >= 0 && m->meta.bos_id < vocab ? m->meta.bos_id : vocab - 1;
    nb_net_forward(L, token, 0);
    nb_net_free(L);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* the file is used in place, as a mapping would be: 64-byte aligned */
    uint8_t *image = aligned_alloc(64, (size + 63) / 64 * 64 + 64);
    if (!image)
        return 0;
    memcpy(image, data, size);
    nb_model m;
    nb_err e;
    if (!nb_model_parse(&m, image, size, &e)) {
        nb_net L;
        int ctx = m.meta.max_ctx < 8 ? (int)m.meta.max_ctx : 8;
        if (!nb_net_init(&L, &m, ctx, &e))
            run(&L, &m);
        nb_run_opts int8 = {.threads = 1, .kernels = "generic"};
        if (!nb_net_init_fast(&L, &m, ctx, &int8, &e))
            run(&L, &m);
        nb_run_opts exact = {.threads = 1, .exact = 1};
        if (!nb_net_init_fast(&L, &m, ctx, &exact, &e))
            run(&L, &m);
    }
    free(image);
    return 0;
}
