/* The fused MLP kernel's tile order (engine/cuda_plan/tile_order.h, the function the
 * kernel itself calls): for every shape, group size, and blocks alone or in pairs, each
 * output tile is computed exactly once, and the only tile past the rows is the partner
 * of an odd last row tile in pairs; the tiles the GPU runs at once stay within a group of
 * rows (the L2 reuse the order is for). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cuda_plan/tile_order.h"
#include "tests/unit/check.h"

/* The kernel's walk: cluster tiles t of ceil(tiles_m / cl) x tiles_n, each giving row
 * tiles mc * cl + rank to its cl blocks; counts[m * tiles_n + n] += 1. Returns false when
 * a tile lands outside the grid of (row tiles rounded up to cl) x tiles_n. */
static bool walk(int tiles_m, int tiles_n, int rows_g, int cl, int *counts)
{
    int tiles_mc = (tiles_m + cl - 1) / cl, group = rows_g / cl > 0 ? rows_g / cl : 1;
    for (int t = 0; t < tiles_mc * tiles_n; t++) {
        int mc, nt;
        vp_tile_at(t, tiles_mc, tiles_n, group, &mc, &nt);
        if (mc < 0 || mc >= tiles_mc || nt < 0 || nt >= tiles_n)
            return false;
        for (int rank = 0; rank < cl; rank++)
            counts[(mc * cl + rank) * tiles_n + nt]++;
    }
    return true;
}

static void test_every_tile_once(void)
{
    static const int ns[] = {1, 2, 7, 112}, groups[] = {1, 3, 8, 16, 32};
    int shapes = 0, bad = 0;
    for (int tiles_m = 1; tiles_m <= 41; tiles_m++)
        for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
            for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++)
                for (int cl = 1; cl <= 2; cl++) {
                    int tiles_n = ns[a], rows = (tiles_m + 1) * tiles_n;
                    int *counts = calloc((size_t)rows, sizeof *counts);
                    bool inside = counts && walk(tiles_m, tiles_n, groups[g], cl, counts);
                    for (int m = 0; inside && m <= tiles_m; m++)
                        for (int n = 0; n < tiles_n; n++) {
                            /* past the rows: only an odd last row tile's partner */
                            int want = m < tiles_m ? 1 : cl == 2 && tiles_m % 2 ? 1 : 0;
                            inside = inside && counts[m * tiles_n + n] == want;
                        }
                    shapes++;
                    if (!inside) {
                        bad++;
                        fprintf(stderr, "tiles %d x %d, groups of %d, %d a cluster: a tile "
                                        "missed, repeated or out of the grid\n",
                                tiles_m, tiles_n, groups[g], cl);
                    }
                    free(counts);
                }
    CHECK_MSG(bad == 0, "%d of %d shapes", bad, shapes);
    CHECK(shapes == 41 * 4 * 5 * 2);
}

/* W1's MLP (6,139 rows: 48 x 112 tiles) on a 132-SM GPU, 16 row tiles a group: the first
 * wave's tiles use at most 16 row tiles and 9 column tiles (2 MiB of x's rows and 18 of
 * w13's at a time); in pairs (66 of them) the same rows. */
static void test_first_wave_local(void)
{
    for (int cl = 1; cl <= 2; cl++) {
        int tiles_mc = 48 / cl, group = 16 / cl, wave = 132 / cl, max_m = 0, max_n = 0;
        for (int t = 0; t < wave; t++) {
            int mc, nt;
            vp_tile_at(t, tiles_mc, 112, group, &mc, &nt);
            max_m = mc * cl + cl - 1 > max_m ? mc * cl + cl - 1 : max_m;
            max_n = nt > max_n ? nt : max_n;
        }
        CHECK_MSG(max_m < 16 && max_n < 9, "%d a cluster: row tiles up to %d, columns up to %d",
                  cl, max_m, max_n);
    }
}

int main(void)
{
    test_every_tile_once();
    test_first_wave_local();
    return check_summary("cuda_tile_order");
}
