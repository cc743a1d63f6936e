/* dtype helpers, bf16/f16 conversions (expected bit patterns worked out by hand from
 * IEEE round-to-nearest-even) and the counter-based RNG of the weight generator. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "engine/model/rng.h"
#include "engine/model/tensor.h"
#include "tests/unit/check.h"

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static void test_bf16(void)
{
    /* every non-NaN bf16 survives f32 and back */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = vp_bf16_to_f32((uint16_t)h);
        if (to_bits(f) != h << 16 || (!isnan(f) && vp_f32_to_bf16(f) != h))
            bad++;
    }
    CHECK_MSG(bad == 0, "%d bf16 values do not round-trip", bad);
    struct { uint32_t f; uint16_t bf; } cases[] = {
        {0x3f800000u, 0x3f80}, /* 1.0 */
        {0x3f808000u, 0x3f80}, /* halfway 1.0 .. 1.0078125: ties to even (down) */
        {0x3f818000u, 0x3f82}, /* halfway 0x3f81 .. 0x3f82: ties to even (up) */
        {0x3f808001u, 0x3f81}, /* just above halfway */
        {0x3f807fffu, 0x3f80}, /* just below halfway */
        {0xbf808000u, 0xbf80}, /* negative tie */
        {0xbf818001u, 0xbf82},
        {0x7f7fffffu, 0x7f80}, /* FLT_MAX rounds to +inf */
        {0x7f7f7fffu, 0x7f7f}, /* largest value that stays finite */
        {0x7f800000u, 0x7f80}, /* +inf */
        {0xff800000u, 0xff80}, /* -inf */
        {0x00008000u, 0x0000}, /* subnormal tie to even (zero) */
        {0x00018000u, 0x0002}, /* subnormal tie to even (up) */
        {0x80000000u, 0x8000}, /* -0 */
        {0x3fffffffu, 0x4000}, /* carry into the exponent */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK_MSG(vp_f32_to_bf16(from_bits(cases[i].f)) == cases[i].bf, "f32 %08x -> %04x, want %04x",
                  cases[i].f, vp_f32_to_bf16(from_bits(cases[i].f)), cases[i].bf);
    /* NaN stays NaN, sign kept, even when the payload lives only in the low 16 bits */
    uint32_t nans[] = {0x7fc00000u, 0x7f800001u, 0xffc00001u, 0x7fffffffu};
    for (size_t i = 0; i < sizeof nans / sizeof nans[0]; i++) {
        uint16_t h = vp_f32_to_bf16(from_bits(nans[i]));
        CHECK_MSG(isnan(vp_bf16_to_f32(h)), "NaN %08x -> %04x", nans[i], h);
        CHECK((h & 0x8000u) == ((nans[i] >> 16) & 0x8000u));
    }
}

static void test_f16(void)
{
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = vp_f16_to_f32((uint16_t)h);
        bool nan_bits = ((h >> 10) & 0x1f) == 0x1f && (h & 0x3ff);
        if (nan_bits != (bool)isnan(f) || (!isnan(f) && vp_f32_to_f16(f) != h))
            bad++;
    }
    CHECK_MSG(bad == 0, "%d f16 values do not round-trip", bad);
    CHECK(vp_f16_to_f32(0x3c00) == 1.0f);
    CHECK(vp_f16_to_f32(0xc000) == -2.0f);
    CHECK(vp_f16_to_f32(0x7bff) == 65504.0f);
    CHECK(vp_f16_to_f32(0x0001) == ldexpf(1.0f, -24));
    CHECK(vp_f16_to_f32(0x03ff) == 1023.0f * ldexpf(1.0f, -24));
    CHECK(vp_f16_to_f32(0x0400) == ldexpf(1.0f, -14));
    CHECK(isinf(vp_f16_to_f32(0xfc00)) && vp_f16_to_f32(0xfc00) < 0);
    CHECK(vp_f32_to_f16(65519.0f) == 0x7bff);
    CHECK(vp_f32_to_f16(65520.0f) == 0x7c00);              /* tie with 65536 (inf): even */
    CHECK(vp_f32_to_f16(1e9f) == 0x7c00);
    CHECK(vp_f32_to_f16(-1e9f) == 0xfc00);
    CHECK(vp_f32_to_f16(1.0f + ldexpf(1.0f, -11)) == 0x3c00);     /* tie: even (down) */
    CHECK(vp_f32_to_f16(1.0f + 3 * ldexpf(1.0f, -11)) == 0x3c02); /* tie: even (up) */
    CHECK(vp_f32_to_f16(ldexpf(1.0f, -25)) == 0x0000);            /* tie with 0: even */
    CHECK(vp_f32_to_f16(ldexpf(1.5f, -25)) == 0x0001);
    CHECK(vp_f32_to_f16(ldexpf(3.0f, -25)) == 0x0002);            /* 1.5 units: even (up) */
    CHECK(vp_f32_to_f16(ldexpf(1.0f, -26)) == 0x0000);
    CHECK(vp_f32_to_f16(ldexpf(2047.0f, -25)) == 0x0400);         /* rounds up to the smallest normal */
    CHECK(vp_f32_to_f16(-0.0f) == 0x8000);
    CHECK(isnan(vp_f16_to_f32(vp_f32_to_f16(NAN))));
}

