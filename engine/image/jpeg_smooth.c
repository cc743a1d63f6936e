/* Block smoothing as libjpeg-turbo 2.1.5's decompress_smooth_data computes it (jdcoefct.c,
 * jdphuff.c), the facts this follows:
 * - coef_bits: each scan start sets, for its components, prev[k] = cur[k] (or 0 in the
 *   file's first scan) for k from min(Ss, 1) to max(Se, 9), then cur[k] = Al for k in
 *   Ss..Se;
 * - smoothing runs when every component has a latched table whose natural positions 0, 1,
 *   8, 16, 9, 2, 3, 10, 17, 24 are nonzero and a DC scan, and some cur[1..9] != 0;
 * - iMCU rows after the last scan's last good one use prev (-1 in a one-scan file);
 * - with all of bits 1..9 at -1, nine AC coefficients and the DC value are estimated from
 *   a 5 x 5 neighbourhood with Gaussian-like weights; otherwise AC01, AC10, AC20, AC11 and
 *   AC02 with the Annex K.8 rule widened to 5 x 5; an AC estimate only replaces a zero
 *   coefficient whose bits are not all known, and is capped below 2^Al when Al > 0;
 * - the neighbours' DC values come through sliding registers, columns x - 2 .. x + 2,
 *   loaded with column x + 1 while x + 1 is in the image and x + 2 while x + 2 is: the
 *   edge column repeats, except in a component two blocks wide, whose registers hold
 *   column 0 where x + 2 would be (libjpeg-turbo 3.x loads both at the first column);
 * - rows: y - 1 but in the first block row, y - 2 from the third iMCU row on (else y - 1's
 *   choice), y + 1 but in the last block row, y + 2 while two more iMCU rows follow (else
 *   y + 1's choice). 3.x decides per block row instead, so the two differ at v = 2; these
 *   rules (not in the 3.x source read for the rest) were found against Pillow 9.4 with
 *   libjpeg-turbo 2.1.5 on greyscale files of every sampling from 1x1 to 2x2, cut after
 *   each scan: every candidate choice of rows tried per block, one matched. */
#include "engine/image/jpeg_smooth.h"

#include <string.h>

#include "engine/image/jpeg_pixels.h"

void vp_jpeg_bits_init(vp_jpeg_bits *b)
{
    for (int k = 0; k < 10; k++)
        b->cur[k] = b->prev[k] = -1;
}

void vp_jpeg_bits_scan(vp_jpeg_bits *b, int scan_number, int ss, int se, int al)
{
    for (int k = ss < 1 ? ss : 1; k <= (se > 9 ? se : 9); k++)
        if (k < 10)
            b->prev[k] = scan_number > 1 ? b->cur[k] : 0;
    for (int k = ss; k <= se && k < 10; k++)
        b->cur[k] = al;
}

/* Natural positions of zig-zag coefficients 0..9. */
static const int natural_of[10] = {0, 1, 8, 16, 9, 2, 3, 10, 17, 24};

int vp_jpeg_smoothing_applies(const vp_jpeg_smooth_comp *comps, int n_comp)
{
    int useful = 0;
    for (int c = 0; c < n_comp; c++) {
        if (!comps[c].quant || comps[c].bits->cur[0] < 0)
            return 0;
        for (int k = 0; k < 10; k++)
            if (comps[c].quant[natural_of[k]] == 0)
                return 0;
        for (int k = 1; k < 10; k++)
            useful |= comps[c].bits->cur[k] != 0;
    }
    return useful;
}

/* One estimate's weights on the DC values around the block: rows top to bottom, columns
 * left to right, the block itself at [2][2]; zz: the coefficient's zig-zag index. */
typedef struct {
    int zz;
    int16_t w[5][5];
} dc_weights;

/* No AC coefficient known yet: AC01, AC10, AC20, AC11, AC02, AC03, AC12, AC21, AC30. */
static const dc_weights from_dc_only[9] = {
    {1, {{-1, -1, 0, 1, 1}, {-3, 13, 0, -13, 3}, {-3, 38, 0, -38, 3}, {-3, 13, 0, -13, 3},
         {-1, -1, 0, 1, 1}}},
    {2, {{-1, -3, -3, -3, -1}, {-1, 13, 38, 13, -1}, {0, 0, 0, 0, 0}, {1, -13, -38, -13, 1},
         {1, 3, 3, 3, 1}}},
    {3, {{0, 0, 1, 0, 0}, {0, 2, 7, 2, 0}, {0, -5, -14, -5, 0}, {0, 2, 7, 2, 0}, {0, 0, 1, 0, 0}}},
    {4, {{-1, 0, 0, 0, 1}, {0, 9, 0, -9, 0}, {0, 0, 0, 0, 0}, {0, -9, 0, 9, 0}, {1, 0, 0, 0, -1}}},
    {5, {{0, 0, 0, 0, 0}, {0, 2, -5, 2, 0}, {1, 7, -14, 7, 1}, {0, 2, -5, 2, 0}, {0, 0, 0, 0, 0}}},
    {6, {{0}, {0, 1, 0, -1, 0}, {0, 2, 0, -2, 0}, {0, 1, 0, -1, 0}, {0}}},
    {7, {{0}, {0, 1, -3, 1, 0}, {0}, {0, -1, 3, -1, 0}, {0}}},
    {8, {{0}, {0, 1, 0, -1, 0}, {0, -3, 0, 3, 0}, {0, 1, 0, -1, 0}, {0}}},
    {9, {{0}, {0, 1, 2, 1, 0}, {0}, {0, -1, -2, -1, 0}, {0}}},
};

