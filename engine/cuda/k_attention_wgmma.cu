/* Attention for Hopper (sm_90a): the same work list and masks as attn_fast_kernel
 * (k_attention.cu), with S = Q K^T and O += P V as warpgroup products (wgmma): one
 * warpgroup (4 warps) per query head holds 64 query rows, the key tile is read by the
 * tensor cores straight from shared memory (no ldmatrix traffic through the registers,
 * which bounds the mma.sync kernel), and P stays in registers as the A operand of P V.
 *
 * P V runs in fp16, not bf16: P in [0, 1] keeps 11 significant bits instead of 8 (the
 * probabilities' rounding was measurable in the 8B forward's error against fp32: the
 * fp32 kernel's margins were 8% closer, tests/gpu/README.md), and the values, converted
 * from bf16 while being transposed, are exact in fp16 from 2^-17 to 65504 (larger ones
 * saturate; a checkpoint's value projections are orders of magnitude below).
 *
 * wgmma reads its shared-memory operands K-major in the 128-byte swizzled layout: rows
 * of 64 bf16 (128 bytes), the 16-byte chunk c of row r stored at chunk c ^ (r % 8), 8-row
 * atoms 1024 bytes apart; a head of 128 takes two such column blocks. V must be K-major
 * for P V too (keys contiguous), so the values are first transposed into
 * vt[group][dim][token] (vpk_attention_vt, fp16), padded to 8 tokens. Key tiles then start at a
 * multiple of 8 tokens (16-byte copies of vt rows) and the keys before a range's start
 * are masked like those past its end.
 *
 * Built only for sm_90a (the architecture-specific wgmma): elsewhere the kernels are
 * stubs and vpk_attention_wgmma_available says no. */
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

/* ST: stages (a key tile and a transposed value tile each) in the ring of copies */
template <int D, int HPB, int ST>
struct wg_cfg {
    static const int NT = 128 * HPB;
    static const int QBYTES = WG_BQ * D * 2; /* a head's query tile */
    static const int KBYTES = WG_BK * D * 2; /* key tile */
    static const int VBYTES = D * WG_BK * 2; /* transposed value tile */
    static const int STAGE = KBYTES + VBYTES;
    static const int bytes = HPB * QBYTES + ST * STAGE + 1024; /* + room to align to 1024 */
};

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
 * Q K^T with the query tile held in registers (VPK_WGMMA_QREG), and P V at head 64. */
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

/* rows [r_begin, r_begin + R) of a row-major source (D wide at `col`) into a swizzled
 * tile; rows from r_end on are zeros. NT threads share the copies: thread tid always
 * copies chunk tid % (D / 8) of rows tid / (D / 8) + k NT / (D / 8), so its column, its
 * swizzle and its shared-memory offsets are the same for every tile (a copy costs an
 * address and a compare, which matters as the softmax's threads issue them). */
template <int D, int NT, int R>
static __device__ __forceinline__ void load_sw_rows(unsigned char *dst, const bf16 *src,
                                                    size_t row_stride, size_t col, int r_begin,
                                                    int r_end, int tid)
{
    const int CPR = D / 8, RSTEP = NT / CPR;
    static_assert(NT % CPR == 0 && R % RSTEP == 0, "copy split");
    const int r0 = tid / CPR, cc = tid % CPR;
    const bf16 *s0 = src + col + cc * 8;
    unsigned char *d0 = dst + sw128_offset(r0, cc * 8, R); /* RSTEP is a multiple of 8 */
    static_assert(RSTEP % 8 == 0, "swizzle phase must repeat");
#pragma unroll
    for (int k = 0; k < R / RSTEP; k++) {
        int row = r_begin + r0 + k * RSTEP;
        bool ok = row < r_end;
        cp_async16(d0 + k * RSTEP * 128, s0 + (size_t)(ok ? row : r_begin) * row_stride, ok);
    }
}

/* Keys [kb, kb + 64) of the transposed values (D rows of vt) into a swizzled [D][64]
 * tile; chunks at or past n_pad are zeros. kb is a multiple of 8. As above, a thread
 * copies the same chunk of rows tid / 8 + k NT / 8 for every tile. */
