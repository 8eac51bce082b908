#include "qtensor.h"

#include <string.h>

const char *nb_dtype_name(uint32_t dtype)
{
    switch (dtype) {
    case NB_F32: return "f32";
    case NB_F16: return "f16";
    case NB_BF16: return "bf16";
    case NB_Q4: return "q4";
    case NB_Q3: return "q3";
    default: return "unknown";
    }
}

int nb_dtype_packed(uint32_t dtype)
{
    return dtype == NB_Q4 || dtype == NB_Q3;
}

static int dtype_bits(uint32_t dtype)
{
    return dtype == NB_Q4 ? 4 : dtype == NB_Q3 ? 3 : 0;
}

int nb_qentry_init(struct nb_tensor_entry *t, const char *name, const nb_qlayout *l, nb_err *e)
{
    memset(t, 0, sizeof *t);
    if (strlen(name) >= sizeof t->name)
        return nb_fail(e, "tensor name '%s' is too long", name);
    if ((l->bits != 3 && l->bits != 4) || l->group < 0 || l->group > UINT16_MAX)
        return nb_fail(e, "tensor '%s': %d-bit codes in groups of %d cannot be stored", name,
                       l->bits, l->group);
    strcpy(t->name, name);
    t->dtype = l->bits == 4 ? NB_Q4 : NB_Q3;
    t->n_dims = 2;
    t->shape[0] = l->rows;
    t->shape[1] = l->cols;
    t->size = l->total_bytes;
    t->group_size = (uint16_t)l->group;
    t->bits = (uint8_t)l->bits;
    t->interleave = NB_QTILE_ROWS;
    return 0;
}

int nb_qentry_layout(const struct nb_tensor_entry *t, nb_qlayout *l, nb_err *e)
{
    const char *type = nb_dtype_name(t->dtype);
    if (!nb_dtype_packed(t->dtype))
        return nb_fail(e, "tensor '%s' has dtype %s, which is not packed", t->name, type);
    if (t->n_dims != 2)
        return nb_fail(e, "tensor '%s' is %s with %u dimensions; packed tensors are 2-D",
                       t->name, type, t->n_dims);
    if (t->bits != dtype_bits(t->dtype))
        return nb_fail(e, "tensor '%s' is %s but says %u-bit codes", t->name, type, t->bits);
    if (t->interleave != NB_QTILE_ROWS)
        return nb_fail(e, "tensor '%s' has row interleave %u; %s needs %d", t->name,
                       t->interleave, type, NB_QTILE_ROWS);
    if (t->group_size % NB_QTILE_COLS)
        return nb_fail(e, "tensor '%s' has group size %u, not 0 or a multiple of %d", t->name,
                       t->group_size, NB_QTILE_COLS);
    if (nb_qlayout_init(l, t->shape[0], t->shape[1], t->bits, t->group_size))
        return nb_fail(e, "tensor '%s' has an invalid or overflowing shape", t->name);
    return 0;
}
