/* Softmax attention for packed batches: flash-style (the score matrix never leaves the
 * chip; an online max and sum per query row, in fp32) over a work list planned on the
 * host (engine/cuda_plan/plan_attention.c). Each item is up to 64 query rows of one
 * sequence or vision tile and two key ranges: keys seen in full (the shared prefix, or
 * the whole tile) and, for language sequences, the sequence's own keys up to each query.
 * Grouped-query heads read their KV group's keys and values.
 *
 * attn_fast_kernel: 4 warps, 16 query rows each; S = Q K^T and O += P V on the tensor
 * cores (mma.sync m16n8k16 bf16 -> fp32), 64 keys per step. Q, K and a transposed V tile
 * are staged in shared memory (rows padded by 16 bytes: the fragment loads of a warp hit
 * 32 different banks). P is rounded to bf16 for the PV product, as in FlashAttention-2.
 *
 * attn_simple_kernel: one warp per (query, head), fp32 throughout, any head size up to
 * 256; the check for the fast kernel and the fallback. */
#include "engine/cuda/k_common.cuh"
#include "engine/cuda_plan/cuda_plan.h"

#define ATT_BQ 64
/* the planner's query tile (engine/cuda_plan) must be the kernel's */
static_assert(ATT_BQ == VP_ATTN_BQ, "attention query tile differs from the planner's");
#define ATT_BK 64
#define ATT_THREADS 128

/* D (fp32 16x8) += A (bf16 16x16, row) * B (bf16 16x8, col). */
static __device__ __forceinline__ void mma_16816(float *d, const uint32_t *a, uint32_t b0,
                                                 uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* Two floats as a bf16 pair: lo in the low half (the lower column of a fragment). */
static __device__ __forceinline__ uint32_t pack_bf16(float lo, float hi)
{
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&v);
}

static __device__ __forceinline__ uint32_t lds32(const bf16 *p)
{
    return *reinterpret_cast<const uint32_t *>(p);
}

template <int D>
struct att_smem {
    static const int QP = D + 8;      /* Q and K row pitch (elements) */
    static const int VP = ATT_BK + 8; /* transposed V row pitch */
    static const size_t bytes = ((size_t)ATT_BQ * QP + (size_t)ATT_BK * QP + (size_t)D * VP) * 2;
};

