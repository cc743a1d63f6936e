/* Attention for Hopper fed by the tensor memory accelerator, warp-specialised
 * (VPRM_CUDA_ATTENTION=wgmma2t): the language model's head size 128 with two query heads
 * of a key-value group a block, the vision tower's 64 with one. The same work items, masks, products, softmax and overlap as
 * the overlapped wgmma kernel (k_attention_wgmma.cu, helpers in k_wgmma.cuh); what
 * differs is how tiles arrive:
 *   - one producer warp loads the HPB query tiles and a ring of TMA_ST key and
 *     transposed-value tiles with cp.async.bulk.tensor, which writes the 128-byte
 *     swizzled layout the products read (tensor maps with CU_TENSOR_MAP_SWIZZLE_128B; rows
 *     past the end arrive as zeros);
 *   - each stage has a "full" mbarrier (the copy engine's bytes) and an "empty" one (one
 *     arrival per consumer warp once its products have read the tile);
 *   - the consumer warpgroups wait on those, not on a block barrier per key tile: two
 *     run up to TMA_ST tiles apart, so one's softmax can overlap the other's products,
 *     and no consumer thread issues a copy.
 * Both proxies that touch a stage are asynchronous (the copy engine writes, the tensor
 * cores read), so the mbarriers order them without a proxy fence. A wait still unmet
 * after TMA_WAIT_LIMIT_NS of the GPU's clock traps: a pipeline bug fails the launch
 * instead of hanging (a count of tries would not bound it: a failed try_wait may
 * suspend the thread for a time the hardware chooses).
 * Built only for sm_90a; elsewhere the kernel is a stub. */
#include "engine/cuda/k_tma.cuh"

#define TMA_ST 4                  /* stages of key and value tiles */

template <int D, int HPB_>
struct tma_cfg {
    static const int HPB = HPB_;             /* consumer warpgroups: heads a block */
    static const int NT = 128 * HPB + 32;    /* and the producer warp */
    /* blocks an SM: one of two heads (162 registers); three of one head of 64 */
    static const int MIN_BLOCKS = HPB == 1 ? 3 : 1;
    static const int QBYTES = WG_BQ * D * 2; /* a head's query tile */
    static const int KBYTES = WG_BK * D * 2; /* key tile */
    static const int VBYTES = D * WG_BK * 2; /* transposed value tile */
    static const int STAGE = KBYTES + VBYTES;
    static const int BARS = HPB * QBYTES + TMA_ST * STAGE;        /* mbarriers' offset */
    static const int NBARS = 1 + 4 * TMA_ST;                      /* q, k/v full, k/v empty */
    static const int bytes = BARS + 8 * NBARS + 1024;             /* + room to align */
};


/* qk_map: qkv as [rows][row_stride] 16-bit values, boxes of 64 x 64; vt_map: vt as
 * [groups * D][n_pad], boxes of 64 keys x D dims. */
