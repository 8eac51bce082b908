/* AWQ quantization and the packed layout, end to end through plain C:
 * (a) the quantizer formulas on groups worked out by hand;
 * (b) pack / unpack / gemv round trips, with the packed bytes checked
 *     against an image built independently from the qpack.h comment;
 * (c) layout init refusals;
 * (d) packed tensors in files: the loader's checks, and a tiny LLaMA
 *     whose linears are packed gives the logits of its f32 twin. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../models/net.h"
#include "../neon/f16.h"
#include "../neon/qpack.h"
#include "../neon/quant.h"
#include "../runtime/model.h"
#include "../runtime/qtensor.h"
#include "../runtime/writer.h"
#include "testutil.h"

/* ---- (a) the quantizer on hand-made groups ---------------------------- */

struct hand {
    const char *name;
    nb_qspec spec;
    int n;
    float w[8];
    float s;
    int z;
    uint8_t q[8];
    float deq[8];
};

static const struct hand hands[] = {
    /* maxq 15, mn -1.5, mx 6: s = 7.5 / 15 = 0.5 (fp16-exact), z = -rne(-3) = 3.
     * w/s = -3 12 .5 1.5 2.5 -.5 -1.5 4; rne, ties to even: -3 12 0 2 2 -0 -2 4
     * (half away from zero would give 1 2 3 -1 -2 on the ties, half up 1 2 3 0 -1).
     * q = that + 3; deq = (q - 3) * 0.5. */
    {"int4 asymmetric, ties to even", {4, 0, 0}, 8,
     {-1.5f, 6.0f, 0.25f, 0.75f, 1.25f, -0.25f, -0.75f, 2.0f}, 0.5f, 3,
     {0, 15, 3, 5, 5, 3, 1, 7}, {-1.5f, 6.0f, 0, 1.0f, 1.0f, 0, -1.0f, 2.0f}},
    /* maxq 7, mn -0.5, mx 3: s = 3.5 / 7 = 0.5, z = -rne(-1) = 1.
     * w/s = -1 6 2.5 1.5 .25 -> -1 6 2 2 0 -> q 0 7 3 3 1 -> deq -.5 3 1 1 0. */
    {"int3 asymmetric", {3, 0, 0}, 5, {-0.5f, 3.0f, 1.25f, 0.75f, 0.125f}, 0.5f, 1,
     {0, 7, 3, 3, 1}, {-0.5f, 3.0f, 1.0f, 1.0f, 0}},
    /* range 1: s = fp16(1/15) = 1092 * 2^-14 = 0.066650390625, z = 0.
     * 1/s = 15.0037 -> 15 -> deq 16380/16384; 0.5/s = 7.5018 -> 8 -> 8736/16384:
     * the codes are computed with the rounded scale. */
    {"int4 scale rounded to fp16 first", {4, 0, 0}, 3, {0, 1.0f, 0.5f}, 0.066650390625f, 0,
     {0, 15, 8}, {0, 0.999755859375f, 0.533203125f}},
    /* All positive: s = 7.5 / 15 = 0.5, z = clamp(-rne(4), 0, 15) = 0, so codes
     * clamp(rne(w/s), 0, 15) = 4 10 15 (19 saturates): 9.5 comes back as maxq*s. */
    {"int4 clamp quirk, all positive", {4, 0, 0}, 3, {2.0f, 5.0f, 9.5f}, 0.5f, 0, {4, 10, 15},
     {2.0f, 5.0f, 7.5f}},
    /* All negative: s = 0.5, z = clamp(-rne(-19), 0, 15) = 15, codes
     * clamp(rne(w/s), -15, 0) + 15 = (-15 -10 -4) + 15: -9.5 saturates at -7.5. */
    {"int4 clamp quirk, all negative", {4, 0, 0}, 3, {-9.5f, -5.0f, -2.0f}, 0.5f, 15,
     {0, 5, 11}, {-7.5f, -5.0f, -2.0f}},
    /* Constant: s = fp16(1e-5 / 15) = fp16(6.67e-7), a subnormal half:
     * 11.18 units of 2^-24 -> 11 * 2^-24. z = clamp(-rne(0.3/s = 457560), 0, 15)
     * = 0, q = clamp(457560, 0, 15) = 15: deq = 165 * 2^-24 = 9.83e-6, not 0.3. */
    {"int4 constant group", {4, 0, 0}, 3, {0.3f, 0.3f, 0.3f}, 11.0f / 16777216.0f, 0,
     {15, 15, 15}, {165.0f / 16777216.0f, 165.0f / 16777216.0f, 165.0f / 16777216.0f}},
    /* Symmetric: maxq 7, s = 3.5 / 7 = 0.5, z fixed at 8. w/s = 7 -7 .5 -1.5 2
     * -> 7 -7 0 -2 2 -> q 15 1 8 6 10 -> deq 3.5 -3.5 0 -1 1. */
    {"int4 symmetric", {4, 0, 1}, 5, {3.5f, -3.5f, 0.25f, -0.75f, 1.0f}, 0.5f, 8,
     {15, 1, 8, 6, 10}, {3.5f, -3.5f, 0, -1.0f, 1.0f}},
    /* Symmetric int3: maxq 3, s = 1.5 / 3 = 0.5, z = 4. w/s = -3 3 1.5 -> -3 3 2. */
    {"int3 symmetric", {3, 0, 1}, 3, {-1.5f, 1.5f, 0.75f}, 0.5f, 4, {1, 7, 6},
     {-1.5f, 1.5f, 1.0f}},
};

