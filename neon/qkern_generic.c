/* Portable packed-weight kernels (qkern_generic.h): the arithmetic of the
 * references (qkern_ref.c), in the same order, but a tile at a time in
 * loops of fixed length the compiler turns into SIMD code (SSE2, AVX2,
 * NEON, RVV: whatever the build targets), except where AVX2 has what
 * C cannot say (maddubs, per-lane fused multiply-adds): the AVX2 build
 * spells those tiles with intrinsics. NB_GENERIC_SET names the set this
 * build of the file defines. */
#include <assert.h>
#include <math.h>
#include <string.h>

#include "f16.h"
#include "qkern_generic.h"

#if defined(__AVX2__) || defined(__F16C__)
#include <immintrin.h>
#endif

enum {
    TILE = NB_QTILE_COLS,
    CHUNK = 8 /* tokens served by one unpacking of a tile's codes */
};

/* A tile's 128 codes in the order of the WIDE activations: nib[32v + m]
 * and nib[32v + 16 + m] are the low and high nibble of tile byte 16v + m
 * (m = 4 * row + j), and meet the activation bytes at the same index. */
static void unpack4(const uint8_t *t, uint8_t nib[128])
{
    for (int v = 0; v < 4; v++)
        for (int m = 0; m < 16; m++) {
            nib[32 * v + m] = t[16 * v + m] & 15;
            nib[32 * v + 16 + m] = t[16 * v + m] >> 4;
        }
}

/* INT3 bit planes (qpack.h) into the same order. */
static void unpack3(const uint8_t *t, uint8_t nib[128])
{
    for (int v = 0; v < 4; v++)
        for (int h = 0; h < 2; h++)
            for (int i = 0; i < 16; i++) {
                int lo = t[16 * (v / 2) + i] >> (2 * (2 * (v % 2) + h)) & 3;
                int hi = t[32 + i] >> (2 * v + h) & 1;
                nib[32 * v + 16 * h + i] = (uint8_t)(lo | hi << 2);
            }
}

static void unpack(const nb_qlayout *l, const uint8_t *tile, uint8_t nib[128])
{
    if (l->bits == 4)
        unpack4(tile, nib);
    else
        unpack3(tile, nib);
}

#if defined(__AVX2__)
/* A tile's codes as loaded for the int8 dot: INT4 nibbles split in
 * registers (the low ones of 16 bytes, then their high ones: nib order),
 * as a detour through memory would stall on store forwarding. */
typedef __m256i tile_codes[4];

static inline __attribute__((always_inline)) void load_codes(const nb_qlayout *l,
                                                             const uint8_t *t, tile_codes c)
{
    if (l->bits == 4) {
        const __m128i low = _mm_set1_epi8(15);
        for (int i = 0; i < 4; i++) {
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(t + 16 * i));
            __m128i hi = _mm_and_si128(_mm_srli_epi16(v, 4), low);
            c[i] = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_and_si128(v, low)), hi, 1);
        }
        return;
    }
    uint8_t nib[128];
    unpack3(t, nib);
    for (int i = 0; i < 4; i++)
        c[i] = _mm256_loadu_si256((const __m256i *)(const void *)(nib + 32 * i));
}

/* maddubs adds each row's adjacent pairs of products (at most 2 x 15 x
 * 127, no saturation) into int16 lanes, four tiles' worth each; madd
 * widens the pairs of those to int32, row r in lane r of each half. */
static inline __attribute__((always_inline)) void tile_dot(const tile_codes c,
                                                           const int8_t *act, int32_t out[4])
{
    __m256i acc = _mm256_setzero_si256();
    for (int i = 0; i < 4; i++) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)(act + 32 * i));
        acc = _mm256_add_epi16(acc, _mm256_maddubs_epi16(c[i], a));
    }
    __m256i d = _mm256_madd_epi16(acc, _mm256_set1_epi16(1));
    __m128i r = _mm_add_epi32(_mm256_castsi256_si128(d), _mm256_extracti128_si256(d, 1));
    _mm_storeu_si128((__m128i *)(void *)out, r);
}
#else /* the codes in nib order, and the dot in portable vector types */
typedef uint8_t tile_codes[128];

static void load_codes(const nb_qlayout *l, const uint8_t *t, tile_codes c)
{
    unpack(l, t, c);
}

#if defined(__clang__) || __GNUC__ >= 9
typedef int16_t v16s __attribute__((vector_size(32)));
typedef uint8_t v16u8 __attribute__((vector_size(16)));
typedef int8_t v16s8 __attribute__((vector_size(16)));
#define WIDEN(v) __builtin_convertvector(v, v16s)
#else /* no __builtin_convertvector: plain arrays, slower */
typedef int16_t v16s[16];
typedef uint8_t v16u8[16];
typedef int8_t v16s8[16];
#endif