template <int D, int NT>
static __device__ __forceinline__ void load_vt(unsigned char *dst, const __half *vt, size_t vt_stride,
                                               int kb, int n_pad, int tid)
{
    const int DSTEP = NT / 8;
    static_assert((D * 8) % NT == 0 && DSTEP % 8 == 0, "copy split");
    const int d0 = tid >> 3, ch = tid & 7, key = kb + ch * 8;
    const bool ok = key < n_pad;
    const __half *s0 = vt + (size_t)d0 * vt_stride + (ok ? key : 0);
    unsigned char *t0 = dst + sw128_offset(d0, ch * 8, D);
#pragma unroll
    for (int k = 0; k < D / DSTEP; k++)
        cp_async16(t0 + k * DSTEP * 128, s0 + (size_t)k * DSTEP * vt_stride, ok);
}

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
/* S[64][64] = Q K^T for one key tile (dk: the key tile's descriptor; the query tile's,
 * dq, or with QREG its A fragments in registers, qa from wg_load_q_frags: then only the
 * keys are read from shared memory, half of Q K^T's traffic there): 16 head dims a
 * product (column block kk / 4, 32 bytes into its rows). Issued, not waited for. */
template <int D, bool F16, bool QREG>
static __device__ __forceinline__ void wg_issue_qk(float *s, uint64_t dq, const uint32_t *qa,
                                                   uint64_t dk)
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
        if constexpr (QREG)
            wgmma_rs_n64_acc<F16>(s, qa + 4 * kk, desc_plus(dk, koff), kk > 0);
        else
            wgmma_ss_n64<F16>(s, desc_plus(dq, off), desc_plus(dk, koff), kk > 0);
    }
    wgmma_commit();
}

/* This thread's A fragments of its warpgroup's query tile q (swizzled [64][D]), read once:
 * for 16 head dims kk, rows r0 = 16 warp + lane / 4 and r0 + 8, dims 16 kk + 2 (lane % 4)
 * and 8 further, in the order of the mma.sync A fragment (P's layout for P V too). */
template <int D>
static __device__ __forceinline__ void wg_load_q_frags(uint32_t *qa, const unsigned char *q,
                                                       int warp, int lane)
{
    const int r0 = warp * 16 + (lane >> 2), c0 = 2 * (lane & 3);
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++)
#pragma unroll
        for (int i = 0; i < 4; i++) {
            int r = r0 + 8 * (i & 1), col = kk * 16 + c0 + 8 * (i >> 1);
            qa[4 * kk + i] = *reinterpret_cast<const uint32_t *>(
                q + sw128_offset(r, col & ~7, WG_BQ) + (col & 7) * 2);
        }
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

/* Key tile j of an item into stage j % ST: its keys (when k) and its transposed values
 * (when v). */
template <int D, int HPB, int ST>
static __device__ __forceinline__ void wg_load_tile(unsigned char *stage0, const vp_attn_item &it,
                                                    int j, int n_full, bool k, bool v,
                                                    const bf16 *qkv, size_t row_stride, size_t k_col,
                                                    const __half *vtg, int n_pad, int tid)
{
    typedef wg_cfg<D, HPB, ST> C;
    const wg_tile t = wg_tile_at(it, j, n_full);
    unsigned char *st = stage0 + (j % ST) * C::STAGE;
    if (k)
        load_sw_rows<D, C::NT, WG_BK>(st, qkv, row_stride, k_col, t.kb, t.hi, tid);
    if (v)
        load_vt<D, C::NT>(st + C::KBYTES, vtg, n_pad, t.kb, n_pad, tid);
}
#endif

/* OVERLAP: P V of key tile t runs on the tensor cores while the softmax of tile t + 1 is
 * computed (FlashAttention-3's overlap within a warpgroup): tile t + 1's scores are
 * issued before tile t's P V, so they are ready first. Without it the tensor cores wait
 * for each tile's softmax (other blocks on the SM fill part of that).
 * ST (with OVERLAP; 2 without): stages in the ring of copies. With 2, a step's copies
 * have one step to land; with 3 (VPK_WGMMA_DEEP), two, for one more stage of shared
 * memory per block (32 KB at head 128: 113 KB with one head a block, so two such blocks
 * fill an SM's 228 KB exactly).
 * QREG (with OVERLAP; VPK_WGMMA_QREG): Q K^T takes the query tile from registers, loaded
 * once, instead of shared memory (up to D / 4 more registers a thread; ptxas with nvcc 13:
 * +8 at head 64, +14 to +19 at 128). */
