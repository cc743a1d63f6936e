/* The InternLM2 MLP's gated half on Hopper, one product (VPRM_CUDA_MLP=fused, the twin
 * of vpk_silu_gate after the w1 | w3 product):
 *     h[rows][I] = silu(x w1^T) * (x w3^T),   w13 = [w1; w3] stored [2 I][K]
 * A tile's block multiplies 128 rows of x by the 128 gate rows n0.. of w13 and the 128 up
 * rows I + n0.. together, as one 256-column product, and applies the SiLU-gate to its fp32
 * accumulators: the gate | up rows (2 I values a token, 352 MB a layer at W1) never reach
 * memory, and no separate kernel reads them back. Why: cuBLASLt has no gated epilogue,
 * and on a power-capped card the bytes moved cost clock as well as time.
 * Layout, warp-specialised as k_attention_tma.cu (helpers in k_tma.cuh):
 *   - one producer lane copies, for each 64-wide step of K, x's 128 x 64 box and w13's two
 *     128 x 64 boxes into a ring of MG_ST stages (128-byte swizzled; rows past the end and
 *     columns past K arrive as zeros, exact for the sums);
 *   - two consumer warpgroups, 64 rows each, issue m64n256k16 products on each stage and
 *     release it once read; gate column c and up column c + 128 land in the same thread
 *     (registers i and i + 64), so the epilogue needs no exchange;
 *   - the grid is persistent (one block an SM), tiles taken in groups of 16 row tiles
 *     (vp_tile_at, engine/cuda_plan/tile_order.h)
 *     so the blocks running together share x's rows and w13's in L2; the producer fills
 *     the next tile's stages while the consumers store the last one's outputs.
 * Rounded once, to the activation type, from fp32: closer to the CPU twin than the unfused
 * path with fp16 activations, whose gate and up are rounded to fp16 first.
 * Built only for sm_90a; elsewhere the kernel is a stub and vpk_gated_mlp_supports says no. */
#include "engine/cuda/k_tma.cuh"
#include "engine/cuda_plan/tile_order.h"

#define MG_BM 128                    /* rows a tile (64 per consumer warpgroup) */
#define MG_BN 128                    /* output columns a tile (as many gate and up) */
#define MG_BK 64                     /* K a stage: one 128-byte swizzle row of 16-bit values */
#define MG_ST 4                      /* stages in the ring */
#define MG_NT (256 + 32)             /* two consumer warpgroups and the producer warp */
#define MG_A_BYTES (MG_BM * MG_BK * 2)         /* x's box */
#define MG_B_BYTES (2 * MG_BN * MG_BK * 2)     /* w13's gate and up boxes */
#define MG_STAGE (MG_A_BYTES + MG_B_BYTES)
#define MG_BARS (MG_ST * MG_STAGE)             /* the mbarriers' offset */
#define MG_SMEM (MG_BARS + 8 * 2 * MG_ST + 1024) /* + room to align to 1024 */

#if VPK_HAVE_WGMMA
/* D[64][256] (+)= A[64][16] B[16][256]: A and B K-major in shared memory (descriptors);
 * accumulate 0 overwrites D. */
#define MG_SS_N256(TY)                                                                         \
    "{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"                                              \
    "wgmma.mma_async.sync.aligned.m64n256k16.f32." TY "." TY " {"                              \
    "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                   \
    "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "         \
    "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "         \
    "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "         \
    "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, "         \
    "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, "         \
    "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, " \
    "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127}, " \
    "%128, %129, p, 1, 1, 0, 0;\n}\n"
#define MG_D128                                                                                \
    "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]),                    \
    "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]),                  \
    "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]),              \
    "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),              \
    "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]),              \
    "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]),              \
    "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]),              \
    "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),              \
    "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]),              \
    "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]),              \
    "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]),              \
    "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]),              \
    "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]),              \
    "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]),              \
    "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]),              \
    "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]),              \
    "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]),            \
    "+f"(d[102]), "+f"(d[103]), "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]),        \
    "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]),        \
    "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]),        \
    "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]),        \
    "+f"(d[126]), "+f"(d[127])
template <bool F16>
static __device__ __forceinline__ void wgmma_ss_n256(float *d, uint64_t da, uint64_t db,
                                                     int accumulate)
{
    if (F16)
        asm volatile(MG_SS_N256("f16") : MG_D128 : "l"(da), "l"(db), "r"(accumulate));
    else
        asm volatile(MG_SS_N256("bf16") : MG_D128 : "l"(da), "l"(db), "r"(accumulate));
}