/* Each row's sum of code x activation over the tile. int16 lanes are
 * exact: each adds 8 products of at most 15 x 127; so are the pairs of
 * lanes added before the widening (at most 30480). Vector types, as
 * arrays of scalars indexed in loops would live on the stack. */
static void tile_dot(const uint8_t nib[128], const int8_t *act, int32_t out[4])
{
    v16s acc = {0};
    for (int u = 0; u < 8; u++) {
        v16u8 n;
        v16s8 a;
        memcpy(&n, nib + 16 * u, sizeof n);
        memcpy(&a, act + 16 * u, sizeof a);
#if defined(WIDEN)
        acc += WIDEN(n) * WIDEN(a);
#else
        for (int m = 0; m < 16; m++)
            acc[m] = (int16_t)(acc[m] + n[m] * a[m]);
#endif
    }
    for (int r = 0; r < 4; r++)
        out[r] = (int16_t)(acc[4 * r] + acc[4 * r + 1]) + (int16_t)(acc[4 * r + 2] + acc[4 * r + 3]);
}
#endif

/* Scales and zero points of group g for the 4 rows of block rb. */
static void group_params(const nb_qlayout *l, const uint8_t *w, size_t rb, size_t g, float s[4],
                         int32_t z[4])
{
    size_t at = (rb * l->n_groups + g) * 4;
    const uint8_t *p = w + l->scale_offset + 2 * at;
#if defined(__F16C__)
    _mm_storeu_ps(s, _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)(const void *)p)));
#else
    for (int r = 0; r < 4; r++)
        s[r] = nb_f16_to_f32((uint16_t)(p[2 * r] | p[2 * r + 1] << 8));
#endif
    for (int r = 0; r < 4; r++)
        z[r] = w[l->zero_offset + at + r];
}

/* Rows of block rb for tokens t0 .. t0 + nt - 1 (nt <= CHUNK). */
static void block_q8(const nb_qlayout *l, const uint8_t *w, const nb_qact *a, size_t rb,
                     size_t t0, size_t nt, float y[CHUNK][4])
{
    const uint8_t *tiles = w + rb * (l->cols_p / TILE) * l->tile_bytes;
    tile_codes codes;
    memset(y, 0, CHUNK * sizeof *y);
    for (size_t g = 0; g < l->n_groups; g++) {
        float s[4], f[CHUNK][4] = {{0.0f}};
        int32_t z[4];
        group_params(l, w, rb, g, s, z);
        size_t b0, b1;
        nb_qgroup_tiles(l, g, &b0, &b1);
        for (size_t b = b0; b < b1; b++) {
            load_codes(l, tiles + b * l->tile_bytes, codes);
            for (size_t t = 0; t < nt; t++) {
                size_t at = b * a->ntok + t0 + t;
                int32_t d[4], nsum = a->blk[2 * at + 1];
                float scale = nb_bits_to_f32((uint32_t)a->blk[2 * at]);
                tile_dot(codes, a->q + 4 * TILE * at, d);
                for (int r = 0; r < 4; r++)
                    f[t][r] = fmaf((float)(z[r] * nsum + d[r]), scale, f[t][r]);
            }
        }
        for (size_t t = 0; t < nt; t++)
            for (int r = 0; r < 4; r++)
                y[t][r] = fmaf(f[t][r], s[r], y[t][r]);
    }
}

/* y[t * ldy + r] for the first ntok tokens of a, r in [r0, r1). */
static void q8_rows(const nb_qlayout *l, const void *w, const nb_qact *a, size_t ntok, float *y,
                    size_t ldy, size_t r0, size_t r1)
{
    assert(a->form == NB_ACT_WIDE && a->cols_p == l->cols_p && (r0 % 4 == 0 || r0 == r1) && r0 <= r1 &&
           r1 <= l->rows);
    for (size_t rb = nb_first_block(r0); 4 * rb < r1; rb++)
        for (size_t t0 = 0; t0 < ntok; t0 += CHUNK) {
            size_t nt = ntok - t0 < CHUNK ? ntok - t0 : CHUNK;
            float out[CHUNK][4];
            block_q8(l, w, a, rb, t0, nt, out);
            for (size_t t = 0; t < nt; t++)
                for (size_t r = 4 * rb; r < 4 * rb + 4 && r < r1; r++)
                    y[(t0 + t) * ldy + r] = out[t][r % 4];
        }
}

