/* Entropy decoding of one JPEG scan (Huffman, sequential or progressive; arithmetic
 * coding in jpeg_arith.c) with libjpeg's rules for damaged data (internal to
 * engine/image). stb_image parses the headers and
 * builds the tables; its own scan decoders go their own way on damaged data: they read
 * zero bits past a marker that comes early, cannot resynchronise at restart markers, and
 * refuse or misplace what libjpeg tolerates. libjpeg (Pillow):
 * - the MCU during which the data runs out decodes from zero bits, and the rest of the
 *   segment is left alone (grey for a sequential scan: zero coefficients);
 * - at each restart interval it looks for the next marker; the expected RSTn resumes
 *   decoding, another one is handled by its resync rules (libjpeg's
 *   jpeg_resync_to_restart: skip it, scan past it, or keep it and decode empty segments
 *   until the count catches up);
 * - a code longer than 16 bits decodes as symbol 0 after 17 bits;
 * - in a progressive refinement scan, a new coefficient of size other than 1 counts as 1,
 *   and one whose zero run overshoots the band lands just past it. */
#ifndef VP_IMAGE_JPEG_SCAN_H
#define VP_IMAGE_JPEG_SCAN_H

#include <stddef.h>
#include <stdint.h>

#include "engine/util/err.h"

/* Zig-zag position -> row-major position; positions past 63 (a run that overshoots on
 * damaged data) land on 63, as in libjpeg. */
extern const uint8_t vp_jpeg_natural_order[64 + 16];

/* Where a scan's entropy-coded bytes are read: at a marker (p just after it; data_end
 * reads as end_marker) the reading stops with the marker unread. */
typedef struct vp_jpeg_reader {
    const uint8_t *p, *end;
    uint8_t end_marker;
    int unread_marker; /* 0: none */
    int cut;           /* no marker follows end: the data was cut there */
    int ran_out;       /* with cut: a byte past end was asked for */
} vp_jpeg_reader;

/* The next byte of data (0xFF 0x00 read as 0xFF, fill bytes before a marker skipped), or
 * -1 at a marker, which stays unread. */
static inline int vp_jpeg_next_byte(vp_jpeg_reader *in)
{
    if (in->unread_marker)
        return -1;
    if (in->p >= in->end) {
        in->unread_marker = in->end_marker;
        in->ran_out |= in->cut;
        return -1;
    }
    uint8_t b = *in->p++;
    if (b != 0xff)
        return b;
    const uint8_t *q = in->p;
    while (q < in->end && *q == 0xff)
        q++;
    if (q < in->end && *q == 0) {
        in->p = q + 1;
        return 0xff;
    }
    in->unread_marker = q < in->end ? *q : in->end_marker;
    in->ran_out |= q >= in->end && in->cut;
    in->p = q < in->end ? q + 1 : in->end;
    return -1;
}

/* A Huffman table in stb_image's derived form (stbi__huffman, stbi__build_fast_ac). */
typedef struct vp_jpeg_huff {
    const uint8_t *fast;     /* [512]: symbol index of the code that the next 9 bits start
                              * with, when it is at most 9 bits long; 255 otherwise */
    const uint8_t *size;     /* [257]: code length per symbol index, 0 after the last */
    const uint8_t *values;   /* [256]: symbol per symbol index */
    const uint32_t *maxcode; /* [18]: (one past the last code of length l) << (16 - l) */
    const int *delta;        /* [17]: symbol index minus code, per length */
    const int16_t *fast_ac;  /* [512] for AC tables: value << 8 | run << 4 | bits taken,
                              * for a code and its value within 9 bits; 0 otherwise */
} vp_jpeg_huff;

typedef struct vp_jpeg_scan_comp {
    uint8_t *plane;    /* sequential: the component's samples, 8 x 8 per block */
    size_t stride;     /* bytes per plane row */
    short *coef;       /* its coefficients, 64 per block in natural order: progressive, or
                        * sequential when not NULL (a frame of several scans) */
    size_t coef_wide;  /* blocks per row of coef */
    int h, v;          /* sampling factors: blocks per MCU in an interleaved scan */
    size_t blocks_wide, blocks_high; /* its blocks, for a scan of this component alone */
    vp_jpeg_huff dc, ac;
    /* arithmetic coding: the statistics' tables (0..15) and their conditioning (DAC) */
    uint8_t dc_tbl, ac_tbl, dc_l, dc_u, ac_k;
    const uint16_t *dequant; /* [64], natural order */
} vp_jpeg_scan_comp;

typedef struct vp_jpeg_scan {
    const uint8_t *data, *data_end; /* the entropy-coded bytes, restart markers included;
                                     * a marker follows data_end, unless data_cut */
    uint8_t end_marker;             /* that marker's code */
    int data_cut;                   /* the file ends at data_end: asking for a byte past it
                                     * (Pillow's libjpeg would wait for more) fails the scan */
    int n_comp;                     /* 1..4, in scan order */
    vp_jpeg_scan_comp comp[4];
    size_t mcus_wide, mcus_high;    /* MCUs of an interleaved scan (n_comp > 1) */
    unsigned restart_interval;      /* MCUs per restart interval, 0 for none */
    int arithmetic;                 /* arithmetic coding, not Huffman */
    int progressive;                /* and its band and bit positions: */
    int ss, se, ah, al;
} vp_jpeg_scan;

/* Decodes the scan: a sequential one into its components' planes (each block through
 * vp_jpeg_idct_islow) or, given coef, into their coefficients like a progressive one
 * (quantised, for dequantising and the IDCT once every scan is in). *last_good_row (when not NULL): the
 * iMCU row (an MCU row, or v block rows of a one-component scan) of the last MCU that
 * began with data left, libjpeg's last_good_iMCU_row, which picks block smoothing's
 * coefficient bits. UNDECODABLE for what libjpeg refuses (a DC table with a symbol
 * above 15, a progression out of its rules) and for resynchronisation that would search
 * past data_end. */
int vp_jpeg_decode_scan(const vp_jpeg_scan *scan, size_t *last_good_row, vp_error *err);

#endif
