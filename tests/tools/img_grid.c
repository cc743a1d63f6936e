/* img_grid: answers tiling queries read from stdin, one per line, for the oracle suite
 * (tests/image/suite_oracle.sh compares them with the model card's Python code):
 *   cand MIN MAX            -> "i,j i,j ..."  the candidate grids in the reference's order
 *   grid W H MIN MAX S      -> "i j"          the grid find_closest_aspect_ratio picks
 * Anything else prints "error ..." for that line. */
#include <stdio.h>
#include <string.h>

#include "engine/image/image.h"

int main(void)
{
    char line[256];
    static int cols[VP_TILING_MAX_NUM * VP_TILING_MAX_NUM], rows[VP_TILING_MAX_NUM * VP_TILING_MAX_NUM];
    const int cap = VP_TILING_MAX_NUM * VP_TILING_MAX_NUM;
    while (fgets(line, sizeof line, stdin)) {
        int min_num, max_num, size;
        unsigned w, h;
        if (sscanf(line, "cand %d %d", &min_num, &max_num) == 2) {
            int n = vp_tiling_candidates(min_num, max_num, cols, rows, cap);
            if (n < 0) {
                printf("error bad range\n");
                continue;
            }
            for (int i = 0; i < n; i++)
                printf("%s%d,%d", i ? " " : "", cols[i], rows[i]);
            printf("\n");
        } else if (sscanf(line, "grid %u %u %d %d %d", &w, &h, &min_num, &max_num, &size) == 5) {
            vp_tiling_params p;
            vp_tiling_params_default(&p);
            p.min_num = min_num;
            p.max_num = max_num;
            p.image_size = size;
            vp_tile_grid g;
            vp_error err = {0};
            if (vp_tiling_choose_grid(w, h, &p, &g, &err))
                printf("error %s\n", err.message);
            else
                printf("%d %d\n", g.cols, g.rows);
        } else {
            printf("error unknown query\n");
        }
    }
    return 0;
}
