/* CUDA attention work lists (engine/cuda_plan/plan_attention.c) against brute-force
 * definitions: every query is owned by exactly one item, and the keys an item lets query
 * i see are exactly the keys MODEL.md / backend.h define (its prefix sequence in full,
 * its own sequence up to itself; or its whole vision tile), each once. */
#include <stdbool.h>
#include <stdlib.h>

#include "engine/cuda_plan/cuda_plan.h"
#include "tests/unit/check.h"
#include "tests/unit/cuda_plan_test_util.h"

/* keys visible to query t by the definition in backend.h */
static bool visible(const vp_batch *b, const int32_t *seq_of, size_t t, size_t j)
{
    const vp_seq *s = &b->seqs[seq_of[t]];
    if (j >= s->start && j <= t)
        return true;
    if (s->prefix_seq >= 0) {
        const vp_seq *p = &b->seqs[s->prefix_seq];
        return j >= p->start && j < p->start + p->len;
    }
    return false;
}

static void check_causal(const test_batch *tb, int bq)
{
    const vp_batch *b = &tb->b;
    size_t n = b->n_tokens;
    int32_t *seq_of = tb_alloc(n, sizeof *seq_of);
    for (size_t s = 0; s < b->n_seqs; s++)
        for (size_t t = b->seqs[s].start; t < b->seqs[s].start + b->seqs[s].len; t++)
            seq_of[t] = (int32_t)s;
    size_t cap = vp_attn_causal_items_max(n, b->n_seqs, bq), n_items = 0;
    vp_attn_item *items = tb_alloc(cap, sizeof *items);
    vp_error err = {0};
    CHECK(vp_attn_plan_causal(b->seqs, b->n_seqs, n, bq, items, cap, &n_items, &err) == 0);
    CHECK(n_items <= cap);
    int *owner = tb_alloc(n, sizeof *owner);
    unsigned char *seen = tb_alloc(n, 1);
    int bad_cover = 0, bad_keys = 0, bad_shape = 0, bad_order = 0;
    for (size_t k = 0; k < n_items; k++) {
        const vp_attn_item *it = &items[k];
        if (k > 0 && (items[k - 1].keys < it->keys ||
                      (items[k - 1].keys == it->keys && items[k - 1].q_begin >= it->q_begin)))
            bad_order++;
        if (it->q_begin < 0 || it->q_end > (int32_t)n || it->q_end <= it->q_begin ||
            it->q_end - it->q_begin > bq || seq_of[it->q_begin] != seq_of[it->q_end - 1] ||
            it->causal_begin != (int32_t)b->seqs[seq_of[it->q_begin]].start ||
            it->keys != (it->full_end - it->full_begin) + (it->q_end - it->causal_begin)) {
            bad_shape++;
            continue;
        }
        for (int32_t t = it->q_begin; t < it->q_end; t++) {
            owner[t]++;
            /* the item's key set for query t, each key counted */
            memset(seen, 0, n);
            for (int32_t j = it->full_begin; j < it->full_end; j++)
                seen[j]++;
            for (int32_t j = it->causal_begin; j <= t; j++)
                seen[j]++;
            for (size_t j = 0; j < n; j++)
                if (seen[j] != (visible(b, seq_of, (size_t)t, j) ? 1 : 0))
                    bad_keys++;
        }
    }
    for (size_t t = 0; t < n; t++)
        if (owner[t] != 1)
            bad_cover++;
    CHECK_MSG(bad_cover == 0, "%d tokens not owned by exactly one item", bad_cover);
    CHECK_MSG(bad_keys == 0, "%d (query, key) visibility mismatches", bad_keys);
    CHECK_MSG(bad_shape == 0, "%d malformed items", bad_shape);
    CHECK_MSG(bad_order == 0, "%d items out of longest-first order", bad_order);

    /* the simple kernel's per-token ranges: same sets by the same definition */
    int32_t *ranges = tb_alloc(3 * n, sizeof *ranges);
    CHECK(vp_attn_token_ranges_causal(b->seqs, b->n_seqs, n, ranges, &err) == 0);
    int bad_ranges = 0;
    for (size_t t = 0; t < n; t++) {
        memset(seen, 0, n);
        for (int32_t j = ranges[3 * t]; j < ranges[3 * t + 1]; j++)
            seen[j]++;
        for (int32_t j = ranges[3 * t + 2]; j >= 0 && j <= (int32_t)t; j++)
            seen[j]++;
        for (size_t j = 0; j < n; j++)
            if (seen[j] != (visible(b, seq_of, t, j) ? 1 : 0))
                bad_ranges++;
    }
    CHECK_MSG(bad_ranges == 0, "%d per-token range mismatches", bad_ranges);
    free(ranges);
    free(seen);
    free(owner);
    free(items);
    free(seq_of);
}

