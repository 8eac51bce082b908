/* The "neon" set: plain ARMv8.0 Advanced SIMD, for cores without dotprod
 * (Cortex-A72, Raspberry Pi 4). int8 kernels multiply with smull against
 * the WIDE activation form; the exact fp32 path (W4A16) lives here too,
 * and every set uses it since it needs nothing newer. */
#include "qkern_neon.h"

void NB_KERNEL(nb_qgemv_q8_neon)(const nb_qlayout *l, const void *w, const nb_qact *a, float *y,
                                 size_t r0, size_t r1)
{
    nb_q8_gemv(NB_K_SMULL, l, w, a, y, r0, r1);
}

void NB_KERNEL(nb_qgemm_q8_neon)(const nb_qlayout *l, const void *w, const nb_qact *a, float *y,
                                 size_t ldy, size_t r0, size_t r1)
{
    nb_q8_gemm(NB_K_SMULL, l, w, a, y, ldy, r0, r1);
}

/* Exact path: (q - z) as int8, widened to fp32 and multiplied with x
 * column by column; each row has its own accumulator whose lanes are
 * columns mod 4, summed pairwise once per group (see nb_qgemv_f32_ref). */
NB_INLINE void f32_rows(const struct nb_qjob *j, size_t rb, const float *x, const float *tail,
                        size_t nfull, const int bits)
{
    /* z of row r repeated over that row's 4 bytes */
    const uint8x16_t spread = {0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3};
    const uint8_t *wp = nb_rb_tiles(j, rb);
    float32x4_t y = vdupq_n_f32(0.0f);
    size_t t = 0;
    for (size_t g = 0; g < j->n_groups; g++) {
        size_t at = rb * j->n_groups + g;
        uint32_t zb;
        memcpy(&zb, j->zeros + 4 * at, 4);
        uint8x16_t zs = vqtbl1q_u8(vreinterpretq_u8_u32(vdupq_n_u32(zb)), spread);
        int8x16_t z = vreinterpretq_s8_u8(zs);
        float32x4_t acc[4] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f),
                              vdupq_n_f32(0.0f)};
        for (size_t n = nb_group_len(j, g); n; n--, t++) {
            nb_codes c = nb_unpack(bits, wp);
            wp += bits == 4 ? 64 : 48;
            const float *xt = t < nfull ? x + 32 * t : tail;
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++) {
                int8x16_t d = vsubq_s8(c.c[k], z);
                int16x8_t d01 = vmovl_s8(vget_low_s8(d)), d23 = vmovl_high_s8(d);
                float32x4_t xk = vld1q_f32(xt + 4 * k);
                acc[0] = vfmaq_f32(acc[0], vcvtq_f32_s32(vmovl_s16(vget_low_s16(d01))), xk);
                acc[1] = vfmaq_f32(acc[1], vcvtq_f32_s32(vmovl_high_s16(d01)), xk);
                acc[2] = vfmaq_f32(acc[2], vcvtq_f32_s32(vmovl_s16(vget_low_s16(d23))), xk);
                acc[3] = vfmaq_f32(acc[3], vcvtq_f32_s32(vmovl_high_s16(d23)), xk);
            }
        }
        float32x4_t sum = vpaddq_f32(vpaddq_f32(acc[0], acc[1]), vpaddq_f32(acc[2], acc[3]));
        y = vfmaq_f32(y, sum, nb_group_scales(j->scales + 8 * at));
    }
    nb_store_rows(j->y + 4 * rb, y, nb_rb_rows(j, rb));
}

NB_WITH_TER void NB_KERNEL(nb_qgemv_f32_neon)(const nb_qlayout *l, const void *w, const float *x,
                                              float *y, size_t r0, size_t r1)
{
    /* x is read a whole tile at a time: the last, partial tile comes from
     * a zero-padded copy, so nothing past cols is touched. */
    nb_check_args(l, NULL, 0, r0, r1);
    size_t nfull = l->cols / NB_QTILE_COLS, rest = l->cols - NB_QTILE_COLS * nfull;
    float tail[NB_QTILE_COLS] = {0};
    if (rest)
        memcpy(tail, x + NB_QTILE_COLS * nfull, rest * sizeof *x);
    nb_qact none = {0};
    struct nb_qjob j = nb_qjob_make(l, w, &none, y, 0, r1, 0, 0, 0);
    for (size_t rb = nb_first_block(r0); rb < (r1 + 3) / 4; rb++) {
        if (l->bits == 4)
            f32_rows(&j, rb, x, tail, nfull, 4);
        else
            f32_rows(&j, rb, x, tail, nfull, 3);
    }
}
