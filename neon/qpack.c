#include "qpack.h"

#include <stdint.h>
#include <string.h>

#include "f16.h"

/* a * b + c into *out, or 0 when it does not fit a size_t (a 32-bit
 * board must refuse a tensor a 64-bit writer could describe). */
static int mul_add(uint64_t a, uint64_t b, uint64_t c, size_t *out)
{
    if (b && a > (SIZE_MAX - c) / b)
        return 0;
    *out = (size_t)(a * b + c);
    return 1;
}

int nb_qlayout_init(nb_qlayout *l, uint64_t rows, uint64_t cols, int bits, int group)
{
    memset(l, 0, sizeof *l);
    if ((bits != 3 && bits != 4) || group < 0 || group % NB_QTILE_COLS || !rows || !cols)
        return -1;
    if (rows > SIZE_MAX - (NB_QTILE_ROWS - 1) || cols > SIZE_MAX - (NB_QTILE_COLS - 1))
        return -1;
    size_t n_groups = group ? (size_t)((cols - 1) / (uint64_t)group + 1) : 1;
    size_t rows_p = (size_t)((rows + NB_QTILE_ROWS - 1) / NB_QTILE_ROWS * NB_QTILE_ROWS);
    size_t cols_p = (size_t)((cols + NB_QTILE_COLS - 1) / NB_QTILE_COLS * NB_QTILE_COLS);
    size_t tile_bytes = (size_t)(NB_QTILE_ROWS * NB_QTILE_COLS * bits / 8);
    size_t tiles, weight_bytes, params, zero_offset, total;
    if (!mul_add(rows_p / NB_QTILE_ROWS, cols_p / NB_QTILE_COLS, 0, &tiles) ||
        !mul_add(tiles, tile_bytes, 0, &weight_bytes) || !mul_add(rows_p, n_groups, 0, &params) ||
        !mul_add(params, 2, weight_bytes, &zero_offset) ||
        !mul_add(params, 1, zero_offset, &total))
        return -1;
    *l = (nb_qlayout){.rows = (size_t)rows, .cols = (size_t)cols, .rows_p = rows_p,
                      .cols_p = cols_p, .n_groups = n_groups, .bits = bits, .group = group,
                      .tile_bytes = tile_bytes, .weight_bytes = weight_bytes,
                      .scale_offset = weight_bytes, .zero_offset = zero_offset,
                      .total_bytes = total};
    return 0;
}

/* A run of bits inside the weight section. */
struct bitfield {
    size_t byte;
    unsigned shift, width;
};

/* The one place that says where code (row, col) lives (qpack.h): its
 * bit fields, low bits first. Pack and unpack both go through here, so
 * they cannot disagree with each other, only with the comment (which
 * tests/test_quant.c checks from the raw bytes). */
static int code_fields(const nb_qlayout *l, size_t row, size_t col, struct bitfield f[2])
{
    size_t tile = row / NB_QTILE_ROWS * (l->cols_p / NB_QTILE_COLS) + col / NB_QTILE_COLS;
    size_t base = tile * l->tile_bytes;
    unsigned c = (unsigned)(col % NB_QTILE_COLS), r = (unsigned)(row % NB_QTILE_ROWS);
    unsigned v = c / 8, h = c % 8 / 4, i = 4 * r + c % 4; /* INT4 vector, nibble, byte */
    if (l->bits == 4) {
        f[0] = (struct bitfield){base + 16 * v + i, 4 * h, 4};
        return 1;
    }
    f[0] = (struct bitfield){base + 16 * (v / 2) + i, 2 * (2 * (v % 2) + h), 2};
    f[1] = (struct bitfield){base + 32 + i, 2 * v + h, 1};
    return 2;
}

static void put_code(const nb_qlayout *l, uint8_t *w, size_t row, size_t col, unsigned code)
{
    struct bitfield f[2];
    int n = code_fields(l, row, col, f);
    for (int k = 0; k < n; k++) {
        unsigned mask = (1u << f[k].width) - 1;
        w[f[k].byte] = (uint8_t)((w[f[k].byte] & ~(mask << f[k].shift)) |
                                 (code & mask) << f[k].shift);
        code >>= f[k].width;
    }
}

