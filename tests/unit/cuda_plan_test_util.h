/* Random packed batches shaped like engine/pack.c makes them (prefix sequences followed
 * by the sequences that use them, standalone sequences, positions continuing after a
 * prefix), for the CUDA planning tests and the GPU checks (tests/gpu). */
#ifndef VP_CUDA_PLAN_TEST_UTIL_H
#define VP_CUDA_PLAN_TEST_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend.h"

typedef struct test_batch {
    vp_batch b;
    vp_seq *seqs;        /* [n_seqs] */
    int32_t *tokens;     /* [n_tokens] */
    int32_t *positions;  /* [n_tokens] */
    int32_t *image_row;  /* [n_tokens] */
    int32_t *out_index;  /* [n_out] */
    vp_kv_copy *kv;      /* [n_seqs] prefix KV cache copies, or NULL */
} test_batch;

static uint64_t tb_state = 88172645463325252ull;

static inline uint64_t tb_next(void)
{
    tb_state ^= tb_state << 13;
    tb_state ^= tb_state >> 7;
    tb_state ^= tb_state << 17;
    return tb_state;
}

/* Uniform in [lo, hi]. */
static inline size_t tb_range(size_t lo, size_t hi)
{
    return lo + (size_t)(tb_next() % (uint64_t)(hi - lo + 1));
}

static inline void *tb_alloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        fprintf(stderr, "out of memory in test\n");
        exit(2);
    }
    return p;
}

static inline void test_batch_free(test_batch *t)
{
    free(t->seqs);
    free(t->tokens);
    free(t->positions);
    free(t->image_row);
    free(t->out_index);
    free(t->kv);
    memset(t, 0, sizeof *t);
}

/* groups of (optional prefix + users) or standalone sequences; lengths 1..max_len;
 * token ids in [0, vocab); image rows on some prefix tokens (n_rows feature rows);
 * outputs: a few tokens of every sequence that is not a prefix. */
