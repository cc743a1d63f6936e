/* Hopper warpgroup products (wgmma) for attention, shared by the kernel that copies its
 * tiles with cp.async (k_attention_wgmma.cu) and the one fed by the tensor memory
 * accelerator (k_attention_tma.cu): the product wrappers, the 128-byte swizzle and its
 * descriptors, a work item's key tiles, Q K^T and P V issue, the masked online softmax.
 * Everything here is for sm_90a (VPK_HAVE_WGMMA); elsewhere the kernels are stubs. */
#ifndef VP_K_WGMMA_CUH
#define VP_K_WGMMA_CUH

#include <cuda_fp16.h>

#include "engine/cuda/k_common.cuh"
#include "engine/cuda/k_mma.cuh"
#include "engine/cuda_plan/cuda_plan.h"

#define WG_BQ 64 /* query rows per warpgroup: the planner's tile */
#define WG_BK 64 /* keys per step */
/* a thread's share of one key tile's P: its 32 scores (64 x WG_BK over the warpgroup's
 * 128 threads) as 16 fp16 pairs, the A operand of P V */
#define WG_P_REGS (WG_BK / 4)
static_assert(WG_BQ == VP_ATTN_BQ, "attention query tile differs from the planner's");

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define VPK_HAVE_WGMMA 1
#else
#define VPK_HAVE_WGMMA 0
#endif

#if VPK_HAVE_WGMMA
/* D[64][64] (+)= A[64][16] B[16][64]: A and B K-major in shared memory (descriptors),
 * bf16 or fp16 (F16: fp16 activations, vpk_act); accumulate 0 overwrites D. */
#define WG_SS_N64(TY)                                                                          \
    "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"                                               \
    "wgmma.mma_async.sync.aligned.m64n64k16.f32." TY "." TY " "                                \
    "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                  \
    "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "        \
    "%32, %33, p, 1, 1, 0, 0;\n}\n"
#define WG_D32                                                                                 \
    "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]),        \
        "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), \
        "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]),          \
        "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]),          \
        "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
template <bool F16>
static __device__ __forceinline__ void wgmma_ss_n64(float *d, uint64_t da, uint64_t db,
                                                    int accumulate)
{
    if (F16)
        asm volatile(WG_SS_N64("f16") : WG_D32 : "l"(da), "l"(db), "r"(accumulate));
    else
        asm volatile(WG_SS_N64("bf16") : WG_D32 : "l"(da), "l"(db), "r"(accumulate));
}

/* D[64][64] (+)= A[64][16] B[16][64]: A in registers (each warp's 16 rows as the mma.sync
 * A fragment), B K-major in shared memory, bf16 or fp16 (F16); accumulate 0 overwrites D.
 * P V at head 64. */
#define WG_RS_N64(TY)                                                                          \
    "{\n.reg .pred p;\nsetp.ne.b32 p, %36, 0;\n"                                               \
    "wgmma.mma_async.sync.aligned.m64n64k16.f32." TY "." TY " "                                \
    "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                  \
    "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "        \
    "{%32, %33, %34, %35}, %37, p, 1, 1, 0;\n}\n"
template <bool F16>
static __device__ __forceinline__ void wgmma_rs_n64_acc(float *d, const uint32_t *a, uint64_t db,
                                                        int accumulate)
{
    if (F16)
        asm volatile(WG_RS_N64("f16")
                     : WG_D32
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(accumulate), "l"(db));
    else
        asm volatile(WG_RS_N64("bf16")
                     : WG_D32
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(accumulate), "l"(db));
}

/* D[64][128] += A[64][16] B[16][128] in fp16: A in registers (each warp's 16 rows as the
 * mma.sync A fragment), B K-major in shared memory. */
static __device__ __forceinline__ void wgmma_rs_n128(float *d, const uint32_t *a, uint64_t db)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 "
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
                 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
                 "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
                 "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
                 "{%64, %65, %66, %67}, %68, p, 1, 1, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]),
                   "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]),
                   "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]),
                   "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
                   "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]),
                   "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]),
                   "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]),
                   "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
                   "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]),
                   "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]),
                   "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db));
}

