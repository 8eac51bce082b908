/* Plain-C references of the packed-weight kernels (qkern.h): the
 * arithmetic of the SIMD variants, operation for operation, written for
 * reading rather than speed. fmaf is spelled out because the SIMD code
 * fuses and C only may. */
#include <assert.h>
#include <math.h>

#include "f16.h"
#include "qkern.h"

enum { TILE = NB_QTILE_COLS };

/* Code of (row, col), from the byte layout described in qpack.h. */
static int code_at(const nb_qlayout *l, const uint8_t *w, size_t row, size_t col)
{
    const uint8_t *tile = w + (row / 4 * (l->cols_p / TILE) + col / TILE) * l->tile_bytes;
    size_t c = col % TILE, v = c / 8, h = c % 8 / 4, i = 4 * (row % 4) + c % 4;
    if (l->bits == 4)
        return tile[16 * v + i] >> (4 * h) & 15;
    int lo = tile[16 * (v / 2) + i] >> (2 * (2 * (v % 2) + h)) & 3;
    int hi = tile[32 + i] >> (2 * v + h) & 1;
    return lo | hi << 2;
}

static size_t param_index(const nb_qlayout *l, size_t row, size_t g)
{
    return (row / 4 * l->n_groups + g) * 4 + row % 4;
}

static float scale_at(const nb_qlayout *l, const uint8_t *w, size_t row, size_t g)
{
    const uint8_t *s = w + l->scale_offset + 2 * param_index(l, row, g);
    return nb_f16_to_f32((uint16_t)(s[0] | s[1] << 8));
}

static int zero_at(const nb_qlayout *l, const uint8_t *w, size_t row, size_t g)
{
    return w[l->zero_offset + param_index(l, row, g)];
}

static float q8_row(const nb_qlayout *l, const uint8_t *w, const nb_qact *a, size_t t,
                    size_t r)
{
    float y = 0.0f;
    for (size_t g = 0; g < l->n_groups; g++) {
        size_t b0, b1;
        nb_qgroup_tiles(l, g, &b0, &b1);
        int z = zero_at(l, w, r, g);
        float f = 0.0f;
        for (size_t b = b0; b < b1; b++) {
            int32_t i = z * nb_qact_nsum(a, t, b);
            for (size_t c = b * TILE; c < (b + 1) * TILE; c++)
                i += code_at(l, w, r, c) * nb_qact_code(a, t, c);
            f = fmaf((float)i, nb_qact_scale(a, t, b), f);
        }
        y = fmaf(f, scale_at(l, w, r, g), y);
    }
    return y;
}

void nb_qgemv_q8_ref(const nb_qlayout *l, const void *w, const nb_qact *a, float *y, size_t r0,
                     size_t r1)
{
    assert(a->cols_p == l->cols_p && a->ntok >= 1 && r1 <= l->rows);
    for (size_t r = r0; r < r1; r++)
        y[r] = q8_row(l, w, a, 0, r);
}

void nb_qgemm_q8_ref(const nb_qlayout *l, const void *w, const nb_qact *a, float *y, size_t ldy,
                     size_t r0, size_t r1)
{
    assert(a->cols_p == l->cols_p && r1 <= l->rows);
    for (size_t t = 0; t < a->ntok; t++)
        for (size_t r = r0; r < r1; r++)
            y[t * ldy + r] = q8_row(l, w, a, t, r);
}

static float f32_row(const nb_qlayout *l, const uint8_t *w, const float *x, size_t r)
{
    float y = 0.0f;
    for (size_t g = 0; g < l->n_groups; g++) {
        size_t b0, b1;
        nb_qgroup_tiles(l, g, &b0, &b1);
        int z = zero_at(l, w, r, g);
        float p[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (size_t c = b0 * TILE; c < b1 * TILE; c++) {
            float xc = c < l->cols ? x[c] : 0.0f;
            p[c % 4] = fmaf((float)(code_at(l, w, r, c) - z), xc, p[c % 4]);
        }
        y = fmaf((p[0] + p[1]) + (p[2] + p[3]), scale_at(l, w, r, g), y);
    }
    return y;
}

void nb_qgemv_f32_ref(const nb_qlayout *l, const void *w, const float *x, float *y, size_t r0,
                      size_t r1)
{
    for (size_t r = r0; r < r1; r++)
        y[r] = f32_row(l, w, x, r);
}
