/* LRU cache of image tiles keyed by encoded bytes (image_cache.h). */
#include "engine/image_cache.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    struct entry *prev, *next; /* LRU list: head = most recent */
    uint64_t hash;
    size_t len;                /* encoded bytes */
    int max_tiles;
    int n_tiles;
    size_t tiles_bytes;
    uint8_t *data;             /* [len] encoded, [tiles_bytes] tiles, then their digests */
} entry;

struct vp_image_cache {
    pthread_mutex_t mu;
    entry *head, *tail;
    size_t bytes, max_bytes, entries;
    uint64_t hits, misses, evictions;
};

/* 64-bit hash of the encoded bytes, 8 at a time (a hit is confirmed by memcmp, so this
 * only needs to spread keys, not resist attacks). */
static uint64_t hash_bytes(const uint8_t *p, size_t n, int max_tiles)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ ((uint64_t)n * 0xff51afd7ed558ccdull) ^ (uint64_t)max_tiles;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    for (; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 33);
}

static size_t entry_cost(const entry *e)
{
    return sizeof *e + e->len + e->tiles_bytes + (size_t)e->n_tiles * VP_DIGEST_BYTES;
}

int vp_tile_set_reserve(vp_tile_set *set, size_t more, size_t tile_bytes)
{
    size_t n = set->n_tiles + more;
    if (n < more || (tile_bytes && n > (SIZE_MAX - 1) / tile_bytes) ||
        n > (SIZE_MAX - 1) / VP_DIGEST_BYTES)
        return -1;
    uint8_t *tiles = realloc(set->tiles, n * tile_bytes + 1);
    if (!tiles)
        return -1;
    set->tiles = tiles;
    uint8_t *digests = realloc(set->digests, n * VP_DIGEST_BYTES + 1);
    if (!digests)
        return -1;
    set->digests = digests;
    return 0;
}

void vp_tile_set_free(vp_tile_set *set)
{
    free(set->tiles);
    free(set->digests);
    *set = (vp_tile_set){0};
}

static void unlink_entry(vp_image_cache *c, entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void push_front(vp_image_cache *c, entry *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head)
        c->head->prev = e;
    c->head = e;
    if (!c->tail)
        c->tail = e;
}

static entry *find(vp_image_cache *c, uint64_t h, const uint8_t *data, size_t len, int max_tiles)
{
    for (entry *e = c->head; e; e = e->next)
        if (e->hash == h && e->len == len && e->max_tiles == max_tiles &&
            !memcmp(e->data, data, len))
            return e;
    return NULL;
}

vp_image_cache *vp_image_cache_new(size_t max_bytes)
{
    if (max_bytes == 0)
        return NULL;
    vp_image_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    if (pthread_mutex_init(&c->mu, NULL)) {
        free(c);
        return NULL;
    }
    c->max_bytes = max_bytes;
    return c;
}

static void free_entries(entry *head)
{
    for (entry *e = head, *next; e; e = next) {
        next = e->next;
        free(e->data);
        free(e);
    }
}

void vp_image_cache_free(vp_image_cache *c)
{
    if (!c)
        return;
    free_entries(c->head);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void vp_image_cache_reset(vp_image_cache *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    entry *head = c->head;
    c->head = c->tail = NULL;
    c->bytes = c->entries = 0;
    c->hits = c->misses = c->evictions = 0;
    pthread_mutex_unlock(&c->mu);
    free_entries(head);
}

int vp_image_cache_append(vp_image_cache *c, const uint8_t *data, size_t len, int max_tiles,
                          vp_tile_set *set, int *n_tiles)
{
    *n_tiles = 0;
    if (!c)
        return 0;
    uint64_t h = hash_bytes(data, len, max_tiles);
    pthread_mutex_lock(&c->mu);
    entry *e = find(c, h, data, len, max_tiles);
    int rc = 0;
    if (e) {
        size_t n = (size_t)e->n_tiles, tile_bytes = e->tiles_bytes / n;
        rc = vp_tile_set_reserve(set, n, tile_bytes) ? -1 : 1;
        if (rc == 1) {
            memcpy(set->tiles + set->n_tiles * tile_bytes, e->data + e->len, e->tiles_bytes);
            memcpy(set->digests + set->n_tiles * VP_DIGEST_BYTES,
                   e->data + e->len + e->tiles_bytes, n * VP_DIGEST_BYTES);
            set->n_tiles += n;
            *n_tiles = e->n_tiles;
            unlink_entry(c, e);
            push_front(c, e);
        }
    }
    if (rc == 1)
        c->hits++;
    else
        c->misses++; /* out of memory counts as a miss: the caller decodes */
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int vp_image_cache_get(vp_image_cache *c, const uint8_t *data, size_t len, int max_tiles,
                       uint8_t **u8, int *n_tiles)
{
    vp_tile_set set = {0};
    int rc = vp_image_cache_append(c, data, len, max_tiles, &set, n_tiles);
    free(set.digests);
    if (rc != 1) {
        free(set.tiles);
        set.tiles = NULL;
    }
    *u8 = set.tiles;
    return rc == 1;
}

void vp_image_cache_put(vp_image_cache *c, const uint8_t *data, size_t len, int max_tiles,
                        const uint8_t *u8, const uint8_t *digests, int n_tiles,
                        size_t tile_bytes)
{
    if (!c || n_tiles <= 0 || !tile_bytes)
        return;
    size_t tiles_bytes = (size_t)n_tiles * tile_bytes;
    size_t digest_bytes = (size_t)n_tiles * VP_DIGEST_BYTES;
    if (tiles_bytes / tile_bytes != (size_t)n_tiles || tiles_bytes > SIZE_MAX - digest_bytes)
        return;
    /* what entry_cost() will count, compared without overflowing */
    if (c->max_bytes < sizeof(entry) || len > c->max_bytes - sizeof(entry) ||
        tiles_bytes + digest_bytes > c->max_bytes - sizeof(entry) - len)
        return; /* larger than the whole budget */
    entry *e = calloc(1, sizeof *e);
    uint8_t *buf = e ? malloc(len + tiles_bytes + digest_bytes) : NULL;
    if (!buf) {
        free(e);
        return;
    }
    memcpy(buf, data, len);
    memcpy(buf + len, u8, tiles_bytes);
    memcpy(buf + len + tiles_bytes, digests, digest_bytes);
    *e = (entry){.hash = hash_bytes(data, len, max_tiles), .len = len, .max_tiles = max_tiles,
                 .n_tiles = n_tiles, .tiles_bytes = tiles_bytes, .data = buf};
    pthread_mutex_lock(&c->mu);
    if (find(c, e->hash, data, len, max_tiles)) { /* another thread was first */
        pthread_mutex_unlock(&c->mu);
        free(buf);
        free(e);
        return;
    }
    while (c->tail && c->bytes + entry_cost(e) > c->max_bytes) {
        entry *old = c->tail;
        unlink_entry(c, old);
        c->bytes -= entry_cost(old);
        c->entries--;
        c->evictions++;
        free(old->data);
        free(old);
    }
    push_front(c, e);
    c->bytes += entry_cost(e);
    c->entries++;
    pthread_mutex_unlock(&c->mu);
}

void vp_image_cache_stats_get(vp_image_cache *c, vp_image_cache_stats *s)
{
    memset(s, 0, sizeof *s);
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    *s = (vp_image_cache_stats){.hits = c->hits, .misses = c->misses, .evictions = c->evictions,
                                .entries = c->entries, .bytes = c->bytes, .max_bytes = c->max_bytes};
    pthread_mutex_unlock(&c->mu);
}