static inline void test_batch_make(test_batch *t, size_t groups, size_t max_len, int32_t vocab,
                                   size_t n_rows)
{
    memset(t, 0, sizeof *t);
    size_t cap_seqs = groups * 5, cap_tok = cap_seqs * max_len;
    t->seqs = tb_alloc(cap_seqs, sizeof *t->seqs);
    t->tokens = tb_alloc(cap_tok, sizeof *t->tokens);
    t->positions = tb_alloc(cap_tok, sizeof *t->positions);
    t->image_row = tb_alloc(cap_tok, sizeof *t->image_row);
    t->out_index = tb_alloc(cap_tok, sizeof *t->out_index);
    size_t n = 0, ns = 0, no = 0, row = 0;
    for (size_t g = 0; g < groups; g++) {
        int with_prefix = tb_range(0, 9) < 7;
        size_t users = tb_range(1, 4);
        int32_t prefix = -1;
        size_t plen = 0;
        if (with_prefix) {
            plen = tb_range(1, max_len);
            prefix = (int32_t)ns;
            t->seqs[ns++] = (vp_seq){.start = n, .len = plen, .prefix_seq = -1, .rope_len = plen};
            for (size_t k = 0; k < plen; k++, n++) {
                t->positions[n] = (int32_t)k;
                t->image_row[n] = n_rows && row < n_rows && tb_range(0, 3) == 0 ? (int32_t)row++ : -1;
            }
        }
        for (size_t u = 0; u < users; u++) {
            size_t len = tb_range(1, max_len);
            vp_seq *s = &t->seqs[ns++];
            *s = (vp_seq){.start = n, .len = len, .prefix_seq = prefix, .rope_len = plen + len};
            if (prefix >= 0 && t->seqs[prefix].rope_len < plen + len)
                t->seqs[prefix].rope_len = plen + len;
            for (size_t k = 0; k < len; k++, n++) {
                t->positions[n] = (int32_t)(plen + k);
                t->image_row[n] = -1;
                if (k + 1 == len || tb_range(0, 7) == 0)
                    t->out_index[no++] = (int32_t)n;
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        t->tokens[i] = (int32_t)(tb_next() % (uint64_t)vocab);
    t->b = (vp_batch){.n_tokens = n, .tokens = t->tokens, .positions = t->positions,
                      .image_row = n_rows ? t->image_row : NULL, .n_seqs = ns, .seqs = t->seqs,
                      .n_out = no, .out_index = t->out_index, .plus_id = 0,
                      .minus_id = vocab > 1 ? 1 : 0};
}

/* The prefix KV cache's two passes over in's sequences: *store is in itself plus stores
 * of every prefix sequence (prefix k in the cache rows after the earlier prefixes', its
 * second half first: two runs out of order, as a prefix cache entry's extension chain
 * loads); *load is in with those prefixes cached: no prefix tokens, the cached sequences
 * first, kv_loads from the same cache rows, no tiles (only prefix tokens take image rows).
 * Both must give in's logits. Returns the cache rows used. */
static inline size_t test_batch_cache_prefixes(const test_batch *in, test_batch *store,
                                               test_batch *load)
{
    const vp_batch *b = &in->b;
    size_t n = b->n_tokens, ns = b->n_seqs;
    bool *is_prefix = tb_alloc(ns, sizeof *is_prefix);
    for (size_t s = 0; s < ns; s++)
        if (b->seqs[s].prefix_seq >= 0)
            is_prefix[b->seqs[s].prefix_seq] = true;
    memset(store, 0, sizeof *store);
    memset(load, 0, sizeof *load);
    store->seqs = tb_alloc(ns, sizeof(vp_seq)), load->seqs = tb_alloc(ns, sizeof(vp_seq));
    store->kv = tb_alloc(2 * ns, sizeof(vp_kv_copy)), load->kv = tb_alloc(2 * ns, sizeof(vp_kv_copy));
    int32_t **arrays[2][4] = {{&store->tokens, &store->positions, &store->image_row, &store->out_index},
                              {&load->tokens, &load->positions, &load->image_row, &load->out_index}};
    for (int k = 0; k < 2; k++)
        for (int a = 0; a < 4; a++)
            *arrays[k][a] = tb_alloc(a == 3 ? b->n_out : n, 4);
    memcpy(store->seqs, b->seqs, ns * sizeof(vp_seq));
    memcpy(store->tokens, b->tokens, n * 4);
    memcpy(store->positions, b->positions, n * 4);
    if (b->image_row)
        memcpy(store->image_row, b->image_row, n * 4);
    memcpy(store->out_index, b->out_index, b->n_out * 4);
    store->b = *b;
    store->b.seqs = store->seqs, store->b.tokens = store->tokens;
    store->b.positions = store->positions, store->b.out_index = store->out_index;
    store->b.image_row = b->image_row ? store->image_row : NULL;
    /* the load pass: computed tokens first (every non-prefix sequence), then cached rows */
    size_t kept = 0, slot = 0;
    for (size_t s = 0; s < ns; s++)
        kept += is_prefix[s] ? 0 : b->seqs[s].len;
    int32_t *new_seq = tb_alloc(ns, 4), *new_tok = tb_alloc(n, 4);
    size_t nl = 0, at = 0, cached_row = kept;
    for (size_t s = 0; s < ns; s++) { /* cached sequences first, in order */
        if (!is_prefix[s])
            continue;
        const vp_seq *p = &b->seqs[s];
        size_t h = p->len / 2; /* rows [0, h) at slot + len - h, rows [h, len) at slot */
        if (h) {
            store->kv[store->b.n_kv_stores++] =
                (vp_kv_copy){.row = p->start, .slot = slot + p->len - h, .len = h};
            load->kv[load->b.n_kv_loads++] =
                (vp_kv_copy){.row = cached_row, .slot = slot + p->len - h, .len = h};
        }
        store->kv[store->b.n_kv_stores++] =
            (vp_kv_copy){.row = p->start + h, .slot = slot, .len = p->len - h};
        load->kv[load->b.n_kv_loads++] =
            (vp_kv_copy){.row = cached_row + h, .slot = slot, .len = p->len - h};
        new_seq[s] = (int32_t)nl;
        load->seqs[nl++] = (vp_seq){.start = cached_row, .len = p->len, .prefix_seq = -1,
                                    .rope_len = p->rope_len};
        slot += p->len, cached_row += p->len;
    }
    size_t n_cached_seqs = nl;
    for (size_t s = 0; s < ns; s++) {
        if (is_prefix[s])
            continue;
        const vp_seq *q = &b->seqs[s];
        new_seq[s] = (int32_t)nl;
        load->seqs[nl++] = (vp_seq){.start = at, .len = q->len,
                                    .prefix_seq = q->prefix_seq >= 0 ? new_seq[q->prefix_seq] : -1,
                                    .rope_len = q->rope_len};
        for (size_t t = q->start; t < q->start + q->len; t++, at++) {
            load->tokens[at] = b->tokens[t];
            load->positions[at] = b->positions[t];
            load->image_row[at] = -1;
            new_tok[t] = (int32_t)at;
        }
    }
    for (size_t i = 0; i < b->n_out; i++)
        load->out_index[i] = new_tok[b->out_index[i]];
    store->b.kv_stores = store->kv;
    load->b = (vp_batch){.n_tokens = kept, .tokens = load->tokens, .positions = load->positions,
                         .image_row = NULL, .n_seqs = nl, .seqs = load->seqs,
                         .n_cached_tokens = slot, .n_cached_seqs = n_cached_seqs,
                         .n_kv_loads = load->b.n_kv_loads, .kv_loads = load->kv,
                         .n_out = b->n_out, .out_index = load->out_index, .plus_id = b->plus_id,
                         .minus_id = b->minus_id};
    free(is_prefix), free(new_seq), free(new_tok);
    return slot;
}

#endif
