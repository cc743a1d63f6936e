/* LayerNorm / RMSNorm over rows, with the residual add of the block before fused in
 * (x += scale * y, then normalise x). One block per row; mean and variance accumulated
 * in double like the CPU twins (vp_cpu_layer_norm: two passes; vp_cpu_rms_norm), and the
 * output formed in the same order: (float)((x - mean) * inv) * w + b, w * (float)(x * inv). */
#include "engine/cuda/k_common.cuh"

template <bool RMS, typename T>
__global__ void norm_kernel(float *x, int dim, const float *res, const float *res_scale,
                            const float *w, const float *b, float eps, T *out,
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
    T *o = out + row * out_stride;
    for (int d = threadIdx.x; d < dim; d += blockDim.x) {
        float v;
        if (RMS) {
            v = __fmul_rn(w[d], (float)((double)xr[d] * inv));
        } else {
            v = __fmul_rn((float)(((double)xr[d] - mean) * inv), w[d]);
            if (b)
                v = __fadd_rn(v, b[d]);
        }
        o[d] = vpk_from_f<T>(v);
    }
}

/* The same computation with the row in registers: NORM_THREADS threads, V float4 each
 * (dim = 512 V); one read of x and the residual, one write of each output. The general
 * kernel above reads x up to four times with a runtime-bound loop. */
#define NORM_THREADS 128