static void check_hand(const struct hand *h)
{
    uint8_t q[8], z = 0xaa;
    float s = -1, deq[8];
    nb_quant_row(h->w, (size_t)h->n, &h->spec, q, &s, &z);
    CHECK(s == h->s && z == h->z, "%s: s %.9g z %d, want %.9g %d", h->name, s, z, h->s, h->z);
    CHECK(!memcmp(q, h->q, (size_t)h->n), "%s: codes differ", h->name);
    memcpy(deq, h->w, sizeof deq);
    nb_fake_quant_row(deq, (size_t)h->n, &h->spec);
    for (int i = 0; i < h->n; i++)
        CHECK(deq[i] == h->deq[i], "%s: deq[%d] = %.9g, want %.9g", h->name, i, deq[i],
              h->deq[i]);
}

/* 172 weights: groups 0-4 (32 each) hold -1.5, 6, then 0.5*(j%8) - 1, so
 * s = 0.5, z = 3 and codes 0, 15, j%8 + 1; the ragged group 5 (12 weights)
 * holds -0.75, 3, then 0.25*(j%4), so s = 3.75/15 = 0.25, z = 3 and codes
 * 0, 15, j%4 + 3. */
static void ragged_row(float *w)
{
    for (int j = 0; j < 160; j++)
        w[j] = j % 32 == 0 ? -1.5f : j % 32 == 1 ? 6.0f : 0.5f * (float)(j % 8) - 1.0f;
    for (int j = 0; j < 12; j++)
        w[160 + j] = j == 0 ? -0.75f : j == 1 ? 3.0f : 0.25f * (float)(j % 4);
}

static void check_ragged(void)
{
    float w[172], s[8], deq[172];
    uint8_t q[172], z[8];
    nb_qspec spec = {4, 32, 0};
    ragged_row(w);
    for (int i = 0; i < 8; i++)
        s[i] = -7.0f, z[i] = 0xaa; /* sentinels past the last group */
    CHECK(nb_qgroups(172, &spec) == 6, "172 / 32 makes %zu groups", nb_qgroups(172, &spec));
    nb_quant_row(w, 172, &spec, q, s, z);
    for (int g = 0; g < 6; g++)
        CHECK(s[g] == (g < 5 ? 0.5f : 0.25f) && z[g] == 3, "group %d: s %g z %d", g, s[g], z[g]);
    CHECK(s[6] == -7.0f && z[6] == 0xaa, "wrote past the 6th group");
    int bad = 0;
    for (int j = 0; j < 172; j++) {
        int k = j < 160 ? j % 32 : j - 160;
        int want = k == 0 ? 0 : k == 1 ? 15 : j < 160 ? j % 8 + 1 : k % 4 + 3;
        bad += q[j] != want;
    }
    CHECK(!bad, "ragged: %d codes differ", bad);
    memcpy(deq, w, sizeof w);
    nb_fake_quant_row(deq, 172, &spec);
    for (int j = 0; j < 172; j++)
        bad += deq[j] != (float)(q[j] - 3) * s[j / 32];
    CHECK(!bad, "ragged: %d dequantized values differ", bad);
}

/* The same row as one group: mn -1.5, mx 6, so s = 0.5, z = 3 over all of
 * it. Groups 0-4 code as before; the tail's w/s = -1.5, 6, then 0 .5 1 1.5
 * repeating, round (ties to even) to -2, 6, 0 0 1 2: codes 1, 9, 3 3 4 5. */
static void check_per_row(void)
{
    float w[172], s[2] = {-7.0f, -7.0f};
    uint8_t q[172], z[2] = {0xaa, 0xaa};
    nb_qspec spec = {4, 0, 0};
    ragged_row(w);
    CHECK(nb_qgroups(172, &spec) == 1, "per-row groups");
    nb_quant_row(w, 172, &spec, q, s, z);
    CHECK(s[0] == 0.5f && z[0] == 3 && s[1] == -7.0f && z[1] == 0xaa, "per row: s %g z %d",
          s[0], z[0]);
    static const uint8_t tail[4] = {3, 3, 4, 5}; /* 0.25 * (j % 4) / 0.5 = 0 .5 1 1.5 */
    int bad = q[160] != 1 || q[161] != 9;
    for (int j = 162; j < 172; j++)
        bad += q[j] != tail[(j - 160) % 4];
    for (int j = 0; j < 160; j++)
        bad += q[j] != (j % 32 == 0 ? 0 : j % 32 == 1 ? 15 : j % 8 + 1);
    CHECK(!bad, "per row: %d codes differ", bad);
}

