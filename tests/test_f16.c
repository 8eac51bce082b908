/* Half and bfloat16 conversions: every half value round-trips, and f32 to
 * half/bf16 picks the nearest representable value, ties to even, checked
 * against a brute-force nearest search in double. */
#include <math.h>
#include <string.h>

#include "../neon/f16.h"
#include "testutil.h"

static void check_half_roundtrip(void)
{
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = nb_f16_to_f32((uint16_t)h);
        uint16_t back = nb_f32_to_f16(f);
        int nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
        if (nan ? !(isnan(f) && (back & 0x7c00) == 0x7c00 && (back & 0x3ff))
                : back != h)
            bad++;
    }
    CHECK(bad == 0, "%d half values do not round-trip", bad);
}

/* The nearest of two neighbouring encodings, ties to the even one. */
static int nearer(double x, double a, uint32_t ea, double b, uint32_t eb)
{
    double da = fabs(x - a), db = fabs(x - b);
    if (da != db)
        return da < db;
    return (ea & 1) == 0 && (eb & 1) != 0 ? 1 : (ea & 1) == 0;
}

static void check_half_rounding(uint64_t *seed)
{
    int bad = 0;
    for (int i = 0; i < 2000000; i++) {
        uint32_t u = (uint32_t)tu_rand(seed);
        u = (u & 0x80000000u) | (0x30000000u + u % 0x18000000u); /* around half's range */
        float f = nb_bits_to_f32(u);
        uint16_t h = nb_f32_to_f16(f);
        if ((h & 0x7fff) >= 0x7c00) { /* overflow: must be >= 65520 */
            bad += fabs((double)f) < 65520.0;
            continue;
        }
        double got = nb_f16_to_f32(h);
        uint16_t up = (uint16_t)(h + 1), down = (uint16_t)(h - 1);
        if ((up & 0x7fff) < 0x7c00 && !nearer(f, got, h, nb_f16_to_f32(up), up))
            bad++;
        else if ((h & 0x7fff) && !nearer(f, got, h, nb_f16_to_f32(down), down))
            bad++;
    }
    CHECK(bad == 0, "%d floats not rounded to the nearest half", bad);
}

static void check_bf16(uint64_t *seed)
{
    int bad = 0;
    for (int i = 0; i < 2000000; i++) {
        float f = nb_bits_to_f32((uint32_t)tu_rand(seed));
        if (isnan(f) || isinf(f))
            continue;
        uint16_t b = nb_f32_to_bf16(f);
        if ((b & 0x7f80) == 0x7f80) {
            bad += fabs((double)f) < 3.38e38;
            continue;
        }
        uint16_t up = (uint16_t)(b + 1), down = (uint16_t)(b - 1);
        double got = nb_bf16_to_f32(b);
        if ((up & 0x7f80) != 0x7f80 && !nearer(f, got, b, nb_bf16_to_f32(up), up))
            bad++;
        else if ((b & 0x7fff) && !nearer(f, got, b, nb_bf16_to_f32(down), down))
            bad++;
    }
    CHECK(bad == 0, "%d floats not rounded to the nearest bfloat16", bad);
    CHECK(nb_f32_to_f16(65504.0f) == 0x7bff && nb_f32_to_f16(1e6f) == 0x7c00 &&
              nb_f32_to_f16(-0.0f) == 0x8000 && nb_f32_to_f16(5.9604645e-8f) == 0x0001,
          "edge values");
}

int main(void)
{
    uint64_t seed = 7;
    check_half_roundtrip();
    check_half_rounding(&seed);
    check_bf16(&seed);
    return tu_finish("test_f16");
}
