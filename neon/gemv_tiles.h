/* The loops around a plain-weight tile, shared by gemv_neon.c and
 * gemv_generic.c: each defines INLINE, the tile function
 *     tile(y, ldy, w, wtype, x, r, cols, nr, nt)
 * (nr <= MAX_ROWS rows from r, nt <= GEMM_TOKS tokens), the constants
 * MAX_ROWS, GEMM_ROWS, GEMM_TOKS (a power of 2 up to 8) and BLOCK_BYTES,
 * and the names GEMV_NAME and GEMM_NAME of its entry points, then
 * includes this file once. */

INLINE void gemv(float *y, const void *w, const int wtype, const float *x, size_t r0, size_t r1,
                 size_t cols)
{
    size_t r = r0;
    for (; r + MAX_ROWS <= r1; r += MAX_ROWS)
        tile(y, 0, w, wtype, x, r, cols, MAX_ROWS, 1);
    for (; r < r1; r++)
        tile(y, 0, w, wtype, x, r, cols, 1, 1);
}

/* Rows [r0, r1) for nt tokens. */
INLINE void gemm_rows(float *y, size_t ldy, const void *w, const int wtype, const float *x,
                      size_t r0, size_t r1, size_t cols, const int nt)
{
    size_t r = r0;
    for (; r + GEMM_ROWS <= r1; r += GEMM_ROWS)
        tile(y, ldy, w, wtype, x, r, cols, GEMM_ROWS, nt);
    for (; r < r1; r++)
        tile(y, ldy, w, wtype, x, r, cols, 1, nt);
}

/* Tokens [t, t + n) of a block, if that many are left and n is less than
 * a whole tile; returns the next token. */
INLINE size_t gemm_rest(float *y, size_t ldy, const void *w, const int wtype, const float *x,
                        size_t t, size_t ntok, size_t r0, size_t r1, size_t cols, const int n)
{
    if (n >= GEMM_TOKS || ntok - t < (size_t)n)
        return t;
    gemm_rows(y + t * ldy, ldy, w, wtype, x + t * cols, r0, r1, cols, n);
    return t + (size_t)n;
}

/* Rows [r0, r1) for all tokens: whole token tiles, then the rest in
 * tiles of 4, 2 and 1 tokens. */
INLINE void gemm_block(float *y, size_t ldy, const void *w, const int wtype, const float *x,
                       size_t ntok, size_t r0, size_t r1, size_t cols)
{
    size_t t = 0;
    for (; t + GEMM_TOKS <= ntok; t += GEMM_TOKS)
        gemm_rows(y + t * ldy, ldy, w, wtype, x + t * cols, r0, r1, cols, GEMM_TOKS);
    t = gemm_rest(y, ldy, w, wtype, x, t, ntok, r0, r1, cols, 4);
    t = gemm_rest(y, ldy, w, wtype, x, t, ntok, r0, r1, cols, 2);
    gemm_rest(y, ldy, w, wtype, x, t, ntok, r0, r1, cols, 1);
}

INLINE void gemm(float *y, size_t ldy, const void *w, const int wtype, const float *x,
                 size_t ntok, size_t r0, size_t r1, size_t cols)
{
    size_t row_bytes = cols * (wtype == NB_W_F32 ? 4 : 2);
    size_t block = BLOCK_BYTES / (row_bytes ? row_bytes : 1) / GEMM_ROWS * GEMM_ROWS;
    if (block < GEMM_ROWS)
        block = GEMM_ROWS;
    for (size_t b = r0; b < r1; b += block)
        gemm_block(y, ldy, w, wtype, x, ntok, b, r1 - b < block ? r1 : b + block, cols);
}

void GEMV_NAME(float *y, const void *w, int wtype, const float *x, size_t r0, size_t r1,
                  size_t cols)
{
    switch (wtype) {
    case NB_W_F16: gemv(y, w, NB_W_F16, x, r0, r1, cols); break;
    case NB_W_BF16: gemv(y, w, NB_W_BF16, x, r0, r1, cols); break;
    default: gemv(y, w, NB_W_F32, x, r0, r1, cols);
    }
}

void GEMM_NAME(float *y, size_t ldy, const void *w, int wtype, const float *x, size_t ntok,
                  size_t r0, size_t r1, size_t cols)
{
    switch (wtype) {
    case NB_W_F16: gemm(y, ldy, w, NB_W_F16, x, ntok, r0, r1, cols); break;
    case NB_W_BF16: gemm(y, ldy, w, NB_W_BF16, x, ntok, r0, r1, cols); break;
    default: gemm(y, ldy, w, NB_W_F32, x, ntok, r0, r1, cols);
    }
}

