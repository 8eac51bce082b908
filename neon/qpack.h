/* The packed AWQ weight layout shared by the quantizer (writer), the file
 * reader (size rule) and the kernels. docs/format.md describes the same.
 *
 * A packed tensor of logical shape [rows, cols] with `bits` 4 or 3 and
 * groups of `group` input channels (0 = one group per row) stores three
 * sections back to back, without padding between them:
 *   1. weights, in tiles of 4 rows x 32 columns, tiles row-block major
 *      (all column tiles of rows 0-3, then of rows 4-7, ...): code
 *      (row, col) is in tile (row / 4) * (cols_p / 32) + col / 32, which
 *      starts at byte tile * tile_bytes, as tile row r = row % 4 and tile
 *      column c = col % 32;
 *   2. scales, fp16 little-endian, [rows_p / 4][n_groups][4]  (the 4 rows
 *      of a block side by side, so one 64-bit load feeds 4 accumulator
 *      lanes): (row, g) is element ((row / 4) * n_groups + g) * 4 + row % 4;
 *   3. zero points, u8, [rows_p / 4][n_groups][4], indexed the same way.
 * rows_p = rows rounded up to 4, cols_p = cols rounded up to 32,
 * n_groups = ceil(cols / group) (1 when group is 0): the last group is
 * ragged when group does not divide cols. Sizes:
 *   weight_bytes = (rows_p / 4) * (cols_p / 32) * tile_bytes (64 or 48)
 *   scale_offset = weight_bytes            (a multiple of 16)
 *   zero_offset  = scale_offset + 2 * rows_p * n_groups   (a multiple of 8)
 *   total_bytes  = zero_offset + rows_p * n_groups   (the file's size rule)
 * group is a multiple of 32 so that every tile lies inside one group, and
 * the padding columns (cols .. cols_p-1) inside the row's last group.
 * Padding rows (rows .. rows_p-1) have every code 0, scale 0 and zero 0;
 * padding columns of a real row have code = the zero point of the row's
 * last group. Either way they dequantize to exactly 0.
 *
 * INT4 tile (64 bytes) = 4 vectors of 16 bytes; vector v covers columns
 * 8v .. 8v+7 of the tile. Byte 4r + j of vector v (tile byte 16v + 4r + j)
 * holds, for row r of the block: low nibble = column 8v + j, high nibble
 * = column 8v + 4 + j (j = 0..3). So vandq_u8(x, 0x0F) gives 4 rows x 4
 * consecutive columns and vshrq_n_u8(x, 4) the next 4: each lines up with
 * one 32-bit lane of contiguous int8 activations for vdotq_laneq_s32,
 * which leaves each row's partial sum in its own lane (no horizontal
 * reduction).
 *
 * INT3 tile (48 bytes) = the same 128 codes as bit planes: tile bytes
 * 0..31 hold the low 2 bits, bytes 32..47 the high bit. The code at INT4
 * position (vector v, byte i, nibble h) has its low 2 bits in tile byte
 * 16 * (v / 2) + i, bits 2t..2t+1 with t = 2 * (v % 2) + h, and its high
 * bit in tile byte 32 + i, bit 2v + h (bit 0 = least significant). */
#ifndef NIBBLE_QPACK_H
#define NIBBLE_QPACK_H

#include <stddef.h>
#include <stdint.h>

#define NB_QTILE_ROWS 4
#define NB_QTILE_COLS 32

typedef struct nb_qlayout {
    size_t rows, cols;     /* logical shape */
    size_t rows_p, cols_p; /* padded to the tile */
    size_t n_groups;
    int bits, group; /* group 0 = one group per row */
    size_t tile_bytes, weight_bytes, scale_offset, zero_offset, total_bytes;
} nb_qlayout;

/* Fills every field of l: 0, or -1 (l zeroed) when bits is not 3 or 4,
 * group is negative or not a multiple of 32, rows or cols is 0, or a size
 * does not fit a size_t. group may exceed cols (one ragged group). */
int nb_qlayout_init(nb_qlayout *l, uint64_t rows, uint64_t cols, int bits, int group);

/* Packs codes [rows][cols] (each < 2^bits), scales and zeros
 * [rows][n_groups] (as nb_quant_row makes them) into out, writing all
 * total_bytes bytes, padding included. Scales are stored as fp16,
 * rounded to nearest even if they are not already representable. */
void nb_qpack(const nb_qlayout *l, const uint8_t *codes, const float *scales,
              const uint8_t *zeros, void *out);

/* Reference dequantization of one logical row (out[cols]):
 * out[c] = (float)(q - z) * s, bit-identical to nb_fake_quant_row on the
 * weights nb_quant_row encoded. */
void nb_qrow_ref(const nb_qlayout *l, const void *data, size_t row, float *out);

/* The column tiles [*t0, *t1) of group g (the last one ragged or not). */
static inline void nb_qgroup_tiles(const nb_qlayout *l, size_t g, size_t *t0, size_t *t1)
{
    size_t n = l->cols_p / NB_QTILE_COLS;
    size_t per = l->group ? (size_t)l->group / NB_QTILE_COLS : n;
    *t0 = g * per;
    *t1 = *t0 + per < n ? *t0 + per : n;
}

/* Reference GEMV, exact fp32 activations (W4A16 as in the paper):
 * y[r] = sum_c ((q - z) * s) * x[c] for r in [r0, r1), x[cols], y indexed
 * by absolute row; fp32 accumulation in column order, the same sums as
 * nb_gemv_ref over the dequantized rows. */
void nb_qgemv_ref(const nb_qlayout *l, const void *data, const float *x, float *y, size_t r0,
                  size_t r1);

#endif
