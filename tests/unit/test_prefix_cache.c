/* The prefix KV cache's index (engine/prefix_cache.c): matching by ids and tile bytes,
 * partial matches, pinning within a pass, least-recently-used eviction by rows and host
 * bytes, entries of a failed pass dropped, and extensions (an entry holding only the rows
 * past another's start): their runs, refusals, chains and eviction with their parent. No
 * backend: rows are just numbers here. */
#include <stdlib.h>
#include <string.h>

#include "engine/backend.h"
#include "engine/prefix_cache.h"
#include "tests/unit/check.h"

#define IMG 7   /* the image token id of these prompts */
#define TB 16   /* bytes of one tile */
#define TPT 4   /* image tokens per tile */

/* ids[i] = seed * 1000 + i, except image tokens at [img_at, img_at + n_img). */
static void make_ids(int32_t *ids, size_t n, int32_t seed, size_t img_at, size_t n_img)
{
    for (size_t i = 0; i < n; i++)
        ids[i] = i >= img_at && i < img_at + n_img ? IMG : seed * 1000 + (int32_t)i;
    ids[0] = 1; /* BOS, as every prompt */
}

static vp_prefix_images images(const uint8_t *tiles, size_t n)
{
    return (vp_prefix_images){.tiles = tiles, .n_tiles = n, .tile_bytes = TB,
                              .tokens_per_tile = TPT, .img_context = IMG};
}

/* The automatic sizes (prefix_cache_bytes / prefix_cache_host_bytes = auto), by hand. */
static void test_auto_sizes(void)
{
    const size_t gib = (size_t)1 << 30, row8b = (size_t)128 << 10; /* a row at the 8B shape */
    /* half of 60 GiB free in 128 KiB rows: 245760 rows, 30 GiB */
    CHECK(vp_kv_cache_auto_bytes(60 * gib, row8b) == 30 * gib);
    CHECK(vp_kv_cache_auto_bytes(1000, 3) == 498); /* 166 whole rows of 500 bytes */
    CHECK(vp_kv_cache_auto_bytes(64 * gib, 1024) == gib); /* 2^20 rows at most */
    CHECK(vp_kv_cache_auto_bytes(64 * gib, 0) == 0 && vp_kv_cache_auto_bytes(0, row8b) == 0);
    CHECK(vp_kv_cache_auto_bytes(row8b, row8b) == 0); /* half a row */

    /* host bytes for 245760 rows (30 GiB) of 448x448 tiles (256 tokens each), min_tokens 64:
     * 2356 bytes a row (4 + 602112 / 256) plus 3841 entry records */
    size_t host = vp_prefix_cache_auto_host_bytes(245760, 30 * gib, 3 * 448 * 448, 256, 64);
    CHECK_MSG(host >= (size_t)245760 * 2356 && host <= (size_t)245760 * 2356 + 3841 * 256,
              "host %zu", host);
    /* ... which holds every W1 prefix the rows hold: 13 tiles, 3,587 rows (3,328 image
     * tokens) a prefix, 68 of them in 245760 rows */
    size_t w1_entry = 13 * (size_t)(3 * 448 * 448) + 3587 * 4 + 256;
    CHECK(host >= 245760 / 3587 * w1_entry);
    CHECK(vp_prefix_cache_auto_host_bytes(1000, 125 * ((size_t)1 << 20), 3 * 448 * 448, 256, 64) ==
          (size_t)256 << 20); /* the floor */
    /* 2^20 rows of 16 KiB (16 GiB): the 2.3 GiB of tiles they ask is under a quarter */
    CHECK(vp_prefix_cache_auto_host_bytes((size_t)1 << 20, (size_t)16 << 30, 3 * 448 * 448, 256,
                                          64) < ((size_t)4 << 30));
    /* 2^20 rows of 1 KiB (a tiny model: 1 GiB): 2.3 GiB of tiles capped at 256 MiB */
    CHECK(vp_prefix_cache_auto_host_bytes((size_t)1 << 20, gib, 3 * 448 * 448, 256, 64) ==
          (size_t)256 << 20);
    /* 2^20 rows of 4 KiB (4 GiB): capped at a quarter, 1 GiB */
    CHECK(vp_prefix_cache_auto_host_bytes((size_t)1 << 20, 4 * gib, 3 * 448 * 448, 256, 64) ==
          gib);
    CHECK(vp_prefix_cache_auto_host_bytes(SIZE_MAX / 2, SIZE_MAX / 2, 3 * 448 * 448, 256, 64) ==
          SIZE_MAX / 8);
}

