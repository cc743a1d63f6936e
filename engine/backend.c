/* Backend lookup by name, and the consistency check every backend runs on a batch
 * before computing it. */
#include <stdbool.h>
#include <string.h>

#include "engine/backend.h"

#ifdef VP_WITH_CUDA
extern const vp_backend_ops vp_backend_cuda;
#endif

const vp_backend_ops *vp_backend_find(const char *name)
{
    if (!name)
        return NULL;
    if (!strcmp(name, "cpu"))
        return &vp_backend_cpu;
#ifdef VP_WITH_CUDA
    if (!strcmp(name, "cuda"))
        return &vp_backend_cuda;
#endif
    return NULL;
}

size_t vp_kv_cache_auto_bytes(size_t free_bytes, size_t row_bytes)
{
    if (row_bytes == 0)
        return 0;
    size_t rows = free_bytes / 2 / row_bytes;
    if (rows > VP_KV_CACHE_AUTO_MAX_ROWS)
        rows = VP_KV_CACHE_AUTO_MAX_ROWS;
    return rows * row_bytes;
}

/* The cached sequences seqs[0..n_cached_seqs) tile the key rows [n_tokens, n_tokens +
 * n_cached_tokens) in order, with no prefix; the others tile the token array in order:
 * the first starts at token 0, each starts where the previous ends, the last ends at
 * n_tokens. A prefix sequence comes earlier and has no prefix itself. Positions are in
 * [0, rope_len). */
static int validate_seqs(const vp_batch *b, vp_error *err)
{
    if (b->n_cached_seqs > b->n_seqs || (b->n_cached_tokens && !b->n_cached_seqs))
        return vp_fail(err, VP_ERR_BAD_REQUEST, "seqs",
                       "%zu cached sequences of %zu, for %zu cached rows", b->n_cached_seqs,
                       b->n_seqs, b->n_cached_tokens);
    size_t next = b->n_tokens, end = b->n_tokens + b->n_cached_tokens;
    for (size_t s = 0; s < b->n_seqs; s++) {
        const vp_seq *sq = &b->seqs[s];
        bool cached = s < b->n_cached_seqs;
        if (s == b->n_cached_seqs) {
            if (next != end)
                return vp_fail(err, VP_ERR_BAD_REQUEST, "seqs",
                               "cached sequences cover %zu of the %zu cached rows",
                               next - b->n_tokens, b->n_cached_tokens);
            next = 0, end = b->n_tokens;
        }
        if (sq->start != next)
            return vp_fail(err, VP_ERR_BAD_REQUEST, "seqs",
                           "sequence %zu starts at token %zu, expected %zu (sequences must tile "
                           "the tokens in order)", s, sq->start, next);
        if (sq->len == 0 || sq->len > end - sq->start)
            return vp_fail(err, VP_ERR_BAD_REQUEST, "seqs",
                           "sequence %zu has length %zu from token %zu, outside 1..%zu", s,
                           sq->len, sq->start, end - sq->start);
        next = sq->start + sq->len;
        size_t seen = sq->len;
        if (sq->prefix_seq >= 0 && !cached) {
            if ((size_t)sq->prefix_seq >= s)
                return vp_fail(err, VP_ERR_BAD_REQUEST, "seqs",
                               "sequence %zu has prefix_seq %d, which is not an earlier sequence",
                               s, sq->prefix_seq);
            const vp_seq *p = &b->seqs[sq->prefix_seq];
            if (p->prefix_seq >= 0)
                return vp_fail(err, VP_ERR_BAD_REQUEST, "seqs",
                               "sequence %zu uses prefix sequence %d, which has a prefix itself", s,
                               sq->prefix_seq);
            seen += p->len;
        } else if (sq->prefix_seq != -1) {
            return vp_fail(err, VP_ERR_BAD_REQUEST, "seqs",
                           "sequence %zu has prefix_seq %d (must be -1%s)", s, sq->prefix_seq,
                           cached ? ": it is cached" : " or an earlier sequence");
        }
        if (sq->rope_len < seen)
            return vp_fail(err, VP_ERR_BAD_REQUEST, "seqs",
                           "sequence %zu has rope_len %zu, less than the %zu tokens it sees", s,
                           sq->rope_len, seen);
        for (size_t t = sq->start; t < next && !cached; t++)
            if (b->positions[t] < 0 || (size_t)b->positions[t] >= sq->rope_len)
                return vp_fail(err, VP_ERR_BAD_REQUEST, "positions",
                               "token %zu of sequence %zu has position %d, outside 0..%zu", t, s,
                               b->positions[t], sq->rope_len - 1);
    }
    if (b->n_seqs == b->n_cached_seqs && b->n_cached_tokens)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "seqs", "cached rows but no computed sequence");
    if (next != end)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "seqs",
                       "sequences cover %zu of the %zu tokens", next, end);
    return 0;
}

