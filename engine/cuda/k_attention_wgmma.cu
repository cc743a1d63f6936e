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
 * The products, the swizzle, the key tiles and the softmax live in k_wgmma.cuh, shared
 * with the warp-specialised kernel fed by the tensor memory accelerator
 * (k_attention_tma.cu, VPK_WGMMA_TMA), which vpk_attention_wgmma launches for that bit.
 *
 * Built only for sm_90a (the architecture-specific wgmma): elsewhere the kernels are
 * stubs and vpk_attention_wgmma_available says no. */
#include "engine/cuda/k_wgmma.cuh"

template <int D, int HPB>
struct wg_cfg {
    /* stages (a key tile and a transposed value tile each) in the ring of copies: a step's
     * copies have one step to land (three stages measured no faster on an H200: W1 182.8
     * ms against 184.2, the language attention 409 TFLOP/s against 410) */
    static const int ST = 2;
    static const int NT = 128 * HPB;
    static const int QBYTES = WG_BQ * D * 2; /* a head's query tile */
    static const int KBYTES = WG_BK * D * 2; /* key tile */
    static const int VBYTES = D * WG_BK * 2; /* transposed value tile */
    static const int STAGE = KBYTES + VBYTES;
    static const int bytes = HPB * QBYTES + ST * STAGE + 1024; /* + room to align to 1024 */
};

#if VPK_HAVE_WGMMA
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


/* Key tile j of an item into stage j % C::ST: its keys (when k) and its transposed values
 * (when v). */
template <int D, int HPB>
static __device__ __forceinline__ void wg_load_tile(unsigned char *stage0, const vp_attn_item &it,
                                                    int j, int n_full, bool k, bool v,
                                                    const bf16 *qkv, size_t row_stride, size_t k_col,
                                                    const __half *vtg, int n_pad, int tid)
{
    typedef wg_cfg<D, HPB> C;
    const wg_tile t = wg_tile_at(it, j, n_full);
    unsigned char *st = stage0 + (j % C::ST) * C::STAGE;
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
 * (The query tile in registers for Q K^T, wgmma's RS form, measured no faster on an H200:
 * W1 184.3 ms against 184.2.) */
template <int D, int HPB, bool OVERLAP, bool F16>
__global__ void __launch_bounds__(wg_cfg<D, HPB>::NT, HPB == 1 ? 2 : 1)
attn_wgmma_kernel(bf16 *out, size_t out_stride, const bf16 *qkv, const __half *vt, int n_pad,
                  vpk_attn_layout L, const vp_attn_item *items, float scale_log2)
{
#if VPK_HAVE_WGMMA
    typedef wg_cfg<D, HPB> C;
    constexpr int ST = C::ST;
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
        wg_load_tile<D, HPB>(stage0, it, 0, n_full, true, !OVERLAP, qkv, L.row_stride, k_col, vtg,
                             n_pad, tid);
    cp_async_commit();

    float o[D / 2], m[2], l[2], alpha[2];
    int qrow[2];
    wg_begin_rows<D>(o, m, l, qrow, it.q_begin, warp, lane);
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
                wg_load_tile<D, HPB>(stage0, it, t + 1, n_full, true, true, qkv, L.row_stride,
                                     k_col, vtg, n_pad, tid);
            cp_async_commit();
            cp_async_wait<1>();
            fence_proxy_async();
            __syncthreads();
            wg_issue_qk<D, F16>(s, dq, dkey(t));
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
                wg_load_tile<D, HPB>(stage0, it, i, n_full, true, false, qkv, L.row_stride,
                                         k_col, vtg, n_pad, tid);
            if (i - 1 < n_tiles)
                wg_load_tile<D, HPB>(stage0, it, i - 1, n_full, false, true, qkv,
                                         L.row_stride, k_col, vtg, n_pad, tid);
            cp_async_commit();
        }
        cp_async_wait<ST - 1>(); /* Q and the first keys */
        fence_proxy_async();
        __syncthreads();
        auto issue_qk = [&](int j) { wg_issue_qk<D, F16>(s, dq, dkey(j)); };
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
                wg_load_tile<D, HPB>(stage0, it, t + ST, n_full, true, false, qkv,
                                         L.row_stride, k_col, vtg, n_pad, tid);
            if (t + ST - 1 < n_tiles)
                wg_load_tile<D, HPB>(stage0, it, t + ST - 1, n_full, false, true, qkv,
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
            wg_last_pv<D>(o, pc, dval(n_tiles - 1));
        };
        WG_RUN_STEPS(n_tiles, pa, pb, step, last);
    }
    cp_async_wait<0>();
    wg_store<D, F16>(out, out_stride, h, qrow, it.q_end, tig, o, l);
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