/* ---- (b) the packed layout ------------------------------------------- */

/* A quantized matrix as nb_quant_row leaves it. */
struct qmat {
    size_t rows, cols, ng;
    int bits;
    uint8_t *codes, *zeros;
    float *scales;
};

/* The code the layout puts at (row, col) of the padded grid: padding rows
 * hold 0, padding columns the zero point of the row's last group. */
static unsigned grid_code(const struct qmat *m, size_t row, size_t col)
{
    if (row >= m->rows)
        return 0;
    if (col >= m->cols)
        return m->zeros[row * m->ng + m->ng - 1];
    return m->codes[row * m->cols + col];
}

static unsigned nibble(uint8_t byte, unsigned h)
{
    return h ? byte >> 4 : byte & 15u;
}

/* INT3 planes from the INT4 image of a tile, byte by byte as the qpack.h
 * comment reads: low-plane byte 16p + i gathers bits 2t..2t+1 from vector
 * 2p + t/2, nibble t%2 of byte i; high byte i gathers bit 2v+h. */
static void to_planes(const uint8_t *int4, uint8_t *out)
{
    for (unsigned p = 0; p < 2; p++)
        for (unsigned i = 0; i < 16; i++) {
            unsigned b = 0;
            for (unsigned t = 0; t < 4; t++)
                b |= (nibble(int4[16 * (2 * p + t / 2) + i], t % 2) & 3u) << (2 * t);
            out[16 * p + i] = (uint8_t)b;
        }
    for (unsigned i = 0; i < 16; i++) {
        unsigned b = 0;
        for (unsigned v = 0; v < 4; v++)
            for (unsigned h = 0; h < 2; h++)
                b |= (nibble(int4[16 * v + i], h) >> 2 & 1u) << (2 * v + h);
        out[32 + i] = (uint8_t)b;
    }
}

/* The whole packed image, built from the comment without qpack.c: walks
 * the bytes of each tile and asks which codes they hold (qpack.c goes the
 * other way, from a code to its byte), so a layout bug in qpack.c cannot
 * hide behind a matching bug in its unpacker. Returns the size. */
static size_t expected_image(const struct qmat *m, uint8_t **img)
{
    size_t rows_p = (m->rows + 3) / 4 * 4, col_tiles = (m->cols + 31) / 32;
    size_t tile = m->bits == 4 ? 64 : 48, wbytes = rows_p / 4 * col_tiles * tile;
    size_t params = rows_p * m->ng, total = wbytes + 3 * params;
    uint8_t *out = calloc(total, 1);
    for (size_t b = 0; b < rows_p / 4; b++)
        for (size_t t = 0; t < col_tiles; t++) {
            uint8_t int4[64];
            for (size_t k = 0; k < 64; k++) { /* vector k/16, row (k%16)/4, j = k%4 */
                size_t row = 4 * b + k % 16 / 4, col = 32 * t + 8 * (k / 16) + k % 4;
                int4[k] = (uint8_t)(grid_code(m, row, col) | grid_code(m, row, col + 4) << 4);
            }
            uint8_t *dst = out + (b * col_tiles + t) * tile;
            if (m->bits == 4)
                memcpy(dst, int4, 64);
            else
                to_planes(int4, dst);
        }
    for (size_t row = 0; row < m->rows; row++)
        for (size_t g = 0; g < m->ng; g++) {
            size_t k = (row / 4 * m->ng + g) * 4 + row % 4;
            uint16_t h = nb_f32_to_f16(m->scales[row * m->ng + g]);
            out[wbytes + 2 * k] = (uint8_t)h;
            out[wbytes + 2 * k + 1] = (uint8_t)(h >> 8);
            out[wbytes + 2 * params + k] = m->zeros[row * m->ng + g];
        }
    *img = out;
    return total;
}

static void check_fields(const nb_qlayout *l, size_t rows, size_t cols, int bits, int group)
{
    size_t rows_p = (rows + 3) / 4 * 4, cols_p = (cols + 31) / 32 * 32;
    size_t ng = group ? (cols + (size_t)group - 1) / (size_t)group : 1;
    size_t tile = bits == 4 ? 64 : 48, w = rows_p / 4 * cols_p / 32 * tile;
    CHECK(l->rows == rows && l->cols == cols && l->rows_p == rows_p && l->cols_p == cols_p &&
              l->n_groups == ng && l->bits == bits && l->group == group &&
              l->tile_bytes == tile && l->weight_bytes == w && l->scale_offset == w &&
              l->zero_offset == w + 2 * rows_p * ng && l->total_bytes == w + 3 * rows_p * ng,
          "layout fields for %zux%zu q%d g%d", rows, cols, bits, group);
}

/* Random rows, some all positive (z = 0) and some all negative (z = maxq),
 * so the padding columns carry different zero points. */
static void random_rows(float *w, size_t rows, size_t cols, uint64_t *seed)
{
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) {
            float v = 0.3f * tu_randf(seed);
            w[r * cols + c] = r % 3 == 1 ? fabsf(v) : r % 3 == 2 ? -fabsf(v) : v;
        }
}

