/* The prefix KV cache's index: entries, their rows, least-recently-used eviction. */
#include "engine/prefix_cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    int32_t *ids;        /* [len] the prompt prefix's token ids */
    uint8_t *tiles;      /* [n_tiles][tile_bytes] what its image tokens show (a root's) */
    size_t len, n_tiles, tile_bytes;
    /* an extension holds rows [base, len) only; rows [0, base) are its parent's (whose
     * own parent may hold fewer still): base 0 and no parent for a root */
    struct entry *parent;
    size_t base, depth;  /* depth: parents above it */
    size_t slot;         /* rows [slot, slot + len - base) of the backend's cache */
    uint64_t last_use;   /* pass number of its last use, for LRU (a parent's >= its
                          * extensions': using one touches its parents) */
    uint64_t pinned;     /* pass number that uses or writes it: not evictable then */
    uint64_t probe;      /* the find that computed probe_rows (one tile compare per find) */
    size_t probe_rows;
    bool valid;          /* rows written by a pass that succeeded */
} entry;

struct vp_prefix_cache {
    size_t rows, host_bytes_max, min_tokens;
    entry **e;           /* [n] in no particular order */
    size_t n, cap;
    uint64_t pass, finds;
    struct entry *found;  /* the last find's entry and rows: what an extension may extend */
    size_t found_rows;
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
        rows += c->e[i]->len - c->e[i]->base;
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

/* Removes x and every entry that extends it (their rows would lose their start); returns
 * how many went. */
static size_t remove_tree(vp_prefix_cache *c, entry *x)
{
    size_t gone = 0;
    for (size_t i = 0; i < c->n;) {
        if (c->e[i]->parent == x) {
            gone += remove_tree(c, c->e[i]);
            i = 0; /* removal reorders the array */
        } else {
            i++;
        }
    }
    for (size_t i = 0; i < c->n; i++)
        if (c->e[i] == x) {
            remove_at(c, i);
            return gone + 1;
        }
    return gone;
}

static entry *entry_at(const vp_prefix_cache *c, size_t slot)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->e[i]->slot == slot)
            return c->e[i];
    return NULL;
}

void vp_prefix_cache_begin(vp_prefix_cache *c)
{
    if (!c)
        return;
    c->pass++;
    c->pass_hits = c->pass_misses = c->pass_reused = 0;
    c->looked_up = false;
    c->found = NULL;
}

/* Tiles needed by the first `images` image tokens. */
static size_t tiles_for(size_t images, size_t per_tile)
{
    return per_tile ? (images + per_tile - 1) / per_tile : 0;
}

/* How many leading rows of root entry x serve a prompt: its ids agree, and every image
 * token among them shows the same tile. */
static size_t root_rows(const entry *x, const int32_t *ids, size_t cap,
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

/* The same for any entry: an extension serves its parent's rows up to its base, then its
 * own while the ids agree (it holds no image token). Each entry is worked out once per
 * find (a parent's tiles are compared once, however many extensions it has); the result
 * for a smaller cap is min(rows, cap). */
static size_t usable_rows(vp_prefix_cache *c, entry *x, const int32_t *ids, size_t cap,
                          const vp_prefix_images *img)
{
    if (x->probe == c->finds)
        return x->probe_rows;
    size_t k;
    if (!x->parent) {
        k = root_rows(x, ids, cap, img);
    } else {
        k = usable_rows(c, x->parent, ids, cap, img);
        if (k >= x->base) {
            size_t n = x->len < cap ? x->len : cap;
            for (k = x->base; k < n && x->ids[k] == ids[k];)
                k++;
        }
    }
    x->probe = c->finds;
    x->probe_rows = k;
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
    c->finds++;
    c->found = NULL;
    entry *best = NULL;
    size_t best_rows = 0;
    for (size_t i = 0; i < c->n; i++) {
        entry *x = c->e[i];
        if (!x->valid || x->ids[0] != ids[0])
            continue;
        size_t k = usable_rows(c, x, ids, cap, img);
        if (x->parent && k <= x->base)
            continue; /* its parent gives the same rows in fewer runs */
        /* ties: fewer runs, then the lower slot (not the array's order, which a store's
         * search for room re-sorts: a second find in the pass must give the same entry) */
        if (k > best_rows || (k == best_rows && best &&
                              (x->depth < best->depth ||
                               (x->depth == best->depth && x->slot < best->slot)))) {
            best_rows = k;
            best = x;
        }
    }
    if (!best || best_rows < c->min_tokens)
        return 0;
    c->found = best;
    c->found_rows = best_rows;
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
    /* pinned with its parents, and the most recently used */
    for (entry *x = len ? entry_at(c, slot) : NULL; x; x = x->parent)
        x->last_use = x->pinned = c->pass;
}

void vp_prefix_cache_pin(vp_prefix_cache *c, size_t slot)
{
    for (entry *x = c ? entry_at(c, slot) : NULL; x; x = x->parent)
        x->last_use = x->pinned = c->pass;
}

size_t vp_prefix_cache_runs(const vp_prefix_cache *c, size_t slot, size_t len,
                            vp_prefix_run *runs)
{
    const entry *chain[VP_PREFIX_CACHE_MAX_RUNS];
    size_t n = 0;
    for (const entry *x = c ? entry_at(c, slot) : NULL; x; x = x->parent) {
        if (n == VP_PREFIX_CACHE_MAX_RUNS)
            return 0;
        chain[n++] = x;
    }
    if (n == 0 || len > chain[0]->len)
        return 0;
    size_t count = 0;
    /* each entry up to where the next one down the chain takes over (its base) */
    for (size_t i = n; i-- > 0 && chain[i]->base < len;) {
        size_t end = i ? chain[i - 1]->base : chain[i]->len;
        end = end < len ? end : len;
        runs[count++] = (vp_prefix_run){.slot = chain[i]->slot, .len = end - chain[i]->base};
    }
    return count;
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
        at = c->e[i]->slot + (c->e[i]->len - c->e[i]->base);
    }
    return c->rows - at >= len ? at : c->rows;
}

