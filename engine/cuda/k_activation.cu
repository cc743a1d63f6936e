/* Activations, computed in fp32: exact GELU (erf) on the activation type (vpk_act) for the
 * ViT MLP and the projector; the SiLU-gated product of the InternLM2 MLP to the input of
 * w2, from the fp32 gate | up product with bf16 activations (one rounding: rounding gate
 * and up to bf16 first was the largest single source of the 8B forward's error against
 * fp32, tests/gpu/README.md), from an fp16 one with fp16 activations (whose eleven bits
 * make that rounding eight times smaller, for half the bytes). */
#include "engine/cuda/k_common.cuh"

static __device__ __forceinline__ float gelu_f(float v)
{
    return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
}

static __device__ __forceinline__ float silu_gate_f(float g, float u)
{
    return g / (1.0f + expf(-g)) * u;
}

template <typename T>
__global__ void gelu_kernel(T *x, size_t n)
{
    VPK_GRID_STRIDE(i, n)
    x[i] = vpk_from_f<T>(gelu_f(vpk_to_f<T>(x[i])));
}

/* Eight values per thread, 16-byte loads and stores (n % 8 == 0, aligned). */
template <typename T>
__global__ void gelu8_kernel(T *x, size_t n8)
{
    VPK_GRID_STRIDE(i, n8)
    {
        uint4 v = reinterpret_cast<uint4 *>(x)[i];
        T *e = reinterpret_cast<T *>(&v);
#pragma unroll
        for (int k = 0; k < 8; k++)
            e[k] = vpk_from_f<T>(gelu_f(vpk_to_f<T>(e[k])));
        reinterpret_cast<uint4 *>(x)[i] = v;
    }
}

static __device__ __forceinline__ float gu_f(float v)
{
    return v;
}

template <typename G>
static __device__ __forceinline__ float gu_f(G v)
{
    return vpk_to_f<G>(v);
}

/* G: the gate | up rows' type (float, or the act type T) */
template <typename T, typename G>
__global__ void silu_gate_kernel(T *h, const G *gu, size_t rows, size_t inter)
{
    VPK_GRID_STRIDE(i, rows * inter)
    {
        size_t r = i / inter, c = i % inter;
        h[i] = vpk_from_f<T>(silu_gate_f(gu_f(gu[r * 2 * inter + c]),
                                         gu_f(gu[r * 2 * inter + inter + c])));
    }
}

/* 16-bit gate | up: eight columns per thread, 16-byte loads and store (inter % 8 == 0,
 * aligned rows). */
template <typename T>
__global__ void silu_gate8_kernel(T *h, const T *gu, size_t rows, size_t inter8)
{
    VPK_GRID_STRIDE(i, rows * inter8)
    {
        size_t r = i / inter8, c = i % inter8;
        uint4 g = reinterpret_cast<const uint4 *>(gu + r * 16 * inter8)[c];
        uint4 u = reinterpret_cast<const uint4 *>(gu + r * 16 * inter8 + 8 * inter8)[c];
        const T *ge = reinterpret_cast<const T *>(&g), *ue = reinterpret_cast<const T *>(&u);
        uint4 o;
        T *oe = reinterpret_cast<T *>(&o);
#pragma unroll
        for (int k = 0; k < 8; k++)
            oe[k] = vpk_from_f<T>(silu_gate_f(vpk_to_f<T>(ge[k]), vpk_to_f<T>(ue[k])));
        reinterpret_cast<uint4 *>(h + r * 8 * inter8)[c] = o;
    }
}

/* Four columns per thread with 16-byte loads and an 8-byte store (inter % 4 == 0,
 * aligned rows): the index division is paid once per four values. */