static bool overlaps(size_t a, size_t alen, size_t b, size_t blen)
{
    return a < b + blen && b < a + alen;
}

/* Loads fill every cached row exactly once; stores copy disjoint computed rows to disjoint
 * slots that no load reads (so loads + stored rows <= all rows, the CUDA copy map's size). */
static int validate_kv(const vp_batch *b, vp_error *err)
{
    if ((b->n_kv_loads && !b->kv_loads) || (b->n_kv_stores && !b->kv_stores))
        return vp_fail(err, VP_ERR_BAD_REQUEST, "kv_loads", "KV copies without their list");
    size_t loaded = 0;
    for (size_t i = 0; i < b->n_kv_loads; i++) {
        const vp_kv_copy *c = &b->kv_loads[i];
        if (c->len == 0 || c->row < b->n_tokens || c->row - b->n_tokens > b->n_cached_tokens ||
            c->len > b->n_tokens + b->n_cached_tokens - c->row)
            return vp_fail(err, VP_ERR_BAD_REQUEST, "kv_loads",
                           "KV load %zu (rows %zu+%zu) is outside the cached rows %zu..%zu", i,
                           c->row, c->len, b->n_tokens, b->n_tokens + b->n_cached_tokens);
        for (size_t k = 0; k < i; k++)
            if (overlaps(c->row, c->len, b->kv_loads[k].row, b->kv_loads[k].len))
                return vp_fail(err, VP_ERR_BAD_REQUEST, "kv_loads",
                               "KV loads %zu and %zu fill the same rows", k, i);
        loaded += c->len;
    }
    if (loaded != b->n_cached_tokens)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "kv_loads",
                       "KV loads fill %zu of the %zu cached rows", loaded, b->n_cached_tokens);
    /* a pass without outputs runs no layer: stores would silently not happen */
    if (b->n_kv_stores && (b->n_out == 0 || b->n_tokens == 0))
        return vp_fail(err, VP_ERR_BAD_REQUEST, "kv_stores",
                       "KV stores in a batch without outputs (no layer runs)");
    for (size_t i = 0; i < b->n_kv_stores; i++) {
        const vp_kv_copy *c = &b->kv_stores[i];
        if (c->len == 0 || c->row >= b->n_tokens || c->len > b->n_tokens - c->row)
            return vp_fail(err, VP_ERR_BAD_REQUEST, "kv_stores",
                           "KV store %zu (rows %zu+%zu) is outside the %zu computed tokens", i,
                           c->row, c->len, b->n_tokens);
        for (size_t k = 0; k < i; k++)
            if (overlaps(c->slot, c->len, b->kv_stores[k].slot, b->kv_stores[k].len) ||
                overlaps(c->row, c->len, b->kv_stores[k].row, b->kv_stores[k].len))
                return vp_fail(err, VP_ERR_BAD_REQUEST, "kv_stores",
                               "KV stores %zu and %zu copy the same rows", k, i);
        for (size_t k = 0; k < b->n_kv_loads; k++)
            if (overlaps(c->slot, c->len, b->kv_loads[k].slot, b->kv_loads[k].len))
                return vp_fail(err, VP_ERR_BAD_REQUEST, "kv_stores",
                               "KV store %zu writes cache rows that load %zu reads", i, k);
    }
    return 0;
}

