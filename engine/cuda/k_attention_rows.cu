/* The last layer's attention at the score rows only (CPU twin: vp_cpu_attention_causal_rows).
 * One block per (output row, key-value head) computes the q_per_kv queries of that group
 * in fp32, ROWS_CHUNK keys at a time: each thread scores one key for every query of the
 * group (a key row is read once for all of them), the warps turn the scores into
 * probabilities with the running maximum, then the threads split the value columns in
 * pairs over a few keys each, and the partial sums meet in shared memory at the end.
 * Why not the simple kernel (one warp per (row, head), a shuffle reduction per key): on
 * W1's 48 rows it walks ~4,100 keys one after another, 3.6 ms on an H200 against the
 * ~1.4 ms the rows save. Layouts this kernel does not take fall back to it. */
#include "engine/cuda/k_common.cuh"

#define ROWS_THREADS 256
#define ROWS_WARPS (ROWS_THREADS / 32)
#define ROWS_CHUNK ROWS_THREADS /* keys per step: one per thread when scoring */
#define ROWS_MAX_QPK ROWS_WARPS /* one warp per query head for the softmax */
#define ROWS_MAX_D 256

/* the i-th key of a row whose keys are [fb, fe) then [cb, ...) (n0 = fe - fb) */
static __device__ __forceinline__ size_t rows_key(int i, int n0, int32_t fb, int32_t cb)
{
    return i < n0 ? (size_t)(fb + i) : (size_t)(cb + (i - n0));
}

template <typename T>
__global__ void __launch_bounds__(ROWS_THREADS)
    attn_rows_kernel(T *out, size_t out_stride, const T *qkv, vpk_attn_layout L,
                     const int32_t *ranges, const int32_t *rows, float scale)
{
    __shared__ __align__(16) float qs[ROWS_MAX_QPK * ROWS_MAX_D];
    __shared__ float ps[ROWS_MAX_QPK][ROWS_CHUNK];
    __shared__ float part[2 * ROWS_THREADS * ROWS_MAX_QPK]; /* [key lane][head][column] */
    __shared__ float m_run[ROWS_MAX_QPK], l_run[ROWS_MAX_QPK], alpha[ROWS_MAX_QPK];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int D = L.head_dim, Q = L.q_per_kv, g = blockIdx.y;
    const size_t r = blockIdx.x, t = (size_t)rows[r];
    const size_t gcol = (size_t)g * L.group_stride;
    const T *q = qkv + t * L.row_stride + gcol + L.q_base;
    for (int i = tid; i < Q * D; i += ROWS_THREADS)
        qs[i] = vpk_to_f<T>(q[i]);
    if (tid < Q)
        m_run[tid] = -INFINITY, l_run[tid] = 0.0f;
    const int32_t fb = ranges[3 * t], fe = ranges[3 * t + 1], cb = ranges[3 * t + 2];
    const int n0 = fe - fb, total = n0 + (cb < 0 ? 0 : (int)(t + 1 - (size_t)cb));
    const T *kbase = qkv + gcol + L.k_base, *vbase = qkv + gcol + L.v_base;
    /* value columns in pairs: key lane kl takes keys kl, kl + lanes, ... of a chunk */
    const int pairs = D / 2, lanes = ROWS_THREADS / pairs, dp = tid % pairs, kl = tid / pairs;
    float acc[ROWS_MAX_QPK][2];
#pragma unroll
    for (int h = 0; h < ROWS_MAX_QPK; h++)
        acc[h][0] = acc[h][1] = 0.0f;
    __syncthreads();
    for (int base = 0; base < total; base += ROWS_CHUNK) {
        const int nk = min(ROWS_CHUNK, total - base);
        if (tid < nk) {
            const T *kr = kbase + rows_key(base + tid, n0, fb, cb) * L.row_stride;
            float s[ROWS_MAX_QPK];
#pragma unroll
            for (int h = 0; h < ROWS_MAX_QPK; h++)
                s[h] = 0.0f;
            for (int d = 0; d < D; d += 8) {
                uint4 raw = *(const uint4 *)(kr + d);
                const uint32_t k2[4] = {raw.x, raw.y, raw.z, raw.w};
                float kf[8];
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    float2 f = vpk_to_f2<T>(k2[e]);
                    kf[2 * e] = f.x, kf[2 * e + 1] = f.y;
                }
#pragma unroll
                for (int h = 0; h < ROWS_MAX_QPK; h++) {
                    if (h >= Q)
                        break;
                    const float4 *q4 = (const float4 *)(qs + h * D + d);
                    float4 a = q4[0], b = q4[1];
                    float v = s[h];
                    v = fmaf(a.x, kf[0], v), v = fmaf(a.y, kf[1], v), v = fmaf(a.z, kf[2], v);
                    v = fmaf(a.w, kf[3], v), v = fmaf(b.x, kf[4], v), v = fmaf(b.y, kf[5], v);
                    v = fmaf(b.z, kf[6], v), v = fmaf(b.w, kf[7], v);
                    s[h] = v;
                }
            }
#pragma unroll
            for (int h = 0; h < ROWS_MAX_QPK; h++)
                if (h < Q)
                    ps[h][tid] = s[h] * scale;
        }
        __syncthreads();
        if (warp < Q) { /* this warp's head: the chunk's maximum, probabilities, their sum */
            float mx = -INFINITY;
            for (int k = lane; k < nk; k += 32)
                mx = fmaxf(mx, ps[warp][k]);
            for (int o = 16; o > 0; o >>= 1)
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
            const float mnew = fmaxf(m_run[warp], mx);
            float sum = 0.0f;
            for (int k = lane; k < nk; k += 32) {
                float p = expf(ps[warp][k] - mnew);
                ps[warp][k] = p;
                sum += p;
            }
            for (int o = 16; o > 0; o >>= 1)
                sum += __shfl_xor_sync(0xffffffffu, sum, o);
            __syncwarp();
            if (lane == 0) {
                float a = expf(m_run[warp] - mnew); /* 0 on the first chunk */
                alpha[warp] = a;
                l_run[warp] = l_run[warp] * a + sum;
                m_run[warp] = mnew;
            }
        }
        __syncthreads();
        if (kl < lanes) {
#pragma unroll
            for (int h = 0; h < ROWS_MAX_QPK; h++)
                if (h < Q)
                    acc[h][0] *= alpha[h], acc[h][1] *= alpha[h];
            for (int k = kl; k < nk; k += lanes) {
                const T *vr = vbase + rows_key(base + k, n0, fb, cb) * L.row_stride;
                float2 v = vpk_to_f2<T>(*(const uint32_t *)(vr + 2 * dp));
#pragma unroll
                for (int h = 0; h < ROWS_MAX_QPK; h++) {
                    if (h >= Q)
                        break;
                    float p = ps[h][k];
                    acc[h][0] = fmaf(p, v.x, acc[h][0]);
                    acc[h][1] = fmaf(p, v.y, acc[h][1]);
                }
            }
        }
        __syncthreads(); /* the next chunk overwrites ps and alpha */
    }
    if (kl < lanes)