/* A consumer warp's release of stage bar, by its lane 0, to the block's producer and, in a
 * pair, to its partner's (whose copies write into this block's stages too): the mbarrier at
 * the same offset in each block of the cluster. */
template <int CL>
static __device__ __forceinline__ void mg_release(uint32_t bar, int lane)
{
    if (CL == 1)
        mbar_arrive_lane0(bar, lane);
    else
#pragma unroll
        for (uint32_t rank = 0; rank < (uint32_t)CL; rank++) {
            uint32_t remote;
            asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n"
                         : "=r"(remote)
                         : "r"(bar), "r"(rank));
            asm volatile("{\n.reg .pred p;\nsetp.eq.s32 p, %1, 0;\n"
                         "@p mbarrier.arrive.shared::cluster.b64 _, [%0];\n}\n" ::"r"(remote),
                         "r"(lane)
                         : "memory");
        }
}

/* Every thread of the cluster: its mbarriers initialised before a partner's copy or
 * release reaches them; at the end, no block leaves while its partner may still release
 * one of its stages. */
static __device__ __forceinline__ void mg_cluster_sync(void)
{
    __syncwarp(); /* converged: the barrier is .aligned */
    asm volatile("barrier.cluster.arrive.release.aligned;\n"
                 "barrier.cluster.wait.acquire.aligned;\n" ::: "memory");
}

/* The box at (c0, c1) of map into shared memory at dst of every block in cta_mask, each
 * completing its bytes on its own mbarrier at offset bar. */
static __device__ __forceinline__ void tma_load_2d_multicast(uint32_t dst, const CUtensorMap *map,
                                                             int c0, int c1, uint32_t bar,
                                                             uint16_t cta_mask)
{
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes"
                 ".multicast::cluster [%0], [%1, {%3, %4}], [%2], %5;\n" ::"r"(dst),
                 "l"(reinterpret_cast<uint64_t>(map)), "r"(bar), "r"(c0), "r"(c1), "h"(cta_mask)
                 : "memory");
}
#endif

/* x_map: x as [rows][K] 16-bit values, boxes of 64 x 128; w_map: w13 as [2 I][K], the same
 * boxes. h: [rows][inter] in the activation type. CL: blocks a cluster. With CL = 2 the
 * pair takes row tiles 2 p and 2 p + 1 of the same columns: each block copies one of the
 * two w13 boxes and the copy engine writes it into both blocks (multicast), so each reads
 * 32 KiB a stage from L2 instead of 48; a stage is free again only once both blocks'
 * consumers have released it (16 arrivals). */
