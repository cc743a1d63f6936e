/* Helpers shared by the attention kernels: tensor-core and asynchronous-copy PTX
 * (mma.sync, ldmatrix, cp.async) and the online softmax over accumulator fragments. */
#ifndef VP_K_MMA_CUH
#define VP_K_MMA_CUH

#include "engine/cuda/k_common.cuh"

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

static __device__ __forceinline__ uint32_t smem_addr(const void *p)
{
    return (uint32_t)__cvta_generic_to_shared(p);
}

/* Four 8x8 bf16 matrices; lane l gives the row address of matrix l / 8, row l % 8. */
static __device__ __forceinline__ void ldmatrix_x4(uint32_t *r, const void *p)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}

static __device__ __forceinline__ void ldmatrix_x4_trans(uint32_t *r, const void *p)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}

/* 16 bytes global -> shared without passing through registers; ok = false writes zeros. */
static __device__ __forceinline__ void cp_async16(void *dst, const void *src, bool ok)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)),
                 "l"(src), "r"(ok ? 16 : 0));
}

static __device__ __forceinline__ void cp_async_commit(void)
{
    asm volatile("cp.async.commit_group;\n" ::);
}

template <int N>
static __device__ __forceinline__ void cp_async_wait(void)
{
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

/* 2^x as one MUFU.EX2 (ex2.approx.ftz): exp2f is four instructions, as it scales
 * arguments below -126 to give subnormal results. Those results cannot matter here: x is
 * a score minus the running maximum, so the row's sum is at least 1 and a term below
 * 2^-126 vanishes in it, and P V's products of such a P are as far below the row's
 * output; results from 2^-126 up are the same bits either way. The softmax runs 32 of
 * these per thread per key tile. */
static __device__ __forceinline__ float exp2_ftz(float x)
{
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

/* Online softmax, once per key tile, for a thread's two rows of an accumulator fragment
 * (r0 and r0 + 8; the 4 threads of a quad share a row). mx: this thread's maxima of the
 * tile's scaled scores (made the quad's); m: the running maxima (updated); base: what
 * this tile's exponents subtract (0 while a row has seen nothing); alpha: the factor for
 * the old sum and output. */
static __device__ __forceinline__ void online_max2(float *mx, float *m, float *base, float *alpha)
{
#pragma unroll
    for (int row = 0; row < 2; row++) {
        mx[row] = fmaxf(mx[row], __shfl_xor_sync(0xffffffffu, mx[row], 1));
        mx[row] = fmaxf(mx[row], __shfl_xor_sync(0xffffffffu, mx[row], 2));
        float mnew = fmaxf(m[row], mx[row]);
        base[row] = mnew == -INFINITY ? 0.0f : mnew;
        /* exactly 1 when the maximum stayed (the wgmma kernel then skips the rescale) */
        alpha[row] = m[row] == mnew ? 1.0f : exp2_ftz(m[row] - base[row]);
        m[row] = mnew;
    }
}

/* 1 / the quad's summed l per row; 0 for a row that saw no key. */
static __device__ __forceinline__ void quad_inverse2(const float *l, float *inv)
{
#pragma unroll
    for (int row = 0; row < 2; row++) {
        float sum = l[row];
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        inv[row] = sum > 0.0f ? 1.0f / sum : 0.0f;
    }
}

/* out[row][col], out[row][col + 1] = a * inv, b * inv (bf16) when row < end. */
static __device__ __forceinline__ void store_pair(bf16 *out, size_t stride, int row, int end,
                                                  size_t col, float a, float b, float inv)
{
    if (row < end)
        *reinterpret_cast<uint32_t *>(out + (size_t)row * stride + col) = pack_bf16(a * inv, b * inv);
}

/* The same in the activation type (F16: fp16, else bf16; the wgmma kernel's output). */
template <bool F16>
static __device__ __forceinline__ void store_pair_t(bf16 *out, size_t stride, int row, int end,
                                                    size_t col, float a, float b, float inv)
{
    if (row < end)
        *reinterpret_cast<uint32_t *>(out + (size_t)row * stride + col) =
            F16 ? vpk_from_f2<__half>(a * inv, b * inv) : pack_bf16(a * inv, b * inv);
}

#endif
