/* Softmax attention for packed batches: flash-style (the score matrix never leaves the
 * chip; an online max and sum per query row, in fp32) over a work list planned on the
 * host (engine/cuda_plan/plan_attention.c). Each item is up to 64 query rows of one
 * sequence or vision tile and two key ranges: keys seen in full (the shared prefix, or
 * the whole tile) and, for language sequences, the sequence's own keys up to each query.
 * Grouped-query heads read their KV group's keys and values.
 *
 * attn_fast_kernel: 64 query rows per head, 16 or 32 per warp, one or more heads of a KV
 * group per block (the launch shape, vpk_attn_shape); S = Q K^T and O += P V on the
 * tensor cores (mma.sync m16n8k16 bf16 -> fp32), 64 or 32 keys per step. Key and value
 * tiles arrive by asynchronous copies into two shared-memory stages (the next tile loads
 * while this one is computed); fragments come from ldmatrix (.trans for V, so V needs no
 * transposing store). The heads of one work item are adjacent blocks: the other query
 * heads of a KV group read the same keys from L2. P is rounded to bf16 for the PV
 * product, as in FlashAttention-2.
 *
 * attn_simple_kernel: one warp per (query, head), fp32 throughout, any head size up to
 * 256; the check for the fast kernel and the fallback. */
#include "engine/cuda/k_common.cuh"
#include "engine/cuda/k_mma.cuh"
#include "engine/cuda_plan/cuda_plan.h"

#define ATT_BQ 64
/* the planner's query tile (engine/cuda_plan) must be the kernel's */
static_assert(ATT_BQ == VP_ATTN_BQ, "attention query tile differs from the planner's");

template <int D>
static __host__ __device__ constexpr int att_smem_pitch(void)
{
    return D + 8;
}

/* Launch shape: MR 16-row fragments per warp (16 or 32 query rows), WPH = 4 / MR warps
 * per head (64 rows), HPB heads per block. Shared memory: two stages of a key tile and a
 * value tile, [BK][P] each, rows padded by 16 bytes so the 8 row addresses of an ldmatrix
 * fall in distinct banks. At MR = 1 the query fragments live in registers (the query
 * tiles are staged in the second stage before the loop); at MR = 2 they would not fit
 * next to 32 rows of output, so the query tiles keep their own shared memory and are
 * read again for each key tile: 32 rows share each key and value fragment read, which
 * halves the shared-memory traffic per product (the limit at MR = 1). */
template <int D, int HPB, int MR, int BK>
struct att_cfg {
    static const int WPH = 4 / MR;
    static const int NT = 32 * WPH * HPB;
    static const int MINB = NT >= 256 ? 1 : 256 / NT; /* 8 warps per SM, registers allowing */
    static const int P = att_smem_pitch<D>();
    static const size_t tile = (size_t)BK * P;     /* elements of a key or value tile */
    static const size_t qtile = (size_t)ATT_BQ * P; /* of a query tile */
    static const size_t bytes = (4 * tile + (MR == 1 ? 0 : HPB * qtile)) * 2;
    /* at MR = 1 the query tiles are staged in the second stage */
    static_assert(MR == 2 || (BK == ATT_BQ && HPB <= 2), "query tiles do not fit the stage");
};

/* rows [r_begin, r_begin + R) of column block `col` (D wide) -> dst [R][P], zeros from
 * r_end on; NT threads share the copies, thread tid always chunk tid % (D / 8) of rows
 * tid / (D / 8) + k NT / (D / 8): its column and offsets are the same for every tile,
 * so a copy is an address and a compare (a loop from tid in steps of NT divided per
 * copy and did not unroll) */
template <int D, int NT, int R>
static __device__ __forceinline__ void load_tile(bf16 *dst, const bf16 *qkv, size_t row_stride,
                                                 size_t col, int r_begin, int r_end, int tid)
{
    const int CPR = D / 8, RSTEP = NT / CPR; /* 16-byte chunks per row; rows per pass */
    static_assert(NT % CPR == 0, "copy split");
    const int r0 = tid / CPR, ch = tid % CPR;
    const bf16 *s0 = qkv + col + ch * 8;
    bf16 *d0 = dst + r0 * att_smem_pitch<D>() + ch * 8;
#pragma unroll
    for (int k = 0; k < (R + RSTEP - 1) / RSTEP; k++) {
        int r = r0 + k * RSTEP, row = r_begin + r;
        if (R % RSTEP != 0 && r >= R) /* more threads than chunks: this one is done */
            break;
        bool ok = row < r_end;
        cp_async16(d0 + k * RSTEP * att_smem_pitch<D>(), s0 + (size_t)(ok ? row : r_begin) * row_stride,
                   ok);
    }
}