static bool same_runs(const vp_prefix_run *got, size_t n, const vp_prefix_run *want, size_t m)
{
    if (n != m)
        return false;
    for (size_t i = 0; i < n; i++)
        if (got[i].slot != want[i].slot || got[i].len != want[i].len)
            return false;
    return true;
}

/* q: the first `keep` ids of a, then ids of its own (another question after the image). */
static void fork_ids(int32_t *q, const int32_t *a, size_t n, size_t keep, int32_t seed)
{
    make_ids(q, n, seed, 0, 0);
    memcpy(q, a, keep * sizeof *q);
}

static void test_extensions(void)
{
    vp_prefix_cache *c = vp_prefix_cache_new(200, 1 << 20, 4);
    CHECK(c != NULL);
    if (!c)
        return;
    uint8_t tiles[2 * TB], other[2 * TB];
    for (size_t i = 0; i < sizeof tiles; i++)
        tiles[i] = other[i] = (uint8_t)(i * 29 + 3);
    other[TB + 1] ^= 4; /* tile 1 differs */
    vp_prefix_images img = images(tiles, 2), img2 = images(other, 2);
    int32_t a[60], q[60], r[60], w[60];
    make_ids(a, 60, 2, 10, 8);   /* image tokens 10..17 */
    fork_ids(q, a, 60, 30, 3);   /* a's first 30 ids, then its own */
    size_t sa = 99, sq = 99, slot = 99;
    vp_prefix_run runs[VP_PREFIX_CACHE_MAX_RUNS];

    vp_prefix_cache_begin(c);
    CHECK(vp_prefix_cache_reserve(c, a, 40, &img, &sa) && sa == 0);
    vp_prefix_cache_end(c, true);

    /* q loads a's first 30 rows and stores its rows 30..50 as an extension of a */
    vp_prefix_cache_begin(c);
    CHECK(vp_prefix_cache_find(c, q, 50, &img, &slot) == 30 && slot == sa);
    vp_prefix_cache_use(c, sa, 30);
    CHECK(!vp_prefix_cache_extend(c, q, 50, 0, IMG, sa, &sq));   /* nothing loaded */
    CHECK(!vp_prefix_cache_extend(c, q, 50, 41, IMG, sa, &sq));  /* past a's rows */
    CHECK(!vp_prefix_cache_extend(c, q, 50, 50, IMG, sa, &sq));  /* nothing to store */
    CHECK(!vp_prefix_cache_extend(c, q, 50, 30, IMG, 7, &sq));   /* no entry at row 7 */
    CHECK(!vp_prefix_cache_extend(c, a, 50, 12, IMG, sa, &sq));  /* image tokens 12..17 */
    CHECK(!vp_prefix_cache_extend(c, q, 50, 35, IMG, sa, &sq));  /* q's 30..34 are not a's */
    CHECK(vp_prefix_cache_extend(c, q, 50, 30, IMG, sa, &sq) && sq == 40);
    CHECK(vp_prefix_cache_find(c, q, 50, &img, &slot) == 30 && slot == sa); /* not yet */
    vp_prefix_cache_end(c, true);
    vp_prefix_cache_stats st;
    vp_prefix_cache_stats_get(c, &st);
    CHECK_MSG(st.entries == 2 && st.rows_used == 60 && st.stored == 2 &&
              st.host_bytes < 2 * (sizeof tiles + 60 * sizeof(int32_t) + 256),
              "%zu entries, %zu rows, %zu host bytes", st.entries, st.rows_used, st.host_bytes);

    /* q now loads all 50 rows in two runs; a still finds its own 40 */
    vp_prefix_cache_begin(c);
    CHECK(vp_prefix_cache_find(c, q, 60, &img, &slot) == 50 && slot == sq);
    size_t ns = 0; /* refused: from at or before the extension's own first row (a's rows),
                    * past the rows found, or an entry the find did not give */
    CHECK(!vp_prefix_cache_extend(c, q, 60, 30, IMG, sq, &ns));
    CHECK(!vp_prefix_cache_extend(c, q, 60, 20, IMG, sq, &ns));
    CHECK(!vp_prefix_cache_extend(c, q, 60, 51, IMG, sq, &ns));
    CHECK(!vp_prefix_cache_extend(c, q, 60, 20, IMG, sa, &ns));
    size_t n = vp_prefix_cache_runs(c, sq, 50, runs);
    CHECK(same_runs(runs, n, (vp_prefix_run[]){{sa, 30}, {sq, 20}}, 2));
    n = vp_prefix_cache_runs(c, sq, 36, runs);
    CHECK(same_runs(runs, n, (vp_prefix_run[]){{sa, 30}, {sq, 6}}, 2));
    n = vp_prefix_cache_runs(c, sq, 20, runs);
    CHECK(same_runs(runs, n, (vp_prefix_run[]){{sa, 20}}, 1));
    CHECK(vp_prefix_cache_runs(c, sq, 51, runs) == 0 && vp_prefix_cache_runs(c, 5, 10, runs) == 0);
    CHECK(vp_prefix_cache_find(c, q, 44, &img, &slot) == 44 && slot == sq);
    CHECK(vp_prefix_cache_find(c, a, 60, &img, &slot) == 40 && slot == sa);
    /* ties go to the shorter chain: 30 rows of q's come from a alone */
    CHECK(vp_prefix_cache_find(c, q, 30, &img, &slot) == 30 && slot == sa);
    /* another image: the extension's rows hang on a's tile 1, which differs */
    CHECK(vp_prefix_cache_find(c, q, 60, &img2, &slot) == 14 && slot == sa);
    vp_prefix_cache_end(c, true);

    /* chains: each extension of the last, up to VP_PREFIX_CACHE_MAX_RUNS entries */
    size_t at = sq, len = 50;
    for (int k = 0; k < VP_PREFIX_CACHE_MAX_RUNS; k++) {
        fork_ids(r, q, 60, len - 5, 10 + k); /* the last 5 of the chain's rows differ */
        vp_prefix_cache_begin(c);
        CHECK(vp_prefix_cache_find(c, r, len + 5, &img, &slot) == len - 5 && slot == at);
        vp_prefix_cache_use(c, slot, len - 5);
        ns = 0;
        bool ok = vp_prefix_cache_extend(c, r, len + 5, len - 5, IMG, slot, &ns);
        CHECK_MSG(ok == (k < VP_PREFIX_CACHE_MAX_RUNS - 2), "extension %d: %d", k, ok);
        vp_prefix_cache_end(c, true);
        if (!ok)
            break;
        vp_prefix_cache_begin(c);
        CHECK(vp_prefix_cache_find(c, r, 60, &img, &slot) == len + 5 && slot == ns);
        n = vp_prefix_cache_runs(c, ns, len + 5, runs);
        CHECK_MSG(n == (size_t)k + 3 && runs[n - 1].slot == ns && runs[n - 1].len == 10,
                  "chain %d: %zu runs", k, n);
        vp_prefix_cache_end(c, true);
        memcpy(q, r, sizeof q);
        at = ns;
        len += 5;
    }

    /* a failed pass drops its extension and keeps the parent */
    fork_ids(w, a, 60, 25, 30);
    vp_prefix_cache_begin(c);
    CHECK(vp_prefix_cache_find(c, w, 45, &img, &slot) == 25 && slot == sa);
    vp_prefix_cache_use(c, sa, 25);
    CHECK(vp_prefix_cache_extend(c, w, 45, 25, IMG, sa, &slot));
    vp_prefix_cache_end(c, false);
    vp_prefix_cache_stats_get(c, &st);
    size_t entries = st.entries;
    vp_prefix_cache_begin(c);
    CHECK(vp_prefix_cache_find(c, w, 45, &img, &slot) == 25 && slot == sa);
    vp_prefix_cache_end(c, true);

    /* using an extension touches its parents, so least recently used eviction takes
     * extensions before the entries they extend: a 140-row entry takes the 20 rows of
     * the chain's two last extensions (the deepest first), not a's nor q's */
    int32_t big[200];
    make_ids(big, 200, 40, 0, 0);
    vp_prefix_cache_begin(c);
    CHECK(vp_prefix_cache_reserve(c, big, 140, &img, &slot));
    vp_prefix_cache_end(c, true);
    vp_prefix_cache_stats_get(c, &st);
    CHECK_MSG(st.entries == 3 && st.evictions == entries - 2 && st.rows_used == 200,
              "%zu entries, %llu evictions (of %zu)", st.entries,
              (unsigned long long)st.evictions, entries);
    vp_prefix_cache_begin(c);
    CHECK(vp_prefix_cache_find(c, a, 60, &img, &slot) == 40 && slot == sa);
    fork_ids(q, a, 60, 30, 3);
    CHECK(vp_prefix_cache_find(c, q, 60, &img, &slot) == 50 && slot == sq);
    vp_prefix_cache_end(c, true);
    /* all 200 rows: everything goes */
    make_ids(big, 200, 41, 0, 0);
    vp_prefix_cache_begin(c);
    CHECK(vp_prefix_cache_reserve(c, big, 200, &img, &slot));
    vp_prefix_cache_end(c, true);
    vp_prefix_cache_stats_get(c, &st);
    CHECK_MSG(st.entries == 1 && st.evictions == entries + 1 && st.rows_used == 200,
              "%zu entries, %llu evictions (of %zu)", st.entries,
              (unsigned long long)st.evictions, entries);
    vp_prefix_cache_begin(c);
    CHECK(vp_prefix_cache_find(c, q, 60, &img, &slot) == 0 && vp_prefix_cache_runs(c, sq, 10, runs) == 0);
    vp_prefix_cache_end(c, true);

    /* a pass that computes q's whole prefix (the hit not worth loading) still stores only
     * rows 30..50, after a's; that pins a for the pass as a load would */
    vp_prefix_cache_begin(c);
    CHECK(vp_prefix_cache_reserve(c, a, 40, &img, &sa)); /* evicts the 200-row entry */
    vp_prefix_cache_end(c, true);
    vp_prefix_cache_begin(c);
    CHECK(vp_prefix_cache_find(c, q, 50, &img, &slot) == 30 && slot == sa);
    vp_prefix_cache_use(c, 0, 0); /* a miss */
    CHECK(vp_prefix_cache_extend(c, q, 50, 30, IMG, sa, &sq));
    make_ids(big, 200, 42, 0, 0);
    CHECK(!vp_prefix_cache_reserve(c, big, 170, &img, &slot)); /* a and q pinned: no gap */
    vp_prefix_cache_end(c, true);
    vp_prefix_cache_stats_get(c, &st);
    CHECK_MSG(st.entries == 2 && st.rows_used == 60, "%zu entries, %zu rows", st.entries, st.rows_used);
    vp_prefix_cache_begin(c);
    CHECK(vp_prefix_cache_find(c, q, 60, &img, &slot) == 50 && slot == sq);
    vp_prefix_cache_end(c, true);
    vp_prefix_cache_free(c);
}

