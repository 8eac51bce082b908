/* A safetensors file image (tools/safetensors.c): the header is parsed and
 * every tensor checked at open; then every tensor is walked, and what
 * the header promised is checked against what it handed out. */
#include <stdlib.h>
#include <string.h>

#include "../../tools/import/safetensors.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nb_err e;
    nb_st *st = nb_st_open_mem(data, size, "fuzz", &e);
    if (!st)
        return 0;
    const uint8_t *end = data + size;
    size_t n = nb_st_count(st);
    unsigned sum = 0;
    for (size_t i = 0; i < n; i++) {
        const nb_st_tensor *t = nb_st_at(st, i);
        uint64_t elems = 1;
        for (int d = 0; d < t->n_dims; d++)
            elems *= t->shape[d];
        const uint8_t *p = t->data;
        if (!t->name || nb_st_find(st, t->name) != t || t->n_dims < 0 ||
            t->n_dims > NB_ST_MAX_DIMS || elems != t->n_elems ||
            t->size != t->n_elems * nb_st_dtype_size(t->dtype) ||
            !nb_st_dtype_name(t->dtype) || (t->size && (p < data || p > end ||
                                                        t->size > (size_t)(end - p))) ||
            (i && strcmp(nb_st_at(st, i - 1)->name, t->name) >= 0))
            abort(); /* a tensor that disagrees with its own header, or unsorted */
        if (t->size)
            sum += p[0] + p[t->size - 1];
        sum += (unsigned)strlen(t->file);
    }
    nb_st_close(st);
    return (int)(sum & 0);
}
