/* Input embeddings of the language model: the token's embedding row, or for an image
 * token the image feature row it was given; and row gathers (the output positions). */
#include "engine/cuda/k_common.cuh"

__global__ void embed_kernel(float *x, const int32_t *tokens, const int32_t *image_row, size_t n,
                             int hidden, const bf16 *tok_emb, const float *features)
{
    size_t h = (size_t)hidden;
    VPK_GRID_STRIDE(i, n * h)
    {
        size_t t = i / h, d = i % h;
        int32_t r = image_row ? image_row[t] : -1;
        x[i] = r >= 0 ? features[(size_t)r * h + d] : vpk_bf(tok_emb[(size_t)tokens[t] * h + d]);
    }
}

__global__ void gather_kernel(float *dst, const float *src, const int32_t *index, size_t n,
                              int dim)
{
    size_t m = (size_t)dim;
    VPK_GRID_STRIDE(i, n * m)
    dst[i] = src[(size_t)index[i / m] * m + i % m];
}

extern "C" cudaError_t vpk_embed(cudaStream_t stream, float *x, const int32_t *tokens,
                                 const int32_t *image_row, size_t n, int hidden,
                                 const vp_bf16 *tok_emb, const float *features)
{
    if (n == 0)
        return cudaSuccess;
    size_t total = n * (size_t)hidden;
    embed_kernel<<<vpk_blocks(total, VPK_BLOCK), VPK_BLOCK, 0, stream>>>(
        x, tokens, image_row, n, hidden, (const bf16 *)tok_emb, features);
    return cudaGetLastError();
}

extern "C" cudaError_t vpk_gather_rows(cudaStream_t stream, float *dst, const float *src,
                                       const int32_t *index, size_t n, int dim)
{
    if (n == 0)
        return cudaSuccess;
    size_t total = n * (size_t)dim;
    gather_kernel<<<vpk_blocks(total, VPK_BLOCK), VPK_BLOCK, 0, stream>>>(dst, src, index, n,
                                                                           dim);
    return cudaGetLastError();
}