/* An entry pinned without a load (a store planned later in the pass will extend it) is
 * kept by the pass's other stores, which evict another entry, and counts no hit. */
static void test_pin(void)
{
    vp_prefix_cache *c = vp_prefix_cache_new(100, 1 << 20, 4);
    CHECK(c != NULL);
    if (!c)
        return;
    vp_prefix_images none = images(NULL, 0);
    int32_t x[40], y[40], z[40];
    make_ids(x, 40, 21, 0, 0);
    make_ids(y, 40, 22, 0, 0);
    make_ids(z, 40, 23, 0, 0);
    size_t sx = 99, sy = 99, sz = 99, slot = 99;
    vp_prefix_cache_begin(c); /* x, then y: x is the least recently used */
    CHECK(vp_prefix_cache_reserve(c, x, 40, &none, &sx) && sx == 0);
    vp_prefix_cache_end(c, true);
    vp_prefix_cache_begin(c);
    CHECK(vp_prefix_cache_reserve(c, y, 40, &none, &sy) && sy == 40);
    vp_prefix_cache_end(c, true);
    vp_prefix_cache_begin(c);
    CHECK(vp_prefix_cache_find(c, x, 40, &none, &slot) == 40 && slot == sx);
    vp_prefix_cache_pin(c, slot);
    CHECK(vp_prefix_cache_reserve(c, z, 40, &none, &sz) && sz == sy); /* y's rows */
    vp_prefix_cache_end(c, true);
    vp_prefix_cache_begin(c);
    CHECK(vp_prefix_cache_find(c, x, 40, &none, &slot) == 40);
    CHECK(vp_prefix_cache_find(c, y, 40, &none, &slot) == 0);
    vp_prefix_cache_end(c, true);
    vp_prefix_cache_stats st;
    vp_prefix_cache_stats_get(c, &st);
    CHECK_MSG(st.hits == 0 && st.misses == 0 && st.evictions == 1 && st.entries == 2,
              "%llu hits, %llu evictions, %zu entries", (unsigned long long)st.hits,
              (unsigned long long)st.evictions, st.entries);
    vp_prefix_cache_free(c);
}

