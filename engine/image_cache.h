/* Tiles of recently seen images, keyed by the encoded bytes: an RL loop scores the same
 * image many times (PERF.md's W4: one question re-scored with new responses), and
 * decoding + resizing it again costs more than the GPU pass. Bounded by bytes (LRU),
 * shared by the HTTP threads (one mutex), and exact: a hit compares the stored encoded
 * bytes in full, so a hash collision can never hand one request another's image. */
#ifndef VP_IMAGE_CACHE_H
#define VP_IMAGE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/util/digest.h"

typedef struct vp_image_cache vp_image_cache;

typedef struct vp_image_cache_stats {
    uint64_t hits, misses, evictions;
    size_t entries, bytes, max_bytes;
} vp_image_cache_stats;

/* NULL when max_bytes is 0 (off) or out of memory; every call below accepts NULL. */
vp_image_cache *vp_image_cache_new(size_t max_bytes);
void vp_image_cache_free(vp_image_cache *c);

/* A request's tiles and each one's SHA-256 (engine/util/digest.h), grown image by image. */
typedef struct vp_tile_set {
    uint8_t *tiles;   /* [n_tiles][tile_bytes] */
    uint8_t *digests; /* [n_tiles][VP_DIGEST_BYTES] */
    size_t n_tiles;
} vp_tile_set;

/* Room for `more` tiles past set->n_tiles (both arrays realloc'd): 0, or -1 when memory
 * runs out (the set stays valid, n_tiles unchanged). */
int vp_tile_set_reserve(vp_tile_set *set, size_t more, size_t tile_bytes);
void vp_tile_set_free(vp_tile_set *set);

/* The tiles of (data, len) tiled with at most max_tiles grid tiles, copied into a new
 * malloc'd *u8 ([n_tiles][tile_bytes]): 1 on a hit, 0 on a miss (or out of memory). */
int vp_image_cache_get(vp_image_cache *c, const uint8_t *data, size_t len, int max_tiles,
                       uint8_t **u8, int *n_tiles);
/* The same, appended to a set: on a hit it grows by the image's tiles and their digests,
 * copied in once: 1, with *n_tiles set. 0 on a miss, -1 when out of memory (the set
 * unchanged; counted as a miss). */
int vp_image_cache_append(vp_image_cache *c, const uint8_t *data, size_t len, int max_tiles,
                          vp_tile_set *set, int *n_tiles);
/* Remembers a copy of n_tiles tiles and their digests; entries larger than the whole
 * budget are not kept. */
void vp_image_cache_put(vp_image_cache *c, const uint8_t *data, size_t len, int max_tiles,
                        const uint8_t *u8, const uint8_t *digests, int n_tiles,
                        size_t tile_bytes);
void vp_image_cache_stats_get(vp_image_cache *c, vp_image_cache_stats *s);
/* Drops every entry and zeroes the counters (after the server's warm-up pass, so that
 * neither its picture nor its lookups show). */
void vp_image_cache_reset(vp_image_cache *c);

#endif