static void check_rows(const nb_qlayout *l, const void *packed, const float *w,
                       const nb_qspec *spec, const char *what)
{
    float *want = malloc(l->cols * sizeof *want), *got = malloc(l->cols * sizeof *got);
    int bad = 0;
    for (size_t r = 0; r < l->rows; r++) {
        memcpy(want, w + r * l->cols, l->cols * sizeof *want);
        nb_fake_quant_row(want, l->cols, spec);
        nb_qrow_ref(l, packed, r, got);
        bad += memcmp(want, got, l->cols * sizeof *got) != 0;
    }
    CHECK(!bad, "%s: %d rows do not dequantize bit-exactly", what, bad);
    free(want);
    free(got);
}

/* nb_qgemv_ref against a double-precision dot of the dequantized rows:
 * within 1e-5 of sum |w x| (relative to the terms, as cancellation can
 * make the sum itself arbitrarily small); a sub-range touches only its rows. */
static void check_gemv(const nb_qlayout *l, const void *packed, uint64_t *seed, const char *what)
{
    size_t rows = l->rows, cols = l->cols;
    float *x = malloc(cols * sizeof *x), *w = malloc(cols * sizeof *w);
    float *y = malloc((rows + 1) * sizeof *y), *y2 = malloc((rows + 1) * sizeof *y2);
    for (size_t c = 0; c < cols; c++)
        x[c] = tu_randf(seed);
    y[rows] = y2[rows] = -3.0f;
    nb_qgemv_ref(l, packed, x, y, 0, rows);
    int bad = 0;
    for (size_t r = 0; r < rows; r++) {
        nb_qrow_ref(l, packed, r, w);
        double dot = 0, mag = 0;
        for (size_t c = 0; c < cols; c++)
            dot += (double)w[c] * x[c], mag += fabs((double)w[c] * x[c]);
        bad += fabs(y[r] - dot) > 1e-5 * mag;
    }
    size_t r0 = rows / 3, r1 = rows - rows / 4;
    for (size_t r = 0; r <= rows; r++)
        y2[r] = -2.0f;
    nb_qgemv_ref(l, packed, x, y2, r0, r1);
    for (size_t r = 0; r < rows; r++)
        bad += r >= r0 && r < r1 ? y2[r] != y[r] : y2[r] != -2.0f;
    CHECK(!bad && y[rows] == -3.0f && y2[rows] == -2.0f, "%s: %d gemv rows off", what, bad);
    free(x);
    free(w);
    free(y);
    free(y2);
}

static void check_roundtrip(size_t rows, size_t cols, int bits, int group, int sym,
                            uint64_t *seed)
{
    char what[96];
    snprintf(what, sizeof what, "%zux%zu q%d g%d%s", rows, cols, bits, group, sym ? " sym" : "");
    nb_qlayout l;
    if (nb_qlayout_init(&l, rows, cols, bits, group)) {
        CHECK(0, "%s: layout refused", what);
        return;
    }
    check_fields(&l, rows, cols, bits, group);
    nb_qspec spec = {bits, group, sym};
    struct qmat m = {rows, cols, l.n_groups, bits, malloc(rows * cols), malloc(rows * l.n_groups),
                     malloc(rows * l.n_groups * sizeof(float))};
    float *w = malloc(rows * cols * sizeof *w);
    random_rows(w, rows, cols, seed);
    for (size_t r = 0; r < rows; r++)
        nb_quant_row(w + r * cols, cols, &spec, m.codes + r * cols, m.scales + r * m.ng,
                     m.zeros + r * m.ng);
    uint8_t *packed = malloc(l.total_bytes), *want = NULL;
    memset(packed, 0xcd, l.total_bytes); /* every byte must be written */
    nb_qpack(&l, m.codes, m.scales, m.zeros, packed);
    size_t n = expected_image(&m, &want);
    CHECK(n == l.total_bytes && !memcmp(packed, want, n), "%s: packed bytes differ from the "
          "layout comment", what);
    check_rows(&l, packed, w, &spec, what);
    check_gemv(&l, packed, seed, what);
    free(m.codes), free(m.zeros), free(m.scales), free(w), free(packed), free(want);
}

/* A few bytes traced by hand from the comment, in case expected_image and
 * qpack.c ever share a misreading. One 4x32 tile, codes = column % 16
 * (INT4) or column % 8 (INT3), same for every row. */
