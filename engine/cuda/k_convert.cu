/* Weight upload: dtype conversion into the device layout, and the seeded random weights
 * of `vprm mkmodel` generated in place (engine/cuda_plan/rand_rule.h). */
#include "engine/cuda/k_common.cuh"
#include "engine/model/tensor.h"

static __device__ __forceinline__ float load_src(const void *src, int dtype, size_t i)
{
    switch (dtype) {
    case VP_DT_F32: return ((const float *)src)[i];
    case VP_DT_F16: return __half2float(((const __half *)src)[i]);
    default: return __bfloat162float(((const bf16 *)src)[i]);
    }
}

static __device__ __forceinline__ void store_dst(void *dst, int type, size_t at, float v)
{
    if (type == VP_CW_BF16)
        ((bf16 *)dst)[at] = __float2bfloat16_rn(v);
    else
        ((float *)dst)[at] = v;
}

__global__ void convert_kernel(void *dst, int dst_type, const void *src, int src_dtype,
                               size_t first, size_t n, size_t cols, size_t pitch)
{
    VPK_GRID_STRIDE(e, n)
    {
        size_t g = first + e;
        /* a bf16 -> bf16 copy moves the bits (NaN payloads included) */
        if (src_dtype == VP_DT_BF16 && dst_type == VP_CW_BF16)
            ((bf16 *)dst)[g / cols * pitch + g % cols] = ((const bf16 *)src)[e];
        else
            store_dst(dst, dst_type, g / cols * pitch + g % cols, load_src(src, src_dtype, e));
    }
}

__global__ void random_kernel(void *dst, int dst_type, vp_rand_rule rule, int round_bf16,
                              uint64_t first, size_t n, size_t cols, size_t pitch)
{
    VPK_GRID_STRIDE(e, n)
    {
        uint64_t g = first + e;
        float v = vp_rr_value(&rule, g);
        if (round_bf16)
            v = __bfloat162float(__float2bfloat16_rn(v));
        store_dst(dst, dst_type, g / cols * pitch + g % cols, v);
    }
}

extern "C" cudaError_t vpk_convert(cudaStream_t stream, void *dst, int dst_type, const void *src,
                                   int src_dtype, size_t first, size_t n, size_t cols,
                                   size_t pitch)
{
    if (n == 0)
        return cudaSuccess;
    convert_kernel<<<vpk_blocks(n, VPK_BLOCK), VPK_BLOCK, 0, stream>>>(dst, dst_type, src,
                                                                        src_dtype, first, n,
                                                                        cols, pitch);
    return cudaGetLastError();
}

extern "C" cudaError_t vpk_random_fill(cudaStream_t stream, void *dst, int dst_type,
                                       const vp_rand_rule *rule, int round_bf16, uint64_t first,
                                       size_t n, size_t cols, size_t pitch)
{
    if (n == 0)
        return cudaSuccess;
    random_kernel<<<vpk_blocks(n, VPK_BLOCK), VPK_BLOCK, 0, stream>>>(dst, dst_type, *rule,
                                                                       round_bf16, first, n,
                                                                       cols, pitch);
    return cudaGetLastError();
}

/* bf16 -> fp16 in place, for the products' weights in fp16 activations (vpk_act): the
 * values stay the bf16 ones (fp16 has three more mantissa bits) except beyond its range. */
__global__ void bf16_to_f16_kernel(uint16_t *x, size_t n, unsigned long long *overflow)
{
    unsigned long long over = 0;
    VPK_GRID_STRIDE(i, n)
    {
        float v = __bfloat162float(__ushort_as_bfloat16(x[i]));
        __half h = __float2half_rn(v);
        over += isfinite(v) && __hisinf(h);
        x[i] = __half_as_ushort(h);
    }
    if (over)
        atomicAdd(overflow, over);
}

extern "C" cudaError_t vpk_bf16_to_f16(cudaStream_t stream, vp_bf16 *x, size_t n,
                                       unsigned long long *overflow)
{
    if (n == 0)
        return cudaSuccess;
    bf16_to_f16_kernel<<<vpk_blocks(n, VPK_BLOCK), VPK_BLOCK, 0, stream>>>(x, n, overflow);
    return cudaGetLastError();
}
