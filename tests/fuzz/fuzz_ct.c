/* The compressed-tensors importer (tools/import/import_ct.c) on a folder made of the
 * input: a little-endian u32 n, n bytes of config.json, and the rest as
 * model.safetensors; tokenizer tok512.model. What converts must load. */
#include "../../tools/import/convert.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_import_folder(data, size, nb_import_ct, "the compressed-tensors importer");
    return 0;
}