static void check_hand_tile(void)
{
    uint8_t codes[128], zeros[4] = {0};
    float scales[4] = {1, 1, 1, 1};
    uint8_t out[64 + 12];
    nb_qlayout l;
    for (int bits = 3; bits <= 4; bits++) {
        for (int i = 0; i < 128; i++)
            codes[i] = (uint8_t)(i % 32 % (1 << bits));
        nb_qlayout_init(&l, 4, 32, bits, 0);
        nb_qpack(&l, codes, scales, zeros, out);
        if (bits == 4) {
            /* byte 0: row 0, low = col 0 (0), high = col 4 (4); byte 21 = vector 1
             * byte 5 = row 1, j 1: cols 9 and 13; byte 63: row 3, cols 27, 31 */
            CHECK(out[0] == 0x40 && out[21] == 0xd9 && out[63] == 0xfb, "int4 tile bytes");
            CHECK(out[64] == 0x00 && out[65] == 0x3c, "scale 1.0 is fp16 0x3c00, LE");
        } else {
            /* low plane byte 1: row 0, j 1, t = 0..3 <- cols 1 5 9 13 = codes 1 5 1 5,
             * low bits 01 each: 0x55. high byte 33: cols 1 5 9 ... 29 at bits 2v+h,
             * high bits 0 1 0 1 ...: 0xaa. low byte 16+3: cols 19 23 27 31 = 3 7 3 7:
             * 0xff; high byte 35: cols 3 7 11 ... = 3 7 3 7 ...: 0xaa. */
            CHECK(out[1] == 0x55 && out[33] == 0xaa && out[19] == 0xff && out[35] == 0xaa,
                  "int3 tile bytes %02x %02x %02x %02x", out[1], out[33], out[19], out[35]);
        }
    }
}

/* 5x33, q4, g32: traced by hand. Tiles: block 0 at 0 and 64, block 1 at
 * 128 and 192; scales at 256 ([2][2][4] fp16), zeros at 288. */
static void check_hand_padding(void)
{
    nb_qlayout l;
    nb_qlayout_init(&l, 5, 33, 4, 32);
    CHECK(l.total_bytes == 304 && l.scale_offset == 256 && l.zero_offset == 288,
          "5x33 sizes %zu %zu %zu", l.total_bytes, l.scale_offset, l.zero_offset);
    uint8_t codes[5 * 33], zeros[10];
    float scales[10];
    for (int i = 0; i < 5 * 33; i++)
        codes[i] = 1;
    for (int i = 0; i < 10; i++)
        zeros[i] = (uint8_t)(9 + i % 2 * 2 + i / 2 % 2), scales[i] = 0.5f; /* 9 11 10 12 9 11 */
    uint8_t out[304];
    nb_qpack(&l, codes, scales, zeros, out);
    /* row 0 col 33: tile 1 byte 1 low nibble = zero (0, g1) = 11; col 37 the high one */
    CHECK(out[64 + 1] == (11 | 11 << 4), "pad column of row 0: %02x", out[65]);
    /* row 4 col 32: tile 3, byte 0 low = code 1; col 36 high = zero (4, g1) = 11 */
    CHECK(out[192] == (1 | 11 << 4), "row 4 tile 1: %02x", out[192]);
    /* row 5 (padding): tile 2 byte 4 and tile 3 byte 4 are 0 */
    CHECK(out[128 + 4] == 0 && out[192 + 4] == 0, "padding row codes");
    /* zero (4, g1): ((1 * 2 + 1) * 4 + 0) = 12; (5, g1) = 13 is padding */
    CHECK(out[288 + 12] == 11 && out[288 + 13] == 0, "zeros of block 1");
    CHECK(out[256 + 26] == 0 && out[256 + 27] == 0 && out[256 + 24] == 0x00 &&
              out[256 + 25] == 0x38,
          "scales of block 1 (0.5 = fp16 0x3800, padding 0)");
}

/* ---- (c) refusals ----------------------------------------------------- */

static void check_refusals(void)
{
    nb_qlayout l;
    struct { uint64_t rows, cols; int bits, group; } bad[] = {
        {4, 32, 2, 32}, {4, 32, 5, 32}, {4, 32, 8, 0}, {4, 32, 4, 48}, {4, 32, 4, -1},
        {4, 32, 4, 16}, {4, 32, 4, -32}, {0, 32, 4, 32}, {4, 0, 4, 32},
        {UINT64_MAX, 32, 4, 32}, {4, UINT64_MAX, 4, 32}, {UINT64_MAX - 3, 1, 3, 0},
        {1ull << 40, 1ull << 40, 4, 32}, {1ull << 62, 1, 3, 0}, {5, 1ull << 63, 3, 32},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        l.rows = 1;
        CHECK(nb_qlayout_init(&l, bad[i].rows, bad[i].cols, bad[i].bits, bad[i].group) == -1 &&
                  l.rows == 0 && l.total_bytes == 0,
              "accepted %llux%llu q%d g%d", (unsigned long long)bad[i].rows,
              (unsigned long long)bad[i].cols, bad[i].bits, bad[i].group);
    }
    CHECK(!nb_qlayout_init(&l, 3, 16, 4, 4096) && l.n_groups == 1, "group larger than cols");
    CHECK(!nb_qlayout_init(&l, 1, 1, 3, 0) && l.total_bytes == 48 + 4 * 3, "1x1 q3");
}

/* ---- (d) packed tensors in files -------------------------------------- */

enum { PACK_LINEARS = 1, PACK_EMBED = 2 };

/* A model written twice: packed where flags say, and with the same
 * weights dequantized to f32. */