static unsigned get_code(const nb_qlayout *l, const uint8_t *w, size_t row, size_t col)
{
    struct bitfield f[2];
    int n = code_fields(l, row, col, f);
    unsigned code = 0, at = 0;
    for (int k = 0; k < n; k++) {
        code |= (w[f[k].byte] >> f[k].shift & ((1u << f[k].width) - 1)) << at;
        at += f[k].width;
    }
    return code;
}

/* Index of (row, group) in the scale and zero arrays: [rows_p/4][n_groups][4]. */
static size_t param_index(const nb_qlayout *l, size_t row, size_t g)
{
    return (row / NB_QTILE_ROWS * l->n_groups + g) * NB_QTILE_ROWS + row % NB_QTILE_ROWS;
}

static float scale_at(const nb_qlayout *l, const uint8_t *p, size_t row, size_t g)
{
    const uint8_t *s = p + l->scale_offset + 2 * param_index(l, row, g);
    return nb_f16_to_f32((uint16_t)(s[0] | s[1] << 8));
}

static int zero_at(const nb_qlayout *l, const uint8_t *p, size_t row, size_t g)
{
    return p[l->zero_offset + param_index(l, row, g)];
}

/* End of the group that starts at column c, clipped to the logical row
 * (the last group may be ragged); written so it cannot overflow. */
static size_t group_end(const nb_qlayout *l, size_t c)
{
    size_t left = l->cols - c;
    return l->group && (size_t)l->group < left ? c + (size_t)l->group : l->cols;
}

static void pack_row(const nb_qlayout *l, const uint8_t *codes, const float *scales,
                     const uint8_t *zeros, size_t row, uint8_t *out)
{
    const uint8_t *q = codes + row * l->cols;
    unsigned pad = zeros[row * l->n_groups + l->n_groups - 1]; /* dequantizes to 0 */
    for (size_t c = 0; c < l->cols_p; c++)
        put_code(l, out, row, c, c < l->cols ? q[c] : pad);
    for (size_t g = 0; g < l->n_groups; g++) {
        size_t k = param_index(l, row, g);
        uint16_t h = nb_f32_to_f16(scales[row * l->n_groups + g]);
        out[l->scale_offset + 2 * k] = (uint8_t)(h & 0xff);
        out[l->scale_offset + 2 * k + 1] = (uint8_t)(h >> 8);
        out[l->zero_offset + k] = zeros[row * l->n_groups + g];
    }
}

void nb_qpack(const nb_qlayout *l, const uint8_t *codes, const float *scales,
              const uint8_t *zeros, void *out)
{
    memset(out, 0, l->total_bytes); /* padding rows: code, scale and zero 0 */
    for (size_t r = 0; r < l->rows; r++)
        pack_row(l, codes, scales, zeros, r, out);
}

void nb_qrow_ref(const nb_qlayout *l, const void *data, size_t row, float *out)
{
    for (size_t g = 0, c = 0; g < l->n_groups; g++) {
        float s = scale_at(l, data, row, g);
        int z = zero_at(l, data, row, g);
        for (size_t end = group_end(l, c); c < end; c++)
            out[c] = (float)((int)get_code(l, data, row, c) - z) * s;
    }
}

/* Same products, same column order and fp32 accumulation as nb_gemv_ref
 * over the dequantized rows, so a packed model and its f32 twin agree. */
void nb_qgemv_ref(const nb_qlayout *l, const void *data, const float *x, float *y, size_t r0,
                  size_t r1)
{
    for (size_t r = r0; r < r1; r++) {
        float acc = 0.0f;
        for (size_t g = 0, c = 0; g < l->n_groups; g++) {
            float s = scale_at(l, data, r, g);
            int z = zero_at(l, data, r, g);
            for (size_t end = group_end(l, c); c < end; c++) {
                float w = (float)((int)get_code(l, data, r, c) - z) * s;
                acc += w * x[c];
            }
        }
        y[r] = acc;
    }
}