template <bool RMS, int V, typename T>
__global__ void __launch_bounds__(NORM_THREADS)
norm_reg_kernel(float *x, const float *res, const float *res_scale, const float *w,
                const float *b, float eps, T *out, size_t out_stride)
{
    const int dim = 4 * NORM_THREADS * V;
    __shared__ double scratch[32];
    size_t row = blockIdx.x;
    float4 *xr = reinterpret_cast<float4 *>(x + row * (size_t)dim);
    float4 v[V];
#pragma unroll
    for (int k = 0; k < V; k++)
        v[k] = xr[threadIdx.x + k * NORM_THREADS];
    if (res) {
        const float4 *yr = reinterpret_cast<const float4 *>(res + row * (size_t)dim);
#pragma unroll
        for (int k = 0; k < V; k++) {
            int j = threadIdx.x + k * NORM_THREADS;
            float4 y = yr[j];
            if (res_scale) {
                float4 sc = reinterpret_cast<const float4 *>(res_scale)[j];
                y = make_float4(__fmul_rn(sc.x, y.x), __fmul_rn(sc.y, y.y), __fmul_rn(sc.z, y.z),
                                __fmul_rn(sc.w, y.w));
            }
            v[k] = make_float4(__fadd_rn(v[k].x, y.x), __fadd_rn(v[k].y, y.y),
                               __fadd_rn(v[k].z, y.z), __fadd_rn(v[k].w, y.w));
            xr[j] = v[k];
        }
    }
    if (!out)
        return;
    double mean = 0.0;
    if (!RMS) {
        double s = 0.0;
#pragma unroll
        for (int k = 0; k < V; k++)
            s += ((double)v[k].x + (double)v[k].y) + ((double)v[k].z + (double)v[k].w);
        mean = vpk_block_sum(s, scratch) / (double)dim;
    }
    double sq = 0.0;
#pragma unroll
    for (int k = 0; k < V; k++) {
        double c0 = (double)v[k].x - mean, c1 = (double)v[k].y - mean;
        double c2 = (double)v[k].z - mean, c3 = (double)v[k].w - mean;
        sq += (c0 * c0 + c1 * c1) + (c2 * c2 + c3 * c3);
    }
    double inv = 1.0 / sqrt(vpk_block_sum(sq, scratch) / (double)dim + (double)eps);
    T *o = out + row * out_stride;
#pragma unroll
    for (int k = 0; k < V; k++) {
        int j = threadIdx.x + k * NORM_THREADS;
        float4 wv = reinterpret_cast<const float4 *>(w)[j];
        float in[4] = {v[k].x, v[k].y, v[k].z, v[k].w}, ww[4] = {wv.x, wv.y, wv.z, wv.w};
        float bb[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        if (!RMS && b) {
            float4 bv = reinterpret_cast<const float4 *>(b)[j];
            bb[0] = bv.x, bb[1] = bv.y, bb[2] = bv.z, bb[3] = bv.w;
        }
        T r[4];
#pragma unroll
        for (int e = 0; e < 4; e++) {
            float y;
            if (RMS) {
                y = __fmul_rn(ww[e], (float)((double)in[e] * inv));
            } else {
                y = __fmul_rn((float)(((double)in[e] - mean) * inv), ww[e]);
                if (b)
                    y = __fadd_rn(y, bb[e]);
            }
            r[e] = vpk_from_f<T>(y);
        }
        /* 8-byte store: out_stride and out are checked to allow it */
        *reinterpret_cast<uint2 *>(o + 4 * (size_t)j) = *reinterpret_cast<uint2 *>(r);
    }
}

template <bool RMS, typename T>
static bool launch_norm_reg(cudaStream_t stream, float *x, size_t rows, int dim, const float *res,
                            const float *res_scale, const float *w, const float *b, float eps,
                            T *out, size_t out_stride)
{
    int v = dim / (4 * NORM_THREADS);
    bool aligned = (uintptr_t)x % 16 == 0 && (uintptr_t)res % 16 == 0 &&
                   (uintptr_t)res_scale % 16 == 0 && (uintptr_t)w % 16 == 0 &&
                   (uintptr_t)b % 16 == 0 && (uintptr_t)out % 8 == 0 && out_stride % 4 == 0;
    if (dim % (4 * NORM_THREADS) || v < 1 || v > 8 || !aligned)
        return false;
    dim3 grid((unsigned)rows);
#define NORM_REG_CASE(V)                                                                   \
    case V:                                                                                \
        norm_reg_kernel<RMS, V, T><<<grid, NORM_THREADS, 0, stream>>>(x, res, res_scale, w, b, \
                                                                   eps, out, out_stride);  \
        break;
    switch (v) {
        NORM_REG_CASE(1)
        NORM_REG_CASE(2)
        NORM_REG_CASE(3)
        NORM_REG_CASE(4)
        NORM_REG_CASE(5)
        NORM_REG_CASE(6)
        NORM_REG_CASE(7)
        NORM_REG_CASE(8)
    }
#undef NORM_REG_CASE
    return true;
}

template <typename T>
__global__ void rms_bf16_kernel(T *x, int dim, size_t stride, const float *w, float eps)
{
    __shared__ double scratch[32];
    T *xr = x + blockIdx.x * stride;
    double sq = 0.0;
    for (int d = threadIdx.x; d < dim; d += blockDim.x) {
        double v = (double)vpk_to_f<T>(xr[d]);
        sq += v * v;
    }
    double inv = 1.0 / sqrt(vpk_block_sum(sq, scratch) / (double)dim + (double)eps);
    __syncthreads(); /* every read of xr before any write */
    for (int d = threadIdx.x; d < dim; d += blockDim.x)
        xr[d] = vpk_from_f<T>(__fmul_rn(w[d], (float)((double)vpk_to_f<T>(xr[d]) * inv)));
}

template <typename T>
static void launch_norm(cudaStream_t stream, int rms, float *x, size_t rows, int dim,
                        const float *res, const float *res_scale, const float *w, const float *b,
                        float eps, T *out, size_t out_stride)
{
    if (rms ? launch_norm_reg<true, T>(stream, x, rows, dim, res, res_scale, w, b, eps, out,
                                       out_stride)
            : launch_norm_reg<false, T>(stream, x, rows, dim, res, res_scale, w, b, eps, out,
                                        out_stride))
        return;
    if (rms)
        norm_kernel<true, T><<<(unsigned)rows, VPK_BLOCK, 0, stream>>>(x, dim, res, res_scale, w,
                                                                        b, eps, out, out_stride);
    else
        norm_kernel<false, T><<<(unsigned)rows, VPK_BLOCK, 0, stream>>>(x, dim, res, res_scale, w,
                                                                         b, eps, out, out_stride);
}

extern "C" cudaError_t vpk_norm(cudaStream_t stream, int rms, float *x, size_t rows, int dim,
                                const float *res, const float *res_scale, const float *w,
                                const float *b, float eps, vp_bf16 *out, size_t out_stride,
                                int act)
{
    if (rows == 0 || dim <= 0)
        return cudaSuccess;
    if (rows > 0x7fffffffu)
        return cudaErrorInvalidValue;
    if (act == VPK_ACT_F16)
        launch_norm<__half>(stream, rms, x, rows, dim, res, res_scale, w, b, eps, (__half *)out,
                            out_stride);
    else
        launch_norm<bf16>(stream, rms, x, rows, dim, res, res_scale, w, b, eps, (bf16 *)out,
                          out_stride);
    return cudaGetLastError();
}

extern "C" cudaError_t vpk_rms_norm_bf16(cudaStream_t stream, vp_bf16 *x, size_t rows, int dim,
                                         size_t stride, const float *w, float eps, int act)
{
    if (rows == 0 || dim <= 0)
        return cudaSuccess;
    if (rows > 0x7fffffffu)
        return cudaErrorInvalidValue;
    if (act == VPK_ACT_F16)
        rms_bf16_kernel<__half><<<(unsigned)rows, VPK_BLOCK, 0, stream>>>((__half *)x, dim, stride,
                                                                        w, eps);
    else
        rms_bf16_kernel<bf16><<<(unsigned)rows, VPK_BLOCK, 0, stream>>>((bf16 *)x, dim, stride, w,
                                                                      eps);
    return cudaGetLastError();
}
