/* The scoring head: final RMSNorm of an output row, then its dot products with the "+"
 * and "-" rows of the LM head (the only two of the 92553 rows scoring needs). One block
 * per output row; norm statistics in double, dot products in fp32. */
#include "engine/cuda/k_common.cuh"

__global__ void head_kernel(float *logits, const float *xo, int hidden, const float *norm_w,
                            float eps, const float *rows2)
{
    __shared__ double dscratch[32];
    __shared__ float fscratch[32];
    const float *xr = xo + (size_t)blockIdx.x * hidden;
    double sq = 0.0;
    for (int d = threadIdx.x; d < hidden; d += blockDim.x)
        sq += (double)xr[d] * xr[d];
    double inv = 1.0 / sqrt(vpk_block_sum(sq, dscratch) / (double)hidden + (double)eps);
    float plus = 0.0f, minus = 0.0f;
    for (int d = threadIdx.x; d < hidden; d += blockDim.x) {
        float h = __fmul_rn(norm_w[d], (float)((double)xr[d] * inv));
        plus = fmaf(h, rows2[d], plus);
        minus = fmaf(h, rows2[hidden + d], minus);
    }
    plus = vpk_block_sum(plus, fscratch);
    minus = vpk_block_sum(minus, fscratch);
    if (threadIdx.x == 0) {
        logits[2 * (size_t)blockIdx.x] = plus;
        logits[2 * (size_t)blockIdx.x + 1] = minus;
    }
}

extern "C" cudaError_t vpk_head(cudaStream_t stream, float *logits, const float *xo,
                                size_t n_out, int hidden, const float *norm_w, float eps,
                                const float *rows2)
{
    if (n_out == 0)
        return cudaSuccess;
    if (n_out > 0x7fffffffu)
        return cudaErrorInvalidValue;
    head_kernel<<<(unsigned)n_out, VPK_BLOCK, 0, stream>>>(logits, xo, hidden, norm_w, eps,
                                                            rows2);
    return cudaGetLastError();
}