template <typename T>
__global__ void silu_gate4_kernel(T *h, const float *gu, size_t rows, size_t inter4)
{
    VPK_GRID_STRIDE(i, rows * inter4)
    {
        size_t r = i / inter4, c = i % inter4;
        const float4 g = reinterpret_cast<const float4 *>(gu + r * 8 * inter4)[c];
        const float4 u = reinterpret_cast<const float4 *>(gu + r * 8 * inter4 + 4 * inter4)[c];
        uint2 o = {vpk_from_f2<T>(silu_gate_f(g.x, u.x), silu_gate_f(g.y, u.y)),
                   vpk_from_f2<T>(silu_gate_f(g.z, u.z), silu_gate_f(g.w, u.w))};
        reinterpret_cast<uint2 *>(h + r * 4 * inter4)[c] = o;
    }
}

template <typename T>
static void launch_gelu(cudaStream_t stream, vp_bf16 *x, size_t n)
{
    if (n % 8 == 0 && (uintptr_t)x % 16 == 0)
        gelu8_kernel<T><<<vpk_blocks(n / 8, VPK_BLOCK), VPK_BLOCK, 0, stream>>>((T *)x, n / 8);
    else
        gelu_kernel<T><<<vpk_blocks(n, VPK_BLOCK), VPK_BLOCK, 0, stream>>>((T *)x, n);
}

extern "C" cudaError_t vpk_gelu(cudaStream_t stream, vp_bf16 *x, size_t n, int act)
{
    if (n == 0)
        return cudaSuccess;
    if (act == VPK_ACT_F16)
        launch_gelu<__half>(stream, x, n);
    else
        launch_gelu<bf16>(stream, x, n);
    return cudaGetLastError();
}

/* The SiLU-gate from rows [gate | up] in fp32 (vector kernel when aligned) ... */
template <typename T>
static void launch_silu(cudaStream_t stream, vp_bf16 *h, const float *gu, size_t rows,
                        size_t inter)
{
    if (inter % 4 == 0 && (uintptr_t)h % 8 == 0 && (uintptr_t)gu % 16 == 0)
        silu_gate4_kernel<T><<<vpk_blocks(rows * inter / 4, VPK_BLOCK), VPK_BLOCK, 0, stream>>>(
            (T *)h, gu, rows, inter / 4);
    else
        silu_gate_kernel<T, float><<<vpk_blocks(rows * inter, VPK_BLOCK), VPK_BLOCK, 0, stream>>>(
            (T *)h, gu, rows, inter);
}

/* ... or in the act type T */
template <typename T>
static void launch_silu(cudaStream_t stream, vp_bf16 *h, const vp_bf16 *gu, size_t rows,
                        size_t inter)
{
    if (inter % 8 == 0 && (uintptr_t)h % 16 == 0 && (uintptr_t)gu % 16 == 0)
        silu_gate8_kernel<T><<<vpk_blocks(rows * inter / 8, VPK_BLOCK), VPK_BLOCK, 0, stream>>>(
            (T *)h, (const T *)gu, rows, inter / 8);
    else
        silu_gate_kernel<T, T><<<vpk_blocks(rows * inter, VPK_BLOCK), VPK_BLOCK, 0, stream>>>(
            (T *)h, (const T *)gu, rows, inter);
}

template <typename G>
static cudaError_t silu_by_act(cudaStream_t stream, vp_bf16 *h, const G *gu, size_t rows,
                               size_t inter, int act)
{
    if (rows * inter == 0)
        return cudaSuccess;
    if (act == VPK_ACT_F16)
        launch_silu<__half>(stream, h, gu, rows, inter);
    else
        launch_silu<bf16>(stream, h, gu, rows, inter);
    return cudaGetLastError();
}

extern "C" cudaError_t vpk_silu_gate(cudaStream_t stream, vp_bf16 *h, const float *gu,
                                     size_t rows, size_t inter, int act)
{
    return silu_by_act(stream, h, gu, rows, inter, act);
}

extern "C" cudaError_t vpk_silu_gate16(cudaStream_t stream, vp_bf16 *h, const vp_bf16 *gu,
                                       size_t rows, size_t inter, int act)
{
    return silu_by_act(stream, h, gu, rows, inter, act);
}
