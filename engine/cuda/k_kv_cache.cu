/* The prefix KV cache (CPU twin: kv_cache_copy in engine/cpu/cpu_language.c): one
 * layer's keys and values moved between the qkv rows of a pass and the cache rows, after
 * RoPE. A cache row is [2][kv_heads][head_dim] bf16: the keys of every group, then the
 * values. map[i] = {qkv row, cache row}: the first n_loads fill qkv rows from the cache,
 * the rest copy qkv rows into it (the engine keeps the two sets of cache rows apart). */
#include "engine/cuda/k_common.cuh"

/* One block per mapped row; 16-byte vectors when the layout allows, else elements. */
__global__ void kv_copy_kernel(bf16 *qkv, vpk_attn_layout L, bf16 *cache, const int32_t *map,
                               int n_loads, int vec)
{
    int i = blockIdx.x, groups = L.heads / L.q_per_kv, hd = L.head_dim;
    bool load = i < n_loads;
    bf16 *row = qkv + (size_t)map[2 * i] * L.row_stride;
    bf16 *crow = cache + (size_t)map[2 * i + 1] * (size_t)(2 * groups * hd);
    int per = vec ? 8 : 1, chunks = 2 * groups * hd / per;
    for (int c = threadIdx.x; c < chunks; c += blockDim.x) {
        int e = c * per, is_v = e / (groups * hd), g = e % (groups * hd) / hd, d = e % hd;
        bf16 *q = row + (size_t)g * L.group_stride + (is_v ? L.v_base : L.k_base) + d;
        bf16 *k = crow + e;
        if (vec) {
            if (load)
                *(uint4 *)q = *(const uint4 *)k;
            else
                *(uint4 *)k = *(const uint4 *)q;
        } else if (load) {
            *q = *k;
        } else {
            *k = *q;
        }
    }
}

extern "C" cudaError_t vpk_kv_copy(cudaStream_t stream, vp_bf16 *qkv, const vpk_attn_layout *L,
                                   vp_bf16 *cache, const int32_t *map, size_t n_loads,
                                   size_t n_map)
{
    if (n_map == 0)
        return cudaSuccess;
    if (n_map > 0x7fffffff || L->q_per_kv <= 0 || L->heads % L->q_per_kv)
        return cudaErrorInvalidValue;
    /* vectors need every key/value run to start on 8 elements and 16-byte aligned bases */
    int vec = L->head_dim % 8 == 0 && L->row_stride % 8 == 0 && L->group_stride % 8 == 0 &&
              L->k_base % 8 == 0 && L->v_base % 8 == 0 && (uintptr_t)qkv % 16 == 0 &&
              (uintptr_t)cache % 16 == 0;
    kv_copy_kernel<<<(unsigned)n_map, 128, 0, stream>>>((bf16 *)qkv, *L, (bf16 *)cache, map,
                                                        (int)n_loads, vec);
    return cudaGetLastError();
}