template <bool F16, int CL>
__global__ void __launch_bounds__(MG_NT, 1)
gated_mlp_kernel(uint16_t *h, const __grid_constant__ CUtensorMap x_map,
                 const __grid_constant__ CUtensorMap w_map, int rows, int inter, int k_steps,
                 int tiles_m, int tiles_n, int rows_g)
{
#if VPK_HAVE_WGMMA
    extern __shared__ unsigned char mg_smem_raw[];
    unsigned char *smem = mg_smem_raw + ((1024 - (smem_addr(mg_smem_raw) & 1023)) & 1023);
    const uint32_t bars = smem_addr(smem + MG_BARS);
    auto full = [&](uint32_t s) { return bars + 8u * s; };
    auto empty = [&](uint32_t s) { return bars + 8u * (MG_ST + s); };
    const int tid = threadIdx.x, lane = tid & 31, wg = tid >> 7, warp = (tid >> 5) & 3;
    /* this block's place in its cluster, and the clusters' tiles (pairs of row tiles) */
    int rank = 0, cluster = (int)blockIdx.x, n_clusters = (int)gridDim.x;
    if (CL > 1) /* the hardware's numbering, which the multicast mask and mapa use */
        asm("mov.u32 %0, %%cluster_ctarank;\n"
            "mov.u32 %1, %%clusterid.x;\n"
            "mov.u32 %2, %%nclusterid.x;\n"
            : "=r"(rank), "=r"(cluster), "=r"(n_clusters));
    const int tiles_mc = (tiles_m + CL - 1) / CL;
    const int n_tiles = tiles_mc * tiles_n, group = rows_g / CL > 0 ? rows_g / CL : 1;
    /* the cluster's tile t: this block's first row and first output column */
    auto origin = [&](int t, int *m0, int *n0) {
        int mc, nt;
        vp_tile_at(t, tiles_mc, tiles_n, group, &mc, &nt);
        *m0 = (mc * CL + rank) * MG_BM, *n0 = nt * MG_BN;
    };
    if (tid == 0) {
        for (uint32_t s = 0; s < MG_ST; s++) {
            mbar_init(full(s), 1);
            mbar_init(empty(s), 8 * CL); /* one arrival per consumer warp of the cluster */
        }
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    }
    if (CL > 1)
        mg_cluster_sync();
    else
        __syncthreads();

    if (wg == 2) { /* the producer warp: one lane issues every copy */
        if (lane == 0) {
            tma_prefetch_map(&x_map);
            tma_prefetch_map(&w_map);
            uint32_t it = 0; /* stages filled, over all of this block's tiles */
            for (int t = cluster; t < n_tiles; t += n_clusters) {
                int m0, n0;
                origin(t, &m0, &n0);
                for (int kb = 0; kb < k_steps; kb++, it++) {
                    const uint32_t s = it % MG_ST;
                    if (it >= MG_ST) /* the round before's release */
                        mbar_wait(empty(s), (it / MG_ST - 1) & 1u);
                    const uint32_t st = smem_addr(smem + s * MG_STAGE);
                    mbar_expect_tx(full(s), MG_STAGE);
                    tma_load_2d(st, &x_map, kb * MG_BK, m0, full(s));
                    if (CL == 1) {
                        tma_load_2d(st + MG_A_BYTES, &w_map, kb * MG_BK, n0, full(s));
                        tma_load_2d(st + MG_A_BYTES + MG_B_BYTES / 2, &w_map, kb * MG_BK,
                                    inter + n0, full(s));
                    } else { /* rank 0 the gate box, rank 1 the up box, into both blocks */
                        tma_load_2d_multicast(st + MG_A_BYTES + (uint32_t)rank * (MG_B_BYTES / 2),
                                              &w_map, kb * MG_BK, rank * inter + n0, full(s),
                                              (uint16_t)((1u << CL) - 1));
                    }
                }
            }
        }
    } else { /* a consumer warpgroup: rows 64 wg .. 64 wg + 63 of each tile */
        float d[128];
#pragma unroll
        for (int i = 0; i < 128; i++)
            d[i] = 0.0f; /* overwritten by each tile's first product: keeps the compiler calm */
        const uint64_t d0 = sw128_desc(smem_addr(smem));
        uint32_t it = 0;
        for (int t = cluster; t < n_tiles; t += n_clusters) {
            int m0, n0;
            origin(t, &m0, &n0);
            for (int kb = 0; kb < k_steps; kb++, it++) {
                const uint32_t s = it % MG_ST;
                mbar_wait(full(s), (it / MG_ST) & 1u);
                __syncwarp(); /* converged for the .aligned products */
                const uint64_t da = desc_plus(d0, s * MG_STAGE + (uint32_t)wg * 64 * 128);
                const uint64_t db = desc_plus(d0, s * MG_STAGE + MG_A_BYTES);
                wgmma_settle<128>(d);
                wgmma_fence();
#pragma unroll
                for (int kk = 0; kk < MG_BK / 16; kk++)
                    wgmma_ss_n256<F16>(d, desc_plus(da, (uint32_t)kk * 32),
                                       desc_plus(db, (uint32_t)kk * 32), kb > 0 || kk > 0);
                wgmma_commit();
                wgmma_wait<1>(); /* the step before's products: its stage is read */
                if (kb > 0)
                    mg_release<CL>(empty((it - 1) % MG_ST), lane);
            }
            wgmma_wait<0>();
            wgmma_settle<128>(d);
            mg_release<CL>(empty((it - 1) % MG_ST), lane);
            /* d[4 j + c]: row 16 warp + lane / 4 + 8 (c >> 1), column 8 j + 2 (lane & 3) +
             * (c & 1); gate columns are j < 16, their up columns j + 16. silu(g) u as
             * g u / (1 + e^-g): the reciprocal of infinity (g below -88) is 0 */
            const int r0 = m0 + wg * 64 + warp * 16 + (lane >> 2);
            const size_t col0 = (size_t)n0 + 2 * (size_t)(lane & 3);
#pragma unroll
            for (int half = 0; half < 2; half++) {
                const int r = r0 + 8 * half;
                if (r >= rows)
                    continue;
                uint16_t *out = h + (size_t)r * (size_t)inter + col0;
#pragma unroll
                for (int j = 0; j < 16; j++) {
                    const int i = 4 * j + 2 * half;
                    float v0 = d[i] * d[i + 64] * __frcp_rn(1.0f + __expf(-d[i]));
                    float v1 = d[i + 1] * d[i + 65] * __frcp_rn(1.0f + __expf(-d[i + 1]));
                    uint32_t pair = F16 ? vpk_from_f2<__half>(v0, v1) : vpk_from_f2<bf16>(v0, v1);
                    *reinterpret_cast<uint32_t *>(out + 8 * j) = pair;
                }
            }
        }
    }
    if (CL > 1)
        mg_cluster_sync();
#endif
}