static __device__ __forceinline__ void wgmma_fence(void)
{
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}

static __device__ __forceinline__ void wgmma_commit(void)
{
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}

/* Until at most N committed groups of products are still running. */
template <int N>
static __device__ __forceinline__ void wgmma_wait(void)
{
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}

/* Pins registers in place between the volatile asm around them: after a wait, later
 * reads of the accumulators must not move above it; before a fence, the writes of a
 * product's inputs must not sink below it (a register written between wgmma.fence and
 * the product serialises all products: ptxas's C7513). */
template <int N>
static __device__ __forceinline__ void wgmma_settle(float *d)
{
#pragma unroll
    for (int i = 0; i < N; i++)
        asm volatile("" : "+f"(d[i])::"memory");
}

template <int N>
static __device__ __forceinline__ void wgmma_settle(uint32_t *a)
{
#pragma unroll
    for (int i = 0; i < N; i++)
        asm volatile("" : "+r"(a[i])::"memory");
}

/* Two floats as an fp16 pair (lo in the low half), for P. */
static __device__ __forceinline__ uint32_t pack_f16(float lo, float hi)
{
    __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&v);
}

/* Generic-proxy writes (cp.async) made visible to the tensor cores' asynchronous reads. */
static __device__ __forceinline__ void fence_proxy_async(void)
{
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

/* Descriptor of a K-major 128-byte-swizzled operand at smem address `addr` (1024-byte
 * aligned atoms; addr may step 32 bytes into a row for the next 16 columns): start
 * address, leading offset (unused when swizzled), 1024 bytes between 8-row atoms, mode 1. */
static __device__ __forceinline__ uint64_t sw128_desc(uint32_t addr)
{
    return (uint64_t)((addr & 0x3FFFFu) >> 4) | ((uint64_t)1 << 16) | ((uint64_t)(1024 >> 4) << 32) |
           ((uint64_t)1 << 62);
}

/* The descriptor of addr + off from addr's: the start address field holds addr >> 4 in
 * 14 bits, which shared memory (< 2^18 bytes) never carries out of, so a 32-bit add on
 * the low word is exact: one instruction where sw128_desc is five, for each of a key
 * tile's twelve products. */
static __device__ __forceinline__ uint64_t desc_plus(uint64_t desc, uint32_t off)
{
    uint32_t lo = (uint32_t)desc + (off >> 4), hi = (uint32_t)(desc >> 32);
    return (uint64_t)hi << 32 | lo;
}

/* Byte offset of element (r, col) in a [rows][D] tile stored as D / 64 swizzled column
 * blocks of [rows][128 bytes]; col a multiple of 8 (16-byte chunks). */
static __device__ __forceinline__ uint32_t sw128_offset(int r, int col, int rows)
{
    int block = col >> 6, chunk = (col >> 3) & 7;
    return (uint32_t)(block * rows * 128 + r * 128 + ((chunk ^ (r & 7)) << 4));
}
#endif

#if VPK_HAVE_WGMMA
/* Key tile u of an item: its first key (a multiple of 8), the range it belongs to and
 * whether that range is causal. */
struct wg_tile {
    int kb, lo, hi;
    bool causal;
};

static __device__ __forceinline__ wg_tile wg_tile_at(const vp_attn_item &it, int u, int n_full)
{
    wg_tile t;
    if (u < n_full) {
        t.kb = (it.full_begin & ~7) + u * WG_BK, t.lo = it.full_begin, t.hi = it.full_end;
        t.causal = false;
    } else {
        t.kb = (it.causal_begin & ~7) + (u - n_full) * WG_BK, t.lo = it.causal_begin;
        t.hi = it.q_end, t.causal = true;
    }
    return t;
}
#endif

#if VPK_HAVE_WGMMA
/* S[64][64] = Q K^T for one key tile (dk: the key tile's descriptor; dq: the query
 * tile's): 16 head dims a product (column block kk / 4, 32 bytes into its rows). Issued,
 * not waited for. */
template <int D, bool F16>
static __device__ __forceinline__ void wg_issue_qk(float *s, uint64_t dq, uint64_t dk)
{
#pragma unroll
    for (int i = 0; i < 32; i++)
        s[i] = 0.0f; /* overwritten (scale-d 0 on the first step): keeps the compiler calm */
    wgmma_settle<32>(s);
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
        uint32_t off = (uint32_t)((kk >> 2) * WG_BQ * 128 + (kk & 3) * 32);
        uint32_t koff = (uint32_t)((kk >> 2) * WG_BK * 128 + (kk & 3) * 32);
        wgmma_ss_n64<F16>(s, desc_plus(dq, off), desc_plus(dk, koff), kk > 0);
    }
    wgmma_commit();
}