template <int D>
__global__ void __launch_bounds__(ATT_THREADS)
attn_fast_kernel(bf16 *out, size_t out_stride, const bf16 *qkv, vpk_attn_layout L,
                 const vp_attn_item *items, float scale_log2)
{
    const int QP = att_smem<D>::QP, VP = att_smem<D>::VP, CPR = D / 8; /* 16-byte chunks */
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16 *Qs = reinterpret_cast<bf16 *>(smem_raw); /* [BQ][QP] */
    bf16 *Ks = Qs + ATT_BQ * QP;                  /* [BK][QP] */
    unsigned short *Vt = reinterpret_cast<unsigned short *>(Ks + ATT_BK * QP); /* [D][VP] */

    const vp_attn_item it = items[blockIdx.x];
    const int h = blockIdx.y, g = h / L.q_per_kv;
    const size_t q_col = (size_t)g * L.group_stride + L.q_base + (size_t)(h % L.q_per_kv) * D;
    const size_t k_col = (size_t)g * L.group_stride + L.k_base;
    const size_t v_col = (size_t)g * L.group_stride + L.v_base;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int gid = lane >> 2, tig = lane & 3;

    for (int c = tid; c < ATT_BQ * CPR; c += ATT_THREADS) {
        int r = c / CPR, ch = c % CPR, qi = it.q_begin + r;
        uint4 v = make_uint4(0, 0, 0, 0);
        if (qi < it.q_end)
            v = *reinterpret_cast<const uint4 *>(qkv + (size_t)qi * L.row_stride + q_col + ch * 8);
        *reinterpret_cast<uint4 *>(Qs + r * QP + ch * 8) = v;
    }
    __syncthreads();

    const int r0 = warp * 16 + gid; /* this thread's rows: r0 and r0 + 8 */
    uint32_t qf[D / 16][4];
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
        qf[kk][0] = lds32(Qs + r0 * QP + kk * 16 + tig * 2);
        qf[kk][1] = lds32(Qs + (r0 + 8) * QP + kk * 16 + tig * 2);
        qf[kk][2] = lds32(Qs + r0 * QP + kk * 16 + 8 + tig * 2);
        qf[kk][3] = lds32(Qs + (r0 + 8) * QP + kk * 16 + 8 + tig * 2);
    }
    float o[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; n++)
        o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    const int qrow[2] = {it.q_begin + r0, it.q_begin + r0 + 8};

    for (int phase = 0; phase < 2; phase++) {
        /* phase 0: keys seen in full; phase 1: own keys up to each query */
        const int kbeg = phase == 0 ? it.full_begin : it.causal_begin;
        const int kend = phase == 0 ? it.full_end : it.q_end;
        if (phase == 1 && it.causal_begin < 0)
            break;
        for (int kb = kbeg; kb < kend; kb += ATT_BK) {
            __syncthreads(); /* the previous step's reads of Ks / Vt are done */
            for (int c = tid; c < ATT_BK * CPR; c += ATT_THREADS) {
                int r = c / CPR, ch = c % CPR, kj = kb + r;
                uint4 v = make_uint4(0, 0, 0, 0);
                if (kj < kend)
                    v = *reinterpret_cast<const uint4 *>(qkv + (size_t)kj * L.row_stride + k_col +
                                                         ch * 8);
                *reinterpret_cast<uint4 *>(Ks + r * QP + ch * 8) = v;
            }
            for (int c = tid; c < ATT_BK * CPR; c += ATT_THREADS) {
                /* consecutive threads take consecutive keys of one chunk: the
                 * transposed 16-bit stores of a warp fall in distinct banks */
                int r = c % ATT_BK, ch = c / ATT_BK, kj = kb + r;
                uint4 v = make_uint4(0, 0, 0, 0);
                if (kj < kend)
                    v = *reinterpret_cast<const uint4 *>(qkv + (size_t)kj * L.row_stride + v_col +
                                                         ch * 8);
                const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
                for (int e = 0; e < 8; e++)
                    Vt[(ch * 8 + e) * VP + r] =
                        (unsigned short)((e & 1) ? (w[e >> 1] >> 16) : (w[e >> 1] & 0xffffu));
            }
            __syncthreads();

            float s[ATT_BK / 8][4];
#pragma unroll
            for (int j = 0; j < ATT_BK / 8; j++) {
                s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
#pragma unroll
                for (int kk = 0; kk < D / 16; kk++) {
                    const bf16 *kr = Ks + (j * 8 + gid) * QP + kk * 16 + tig * 2;
                    mma_16816(s[j], qf[kk], lds32(kr), lds32(kr + 8));
                }
            }
            float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
            for (int j = 0; j < ATT_BK / 8; j++)
#pragma unroll
                for (int c = 0; c < 4; c++) {
                    int row = c >> 1, key = kb + j * 8 + tig * 2 + (c & 1);
                    bool ok = key < kend && (phase == 0 || key <= qrow[row]);
                    float v = ok ? s[j][c] * scale_log2 : -INFINITY;
                    s[j][c] = v;
                    mx[row] = fmaxf(mx[row], v);
                }
            float alpha[2], base[2], sum[2] = {0.0f, 0.0f};
#pragma unroll
            for (int row = 0; row < 2; row++) {
                mx[row] = fmaxf(mx[row], __shfl_xor_sync(0xffffffffu, mx[row], 1));
                mx[row] = fmaxf(mx[row], __shfl_xor_sync(0xffffffffu, mx[row], 2));
                float mnew = fmaxf(m[row], mx[row]);
                base[row] = mnew == -INFINITY ? 0.0f : mnew; /* nothing visible yet */
                alpha[row] = exp2f(m[row] - base[row]);
                m[row] = mnew;
            }
#pragma unroll
            for (int j = 0; j < ATT_BK / 8; j++)
#pragma unroll
                for (int c = 0; c < 4; c++) {
                    float p = exp2f(s[j][c] - base[c >> 1]);
                    s[j][c] = p;
                    sum[c >> 1] += p;
                }
#pragma unroll
            for (int row = 0; row < 2; row++)
                l[row] = l[row] * alpha[row] + sum[row];
#pragma unroll
            for (int n = 0; n < D / 8; n++) {
                o[n][0] *= alpha[0];
                o[n][1] *= alpha[0];
                o[n][2] *= alpha[1];
                o[n][3] *= alpha[1];
            }
#pragma unroll
            for (int kk = 0; kk < ATT_BK / 16; kk++) {
                uint32_t a[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]),
                                 pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                                 pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                 pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
                for (int n = 0; n < D / 8; n++) {
                    const bf16 *vr =
                        reinterpret_cast<const bf16 *>(Vt + (n * 8 + gid) * VP + kk * 16 + tig * 2);
                    mma_16816(o[n], a, lds32(vr), lds32(vr + 8));
                }
            }
        }
    }
    float inv[2];