template <int D, int HPB, bool OVERLAP, bool F16, int ST, bool QREG>
__global__ void __launch_bounds__(wg_cfg<D, HPB, ST>::NT, HPB == 1 ? 2 : 1)
attn_wgmma_kernel(bf16 *out, size_t out_stride, const bf16 *qkv, const __half *vt, int n_pad,
                  vpk_attn_layout L, const vp_attn_item *items, float scale_log2)
{
    static_assert(OVERLAP ? ST >= 2 : ST == 2, "the plain pipeline has two stages");
    static_assert(OVERLAP || !QREG, "the query tile in registers needs the overlap");
#if VPK_HAVE_WGMMA
    typedef wg_cfg<D, HPB, ST> C;
    extern __shared__ unsigned char wg_smem_raw[];
    unsigned char *smem = wg_smem_raw + ((1024 - (smem_addr(wg_smem_raw) & 1023)) & 1023);
    unsigned char *Qs = smem, *stage0 = smem + HPB * C::QBYTES;

    const vp_attn_item it = items[blockIdx.y];
    const int tid = threadIdx.x, lane = tid & 31, tig = lane & 3;
    const int hb = tid >> 7, warp = (tid >> 5) & 3; /* head in block, warp in warpgroup */
    const int h0 = blockIdx.x * HPB, h = h0 + hb;
    const int g = h0 / L.q_per_kv;
    const size_t k_col = (size_t)g * L.group_stride + L.k_base;
    const __half *vtg = vt + (size_t)g * D * (size_t)n_pad;

    const int n_full = it.full_end > it.full_begin
                           ? (it.full_end - (it.full_begin & ~7) + WG_BK - 1) / WG_BK : 0;
    const int n_own = it.causal_begin >= 0
                          ? (it.q_end - (it.causal_begin & ~7) + WG_BK - 1) / WG_BK : 0;
    const int n_tiles = n_full + n_own;

#pragma unroll
    for (int j = 0; j < HPB; j++)
        load_sw_rows<D, C::NT, WG_BQ>(Qs + j * C::QBYTES, qkv, L.row_stride,
                                      (size_t)g * L.group_stride + L.q_base +
                                          (size_t)((h0 + j) % L.q_per_kv) * D,
                                      it.q_begin, it.q_end, tid);
    if (n_tiles > 0)
        wg_load_tile<D, HPB, ST>(stage0, it, 0, n_full, true, !OVERLAP, qkv, L.row_stride, k_col, vtg,
                             n_pad, tid);
    cp_async_commit();

    float o[D / 2];
#pragma unroll
    for (int i = 0; i < D / 2; i++)
        o[i] = 0.0f;
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f}, alpha[2];
    const int r0 = warp * 16 + (lane >> 2);
    const int qrow[2] = {it.q_begin + r0, it.q_begin + r0 + 8};
    /* descriptors: this warpgroup's query tile, and stage j's keys and values */
    const uint64_t dq = sw128_desc(smem_addr(Qs + hb * C::QBYTES));
    const uint64_t dstage = sw128_desc(smem_addr(stage0));
    auto dkey = [&](int j) { return desc_plus(dstage, (uint32_t)((j % ST) * C::STAGE)); };
    auto dval = [&](int j) {
        return desc_plus(dstage, (uint32_t)((j % ST) * C::STAGE + C::KBYTES));
    };
    float s[32];
    uint32_t pa[WG_P_REGS];

    if (!OVERLAP) {
        for (int t = 0; t < n_tiles; t++) {
            if (t + 1 < n_tiles) /* prefetch the next tile into the other stage */
                wg_load_tile<D, HPB, ST>(stage0, it, t + 1, n_full, true, true, qkv, L.row_stride,
                                     k_col, vtg, n_pad, tid);
            cp_async_commit();
            cp_async_wait<1>();
            fence_proxy_async();
            __syncthreads();
            wg_issue_qk<D, F16, false>(s, dq, nullptr, dkey(t));
            wgmma_wait<0>();
            wgmma_settle<32>(s);
            wg_softmax(s, wg_tile_at(it, t, n_full), it, qrow, tig, scale_log2, m, l, alpha, pa);
            wg_scale<D / 2>(o, alpha);
            wg_pin_pv_inputs<D>(o, pa);
            wgmma_fence();
            wg_issue_pv<D>(o, pa, dval(t));
            wgmma_wait<0>();
            wgmma_settle<D / 2>(o);
            __syncthreads(); /* everyone is done with stage t % 2 before it is refilled */
        }
    } else if (n_tiles > 0) {
        /* key tile j's keys and values both go to stage j % ST, but the keys are read one
         * step earlier: step t reads the keys of t + 1 and the values of t, then refills
         * the keys of t + ST and the values of t + ST - 1 (whose previous contents, the
         * keys of t and the values of t - 1, step t - 1 finished with). Copy group G(t),
         * committed by step t, holds those two; before the steps, G(i - ST) holds the
         * keys of i and the values of i - 1, for i = 1 .. ST - 1. */
#pragma unroll
        for (int i = 1; i < ST; i++) {
            if (i < n_tiles)
                wg_load_tile<D, HPB, ST>(stage0, it, i, n_full, true, false, qkv, L.row_stride,
                                         k_col, vtg, n_pad, tid);
            if (i - 1 < n_tiles)
                wg_load_tile<D, HPB, ST>(stage0, it, i - 1, n_full, false, true, qkv,
                                         L.row_stride, k_col, vtg, n_pad, tid);
            cp_async_commit();
        }
        cp_async_wait<ST - 1>(); /* Q and the first keys */
        fence_proxy_async();
        __syncthreads();
        uint32_t qa[QREG ? D / 4 : 1];
        auto issue_qk = [&](int j) { wg_issue_qk<D, F16, QREG>(s, dq, qa, dkey(j)); };
        if constexpr (QREG)
            wg_load_q_frags<D>(qa, Qs + hb * C::QBYTES, warp, lane);
        issue_qk(0);
        wgmma_wait<0>();
        wgmma_settle<32>(s);
        wg_softmax(s, wg_tile_at(it, 0, n_full), it, qrow, tig, scale_log2, m, l, alpha, pa);
        /* step t: P V of tile t (its P in pc) while tile t + 1's scores and softmax run
         * (its P into pn). Both products are issued every step (a product issued on one
         * branch only makes ptxas serialise them all), so the last tile's P V follows the
         * steps; and the steps alternate between two P arrays, as a copy from one to the
         * other lets ptxas give them the same registers, written while P V still reads
         * them (serialised again: C7513). */
        uint32_t pb[WG_P_REGS];
        auto step = [&](int t, uint32_t *pc, uint32_t *pn) {
            cp_async_wait<ST - 2>(); /* G(t - ST + 1): the keys of t + 1 and the values of t */
            fence_proxy_async();
            __syncthreads();
            if (t + ST < n_tiles)
                wg_load_tile<D, HPB, ST>(stage0, it, t + ST, n_full, true, false, qkv,
                                         L.row_stride, k_col, vtg, n_pad, tid);
            if (t + ST - 1 < n_tiles)
                wg_load_tile<D, HPB, ST>(stage0, it, t + ST - 1, n_full, false, true, qkv,
                                         L.row_stride, k_col, vtg, n_pad, tid);
            cp_async_commit(); /* G(t), possibly empty */
            wg_pin_pv_inputs<D>(o, pc); /* the fence in wg_issue_qk covers both products */
            issue_qk(t + 1);
            wg_issue_pv<D>(o, pc, dval(t));
            wgmma_wait<1>();
            wgmma_settle<32>(s);
            wg_softmax(s, wg_tile_at(it, t + 1, n_full), it, qrow, tig, scale_log2, m, l, alpha, pn);
            wgmma_wait<0>();
            wgmma_settle<D / 2>(o);
            wg_scale<D / 2>(o, alpha);
        };
        auto last = [&](uint32_t *pc) { /* P V of the last tile, its P in pc */
            cp_async_wait<0>();
            fence_proxy_async();
            __syncthreads();
            wg_pin_pv_inputs<D>(o, pc);
            wgmma_fence();
            wg_issue_pv<D>(o, pc, dval(n_tiles - 1));
            wgmma_wait<0>();
            wgmma_settle<D / 2>(o);
        };
        int t = 0;
        for (; t + 2 < n_tiles; t += 2) {
            step(t, pa, pb);
            step(t + 1, pb, pa);
        }
        if (t + 1 < n_tiles) { /* an odd number of steps: the last P lands in pb */
            step(t, pa, pb);
            last(pb);
        } else {
            last(pa);
        }
    }
    cp_async_wait<0>();
    float inv[2];
    quad_inverse2(l, inv);