static void test_causal_random(void)
{
    static const int bqs[] = {64, 7, 1};
    for (int round = 0; round < 12; round++) {
        test_batch tb;
        test_batch_make(&tb, 1 + (size_t)round % 4, round < 6 ? 40 : 150, 1000, 0);
        check_causal(&tb, bqs[round % 3]);
        test_batch_free(&tb);
    }
}

static void test_causal_errors(void)
{
    vp_seq seqs[2] = {{0, 100, -1, 100}, {100, 100, 0, 200}};
    vp_attn_item items[8];
    size_t n = 99;
    vp_error err = {0};
    CHECK(vp_attn_plan_causal(seqs, 2, 200, 64, items, 3, &n, &err) == -1);
    CHECK(err.kind == VP_ERR_INTERNAL && n == 0);
    CHECK(vp_attn_plan_causal(seqs, 2, 200, 0, items, 8, &n, &err) == -1);
    CHECK(vp_attn_plan_causal(seqs, 2, 200, 64, items, 8, &n, &err) == 0 && n == 4);
    /* the user sequence's second tile sees the prefix and 100 own keys: the longest */
    CHECK(items[0].q_begin == 164 && items[0].keys == 200 && items[0].full_end == 100);
    CHECK(vp_attn_plan_causal(seqs, 2, (size_t)INT32_MAX, 64, items, 8, &n, &err) == -1 &&
          err.kind == VP_ERR_TOO_LARGE);
}

static void test_tiles(void)
{
    for (size_t tiles = 1; tiles <= 3; tiles++) {
        size_t tt = 1025, per = (tt + 63) / 64, n = 0;
        CHECK(vp_attn_tile_items(tiles, tt, 64) == tiles * per && per == 17);
        vp_attn_item *items = tb_alloc(tiles * per, sizeof *items);
        vp_error err = {0};
        CHECK(vp_attn_plan_tiles(tiles, tt, 64, items, tiles * per, &n, &err) == 0);
        CHECK(n == tiles * per);
        int bad = 0;
        int *owner = tb_alloc(tiles * tt, sizeof *owner);
        for (size_t k = 0; k < n; k++) {
            const vp_attn_item *it = &items[k];
            size_t tile = k / per; /* tile order: the first k tiles' items are a prefix */
            if (it->full_begin != (int32_t)(tile * tt) || it->full_end != (int32_t)((tile + 1) * tt) ||
                it->causal_begin != -1 || it->q_begin < it->full_begin || it->q_end > it->full_end ||
                it->q_end - it->q_begin > 64 || it->keys != (int32_t)tt)
                bad++;
            for (int32_t t = it->q_begin; t < it->q_end; t++)
                owner[t]++;
        }
        for (size_t t = 0; t < tiles * tt; t++)
            bad += owner[t] != 1;
        CHECK_MSG(bad == 0, "%d bad tile items for %zu tiles", bad, tiles);
        int32_t *ranges = tb_alloc(3 * tiles * tt, sizeof *ranges);
        vp_attn_token_ranges_tiles(tiles, tt, ranges);
        int bad_r = 0;
        for (size_t t = 0; t < tiles * tt; t++)
            bad_r += ranges[3 * t] != (int32_t)(t / tt * tt) ||
                     ranges[3 * t + 1] != (int32_t)(t / tt * tt + tt) || ranges[3 * t + 2] != -1;
        CHECK(bad_r == 0);
        CHECK(vp_attn_plan_tiles(tiles, tt, 64, items, tiles * per - 1, &n, &err) == -1);
        free(ranges);
        free(owner);
        free(items);
    }
}

int main(void)
{
    test_causal_random();
    test_causal_errors();
    test_tiles();
    return check_summary("cuda_plan_attention");
}