template <int D, int HPB, bool F16>
__global__ void __launch_bounds__(tma_cfg<D, HPB>::NT, tma_cfg<D, HPB>::MIN_BLOCKS)
attn_tma_kernel(bf16 *out, size_t out_stride, const __grid_constant__ CUtensorMap qk_map,
                const __grid_constant__ CUtensorMap vt_map, vpk_attn_layout L,
                const vp_attn_item *items, float scale_log2)
{
#if VPK_HAVE_WGMMA
    typedef tma_cfg<D, HPB> C;
    const int ST = TMA_ST;
    extern __shared__ unsigned char tma_smem_raw[];
    unsigned char *smem = tma_smem_raw + ((1024 - (smem_addr(tma_smem_raw) & 1023)) & 1023);
    unsigned char *Qs = smem, *stage0 = smem + C::HPB * C::QBYTES;
    const uint32_t bars = smem_addr(smem + C::BARS);
    /* mbarrier addresses: the query tiles' full; stage s's key full, value full, key
     * empty, value empty */
    const uint32_t q_full = bars;
    auto k_full = [&](int s) { return bars + 8u * (uint32_t)(1 + s); };
    auto v_full = [&](int s) { return bars + 8u * (uint32_t)(1 + ST + s); };
    auto k_empty = [&](int s) { return bars + 8u * (uint32_t)(1 + 2 * ST + s); };
    auto v_empty = [&](int s) { return bars + 8u * (uint32_t)(1 + 3 * ST + s); };

    const vp_attn_item it = items[blockIdx.y];
    const int tid = threadIdx.x, lane = tid & 31, tig = lane & 3;
    const int hb = tid >> 7, warp = (tid >> 5) & 3; /* consumer: head in block, warp in it */
    const int h0 = blockIdx.x * C::HPB;
    const int g = h0 / L.q_per_kv;
    const int n_full = it.full_end > it.full_begin
                           ? (it.full_end - (it.full_begin & ~7) + WG_BK - 1) / WG_BK : 0;
    const int n_own = it.causal_begin >= 0
                          ? (it.q_end - (it.causal_begin & ~7) + WG_BK - 1) / WG_BK : 0;
    const int n_tiles = n_full + n_own;

    if (tid == 0) {
        mbar_init(q_full, 1);
        for (int s = 0; s < ST; s++) {
            mbar_init(k_full(s), 1);
            mbar_init(v_full(s), 1);
            mbar_init(k_empty(s), 4 * C::HPB); /* one arrival per consumer warp */
            mbar_init(v_empty(s), 4 * C::HPB);
        }
        /* visible to the other threads, and to the copy engine's proxy */
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    }
    __syncthreads();

    if (hb == C::HPB) { /* the producer warp: one lane issues every copy */
        if (lane != 0 || n_tiles == 0)
            return;
        tma_prefetch_map(&qk_map);
        tma_prefetch_map(&vt_map);
        mbar_expect_tx(q_full, C::HPB * C::QBYTES);
        for (int j = 0; j < C::HPB; j++) {
            int col = g * (int)L.group_stride + (int)L.q_base + ((h0 + j) % L.q_per_kv) * D;
            for (int blk = 0; blk < D / 64; blk++)
                tma_load_2d(smem_addr(Qs + j * C::QBYTES + blk * WG_BQ * 128), &qk_map,
                            col + 64 * blk, it.q_begin, q_full);
        }
        const int k_col = g * (int)L.group_stride + (int)L.k_base;
        for (int j = 0; j < n_tiles; j++) {
            const int s = j % ST;
            const uint32_t parity = (uint32_t)((j / ST) - 1) & 1u; /* the round before's release */
            const wg_tile t = wg_tile_at(it, j, n_full);
            unsigned char *st = stage0 + s * C::STAGE;
            if (j >= ST)
                mbar_wait(k_empty(s), parity);
            mbar_expect_tx(k_full(s), C::KBYTES);
            for (int blk = 0; blk < D / 64; blk++)
                tma_load_2d(smem_addr(st + blk * WG_BK * 128), &qk_map, k_col + 64 * blk, t.kb,
                            k_full(s));
            if (j >= ST)
                mbar_wait(v_empty(s), parity);
            mbar_expect_tx(v_full(s), C::VBYTES);
            tma_load_2d(smem_addr(st + C::KBYTES), &vt_map, t.kb, g * D, v_full(s));
        }
        return;
    }

    /* a consumer warpgroup: head h0 + hb, the overlapped pipeline of attn_wgmma_kernel
     * with waits on the stages' mbarriers in place of its copies and block barriers */
    const int h = h0 + hb;
    float o[D / 2], m[2], l[2], alpha[2];
    int qrow[2];
    wg_begin_rows<D>(o, m, l, qrow, it.q_begin, warp, lane);
    if (n_tiles > 0) {
        const uint64_t dq = sw128_desc(smem_addr(Qs + hb * C::QBYTES));
        const uint64_t dstage = sw128_desc(smem_addr(stage0));
        auto dkey = [&](int j) { return desc_plus(dstage, (uint32_t)((j % ST) * C::STAGE)); };
        auto dval = [&](int j) {
            return desc_plus(dstage, (uint32_t)((j % ST) * C::STAGE + C::KBYTES));
        };
        auto phase = [&](int j) { return (uint32_t)(j / ST) & 1u; };
        /* a consumer's wait, the warp converged after it for the .aligned products */
        auto wait = [&](uint32_t bar, uint32_t parity) {
            mbar_wait(bar, parity);
            __syncwarp();
        };
        float s[32];
        uint32_t pa[WG_P_REGS], pb[WG_P_REGS];
        wait(q_full, 0);
        wait(k_full(0), 0);
        wg_issue_qk<D, F16>(s, dq, dkey(0));
        wgmma_wait<0>();
        wgmma_settle<32>(s);
        mbar_arrive_lane0(k_empty(0), lane);
        wg_softmax(s, wg_tile_at(it, 0, n_full), it, qrow, tig, scale_log2, m, l, alpha, pa);
        /* step t: P V of tile t (its P in pc) while tile t + 1's scores and softmax run
         * (its P into pn); the two P arrays alternate as in attn_wgmma_kernel */
        auto step = [&](int t, uint32_t *pc, uint32_t *pn) {
            wait(k_full((t + 1) % ST), phase(t + 1));
            wait(v_full(t % ST), phase(t));
            wg_pin_pv_inputs<D>(o, pc); /* the fence in wg_issue_qk covers both products */
            wg_issue_qk<D, F16>(s, dq, dkey(t + 1));
            wg_issue_pv<D>(o, pc, dval(t));
            wgmma_wait<1>(); /* the scores: the keys of t + 1 are read */
            wgmma_settle<32>(s);
            mbar_arrive_lane0(k_empty((t + 1) % ST), lane);
            wg_softmax(s, wg_tile_at(it, t + 1, n_full), it, qrow, tig, scale_log2, m, l, alpha,
                       pn);
            wgmma_wait<0>(); /* P V: the values of t are read */
            wgmma_settle<D / 2>(o);
            mbar_arrive_lane0(v_empty(t % ST), lane);
            wg_scale<D / 2>(o, alpha);
        };
        auto last = [&](uint32_t *pc) { /* P V of the last tile, its P in pc */
            wait(v_full((n_tiles - 1) % ST), phase(n_tiles - 1));
            wg_last_pv<D>(o, pc, dval(n_tiles - 1));
        };
        WG_RUN_STEPS(n_tiles, pa, pb, step, last);
    }
    wg_store<D, F16>(out, out_stride, h, qrow, it.q_end, tig, o, l);
#endif
}

