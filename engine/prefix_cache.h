/* The index of the backend's prefix KV cache (PERF.md's W4: an RL group re-scored step
 * after step sends the same image and question again; its prefix costs no vision and no
 * recompute after the first request).
 *
 * The backend holds the keys and values: `rows` rows per layer (vp_backend_memory). This
 * index, used by the engine thread only, decides what they hold: entries of a prompt
 * prefix's token ids plus a key for each tile its image tokens show (the engine passes
 * each tile's SHA-256, engine/util/digest.h: 32 bytes kept and compared instead of 600 KB),
 * each at a run of rows. Keys and values of token i depend only on tokens 0..i (causal
 * attention), so an entry serves any prompt that starts with the first k of its ids and,
 * for the image tokens among those k, the same tiles; a hit compares ids and tile keys in
 * full, so no collision of a fast hash can hand a request another prompt's keys.
 *
 * An entry may extend another: a prompt that loads the first k rows of an entry and computes
 * the rest of its prefix (another question about the same image) stores only rows
 * [k, len) of its own, after the other's first k (no copy of the image's rows); a hit
 * then loads one run of rows per entry in the chain (vp_prefix_cache_runs), and evicting
 * an entry evicts its extensions.
 *
 * One pass: vp_prefix_cache_begin, then find + use or reserve per prefix group (entries
 * used or reserved by the pass are pinned: never evicted under it, never matched before their
 * rows are written), then vp_prefix_cache_end(ok): reserved entries become usable, or
 * are dropped when the pass failed. Least recently used entries go first when rows or
 * host bytes run out. */
#ifndef VP_PREFIX_CACHE_H
#define VP_PREFIX_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct vp_prefix_cache vp_prefix_cache;

/* What the image tokens of a prompt show: feature row r of the prompt comes from tile
 * r / tokens_per_tile. */
typedef struct vp_prefix_images {
    const uint8_t *tiles;   /* [n_tiles][tile_bytes] each tile's key (its digest) */
    size_t n_tiles, tile_bytes, tokens_per_tile;
    int32_t img_context;    /* the image token id */
} vp_prefix_images;

/* Entries in one chain at most (a root and its extensions), so runs of rows in one hit. */
#define VP_PREFIX_CACHE_MAX_RUNS 4

/* Rows [slot, slot + len) of the backend's cache. */
typedef struct vp_prefix_run {
    size_t slot, len;
} vp_prefix_run;

typedef struct vp_prefix_cache_stats {
    uint64_t hits, misses;       /* lookups with / without an entry used, by passes that
                                    succeeded (a prefix under min_tokens is no lookup) */
    uint64_t tokens_reused;      /* rows loaded instead of computed, over all hits */
    uint64_t stored, evictions;  /* entries written by successful passes; entries evicted */
    uint64_t warm_ups;           /* passes run first to store the rest of prefixes whose
                                    start was cached (engine/pack.c); their lookups are
                                    not counted in hits, misses and tokens_reused */
    size_t entries, rows_used, rows, host_bytes;
} vp_prefix_cache_stats;

/* rows: the backend's cache rows (0: returns NULL, no cache); host_bytes bounds the ids and
 * tiles the entries keep; min_tokens: the shortest prefix worth storing or loading. NULL
 * also when memory runs out. */
vp_prefix_cache *vp_prefix_cache_new(size_t rows, size_t host_bytes, size_t min_tokens);
/* The host bytes that let `rows` rows fill with entries before the host budget binds: each
 * row's id plus, were every row an image token, its share of an 8-bit tile, and each
 * entry's record (at most one per min_tokens rows). At most a quarter of the cache's own
 * cache_bytes (1.8% at the 8B shape; small models, whose rows are tiny, would otherwise
 * keep more on the host than in the cache), and never under 256 MiB. */
size_t vp_prefix_cache_auto_host_bytes(size_t rows, size_t cache_bytes, size_t tile_bytes,
                                       size_t tokens_per_tile, size_t min_tokens);
void vp_prefix_cache_free(vp_prefix_cache *c);

void vp_prefix_cache_begin(vp_prefix_cache *c);
/* The longest usable entry for a prompt's first `cap` ids: returns the rows it gives (0 =
 * none below min_tokens) and, in *slot, the entry's own first cache row (which names it
 * to vp_prefix_cache_use, vp_prefix_cache_runs and vp_prefix_cache_extend). */
size_t vp_prefix_cache_find(vp_prefix_cache *c, const int32_t *ids, size_t cap,
                            const vp_prefix_images *img, size_t *slot);
/* Records that the pass loads `len` rows of the entry at `slot` found by
 * vp_prefix_cache_find (a hit: the entry is pinned for the pass), or (len 0) that a
 * lookup found nothing it uses (a miss). */
void vp_prefix_cache_use(vp_prefix_cache *c, size_t slot, size_t len);
/* Keeps the entry at `slot` and its parents for this pass without loading them (not a
 * hit): a store planned later in the pass will extend it, and other stores must not
 * evict it meanwhile. */
void vp_prefix_cache_pin(vp_prefix_cache *c, size_t slot);
/* The cache rows that hold the first len rows of the entry at `slot`, in order: one run
 * per entry of its chain that they reach (at most VP_PREFIX_CACHE_MAX_RUNS); 0 when no
 * entry starts at slot or len passes its rows. */
size_t vp_prefix_cache_runs(const vp_prefix_cache *c, size_t slot, size_t len,
                            vp_prefix_run *runs);
/* Reserves rows for ids [from, len) of a prompt whose first `from` rows the entry at
 * parent_slot holds (the last vp_prefix_cache_find's, for this prompt, from at most the
 * rows it gave and past the entry's own first row) and whose tokens [from, len) this pass
 * computes: an extension of that entry, which is pinned with it. False when it cannot:
 * not that entry, `from` out of those bounds, ids [from, len) holding an image token, a
 * chain already VP_PREFIX_CACHE_MAX_RUNS long, no room. */
bool vp_prefix_cache_extend(vp_prefix_cache *c, const int32_t *ids, size_t len, size_t from,
                            int32_t img_context, size_t parent_slot, size_t *slot);
/* Reserves rows for the first len ids of a prompt that this pass computes, evicting least
 * recently used entries not pinned by the pass. Returns false (nothing reserved) when it
 * cannot: too short, no room, out of memory. */
bool vp_prefix_cache_reserve(vp_prefix_cache *c, const int32_t *ids, size_t len,
                             const vp_prefix_images *img, size_t *slot);
/* Drops every entry (benchmarks: a cold start); not during a pass. */
void vp_prefix_cache_clear(vp_prefix_cache *c);
/* The same, and zeroes the counters (after the server's warm-up pass, so that its prefix
 * and lookups do not show in /metrics); not during a pass. */
void vp_prefix_cache_reset(vp_prefix_cache *c);
/* ok: the pass succeeded, its reserved entries are now valid; else they are dropped. */
void vp_prefix_cache_end(vp_prefix_cache *c, bool ok);

/* vp_prefix_cache_end(c, true) for a warm-up pass (engine/pack.c) that succeeded: counted
 * as one, its lookups not (the pass proper's lookups count the rows its jobs load). */
void vp_prefix_cache_end_warm_up(vp_prefix_cache *c);

/* Thread-safe (counters read while the engine thread works). */
void vp_prefix_cache_stats_get(const vp_prefix_cache *c, vp_prefix_cache_stats *s);

#endif
