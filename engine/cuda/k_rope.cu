/* Rotary embedding ("rotate half") in place on the packed InternLM2 qkv rows. The cos/sin
 * rows come from the host (vp_cpu_rope_table: double precision, rounded once), so the
 * angles are the CPU twin's; the rotation rounds each product like vp_cpu_rope_apply
 * (no fused multiply-add), on bf16 inputs. One thread per (token, head, pair). */
#include "engine/cuda/k_common.cuh"

__global__ void rope_kernel(bf16 *qkv, size_t n, size_t row_stride, int kv_heads, int q_per_kv,
                            int head_dim, const float *base, size_t base_rows, const float *extra,
                            const int32_t *rope_row)
{
    int half = head_dim / 2, rotated = kv_heads * (q_per_kv + 1);
    size_t total = n * (size_t)rotated * (size_t)half;
    VPK_GRID_STRIDE(i, total)
    {
        int d = (int)(i % (size_t)half);
        int hh = (int)(i / (size_t)half % (size_t)rotated);
        size_t t = i / ((size_t)half * (size_t)rotated);
        int group = hh / (q_per_kv + 1), slot = hh % (q_per_kv + 1);
        bf16 *x = qkv + t * row_stride + ((size_t)group * (size_t)(q_per_kv + 2) + (size_t)slot) *
                                             (size_t)head_dim;
        size_t r = (size_t)rope_row[t];
        const float *tab = r < base_rows ? base + r * (size_t)head_dim
                                         : extra + (r - base_rows) * (size_t)head_dim;
        float c = tab[d], s = tab[half + d];
        float a = vpk_bf(x[d]), b = vpk_bf(x[d + half]);
        x[d] = __float2bfloat16_rn(__fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s)));
        x[d + half] = __float2bfloat16_rn(__fadd_rn(__fmul_rn(b, c), __fmul_rn(a, s)));
    }
}

extern "C" cudaError_t vpk_rope_qkv(cudaStream_t stream, vp_bf16 *qkv, size_t n,
                                    size_t row_stride, int kv_heads, int q_per_kv, int head_dim,
                                    const float *base, size_t base_rows, const float *extra,
                                    const int32_t *rope_row)
{
    size_t total = n * (size_t)kv_heads * (size_t)(q_per_kv + 1) * (size_t)(head_dim / 2);
    if (total == 0)
        return cudaSuccess;
    rope_kernel<<<vpk_blocks(total, VPK_BLOCK), VPK_BLOCK, 0, stream>>>(
        (bf16 *)qkv, n, row_stride, kv_heads, q_per_kv, head_dim, base, base_rows, extra,
        rope_row);
    return cudaGetLastError();
}