#pragma unroll
    for (int n = 0; n < D / 8; n++) {
        size_t col = (size_t)h * D + n * 8 + tig * 2;
        store_pair_t<F16>(out, out_stride, qrow[0], it.q_end, col, o[4 * n], o[4 * n + 1], inv[0]);
        store_pair_t<F16>(out, out_stride, qrow[1], it.q_end, col, o[4 * n + 2], o[4 * n + 3], inv[1]);
    }
#endif
}

/* vt[g][d][t] = v of token t, group g, dim d (fp16, saturated) for t < n; zeros for
 * n <= t < round8(n). 64 tokens of one group a block through shared memory: both sides
 * coalesced. From bf16 the clamp keeps masked keys' values finite (a bf16 value beyond
 * fp16's range would be inf, and 0 * inf would poison P V); it also turns a NaN value
 * into -65504, where the mma.sync path would pass the NaN on. From fp16 (F16) the values
 * are copied as they are: an inf or NaN there is an overflow of the qkv product, which
 * must reach the logits (the engine fails a pass with non-finite logits) rather than be
 * clipped into a finite, wrong score. */
template <int D, bool F16>
__global__ void vt_kernel(__half *vt, size_t vt_stride, const bf16 *qkv, vpk_attn_layout L, int n,
                          int n_pad)
{
    __shared__ __align__(16) bf16 tile[64][D + 8];
    const int tok0 = blockIdx.x * 64, g = blockIdx.y, tid = threadIdx.x;
    const size_t v_col = (size_t)g * L.group_stride + L.v_base;
    for (int c = tid; c < 64 * D / 8; c += blockDim.x) {
        int r = c / (D / 8), cc = c % (D / 8), tok = tok0 + r;
        uint4 v = make_uint4(0, 0, 0, 0);
        if (tok < n)
            v = *reinterpret_cast<const uint4 *>(qkv + (size_t)tok * L.row_stride + v_col + cc * 8);
        *reinterpret_cast<uint4 *>(&tile[r][cc * 8]) = v;
    }
    __syncthreads();
    for (int c = tid; c < D * 8; c += blockDim.x) {
        int d = c >> 3, ch = c & 7, tok = tok0 + ch * 8;
        if (tok >= n_pad)
            continue;
        uint4 v;
        __half *e = reinterpret_cast<__half *>(&v);
#pragma unroll
        for (int k = 0; k < 8; k++)
        {
            bf16 b = tile[ch * 8 + k][d];
            if (F16)
                e[k] = __ushort_as_half(__bfloat16_as_ushort(b)); /* the same bits */
            else
                e[k] = __float2half_rn(fminf(fmaxf(vpk_bf(b), -65504.0f), 65504.0f));
        }
        *reinterpret_cast<uint4 *>(vt + ((size_t)g * D + d) * vt_stride + tok) = v;
    }
}

