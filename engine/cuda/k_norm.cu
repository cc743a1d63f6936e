/* LayerNorm / RMSNorm over rows, with the residual add of the block before fused in
 * (x += scale * y, then normalise x). One block per row; mean and variance accumulated
 * in double like the CPU twins (vp_cpu_layer_norm: two passes; vp_cpu_rms_norm), and the
 * output formed in the same order: (float)((x - mean) * inv) * w + b, w * (float)(x * inv). */
#include "engine/cuda/k_common.cuh"

template <bool RMS>
__global__ void norm_kernel(float *x, int dim, const float *res, const float *res_scale,
                            const float *w, const float *b, float eps, bf16 *out,
                            size_t out_stride)
{
    __shared__ double scratch[32];
    size_t row = blockIdx.x;
    float *xr = x + row * (size_t)dim;
    if (res) { /* each thread rereads only what it wrote: no barrier needed */
        const float *yr = res + row * (size_t)dim;
        for (int d = threadIdx.x; d < dim; d += blockDim.x) {
            float add = res_scale ? __fmul_rn(res_scale[d], yr[d]) : yr[d];
            xr[d] = __fadd_rn(xr[d], add);
        }
    }
    if (!out)
        return;
    double mean = 0.0;
    if (!RMS) {
        double s = 0.0;
        for (int d = threadIdx.x; d < dim; d += blockDim.x)
            s += (double)xr[d];
        mean = vpk_block_sum(s, scratch) / (double)dim;
    }
    double sq = 0.0;
    for (int d = threadIdx.x; d < dim; d += blockDim.x) {
        double c = (double)xr[d] - mean;
        sq += c * c;
    }
    double inv = 1.0 / sqrt(vpk_block_sum(sq, scratch) / (double)dim + (double)eps);
    bf16 *o = out + row * out_stride;
    for (int d = threadIdx.x; d < dim; d += blockDim.x) {
        float v;
        if (RMS) {
            v = __fmul_rn(w[d], (float)((double)xr[d] * inv));
        } else {
            v = __fmul_rn((float)(((double)xr[d] - mean) * inv), w[d]);
            if (b)
                v = __fadd_rn(v, b[d]);
        }
        o[d] = __float2bfloat16_rn(v);
    }
}

__global__ void rms_bf16_kernel(bf16 *x, int dim, size_t stride, const float *w, float eps)
{
    __shared__ double scratch[32];
    bf16 *xr = x + blockIdx.x * stride;
    double sq = 0.0;
    for (int d = threadIdx.x; d < dim; d += blockDim.x) {
        double v = (double)vpk_bf(xr[d]);
        sq += v * v;
    }
    double inv = 1.0 / sqrt(vpk_block_sum(sq, scratch) / (double)dim + (double)eps);
    __syncthreads(); /* every read of xr before any write */
    for (int d = threadIdx.x; d < dim; d += blockDim.x)
        xr[d] = __float2bfloat16_rn(__fmul_rn(w[d], (float)((double)vpk_bf(xr[d]) * inv)));
}

extern "C" cudaError_t vpk_norm(cudaStream_t stream, int rms, float *x, size_t rows, int dim,
                                const float *res, const float *res_scale, const float *w,
                                const float *b, float eps, vp_bf16 *out, size_t out_stride)
{
    if (rows == 0 || dim <= 0)
        return cudaSuccess;
    if (rows > 0x7fffffffu)
        return cudaErrorInvalidValue;
    if (rms)
        norm_kernel<true><<<(unsigned)rows, VPK_BLOCK, 0, stream>>>(x, dim, res, res_scale, w,
                                                                     b, eps, (bf16 *)out,
                                                                     out_stride);
    else
        norm_kernel<false><<<(unsigned)rows, VPK_BLOCK, 0, stream>>>(x, dim, res, res_scale, w,
                                                                      b, eps, (bf16 *)out,
                                                                      out_stride);
    return cudaGetLastError();
}

extern "C" cudaError_t vpk_rms_norm_bf16(cudaStream_t stream, vp_bf16 *x, size_t rows, int dim,
                                         size_t stride, const float *w, float eps)
{
    if (rows == 0 || dim <= 0)
        return cudaSuccess;
    if (rows > 0x7fffffffu)
        return cudaErrorInvalidValue;
    rms_bf16_kernel<<<(unsigned)rows, VPK_BLOCK, 0, stream>>>((bf16 *)x, dim, stride, w, eps);
    return cudaGetLastError();
}