/* HPB query heads of one KV group per block: the key and value tiles are loaded once for
 * all of them (grouped-query attention shares them), which divides the L2 traffic per
 * FLOP by HPB. */
template <int D, int HPB, int MR, int BK>
__global__ void __launch_bounds__(att_cfg<D, HPB, MR, BK>::NT, att_cfg<D, HPB, MR, BK>::MINB)
attn_fast_kernel(bf16 *out, size_t out_stride, const bf16 *qkv, vpk_attn_layout L,
                 const vp_attn_item *items, float scale_log2)
{
    typedef att_cfg<D, HPB, MR, BK> C;
    const int P = C::P, NT = C::NT;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    /* stage st: key tile at smem + 2 st tiles, value tile right after it */
    bf16 *const smem = reinterpret_cast<bf16 *>(smem_raw);
    const size_t T = C::tile, QT = C::qtile;
    bf16 *Qs = smem + (MR == 1 ? 2 : 4) * T;

    const vp_attn_item it = items[blockIdx.y];
    const int tid = threadIdx.x, lane = tid & 31, tig = lane & 3;
    const int hb = (tid >> 5) / C::WPH, warp = (tid >> 5) % C::WPH; /* head in block, warp in head */
    const int h0 = blockIdx.x * HPB, h = h0 + hb;
    const int g = h0 / L.q_per_kv; /* HPB divides q_per_kv: one group per block */
    const size_t k_col = (size_t)g * L.group_stride + L.k_base;
    const size_t v_col = (size_t)g * L.group_stride + L.v_base;

    /* key tiles: first the keys seen in full, then the own keys up to the item's rows */
    const int n_full = it.full_end > it.full_begin ? (it.full_end - it.full_begin + BK - 1) / BK : 0;
    const int n_own = it.causal_begin >= 0 ? (it.q_end - it.causal_begin + BK - 1) / BK : 0;
    const int n_tiles = n_full + n_own;

#pragma unroll
    for (int j = 0; j < HPB; j++) /* query tiles of the block's heads */
        load_tile<D, NT, ATT_BQ>(Qs + j * QT, qkv, L.row_stride,
                         (size_t)g * L.group_stride + L.q_base + (size_t)((h0 + j) % L.q_per_kv) * D,
                         it.q_begin, it.q_end, tid);
    cp_async_commit();
    if (n_tiles > 0) {
        int kb = n_full > 0 ? it.full_begin : it.causal_begin;
        int ke = n_full > 0 ? it.full_end : it.q_end;
        load_tile<D, NT, BK>(smem, qkv, L.row_stride, k_col, kb, ke, tid);
        load_tile<D, NT, BK>(smem + T, qkv, L.row_stride, v_col, kb, ke, tid);
    }
    cp_async_commit();
    cp_async_wait<1>(); /* the query tile */
    __syncthreads();

    /* A fragments of the warp's query rows: lane l addresses row l % 16, column block
     * l / 16 of each 16-wide step */
    const bf16 *Qw = Qs + (size_t)hb * QT + (warp * 16 * MR + (lane & 15)) * P + (lane >> 4) * 8;
    uint32_t qf[MR == 1 ? D / 16 : 1][4];
    if (MR == 1) {
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++)
            ldmatrix_x4(qf[MR == 1 ? kk : 0], Qw + kk * 16);
        __syncthreads(); /* Qs is the second stage's key tile */
    }

    float o[MR][D / 8][4];
#pragma unroll
    for (int mi = 0; mi < MR; mi++)
#pragma unroll
        for (int n = 0; n < D / 8; n++)
            o[mi][n][0] = o[mi][n][1] = o[mi][n][2] = o[mi][n][3] = 0.0f;
    float m[MR][2], l[MR][2];
    int qrow[MR][2]; /* this thread's rows */
