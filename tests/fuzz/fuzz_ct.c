/* The compressed-tensors importer (tools/import_ct.c) on a folder made of the
 * input: a little-endian u32 n, n bytes of config.json, and the rest as
 * model.safetensors; tokenizer tok512.model. What converts must load. */
#include <stdlib.h>
#include <unistd.h>

#include "../../tools/import/convert.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    size_t n = fz_u32(data);
    if (n > size - 4)
        return 0;
    char config[512], weights[512], out[512];
    fz_path(config, sizeof config, "config.json");
    fz_path(weights, sizeof weights, "model.safetensors");
    fz_path(out, sizeof out, "out.nib");
    if (fz_write(config, data + 4, n) || fz_write(weights, data + 4 + n, size - 4 - n))
        abort();
    /* the output dtype from the length, which trailing bytes change */
    static const int dtypes[3] = {-1, NB_F16, NB_BF16};
    nb_convert_opts o = {.out_dtype = dtypes[size % 3], .tokenizer_path = fz_tokenizer_path(),
                         .name = "fuzz", .quiet = 1};
    nb_err e;
    if (!nb_import_ct(fz_dir(), out, &o, &e))
        fz_check_loads(out, "the compressed-tensors importer");
    return 0;
}