struct twin {
    nb_writer *q, *f;
    int bits, group;
    uint64_t seed;
};

static int add_packed(struct twin *t, const char *name, const float *w, uint64_t rows,
                      uint64_t cols, float *deq, nb_err *e)
{
    nb_qlayout l;
    nb_qspec spec = {t->bits, t->group, 0};
    if (nb_qlayout_init(&l, rows, cols, t->bits, t->group))
        return nb_fail(e, "%s: no layout", name);
    uint8_t *codes = malloc(l.rows * l.cols), *zeros = malloc(l.rows * l.n_groups);
    float *scales = malloc(l.rows * l.n_groups * sizeof *scales);
    void *packed = malloc(l.total_bytes);
    for (size_t r = 0; r < l.rows; r++)
        nb_quant_row(w + r * l.cols, l.cols, &spec, codes + r * l.cols,
                     scales + r * l.n_groups, zeros + r * l.n_groups);
    nb_qpack(&l, codes, scales, zeros, packed);
    for (size_t r = 0; r < l.rows; r++)
        nb_qrow_ref(&l, packed, r, deq + r * l.cols);
    struct nb_tensor_entry entry;
    int rc = nb_qentry_init(&entry, name, &l, e) || nb_writer_add_entry(t->q, &entry, packed, e);
    free(codes), free(zeros), free(scales), free(packed);
    return rc ? -1 : 0;
}

/* cols 0: a norm vector (f32 in both files). */
static int add_twin(struct twin *t, const char *name, uint64_t rows, uint64_t cols, int packed,
                    nb_err *e)
{
    size_t n = (size_t)(rows * (cols ? cols : 1));
    float *w = malloc(n * sizeof *w), *deq = malloc(n * sizeof *deq);
    for (size_t i = 0; i < n; i++)
        w[i] = cols ? 0.3f * tu_randf(&t->seed) : 1.0f + 0.1f * tu_randf(&t->seed);
    memcpy(deq, w, n * sizeof *w);
    uint64_t shape[2] = {rows, cols};
    int dims = cols ? 2 : 1, rc;
    if (packed)
        rc = add_packed(t, name, w, rows, cols, deq, e);
    else
        rc = nb_writer_add(t->q, name, NB_F32, dims, shape, w, n * sizeof *w, e);
    rc = rc || nb_writer_add(t->f, name, NB_F32, dims, shape, deq, n * sizeof *deq, e);
    free(w), free(deq);
    return rc ? -1 : 0;
}

static int add_tensors(struct twin *t, const struct nb_meta *m, int flags, nb_err *e)
{
    uint64_t d = m->dim, q = (uint64_t)m->n_heads * m->head_dim;
    uint64_t kv = (uint64_t)m->n_kv_heads * m->head_dim, f = m->ffn_dim;
    int lin = flags & PACK_LINEARS;
    if (add_twin(t, NB_T_EMBED, m->vocab_size, d, flags & PACK_EMBED, e) ||
        add_twin(t, NB_T_OUT_NORM, d, 0, 0, e) ||
        (!m->tied_embeddings && add_twin(t, NB_T_OUTPUT, m->vocab_size, d, lin, e)))
        return -1;
    struct { const char *fmt; uint64_t rows, cols; } per_layer[] = {
        {NB_T_ATTN_NORM, d, 0}, {NB_T_Q, q, d},        {NB_T_K, kv, d},   {NB_T_V, kv, d},
        {NB_T_O, d, q},         {NB_T_FFN_NORM, d, 0}, {NB_T_GATE, f, d}, {NB_T_UP, f, d},
        {NB_T_DOWN, d, f},
    };
    char name[NB_NAME_LEN];
    for (uint32_t l = 0; l < m->n_layers; l++)
        for (size_t i = 0; i < sizeof per_layer / sizeof *per_layer; i++) {
            snprintf(name, sizeof name, per_layer[i].fmt, (int)l);
            if (add_twin(t, name, per_layer[i].rows, per_layer[i].cols,
                         per_layer[i].cols ? lin : 0, e))
                return -1;
        }
    return 0;
}

static int write_twins(const char *qpath, const char *fpath, const struct nb_meta *m, int bits,
                       int group, int flags)
{
    static const uint8_t vocab[8];
    nb_err e = {{0}};
    nb_writer *q = nb_writer_open(qpath, m, vocab, sizeof vocab, &e);
    nb_writer *f = q ? nb_writer_open(fpath, m, vocab, sizeof vocab, &e) : NULL;
    struct twin t = {q, f, bits, group, 7};
    if (!f || add_tensors(&t, m, flags, &e)) {
        nb_writer_abort(q);
        nb_writer_abort(f);
        return fprintf(stderr, "write_twins: %s\n", e.msg), -1;
    }
    if (nb_writer_commit(q, &e)) { /* commit frees its writer either way */
        nb_writer_abort(f);
        return fprintf(stderr, "write_twins: %s\n", e.msg), -1;
    }
    if (nb_writer_commit(f, &e))
        return fprintf(stderr, "write_twins: %s\n", e.msg), -1;
    return 0;
}

