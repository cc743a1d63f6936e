/* Block smoothing of progressive JPEGs, as libjpeg-turbo 2.1 (Pillow's) applies it when a
 * file's scans leave some of the first nine AC coefficients unknown or unrefined (a file
 * cut short between or inside scans, a partial scan script): those coefficients, where
 * still zero, are estimated from the DC values of the block and its 24 neighbours, and
 * where no AC coefficient is known yet the DC value is smoothed too (internal to
 * engine/image). */
#ifndef VP_IMAGE_JPEG_SMOOTH_H
#define VP_IMAGE_JPEG_SMOOTH_H

#include <stddef.h>
#include <stdint.h>

/* One component's progression status for coefficients 0..9 in zig-zag order (libjpeg's
 * coef_bits): -1 until a scan codes the coefficient, then the low bits still to come
 * (the last scan's Al); prev: the same before the component's latest scan. */
typedef struct vp_jpeg_bits {
    int cur[10], prev[10];
} vp_jpeg_bits;

/* Nothing coded yet. */
void vp_jpeg_bits_init(vp_jpeg_bits *b);
/* A progressive scan with this component, the scan_number-th of the file (from 1),
 * coding coefficients ss..se down to bit al. */
void vp_jpeg_bits_scan(vp_jpeg_bits *b, int scan_number, int ss, int se, int al);

typedef struct vp_jpeg_smooth_comp {
    const short *coef;     /* quantised coefficients, 64 per block in natural order */
    size_t coef_wide;      /* blocks per row of coef (rows: v per iMCU row) */
    size_t blocks_wide, blocks_high; /* the component's blocks (without MCU padding) */
    int v;                 /* vertical sampling factor: block rows per iMCU row */
    const uint16_t *quant; /* its quantisation table as latched, natural order; NULL when
                            * no scan had the component */
    const vp_jpeg_bits *bits;
    uint8_t *plane;        /* output samples, 8 x 8 per block */
    size_t stride;
} vp_jpeg_smooth_comp;

/* libjpeg's smoothing_ok once every scan is in: every component has a table and DC
 * coefficients, the table's first ten zig-zag entries are nonzero, and some component
 * still lacks bits of a coefficient 1..9. */
int vp_jpeg_smoothing_applies(const vp_jpeg_smooth_comp *comps, int n_comp);

/* Every block of the component through the estimates and vp_jpeg_idct_islow.
 * imcu_rows: the frame's iMCU rows; last_good_row: the last scan's last iMCU row that
 * began with data left (rows after it use the bits from before their latest scan);
 * n_scans: the file's scan count. */
void vp_jpeg_smooth_idct(const vp_jpeg_smooth_comp *c, size_t imcu_rows, size_t last_good_row,
                         int n_scans);

#endif