__global__ void wgmma_probe_kernel(int *out)
{
    *out = VPK_HAVE_WGMMA;
}

extern "C" int vpk_attention_wgmma_available(void)
{
    static int known = -1;
    if (known >= 0)
        return known;
    int dev = 0, major = 0, *d = NULL, h = 0;
    known = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
        major != 9 || cudaMalloc((void **)&d, sizeof *d) != cudaSuccess)
        return (void)cudaGetLastError(), known;
    wgmma_probe_kernel<<<1, 1>>>(d);
    if (cudaMemcpy(&h, d, sizeof h, cudaMemcpyDeviceToHost) == cudaSuccess)
        known = h;
    cudaFree(d);
    (void)cudaGetLastError(); /* a missing sm_90 image is an answer, not an error */
    return known;
}

template <int D, int HPB, bool OVERLAP, bool F16, int ST, bool QREG>
static cudaError_t wg_allow(void)
{
    return cudaFuncSetAttribute(attn_wgmma_kernel<D, HPB, OVERLAP, F16, ST, QREG>,
                                cudaFuncAttributeMaxDynamicSharedMemorySize,
                                wg_cfg<D, HPB, ST>::bytes);
}

/* Every pipeline (plain; overlapped with 2 or 3 stages, Q from shared memory or registers)
 * for 1 and 2 heads a block: the instances wg_launch_variant launches. */
