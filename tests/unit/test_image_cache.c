/* The image cache (engine/image_cache.c): hits return the stored tiles and their digests,
 * keys are the exact encoded bytes and the tile limit, the byte budget evicts least
 * recently used entries, and concurrent use from several threads keeps every answer
 * exact. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "engine/image_cache.h"
#include "tests/unit/check.h"

#define TILE 1000 /* bytes per tile in these tests */

static void fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)((i * 2654435761u + seed * 40503u) >> 13);
}

/* Digests for tests: any bytes (the cache stores and returns them; engine/job_images.c
 * computes real ones), distinct per seed. */
static uint8_t dig[16 * VP_DIGEST_BYTES];

static void test_basic(void)
{
    fill(dig, sizeof dig, 5);
    uint8_t mine[3 * VP_DIGEST_BYTES];
    fill(mine, sizeof mine, 77);
    vp_image_cache *c = vp_image_cache_new(1 << 20);
    CHECK(c != NULL);
    uint8_t img[300], other[300], tiles[3 * TILE];
    fill(img, sizeof img, 1);
    memcpy(other, img, sizeof other);
    other[299] ^= 1; /* same length, one bit apart */
    fill(tiles, sizeof tiles, 2);
    uint8_t *got = NULL;
    int n = -1;
    CHECK(vp_image_cache_get(c, img, sizeof img, 12, &got, &n) == 0 && got == NULL && n == 0);
    vp_image_cache_put(c, img, sizeof img, 12, tiles, mine, 3, TILE);
    CHECK(vp_image_cache_get(c, img, sizeof img, 12, &got, &n) == 1 && n == 3);
    CHECK(got && !memcmp(got, tiles, sizeof tiles));
    free(got);
    /* a different tile limit, different bytes or a prefix of the bytes miss */
    CHECK(vp_image_cache_get(c, img, sizeof img, 6, &got, &n) == 0);
    CHECK(vp_image_cache_get(c, other, sizeof other, 12, &got, &n) == 0);
    CHECK(vp_image_cache_get(c, img, sizeof img - 1, 12, &got, &n) == 0);
    /* appended to a set that already holds a tile: that tile and its digest kept, the
     * three after them; a miss leaves the set alone */
    vp_tile_set set = {0};
    CHECK(vp_tile_set_reserve(&set, 1, TILE) == 0);
    fill(set.tiles, TILE, 9);
    fill(set.digests, VP_DIGEST_BYTES, 10);
    set.n_tiles = 1;
    uint8_t first[TILE], first_dig[VP_DIGEST_BYTES];
    memcpy(first, set.tiles, TILE);
    memcpy(first_dig, set.digests, VP_DIGEST_BYTES);
    CHECK(vp_image_cache_append(c, img, sizeof img, 12, &set, &n) == 1 && n == 3 &&
          set.n_tiles == 4);
    CHECK(!memcmp(set.tiles, first, TILE) && !memcmp(set.tiles + TILE, tiles, sizeof tiles));
    CHECK(!memcmp(set.digests, first_dig, VP_DIGEST_BYTES) &&
          !memcmp(set.digests + VP_DIGEST_BYTES, mine, sizeof mine));
    uint8_t *before = set.tiles;
    CHECK(vp_image_cache_append(c, other, sizeof other, 12, &set, &n) == 0 && n == 0 &&
          set.tiles == before && set.n_tiles == 4);
    vp_tile_set_free(&set);
    CHECK(set.tiles == NULL && set.digests == NULL && set.n_tiles == 0);
    /* a second put of the same key keeps one entry */
    vp_image_cache_put(c, img, sizeof img, 12, tiles, mine, 3, TILE);
    vp_image_cache_stats s;
    vp_image_cache_stats_get(c, &s);
    CHECK(s.entries == 1 && s.hits == 2 && s.misses == 5 && s.evictions == 0);
    CHECK(s.bytes >= sizeof img + sizeof tiles && s.bytes <= s.max_bytes);
    /* reset (after the server's warm-up): no entry, no count, still usable */
    vp_image_cache_reset(c);
    vp_image_cache_stats_get(c, &s);
    CHECK(s.entries == 0 && s.bytes == 0 && s.hits == 0 && s.misses == 0 && s.max_bytes == 1 << 20);
    CHECK(vp_image_cache_get(c, img, sizeof img, 12, &got, &n) == 0);
    vp_image_cache_put(c, img, sizeof img, 12, tiles, mine, 3, TILE);
    CHECK(vp_image_cache_get(c, img, sizeof img, 12, &got, &n) == 1 && n == 3);
    free(got);
    vp_image_cache_reset(NULL);
    vp_image_cache_free(c);
}

