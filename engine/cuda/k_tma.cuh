/* The tensor memory accelerator's copies and the mbarriers that order them, for the
 * warp-specialised Hopper kernels (k_attention_tma.cu, k_mlp_gated.cu): one producer
 * lane issues cp.async.bulk.tensor copies of 128-byte swizzled boxes, each stage's
 * "full" mbarrier counts the bytes landing, its "empty" one the consumers' releases. A
 * wait still unmet after TMA_WAIT_LIMIT_NS of the GPU's clock traps: a pipeline bug
 * fails the launch instead of hanging (a count of tries would not bound it: a failed
 * try_wait may suspend the thread for a time the hardware chooses). */
#ifndef VP_K_TMA_CUH
#define VP_K_TMA_CUH

#include <cuda.h>

#include "engine/cuda/k_wgmma.cuh"

#define TMA_WAIT_LIMIT_NS 2000000000ull /* one mbarrier wait: legitimate ones last microseconds */

#if VPK_HAVE_WGMMA
static __device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count)
{
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}

/* The producer's arrival, announcing the bytes its copies will complete on bar. */
static __device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes)
{
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar),
                 "r"(bytes)
                 : "memory");
}

/* A consumer warp's arrival, by its lane 0: predicated inside the instruction rather
 * than branched around, so the warp stays converged for the .aligned products after it. */
static __device__ __forceinline__ void mbar_arrive_lane0(uint32_t bar, int lane)
{
    asm volatile("{\n.reg .pred p;\nsetp.eq.s32 p, %1, 0;\n"
                 "@p mbarrier.arrive.shared::cta.b64 _, [%0];\n}\n" ::"r"(bar),
                 "r"(lane)
                 : "memory");
}

static __device__ __forceinline__ uint64_t global_ns(void)
{
    uint64_t t;
    asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(t));
    return t;
}

/* Until bar's phase of this parity has completed. */
static __device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity)
{
    uint32_t done = 0;
    uint64_t since = 0;
    for (;;) {
        asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
                     "selp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(done)
                     : "r"(bar), "r"(parity)
                     : "memory");
        if (done)
            return;
        uint64_t now = global_ns();
        if (!since)
            since = now;
        else if (now - since > TMA_WAIT_LIMIT_NS)
            __trap();
    }
}

/* The tensor map's descriptor fetched ahead of the first copy that uses it. */
static __device__ __forceinline__ void tma_prefetch_map(const CUtensorMap *map)
{
    asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<uint64_t>(map)) : "memory");
}

/* The box at (c0 columns, c1 rows) of map into shared memory at dst (1024-aligned),
 * completing its bytes on bar. */
static __device__ __forceinline__ void tma_load_2d(uint32_t dst, const CUtensorMap *map, int c0,
                                                   int c1, uint32_t bar)
{
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes "
                 "[%0], [%1, {%3, %4}], [%2];\n" ::"r"(dst),
                 "l"(reinterpret_cast<uint64_t>(map)), "r"(bar), "r"(c0), "r"(c1)
                 : "memory");
}
#endif

/* cuTensorMapEncodeTiled from the driver, found once through the runtime (no -lcuda). */
typedef CUresult (*encode_tiled_fn)(CUtensorMap *, CUtensorMapDataType, cuuint32_t, void *,
                                    const cuuint64_t *, const cuuint64_t *, const cuuint32_t *,
                                    const cuuint32_t *, CUtensorMapInterleave,
                                    CUtensorMapSwizzle, CUtensorMapL2promotion,
                                    CUtensorMapFloatOOBfill);

static encode_tiled_fn find_encode_tiled(void)
{
    void *p = NULL;
    cudaDriverEntryPointQueryResult q;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault,
                                         &q) == cudaSuccess &&
        q == cudaDriverEntryPointSuccess)
        return (encode_tiled_fn)p;
    return NULL;
}

/* asked once: a function-local static is initialised once, whatever the threads */
static encode_tiled_fn encode_tiled(void)
{
    static const encode_tiled_fn fn = find_encode_tiled();
    return fn;
}

/* A [rows][cols] matrix of 16-bit values, row pitch `pitch` elements, in boxes of
 * box_cols x box_rows written 128-byte swizzled; rows and columns past the end read as
 * zeros. */
static bool tensor_map(CUtensorMap *map, const void *base, size_t cols, size_t rows, size_t pitch,
                       int box_cols, int box_rows)
{
    encode_tiled_fn enc = encode_tiled();
    if (!enc)
        return false;
    cuuint64_t dim[2] = {cols, rows}, stride[1] = {pitch * 2};
    cuuint32_t box[2] = {(cuuint32_t)box_cols, (cuuint32_t)box_rows}, step[2] = {1, 1};
    return enc(map, CU_TENSOR_MAP_DATA_TYPE_UINT16, 2, const_cast<void *>(base), dim, stride, box,
               step, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
               CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) ==
           CUDA_SUCCESS;
}

#endif