#pragma unroll
        for (int h = 0; h < ROWS_MAX_QPK; h++)
            if (h < Q) {
                part[(kl * Q + h) * D + 2 * dp] = acc[h][0];
                part[(kl * Q + h) * D + 2 * dp + 1] = acc[h][1];
            }
    __syncthreads();
    T *o = out + r * out_stride + (size_t)g * Q * D;
    for (int i = tid; i < Q * D; i += ROWS_THREADS) {
        int h = i / D, d = i % D;
        float sum = 0.0f;
        for (int k = 0; k < lanes; k++)
            sum += part[(k * Q + h) * D + d];
        float l = l_run[h];
        o[i] = vpk_from_f<T>(l > 0.0f ? sum / l : 0.0f);
    }
}

/* The layouts the block kernel takes: 16-byte key rows, value pairs, a head size whose
 * column pairs divide the block, at most one query head per warp. */
static bool rows_kernel_supports(const vp_bf16 *qkv, const vpk_attn_layout *L, size_t out_stride)
{
    int D = L->head_dim;
    bool aligned = (uintptr_t)qkv % 16 == 0 && L->row_stride % 8 == 0 &&
                   L->group_stride % 8 == 0 && L->k_base % 8 == 0 && L->v_base % 8 == 0;
    return aligned && D >= 8 && D <= ROWS_MAX_D && D % 8 == 0 && ROWS_THREADS % (D / 2) == 0 &&
           L->q_per_kv >= 1 && L->q_per_kv <= ROWS_MAX_QPK && L->heads % L->q_per_kv == 0 &&
           L->heads / L->q_per_kv <= 65535 && out_stride >= (size_t)L->heads * (size_t)D;
}

extern "C" cudaError_t vpk_attention_rows(cudaStream_t stream, vp_bf16 *out, size_t out_stride,
                                          const vp_bf16 *qkv, const vpk_attn_layout *layout,
                                          const int32_t *ranges, const int32_t *rows,
                                          size_t n_rows, float scale)
{
    if (n_rows == 0)
        return cudaSuccess;
    if (!rows_kernel_supports(qkv, layout, out_stride) || n_rows > 0x7fffffffu)
        return vpk_attention_simple_rows(stream, out, out_stride, qkv, layout, ranges, rows,
                                         n_rows, scale);
    dim3 grid((unsigned)n_rows, (unsigned)(layout->heads / layout->q_per_kv));
    if (layout->act == VPK_ACT_F16)
        attn_rows_kernel<__half><<<grid, ROWS_THREADS, 0, stream>>>(
            (__half *)out, out_stride, (const __half *)qkv, *layout, ranges, rows, scale);
    else
        attn_rows_kernel<bf16><<<grid, ROWS_THREADS, 0, stream>>>(
            (bf16 *)out, out_stride, (const bf16 *)qkv, *layout, ranges, rows, scale);
    return cudaGetLastError();
}
