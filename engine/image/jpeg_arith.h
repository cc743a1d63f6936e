/* Arithmetic-coded JPEG scans (SOF9 sequential, SOF10 progressive): ITU-T T.81's QM
 * decoder (Annex D) and its coefficient models (Annex F.1.4.4, F.2.4, G.1.3), with
 * libjpeg's handling of damaged data (internal to engine/image). libjpeg-turbo decodes
 * these for Pillow, so such a file must give Pillow's pixels, not a 415:
 * - past a marker (the data ended early), the decoder reads zero bytes and decodes on;
 * - a zero run past the band or a magnitude of 16 bits or more breaks the decoder until
 *   the next restart interval: the rest of the MCU and of the interval decode nothing
 *   (zero coefficients in a one-scan sequential frame, the coefficients as they were
 *   otherwise);
 * - at each restart interval, and at the start of a scan, the statistics, the DC
 *   predictions and contexts, and the code registers start afresh. */
#ifndef VP_IMAGE_JPEG_ARITH_H
#define VP_IMAGE_JPEG_ARITH_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/image/jpeg_scan.h"

/* Conditioning tables (DAC segments; these are the defaults) and statistics bins. */
#define VP_JPEG_ARITH_TABLES 16
#define VP_JPEG_ARITH_DEFAULT_L 0
#define VP_JPEG_ARITH_DEFAULT_U 1
#define VP_JPEG_ARITH_DEFAULT_K 5

typedef struct vp_jpeg_arith {
    vp_jpeg_reader *in;
    uint32_t c, a; /* code and interval registers */
    int ct;        /* code bits held past the interval's 16; -16: two bytes to read */
    bool broken;   /* a zero run or magnitude overflowed: nothing until the next restart */
    /* each bin: bit 7 the more probable symbol, bits 0..6 its state in T.81 Table D.2 */
    uint8_t dc_stats[VP_JPEG_ARITH_TABLES][64];
    uint8_t ac_stats[VP_JPEG_ARITH_TABLES][256];
    int dc_context[4];    /* per scan component: F.1.4.4.1.2's category of the last DC */
    int32_t dc_pred[4];
} vp_jpeg_arith;

/* Start of scan s or of one of its restart intervals, reading from in: the statistics of
 * the tables its components use, their DC predictions and contexts, and the registers. */
void vp_jpeg_arith_start(vp_jpeg_arith *d, vp_jpeg_reader *in, const vp_jpeg_scan *s);

/* One block of the scan's component k into coef (64, natural order): a sequential
 * block (its DC and its nonzero AC coefficients written), or the scan's progressive
 * pass. Does nothing while d->broken. */
void vp_jpeg_arith_block(vp_jpeg_arith *d, const vp_jpeg_scan *s, int k, short coef[64]);

#endif
