/* Entropy decoding of one sequential (baseline or extended Huffman) JPEG scan with
 * libjpeg's rules for damaged data, into 8-bit sample planes (internal to engine/image).
 * stb_image parses the headers and builds the tables; it decodes sequential scans too,
 * but where the data is damaged it goes its own way: it reads zero bits past a marker
 * that comes early, and it cannot resynchronise at restart markers. libjpeg (Pillow):
 * - the MCU during which the data runs out decodes from zero bits, and the rest of the
 *   segment is grey (zero coefficients);
 * - at each restart interval it looks for the next marker; the expected RSTn resumes
 *   decoding, another one is handled by its resync rules (libjpeg's
 *   jpeg_resync_to_restart: skip it, scan past it, or keep it and decode empty segments
 *   until the count catches up);
 * - a code longer than 16 bits decodes as symbol 0 after 17 bits. */
#ifndef VP_IMAGE_JPEG_SCAN_H
#define VP_IMAGE_JPEG_SCAN_H

#include <stddef.h>
#include <stdint.h>

#include "engine/util/err.h"

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
    uint8_t *plane;    /* the component's samples, 8 x 8 per block */
    size_t stride;     /* bytes per plane row */
    int h, v;          /* sampling factors: blocks per MCU in an interleaved scan */
    size_t blocks_wide, blocks_high; /* its blocks, for a scan of this component alone */
    vp_jpeg_huff dc, ac;
    const uint16_t *dequant; /* [64], natural order */
} vp_jpeg_scan_comp;

typedef struct vp_jpeg_scan {
    const uint8_t *data, *data_end; /* the entropy-coded bytes, restart markers included;
                                     * a marker follows data_end */
    uint8_t end_marker;             /* that marker's code */
    int n_comp;                     /* 1..4, in scan order */
    vp_jpeg_scan_comp comp[4];
    size_t mcus_wide, mcus_high;    /* MCUs of an interleaved scan (n_comp > 1) */
    unsigned restart_interval;      /* MCUs per restart interval, 0 for none */
} vp_jpeg_scan;

/* Decodes the scan into its components' planes (each block through
 * vp_jpeg_idct_islow). UNDECODABLE for a DC table with a symbol above 15 (libjpeg
 * refuses the table) or for resynchronisation that would search past data_end. */
int vp_jpeg_decode_sequential_scan(const vp_jpeg_scan *scan, vp_error *err);

#endif
