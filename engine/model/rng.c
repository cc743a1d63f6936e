#include "engine/model/rng.h"

#include <math.h>

uint64_t vp_rng_mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

uint64_t vp_rng_key(uint64_t seed, const char *name)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 0x100000001b3ull;
    return vp_rng_mix64(vp_rng_mix64(seed) ^ h);
}

uint64_t vp_rng_bits(uint64_t key, uint64_t i)
{
    /* Two rounds so that neighbouring counters of neighbouring keys do not correlate. */
    return vp_rng_mix64(vp_rng_mix64(key + i * 0xd1b54a32d192ed03ull) ^ key);
}

float vp_rng_uniform(uint64_t key, uint64_t i)
{
    return (float)(vp_rng_bits(key, i) >> 40) * (1.0f / 16777216.0f);
}

/* The normal pair of counter k, in float (the 8b scale draws 8e9 of them).
 * u1 in (0, 1] so log never sees 0. */
static void normal_pair(uint64_t key, uint64_t k, float *a, float *b)
{
    uint64_t r = vp_rng_bits(key, k);
    float u1 = ((float)(r >> 40) + 1.0f) * (1.0f / 16777216.0f);
    float u2 = (float)((r >> 16) & 0xffffffu) * (1.0f / 16777216.0f);
    float radius = sqrtf(-2.0f * logf(u1));
    float s, c;
    sincosf(6.2831853f * u2, &s, &c);
    *a = radius * c;
    *b = radius * s;
}

void vp_rng_normal_fill(uint64_t key, uint64_t start, size_t n, float *out)
{
    size_t i = 0;
    float a, b;
    if (n && (start & 1)) { /* odd start: second half of a pair */
        normal_pair(key, start >> 1, &a, &b);
        out[i++] = b;
    }
    for (; i + 1 < n; i += 2) {
        normal_pair(key, (start + i) >> 1, &a, &b);
        out[i] = a;
        out[i + 1] = b;
    }
    if (i < n) {
        normal_pair(key, (start + i) >> 1, &a, &b);
        out[i] = a;
    }
}
