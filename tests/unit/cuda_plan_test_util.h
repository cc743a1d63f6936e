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

/* The first h rows of a prefix of len rows that test_batch_cache_prefixes cached from
 * cache row slot: its first half, after its second (a single row: the row itself). */
static inline size_t tb_half(size_t len) { return len >= 2 ? len / 2 : len; }
static inline size_t tb_first_half_slot(size_t slot, size_t len)
{
    return len >= 2 ? slot + len - len / 2 : slot;
}

/* The prefix cache's extensions (an engine's partial hit), after test_batch_cache_prefixes
 * stored every prefix of in in rows_stored cache rows: *extend loads only each prefix's
 * first half, every user computes the rest of its prefix before its own tokens (the same
 * tokens at the same positions), and the first user's rows of that rest are stored after
 * the rows stored; *chain is *load with each prefix's second half loaded from those new
 * rows (an entry and its extension). Both must give in's logits. Returns the cache rows
 * used in all. */
static inline size_t test_batch_extend_prefixes(const test_batch *in, const test_batch *load,
                                                size_t rows_stored, test_batch *extend,
                                                test_batch *chain)
{
    const vp_batch *b = &in->b;
    size_t n = b->n_tokens, ns = b->n_seqs;
    bool *is_prefix = tb_alloc(ns, sizeof *is_prefix), *stored = tb_alloc(ns, sizeof *stored);
    size_t *slot_of = tb_alloc(ns, sizeof *slot_of), *ext_slot = tb_alloc(ns, sizeof *ext_slot);
    for (size_t s = 0; s < ns; s++)
        if (b->seqs[s].prefix_seq >= 0)
            is_prefix[b->seqs[s].prefix_seq] = true;
    size_t slot = 0, n_tok = 0, n_cached = 0;
    for (size_t s = 0; s < ns; s++) {
        const vp_seq *q = &b->seqs[s];
        if (is_prefix[s]) {
            slot_of[s] = slot;
            slot += q->len;
            n_cached += tb_half(q->len);
        } else {
            size_t L = q->prefix_seq >= 0 ? b->seqs[q->prefix_seq].len : 0;
            n_tok += q->len + L - tb_half(L);
        }
    }
    memset(extend, 0, sizeof *extend);
    extend->seqs = tb_alloc(ns, sizeof(vp_seq));
    extend->kv = tb_alloc(2 * ns, sizeof(vp_kv_copy));
    extend->tokens = tb_alloc(n_tok, 4), extend->positions = tb_alloc(n_tok, 4);
    extend->image_row = tb_alloc(n_tok, 4), extend->out_index = tb_alloc(b->n_out, 4);
    int32_t *new_seq = tb_alloc(ns, 4), *new_tok = tb_alloc(n, 4);
    size_t nl = 0, at = 0, row = n_tok, n_loads = 0, n_stores = 0, ext = rows_stored;
    for (size_t s = 0; s < ns; s++) { /* the cached starts first */
        if (!is_prefix[s])
            continue;
        const vp_seq *p = &b->seqs[s];
        size_t h = tb_half(p->len);
        extend->kv[n_loads++] = (vp_kv_copy){.row = row, .slot = tb_first_half_slot(slot_of[s], p->len),
                                             .len = h};
        new_seq[s] = (int32_t)nl;
        extend->seqs[nl++] = (vp_seq){.start = row, .len = h, .prefix_seq = -1,
                                      .rope_len = p->rope_len};
        row += h;
    }
    size_t n_cached_seqs = nl;
    for (size_t s = 0; s < ns; s++) {
        if (is_prefix[s])
            continue;
        const vp_seq *q = &b->seqs[s];
        size_t start = at, extra = 0;
        if (q->prefix_seq >= 0) { /* the rest of the prefix, then its own tokens */
            const vp_seq *p = &b->seqs[q->prefix_seq];
            size_t h = tb_half(p->len);
            extra = p->len - h;
            for (size_t t = p->start + h; t < p->start + p->len; t++, at++) {
                extend->tokens[at] = b->tokens[t];
                extend->positions[at] = b->positions[t];
                extend->image_row[at] = b->image_row ? b->image_row[t] : -1;
            }
            if (extra && !stored[q->prefix_seq]) {
                stored[q->prefix_seq] = true;
                ext_slot[q->prefix_seq] = ext;
                extend->kv[ns + n_stores++] = (vp_kv_copy){.row = start, .slot = ext, .len = extra};
                ext += extra;
            }
        }
        for (size_t t = q->start; t < q->start + q->len; t++, at++) {
            extend->tokens[at] = b->tokens[t];
            extend->positions[at] = b->positions[t];
            extend->image_row[at] = b->image_row ? b->image_row[t] : -1;
            new_tok[t] = (int32_t)at;
        }
        extend->seqs[nl++] = (vp_seq){.start = start, .len = extra + q->len,
                                      .prefix_seq = q->prefix_seq >= 0 ? new_seq[q->prefix_seq] : -1,
                                      .rope_len = q->rope_len};
    }
    for (size_t i = 0; i < b->n_out; i++)
        extend->out_index[i] = new_tok[b->out_index[i]];
    extend->b = (vp_batch){.n_tiles = b->n_tiles, .tiles = b->tiles, .tiles_u8 = b->tiles_u8,
                           .n_tokens = n_tok, .tokens = extend->tokens,
                           .positions = extend->positions,
                           .image_row = b->image_row ? extend->image_row : NULL, .n_seqs = nl,
                           .seqs = extend->seqs, .n_cached_tokens = n_cached,
                           .n_cached_seqs = n_cached_seqs, .n_kv_loads = n_loads,
                           .kv_loads = extend->kv, .n_kv_stores = n_stores,
                           .kv_stores = extend->kv + ns, .n_out = b->n_out,
                           .out_index = extend->out_index, .plus_id = b->plus_id,
                           .minus_id = b->minus_id};
    /* the chain: *load's runs, each prefix's second half from its extension's rows */
    memset(chain, 0, sizeof *chain);
    const vp_batch *l = &load->b;
    chain->seqs = tb_alloc(l->n_seqs, sizeof(vp_seq));
    chain->kv = tb_alloc(l->n_kv_loads, sizeof(vp_kv_copy));
    chain->tokens = tb_alloc(l->n_tokens, 4), chain->positions = tb_alloc(l->n_tokens, 4);
    chain->out_index = tb_alloc(l->n_out, 4);
    memcpy(chain->seqs, l->seqs, l->n_seqs * sizeof(vp_seq));
    memcpy(chain->kv, l->kv_loads, l->n_kv_loads * sizeof(vp_kv_copy));
    memcpy(chain->tokens, l->tokens, l->n_tokens * 4);
    memcpy(chain->positions, l->positions, l->n_tokens * 4);
    memcpy(chain->out_index, l->out_index, l->n_out * 4);
    size_t k = 0;
    for (size_t s = 0; s < ns; s++) {
        if (!is_prefix[s])
            continue;
        if (b->seqs[s].len >= 2) { /* its first half's run, then its second half's */
            k++;
            if (stored[s])
                chain->kv[k].slot = ext_slot[s];
        }
        k++;
    }
    chain->b = *l;
    chain->b.seqs = chain->seqs, chain->b.kv_loads = chain->kv, chain->b.tokens = chain->tokens;
    chain->b.positions = chain->positions, chain->b.out_index = chain->out_index;
    free(is_prefix), free(stored), free(slot_of), free(ext_slot), free(new_seq), free(new_tok);
    return ext;
}

#endif