/* P V's inputs (O scaled, P packed) written before the next wgmma.fence: one written
 * after it serialises the products (ptxas's C7519, C7513). */
template <int D>
static __device__ __forceinline__ void wg_pin_pv_inputs(float *o, uint32_t *pa)
{
    wgmma_settle<D / 2>(o);
    wgmma_settle<WG_P_REGS>(pa);
}

/* O += P V for one key tile (d0: the descriptor of its transposed values), 16 keys a
 * product (32 bytes into the vt rows), after a wgmma.fence that follows
 * wg_pin_pv_inputs. Issued, not waited for. */
template <int D>
static __device__ __forceinline__ void wg_issue_pv(float *o, const uint32_t *pa, uint64_t d0)
{
#pragma unroll
    for (int kk = 0; kk < WG_BK / 16; kk++) {
        uint64_t dv = desc_plus(d0, (uint32_t)(kk * 32));
        if (D == 128)
            wgmma_rs_n128(o, pa + 4 * kk, dv);
        else
            wgmma_rs_n64_acc<true>(o, pa + 4 * kk, dv, 1);
    }
    wgmma_commit();
}

/* The masked online softmax of one key tile's scores s (s[4j + c]: row r0 + 8 (c >> 1),
 * key kb + 8j + 2 tig + (c & 1)): updates the running max m and sum l, returns in alpha
 * the factor the earlier output must be scaled by, and P packed as fp16 pairs in pa.
 * The maxima are taken on the raw scores and scaled once (the scale is positive and
 * rounding monotonic, so that is the maximum of the scaled scores), and the scale joins
 * the exponent's subtraction in one fma: two instructions a score, with exp2_ftz's one,
 * where multiplying each score first took a third (the softmax's instructions are most
 * of what a warp issues per key tile). */
static __device__ __forceinline__ void wg_softmax(float *s, const wg_tile &tl, const vp_attn_item &it,
                                                  const int *qrow, int tig, float scale_log2,
                                                  float *m, float *l, float *alpha, uint32_t *pa)
{
    const bool edge = tl.kb < tl.lo || tl.kb + WG_BK > tl.hi ||
                      (tl.causal && tl.kb + WG_BK - 1 > it.q_begin);
    if (edge)
#pragma unroll
        for (int j = 0; j < WG_BK / 8; j++)
#pragma unroll
            for (int c = 0; c < 4; c++) {
                int key = tl.kb + j * 8 + tig * 2 + (c & 1);
                bool ok = key >= tl.lo && key < tl.hi && (!tl.causal || key <= qrow[c >> 1]);
                s[4 * j + c] = ok ? s[4 * j + c] : -INFINITY;
            }
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int i = 0; i < 32; i++)
        mx[(i >> 1) & 1] = fmaxf(mx[(i >> 1) & 1], s[i]);
    mx[0] *= scale_log2, mx[1] *= scale_log2;
    float base[2], sum[2] = {0.0f, 0.0f};
    online_max2(mx, m, base, alpha);
    const float nb[2] = {-base[0], -base[1]};
#pragma unroll
    for (int i = 0; i < 32; i++) {
        float p = exp2_ftz(fmaf(s[i], scale_log2, nb[(i >> 1) & 1]));
        s[i] = p;
        sum[(i >> 1) & 1] += p;
    }
#pragma unroll
    for (int row = 0; row < 2; row++)
        l[row] = l[row] * alpha[row] + sum[row];
