/* Attention work lists for the CUDA kernels: packed causal sequences with shared
 * prefixes (language model) and bidirectional tiles (vision encoder). */
#include <limits.h>
#include <stdlib.h>

#include "engine/cuda_plan/cuda_plan.h"

size_t vp_attn_causal_items_max(size_t n_tokens, size_t n_seqs, int bq)
{
    /* sum over sequences of ceil(len / bq) <= n_tokens / bq + n_seqs */
    return bq > 0 ? n_tokens / (size_t)bq + n_seqs : 0;
}

/* Longest first; equal costs in token order, so the list is deterministic. */
static int by_cost_desc(const void *pa, const void *pb)
{
    const vp_attn_item *a = pa, *b = pb;
    if (a->keys != b->keys)
        return a->keys > b->keys ? -1 : 1;
    return (a->q_begin > b->q_begin) - (a->q_begin < b->q_begin);
}

int vp_attn_plan_causal(const vp_seq *seqs, size_t n_seqs, size_t n_tokens, int bq,
                        vp_attn_item *items, size_t cap, size_t *n_items, vp_error *err)
{
    *n_items = 0;
    if (bq <= 0)
        return vp_fail(err, VP_ERR_INTERNAL, "", "attention tile height %d must be positive", bq);
    if (n_tokens > (size_t)INT32_MAX - (size_t)bq)
        return vp_fail(err, VP_ERR_TOO_LARGE, "n_tokens",
                       "%zu tokens do not fit the attention kernels' 32-bit indices", n_tokens);
    size_t n = 0;
    for (size_t s = 0; s < n_seqs; s++) {
        const vp_seq *sq = &seqs[s];
        if (sq->start >= n_tokens) /* a cached prefix: keys only */
            continue;
        int32_t full_begin = 0, full_end = 0;
        if (sq->prefix_seq >= 0) {
            const vp_seq *p = &seqs[sq->prefix_seq];
            full_begin = (int32_t)p->start;
            full_end = (int32_t)(p->start + p->len);
        }
        for (size_t q = 0; q < sq->len; q += (size_t)bq) {
            if (n == cap)
                return vp_fail(err, VP_ERR_INTERNAL, "",
                               "attention work list full (%zu items) at sequence %zu", cap, s);
            size_t q_end = q + (size_t)bq < sq->len ? q + (size_t)bq : sq->len;
            vp_attn_item *it = &items[n++];
            it->q_begin = (int32_t)(sq->start + q);
            it->q_end = (int32_t)(sq->start + q_end);
            it->full_begin = full_begin;
            it->full_end = full_end;
            it->causal_begin = (int32_t)sq->start;
            it->keys = (full_end - full_begin) + (int32_t)q_end;
        }
    }
    qsort(items, n, sizeof *items, by_cost_desc);
    *n_items = n;
    return 0;
}

size_t vp_attn_tile_items(size_t n_tiles, size_t tile_tokens, int bq)
{
    if (bq <= 0)
        return 0;
    return n_tiles * ((tile_tokens + (size_t)bq - 1) / (size_t)bq);
}

int vp_attn_plan_tiles(size_t n_tiles, size_t tile_tokens, int bq, vp_attn_item *items,
                       size_t cap, size_t *n_items, vp_error *err)
{
    *n_items = 0;
    if (bq <= 0 || tile_tokens == 0)
        return vp_fail(err, VP_ERR_INTERNAL, "", "bad tile attention shape (%zu tokens, bq %d)",
                       tile_tokens, bq);
    if (n_tiles > (size_t)INT32_MAX / tile_tokens)
        return vp_fail(err, VP_ERR_TOO_LARGE, "n_tiles",
                       "%zu tiles of %zu tokens do not fit 32-bit indices", n_tiles, tile_tokens);
    size_t need = vp_attn_tile_items(n_tiles, tile_tokens, bq);
    if (need > cap)
        return vp_fail(err, VP_ERR_INTERNAL, "", "tile attention needs %zu items, room for %zu",
                       need, cap);
    size_t n = 0;
    for (size_t t = 0; t < n_tiles; t++) {
        int32_t begin = (int32_t)(t * tile_tokens), end = (int32_t)((t + 1) * tile_tokens);
        for (int32_t q = begin; q < end; q += bq) {
            vp_attn_item *it = &items[n++];
            it->q_begin = q;
            it->q_end = q + bq < end ? q + bq : end;
            it->full_begin = begin;
            it->full_end = end;
            it->causal_begin = -1;
            it->keys = end - begin;
        }
    }
    *n_items = n;
    return 0;
}

int vp_attn_token_ranges_causal(const vp_seq *seqs, size_t n_seqs, size_t n_tokens,
                                int32_t *ranges, vp_error *err)
{
    if (n_tokens > (size_t)INT32_MAX)
        return vp_fail(err, VP_ERR_TOO_LARGE, "n_tokens",
                       "%zu tokens do not fit the attention kernels' 32-bit indices", n_tokens);
    for (size_t s = 0; s < n_seqs; s++) {
        const vp_seq *sq = &seqs[s];
        if (sq->start >= n_tokens)
            continue;
        const vp_seq *p = sq->prefix_seq >= 0 ? &seqs[sq->prefix_seq] : NULL;
        for (size_t t = sq->start; t < sq->start + sq->len; t++) {
            ranges[3 * t] = p ? (int32_t)p->start : 0;
            ranges[3 * t + 1] = p ? (int32_t)(p->start + p->len) : 0;
            ranges[3 * t + 2] = (int32_t)sq->start;
        }
    }
    return 0;
}

void vp_attn_token_ranges_tiles(size_t n_tiles, size_t tile_tokens, int32_t *ranges)
{
    for (size_t t = 0; t < n_tiles * tile_tokens; t++) {
        size_t begin = t / tile_tokens * tile_tokens;
        ranges[3 * t] = (int32_t)begin;
        ranges[3 * t + 1] = (int32_t)(begin + tile_tokens);
        ranges[3 * t + 2] = -1;
    }
}
