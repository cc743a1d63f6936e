/* The order in which the fused MLP kernel (engine/cuda/k_mlp_gated.cu) walks its output
 * tiles, as one function host C and CUDA device code share, so the tests on the CPU
 * (tests/unit/test_cuda_tile_order.c) check the order the kernel uses: every tile once,
 * whatever the shape, the group size, or blocks in pairs.
 * Tile t of tiles_m x tiles_n: groups of `rows_g` row tiles, rows fastest within a group,
 * so the blocks running at once (a few hundred consecutive t) cover a few column tiles of
 * those rows, and share x's rows and w13's in L2. */
#ifndef VP_TILE_ORDER_H
#define VP_TILE_ORDER_H

#if defined(__CUDACC__)
#define VP_TO_HD __host__ __device__
#else
#define VP_TO_HD
#endif

VP_TO_HD static inline void vp_tile_at(int t, int tiles_m, int tiles_n, int rows_g, int *mt,
                                       int *nt)
{
    int group = rows_g * tiles_n, first = t / group * rows_g;
    int gm = tiles_m - first < rows_g ? tiles_m - first : rows_g, local = t % group;
    *mt = first + local % gm;
    *nt = local / gm;
}

#endif
