/* The prefix KV cache's index: entries, their rows, least-recently-used eviction. */
#include "engine/prefix_cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    int32_t *ids;        /* [len] the prompt prefix's token ids */
    uint8_t *tiles;      /* [n_tiles][tile_bytes] what its image tokens show */
    size_t len, n_tiles, tile_bytes;
    size_t slot;         /* rows [slot, slot + len) of the backend's cache */
    uint64_t last_use;   /* pass number of its last use, for LRU */
    uint64_t pinned;     /* pass number that uses or writes it: not evictable then */
    bool valid;          /* rows written by a pass that succeeded */
} entry;

struct vp_prefix_cache {
    size_t rows, host_bytes_max, min_tokens;
    entry **e;           /* [n] in no particular order */
    size_t n, cap;
    uint64_t pass;
    bool looked_up;      /* the last find could match (cap >= min_tokens) */
    uint64_t pass_hits, pass_misses, pass_reused; /* counted when the pass succeeds */
    pthread_mutex_t mu;  /* guards st only: the rest is the engine thread's */
    vp_prefix_cache_stats st;
};

static size_t entry_host_bytes(const entry *x)
{
    return sizeof *x + x->len * sizeof *x->ids + x->n_tiles * x->tile_bytes;
}

vp_prefix_cache *vp_prefix_cache_new(size_t rows, size_t host_bytes, size_t min_tokens)
{
    if (rows == 0)
        return NULL;
    vp_prefix_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->rows = rows;
    c->host_bytes_max = host_bytes;
    c->min_tokens = min_tokens ? min_tokens : 1;
    c->st.rows = rows;
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

size_t vp_prefix_cache_auto_host_bytes(size_t rows, size_t cache_bytes, size_t tile_bytes,
                                       size_t tokens_per_tile, size_t min_tokens)
{
    const size_t floor = (size_t)256 << 20;
    size_t per_row = sizeof(int32_t) +
                     (tokens_per_tile ? (tile_bytes + tokens_per_tile - 1) / tokens_per_tile : 0);
    size_t entries = rows / (min_tokens ? min_tokens : 1) + 1;
    if (rows > (SIZE_MAX / 4) / per_row || entries > (SIZE_MAX / 4) / sizeof(entry))
        return cache_bytes / 4 > floor ? cache_bytes / 4 : floor;
    size_t bytes = rows * per_row + entries * sizeof(entry);
    if (bytes > cache_bytes / 4)
        bytes = cache_bytes / 4;
    return bytes > floor ? bytes : floor;
}

static void entry_free(entry *x)
{
    if (!x)
        return;
    free(x->ids);
    free(x->tiles);
    free(x);
}

void vp_prefix_cache_free(vp_prefix_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++)
        entry_free(c->e[i]);
    free(c->e);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Recomputes the gauges after entries came or went. */
static void update_gauges(vp_prefix_cache *c)
{
    size_t rows = 0, bytes = 0, valid = 0;
    for (size_t i = 0; i < c->n; i++) {
        rows += c->e[i]->len;
        bytes += entry_host_bytes(c->e[i]);
        valid += c->e[i]->valid;
    }
    pthread_mutex_lock(&c->mu);
    c->st.entries = valid;
    c->st.rows_used = rows;
    c->st.host_bytes = bytes;
    pthread_mutex_unlock(&c->mu);
}

static void remove_at(vp_prefix_cache *c, size_t i)
{
    entry_free(c->e[i]);
    c->e[i] = c->e[--c->n];
}

void vp_prefix_cache_begin(vp_prefix_cache *c)
{
    if (!c)
        return;
    c->pass++;
    c->pass_hits = c->pass_misses = c->pass_reused = 0;
}

/* Tiles needed by the first `images` image tokens. */
static size_t tiles_for(size_t images, size_t per_tile)
{
    return per_tile ? (images + per_tile - 1) / per_tile : 0;
}

/* How many leading rows of x serve a prompt: its ids agree, and every image token among
 * them shows the same tile. */
static size_t usable_rows(const entry *x, const int32_t *ids, size_t cap,
                          const vp_prefix_images *img)
{
    size_t n = x->len < cap ? x->len : cap, k = 0;
    while (k < n && x->ids[k] == ids[k])
        k++;
    /* walk the image tokens among the k: tile t must match before its first token */
    size_t images = 0, checked = 0; /* tiles compared equal so far */
    for (size_t i = 0; i < k; i++) {
        if (ids[i] != img->img_context)
            continue;
        size_t tile = img->tokens_per_tile ? images / img->tokens_per_tile : 0;
        if (tile >= checked) {
            if (tile >= x->n_tiles || tile >= img->n_tiles || img->tile_bytes != x->tile_bytes ||
                memcmp(x->tiles + tile * x->tile_bytes, img->tiles + tile * img->tile_bytes,
                       x->tile_bytes) != 0)
                return i; /* rows before this image token still hold */
            checked = tile + 1;
        }
        images++;
    }
    return k;
}

size_t vp_prefix_cache_find(vp_prefix_cache *c, const int32_t *ids, size_t cap,
                            const vp_prefix_images *img, size_t *slot)
{
    if (!c)
        return 0;
    c->looked_up = cap >= c->min_tokens;
    if (!c->looked_up)
        return 0;
    entry *best = NULL;
    size_t best_rows = 0;
    for (size_t i = 0; i < c->n; i++) {
        entry *x = c->e[i];
        if (!x->valid || x->ids[0] != ids[0])
            continue;
        size_t k = usable_rows(x, ids, cap, img);
        if (k > best_rows) {
            best_rows = k;
            best = x;
        }
    }
    if (!best || best_rows < c->min_tokens)
        return 0;
    *slot = best->slot;
    return best_rows;
}

void vp_prefix_cache_use(vp_prefix_cache *c, size_t slot, size_t len)
{
    if (!c)
        return;
    if (len) {
        c->pass_hits++;
        c->pass_reused += len;
    } else if (c->looked_up) {
        c->pass_misses++;
    }
    c->looked_up = false;
    for (size_t i = 0; len && i < c->n; i++) /* pinned, and the most recently used */
        if (c->e[i]->valid && c->e[i]->slot == slot)
            c->e[i]->last_use = c->e[i]->pinned = c->pass;
}

static int by_slot(const void *a, const void *b)
{
    const entry *x = *(entry *const *)a, *y = *(entry *const *)b;
    return (x->slot > y->slot) - (x->slot < y->slot);
}

/* First run of len free rows, or rows (none). */
static size_t find_gap(vp_prefix_cache *c, size_t len)
{
    if (c->n > 1)
        qsort(c->e, c->n, sizeof *c->e, by_slot);
    size_t at = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (c->e[i]->slot - at >= len)
            return at;
        at = c->e[i]->slot + c->e[i]->len;
    }
    return c->rows - at >= len ? at : c->rows;
}