void KERNEL(nb_qgemv_q8_)(const nb_qlayout *l, const void *w, const nb_qact *a, float *y,
                          size_t r0, size_t r1)
{
    assert(a->ntok >= 1);
    q8_rows(l, w, a, 1, y, 0, r0, r1);
}

void KERNEL(nb_qgemm_q8_)(const nb_qlayout *l, const void *w, const nb_qact *a, float *y,
                          size_t ldy, size_t r0, size_t r1)
{
    q8_rows(l, w, a, a->ntok, y, ldy, r0, r1);
}

/* p[m] = fmaf(code - z, x, p[m]) over the tile in column order, where
 * nib[16u + m] is column 4u + m % 4 of row m / 4. With FMA the 16 sums
 * run in two AVX registers (each lane fused as fmaf: the same bits);
 * without, fmaf is a library call and vectors would change the result. */
#if defined(__FMA__) && defined(__AVX2__)
static void tile_f32(const uint8_t nib[128], const int32_t z[4], const float *xb, float p[16])
{
    __m256 p0 = _mm256_loadu_ps(p), p1 = _mm256_loadu_ps(p + 8);
    __m256 z0 = _mm256_setr_ps((float)z[0], (float)z[0], (float)z[0], (float)z[0], (float)z[1],
                               (float)z[1], (float)z[1], (float)z[1]);
    __m256 z1 = _mm256_setr_ps((float)z[2], (float)z[2], (float)z[2], (float)z[2], (float)z[3],
                               (float)z[3], (float)z[3], (float)z[3]);
    for (int u = 0; u < 8; u++) {
        __m128 x4 = _mm_loadu_ps(xb + 4 * u);
        __m256 xx = _mm256_insertf128_ps(_mm256_castps128_ps256(x4), x4, 1);
        __m128i n = _mm_loadu_si128((const __m128i *)(const void *)(nib + 16 * u));
        __m256 c0 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(n));
        __m256 c1 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(n, 8)));
        p0 = _mm256_fmadd_ps(_mm256_sub_ps(c0, z0), xx, p0); /* code - z: exact */
        p1 = _mm256_fmadd_ps(_mm256_sub_ps(c1, z1), xx, p1);
    }
    _mm256_storeu_ps(p, p0);
    _mm256_storeu_ps(p + 8, p1);
}
#else
static void tile_f32(const uint8_t nib[128], const int32_t z[4], const float *xb, float p[16])
{
    for (int u = 0; u < 8; u++)
        for (int m = 0; m < 16; m++)
            p[m] = fmaf((float)(nib[16 * u + m] - z[m / 4]), xb[4 * u + m % 4], p[m]);
}
#endif

/* Exact path, block rb: per row four partial sums by column mod 4 in
 * column order, as nb_qgemv_f32_ref; here p[4 * row + column % 4]. */
static void block_f32(const nb_qlayout *l, const uint8_t *w, const float *x, size_t rb,
                      float y[4])
{
    const uint8_t *tiles = w + rb * (l->cols_p / TILE) * l->tile_bytes;
    uint8_t nib[128];
    float tail[TILE];
    memset(y, 0, 4 * sizeof *y);
    for (size_t g = 0; g < l->n_groups; g++) {
        float s[4], p[16] = {0.0f};
        int32_t z[4];
        group_params(l, w, rb, g, s, z);
        size_t b0, b1;
        nb_qgroup_tiles(l, g, &b0, &b1);
        for (size_t b = b0; b < b1; b++) {
            const float *xb = x + b * TILE;
            if ((b + 1) * TILE > l->cols) { /* x ends inside this tile */
                memset(tail, 0, sizeof tail);
                memcpy(tail, xb, (l->cols - b * TILE) * sizeof *tail);
                xb = tail;
            }
            unpack(l, tiles + b * l->tile_bytes, nib);
            tile_f32(nib, z, xb, p);
        }
        for (int r = 0; r < 4; r++)
            y[r] = fmaf((p[4 * r] + p[4 * r + 1]) + (p[4 * r + 2] + p[4 * r + 3]), s[r], y[r]);
    }
}

void KERNEL(nb_qgemv_f32_)(const nb_qlayout *l, const void *w, const float *x, float *y,
                           size_t r0, size_t r1)
{
    assert((r0 % 4 == 0 || r0 == r1) && r0 <= r1 &&
           r1 <= l->rows);
    for (size_t rb = nb_first_block(r0); 4 * rb < r1; rb++) {
        float out[4];
        block_f32(l, w, x, rb, out);
        for (size_t r = 4 * rb; r < 4 * rb + 4 && r < r1; r++)
            y[r] = out[r % 4];
    }
}
