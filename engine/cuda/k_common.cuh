/* Shared by the kernel files: bf16 helpers, launch-size helpers, block reductions. */
#ifndef VP_K_COMMON_CUH
#define VP_K_COMMON_CUH

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "engine/cuda/cuda_kernels.h"

typedef __nv_bfloat16 bf16;

#define VPK_BLOCK 256

/* Blocks for a grid-stride loop over n elements (bounded: the loop covers the rest). */
static inline unsigned vpk_blocks(size_t n, int block)
{
    size_t b = (n + (size_t)block - 1) / (size_t)block;
    const size_t cap = (size_t)1 << 20;
    return (unsigned)(b < cap ? (b ? b : 1) : cap);
}

#define VPK_GRID_STRIDE(i, n)                                                              \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);               \
         i += (size_t)gridDim.x * blockDim.x)

static __device__ __forceinline__ float vpk_bf(const bf16 v)
{
    return __bfloat162float(v);
}

/* The activation types (vpk_act): T is bf16 or __half; loads and stores through fp32,
 * rounding to nearest even (fp16 overflows to infinity). */
template <typename T> static __device__ __forceinline__ float vpk_to_f(T v);
template <> __device__ __forceinline__ float vpk_to_f<bf16>(bf16 v)
{
    return __bfloat162float(v);
}
template <> __device__ __forceinline__ float vpk_to_f<__half>(__half v)
{
    return __half2float(v);
}
template <typename T> static __device__ __forceinline__ T vpk_from_f(float v);
template <> __device__ __forceinline__ bf16 vpk_from_f<bf16>(float v)
{
    return __float2bfloat16_rn(v);
}
template <> __device__ __forceinline__ __half vpk_from_f<__half>(float v)
{
    return __float2half_rn(v);
}
/* Two adjacent values as 32 bits (lo in the low half, .x of the pair types) and back;
 * memcpy is the defined bit cast (a register move). */
template <typename T> static __device__ __forceinline__ float2 vpk_to_f2(uint32_t bits);
template <> __device__ __forceinline__ float2 vpk_to_f2<bf16>(uint32_t bits)
{
    __nv_bfloat162 v;
    memcpy(&v, &bits, sizeof v);
    return __bfloat1622float2(v);
}
template <> __device__ __forceinline__ float2 vpk_to_f2<__half>(uint32_t bits)
{
    __half2 v;
    memcpy(&v, &bits, sizeof v);
    return __half22float2(v);
}
template <typename T> static __device__ __forceinline__ uint32_t vpk_from_f2(float lo, float hi);
template <> __device__ __forceinline__ uint32_t vpk_from_f2<bf16>(float lo, float hi)
{
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return u;
}
template <> __device__ __forceinline__ uint32_t vpk_from_f2<__half>(float lo, float hi)
{
    __half2 v = __floats2half2_rn(lo, hi);
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return u;
}

/* Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets it.
 * scratch holds 32 values. */
template <typename T>
static __device__ __forceinline__ T vpk_block_sum(T v, T *scratch)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
    __syncthreads(); /* scratch may still be read from a previous call */
    if (lane == 0)
        scratch[warp] = v;
    __syncthreads();
    T total = 0;
    for (int w = 0; w < warps; w++) /* same order in every thread: same bits */
        total += scratch[w];
    return total;
}

#endif
