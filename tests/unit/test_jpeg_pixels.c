/* The JPEG IDCT (engine/image/jpeg_pixels.c) against the DCT's definition, its 32-bit
 * vector path against its model of libjpeg-turbo's SIMD arithmetic on blocks of every
 * magnitude, and the model's saturating and wrapping cases. The model's bytes on corrupt
 * files, upsampling and colour conversion are held to Pillow itself by
 * tests/image/suite_oracle.sh. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/image/jpeg_pixels.h"
#include "tests/unit/check.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

/* A quantisation table of ones: the coefficients are their own dequantised values. */
static uint16_t ones[64];

/* Whether rows 1..7 of a block are zero (the SIMD code's shortcut). */
static int rows_zero(const short coef[64])
{
    for (int i = 8; i < 64; i++)
        if (coef[i])
            return 0;
    return 1;
}

static uint32_t next_u32(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

/* Uniform in [-m, m]. */
static int uniform(int m)
{
    return (int)(next_u32() % (uint32_t)(2 * m + 1)) - m;
}

/* f(x, y) = 1/4 sum_u sum_v C(u) C(v) F(v, u) cos((2x+1)u pi/16) cos((2y+1)v pi/16) + 128,
 * C(0) = 1/sqrt 2, C(k) = 1: ITU T.81 A.3.3, coefficients row-major by vertical frequency. */
static void textbook_idct(const short coef[64], double out[64])
{
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 8; x++) {
            double sum = 0;
            for (int v = 0; v < 8; v++)
                for (int u = 0; u < 8; u++) {
                    double cu = u ? 1.0 : 1.0 / sqrt(2.0), cv = v ? 1.0 : 1.0 / sqrt(2.0);
                    sum += cu * cv * coef[8 * v + u] * cos((2 * x + 1) * u * M_PI / 16) *
                           cos((2 * y + 1) * v * M_PI / 16);
                }
            out[8 * y + x] = sum / 4 + 128;
        }
}

/* Blocks like a real image's: a DC term and AC terms that fall off with frequency,
 * so the samples stay mostly in range (IEEE 1180's kind of test data). */
static void realistic_block(short coef[64])
{
    for (int k = 0; k < 64; k++) {
        int f = k / 8 + k % 8;
        coef[k] = (short)(k == 0 ? uniform(1000) : next_u32() % 3 ? 0 : uniform(400 / (f + 1)));
    }
}

static void test_accuracy(void)
{
    short coef[64];
    double ref[64];
    uint8_t fast[64], model[64];
    int worst = 0, off_by_one = 0, declined = 0, n = 20000;
    for (int b = 0; b < n; b++) {
        realistic_block(coef);
        textbook_idct(coef, ref);
        declined += vp_jpeg_idct_islow_fast(fast, 8, coef) != 0;
        vp_jpeg_idct_islow_model(model, 8, coef, rows_zero(coef));
        for (int k = 0; k < 64; k++) {
            double want = ref[k] < 0 ? 0 : ref[k] > 255 ? 255 : floor(ref[k] + 0.5);
            int e = abs((int)model[k] - (int)want);
            worst = e > worst ? e : worst;
            off_by_one += e == 1;
        }
    }
    printf("  idct vs the DCT definition on %d blocks: worst |error| %d, %d samples off by one; "
           "the vector path declined %d\n",
           n, worst, off_by_one, declined);
    CHECK_MSG(worst <= 1, "worst error %d", worst);
    CHECK_MSG(declined == 0, "the vector path declined %d blocks of real-image magnitudes", declined);
    /* a flat block is exact: DC 8 * (v - 128) gives v everywhere */
    memset(coef, 0, sizeof coef);
    coef[0] = 8 * (200 - 128);
    vp_jpeg_idct_islow(fast, 8, coef, ones);
    int flat = 1;
    for (int k = 0; k < 64; k++)
        flat &= fast[k] == 200;
    CHECK(flat);
}

/* Where the vector path takes a block, its bytes are the model's; it must take most
 * blocks of real magnitudes and decline the others. */