template <int D, bool F16, int HPB>
static cudaError_t wg_allow_hpb(void)
{
    cudaError_t rc = wg_allow<D, HPB, false, F16, 2, false>();
    if (rc == cudaSuccess)
        rc = wg_allow<D, HPB, true, F16, 2, false>();
    if (rc == cudaSuccess)
        rc = wg_allow<D, HPB, true, F16, 3, false>();
    if (rc == cudaSuccess)
        rc = wg_allow<D, HPB, true, F16, 2, true>();
    if (rc == cudaSuccess)
        rc = wg_allow<D, HPB, true, F16, 3, true>();
    return rc;
}

template <int D, bool F16>
static cudaError_t wg_allow_all(void)
{
    cudaError_t rc = wg_allow_hpb<D, F16, 1>();
    return rc == cudaSuccess ? wg_allow_hpb<D, F16, 2>() : rc;
}

extern "C" cudaError_t vpk_attention_wgmma_setup(void)
{
    cudaError_t rc = wg_allow_all<128, false>();
    if (rc == cudaSuccess)
        rc = wg_allow_all<64, false>();
    if (rc == cudaSuccess)
        rc = wg_allow_all<128, true>();
    return rc == cudaSuccess ? wg_allow_all<64, true>() : rc;
}

extern "C" int vpk_attention_wgmma_supports(const vpk_attn_layout *L, int variant)
{
    int heads_per_block = variant & ~(VPK_WGMMA_OVERLAP | VPK_WGMMA_DEEP | VPK_WGMMA_QREG);
    return (L->act == VPK_ACT_BF16 || L->act == VPK_ACT_F16) &&
           (L->head_dim == 64 || L->head_dim == 128) && L->q_per_kv > 0 &&
           (heads_per_block == 1 || heads_per_block == 2) && L->q_per_kv % heads_per_block == 0 &&
           L->heads % L->q_per_kv == 0 && L->row_stride % 8 == 0 && L->group_stride % 8 == 0 &&
           L->q_base % 8 == 0 && L->k_base % 8 == 0 && L->v_base % 8 == 0;
}

extern "C" cudaError_t vpk_attention_vt(cudaStream_t stream, uint16_t *vt, const vp_bf16 *qkv,
                                        const vpk_attn_layout *L, size_t n_tokens)
{
    if (n_tokens == 0)
        return cudaSuccess;
    if (!vpk_attention_wgmma_supports(L, 1)) /* 16-byte rows, head size 64 or 128 */
        return cudaErrorInvalidValue;
    size_t n_pad = vp_round8(n_tokens), groups = (size_t)(L->heads / L->q_per_kv);
    if (n_pad > 0x7fffffff || groups > 65535 || (uintptr_t)qkv % 16 || (uintptr_t)vt % 16)
        return cudaErrorInvalidValue;
    dim3 grid((unsigned)((n_pad + 63) / 64), (unsigned)groups);
    bool f16 = L->act == VPK_ACT_F16;
    __half *t = (__half *)vt;
    const bf16 *x = (const bf16 *)qkv;
    int n = (int)n_tokens, np = (int)n_pad;
    if (L->head_dim == 128 && f16)
        vt_kernel<128, true><<<grid, 256, 0, stream>>>(t, n_pad, x, *L, n, np);
    else if (L->head_dim == 128)
        vt_kernel<128, false><<<grid, 256, 0, stream>>>(t, n_pad, x, *L, n, np);
    else if (f16)
        vt_kernel<64, true><<<grid, 256, 0, stream>>>(t, n_pad, x, *L, n, np);
    else
        vt_kernel<64, false><<<grid, 256, 0, stream>>>(t, n_pad, x, *L, n, np);
    return cudaGetLastError();
}

template <int D, int HPB, bool OVERLAP, bool F16, int ST, bool QREG>
static void wg_launch(cudaStream_t stream, bf16 *out, size_t out_stride, const bf16 *qkv,
                      const __half *vt, size_t n_pad, const vpk_attn_layout *L,
                      const vp_attn_item *items, size_t n_items, float scale_log2)
{
    typedef wg_cfg<D, HPB, ST> C;
    for (size_t first = 0; first < n_items; first += 65535) {
        size_t count = n_items - first < 65535 ? n_items - first : 65535;
        dim3 grid((unsigned)(L->heads / HPB), (unsigned)count);
        attn_wgmma_kernel<D, HPB, OVERLAP, F16, ST, QREG><<<grid, C::NT, C::bytes, stream>>>(
            out, out_stride, qkv, vt, (int)n_pad, *L, items + first, scale_log2);
    }
}

