/* The packed AWQ weight layout shared by the quantizer (writer), the file
 * reader (size rule) and the kernels. docs/format.md describes the same.
 *
 * A packed tensor of logical shape [rows, cols] with `bits` 4 or 3 and
 * groups of `group` input channels (0 = one group per row) stores:
 *   1. weights, in tiles of 4 rows x 32 columns, tiles row-block major
 *      (all column tiles of rows 0-3, then of rows 4-7, ...);
 *   2. scales, fp16, [rows_p / 4][n_groups][4]  (the 4 rows of a block
 *      side by side, so one 64-bit load feeds 4 accumulator lanes);
 *   3. zero points, u8, [rows_p / 4][n_groups][4].
 * rows_p = rows rounded up to 4, cols_p = cols rounded up to 32. Padding
 * rows have code 0, scale 0, zero 0; padding columns carry their row's
 * last zero point, so they dequantize to exactly 0.
 *
 * INT4 tile (64 bytes) = 4 vectors of 16 bytes; vector v covers columns
 * 8v .. 8v+7 of the tile. Byte 4r + j of vector v holds, for row r of
 * the block: low nibble = column 8v + j, high nibble = column 8v + 4 + j
 * (j = 0..3). So vandq_u8(x, 0x0F) gives 4 rows x 4 consecutive columns
 * and vshrq_n_u8(x, 4) the next 4: each lines up with one 32-bit lane of
 * contiguous int8 activations for vdotq_laneq_s32, which leaves each row's
 * partial sum in its own lane (no horizontal reduction).
 *
 * INT3 tile (48 bytes) = the same 128 codes as bit planes: 32 bytes of
 * low 2 bits, then 16 bytes of the high bit. Code c at INT4 position
 * (vector v, byte i, nibble h) has its low 2 bits in plane byte
 * 16 * (v / 2) + i, bits 2t..2t+1 with t = 2 * (v % 2) + h, and its high
 * bit in high-plane byte i, bit 2v + h. */
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

/* 0, or -1 when bits is not 3 or 4, group is not 0 or a multiple of 32
 * ... (see qpack.c), or the sizes overflow. */
int nb_qlayout_init(nb_qlayout *l, uint64_t rows, uint64_t cols, int bits, int group);

/* Packs codes [rows][cols], scales and zeros [rows][n_groups] into out
 * (total_bytes). */
void nb_qpack(const nb_qlayout *l, const uint8_t *codes, const float *scales,
              const uint8_t *zeros, void *out);

/* Reference dequantization of one logical row: out[c] = (q - z) * s. */
void nb_qrow_ref(const nb_qlayout *l, const void *data, size_t row, float *out);

/* Reference GEMV, exact fp32 activations (W4A16 as in the paper):
 * y[r] = sum_c (q - z) * s * x[c] for r in [r0, r1). */
void nb_qgemv_ref(const nb_qlayout *l, const void *data, const float *x, float *y, size_t r0,
                  size_t r1);

#endif
