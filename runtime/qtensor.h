/* Dtypes of nibble files (names; nb_dtype_width is in nibformat.h) and
 * packed (AWQ) tensors: the bridge between a table entry and the layout
 * of neon/qpack.h, used by the writer side (quantizer) and the reader
 * side (loader, models) so both apply the same rules. Below model.c:
 * nothing here calls the loader. */
#ifndef NIBBLE_QTENSOR_H
#define NIBBLE_QTENSOR_H

#include "../neon/qpack.h"
#include "base/err.h"
#include "nibformat.h"

/* 1 for NB_Q4 and NB_Q3. */
int nb_dtype_packed(uint32_t dtype);

/* Fills an entry for a packed tensor named name with layout l: dtype
 * (NB_Q4 or NB_Q3 from l->bits), shape [rows, cols], size total_bytes,
 * group_size, bits, interleave 4. Ready for nb_writer_add_entry. */
int nb_qentry_init(struct nb_tensor_entry *t, const char *name, const nb_qlayout *l, nb_err *e);

/* Validates a packed entry's dtype, rank, bits, interleave, group size and
 * shape and builds its layout (the caller compares t->size with
 * l->total_bytes). One line in e on failure. */
int nb_qentry_layout(const struct nb_tensor_entry *t, nb_qlayout *l, nb_err *e);

#endif
