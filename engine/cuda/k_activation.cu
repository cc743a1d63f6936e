/* Activations on bf16 tensors, computed in fp32: exact GELU (erf) for the ViT MLP and the
 * projector, SiLU-gated product for the InternLM2 MLP. */
#include "engine/cuda/k_common.cuh"

__global__ void gelu_kernel(bf16 *x, size_t n)
{
    VPK_GRID_STRIDE(i, n)
    {
        float v = vpk_bf(x[i]);
        x[i] = __float2bfloat16_rn(0.5f * v * (1.0f + erff(v * 0.70710678118654752f)));
    }
}

__global__ void silu_gate_kernel(bf16 *h, const bf16 *gu, size_t rows, size_t inter)
{
    VPK_GRID_STRIDE(i, rows * inter)
    {
        size_t r = i / inter, c = i % inter;
        float g = vpk_bf(gu[r * 2 * inter + c]), u = vpk_bf(gu[r * 2 * inter + inter + c]);
        h[i] = __float2bfloat16_rn(g / (1.0f + expf(-g)) * u);
    }
}

/* Eight columns per thread with 16-byte loads and stores (inter % 8 == 0, aligned rows):
 * the scalar kernel's 64-bit index division per element made it twice the memory time. */
__global__ void silu_gate8_kernel(bf16 *h, const bf16 *gu, size_t rows, size_t inter8)
{
    VPK_GRID_STRIDE(i, rows * inter8)
    {
        size_t r = i / inter8, c = i % inter8;
        const uint4 gv = reinterpret_cast<const uint4 *>(gu + r * 16 * inter8)[c];
        const uint4 uv = reinterpret_cast<const uint4 *>(gu + r * 16 * inter8 + 8 * inter8)[c];
        const bf16 *g = reinterpret_cast<const bf16 *>(&gv), *u = reinterpret_cast<const bf16 *>(&uv);
        uint4 ov;
        bf16 *o = reinterpret_cast<bf16 *>(&ov);
#pragma unroll
        for (int k = 0; k < 8; k++) {
            float gf = vpk_bf(g[k]);
            o[k] = __float2bfloat16_rn(gf / (1.0f + expf(-gf)) * vpk_bf(u[k]));
        }
        reinterpret_cast<uint4 *>(h + r * 8 * inter8)[c] = ov;
    }
}

extern "C" cudaError_t vpk_gelu(cudaStream_t stream, vp_bf16 *x, size_t n)
{
    if (n == 0)
        return cudaSuccess;
    gelu_kernel<<<vpk_blocks(n, VPK_BLOCK), VPK_BLOCK, 0, stream>>>((bf16 *)x, n);
    return cudaGetLastError();
}

extern "C" cudaError_t vpk_silu_gate(cudaStream_t stream, vp_bf16 *h, const vp_bf16 *gu,
                                     size_t rows, size_t inter)
{
    if (rows * inter == 0)
        return cudaSuccess;
    if (inter % 8 == 0 && (uintptr_t)h % 16 == 0 && (uintptr_t)gu % 16 == 0)
        silu_gate8_kernel<<<vpk_blocks(rows * inter / 8, VPK_BLOCK), VPK_BLOCK, 0, stream>>>(
            (bf16 *)h, (const bf16 *)gu, rows, inter / 8);
    else
        silu_gate_kernel<<<vpk_blocks(rows * inter, VPK_BLOCK), VPK_BLOCK, 0, stream>>>(
            (bf16 *)h, (const bf16 *)gu, rows, inter);
    return cudaGetLastError();
}
