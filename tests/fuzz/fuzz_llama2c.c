/* The llama2.c importer (tools/import_llama2c.c): the input is the
 * checkpoint, the tokenizer the real tok512.model (so a header must say
 * vocab 512 to get far). What converts must load. */
#include <stdlib.h>

#include "../../tools/import/convert.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char ckpt[512], out[512];
    fz_path(ckpt, sizeof ckpt, "model.bin");
    fz_path(out, sizeof out, "out.nib");
    if (fz_write(ckpt, data, size))
        abort();
    /* the output dtype from the length, which trailing bytes change */
    static const int dtypes[3] = {-1, NB_F16, NB_BF16};
    nb_convert_opts o = {.out_dtype = dtypes[size % 3], .tokenizer_path = fz_tokenizer_path(),
                         .name = "fuzz", .quiet = 1};
    nb_err e;
    if (!nb_import_llama2c(ckpt, out, &o, &e))
        fz_check_loads(out, "the llama2.c importer");
    return 0;
}