/* Whether the current device runs the sm_90a kernels: asked once per device (64 kept),
 * the answers stored atomically (backends on several threads or devices). */
extern "C" int vpk_attention_wgmma_available(void)
{
    static int known[64]; /* 0: not asked; else the answer + 1 */
    int dev = 0, major = 0, *d = NULL, h = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= 64)
        return (void)cudaGetLastError(), 0;
    int k = __atomic_load_n(&known[dev], __ATOMIC_RELAXED);
    if (k)
        return k - 1;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess &&
        major == 9 && cudaMalloc((void **)&d, sizeof *d) == cudaSuccess) {
        wgmma_probe_kernel<<<1, 1>>>(d);
        if (cudaMemcpy(&h, d, sizeof h, cudaMemcpyDeviceToHost) != cudaSuccess)
            h = 0;
        cudaFree(d);
    }
    (void)cudaGetLastError(); /* a missing sm_90 image is an answer, not an error */
    __atomic_store_n(&known[dev], (h ? 1 : 0) + 1, __ATOMIC_RELAXED);
    return h ? 1 : 0;
}

template <int D, int HPB, bool OVERLAP, bool F16>
static cudaError_t wg_allow(void)
{
    return cudaFuncSetAttribute(attn_wgmma_kernel<D, HPB, OVERLAP, F16>,
                                cudaFuncAttributeMaxDynamicSharedMemorySize,
                                wg_cfg<D, HPB>::bytes);
}

/* Both pipelines (plain, overlapped) for 1 and 2 heads a block: the instances
 * wg_launch_variant launches. */
template <int D, bool F16, int HPB>
static cudaError_t wg_allow_hpb(void)
{
    cudaError_t rc = wg_allow<D, HPB, false, F16>();
    return rc == cudaSuccess ? wg_allow<D, HPB, true, F16>() : rc;
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
    if (rc == cudaSuccess)
        rc = wg_allow_all<64, true>();
    return rc == cudaSuccess ? vpk_attention_tma_setup() : rc;
}

#define WG_PIPE_BITS (VPK_WGMMA_OVERLAP | VPK_WGMMA_TMA)

extern "C" int vpk_attention_wgmma_supports(const vpk_attn_layout *L, int variant)
{
    int heads_per_block = variant & ~WG_PIPE_BITS;
    if ((variant & VPK_WGMMA_TMA) && !vpk_attention_tma_supports(L, heads_per_block))
        return 0;
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

template <int D, int HPB, bool OVERLAP, bool F16>
static void wg_launch(cudaStream_t stream, bf16 *out, size_t out_stride, const bf16 *qkv,
                      const __half *vt, size_t n_pad, const vpk_attn_layout *L,
                      const vp_attn_item *items, size_t n_items, float scale_log2)
{
    typedef wg_cfg<D, HPB> C;
    for (size_t first = 0; first < n_items; first += 65535) {
        size_t count = n_items - first < 65535 ? n_items - first : 65535;
        dim3 grid((unsigned)(L->heads / HPB), (unsigned)count);
        attn_wgmma_kernel<D, HPB, OVERLAP, F16><<<grid, C::NT, C::bytes, stream>>>(
            out, out_stride, qkv, vt, (int)n_pad, *L, items + first, scale_log2);
    }
}

template <int D, bool F16>
static void wg_launch_variant(int variant, cudaStream_t stream, bf16 *out, size_t out_stride,
                              const bf16 *qkv, const __half *vt, size_t n_pad,
                              const vpk_attn_layout *L, const vp_attn_item *items, size_t n_items,
                              float scale_log2)
{
    int hpb = variant & ~WG_PIPE_BITS;
    bool overlap = variant & VPK_WGMMA_OVERLAP;
#define WG_LAUNCH(HPB, OVERLAP)                                                                 \
    wg_launch<D, HPB, OVERLAP, F16>(stream, out, out_stride, qkv, vt, n_pad, L, items, n_items, \
                                    scale_log2)
    if (hpb == 1)
        overlap ? WG_LAUNCH(1, true) : WG_LAUNCH(1, false);
    else
        overlap ? WG_LAUNCH(2, true) : WG_LAUNCH(2, false);
#undef WG_LAUNCH
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
    if (variant & VPK_WGMMA_TMA)
        return vpk_attention_tma(stream, out, out_stride, qkv, vt, n_tokens, n_pad, L,
                                 variant & ~WG_PIPE_BITS, items, n_items, sl);
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
