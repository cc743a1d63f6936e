/* The JPEG IDCT (engine/image/jpeg_pixels.c) against the DCT's definition, and its
 * 32-bit vector path against its 64-bit path on blocks of every magnitude. Upsampling
 * and colour conversion are held to Pillow itself by tests/image/suite_oracle.sh. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/image/jpeg_pixels.h"
#include "tests/unit/check.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

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
    uint8_t got[64];
    int worst = 0, off_by_one = 0, n = 20000;
    for (int b = 0; b < n; b++) {
        realistic_block(coef);
        textbook_idct(coef, ref);
        short copy[64];
        memcpy(copy, coef, sizeof copy);
        vp_jpeg_idct_islow(got, 8, copy);
        for (int k = 0; k < 64; k++) {
            double want = ref[k] < 0 ? 0 : ref[k] > 255 ? 255 : floor(ref[k] + 0.5);
            int e = abs((int)got[k] - (int)want);
            worst = e > worst ? e : worst;
            off_by_one += e == 1;
        }
    }
    printf("  idct vs the DCT definition on %d blocks: worst |error| %d, %d samples off by one\n", n,
           worst, off_by_one);
    CHECK_MSG(worst <= 1, "worst error %d", worst);
    /* a flat block is exact: DC 8 * (v - 128) gives v everywhere */
    memset(coef, 0, sizeof coef);
    coef[0] = 8 * (200 - 128);
    vp_jpeg_idct_islow(got, 8, coef);
    int flat = 1;
    for (int k = 0; k < 64; k++)
        flat &= got[k] == 200;
    CHECK(flat);
}

/* The 32-bit lanes give the 64-bit path's bytes on every block, including those whose
 * first pass exceeds what the lanes can take (then the 64-bit path is used). */
static void test_lanes_equal_wide(void)
{
    short coef[64], copy[64];
    uint8_t lanes[8 * 12], wide[8 * 12]; /* a stride wider than the block */
    int n = 200000, differ = 0;
    for (int b = 0; b < n; b++) {
        int kind = b % 4;
        for (int k = 0; k < 64; k++) {
            switch (kind) {
            case 0: coef[k] = (short)uniform(1100); break;
            case 1: coef[k] = (short)uniform(32767); break;
            case 2: coef[k] = (short)(next_u32() % 5 ? 0 : uniform(32767)); break;
            default: /* the same sign pattern as a basis function: large first passes */
                coef[k] = (short)((((k * 7 + b) >> 2) & 1 ? -1 : 1) * (int)(next_u32() % 9000));
            }
        }
        memset(lanes, 0xaa, sizeof lanes);
        memset(wide, 0xaa, sizeof wide);
        memcpy(copy, coef, sizeof copy);
        vp_jpeg_idct_islow(lanes, 12, copy);
        vp_jpeg_idct_islow_wide(wide, 12, coef);
        differ += memcmp(lanes, wide, sizeof lanes) != 0;
    }
    printf("  idct 32-bit lanes vs 64-bit on %d blocks (to +-32767): %d differ\n", n, differ);
    CHECK(differ == 0);
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
    test_accuracy();
    test_lanes_equal_wide();
    test_color_space_rules();
    return check_summary("test_jpeg_pixels");
}
