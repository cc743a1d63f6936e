/* InternVL dynamic tiling (the model card's dynamic_preprocess): choose a grid of
 * i columns x j rows of S x S tiles whose aspect ratio is closest to the image's,
 * resize the image to (S*i, S*j), cut the tiles row-major, and append a thumbnail (the
 * whole image resized to S x S) when there is more than one tile.
 *
 * The reference builds its candidates as a Python set of (i, j) tuples and sorts it by
 * i*j; Python's sort is stable, so grids with equal products keep the set's iteration
 * order, and find_closest_aspect_ratio's tie rule ("on an equal difference keep the
 * later candidate if area > 0.5 * S*S * i*j") depends on that order. The order is
 * deterministic (small ints and tuples of them hash the same in every CPython run), so
 * it is reproduced here by inserting the tuples, in the generator's order, into a model
 * of CPython's set table (Objects/setobject.c: linear probing over 9 slots, then
 * perturbed probing; growth to 4x the used count when 3/5 full) with CPython's tuple
 * hash (the xxHash-based one of CPython 3.8 and later). */
#include <stdlib.h>
#include <string.h>

#include "engine/image/image.h"

void vp_tiling_params_default(vp_tiling_params *p)
{
    p->min_num = 1;
    p->max_num = 12;
    p->image_size = 448;
    p->use_thumbnail = true;
    p->threads = 1;
}

int vp_tiling_params_check(const vp_tiling_params *p, vp_error *err)
{
    /* min over max is allowed: the model card then finds no grid and takes 1 x 1 */
    if (p->min_num < 1 || p->max_num < 1 || p->min_num > VP_TILING_MAX_NUM ||
        p->max_num > VP_TILING_MAX_NUM)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "max_tiles",
                       "tile counts min (%d) and max (%d) must be within 1..%d", p->min_num,
                       p->max_num, VP_TILING_MAX_NUM);
    if (p->image_size < 1 || p->image_size > VP_TILING_MAX_IMAGE_SIZE)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "image_size", "tile size %d is outside 1..%d",
                       p->image_size, VP_TILING_MAX_IMAGE_SIZE);
    return 0;
}

/* ---- CPython's set iteration order for (i, j) tuples of small ints ---- */

#define XXPRIME_1 11400714785074694791ULL
#define XXPRIME_2 14029467366897019727ULL
#define XXPRIME_5 2870177450012600261ULL

/* hash((a, b)) for ints with hash(n) == n (0 <= n, n != -1). */
static uint64_t py_tuple2_hash(uint64_t a, uint64_t b)
{
    uint64_t acc = XXPRIME_5;
    uint64_t lanes[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        acc += lanes[i] * XXPRIME_2;
        acc = (acc << 31) | (acc >> 33);
        acc *= XXPRIME_1;
    }
    acc += 2 ^ (XXPRIME_5 ^ 3527539ULL);
    if (acc == (uint64_t)-1)
        return 1546275796;
    return acc;
}

#define LINEAR_PROBES 9
#define PERTURB_SHIFT 5
#define SET_MINSIZE 8

typedef struct py_set {
    size_t mask;       /* table size - 1 */
    size_t used;       /* active entries (no deletions here, so fill == used) */
    int32_t *slot;     /* [mask + 1]: key index or -1 */
    uint64_t *hash;    /* [mask + 1] */
} py_set;

/* set_insert_clean: place a key known to be absent, in a table without dummies. */
static void insert_clean(py_set *s, int32_t key, uint64_t h)
{
    size_t perturb = h, i = h & s->mask;
    for (;;) {
        if (s->slot[i] < 0)
            goto found;
        if (i + LINEAR_PROBES <= s->mask) {
            for (size_t j = 1; j <= LINEAR_PROBES; j++)
                if (s->slot[i + j] < 0) {
                    i += j;
                    goto found;
                }
        }
        perturb >>= PERTURB_SHIFT;
        i = (i * 5 + 1 + perturb) & s->mask;
    }
found:
    s->slot[i] = key;
    s->hash[i] = h;
}

static int table_alloc(py_set *s, size_t size)
{
    s->mask = size - 1;
    s->slot = malloc(sizeof(int32_t) * size);
    s->hash = malloc(sizeof(uint64_t) * size);
    if (!s->slot || !s->hash)
        return -1;
    for (size_t i = 0; i < size; i++)
        s->slot[i] = -1;
    return 0;
}

/* set_table_resize: the smallest power of two above minused, entries re-inserted in
 * the old table's slot order. */
static int table_resize(py_set *s, size_t minused)
{
    size_t size = SET_MINSIZE;
    while (size <= minused)
        size <<= 1;
    py_set old = *s;
    if (table_alloc(s, size)) {
        free(old.slot);
        free(old.hash);
        return -1;
    }
    for (size_t i = 0; i <= old.mask; i++)
        if (old.slot[i] >= 0)
            insert_clean(s, old.slot[i], old.hash[i]);
    free(old.slot);
    free(old.hash);
    return 0;
}

