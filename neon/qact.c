/* Activation quantization for the int8 kernels (qkern.h), portable C:
 * the same codes on every host, whatever variant reads them. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "f16.h"
#include "qkern.h"

#if defined(__aarch64__)
#include <arm_neon.h>
#endif

enum { BLK = NB_QACT_BLOCK };

static size_t pairs(size_t ntok)
{
    return (ntok + 1) / 2;
}

int nb_qact_init(nb_qact *a, size_t cols, size_t max_tok)
{
    memset(a, 0, sizeof *a);
    a->cols = cols;
    a->cols_p = (cols + BLK - 1) / BLK * BLK;
    a->n_blocks = a->cols_p / BLK;
    a->max_tok = max_tok;
    size_t wide = 4 * a->cols_p * max_tok, paired = 2 * a->cols_p * pairs(max_tok);
    size_t qbytes = wide > paired ? wide : paired;
    size_t nblk = 8 * a->n_blocks * pairs(max_tok); /* >= 2 * n_blocks * max_tok */
    void *q = NULL, *blk = NULL;
    /* 64 bytes: a tile's activations never straddle a cache line */
    if (posix_memalign(&q, 64, qbytes ? qbytes : 64) ||
        posix_memalign(&blk, 64, (nblk ? nblk : 1) * sizeof(int32_t))) {
        free(q);
        return -1;
    }
    a->q = q;
    a->blk = blk;
    return 0;
}

void nb_qact_free(nb_qact *a)
{
    free(a->q);
    free(a->blk);
    memset(a, 0, sizeof *a);
}

/* A block's scale and its inverse from its largest magnitude. Under
 * 127 / FLT_MAX (3.7e-37), 127 / amax would overflow, and 0 * inf is NaN:
 * a block under 1e-30 (nothing, next to any activation) gets scale 0 and
 * zero codes, as an all-zero one; the kernels rely on "scale 0 => block
 * all zero" (see nb_q8_tile). An infinite amax keeps its infinite scale
 * with inv 0, so the output turns NaN, where the caller's check of the
 * logits sees it (nb_logits_finite). */
static void block_scale(float amax, float *scale, float *inv)
{
    int tiny = !(amax >= 1e-30f);
    *scale = tiny ? 0.0f : amax / 127.0f;
    *inv = tiny ? 0.0f : 127.0f / amax;
}

/* One block of up to 32 values (the rest 0) to codes; returns -sum. */
static int32_t quant_block(const float *x, size_t n, int8_t q[BLK], float *out_scale)
{
    float amax = 0.0f;
    for (size_t i = 0; i < n; i++)
        amax = fmaxf(amax, fabsf(x[i])); /* fmaxf skips NaN */
    float scale, inv;
    block_scale(amax, &scale, &inv);
    int32_t sum = 0;
    for (size_t i = 0; i < BLK; i++) {
        float v = i < n ? nearbyintf(x[i] * inv) : 0.0f;
        /* never -128: the smull kernels' int16 bound counts on 127; NaN
         * (a NaN input, or Inf times inv 0) becomes 0 as FCVTNS makes it */
        int c = v > 127.0f ? 127 : v < -127.0f ? -127 : v == v ? (int)v : 0;
        q[i] = (int8_t)c;
        sum += c;
    }
    *out_scale = scale;
    return -sum;
}

#if defined(__aarch64__)
/* A full block, the same codes as quant_block 8 times fewer
 * instructions: FMAXNM is fmaxf, FCVTNS rounds to nearest even as
 * nearbyintf does (and gives 0 for NaN), and |x * inv| <= 127 needs no
 * clamp. */
static int32_t quant_block32(const float *x, int8_t q[BLK], float *out_scale)
{
    float32x4_t v[8], m = vdupq_n_f32(0.0f);
    for (int i = 0; i < 8; i++) {
        v[i] = vld1q_f32(x + 4 * i);
        m = vmaxnmq_f32(m, vabsq_f32(v[i]));
    }
    float amax = vmaxnmvq_f32(m), scale, inv;
    block_scale(amax, &scale, &inv);
    int32x4_t sum = vdupq_n_s32(0);
    int16x8_t h[4];
    for (int i = 0; i < 4; i++) {
        int32x4_t lo = vcvtnq_s32_f32(vmulq_n_f32(v[2 * i], inv));
        int32x4_t hi = vcvtnq_s32_f32(vmulq_n_f32(v[2 * i + 1], inv));
        sum = vaddq_s32(sum, vaddq_s32(lo, hi));
        h[i] = vcombine_s16(vmovn_s32(lo), vmovn_s32(hi));
    }
    vst1q_s8(q, vcombine_s8(vmovn_s16(h[0]), vmovn_s16(h[1])));
    vst1q_s8(q + 16, vcombine_s8(vmovn_s16(h[2]), vmovn_s16(h[3])));
    *out_scale = scale;
    return -vaddvq_s32(sum);
}

