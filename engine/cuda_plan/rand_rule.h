/* The random-weight generator of `vprm mkmodel` (engine/model/mkmodel.c + rng.c) as a
 * per-element rule that host C and CUDA device code evaluate from this one source:
 * value i of a tensor is a pure function of (seed, tensor name, i), so the CUDA backend
 * can fill the full 8B shape directly on the GPU (no 16 GB file), the PyTorch reference
 * gets the same tensors through tests/gpu's libvprm_randw.so, and a model written by
 * `vprm mkmodel --seed N` holds the same values (tests/unit/test_cuda_rand_rule.c checks
 * the host evaluation against mkmodel's output bit for bit; on the GPU, CUDA's logf and
 * sincosf may differ from glibc's by an ulp or two, which changes a bf16 weight by one
 * bf16 ulp in rare elements: the CUDA backend and the PyTorch reference both take the
 * GPU's values, so their comparison is exact in the weights).
 *
 * Float steps that C could fuse are written with VP_RR_FMUL / VP_RR_FADD so that nvcc
 * cannot contract them into an FMA (gcc does not contract under -std=c11). */
#ifndef VP_RAND_RULE_H
#define VP_RAND_RULE_H

#include <math.h>
#include <stdint.h>

#if defined(__CUDACC__)
#define VP_RR_HD __host__ __device__
#else
#define VP_RR_HD
#endif

#if defined(__CUDA_ARCH__)
#define VP_RR_FMUL(a, b) __fmul_rn((a), (b))
#define VP_RR_FADD(a, b) __fadd_rn((a), (b))
#else
#define VP_RR_FMUL(a, b) ((a) * (b))
#define VP_RR_FADD(a, b) ((a) + (b))
#endif

typedef enum {
    VP_RAND_NORMAL = 0, /* normal(0, 1) * std (std_special on the special rows) */
    VP_RAND_NORM = 1,   /* 1 + 0.05 * normal(0, 1): norm scales */
    VP_RAND_SCALE = 2   /* 0.1 + 0.9 * uniform[0, 1): ViT layer scales */
} vp_rand_kind;

typedef enum {
    VP_RAND_ROWS_NONE = 0,
    VP_RAND_ROWS_BELOW = 1,    /* rows < a (ViT qkv: the q and k blocks) */
    VP_RAND_ROWS_GROUP_QK = 2, /* (row / a) % b < b - 1 (InternLM2 wqkv: a = head_dim,
                                  b = heads per KV group + 2: all but the value head) */
    VP_RAND_ROWS_PAIR = 3      /* row == a or row == b (LM head: "+" and "-") */
} vp_rand_rows;

typedef struct vp_rand_rule {
    uint64_t key;       /* vp_rng_key(seed, tensor name) */
    int32_t kind;       /* vp_rand_kind */
    int32_t rows;       /* vp_rand_rows */
    float std, std_special;
    uint64_t cols;      /* row length: element i is in row i / cols */
    int64_t a, b;       /* parameters of `rows` */
} vp_rand_rule;

VP_RR_HD static inline uint64_t vp_rr_mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

VP_RR_HD static inline uint64_t vp_rr_bits(uint64_t key, uint64_t i)
{
    return vp_rr_mix64(vp_rr_mix64(key + i * 0xd1b54a32d192ed03ull) ^ key);
}

VP_RR_HD static inline float vp_rr_uniform(uint64_t key, uint64_t i)
{
    return (float)(vp_rr_bits(key, i) >> 40) * (1.0f / 16777216.0f);
}

/* Standard normal of element i: Box-Muller in float on counter i / 2 (cos for even i,
 * sin for odd), as rng.c's normal_pair. */
VP_RR_HD static inline float vp_rr_normal(uint64_t key, uint64_t i)
{
    uint64_t r = vp_rr_bits(key, i >> 1);
    float u1 = ((float)(r >> 40) + 1.0f) * (1.0f / 16777216.0f);
    float u2 = (float)((r >> 16) & 0xffffffu) * (1.0f / 16777216.0f);
    float radius = sqrtf(-2.0f * logf(u1));
    float s, c;
    sincosf(6.2831853f * u2, &s, &c);
    return (i & 1) ? radius * s : radius * c;
}

VP_RR_HD static inline int vp_rr_special_row(const vp_rand_rule *r, uint64_t row)
{
    switch (r->rows) {
    case VP_RAND_ROWS_BELOW: return (int64_t)row < r->a;
    case VP_RAND_ROWS_GROUP_QK: return (int64_t)((row / (uint64_t)r->a) % (uint64_t)r->b) < r->b - 1;
    case VP_RAND_ROWS_PAIR: return (int64_t)row == r->a || (int64_t)row == r->b;
    default: return 0;
    }
}

/* Element i of the tensor, as float (before rounding to the checkpoint's dtype). */
VP_RR_HD static inline float vp_rr_value(const vp_rand_rule *r, uint64_t i)
{
    switch (r->kind) {
    case VP_RAND_SCALE:
        return VP_RR_FADD(0.1f, VP_RR_FMUL(0.9f, vp_rr_uniform(r->key, i)));
    case VP_RAND_NORM:
        return VP_RR_FADD(1.0f, VP_RR_FMUL(0.05f, vp_rr_normal(r->key, i)));
    default: {
        float s = vp_rr_special_row(r, i / r->cols) ? r->std_special : r->std;
        return VP_RR_FMUL(vp_rr_normal(r->key, i), s);
    }
    }
}

#endif