static void test_tensor_access(void)
{
    /* deliberately misaligned storage: readers must not assume alignment */
    unsigned char buf[64];
    memset(buf, 0, sizeof buf);
    float fv[3] = {1.5f, -2.25f, 3e-3f};
    memcpy(buf + 1, fv, sizeof fv);
    vp_tensor t = {.name = "x", .dtype = VP_DT_F32, .ndim = 2, .shape = {1, 3}, .data = buf + 1,
                   .nbytes = 12};
    CHECK(vp_tensor_numel(&t) == 3);
    CHECK(vp_tensor_get(&t, 1) == -2.25f);
    uint16_t hv[3] = {0x3fc0, 0xc010, 0x0001}; /* bf16 1.5, -2.25, smallest subnormal */
    memcpy(buf + 3, hv, sizeof hv);
    t = (vp_tensor){.name = "y", .dtype = VP_DT_BF16, .ndim = 1, .shape = {3}, .data = buf + 3};
    CHECK(vp_tensor_get(&t, 0) == 1.5f);
    CHECK(vp_tensor_get(&t, 1) == -2.25f);
    CHECK(vp_tensor_get(&t, 2) == from_bits(0x00010000u));
    float out[3];
    vp_tensor_to_f32(&t, out);
    CHECK(out[0] == 1.5f && out[1] == -2.25f);
    uint16_t f16v[2] = {0x3e00, 0xbc00}; /* f16 1.5, -1 */
    memcpy(buf + 9, f16v, sizeof f16v);
    t = (vp_tensor){.name = "z", .dtype = VP_DT_F16, .ndim = 1, .shape = {2}, .data = buf + 9};
    vp_tensor_to_f32(&t, out);
    CHECK(out[0] == 1.5f && out[1] == -1.0f);
    /* whole-array conversion agrees with the scalar ones */
    float src[4] = {1.0f + ldexpf(1.0f, -8), 65520.0f, -3.0f, 1e-30f};
    uint16_t dst[4];
    vp_f32_to_dtype(src, 4, VP_DT_BF16, dst);
    for (int i = 0; i < 4; i++)
        CHECK(dst[i] == vp_f32_to_bf16(src[i]));
    vp_f32_to_dtype(src, 4, VP_DT_F16, dst);
    for (int i = 0; i < 4; i++)
        CHECK(dst[i] == vp_f32_to_f16(src[i]));
    CHECK(vp_dtype_size(VP_DT_BF16) == 2 && vp_dtype_size(VP_DT_F16) == 2 &&
          vp_dtype_size(VP_DT_F32) == 4);
    vp_dtype dt;
    CHECK(vp_dtype_parse("BF16", &dt) == 0 && dt == VP_DT_BF16);
    CHECK(vp_dtype_parse("F32", &dt) == 0 && dt == VP_DT_F32);
    CHECK(vp_dtype_parse("F16", &dt) == 0 && dt == VP_DT_F16);
    CHECK(vp_dtype_parse("bf16", &dt) == -1);
    CHECK(vp_dtype_parse("I64", &dt) == -1);
    CHECK(vp_dtype_parse("F64", &dt) == -1);
    CHECK(!strcmp(vp_dtype_name(VP_DT_BF16), "BF16"));
}

static void test_rng(void)
{
    uint64_t k1 = vp_rng_key(1, "a.weight"), k2 = vp_rng_key(2, "a.weight");
    uint64_t k3 = vp_rng_key(1, "b.weight");
    CHECK(k1 != k2 && k1 != k3 && k1 == vp_rng_key(1, "a.weight"));
    enum { N = 200001 };
    float *all = malloc(N * sizeof *all), *part = malloc(N * sizeof *part);
    vp_rng_normal_fill(k1, 0, N, all);
    /* any chunking gives the same values: odd and even starts, odd lengths */
    size_t cuts[] = {0, 1, 2, 7, 1000, 1001, 65537, 150000, N};
    for (size_t c = 0; c + 1 < sizeof cuts / sizeof cuts[0]; c++)
        vp_rng_normal_fill(k1, cuts[c], cuts[c + 1] - cuts[c], part + cuts[c]);
    CHECK(memcmp(all, part, N * sizeof *all) == 0);
    double sum = 0, sq = 0, q4 = 0;
    for (size_t i = 0; i < N; i++) {
        sum += all[i];
        sq += (double)all[i] * all[i];
        q4 += (double)all[i] * all[i] * all[i] * all[i];
    }
    double mean = sum / N, var = sq / N - mean * mean;
    CHECK_MSG(fabs(mean) < 0.01, "normal mean %g", mean);
    CHECK_MSG(fabs(var - 1) < 0.02, "normal variance %g", var);
    CHECK_MSG(fabs(q4 / N - 3) < 0.1, "normal 4th moment %g (3 expected)", q4 / N);
    vp_rng_normal_fill(k2, 0, N, part);
    CHECK(memcmp(all, part, N * sizeof *all) != 0);
    double usum = 0;
    float umin = 1, umax = 0;
    for (size_t i = 0; i < N; i++) {
        float u = vp_rng_uniform(k3, i);
        usum += u;
        umin = u < umin ? u : umin;
        umax = u > umax ? u : umax;
    }
    CHECK(umin >= 0.0f && umax < 1.0f && umin < 0.001f && umax > 0.999f);
    CHECK_MSG(fabs(usum / N - 0.5) < 0.005, "uniform mean %g", usum / N);
    free(all);
    free(part);
}

int main(void)
{
    test_bf16();
    test_f16();
    test_tensor_access();
    test_rng();
    return check_summary("test_model_tensor");
}