/* Evicts the least recently used entry the pass does not pin; false when none. */
static bool evict_one(vp_prefix_cache *c)
{
    size_t victim = c->n;
    for (size_t i = 0; i < c->n; i++)
        if (c->e[i]->pinned != c->pass &&
            (victim == c->n || c->e[i]->last_use < c->e[victim]->last_use))
            victim = i;
    if (victim == c->n)
        return false;
    remove_at(c, victim);
    pthread_mutex_lock(&c->mu);
    c->st.evictions++;
    pthread_mutex_unlock(&c->mu);
    return true;
}

static size_t host_bytes(const vp_prefix_cache *c)
{
    size_t b = 0;
    for (size_t i = 0; i < c->n; i++)
        b += entry_host_bytes(c->e[i]);
    return b;
}

bool vp_prefix_cache_reserve(vp_prefix_cache *c, const int32_t *ids, size_t len,
                             const vp_prefix_images *img, size_t *slot)
{
    if (!c || len < c->min_tokens || len > c->rows)
        return false;
    size_t images = 0;
    for (size_t i = 0; i < len; i++)
        images += ids[i] == img->img_context;
    size_t n_tiles = tiles_for(images, img->tokens_per_tile);
    if (n_tiles > img->n_tiles)
        return false; /* the prompt's image tokens outnumber its tiles: not ours to judge */
    entry *x = calloc(1, sizeof *x);
    if (!x)
        return false;
    x->len = len;
    x->n_tiles = n_tiles;
    x->tile_bytes = img->tile_bytes;
    if (entry_host_bytes(x) > c->host_bytes_max || (c->n == c->cap && c->cap > SIZE_MAX / 2)) {
        free(x);
        return false;
    }
    x->ids = malloc(len * sizeof *x->ids);
    x->tiles = n_tiles ? malloc(n_tiles * img->tile_bytes) : NULL;
    if (!x->ids || (n_tiles && !x->tiles)) {
        entry_free(x);
        return false;
    }
    memcpy(x->ids, ids, len * sizeof *ids);
    if (n_tiles)
        memcpy(x->tiles, img->tiles, n_tiles * img->tile_bytes);
    /* room: host bytes, then rows, evicting the least recently used */
    while (host_bytes(c) + entry_host_bytes(x) > c->host_bytes_max)
        if (!evict_one(c)) {
            entry_free(x);
            update_gauges(c);
            return false;
        }
    size_t at;
    while ((at = find_gap(c, len)) == c->rows)
        if (!evict_one(c)) {
            entry_free(x);
            update_gauges(c);
            return false;
        }
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 16;
        entry **e = realloc(c->e, cap * sizeof *e);
        if (!e) {
            entry_free(x);
            update_gauges(c);
            return false;
        }
        c->e = e;
        c->cap = cap;
    }
    x->slot = at;
    x->pinned = x->last_use = c->pass;
    c->e[c->n++] = x;
    *slot = at;
    update_gauges(c);
    return true;
}