static void test_budget(void)
{
    /* room for about three entries of 1 tile + 100 encoded bytes */
    vp_image_cache *c = vp_image_cache_new(3 * (TILE + 100) + 3 * 128);
    uint8_t img[5][100], tile[TILE];
    for (unsigned k = 0; k < 5; k++)
        fill(img[k], 100, 10 + k);
    fill(tile, TILE, 3);
    uint8_t *got;
    int n;
    vp_image_cache_put(c, img[0], 100, 12, tile, dig, 1, TILE);
    vp_image_cache_put(c, img[1], 100, 12, tile, dig, 1, TILE);
    vp_image_cache_put(c, img[2], 100, 12, tile, dig, 1, TILE);
    CHECK(vp_image_cache_get(c, img[0], 100, 12, &got, &n) == 1); /* 0 is now the newest */
    free(got);
    vp_image_cache_put(c, img[3], 100, 12, tile, dig, 1, TILE); /* evicts 1, the oldest */
    CHECK(vp_image_cache_get(c, img[1], 100, 12, &got, &n) == 0);
    CHECK(vp_image_cache_get(c, img[0], 100, 12, &got, &n) == 1);
    free(got);
    CHECK(vp_image_cache_get(c, img[3], 100, 12, &got, &n) == 1);
    free(got);
    vp_image_cache_stats s;
    vp_image_cache_stats_get(c, &s);
    CHECK(s.evictions == 1 && s.entries == 3 && s.bytes <= s.max_bytes);
    /* an entry larger than the whole budget is not kept and evicts nothing */
    uint8_t *big = calloc(10, TILE);
    vp_image_cache_put(c, img[4], 100, 12, big, dig, 10, TILE);
    CHECK(vp_image_cache_get(c, img[4], 100, 12, &got, &n) == 0);
    vp_image_cache_stats_get(c, &s);
    CHECK(s.entries == 3 && s.evictions == 1);
    free(big);
    vp_image_cache_free(c);
    /* an entry whose data fits the budget but not with its bookkeeping is not kept either:
     * the byte count never passes the budget */
    c = vp_image_cache_new(1100 + VP_DIGEST_BYTES);
    vp_image_cache_put(c, img[0], 50, 12, tile, dig, 1, TILE);
    vp_image_cache_stats_get(c, &s);
    CHECK(s.bytes <= s.max_bytes && s.entries == 0);
    vp_image_cache_put(c, img[0], 20, 12, tile, dig, 1, TILE);
    vp_image_cache_stats_get(c, &s);
    CHECK(s.bytes <= s.max_bytes && s.entries == 1);
    vp_image_cache_free(c);
}

static void test_off(void)
{
    CHECK(vp_image_cache_new(0) == NULL);
    uint8_t img[10] = {1}, tile[TILE] = {2};
    uint8_t *got = (uint8_t *)1;
    int n = 5;
    vp_image_cache_put(NULL, img, 10, 12, tile, dig, 1, TILE);
    CHECK(vp_image_cache_get(NULL, img, 10, 12, &got, &n) == 0 && got == NULL && n == 0);
    vp_image_cache_stats s;
    vp_image_cache_stats_get(NULL, &s);
    CHECK(s.entries == 0 && s.max_bytes == 0);
    vp_image_cache_free(NULL);
}

/* 4 threads over 12 images (a budget for about 6): every hit holds that image's tiles. */
typedef struct {
    vp_image_cache *c;
    unsigned seed;
    int wrong;
} hammer_arg;

static void *hammer(void *p)
{
    hammer_arg *a = p;
    uint8_t img[64], tiles[2 * TILE], want[2 * TILE], want_dig[2 * VP_DIGEST_BYTES];
    for (int it = 0; it < 3000; it++) {
        unsigned k = (a->seed * 7 + (unsigned)it * 13) % 12;
        fill(img, sizeof img, 100 + k);
        fill(want, sizeof want, 200 + k);
        fill(want_dig, sizeof want_dig, 300 + k);
        vp_tile_set got = {0};
        int n;
        if (vp_image_cache_append(a->c, img, sizeof img, 12, &got, &n) == 1) {
            a->wrong += n != 2 || got.n_tiles != 2 || memcmp(got.tiles, want, sizeof want) != 0 ||
                        memcmp(got.digests, want_dig, sizeof want_dig) != 0;
            vp_tile_set_free(&got);
        } else {
            memcpy(tiles, want, sizeof tiles);
            vp_image_cache_put(a->c, img, sizeof img, 12, tiles, want_dig, 2, TILE);
        }
    }
    return NULL;
}

static void test_threads(void)
{
    vp_image_cache *c = vp_image_cache_new(6 * (2 * TILE + 64 + 128));
    pthread_t t[4];
    hammer_arg a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (hammer_arg){.c = c, .seed = (unsigned)i + 1};
        CHECK(pthread_create(&t[i], NULL, hammer, &a[i]) == 0);
    }
    int wrong = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        wrong += a[i].wrong;
    }
    vp_image_cache_stats s;
    vp_image_cache_stats_get(c, &s);
    CHECK_MSG(wrong == 0, "%d hits with the wrong tiles", wrong);
    CHECK(s.hits > 0 && s.misses > 0 && s.evictions > 0 && s.bytes <= s.max_bytes);
    vp_image_cache_free(c);
}

int main(void)
{
    test_basic();
    test_budget();
    test_off();
    test_threads();
    return check_summary("test_image_cache");
}
