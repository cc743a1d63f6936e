/* Activations, computed in fp32: exact GELU (erf) on bf16 for the ViT MLP and the
 * projector; the SiLU-gated product of the InternLM2 MLP from the fp32 gate | up product
 * to the bf16 input of w2 (one rounding: rounding gate and up to bf16 first was the
 * largest single source of the 8B forward's error against fp32, tests/gpu/README.md). */
#include "engine/cuda/k_common.cuh"

static __device__ __forceinline__ float gelu_f(float v)
{
    return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
}

static __device__ __forceinline__ float silu_gate_f(float g, float u)
{
    return g / (1.0f + expf(-g)) * u;
}

__global__ void gelu_kernel(bf16 *x, size_t n)
{
    VPK_GRID_STRIDE(i, n)
    x[i] = __float2bfloat16_rn(gelu_f(vpk_bf(x[i])));
}

/* Eight values per thread, 16-byte loads and stores (n % 8 == 0, aligned). */
__global__ void gelu8_kernel(bf16 *x, size_t n8)
{
    VPK_GRID_STRIDE(i, n8)
    {
        uint4 v = reinterpret_cast<uint4 *>(x)[i];
        bf16 *e = reinterpret_cast<bf16 *>(&v);
#pragma unroll
        for (int k = 0; k < 8; k++)
            e[k] = __float2bfloat16_rn(gelu_f(vpk_bf(e[k])));
        reinterpret_cast<uint4 *>(x)[i] = v;
    }
}

__global__ void silu_gate_kernel(bf16 *h, const float *gu, size_t rows, size_t inter)
{
    VPK_GRID_STRIDE(i, rows * inter)
    {
        size_t r = i / inter, c = i % inter;
        h[i] = __float2bfloat16_rn(silu_gate_f(gu[r * 2 * inter + c], gu[r * 2 * inter + inter + c]));
    }
}

/* Four columns per thread with 16-byte loads and an 8-byte store (inter % 4 == 0,
 * aligned rows): the index division is paid once per four values. */
__global__ void silu_gate4_kernel(bf16 *h, const float *gu, size_t rows, size_t inter4)
{
    VPK_GRID_STRIDE(i, rows * inter4)
    {
        size_t r = i / inter4, c = i % inter4;
        const float4 g = reinterpret_cast<const float4 *>(gu + r * 8 * inter4)[c];
        const float4 u = reinterpret_cast<const float4 *>(gu + r * 8 * inter4 + 4 * inter4)[c];
        bf16 o[4] = {__float2bfloat16_rn(silu_gate_f(g.x, u.x)), __float2bfloat16_rn(silu_gate_f(g.y, u.y)),
                     __float2bfloat16_rn(silu_gate_f(g.z, u.z)), __float2bfloat16_rn(silu_gate_f(g.w, u.w))};
        reinterpret_cast<uint2 *>(h + r * 4 * inter4)[c] = *reinterpret_cast<uint2 *>(o);
    }
}

extern "C" cudaError_t vpk_gelu(cudaStream_t stream, vp_bf16 *x, size_t n)
{
    if (n == 0)
        return cudaSuccess;
    if (n % 8 == 0 && (uintptr_t)x % 16 == 0)
        gelu8_kernel<<<vpk_blocks(n / 8, VPK_BLOCK), VPK_BLOCK, 0, stream>>>((bf16 *)x, n / 8);
    else
        gelu_kernel<<<vpk_blocks(n, VPK_BLOCK), VPK_BLOCK, 0, stream>>>((bf16 *)x, n);
    return cudaGetLastError();
}

extern "C" cudaError_t vpk_silu_gate(cudaStream_t stream, vp_bf16 *h, const float *gu,
                                     size_t rows, size_t inter)
{
    if (rows * inter == 0)
        return cudaSuccess;
    if (inter % 4 == 0 && (uintptr_t)h % 8 == 0 && (uintptr_t)gu % 16 == 0)
        silu_gate4_kernel<<<vpk_blocks(rows * inter / 4, VPK_BLOCK), VPK_BLOCK, 0, stream>>>(
            (bf16 *)h, gu, rows, inter / 4);
    else
        silu_gate_kernel<<<vpk_blocks(rows * inter, VPK_BLOCK), VPK_BLOCK, 0, stream>>>(
            (bf16 *)h, gu, rows, inter);
    return cudaGetLastError();
}
