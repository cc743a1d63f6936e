/* Rotary embedding ("rotate half") in place on the packed InternLM2 qkv rows. The cos/sin
 * rows come from the host (vp_cpu_rope_table: double precision, rounded once), so the
 * angles are the CPU twin's; the rotation rounds each product like vp_cpu_rope_apply
 * (no fused multiply-add), on bf16 or fp16 (vpk_act) inputs. One block per token; a thread rotates two
 * adjacent (d, d + half) pairs at a time with paired loads and 32-bit index math. */
#include "engine/cuda/k_common.cuh"

template <typename T>
__global__ void rope_kernel(T *qkv, size_t row_stride, int kv_heads, int q_per_kv,
                            int head_dim, const float *base, size_t base_rows, const float *extra,
                            const int32_t *rope_row)
{
    const int half = head_dim / 2, pairs2 = half / 2; /* two (d, d + half) pairs per step */
    const int work = kv_heads * (q_per_kv + 1) * pairs2;
    const size_t t = blockIdx.x, r = (size_t)rope_row[t];
    const float *tab = r < base_rows ? base + r * (size_t)head_dim
                                     : extra + (r - base_rows) * (size_t)head_dim;
    T *row = qkv + t * row_stride;
    for (int i = threadIdx.x; i < work; i += blockDim.x) {
        int hh = i / pairs2, d = (i - hh * pairs2) * 2;
        int group = hh / (q_per_kv + 1), slot = hh - group * (q_per_kv + 1);
        T *x = row + (size_t)(group * (q_per_kv + 2) + slot) * (size_t)head_dim;
        float2 c = *reinterpret_cast<const float2 *>(tab + d);
        float2 s = *reinterpret_cast<const float2 *>(tab + half + d);
        float2 a = vpk_to_f2<T>(*reinterpret_cast<const uint32_t *>(x + d));
        float2 b = vpk_to_f2<T>(*reinterpret_cast<const uint32_t *>(x + d + half));
        float2 lo = {__fsub_rn(__fmul_rn(a.x, c.x), __fmul_rn(b.x, s.x)),
                     __fsub_rn(__fmul_rn(a.y, c.y), __fmul_rn(b.y, s.y))};
        float2 hi = {__fadd_rn(__fmul_rn(b.x, c.x), __fmul_rn(a.x, s.x)),
                     __fadd_rn(__fmul_rn(b.y, c.y), __fmul_rn(a.y, s.y))};
        *reinterpret_cast<uint32_t *>(x + d) = vpk_from_f2<T>(lo.x, lo.y);
        *reinterpret_cast<uint32_t *>(x + d + half) = vpk_from_f2<T>(hi.x, hi.y);
    }
}

extern "C" cudaError_t vpk_rope_qkv(cudaStream_t stream, vp_bf16 *qkv, size_t n,
                                    size_t row_stride, int kv_heads, int q_per_kv, int head_dim,
                                    const float *base, size_t base_rows, const float *extra,
                                    const int32_t *rope_row, int act)
{
    if (n == 0 || kv_heads <= 0 || q_per_kv <= 0)
        return cudaSuccess;
    /* pairs of bf16 (4-byte) and of float (8-byte: head_dim % 4 keeps table rows aligned) */
    if (head_dim % 4 || row_stride % 2 || n > 0x7fffffffu)
        return cudaErrorInvalidValue;
    if (act == VPK_ACT_F16)
        rope_kernel<__half><<<(unsigned)n, VPK_BLOCK, 0, stream>>>(
            (__half *)qkv, row_stride, kv_heads, q_per_kv, head_dim, base, base_rows, extra, rope_row);
    else
        rope_kernel<bf16><<<(unsigned)n, VPK_BLOCK, 0, stream>>>(
            (bf16 *)qkv, row_stride, kv_heads, q_per_kv, head_dim, base, base_rows, extra, rope_row);
    return cudaGetLastError();
}