static int open_llama(const char *path, nb_model *m, nb_net *L, nb_err *e)
{
    memset(L, 0, sizeof *L);
    if (nb_model_open(m, path, e))
        return -1;
    if (nb_net_init(L, m, 0, e)) {
        nb_model_close(m);
        return -1;
    }
    return 0;
}

static void close_llama(nb_model *m, nb_net *L)
{
    nb_net_free(L);
    nb_model_close(m);
}

/* Shapes that exercise the padding: rows not a multiple of 4 (gate, up:
 * 42), cols not a multiple of 32 (dim 40, attention 24, ffn 42). */
static struct nb_meta odd_meta(void)
{
    struct nb_meta m = tu_tiny_meta();
    m.dim = 40, m.n_heads = 4, m.n_kv_heads = 2, m.head_dim = 6, m.ffn_dim = 42;
    m.vocab_size = 96, m.tied_embeddings = 0;
    return m;
}

/* Largest |a - b| (and |b|, in *top) so far. Plain comparisons, not fmax:
 * aarch64 gcc 12.2 crashes vectorizing an fmax reduction here. */
static double max_diff(const float *a, const float *b, size_t n, double worst, double *top)
{
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]), m = fabs((double)b[i]);
        worst = d > worst ? d : worst;
        *top = m > *top ? m : *top;
    }
    return worst;
}

static void check_twins(int bits, int group)
{
    struct nb_meta meta = odd_meta();
    char qp[512], fp[512];
    snprintf(qp, sizeof qp, "%s", tu_tmp("q.nib"));
    snprintf(fp, sizeof fp, "%s", tu_tmp("f.nib"));
    nb_model qm, fm;
    nb_net ql, fl;
    nb_err e = {{0}};
    if (write_twins(qp, fp, &meta, bits, group, PACK_LINEARS)) {
        CHECK(0, "q%d g%d: cannot write the twins", bits, group);
        return;
    }
    if (open_llama(qp, &qm, &ql, &e)) {
        CHECK(0, "packed model q%d g%d: %s", bits, group, e.msg);
        return;
    }
    if (open_llama(fp, &fm, &fl, &e)) {
        close_llama(&qm, &ql);
        CHECK(0, "f32 twin: %s", e.msg);
        return;
    }
    CHECK(!nb_model_verify(&qm, &e), "packed model checksums: %s", e.msg);
    CHECK(ql.layers[1].down.entry->dtype == (bits == 4 ? NB_Q4 : NB_Q3) &&
              ql.output.entry->dtype == ql.layers[0].q.entry->dtype,
          "the linears are not packed");
    double worst = 0, top = 0;
    for (int pos = 0; pos < 8; pos++) {
        int tok = (pos * 37 + 5) % (int)meta.vocab_size;
        const float *a = nb_net_forward(&ql, tok, pos), *b = nb_net_forward(&fl, tok, pos);
        worst = max_diff(a, b, meta.vocab_size, worst, &top);
    }
    CHECK(worst <= 1e-5 * fmax(top, 1.0), "q%d g%d: logits differ by %g (max |logit| %g)", bits,
          group, worst, top);
    printf("packed q%d g%d LLaMA vs its f32 twin: max logit difference %g over 8 positions "
           "(max |logit| %.3g)\n", bits, group, worst, top);
    close_llama(&qm, &ql);
    close_llama(&fm, &fl);
}

/* Damage to one packed entry, and the words its one-line message must hold. */
struct qdamage {
    const char *name, *expect;
    void (*apply)(struct nb_tensor_entry *t);
};

static void bits_mismatch(struct nb_tensor_entry *t) { t->bits = 3; }
static void dtype_mismatch(struct nb_tensor_entry *t) { t->dtype = NB_Q3; }
static void interleave_2(struct nb_tensor_entry *t) { t->interleave = 2; }
static void size_plus_1(struct nb_tensor_entry *t) { t->size += 1; }
static void size_minus_1(struct nb_tensor_entry *t) { t->size -= 1; }
static void group_48(struct nb_tensor_entry *t) { t->group_size = 48; }
static void group_per_row(struct nb_tensor_entry *t) { t->group_size = 0; }
static void one_dim(struct nb_tensor_entry *t) { t->n_dims = 1; }
static void zero_rows(struct nb_tensor_entry *t) { t->shape[0] = 0; }
static void huge_shape(struct nb_tensor_entry *t) { t->shape[0] = t->shape[1] = 1ull << 40; }

static const struct qdamage qdamages[] = {
    {"bits mismatch", "says 3-bit", bits_mismatch},
    {"dtype mismatch", "is q3 but says 4-bit", dtype_mismatch},
    {"interleave 2", "interleave 2", interleave_2},
    {"size + 1", "shape needs", size_plus_1},
    {"size - 1", "shape needs", size_minus_1},
    {"group 48", "group size 48", group_48},
    {"group 0 (size no longer matches)", "shape needs", group_per_row},
    {"1-D", "2-D", one_dim},
    {"zero rows", "invalid", zero_rows},
    {"huge shape", "overflowing", huge_shape},
};