int main(void)
{
    test_auto_sizes();
    test_extensions();
    test_pin();
    CHECK(vp_prefix_cache_new(0, 1 << 20, 4) == NULL); /* no rows: no cache */
    vp_prefix_cache *c = vp_prefix_cache_new(100, 1 << 20, 4);
    CHECK(c != NULL);
    if (!c)
        return check_summary("prefix_cache");
    uint8_t tiles[2 * TB], other[2 * TB];
    for (size_t i = 0; i < sizeof tiles; i++)
        tiles[i] = other[i] = (uint8_t)(i * 37 + 11);
    vp_prefix_images img = images(tiles, 2);
    int32_t a[60], b[60], d[60];
    make_ids(a, 60, 2, 10, 8); /* 8 image tokens = 2 tiles, at 10..17 */
    size_t slot = 99;

    /* pass 1: nothing to find; a reserved prefix is not found in its own pass */
    vp_prefix_cache_begin(c);
    CHECK(vp_prefix_cache_find(c, a, 40, &img, &slot) == 0);
    CHECK(vp_prefix_cache_reserve(c, a, 40, &img, &slot) && slot == 0);
    CHECK(vp_prefix_cache_find(c, a, 40, &img, &slot) == 0);
    CHECK(!vp_prefix_cache_reserve(c, a, 3, &img, &slot));   /* under min_tokens */
    CHECK(!vp_prefix_cache_reserve(c, a, 101, &img, &slot)); /* over the rows */
    vp_prefix_cache_end(c, true);
    vp_prefix_cache_stats st;
    vp_prefix_cache_stats_get(c, &st);
    CHECK(st.stored == 1 && st.entries == 1 && st.rows_used == 40 && st.rows == 100);

    /* pass 2: whole and partial matches */
    vp_prefix_cache_begin(c);
    slot = 99;
    CHECK(vp_prefix_cache_find(c, a, 60, &img, &slot) == 40 && slot == 0);
    CHECK(vp_prefix_cache_find(c, a, 25, &img, &slot) == 25);
    memcpy(b, a, sizeof b);
    b[30] = -5; /* ids differ from token 30 */
    CHECK(vp_prefix_cache_find(c, b, 60, &img, &slot) == 30);
    b[3] = -5; /* from token 3: under min_tokens */
    CHECK(vp_prefix_cache_find(c, b, 60, &img, &slot) == 0);
    /* the same ids over another image: rows up to the first token of the first tile
     * that differs */
    other[TB + 5] ^= 1; /* tile 1 differs: image tokens 14.. */
    vp_prefix_images img2 = images(other, 2);
    CHECK(vp_prefix_cache_find(c, a, 60, &img2, &slot) == 14);
    other[2] ^= 1; /* tile 0 differs too: image tokens 10.. */
    CHECK(vp_prefix_cache_find(c, a, 60, &img2, &slot) == 10);
    vp_prefix_images one_tile = images(tiles, 1); /* a prompt with fewer tiles */
    CHECK(vp_prefix_cache_find(c, a, 60, &one_tile, &slot) == 14);
    vp_prefix_cache_use(c, 0, 40);
    CHECK(vp_prefix_cache_find(c, b, 60, &img, &slot) == 0);
    vp_prefix_cache_use(c, 0, 0); /* a miss */
    CHECK(vp_prefix_cache_find(c, a, 3, &img, &slot) == 0);
    vp_prefix_cache_use(c, 0, 0); /* under min_tokens: no lookup at all */
    vp_prefix_cache_stats_get(c, &st);
    CHECK(st.hits == 0 && st.misses == 0); /* counted when the pass succeeds */
    vp_prefix_cache_end(c, true);
    vp_prefix_cache_stats_get(c, &st);
    CHECK_MSG(st.hits == 1 && st.misses == 1 && st.tokens_reused == 40, "%llu hits %llu misses",
              (unsigned long long)st.hits, (unsigned long long)st.misses);

    /* pass 3: b (50 rows) fits after a; d (30) fits nowhere while a is pinned (used by
     * this pass) and b is being written */
    make_ids(b, 60, 3, 0, 0);
    make_ids(d, 60, 4, 0, 0);
    vp_prefix_images none = images(NULL, 0);
    vp_prefix_cache_begin(c);
    CHECK(vp_prefix_cache_find(c, a, 60, &img, &slot) == 40);
    vp_prefix_cache_use(c, slot, 40);
    CHECK(vp_prefix_cache_reserve(c, b, 50, &none, &slot) && slot == 40);
    CHECK(!vp_prefix_cache_reserve(c, d, 30, &none, &slot));
    vp_prefix_cache_end(c, true);

    /* pass 4 uses b; pass 5's d evicts a, the least recently used, and takes its rows */
    vp_prefix_cache_begin(c);
    CHECK(vp_prefix_cache_find(c, b, 60, &none, &slot) == 50 && slot == 40);
    vp_prefix_cache_use(c, slot, 50);
    vp_prefix_cache_end(c, true);
    vp_prefix_cache_begin(c);
    CHECK(vp_prefix_cache_reserve(c, d, 30, &none, &slot) && slot == 0);
    vp_prefix_cache_end(c, true);
    vp_prefix_cache_stats_get(c, &st);
    CHECK(st.evictions == 1 && st.entries == 2 && st.rows_used == 80);
    vp_prefix_cache_begin(c);
    CHECK(vp_prefix_cache_find(c, a, 60, &img, &slot) == 0); /* evicted */
    CHECK(vp_prefix_cache_find(c, d, 60, &none, &slot) == 30 && slot == 0);
    CHECK(vp_prefix_cache_find(c, b, 60, &none, &slot) == 50 && slot == 40);
    vp_prefix_cache_end(c, true);

    /* a failed pass drops what it reserved (10 rows: the gap between d and b) */
    int32_t e[20];
    make_ids(e, 20, 5, 0, 0);
    vp_prefix_cache_begin(c);
    CHECK(vp_prefix_cache_reserve(c, e, 10, &none, &slot) && slot == 30); /* the gap */
    CHECK(vp_prefix_cache_find(c, d, 60, &none, &slot) == 30);
    vp_prefix_cache_use(c, slot, 30); /* a failed pass's hit is not counted */
    vp_prefix_cache_end(c, false);
    vp_prefix_cache_begin(c);
    CHECK(vp_prefix_cache_find(c, e, 20, &none, &slot) == 0);
    vp_prefix_cache_end(c, true);
    vp_prefix_cache_stats_get(c, &st);
    CHECK(st.hits == 3); /* passes 2, 3 and 4; not the failed one */
    CHECK_MSG(st.entries == 2 && st.rows_used == 80 && st.stored == 3, "%zu entries, %zu rows, %llu stored", st.entries, st.rows_used, (unsigned long long)st.stored);
    /* reset (after the server's warm-up): no entry, no count, the capacity kept */
    vp_prefix_cache_reset(c);
    vp_prefix_cache_stats_get(c, &st);
    CHECK(st.entries == 0 && st.rows_used == 0 && st.hits == 0 && st.misses == 0 &&
          st.stored == 0 && st.evictions == 0 && st.tokens_reused == 0 && st.rows == 100);
    vp_prefix_cache_begin(c);
    CHECK(vp_prefix_cache_find(c, d, 60, &none, &slot) == 0);
    vp_prefix_cache_end(c, true);
    vp_prefix_cache_free(c);

    /* host bytes: an entry larger than the bound is refused; older ones make room */
    c = vp_prefix_cache_new(1000, 600, 4);
    CHECK(c != NULL);
    if (c) {
        vp_prefix_cache_begin(c);
        CHECK(vp_prefix_cache_reserve(c, a, 60, &img, &slot)); /* ~350 bytes */
        int32_t big[200];
        make_ids(big, 200, 6, 0, 0);
        CHECK(!vp_prefix_cache_reserve(c, big, 200, &none, &slot)); /* 800 bytes of ids */
        vp_prefix_cache_end(c, true);
        vp_prefix_cache_begin(c);
        make_ids(big, 200, 7, 0, 0);
        CHECK(vp_prefix_cache_reserve(c, big, 100, &none, &slot)); /* evicts a's entry */
        vp_prefix_cache_end(c, true);
        vp_prefix_cache_stats_get(c, &st);
        CHECK(st.entries == 1 && st.host_bytes <= 600 && st.evictions == 1);
        vp_prefix_cache_free(c);
    }
    vp_prefix_cache_free(NULL);
    return check_summary("prefix_cache");
}