int vp_batch_check_kv_slots(const vp_batch *b, size_t kv_cache_rows, vp_error *err)
{
    const vp_kv_copy *lists[2] = {b->kv_loads, b->kv_stores};
    size_t counts[2] = {b->n_kv_loads, b->n_kv_stores};
    for (int l = 0; l < 2; l++)
        for (size_t i = 0; i < counts[l]; i++)
            if (lists[l][i].slot > kv_cache_rows || lists[l][i].len > kv_cache_rows - lists[l][i].slot)
                return vp_fail(err, VP_ERR_BAD_REQUEST, l ? "kv_stores" : "kv_loads",
                               "KV %s %zu (cache rows %zu+%zu) is outside the backend's %zu "
                               "cache rows", l ? "store" : "load", i, lists[l][i].slot,
                               lists[l][i].len, kv_cache_rows);
    return 0;
}

int vp_batch_validate(const vp_batch *b, size_t n_feature_rows, size_t vocab, vp_error *err)
{
    if (!b)
        return vp_fail(err, VP_ERR_INTERNAL, "", "no batch");
    if (b->n_tiles && !b->tiles == !b->tiles_u8)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "tiles", "%zu tiles but %s", b->n_tiles,
                       b->tiles ? "both float and 8-bit tile data" : "no tile data");
    for (size_t t = 0; b->tiles_u8 && t < b->n_tiles; t++)
        if (!b->tiles_u8[t])
            return vp_fail(err, VP_ERR_BAD_REQUEST, "tiles", "8-bit tile %zu has no data", t);
    if (b->n_tokens && (!b->tokens || !b->positions || !b->seqs))
        return vp_fail(err, VP_ERR_BAD_REQUEST, "tokens",
                       "%zu tokens but tokens, positions or seqs is missing", b->n_tokens);
    if (b->n_out && !b->out_index)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "out_index", "%zu outputs but no out_index",
                       b->n_out);
    if (b->n_seqs && !b->seqs)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "seqs", "%zu sequences but no seqs", b->n_seqs);
    for (size_t t = 0; t < b->n_tokens; t++) {
        if (b->tokens[t] < 0 || (size_t)b->tokens[t] >= vocab)
            return vp_fail(err, VP_ERR_BAD_REQUEST, "tokens",
                           "token %zu has id %d, outside the vocabulary 0..%zu", t, b->tokens[t],
                           vocab - 1);
        int32_t r = b->image_row ? b->image_row[t] : -1;
        if (r < -1 || (r >= 0 && (size_t)r >= n_feature_rows))
            return vp_fail(err, VP_ERR_BAD_REQUEST, "image_row",
                           "token %zu takes image feature row %d, but the batch has %zu rows "
                           "(-1 = none)", t, r, n_feature_rows);
    }
    if (validate_seqs(b, err) != 0 || validate_kv(b, err) != 0)
        return -1;
    for (size_t i = 0; i < b->n_out; i++)
        if (b->out_index[i] < 0 || (size_t)b->out_index[i] >= b->n_tokens)
            return vp_fail(err, VP_ERR_BAD_REQUEST, "out_index",
                           "out_index[%zu] = %d is outside the %zu tokens", i, b->out_index[i],
                           b->n_tokens);
    if (b->plus_id < 0 || (size_t)b->plus_id >= vocab || b->minus_id < 0 ||
        (size_t)b->minus_id >= vocab)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "plus_id",
                       "plus_id %d or minus_id %d is outside the vocabulary 0..%zu", b->plus_id,
                       b->minus_id, vocab - 1);
    return 0;
}