static void test_fast_equals_model(void)
{
    short coef[64];
    uint8_t fast[8 * 12], model[8 * 12]; /* a stride wider than the block */
    int n = 240000, differ = 0, taken = 0, taken_kind[6] = {0};
    for (int b = 0; b < n; b++) {
        int kind = b % 6;
        for (int k = 0; k < 64; k++) {
            switch (kind) {
            case 0: coef[k] = (short)uniform(60); break;
            case 1: coef[k] = (short)uniform(32767); break;
            case 2: /* one column: first-pass outputs on both sides of +-16384 */
                coef[k] = (short)(k % 8 ? 0 : uniform(b % 24 == 2 ? 8300 : 3000));
                break;
            case 3: break; /* below: a real-image block scaled up to 16 times */
            case 4: /* row 0 only: the 16-bit shortcut */
                coef[k] = (short)(k < 8 ? uniform(b % 12 == 4 ? 9000 : 300) : 0);
                break;
            default: coef[k] = (short)(k ? uniform(40) : uniform(6000)); /* near the clamp */
            }
        }
        if (kind == 3) {
            realistic_block(coef);
            int scale = 1 + (int)(next_u32() % 16);
            for (int k = 0; k < 64; k++)
                coef[k] = (short)(coef[k] * scale);
        }
        memset(fast, 0xaa, sizeof fast);
        memset(model, 0xaa, sizeof model);
        vp_jpeg_idct_islow_model(model, 12, coef, rows_zero(coef));
        if (vp_jpeg_idct_islow_fast(fast, 12, coef))
            continue;
        taken++;
        taken_kind[kind]++;
        differ += memcmp(fast, model, sizeof fast) != 0;
    }
    printf("  idct vector path vs the SIMD model on %d blocks (to +-32767): took %d (by kind %d %d "
           "%d %d %d %d), %d differ\n",
           n, taken, taken_kind[0], taken_kind[1], taken_kind[2], taken_kind[3], taken_kind[4],
           taken_kind[5], differ);
    CHECK(differ == 0);
    CHECK_MSG(taken > n / 4 && taken < n * 3 / 4, "took %d of %d", taken, n);
}

/* Where libjpeg-turbo's SIMD code and its C code part, the model follows the SIMD code. */
static void test_model_saturates(void)
{
    short coef[64] = {0};
    uint8_t out[64];
    /* DC only, 16-bit shortcut: 8000 * 4 fits; 9000 * 4 wraps to -29536 (dark) */
    coef[0] = 8000;
    vp_jpeg_idct_islow(out, 8, coef, ones);
    CHECK_MSG(out[0] == 255 && out[63] == 255, "DC 8000: %d", out[0]);
    coef[0] = 9000;
    vp_jpeg_idct_islow(out, 8, coef, ones);
    CHECK_MSG(out[0] == 0 && out[63] == 0, "DC 9000: %d", out[0]);
    /* with a coefficient below row 0 the full first pass runs and saturates at 32767
     * (the C code's index would wrap modulo 1024 instead) */
    coef[8] = 1;
    vp_jpeg_idct_islow(out, 8, coef, ones);
    CHECK_MSG(out[0] == 255 && out[63] == 255, "DC 9000 + AC: %d", out[0]);
    /* 16-bit sums: in0 + in4 = 20000 + 20000 wraps negative */
    memset(coef, 0, sizeof coef);
    coef[0] = 20000;
    coef[32] = 20000;
    vp_jpeg_idct_islow(out, 8, coef, ones);
    CHECK_MSG(out[0] == 0, "in0 + in4 wrapping: %d", out[0]);
    /* the shortcut is taken on the quantised rows: a coefficient whose product wraps to
     * 0 (512 x 128) still sends the block through the saturating full pass */
    uint16_t quant[64];
    for (int i = 0; i < 64; i++)
        quant[i] = i ? 128 : 1;
    memset(coef, 0, sizeof coef);
    coef[0] = 9000;
    coef[8] = 512;
    vp_jpeg_idct_islow(out, 8, coef, quant);
    CHECK_MSG(out[0] == 255 && out[63] == 255, "rows zero only after quantising: %d", out[0]);
}

static void test_color_space_rules(void)
{
    int ycc_ids[3] = {1, 2, 3}, rgb_ids[3] = {'R', 'G', 'B'};
    CHECK(vp_jpeg_color_space(1, 0, -1, ycc_ids) == VP_JPEG_GREY);
    CHECK(vp_jpeg_color_space(3, 0, -1, ycc_ids) == VP_JPEG_YCC);
    CHECK(vp_jpeg_color_space(3, 0, -1, rgb_ids) == VP_JPEG_RGB);
    CHECK(vp_jpeg_color_space(3, 1, -1, rgb_ids) == VP_JPEG_YCC); /* JFIF wins */
    CHECK(vp_jpeg_color_space(3, 0, 0, ycc_ids) == VP_JPEG_RGB);
    CHECK(vp_jpeg_color_space(3, 0, 1, rgb_ids) == VP_JPEG_YCC);
    CHECK(vp_jpeg_color_space(4, 0, -1, ycc_ids) == VP_JPEG_CMYK);
    CHECK(vp_jpeg_color_space(4, 0, 0, ycc_ids) == VP_JPEG_CMYK);
    CHECK(vp_jpeg_color_space(4, 0, 2, ycc_ids) == VP_JPEG_YCCK);
    CHECK(vp_jpeg_color_space(4, 0, 1, ycc_ids) == VP_JPEG_YCCK);
}

int main(void)
{
    for (int i = 0; i < 64; i++)
        ones[i] = 1;
    test_accuracy();
    test_fast_equals_model();
    test_model_saturates();
    test_color_space_rules();
    return check_summary("test_jpeg_pixels");
}