#pragma unroll
    for (int row = 0; row < 2; row++) {
        l[row] += __shfl_xor_sync(0xffffffffu, l[row], 1);
        l[row] += __shfl_xor_sync(0xffffffffu, l[row], 2);
        inv[row] = l[row] > 0.0f ? 1.0f / l[row] : 0.0f;
    }
#pragma unroll
    for (int n = 0; n < D / 8; n++) {
        size_t col = (size_t)h * D + n * 8 + tig * 2;
        if (qrow[0] < it.q_end)
            *reinterpret_cast<uint32_t *>(out + (size_t)qrow[0] * out_stride + col) =
                pack_bf16(o[n][0] * inv[0], o[n][1] * inv[0]);
        if (qrow[1] < it.q_end)
            *reinterpret_cast<uint32_t *>(out + (size_t)qrow[1] * out_stride + col) =
                pack_bf16(o[n][2] * inv[1], o[n][3] * inv[1]);
    }
}

#define SIMPLE_MAX_PER_LANE 8 /* head_dim <= 256 */

__global__ void attn_simple_kernel(bf16 *out, size_t out_stride, const bf16 *qkv,
                                   vpk_attn_layout L, const int32_t *ranges, size_t n_tokens,
                                   float scale)
{
    size_t wid = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    if (wid >= n_tokens * (size_t)L.heads)
        return;
    size_t t = wid / (size_t)L.heads;
    int h = (int)(wid % (size_t)L.heads), g = h / L.q_per_kv, D = L.head_dim;
    const bf16 *q = qkv + t * L.row_stride + (size_t)g * L.group_stride + L.q_base +
                    (size_t)(h % L.q_per_kv) * D;
    size_t k_col = (size_t)g * L.group_stride + L.k_base, v_col = (size_t)g * L.group_stride + L.v_base;
    float qv[SIMPLE_MAX_PER_LANE], acc[SIMPLE_MAX_PER_LANE];
#pragma unroll
    for (int k = 0; k < SIMPLE_MAX_PER_LANE; k++) {
        int d = lane + 32 * k;
        qv[k] = d < D ? vpk_bf(q[d]) : 0.0f;
        acc[k] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    int32_t fb = ranges[3 * t], fe = ranges[3 * t + 1], cb = ranges[3 * t + 2];
    for (int phase = 0; phase < 2; phase++) {
        int64_t jb = phase == 0 ? fb : cb, je = phase == 0 ? fe : (int64_t)t + 1;
        if (phase == 1 && cb < 0)
            break;
        for (int64_t j = jb; j < je; j++) {
            const bf16 *kr = qkv + (size_t)j * L.row_stride + k_col;
            const bf16 *vr = qkv + (size_t)j * L.row_stride + v_col;
            float part = 0.0f;
#pragma unroll
            for (int k = 0; k < SIMPLE_MAX_PER_LANE; k++) {
                int d = lane + 32 * k;
                if (d < D)
                    part = fmaf(qv[k], vpk_bf(kr[d]), part);
            }
            for (int o = 16; o > 0; o >>= 1)
                part += __shfl_xor_sync(0xffffffffu, part, o);
            float sc = part * scale, mnew = fmaxf(m, sc);
            float alpha = expf(m - mnew), p = expf(sc - mnew);
            l = l * alpha + p;
#pragma unroll
            for (int k = 0; k < SIMPLE_MAX_PER_LANE; k++) {
                int d = lane + 32 * k;
                if (d < D)
                    acc[k] = acc[k] * alpha + p * vpk_bf(vr[d]);
            }
            m = mnew;
        }
    }
    float inv = l > 0.0f ? 1.0f / l : 0.0f;
    bf16 *o = out + t * out_stride + (size_t)h * D;
#pragma unroll
    for (int k = 0; k < SIMPLE_MAX_PER_LANE; k++) {
        int d = lane + 32 * k;
        if (d < D)
            o[d] = __float2bfloat16_rn(acc[k] * inv);
    }
}

extern "C" int vpk_attention_fast_supports(const vpk_attn_layout *L, size_t out_stride)
{
    bool aligned = L->row_stride % 8 == 0 && L->group_stride % 8 == 0 && L->q_base % 8 == 0 &&
                   L->k_base % 8 == 0 && L->v_base % 8 == 0 && out_stride % 2 == 0;
    return (L->head_dim == 64 || L->head_dim == 128) && aligned && L->q_per_kv > 0 &&
           L->heads % L->q_per_kv == 0;
}

extern "C" cudaError_t vpk_attention_setup(void)
{
    cudaError_t rc = cudaFuncSetAttribute(attn_fast_kernel<128>,
                                          cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          (int)att_smem<128>::bytes);
    if (rc != cudaSuccess)
        return rc;
    return cudaFuncSetAttribute(attn_fast_kernel<64>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                (int)att_smem<64>::bytes);
}

extern "C" cudaError_t vpk_attention_fast(cudaStream_t stream, vp_bf16 *out, size_t out_stride,
                                          const vp_bf16 *qkv, const vpk_attn_layout *layout,
                                          const vp_attn_item *items, size_t n_items, float scale)
{
    if (n_items == 0 || layout->heads == 0)
        return cudaSuccess;
    if (!vpk_attention_fast_supports(layout, out_stride) || n_items > 0x7fffffffu ||
        layout->heads > 65535)
        return cudaErrorInvalidValue;
    dim3 grid((unsigned)n_items, (unsigned)layout->heads);
    float scale_log2 = scale * 1.4426950408889634f;
    if (layout->head_dim == 128)
        attn_fast_kernel<128><<<grid, ATT_THREADS, att_smem<128>::bytes, stream>>>(
            (bf16 *)out, out_stride, (const bf16 *)qkv, *layout, items, scale_log2);
    else
        attn_fast_kernel<64><<<grid, ATT_THREADS, att_smem<64>::bytes, stream>>>(
            (bf16 *)out, out_stride, (const bf16 *)qkv, *layout, items, scale_log2);
    return cudaGetLastError();
}

extern "C" cudaError_t vpk_attention_simple(cudaStream_t stream, vp_bf16 *out, size_t out_stride,
                                            const vp_bf16 *qkv, const vpk_attn_layout *layout,
                                            const int32_t *ranges, size_t n_tokens, float scale)
{
    size_t warps = n_tokens * (size_t)layout->heads;
    if (warps == 0)
        return cudaSuccess;
    if (layout->head_dim > 32 * SIMPLE_MAX_PER_LANE || layout->q_per_kv <= 0)
        return cudaErrorInvalidValue;
    const int block = 128; /* 4 warps */
    size_t blocks = (warps * 32 + block - 1) / block;
    if (blocks > 0x7fffffffu)
        return cudaErrorInvalidValue;
    attn_simple_kernel<<<(unsigned)blocks, block, 0, stream>>>(
        (bf16 *)out, out_stride, (const bf16 *)qkv, *layout, ranges, n_tokens, scale);
    return cudaGetLastError();
}