/* Its shared memory, and all of an SM's for shared memory rather than L1 (the vision
 * kernel's three blocks take 222 of the 228 KiB, the blocks' reservations included). */
template <int D, int HPB, bool F16>
static cudaError_t tma_allow(void)
{
    cudaError_t rc = cudaFuncSetAttribute(attn_tma_kernel<D, HPB, F16>,
                                          cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          tma_cfg<D, HPB>::bytes);
    if (rc == cudaSuccess)
        rc = cudaFuncSetAttribute(attn_tma_kernel<D, HPB, F16>,
                                  cudaFuncAttributePreferredSharedMemoryCarveout,
                                  cudaSharedmemCarveoutMaxShared);
    return rc;
}

extern "C" cudaError_t vpk_attention_tma_setup(void)
{
    cudaError_t rc = tma_allow<128, 2, false>();
    if (rc == cudaSuccess)
        rc = tma_allow<128, 2, true>();
    if (rc == cudaSuccess)
        rc = tma_allow<64, 1, false>();
    return rc == cudaSuccess ? tma_allow<64, 1, true>() : rc;
}

extern "C" int vpk_attention_tma_supports(const vpk_attn_layout *L, int heads_per_block)
{
    /* the copies' coordinates are 32-bit */
    bool shape = (L->head_dim == 128 && heads_per_block == 2 && L->q_per_kv % 2 == 0) ||
                 (L->head_dim == 64 && heads_per_block == 1);
    return shape && L->q_per_kv > 0 && L->row_stride < 0x7fffffff && encode_tiled() != NULL;
}

extern "C" int vpk_attention_tma_blocks_per_sm(int head_dim)
{
    int blocks = 0;
    cudaError_t rc = head_dim == 128
                         ? cudaOccupancyMaxActiveBlocksPerMultiprocessor(
                               &blocks, attn_tma_kernel<128, 2, false>, tma_cfg<128, 2>::NT,
                               tma_cfg<128, 2>::bytes)
                         : cudaOccupancyMaxActiveBlocksPerMultiprocessor(
                               &blocks, attn_tma_kernel<64, 1, false>, tma_cfg<64, 1>::NT,
                               tma_cfg<64, 1>::bytes);
    return rc == cudaSuccess ? blocks : -1;
}

template <int D, int HPB>
static void tma_launch(cudaStream_t stream, bf16 *out, size_t out_stride,
                       const CUtensorMap &qk_map, const CUtensorMap &vt_map,
                       const vpk_attn_layout *L, const vp_attn_item *items, size_t n_items,
                       float scale_log2)
{
    typedef tma_cfg<D, HPB> C;
    for (size_t first = 0; first < n_items; first += 65535) {
        size_t count = n_items - first < 65535 ? n_items - first : 65535;
        dim3 grid((unsigned)(L->heads / HPB), (unsigned)count);
        if (L->act == VPK_ACT_F16)
            attn_tma_kernel<D, HPB, true><<<grid, C::NT, C::bytes, stream>>>(
                out, out_stride, qk_map, vt_map, *L, items + first, scale_log2);
        else
            attn_tma_kernel<D, HPB, false><<<grid, C::NT, C::bytes, stream>>>(
                out, out_stride, qk_map, vt_map, *L, items + first, scale_log2);
    }
}

extern "C" cudaError_t vpk_attention_tma(cudaStream_t stream, vp_bf16 *out, size_t out_stride,
                                         const vp_bf16 *qkv, const uint16_t *vt, size_t n_rows,
                                         size_t n_pad, const vpk_attn_layout *L,
                                         int heads_per_block, const vp_attn_item *items,
                                         size_t n_items, float scale_log2)
{
    const int D = L->head_dim;
    size_t groups = (size_t)(L->heads / L->q_per_kv);
    CUtensorMap qk_map, vt_map;
    if (!vpk_attention_tma_supports(L, heads_per_block) || n_rows > 0x7fffffff ||
        !tensor_map(&qk_map, qkv, L->row_stride, n_rows, L->row_stride, 64, 64) ||
        !tensor_map(&vt_map, vt, n_pad, groups * (size_t)D, n_pad, 64, D))
        return cudaErrorInvalidValue;
    if (D == 128)
        tma_launch<128, 2>(stream, (bf16 *)out, out_stride, qk_map, vt_map, L, items, n_items,
                           scale_log2);
    else
        tma_launch<64, 1>(stream, (bf16 *)out, out_stride, qk_map, vt_map, L, items, n_items,
                          scale_log2);
    return cudaGetLastError();
}
