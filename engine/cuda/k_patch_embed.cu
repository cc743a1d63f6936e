/* Patch embedding as unfold + matrix product (the product runs in cuBLASLt): im2col
 * rounds each pixel to bf16 (the reference casts pixel values to bf16 before the
 * encoder; in fp16 activations the bf16 value is stored exactly), then the class token
 * and position embeddings are added. */
#include "engine/cuda/k_common.cuh"

template <typename T>
static __device__ __forceinline__ T pixel(float v)
{
    return vpk_from_f<T>(__bfloat162float(__float2bfloat16_rn(v)));
}

/* Where patch value i comes from: tile, channel, row, column; false for the zero
 * padding columns from channels * patch^2 to kpad. */
struct patch_src {
    size_t tile, c, y, x;
};

static __device__ __forceinline__ bool patch_source(size_t i, size_t g, int patch, size_t k,
                                                    size_t kpad, patch_src *s)
{
    size_t col = i % kpad, cell = i / kpad;
    if (col >= k)
        return false;
    size_t pp = (size_t)patch * patch;
    s->tile = cell / (g * g);
    s->c = col / pp;
    s->y = cell % (g * g) / g * patch + col / patch % patch;
    s->x = cell % g * patch + col % patch;
    return true;
}

template <typename T>
__global__ void im2col_kernel(T *patches, const float *tiles, size_t n_tiles, int channels,
                              int size, int patch, size_t kpad)
{
    size_t g = (size_t)(size / patch), k = (size_t)channels * patch * patch;
    VPK_GRID_STRIDE(i, n_tiles * g * g * kpad)
    {
        patch_src s;
        float v = patch_source(i, g, patch, k, kpad, &s)
                      ? tiles[((s.tile * channels + s.c) * size + s.y) * size + s.x]
                      : 0.0f;
        patches[i] = pixel<T>(v);
    }
}

/* The same from 8-bit tiles [n_tiles][size][size][3] through the normalisation table
 * (vp_tiles_norm_table: table[c * 256 + byte]), so the floats match the CPU's exactly. */
template <typename T>
__global__ void im2col_u8_kernel(T *patches, const uint8_t *tiles, const float *table,
                                 size_t n_tiles, int size, int patch, size_t kpad)
{
    size_t g = (size_t)(size / patch), k = 3 * (size_t)patch * patch;
    VPK_GRID_STRIDE(i, n_tiles * g * g * kpad)
    {
        patch_src s;
        float v = patch_source(i, g, patch, k, kpad, &s)
                      ? table[s.c * 256 + tiles[((s.tile * size + s.y) * size + s.x) * 3 + s.c]]
                      : 0.0f;
        patches[i] = pixel<T>(v);
    }
}

__global__ void assemble_kernel(float *x, const float *emb, const float *cls, const float *pos,
                                size_t n_tiles, size_t grid_tokens, int hidden)
{
    size_t tt = grid_tokens + 1, total = n_tiles * tt * (size_t)hidden;
    VPK_GRID_STRIDE(i, total)
    {
        size_t d = i % (size_t)hidden, row = i / (size_t)hidden, tile = row / tt, r = row % tt;
        float base = r == 0 ? cls[d] : emb[(tile * grid_tokens + r - 1) * (size_t)hidden + d];
        x[i] = __fadd_rn(base, pos[r * (size_t)hidden + d]);
    }
}

extern "C" cudaError_t vpk_im2col(cudaStream_t stream, vp_bf16 *patches, const float *tiles,
                                  size_t n_tiles, int channels, int size, int patch, size_t kpad,
                                  int act)
{
    size_t g = (size_t)(size / patch), total = n_tiles * g * g * kpad;
    if (total == 0)
        return cudaSuccess;
    if (act == VPK_ACT_F16)
        im2col_kernel<__half><<<vpk_blocks(total, VPK_BLOCK), VPK_BLOCK, 0, stream>>>(
            (__half *)patches, tiles, n_tiles, channels, size, patch, kpad);
    else
        im2col_kernel<bf16><<<vpk_blocks(total, VPK_BLOCK), VPK_BLOCK, 0, stream>>>(
            (bf16 *)patches, tiles, n_tiles, channels, size, patch, kpad);
    return cudaGetLastError();
}

extern "C" cudaError_t vpk_im2col_u8(cudaStream_t stream, vp_bf16 *patches, const uint8_t *tiles,
                                     const float *table, size_t n_tiles, int size, int patch,
                                     size_t kpad, int act)
{
    size_t g = (size_t)(size / patch), total = n_tiles * g * g * kpad;
    if (total == 0)
        return cudaSuccess;
    if (act == VPK_ACT_F16)
        im2col_u8_kernel<__half><<<vpk_blocks(total, VPK_BLOCK), VPK_BLOCK, 0, stream>>>(
            (__half *)patches, tiles, table, n_tiles, size, patch, kpad);
    else
        im2col_u8_kernel<bf16><<<vpk_blocks(total, VPK_BLOCK), VPK_BLOCK, 0, stream>>>(
            (bf16 *)patches, tiles, table, n_tiles, size, patch, kpad);
    return cudaGetLastError();
}

extern "C" cudaError_t vpk_vit_assemble(cudaStream_t stream, float *x, const float *emb,
                                        const float *cls, const float *pos, size_t n_tiles,
                                        size_t grid_tokens, int hidden)
{
    size_t total = n_tiles * (grid_tokens + 1) * (size_t)hidden;
    if (total == 0)
        return cudaSuccess;
    assemble_kernel<<<vpk_blocks(total, VPK_BLOCK), VPK_BLOCK, 0, stream>>>(
        x, emb, cls, pos, n_tiles, grid_tokens, hidden);
    return cudaGetLastError();
}