/* The pipelines of wg_allow_hpb: 0 plain, then overlapped with 2 or 3 stages (+ 2 with the
 * query tile in registers). */
template <int D, bool F16, int HPB>
static void wg_launch_pipe(int pipe, bool qreg, cudaStream_t stream, bf16 *out, size_t out_stride,
                           const bf16 *qkv, const __half *vt, size_t n_pad,
                           const vpk_attn_layout *L, const vp_attn_item *items, size_t n_items,
                           float scale_log2)
{
#define WG_LAUNCH(OVERLAP, ST, QREG)                                                        \
    wg_launch<D, HPB, OVERLAP, F16, ST, QREG>(stream, out, out_stride, qkv, vt, n_pad, L,  \
                                              items, n_items, scale_log2)
    if (pipe == 0)
        WG_LAUNCH(false, 2, false);
    else if (pipe == 1)
        qreg ? WG_LAUNCH(true, 2, true) : WG_LAUNCH(true, 2, false);
    else
        qreg ? WG_LAUNCH(true, 3, true) : WG_LAUNCH(true, 3, false);
#undef WG_LAUNCH
}

template <int D, bool F16>
static void wg_launch_variant(int variant, cudaStream_t stream, bf16 *out, size_t out_stride,
                              const bf16 *qkv, const __half *vt, size_t n_pad,
                              const vpk_attn_layout *L, const vp_attn_item *items, size_t n_items,
                              float scale_log2)
{
    int hpb = variant & ~(VPK_WGMMA_OVERLAP | VPK_WGMMA_DEEP | VPK_WGMMA_QREG);
    bool qreg = variant & VPK_WGMMA_QREG;
    /* DEEP and QREG imply the overlap */
    int pipe = variant & VPK_WGMMA_DEEP ? 2 : variant & (VPK_WGMMA_OVERLAP | VPK_WGMMA_QREG) ? 1 : 0;
    if (hpb == 1)
        wg_launch_pipe<D, F16, 1>(pipe, qreg, stream, out, out_stride, qkv, vt, n_pad, L, items,
                                  n_items, scale_log2);
    else
        wg_launch_pipe<D, F16, 2>(pipe, qreg, stream, out, out_stride, qkv, vt, n_pad, L, items,
                                  n_items, scale_log2);
}

extern "C" cudaError_t vpk_attention_wgmma(cudaStream_t stream, vp_bf16 *out, size_t out_stride,
                                           const vp_bf16 *qkv, const uint16_t *vt, size_t n_tokens,
                                           const vpk_attn_layout *L, int variant,
                                           const vp_attn_item *items, size_t n_items, float scale)
{
    if (n_items == 0 || L->heads == 0)
        return cudaSuccess;
    size_t n_pad = vp_round8(n_tokens);
    if (!vpk_attention_wgmma_available() || !vpk_attention_wgmma_supports(L, variant) ||
        n_pad > 0x7fffffff || (uintptr_t)qkv % 16 || (uintptr_t)vt % 16 || (uintptr_t)out % 4 ||
        out_stride % 2 || !(scale > 0.0f && scale < INFINITY)) /* wg_softmax scales maxima */
        return cudaErrorInvalidValue;
    float sl = scale * 1.4426950408889634f;
    bf16 *o = (bf16 *)out;
    const bf16 *x = (const bf16 *)qkv;
    const __half *v = (const __half *)vt;
    bool f16 = L->act == VPK_ACT_F16;
    if (L->head_dim == 128 && f16)
        wg_launch_variant<128, true>(variant, stream, o, out_stride, x, v, n_pad, L, items, n_items, sl);
    else if (L->head_dim == 128)
        wg_launch_variant<128, false>(variant, stream, o, out_stride, x, v, n_pad, L, items, n_items, sl);
    else if (f16)
        wg_launch_variant<64, true>(variant, stream, o, out_stride, x, v, n_pad, L, items, n_items, sl);
    else
        wg_launch_variant<64, false>(variant, stream, o, out_stride, x, v, n_pad, L, items, n_items, sl);
    return cudaGetLastError();
}