#pragma unroll
    for (int i = 0; i < WG_P_REGS; i++)
        pa[i] = pack_f16(s[2 * i], s[2 * i + 1]);
}

/* o *= alpha, row by row, unless no row of the warp changed its maximum (every alpha
 * exactly 1): past the first key tiles that is the usual case, and it saves D / 2
 * multiplications a thread. The branch is uniform over the warp, and no product is
 * running on o here. */
template <int N>
static __device__ __forceinline__ void wg_scale(float *o, const float *alpha)
{
    if (!__any_sync(0xffffffffu, alpha[0] != 1.0f || alpha[1] != 1.0f))
        return;
#pragma unroll
    for (int i = 0; i < N; i++)
        o[i] *= alpha[(i >> 1) & 1];
}
/* A consumer warpgroup's running state before the first key tile: O = 0, row maxima
 * -inf, row sums 0; and this thread's two query rows (r0 = 16 warp + lane / 4, r0 + 8). */
template <int D>
static __device__ __forceinline__ void wg_begin_rows(float (&o)[D / 2], float (&m)[2], float (&l)[2],
                                                     int (&qrow)[2], int q_begin, int warp,
                                                     int lane)
{
#pragma unroll
    for (int i = 0; i < D / 2; i++)
        o[i] = 0.0f;
    m[0] = m[1] = -INFINITY;
    l[0] = l[1] = 0.0f;
    qrow[0] = q_begin + warp * 16 + (lane >> 2);
    qrow[1] = qrow[0] + 8;
}

/* P V of an item's last key tile (its P in pc, d: the descriptor of its values), once
 * its values have landed: the overlapped pipelines' tail. */
template <int D>
static __device__ __forceinline__ void wg_last_pv(float *o, uint32_t *pc, uint64_t d)
{
    wg_pin_pv_inputs<D>(o, pc);
    wgmma_fence();
    wg_issue_pv<D>(o, pc, d);
    wgmma_wait<0>();
    wgmma_settle<D / 2>(o);
}

/* The overlapped pipelines' steps over n_tiles key tiles, the first one's P already in
 * pa: step(t, pc, pn) computes P V of tile t (its P in pc) and tile t + 1's P (into pn),
 * last(pc) the last tile's P V. The steps alternate between the two P arrays, as a copy
 * from one to the other lets ptxas give them the same registers, written while P V still
 * reads them (serialised products: C7513). A macro, not a function taking the lambdas:
 * that made ptxas schedule the overlapped kernels differently (40 more instructions). */
#define WG_RUN_STEPS(n_tiles, pa, pb, step, last)                                            \
    do {                                                                                     \
        int t_ = 0;                                                                          \
        for (; t_ + 2 < (n_tiles); t_ += 2) {                                                \
            step(t_, pa, pb);                                                                \
            step(t_ + 1, pb, pa);                                                            \
        }                                                                                    \
        if (t_ + 1 < (n_tiles)) { /* an odd number of steps: the last P lands in pb */       \
            step(t_, pa, pb);                                                                \
            last(pb);                                                                        \
        } else {                                                                             \
            last(pa);                                                                        \
        }                                                                                    \
    } while (0)

/* This thread's rows qrow[2] of head h's output, o / l (rows from q_end on are not the
 * item's). */
template <int D, bool F16>
static __device__ __forceinline__ void wg_store(bf16 *out, size_t out_stride, int h,
                                                const int (&qrow)[2], int q_end, int tig,
                                                const float (&o)[D / 2], const float (&l)[2])
{
    float inv[2];
    quad_inverse2(l, inv);
#pragma unroll
    for (int n = 0; n < D / 8; n++) {
        size_t col = (size_t)h * D + n * 8 + tig * 2;
        store_pair_t<F16>(out, out_stride, qrow[0], q_end, col, o[4 * n], o[4 * n + 1], inv[0]);
        store_pair_t<F16>(out, out_stride, qrow[1], q_end, col, o[4 * n + 2], o[4 * n + 3], inv[1]);
    }
}
#endif

#endif
