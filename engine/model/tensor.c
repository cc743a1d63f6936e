/* dtype helpers and exact bf16 / f16 <-> f32 conversions. Reads go through memcpy
 * because tensors inside a safetensors mapping need not be aligned. */
#include "engine/model/tensor.h"

#include <string.h>

size_t vp_dtype_size(vp_dtype dt)
{
    switch (dt) {
    case VP_DT_F32: return 4;
    case VP_DT_F16: return 2;
    case VP_DT_BF16: return 2;
    }
    return 0;
}

const char *vp_dtype_name(vp_dtype dt)
{
    switch (dt) {
    case VP_DT_F32: return "F32";
    case VP_DT_F16: return "F16";
    case VP_DT_BF16: return "BF16";
    }
    return "?";
}

int vp_dtype_parse(const char *s, vp_dtype *out)
{
    static const vp_dtype all[] = {VP_DT_F32, VP_DT_F16, VP_DT_BF16};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (!strcmp(s, vp_dtype_name(all[i]))) {
            *out = all[i];
            return 0;
        }
    return -1;
}

size_t vp_tensor_numel(const vp_tensor *t)
{
    size_t n = 1;
    for (int d = 0; d < t->ndim; d++)
        n *= (size_t)t->shape[d];
    return n;
}

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float vp_bf16_to_f32(uint16_t h)
{
    return bits_f32((uint32_t)h << 16);
}

uint16_t vp_f32_to_bf16(float f)
{
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)        /* NaN: keep sign and top payload, force quiet */
        return (uint16_t)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);            /* round to nearest, ties to even */
    return (uint16_t)(u >> 16);
}

float vp_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0x1f)                            /* inf / NaN (payload kept) */
        return bits_f32(sign | 0x7f800000u | (man << 13));
    if (exp != 0)                               /* normal: rebias 15 -> 127 */
        return bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
    if (man == 0)
        return bits_f32(sign);
    /* subnormal: man * 2^-24, exact in f32 */
    float v = (float)man * bits_f32(0x33800000u); /* 2^-24 */
    return bits_f32(sign | f32_bits(v));
}

uint16_t vp_f32_to_f16(float f)
{
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u)                        /* NaN: quiet, top payload kept */
        return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    if (a >= 0x477ff000u)                       /* >= 65520 rounds to inf */
        return (uint16_t)(sign | 0x7c00u);
    if (a >= 0x38800000u) {                     /* normal f16 range (>= 2^-14) */
        uint32_t r = a - (112u << 23);          /* rebias 127 -> 15 */
        r += 0xfffu + ((r >> 13) & 1u);         /* round to nearest even on 13 dropped bits */
        return (uint16_t)(sign | (r >> 13));
    }
    if (a < 0x33000000u)                        /* below half the smallest subnormal: zero */
        return sign;
    /* subnormal: value = m * 2^-24 with m = round_even(a_value * 2^24) */
    uint32_t e = a >> 23;                       /* 102..112 */
    uint32_t man = (a & 0x7fffffu) | 0x800000u; /* 24-bit significand */
    uint32_t shift = 126u - e;                  /* 14..24: bits dropped to reach 2^-24 units */
    uint32_t m = man >> shift;
    uint32_t rest = man & ((1u << shift) - 1u);
    uint32_t half = 1u << (shift - 1u);
    if (rest > half || (rest == half && (m & 1u)))
        m++;
    return (uint16_t)(sign | m);
}

float vp_tensor_get(const vp_tensor *t, size_t i)
{
    const unsigned char *p = (const unsigned char *)t->data + i * vp_dtype_size(t->dtype);
    switch (t->dtype) {
    case VP_DT_F32: {
        float f;
        memcpy(&f, p, sizeof f);
        return f;
    }
    case VP_DT_F16: {
        uint16_t h;
        memcpy(&h, p, sizeof h);
        return vp_f16_to_f32(h);
    }
    case VP_DT_BF16: {
        uint16_t h;
        memcpy(&h, p, sizeof h);
        return vp_bf16_to_f32(h);
    }
    }
    return 0.0f;
}

void vp_tensor_to_f32(const vp_tensor *t, float *dst)
{
    size_t n = vp_tensor_numel(t);
    const unsigned char *p = t->data;
    switch (t->dtype) {
    case VP_DT_F32:
        memcpy(dst, p, n * sizeof *dst);
        return;
    case VP_DT_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, sizeof h);
            dst[i] = vp_f16_to_f32(h);
        }
        return;
    case VP_DT_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, sizeof h);
            dst[i] = vp_bf16_to_f32(h);
        }
        return;
    }
}

void vp_f32_to_dtype(const float *src, size_t n, vp_dtype dt, void *dst)
{
    unsigned char *p = dst;
    switch (dt) {
    case VP_DT_F32:
        memcpy(p, src, n * sizeof *src);
        return;
    case VP_DT_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h = vp_f32_to_f16(src[i]);
            memcpy(p + 2 * i, &h, sizeof h);
        }
        return;
    case VP_DT_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h = vp_f32_to_bf16(src[i]);
            memcpy(p + 2 * i, &h, sizeof h);
        }
        return;
    }
}