/* Evicts the least recently used entry the pass does not pin; false when none. */
static bool evict_one(vp_prefix_cache *c)
{
    /* ties: the deeper first, an extension before the parent it would take along */
    size_t victim = c->n;
    for (size_t i = 0; i < c->n; i++) {
        const entry *x = c->e[i], *v = victim < c->n ? c->e[victim] : NULL;
        if (x->pinned != c->pass &&
            (!v || x->last_use < v->last_use || (x->last_use == v->last_use && x->depth > v->depth)))
            victim = i;
    }
    if (victim == c->n)
        return false;
    size_t gone = remove_tree(c, c->e[victim]);
    pthread_mutex_lock(&c->mu);
    c->st.evictions += gone;
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

/* Makes room for x (its host bytes, then its own rows, evicting the least recently used
 * entries the pass does not pin) and adds it, pinned by the pass; frees it when it cannot. */
static bool insert(vp_prefix_cache *c, entry *x, size_t *slot)
{
    size_t rows = x->len - x->base, at;
    bool ok = entry_host_bytes(x) <= c->host_bytes_max && !(c->n == c->cap && c->cap > SIZE_MAX / 2);
    while (ok && host_bytes(c) + entry_host_bytes(x) > c->host_bytes_max)
        ok = evict_one(c);
    while (ok && (at = find_gap(c, rows)) == c->rows)
        ok = evict_one(c);
    if (ok && c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 16;
        entry **e = realloc(c->e, cap * sizeof *e);
        ok = e != NULL;
        if (ok) {
            c->e = e;
            c->cap = cap;
        }
    }
    if (!ok) {
        entry_free(x);
        update_gauges(c);
        return false;
    }
    x->slot = at;
    x->pinned = x->last_use = c->pass;
    c->e[c->n++] = x;
    *slot = at;
    update_gauges(c);
    return true;
}

/* A new entry holding ids [0, len); NULL when out of memory. */
static entry *entry_new(const int32_t *ids, size_t len, size_t n_tiles, size_t tile_bytes)
{
    entry *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    x->len = len;
    x->n_tiles = n_tiles;
    x->tile_bytes = tile_bytes;
    x->ids = malloc(len * sizeof *x->ids);
    x->tiles = n_tiles ? malloc(n_tiles * tile_bytes) : NULL;
    if (!x->ids || (n_tiles && !x->tiles)) {
        entry_free(x);
        return NULL;
    }
    memcpy(x->ids, ids, len * sizeof *ids);
    return x;
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
    entry sized = {.len = len, .n_tiles = n_tiles, .tile_bytes = img->tile_bytes};
    if (entry_host_bytes(&sized) > c->host_bytes_max)
        return false; /* over the host bound alone: nothing allocated for it */
    entry *x = entry_new(ids, len, n_tiles, img->tile_bytes);
    if (!x)
        return false;
    if (n_tiles)
        memcpy(x->tiles, img->tiles, n_tiles * img->tile_bytes);
    return insert(c, x, slot);
}

bool vp_prefix_cache_extend(vp_prefix_cache *c, const int32_t *ids, size_t len, size_t from,
                            int32_t img_context, size_t parent_slot, size_t *slot)
{
    /* the entry the last find gave this prompt, so its ids and tiles were compared; the
     * extension starts inside the rows it found and past the entry's own start (rows
     * before that are its parent's: extend that one) */
    entry *parent = c ? entry_at(c, parent_slot) : NULL;
    if (!parent || parent != c->found || !parent->valid || from > c->found_rows ||
        from <= parent->base || from >= len || len - from > c->rows ||
        parent->depth + 1 >= VP_PREFIX_CACHE_MAX_RUNS)
        return false;
    for (size_t i = from; i < len; i++)
        if (ids[i] == img_context)
            return false; /* its image tokens would need tiles: a root's job */
    for (size_t i = 0; i < from; i++)
        if (ids[i] != parent->ids[i])
            return false; /* not what the pass loads */
    entry *x = entry_new(ids, len, 0, 0);
    if (!x)
        return false;
    x->parent = parent;
    x->base = from;
    x->depth = parent->depth + 1;
    for (entry *p = parent; p; p = p->parent) /* its rows must outlive the reservation */
        p->pinned = p->last_use = c->pass;
    return insert(c, x, slot);
}

void vp_prefix_cache_clear(vp_prefix_cache *c)
{
    if (!c)
        return;
    while (c->n)
        remove_at(c, c->n - 1);
    update_gauges(c);
}

/* Ends the pass: its reserved entries valid (ok) or dropped; its lookups counted when
 * ok and `lookups`. */
static void finish(vp_prefix_cache *c, bool ok, bool lookups)
{
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
    if (ok && lookups) { /* a failed pass is retried: its lookups count then */
        c->st.hits += c->pass_hits;
        c->st.misses += c->pass_misses;
        c->st.tokens_reused += c->pass_reused;
    }
    if (ok && !lookups)
        c->st.warm_ups++;
    pthread_mutex_unlock(&c->mu);
    c->pass_hits = c->pass_misses = c->pass_reused = 0;
    update_gauges(c);
}

void vp_prefix_cache_end(vp_prefix_cache *c, bool ok)
{
    if (c)
        finish(c, ok, true);
}

void vp_prefix_cache_end_warm_up(vp_prefix_cache *c)
{
    if (c)
        finish(c, true, false);
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
