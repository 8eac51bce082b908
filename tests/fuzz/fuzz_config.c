/* config.json to model metadata (tools/import_hf.c, read_config): the
 * bytes become config.json of a folder that also holds a tiny valid
 * model.safetensors (fz_tiny_hf), converted by nb_import_hf with the
 * real tok512.model. What converts must load (fz_check_loads). */
#include <stdlib.h>
#include <unistd.h>

#include "../../tools/import/convert.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char config[512], out[512];
    if (!config[0]) {
        char weights[512];
        size_t n;
        uint8_t *st = fz_tiny_hf(&n);
        fz_path(weights, sizeof weights, "model.safetensors");
        fz_path(config, sizeof config, "config.json");
        fz_path(out, sizeof out, "out.nib");
        if (!st || fz_write(weights, st, n))
            abort();
        free(st);
    }
    if (fz_write(config, data, size))
        abort();
    /* the output dtype from the length, which trailing bytes change */
    static const int dtypes[3] = {-1, NB_F16, NB_BF16};
    nb_convert_opts o = {.out_dtype = dtypes[size % 3], .tokenizer_path = fz_tokenizer_path(),
                         .name = "fuzz", .quiet = 1};
    nb_err e;
    if (!nb_import_hf(fz_dir(), out, &o, &e))
        fz_check_loads(out, "the Hugging Face importer");
    return 0;
}