/* Row tiles a group (vpk_gated_mlp_group: benchmarks). */
static int mg_rows_group = 16;

extern "C" void vpk_gated_mlp_group(int row_tiles)
{
    mg_rows_group = row_tiles > 0 ? row_tiles : 16;
}

#define MG_DEVICES 64 /* devices whose figures are kept */

static int current_device(void)
{
    int dev = 0;
    return cudaGetDevice(&dev) == cudaSuccess && dev >= 0 && dev < MG_DEVICES ? dev : -1;
}

/* The current device's SM count (0: unknown), asked once per device. */
static int sm_count(void)
{
    static int sms[MG_DEVICES];
    int dev = current_device(), n = 0;
    if (dev < 0)
        return 0;
    n = __atomic_load_n(&sms[dev], __ATOMIC_RELAXED);
    if (!n && cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) == cudaSuccess)
        __atomic_store_n(&sms[dev], n, __ATOMIC_RELAXED);
    return n;
}

template <bool F16, int CL>
static cudaError_t mg_allow(void)
{
    return cudaFuncSetAttribute(gated_mlp_kernel<F16, CL>,
                                cudaFuncAttributeMaxDynamicSharedMemorySize, MG_SMEM);
}

/* Pairs of blocks that fit on the current device at once (0: none): the persistent grid's
 * size with CL = 2; a grid larger than this would run its last pairs after the others,
 * doubling the time. Asked once per device, by vpk_gated_mlp_setup. */
static int mg_pairs_known[MG_DEVICES]; /* pairs + 1; 0: not asked yet */

static int mg_pairs(void)
{
    int dev = current_device();
    int known = dev < 0 ? 0 : __atomic_load_n(&mg_pairs_known[dev], __ATOMIC_RELAXED);
    return known > 0 ? known - 1 : 0;
}

static cudaError_t mg_ask_pairs(void)
{
    int dev = current_device();
    if (dev < 0 || __atomic_load_n(&mg_pairs_known[dev], __ATOMIC_RELAXED))
        return cudaSuccess;
    cudaLaunchConfig_t cfg = {};
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeClusterDimension;
    attr[0].val.clusterDim.x = 2, attr[0].val.clusterDim.y = 1, attr[0].val.clusterDim.z = 1;
    cfg.gridDim = dim3(2 * 64), cfg.blockDim = dim3(MG_NT), cfg.dynamicSmemBytes = MG_SMEM;
    cfg.attrs = attr, cfg.numAttrs = 1;
    int n = 0;
    cudaError_t rc = cudaOccupancyMaxActiveClusters(&n, gated_mlp_kernel<false, 2>, &cfg);
    if (rc != cudaSuccess)
        return rc;
    __atomic_store_n(&mg_pairs_known[dev], (n > 0 ? n : 0) + 1, __ATOMIC_RELAXED);
    return cudaSuccess;
}

extern "C" cudaError_t vpk_gated_mlp_setup(void)
{
    cudaError_t rc = mg_allow<false, 1>();
    if (rc == cudaSuccess)
        rc = mg_allow<true, 1>();
    if (rc == cudaSuccess)
        rc = mg_allow<false, 2>();
    if (rc == cudaSuccess)
        rc = mg_allow<true, 2>();
    return rc == cudaSuccess ? mg_ask_pairs() : rc;
}