/* Some AC coefficient known: AC01, AC10, AC20, AC11, AC02. */
static const dc_weights beside_ac[5] = {
    {1, {{0}, {0}, {-7, 50, 0, -50, 7}, {0}, {0}}},
    {2, {{0, 0, -7, 0, 0}, {0, 0, 50, 0, 0}, {0}, {0, 0, -50, 0, 0}, {0, 0, 7, 0, 0}}},
    {3, {{0, 0, -1, 0, 0}, {0, 0, 13, 0, 0}, {0, 0, -24, 0, 0}, {0, 0, 13, 0, 0}, {0, 0, -1, 0, 0}}},
    {4, {{0, -1, 0, 1, 0}, {-1, 10, 0, -10, 1}, {0}, {1, -10, 0, 10, -1}, {0, 1, 0, -1, 0}}},
    {5, {{0}, {0}, {-1, 13, -24, 13, -1}, {0}, {0}}},
};

/* The DC value itself, when no AC coefficient is known. */
static const int16_t dc_itself[5][5] = {{-2, -6, -8, -6, -2},
                                        {-6, 6, 42, 6, -6},
                                        {-8, 42, 152, 42, -8},
                                        {-6, 6, 42, 6, -6},
                                        {-2, -6, -8, -6, -2}};

static int64_t weigh(const int16_t w[5][5], const int dc[5][5])
{
    int64_t sum = 0;
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 5; j++)
            sum += (int64_t)w[i][j] * dc[i][j];
    return sum;
}

/* num / (256 q) rounded half away from zero, capped below 2^al when al > 0, in libjpeg's
 * types: the quotient truncated to int, the result to a 16-bit coefficient. */
static short estimate(int64_t num, int64_t q, int al)
{
    int64_t mag = ((q << 7) + (num < 0 ? -num : num)) / (q << 8);
    uint32_t p = (uint32_t)(uint64_t)mag;
    if (al > 0 && (int32_t)p >= (1 << al))
        p = (1u << al) - 1;
    if (num < 0)
        p = 0u - p;
    return (short)(uint16_t)p;
}

/* The block's workspace with the estimates that apply under bits. */
static void smooth_block(short ws[64], const int dc[5][5], const int *bits, int dc_only,
                         const uint16_t *quant)
{
    int64_t q00 = quant[0];
    const dc_weights *set = dc_only ? from_dc_only : beside_ac;
    int n = dc_only ? 9 : 5;
    for (int e = 0; e < n; e++) {
        int zz = set[e].zz, pos = natural_of[zz];
        if (bits[zz] == 0 || ws[pos] != 0)
            continue;
        ws[pos] = estimate(q00 * weigh(set[e].w, dc), quant[pos], bits[zz]);
    }
    if (dc_only)
        ws[0] = estimate(q00 * weigh(dc_itself, dc), q00, 0);
}

void vp_jpeg_smooth_idct(const vp_jpeg_smooth_comp *c, size_t imcu_rows, size_t last_good_row,
                         int n_scans)
{
    size_t v = (size_t)c->v, wide = c->blocks_wide;
    int prev[10];
    for (int k = 0; k < 10; k++)
        prev[k] = n_scans > 1 ? c->bits->prev[k] : -1;
    for (size_t row = 0; row < imcu_rows; row++) {
        size_t rows = v;
        if (row + 1 == imcu_rows && c->blocks_high % v)
            rows = c->blocks_high % v;
        const int *bits = row > last_good_row ? prev : c->bits->cur;
        int dc_only = 1;
        for (int k = 1; k < 10; k++)
            dc_only &= bits[k] == -1;
        for (size_t b = 0; b < rows; b++) {
            size_t y = row * v + b, r[5];
            r[2] = y;
            r[1] = row == 0 && b == 0 ? y : y - 1;
            r[0] = row >= 2 ? y - 2 : r[1];
            r[3] = row + 1 == imcu_rows && b + 1 == rows ? y : y + 1;
            r[4] = row + 2 < imcu_rows ? y + 2 : r[3];
            int dc[5][5]; /* libjpeg's sliding registers, columns x - 2 .. x + 2 */
            for (int i = 0; i < 5; i++)
                for (int j = 0; j < 5; j++)
                    dc[i][j] = c->coef[64 * (r[i] * c->coef_wide)];
            for (size_t x = 0; x < wide; x++) {
                for (int i = 0; i < 5; i++) {
                    const short *rowp = c->coef + 64 * (r[i] * c->coef_wide);
                    if (x + 1 < wide)
                        dc[i][3] = rowp[64 * (x + 1)];
                    if (x + 2 < wide)
                        dc[i][4] = rowp[64 * (x + 2)];
                }
                short ws[64];
                memcpy(ws, c->coef + 64 * (y * c->coef_wide + x), sizeof ws);
                smooth_block(ws, dc, bits, dc_only, c->quant);
                vp_jpeg_idct_islow(c->plane + y * 8 * c->stride + x * 8, (int)c->stride, ws,
                                   c->quant);
                for (int i = 0; i < 5; i++)
                    memmove(dc[i], dc[i] + 1, 4 * sizeof dc[i][0]);
            }
        }
    }
}