/* WIDE: each 4 codes (one 32-bit lane) repeated 4 times. */
static void put_wide(int8_t *dst, const int8_t q[BLK])
{
    int32x4_t a = vreinterpretq_s32_s8(vld1q_s8(q)), b = vreinterpretq_s32_s8(vld1q_s8(q + 16));
    vst1q_s8(dst, vreinterpretq_s8_s32(vdupq_laneq_s32(a, 0)));
    vst1q_s8(dst + 16, vreinterpretq_s8_s32(vdupq_laneq_s32(a, 1)));
    vst1q_s8(dst + 32, vreinterpretq_s8_s32(vdupq_laneq_s32(a, 2)));
    vst1q_s8(dst + 48, vreinterpretq_s8_s32(vdupq_laneq_s32(a, 3)));
    vst1q_s8(dst + 64, vreinterpretq_s8_s32(vdupq_laneq_s32(b, 0)));
    vst1q_s8(dst + 80, vreinterpretq_s8_s32(vdupq_laneq_s32(b, 1)));
    vst1q_s8(dst + 96, vreinterpretq_s8_s32(vdupq_laneq_s32(b, 2)));
    vst1q_s8(dst + 112, vreinterpretq_s8_s32(vdupq_laneq_s32(b, 3)));
}
#else
static void put_wide(int8_t *dst, const int8_t q[BLK])
{
    for (size_t k = 0; k < BLK / 4; k++)
        for (size_t r = 0; r < 4; r++)
            memcpy(dst + 16 * k + 4 * r, q + 4 * k, 4);
}
#endif

/* Block-major: a block's codes for all tokens are adjacent, so a kernel
 * pass over a few tokens finds them at small constant offsets. */
static void put_block(nb_qact *a, size_t t, size_t b, const int8_t q[BLK], float scale,
                      int32_t nsum)
{
    int32_t sbits = (int32_t)nb_f32_to_bits(scale);
    if (a->form == NB_ACT_PAIRS) {
        size_t s = t % 2, at = b * pairs(a->ntok) + t / 2;
        for (size_t v = 0; v < 4; v++)
            memcpy(a->q + 2 * BLK * at + 16 * v + 8 * s, q + 8 * v, 8);
        int32_t *k = a->blk + 8 * at;
        k[s] = k[s + 2] = sbits;
        k[4 + s] = k[6 + s] = nsum;
        return;
    }
    size_t at = b * a->ntok + t;
    if (a->form == NB_ACT_WIDE) {
        put_wide(a->q + 4 * BLK * at, q);
    } else {
        memcpy(a->q + BLK * at, q, BLK);
    }
    a->blk[2 * at] = sbits;
    a->blk[2 * at + 1] = nsum;
}

void nb_qact_quantize(nb_qact *a, const float *x, size_t ldx, size_t ntok, int form)
{
    a->form = form;
    a->ntok = ntok;
    int8_t q[BLK];
    for (size_t t = 0; t < ntok; t++) {
        for (size_t b = 0; b < a->n_blocks; b++) {
            size_t c = BLK * b, n = a->cols - c < BLK ? a->cols - c : BLK;
            float scale;
#if defined(__aarch64__)
            int32_t nsum = n == BLK ? quant_block32(x + t * ldx + c, q, &scale)
                                    : quant_block(x + t * ldx + c, n, q, &scale);
#else
            int32_t nsum = quant_block(x + t * ldx + c, n, q, &scale);
#endif
            put_block(a, t, b, q, scale, nsum);
        }
    }
    if (form == NB_ACT_PAIRS && ntok % 2) { /* the odd token's partner: all zero */
        memset(q, 0, sizeof q);
        for (size_t b = 0; b < a->n_blocks; b++)
            put_block(a, ntok, b, q, 0.0f, 0);
    }
}

int nb_qact_code(const nb_qact *a, size_t t, size_t c)
{
    size_t b = c / BLK, i = c % BLK;
    switch (a->form) {
    case NB_ACT_WIDE: return a->q[4 * BLK * (b * a->ntok + t) + i / 4 * 16 + i % 4];
    case NB_ACT_PAIRS:
        return a->q[2 * BLK * (b * pairs(a->ntok) + t / 2) + i / 8 * 16 + t % 2 * 8 + i % 8];
    default: return a->q[BLK * (b * a->ntok + t) + i];
    }
}

/* Block b of token t: {scale bits, nsum} at p[0] and p[*nsum_at]. */
static const int32_t *blk_at(const nb_qact *a, size_t t, size_t b, size_t *nsum_at)
{
    if (a->form == NB_ACT_PAIRS) {
        *nsum_at = 4;
        return a->blk + 8 * (b * pairs(a->ntok) + t / 2) + t % 2;
    }
    *nsum_at = 1;
    return a->blk + 2 * (b * a->ntok + t);
}

float nb_qact_scale(const nb_qact *a, size_t t, size_t b)
{
    size_t k;
    return nb_bits_to_f32((uint32_t)blk_at(a, t, b, &k)[0]);
}

int32_t nb_qact_nsum(const nb_qact *a, size_t t, size_t b)
{
    size_t k;
    const int32_t *p = blk_at(a, t, b, &k);
    return p[k];
}