extern "C" int vpk_gated_mlp_pairs(void)
{
    return vpk_attention_wgmma_available() ? mg_pairs() : 0;
}

extern "C" int vpk_gated_mlp_supports(size_t hidden, size_t inter)
{
    /* whole output tiles; 16-byte row pitch for the copies; 32-bit coordinates */
    return vpk_attention_wgmma_available() && encode_tiled() != NULL && inter > 0 &&
           inter % MG_BN == 0 && hidden > 0 && hidden % 8 == 0 && 2 * inter < 0x7fffffff &&
           hidden < 0x7fffffff && sm_count() > 0;
}

template <bool F16, int CL>
static cudaError_t mg_launch(cudaStream_t stream, unsigned blocks, uint16_t *h,
                             const CUtensorMap &x_map, const CUtensorMap &w_map, int rows,
                             int inter, int k_steps, int tiles_m, int tiles_n)
{
    cudaLaunchConfig_t cfg = {};
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeClusterDimension;
    attr[0].val.clusterDim.x = CL, attr[0].val.clusterDim.y = 1, attr[0].val.clusterDim.z = 1;
    cfg.gridDim = dim3(blocks), cfg.blockDim = dim3(MG_NT), cfg.dynamicSmemBytes = MG_SMEM;
    cfg.stream = stream, cfg.attrs = attr, cfg.numAttrs = CL > 1 ? 1 : 0;
    cudaError_t rc = cudaLaunchKernelEx(&cfg, gated_mlp_kernel<F16, CL>, h, x_map, w_map, rows,
                                        inter, k_steps, tiles_m, tiles_n, mg_rows_group);
    return rc == cudaSuccess ? cudaGetLastError() : rc;
}

extern "C" cudaError_t vpk_gated_mlp(cudaStream_t stream, vp_bf16 *h, const vp_bf16 *x,
                                     const vp_bf16 *w13, size_t rows, size_t inter,
                                     size_t hidden, int act, int pairs)
{
    if (rows == 0)
        return cudaSuccess;
    CUtensorMap x_map, w_map;
    /* 16-byte aligned rows for the copies, 4-byte pairs stored; int row and tile counts */
    if (!vpk_gated_mlp_supports(hidden, inter) || rows > 0x7fffff00 ||
        (rows + MG_BM - 1) / MG_BM * (inter / MG_BN) > 0x7fffffff ||
        (uintptr_t)x % 16 || (uintptr_t)w13 % 16 || (uintptr_t)h % 4 ||
        !tensor_map(&x_map, x, hidden, rows, hidden, MG_BK, MG_BM) ||
        !tensor_map(&w_map, w13, hidden, 2 * inter, hidden, MG_BK, MG_BN))
        return cudaErrorInvalidValue;
    int tiles_m = (int)((rows + MG_BM - 1) / MG_BM), tiles_n = (int)(inter / MG_BN);
    int k_steps = (int)((hidden + MG_BK - 1) / MG_BK);
    pairs = pairs ? mg_pairs() : 0;
    uint16_t *out = (uint16_t *)h;
    cudaError_t rc;
    if (pairs > 0) { /* a pair of blocks per two row tiles */
        long tiles = (long)((tiles_m + 1) / 2) * tiles_n;
        unsigned blocks = 2u * (unsigned)(tiles < pairs ? tiles : pairs);
        rc = act == VPK_ACT_F16
                 ? mg_launch<true, 2>(stream, blocks, out, x_map, w_map, (int)rows, (int)inter,
                                      k_steps, tiles_m, tiles_n)
                 : mg_launch<false, 2>(stream, blocks, out, x_map, w_map, (int)rows, (int)inter,
                                       k_steps, tiles_m, tiles_n);
    } else {
        long tiles = (long)tiles_m * tiles_n;
        unsigned blocks = (unsigned)(tiles < sm_count() ? tiles : sm_count());
        rc = act == VPK_ACT_F16
                 ? mg_launch<true, 1>(stream, blocks, out, x_map, w_map, (int)rows, (int)inter,
                                      k_steps, tiles_m, tiles_n)
                 : mg_launch<false, 1>(stream, blocks, out, x_map, w_map, (int)rows, (int)inter,
                                       k_steps, tiles_m, tiles_n);
    }
    (void)cudaGetLastError(); /* a failed launch's error is returned, not left pending */
    return rc;
}