#pragma unroll
    for (int mi = 0; mi < MR; mi++)
#pragma unroll
        for (int row = 0; row < 2; row++) {
            m[mi][row] = -INFINITY;
            l[mi][row] = 0.0f;
            qrow[mi][row] = it.q_begin + warp * 16 * MR + mi * 16 + (lane >> 2) + row * 8;
        }
    /* ldmatrix row addresses: K (keys as rows) for S = Q K^T, V (.trans) for O += P V */
    const int k_row = (lane & 7) + ((lane >> 4) << 3), k_colo = ((lane >> 3) & 1) * 8;
    const int v_row = (lane & 7) + (((lane >> 3) & 1) << 3), v_colo = (lane >> 4) * 8;

    for (int t = 0; t < n_tiles; t++) {
        const int st = t & 1;
        if (t + 1 < n_tiles) { /* prefetch the next tile into the other stage */
            int u = t + 1;
            int kb = u < n_full ? it.full_begin + u * BK : it.causal_begin + (u - n_full) * BK;
            int ke = u < n_full ? it.full_end : it.q_end;
            bf16 *next = smem + (size_t)(2 * (st ^ 1)) * T;
            load_tile<D, NT, BK>(next, qkv, L.row_stride, k_col, kb, ke, tid);
            load_tile<D, NT, BK>(next + T, qkv, L.row_stride, v_col, kb, ke, tid);
        }
        cp_async_commit();
        cp_async_wait<1>(); /* tile t has landed (this thread's copies) */
        __syncthreads();    /* ... and every thread's */

        const bool own = t >= n_full;
        const int kb = own ? it.causal_begin + (t - n_full) * BK : it.full_begin + t * BK;
        const int kend = own ? it.q_end : it.full_end;
        const bf16 *K = smem + (size_t)(2 * st) * T, *V = K + T;

        float s[MR][BK / 8][4];
#pragma unroll
        for (int mi = 0; mi < MR; mi++)
#pragma unroll
            for (int j = 0; j < BK / 8; j++)
                s[mi][j][0] = s[mi][j][1] = s[mi][j][2] = s[mi][j][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            uint32_t qa[MR][4];
#pragma unroll
            for (int mi = 0; mi < MR; mi++) {
                if (MR == 1) {
#pragma unroll
                    for (int e = 0; e < 4; e++)
                        qa[mi][e] = qf[MR == 1 ? kk : 0][e];
                } else {
                    ldmatrix_x4(qa[mi], Qw + mi * 16 * P + kk * 16);
                }
            }
#pragma unroll
            for (int j = 0; j < BK / 8; j += 2) {
                uint32_t b[4]; /* keys j*8.. and (j+1)*8.., dims kk*16 + {0, 8} */
                ldmatrix_x4(b, K + (j * 8 + k_row) * P + kk * 16 + k_colo);
#pragma unroll
                for (int mi = 0; mi < MR; mi++) {
                    mma_16816(s[mi][j], qa[mi], b[0], b[1]);
                    mma_16816(s[mi][j + 1], qa[mi], b[2], b[3]);
                }
            }
        }
        /* masks only where a tile crosses the end of its range or the diagonal */
        const bool edge = kb + BK > kend || (own && kb + BK - 1 > it.q_begin);
#pragma unroll
        for (int mi = 0; mi < MR; mi++) {
            float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
            for (int j = 0; j < BK / 8; j++)
#pragma unroll
                for (int c = 0; c < 4; c++) {
                    int row = c >> 1, key = kb + j * 8 + tig * 2 + (c & 1);
                    bool ok = !edge || (key < kend && (!own || key <= qrow[mi][row]));
                    float v = ok ? s[mi][j][c] * scale_log2 : -INFINITY;
                    s[mi][j][c] = v;
                    mx[row] = fmaxf(mx[row], v);
                }
            float alpha[2], base[2], sum[2] = {0.0f, 0.0f};
            online_max2(mx, m[mi], base, alpha);
#pragma unroll
            for (int j = 0; j < BK / 8; j++)
#pragma unroll
                for (int c = 0; c < 4; c++) {
                    float p = exp2_ftz(s[mi][j][c] - base[c >> 1]);
                    s[mi][j][c] = p;
                    sum[c >> 1] += p;
                }
#pragma unroll
            for (int row = 0; row < 2; row++)
                l[mi][row] = l[mi][row] * alpha[row] + sum[row];
#pragma unroll
            for (int n = 0; n < D / 8; n++) {
                o[mi][n][0] *= alpha[0];
                o[mi][n][1] *= alpha[0];
                o[mi][n][2] *= alpha[1];
                o[mi][n][3] *= alpha[1];
            }
        }
#pragma unroll
        for (int kk = 0; kk < BK / 16; kk++) {
            uint32_t a[MR][4];
#pragma unroll
            for (int mi = 0; mi < MR; mi++) {
                a[mi][0] = pack_bf16(s[mi][2 * kk][0], s[mi][2 * kk][1]);
                a[mi][1] = pack_bf16(s[mi][2 * kk][2], s[mi][2 * kk][3]);
                a[mi][2] = pack_bf16(s[mi][2 * kk + 1][0], s[mi][2 * kk + 1][1]);
                a[mi][3] = pack_bf16(s[mi][2 * kk + 1][2], s[mi][2 * kk + 1][3]);
            }
#pragma unroll
            for (int n = 0; n < D / 8; n += 2) {
                uint32_t b[4]; /* keys kk*16 + {0, 8}, dims n*8.. and (n+1)*8.. */
                ldmatrix_x4_trans(b, V + (kk * 16 + v_row) * P + n * 8 + v_colo);
#pragma unroll
                for (int mi = 0; mi < MR; mi++) {
                    mma_16816(o[mi][n], a[mi], b[0], b[1]);
                    mma_16816(o[mi][n + 1], a[mi], b[2], b[3]);
                }
            }
        }
        __syncthreads(); /* everyone is done with stage st before it is refilled */
    }
    cp_async_wait<0>();
