/* Pixel shuffle v2 (downsample 0.5): each 2x2 block of patch cells becomes one token with
 * the four cells' channels side by side, the class token skipped. */
#include "engine/cuda/k_common.cuh"

__global__ void pixel_shuffle_kernel(float *out, const float *x, size_t n_tiles,
                                     size_t tile_tokens, size_t grid, int channels)
{
    size_t half = grid / 2, c = (size_t)channels;
    size_t total = n_tiles * half * half * 4 * c;
    VPK_GRID_STRIDE(i, total)
    {
        size_t ch = i % c, quad = i / c % 4, tok = i / (4 * c);
        size_t tile = tok / (half * half), ij = tok % (half * half), ii = ij / half, jj = ij % half;
        size_t row = 2 * ii + quad / 2, col = 2 * jj + quad % 2;
        out[i] = x[(tile * tile_tokens + 1 + row * grid + col) * c + ch];
    }
}

extern "C" cudaError_t vpk_pixel_shuffle(cudaStream_t stream, float *out, const float *x,
                                         size_t n_tiles, size_t tile_tokens, size_t grid,
                                         int channels)
{
    size_t total = n_tiles * (grid / 2) * (grid / 2) * 4 * (size_t)channels;
    if (total == 0)
        return cudaSuccess;
    pixel_shuffle_kernel<<<vpk_blocks(total, VPK_BLOCK), VPK_BLOCK, 0, stream>>>(
        out, x, n_tiles, tile_tokens, grid, channels);
    return cudaGetLastError();
}