/* set_add_entry for a key that is not in the set yet (the caller deduplicates). */
static int set_add_new(py_set *s, int32_t key, uint64_t h)
{
    size_t perturb = h, i = h & s->mask;
    for (;;) {
        size_t probes = (i + LINEAR_PROBES <= s->mask) ? LINEAR_PROBES : 0;
        for (size_t j = 0; j <= probes; j++) {
            if (s->slot[i + j] < 0) {
                s->slot[i + j] = key;
                s->hash[i + j] = h;
                s->used++;
                if (s->used * 5 < s->mask * 3)
                    return 0;
                return table_resize(s, s->used > 50000 ? s->used * 2 : s->used * 4);
            }
        }
        perturb >>= PERTURB_SHIFT;
        i = (i * 5 + 1 + perturb) & s->mask;
    }
}

int vp_tiling_candidates(int min_num, int max_num, int *cols, int *rows, int cap)
{
    if (min_num < 1 || max_num > VP_TILING_MAX_NUM)
        return -1;
    if (max_num < min_num)
        return 0; /* the reference's set is empty */
    /* The reference's generator: for n in min..max, i in 1..n, j in 1..n, if
     * min <= i*j <= max; the set keeps first occurrences. */
    const int side = VP_TILING_MAX_NUM + 1;
    uint8_t *seen = calloc((size_t)side * side, 1);
    int32_t *keys = malloc(sizeof(int32_t) * (size_t)side * side);
    py_set s = {0};
    int count = -1;
    if (!seen || !keys || table_alloc(&s, SET_MINSIZE))
        goto done;
    int n_keys = 0;
    for (int n = min_num; n <= max_num; n++)
        for (int i = 1; i <= n; i++)
            for (int j = 1; j <= n; j++) {
                if (i * j > max_num || i * j < min_num || seen[i * side + j])
                    continue;
                seen[i * side + j] = 1;
                keys[n_keys] = i * side + j;
                if (set_add_new(&s, n_keys, py_tuple2_hash((uint64_t)i, (uint64_t)j)))
                    goto done;
                n_keys++;
            }
    /* Iteration order = slot order; then a stable sort by i*j (counting sort). */
    count = 0;
    for (int prod = min_num; prod <= max_num; prod++)
        for (size_t t = 0; t <= s.mask; t++) {
            if (s.slot[t] < 0)
                continue;
            int key = keys[s.slot[t]], i = key / side, j = key % side;
            if (i * j != prod)
                continue;
            if (count < cap) {
                cols[count] = i;
                rows[count] = j;
            }
            count++;
        }
done:
    free(seen);
    free(keys);
    free(s.slot);
    free(s.hash);
    return count;
}

/* ---- grid choice ---- */

int vp_tiling_choose_grid(uint32_t width, uint32_t height, const vp_tiling_params *p,
                          vp_tile_grid *grid, vp_error *err)
{
    if (vp_tiling_params_check(p, err))
        return -1;
    if (!width || !height)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "image", "image of size %ux%u", width, height);
    enum { CAP = VP_TILING_MAX_NUM * VP_TILING_MAX_NUM };
    int *cols = malloc(sizeof(int) * 2 * CAP), *rows = cols + CAP;
    int n = cols ? vp_tiling_candidates(p->min_num, p->max_num, cols, rows, CAP) : -1;
    if (n < 0) {
        free(cols);
        return vp_fail(err, VP_ERR_NOMEM, "image", "out of memory listing tile grids");
    }
    /* find_closest_aspect_ratio, in double as Python's floats. */
    double aspect = (double)width / (double)height;
    double best_diff = __builtin_inf();
    int best_i = 1, best_j = 1; /* find_closest_aspect_ratio's answer when no grid is listed */
    /* area is exact in double: width * height <= 2^40 under any allowed limit. */
    double area = (double)width * (double)height;
    for (int c = 0; c < n; c++) {
        double target = (double)cols[c] / (double)rows[c];
        double diff = aspect - target;
        if (diff < 0)
            diff = -diff;
        if (diff < best_diff) {
            best_diff = diff;
            best_i = cols[c];
            best_j = rows[c];
        } else if (diff == best_diff) {
            double threshold = 0.5 * p->image_size * p->image_size * cols[c] * rows[c];
            if (area > threshold) {
                best_i = cols[c];
                best_j = rows[c];
            }
        }
    }
    free(cols);
    grid->cols = best_i;
    grid->rows = best_j;
    grid->thumbnail = p->use_thumbnail && best_i * best_j != 1;
    grid->n_tiles = best_i * best_j + (grid->thumbnail ? 1 : 0);
    return 0;
}