#pragma unroll
    for (int mi = 0; mi < MR; mi++) {
        float inv[2];
        quad_inverse2(l[mi], inv);
#pragma unroll
        for (int n = 0; n < D / 8; n++) {
            size_t col = (size_t)h * D + n * 8 + tig * 2;
            store_pair(out, out_stride, qrow[mi][0], it.q_end, col, o[mi][n][0], o[mi][n][1], inv[0]);
            store_pair(out, out_stride, qrow[mi][1], it.q_end, col, o[mi][n][2], o[mi][n][3], inv[1]);
        }
    }
}

#define SIMPLE_MAX_PER_LANE 8 /* head_dim <= 256 */

template <typename T>
__global__ void attn_simple_kernel(T *out, size_t out_stride, const T *qkv,
                                   vpk_attn_layout L, const int32_t *ranges,
                                   const int32_t *rows, size_t n_rows, float scale)
{
    size_t wid = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    if (wid >= n_rows * (size_t)L.heads)
        return;
    size_t r = wid / (size_t)L.heads, t = rows ? (size_t)rows[r] : r; /* output row, token */
    int h = (int)(wid % (size_t)L.heads), g = h / L.q_per_kv, D = L.head_dim;
    const T *q = qkv + t * L.row_stride + (size_t)g * L.group_stride + L.q_base +
                    (size_t)(h % L.q_per_kv) * D;
    size_t k_col = (size_t)g * L.group_stride + L.k_base, v_col = (size_t)g * L.group_stride + L.v_base;
    float qv[SIMPLE_MAX_PER_LANE], acc[SIMPLE_MAX_PER_LANE];
#pragma unroll
    for (int k = 0; k < SIMPLE_MAX_PER_LANE; k++) {
        int d = lane + 32 * k;
        qv[k] = d < D ? vpk_to_f<T>(q[d]) : 0.0f;
        acc[k] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    int32_t fb = ranges[3 * t], fe = ranges[3 * t + 1], cb = ranges[3 * t + 2];
    for (int phase = 0; phase < 2; phase++) {
        int64_t jb = phase == 0 ? fb : cb, je = phase == 0 ? fe : (int64_t)t + 1;
        if (phase == 1 && cb < 0)
            break;
        for (int64_t j = jb; j < je; j++) {
            const T *kr = qkv + (size_t)j * L.row_stride + k_col;
            const T *vr = qkv + (size_t)j * L.row_stride + v_col;
            float part = 0.0f;
#pragma unroll
            for (int k = 0; k < SIMPLE_MAX_PER_LANE; k++) {
                int d = lane + 32 * k;
                if (d < D)
                    part = fmaf(qv[k], vpk_to_f<T>(kr[d]), part);
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
                    acc[k] = acc[k] * alpha + p * vpk_to_f<T>(vr[d]);
            }
            m = mnew;
        }
    }
    float inv = l > 0.0f ? 1.0f / l : 0.0f;
    T *o = out + r * out_stride + (size_t)h * D;
#pragma unroll
    for (int k = 0; k < SIMPLE_MAX_PER_LANE; k++) {
        int d = lane + 32 * k;
        if (d < D)
            o[d] = vpk_from_f<T>(acc[k] * inv);
    }
}

extern "C" int vpk_attention_fast_supports(const vpk_attn_layout *L, size_t out_stride)
{
    bool aligned = L->row_stride % 8 == 0 && L->group_stride % 8 == 0 && L->q_base % 8 == 0 &&
                   L->k_base % 8 == 0 && L->v_base % 8 == 0 && out_stride % 2 == 0;
    return L->act == VPK_ACT_BF16 && (L->head_dim == 64 || L->head_dim == 128) && aligned &&
           L->q_per_kv > 0 &&
           L->heads % L->q_per_kv == 0;
}

extern "C" int vpk_attention_shape_ok(const vpk_attn_layout *L, const vpk_attn_shape *s)
{
    int hpb = s->heads_per_block, wide = s->rows_per_warp == 32;
    if (s->rows_per_warp != 16 && !wide)
        return 0;
    if (hpb != 1 && hpb != 2 && !(hpb == 4 && wide))
        return 0;
    if (s->keys_per_step != 64 && !(s->keys_per_step == 32 && wide))
        return 0;
    return L->q_per_kv > 0 && L->q_per_kv % hpb == 0;
}

extern "C" vpk_attn_shape vpk_attention_default_shape(const vpk_attn_layout *L)
{
    /* measured on an H100 (tests/gpu/README.md): 32 rows per warp, as many heads of a
     * KV group per block as divide it, up to 2 */
    vpk_attn_shape s = {32, 1, 64};
    if (L->q_per_kv > 0 && L->q_per_kv % 2 == 0)
        s.heads_per_block = 2;
    return s;
}

template <int D, int HPB, int MR, int BK>
static cudaError_t allow_smem(void)
{
    return cudaFuncSetAttribute(attn_fast_kernel<D, HPB, MR, BK>,
                                cudaFuncAttributeMaxDynamicSharedMemorySize,
                                (int)att_cfg<D, HPB, MR, BK>::bytes);
}

template <int D, int HPB, int MR, int BK>
static void launch_fast(cudaStream_t stream, bf16 *out, size_t out_stride, const bf16 *qkv,
                        const vpk_attn_layout *layout, const vp_attn_item *items, size_t n_items,
                        float scale_log2)
{
    typedef att_cfg<D, HPB, MR, BK> C;
    for (size_t first = 0; first < n_items; first += 65535) { /* grid y is at most 65535 */
        size_t count = n_items - first < 65535 ? n_items - first : 65535;
        dim3 grid((unsigned)(layout->heads / HPB), (unsigned)count);
        attn_fast_kernel<D, HPB, MR, BK><<<grid, C::NT, C::bytes, stream>>>(
            out, out_stride, qkv, *layout, items + first, scale_log2);
    }
}

/* Every shape vpk_attention_shape_ok allows, as (rows / 16, heads, keys) cases: `setup`
 * raises the shared-memory limits, otherwise it launches the one that matches. */
template <int D>
static cudaError_t for_shape(bool setup, const vpk_attn_shape *s, cudaStream_t stream, bf16 *out,
                             size_t out_stride, const bf16 *qkv, const vpk_attn_layout *layout,
                             const vp_attn_item *items, size_t n_items, float scale_log2)
{
    cudaError_t rc = cudaSuccess;
    int key = setup ? 0 : s->rows_per_warp / 16 * 1000 + s->heads_per_block * 100 + s->keys_per_step;
#define ATT_SHAPE(MR, HPB, BK)                                                             \
    if (setup && rc == cudaSuccess)                                                        \
        rc = allow_smem<D, HPB, MR, BK>();                                                 \
    else if (key == MR * 1000 + HPB * 100 + BK)                                            \
        launch_fast<D, HPB, MR, BK>(stream, out, out_stride, qkv, layout, items, n_items,  \
                                    scale_log2);
    ATT_SHAPE(1, 1, 64)
    ATT_SHAPE(1, 2, 64)
    ATT_SHAPE(2, 1, 64)
    ATT_SHAPE(2, 2, 64)
    ATT_SHAPE(2, 4, 64)
    ATT_SHAPE(2, 1, 32)
    ATT_SHAPE(2, 2, 32)
    ATT_SHAPE(2, 4, 32)
#undef ATT_SHAPE
    return rc;
}

extern "C" cudaError_t vpk_attention_setup(void)
{
    cudaError_t rc = for_shape<128>(true, NULL, 0, NULL, 0, NULL, NULL, NULL, 0, 0.0f);
    if (rc == cudaSuccess)
        rc = for_shape<64>(true, NULL, 0, NULL, 0, NULL, NULL, NULL, 0, 0.0f);
    if (rc == cudaSuccess && vpk_attention_wgmma_available())
        rc = vpk_attention_wgmma_setup();
    return rc;
}

extern "C" cudaError_t vpk_attention_fast(cudaStream_t stream, vp_bf16 *out, size_t out_stride,
                                          const vp_bf16 *qkv, const vpk_attn_layout *layout,
                                          const vpk_attn_shape *shape, const vp_attn_item *items,
                                          size_t n_items, float scale)
{
    if (n_items == 0 || layout->heads == 0)
        return cudaSuccess;
    vpk_attn_shape s = shape ? *shape : vpk_attention_default_shape(layout);
    /* 16-byte asynchronous copies from qkv, 4-byte stores to out */
    if (!vpk_attention_fast_supports(layout, out_stride) || !vpk_attention_shape_ok(layout, &s) ||
        layout->heads > 0x7fffffff || (uintptr_t)qkv % 16 || (uintptr_t)out % 4)
        return cudaErrorInvalidValue;
    float scale_log2 = scale * 1.4426950408889634f;
    bf16 *o = (bf16 *)out;
    const bf16 *x = (const bf16 *)qkv;
    if (layout->head_dim == 128)
        for_shape<128>(false, &s, stream, o, out_stride, x, layout, items, n_items, scale_log2);
    else
        for_shape<64>(false, &s, stream, o, out_stride, x, layout, items, n_items, scale_log2);
    return cudaGetLastError();
}

extern "C" cudaError_t vpk_attention_simple(cudaStream_t stream, vp_bf16 *out, size_t out_stride,
                                            const vp_bf16 *qkv, const vpk_attn_layout *layout,
                                            const int32_t *ranges, size_t n_tokens, float scale)
{
    return vpk_attention_simple_rows(stream, out, out_stride, qkv, layout, ranges, NULL,
                                     n_tokens, scale);
}

extern "C" cudaError_t vpk_attention_simple_rows(cudaStream_t stream, vp_bf16 *out,
                                                 size_t out_stride, const vp_bf16 *qkv,
                                                 const vpk_attn_layout *layout,
                                                 const int32_t *ranges, const int32_t *rows,
                                                 size_t n_rows, float scale)
{
    size_t warps = n_rows * (size_t)layout->heads;
    if (warps == 0)
        return cudaSuccess;
    if (layout->head_dim > 32 * SIMPLE_MAX_PER_LANE || layout->q_per_kv <= 0)
        return cudaErrorInvalidValue;
    const int block = 128; /* 4 warps */
    size_t blocks = (warps * 32 + block - 1) / block;
    if (blocks > 0x7fffffffu)
        return cudaErrorInvalidValue;
    if (layout->act == VPK_ACT_F16)
        attn_simple_kernel<__half><<<(unsigned)blocks, block, 0, stream>>>(
            (__half *)out, out_stride, (const __half *)qkv, *layout, ranges, rows, n_rows, scale);
    else
        attn_simple_kernel<bf16><<<(unsigned)blocks, block, 0, stream>>>(
            (bf16 *)out, out_stride, (const bf16 *)qkv, *layout, ranges, rows, n_rows, scale);
    return cudaGetLastError();
}