void vp_prefix_cache_clear(vp_prefix_cache *c)
{
    if (!c)
        return;
    while (c->n)
        remove_at(c, c->n - 1);
    update_gauges(c);
}

void vp_prefix_cache_end(vp_prefix_cache *c, bool ok)
{
    if (!c)
        return;
    uint64_t stored = 0;
    for (size_t i = c->n; i-- > 0;) {
        entry *x = c->e[i];
        if (x->valid || x->pinned != c->pass)
            continue;
        if (ok) {
            x->valid = true;
            stored++;
        } else {
            remove_at(c, i);
        }
    }
    pthread_mutex_lock(&c->mu);
    c->st.stored += stored;
    if (ok) { /* a failed pass is retried: its lookups count then */
        c->st.hits += c->pass_hits;
        c->st.misses += c->pass_misses;
        c->st.tokens_reused += c->pass_reused;
    }
    pthread_mutex_unlock(&c->mu);
    c->pass_hits = c->pass_misses = c->pass_reused = 0;
    update_gauges(c);
}

void vp_prefix_cache_reset(vp_prefix_cache *c)
{
    if (!c)
        return;
    vp_prefix_cache_clear(c);
    pthread_mutex_lock(&c->mu);
    c->st = (vp_prefix_cache_stats){.entries = c->st.entries, .rows_used = c->st.rows_used,
                                    .rows = c->st.rows, .host_bytes = c->st.host_bytes};
    pthread_mutex_unlock(&c->mu);
}

void vp_prefix_cache_stats_get(const vp_prefix_cache *c, vp_prefix_cache_stats *s)
{
    memset(s, 0, sizeof *s);
    if (!c)
        return;
    pthread_mutex_lock((pthread_mutex_t *)&c->mu);
    *s = c->st;
    pthread_mutex_unlock((pthread_mutex_t *)&c->mu);
}