static struct nb_tensor_entry *entry_named(uint8_t *img, const char *name)
{
    const struct nb_header *h = (const void *)img;
    for (uint32_t i = 0; i < h->n_tensors; i++) {
        struct nb_tensor_entry *t = (void *)(img + h->table_offset + (size_t)i * h->entry_size);
        if (!strcmp(t->name, name))
            return t;
    }
    return NULL;
}

static void check_loader(void)
{
    struct nb_meta meta = odd_meta();
    char qp[512], fp[512];
    snprintf(qp, sizeof qp, "%s", tu_tmp("lq.nib"));
    snprintf(fp, sizeof fp, "%s", tu_tmp("lf.nib"));
    size_t size = 0;
    uint8_t *good = write_twins(qp, fp, &meta, 4, 32, PACK_LINEARS) ? NULL : tu_read(qp, &size);
    if (!good) {
        CHECK(0, "no packed model to damage");
        return;
    }
    nb_model m;
    nb_err e = {{0}};
    CHECK(!nb_model_parse(&m, good, size, &e), "undamaged packed model refused: %s", e.msg);
    for (size_t i = 0; i < sizeof qdamages / sizeof *qdamages; i++) {
        uint8_t *img = aligned_alloc(64, (size + 63) / 64 * 64);
        memcpy(img, good, size);
        qdamages[i].apply(entry_named(img, "blk.0.attn_q"));
        int rc = nb_model_parse(&m, img, size, &e);
        CHECK(rc == -1 && strstr(e.msg, qdamages[i].expect) && strstr(e.msg, "blk.0.attn_q") &&
                  !strchr(e.msg, '\n'),
              "%s: rc %d, message '%s' (want '%s')", qdamages[i].name, rc, e.msg,
              qdamages[i].expect);
        free(img);
    }
    free(good);
}

/* The embedding must stay plain: the file loads, LLaMA refuses to bind it. */
static void check_packed_embed(void)
{
    struct nb_meta meta = odd_meta();
    char qp[512], fp[512];
    snprintf(qp, sizeof qp, "%s", tu_tmp("eq.nib"));
    snprintf(fp, sizeof fp, "%s", tu_tmp("ef.nib"));
    nb_model m;
    nb_net L;
    nb_err e = {{0}};
    if (write_twins(qp, fp, &meta, 4, 32, PACK_LINEARS | PACK_EMBED)) {
        CHECK(0, "cannot write a packed-embedding model");
        return;
    }
    if (nb_model_open(&m, qp, &e)) {
        CHECK(0, "packed embedding file refused: %s", e.msg);
        return;
    }
    CHECK(nb_net_init(&L, &m, 0, &e) == -1 && strstr(e.msg, "'token_embd'") &&
              strstr(e.msg, "only linear"),
          "packed token_embd: '%s'", e.msg);
    nb_model_close(&m);
}

static void check_qentry(void)
{
    nb_qlayout l, back;
    struct nb_tensor_entry t;
    nb_err e = {{0}};
    nb_qlayout_init(&l, 13, 300, 3, 64);
    CHECK(!nb_qentry_init(&t, "w", &l, &e) && t.dtype == NB_Q3 && t.n_dims == 2 &&
              t.shape[0] == 13 && t.shape[1] == 300 && t.size == l.total_bytes &&
              t.group_size == 64 && t.bits == 3 && t.interleave == 4,
          "entry from layout: %s", e.msg);
    CHECK(!nb_qentry_layout(&t, &back, &e) && !memcmp(&back, &l, sizeof l), "entry -> layout");
    nb_qlayout_init(&l, 4, 32, 4, 65536);
    CHECK(nb_qentry_init(&t, "w", &l, &e) == -1 && strstr(e.msg, "65536"),
          "group 65536 does not fit u16: '%s'", e.msg);
    nb_qlayout_init(&l, 4, 32, 4, 0);
    char longname[100];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    CHECK(nb_qentry_init(&t, longname, &l, &e) == -1 && strstr(e.msg, "too long"), "long name");
}

int main(void)
{
    for (size_t i = 0; i < sizeof hands / sizeof *hands; i++)
        check_hand(&hands[i]);
    check_ragged();
    check_per_row();

    static const size_t shapes[][2] = {{1, 1},    {5, 33},  {7, 172}, {64, 172},
                                       {13, 300}, {172, 64}, {4, 32},  {3, 17}};
    static const int groups[] = {0, 32, 64, 128};
    uint64_t seed = 1;
    for (int bits = 3; bits <= 4; bits++)
        for (size_t g = 0; g < 4; g++)
            for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
                for (int sym = 0; sym < 2; sym++)
                    check_roundtrip(shapes[s][0], shapes[s][1], bits, groups[g], sym, &seed);
    check_hand_tile();
    check_hand_padding();

    check_refusals();

    check_qentry();
    check_loader();
    check_packed_embed();
    check_twins(4, 32);
    check_twins(3, 64);
    check_twins(4, 0);
    return tu_finish("test_quant");
}
