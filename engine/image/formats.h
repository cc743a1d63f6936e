/* Per-format structure walks done before stb_image sees the bytes (internal to
 * engine/image). They read the header size for the limit checks, refuse what Pillow
 * refuses (bad PNG chunk CRCs, truncated files stb would pad with zeros), and rewrite
 * PNG and GIF streams into a canonical form whose stb_image decoding equals Pillow's
 * convert("RGB") (palettes padded with Pillow's grey ramp, transparency dropped). */
#ifndef VP_IMAGE_FORMATS_H
#define VP_IMAGE_FORMATS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/util/err.h"

/* ---- PNG ---- */
typedef struct vp_png_header {
    uint32_t width, height;
    uint8_t depth;       /* bits per sample: 1, 2, 4, 8, 16 */
    uint8_t color;       /* colour type: 0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA */
    uint8_t interlace;   /* 0 none, 1 Adam7 (the file's byte, any other value than 0) */
} vp_png_header;

/* IHDR fields; UNDECODABLE when the signature, IHDR or depth/colour pair is bad. */
int vp_png_read_header(const uint8_t *data, size_t len, vp_png_header *h, vp_error *err);

/* A PNG's image data as Pillow reads it: the rows (filter byte + pixels, Adam7 pass by
 * pass) of the first run of IDAT chunks, inflated through vp_png_inflate (UNDECODABLE
 * where Pillow fails); CRCs of chunks before the first IDAT are verified (as Pillow
 * does). The palette has 256 entries: the file's, then grey i,i,i (Pillow's ramp). */
typedef struct vp_png_rows {
    vp_png_header h;
    uint8_t ihdr[13];        /* the IHDR chunk's data as in the file, interlace 0 or 1 */
    uint8_t palette[768];
    uint8_t *raw;            /* malloc'd */
    size_t raw_len;
} vp_png_rows;

int vp_png_read_rows(const uint8_t *data, size_t len, vp_png_rows *r, vp_error *err);
void vp_png_rows_free(vp_png_rows *r);

/* The rows as a PNG stream for stb_image: IHDR, for palette images the 256-entry PLTE,
 * the rows stored uncompressed, IEND. *out is malloc'd. */
int vp_png_canonical_stream(const vp_png_rows *r, uint8_t **out, size_t *out_len, vp_error *err);

/* Unfilters 8-bit, non-interlaced rows straight into RGB as stb_image's decoding of the
 * canonical stream and Pillow's convert("RGB") give them (grey replicated, alpha
 * dropped, palette indices looked up): 1 when done into rgb ([height][width][3]), 0
 * when the rows are not of that kind or hold a filter type past 4 (the stream's path
 * decodes or refuses them). png_unfilter.c. */
int vp_png_rows_to_rgb(const vp_png_rows *r, uint8_t *rgb);

/* The rows of a PNG's image data (in: the first run of IDAT chunks joined; piece_end:
 * where each of Pillow's reads of it ends, the last at in_len; row_end: where each row
 * of filter byte and pixels ends, in Pillow's order) inflated into out (row_end's last
 * bytes; rows the data never reached are zero) as Pillow 9.4 with zlib inflates them: UNDECODABLE, with zlib's
 * message, where Pillow fails (png_inflate.c). */
int vp_png_inflate(const uint8_t *in, size_t in_len, const size_t *piece_end, size_t n_pieces,
                   const size_t *row_end, size_t n_rows, uint8_t *out, vp_error *err);

/* ---- GIF ---- */
typedef struct vp_gif_frame {
    uint32_t screen_w, screen_h;   /* logical screen = image size */
    uint32_t x, y, w, h;           /* first frame's rectangle on the screen */
    int transparent;               /* transparent index of the first frame, -1 if none */
    int interlace;                 /* its rows in four passes */
    size_t data_start;             /* offset of its LZW code size byte */
    uint8_t palette[256][3];       /* the first frame's palette, padded with grey i,i,i */
} vp_gif_frame;

/* Logical screen size. */
int vp_gif_read_header(const uint8_t *data, size_t len, uint32_t *w, uint32_t *h, vp_error *err);

/* The first frame as Pillow reads it: its rectangle, palette, transparency, where its
 * image data starts, and what Pillow shows outside the rectangle. */
int vp_gif_first_frame(const uint8_t *data, size_t len, vp_gif_frame *frame, vp_error *err);
/* Its w x h palette indices (rows top to bottom) from the LZW data, as Pillow's decoder
 * reads it, damaged data included (gif_lzw.c). */
int vp_gif_lzw_decode(const uint8_t *data, size_t len, const vp_gif_frame *frame, uint8_t *out,
                      vp_error *err);

/* ---- JPEG ---- */
/* Size from the first SOF marker (segments walked up to it). */
int vp_jpeg_read_header(const uint8_t *data, size_t len, uint32_t *w, uint32_t *h,
                        vp_error *err);
/* Next marker at or after *pos: skips stray bytes (a stuffed 0xFF 0x00 among them) and
 * 0xFF fill bytes, as libjpeg does. Returns the marker code with *pos just after it, or
 * -1 at the end of the data. */
int vp_jpeg_next_marker(const uint8_t *data, size_t len, size_t *pos);
/* The segments before the first scan that choose the colour space, as libjpeg reads them. */
typedef struct vp_jpeg_markers {
    int jfif;            /* a JFIF APP0 segment */
    int adobe_transform; /* an Adobe APP14 segment's transform byte, -1 when none */
    unsigned default_dht; /* Huffman slots libjpeg fills with the standard tables: bit 0, 1
                           * DC slots 0, 1; bits 2, 3 AC slots 0, 1 */
    int progressive;      /* the frame is progressive (SOF2, SOF10) */
    int arithmetic;       /* arithmetic coding (SOF9, SOF10) */
    int cut_in_scan;      /* a one-scan sequential frame whose data runs to the end (no
                           * marker after it): decoded only when the decoder reads no byte
                           * past the end */
} vp_jpeg_markers;

/* Walks every marker and entropy-coded segment to EOI: UNDECODABLE when the data ends
 * first, TOO_LARGE past max_scans scans. Fills *markers (may be NULL) on success. */
int vp_jpeg_check_complete(const uint8_t *data, size_t len, size_t max_scans,
                           vp_jpeg_markers *markers, vp_error *err);
/* The stream stb_image parses: the input with the segments before the first scan
 * copied back to back (stray bytes, 0xFF fill and RSTn between them dropped: libjpeg
 * and Pillow skip them, stb_image's header reader stops), a DHT segment of the standard
 * tables markers->default_dht names inserted before the first scan (and a sequential
 * frame's scan headers set to the whole band, as libjpeg reads them), and where each scan's
 * entropy-coded data ends (restart markers are part of the data; the marker after it
 * follows, after any 0xFF fill bytes). */
/* An arithmetic-coded scan's statistics tables per scan component (its header's Td, Ta:
 * 0..15) and their conditioning when the scan starts (DAC segments: L, U, Kx). */
typedef struct vp_jpeg_arith_cond {
    uint8_t dc_tbl[4], ac_tbl[4], dc_l[4], dc_u[4], ac_k[4];
} vp_jpeg_arith_cond;
/* For an arithmetic-coded frame, stb_image (Huffman only) parses SOF9 and SOF10 as SOF1
 * and SOF2, DAC segments as comments, and scan headers with their table numbers 0. */
typedef struct vp_jpeg_stream {
    uint8_t *data;
    size_t len;
    size_t *scan_end; /* per scan, in order: offset in data where its data ends */
    vp_jpeg_arith_cond *arith; /* per scan, arithmetic-coded frames only */
    size_t n_scans;
    int last_cut; /* the last scan's data runs to the end of the data (markers' cut_in_scan) */
} vp_jpeg_stream;
/* On a stream vp_jpeg_check_complete accepted. Free with vp_jpeg_stream_free. */
int vp_jpeg_stream_for_stb(const uint8_t *data, size_t len, const vp_jpeg_markers *mk,
                           vp_jpeg_stream *out, vp_error *err);
void vp_jpeg_stream_free(vp_jpeg_stream *s);

/* Pillow's convert("RGB") of a JPEG whose size the probe read into info
 * (jpeg_decode.c). */
struct vp_image_info;
struct vp_rgb_image;
int vp_jpeg_decode_rgb(const uint8_t *data, size_t len, const struct vp_image_info *info,
                       size_t max_scans, struct vp_rgb_image *out, vp_error *err);

/* ---- BMP ---- */
typedef struct vp_bmp_header {
    uint32_t width, height;
    uint16_t bpp;
    uint32_t compression;          /* VP_BMP_RGB, _RLE8, _RLE4, _BITFIELDS */
    uint32_t masks[3];             /* R, G, B bit masks of 16/32-bit images */
    uint32_t offset;               /* file offset of the pixel array (as Pillow finds it:
                                    * 0 in the file means where its header reading ended) */
    uint32_t header_size;          /* 12 (OS/2 1), 40, 64 (OS/2 2), 108, 124 */
    uint32_t colors;               /* palette entries (1-8 bit): biClrUsed, else 2^bpp */
    int top_down;                  /* rows stored top to bottom (negative height) */
} vp_bmp_header;

enum { VP_BMP_RGB = 0, VP_BMP_RLE8 = 1, VP_BMP_RLE4 = 2, VP_BMP_BITFIELDS = 3 };

/* Header fields; compressions and bit-field layouts Pillow refuses are UNSUPPORTED
 * (run-length encoding beyond 8 bits a pixel UNDECODABLE: Pillow fails to decode it). */
int vp_bmp_read_header(const uint8_t *data, size_t len, vp_bmp_header *h, vp_error *err);
/* UNDECODABLE when the pixel array runs past the end of the file (uncompressed; as in
 * Pillow, the last row's padding may be missing). */
int vp_bmp_check_complete(const uint8_t *data, size_t len, const vp_bmp_header *h, vp_error *err);
/* The BMP stb_image decodes as Pillow reads the file, with a 40-byte header and the
 * pixels at Pillow's offset (stb_image takes neither a 64-byte header nor an offset far
 * from the header's end). 16, 24 and 32 bits: the rows as they are (16-bit bit fields
 * kept). 1, 4 and 8 bits: a 256-entry palette (the file's entries as Pillow reads them,
 * right after the header, then grey i,i,i; stb_image would size it from the pixel
 * offset and leave the rest uninitialised), then one byte a pixel: the file's indices,
 * or, where Pillow takes a grey-ramp palette for a mode of its own, its reading: two
 * entries black and white make it read every file as 1 bit a pixel; entry i = i,i,i as
 * 8 bits a pixel (UNDECODABLE when a row is shorter than that, as in Pillow).
 * Run-length encoded pixels through vp_bmp_rle_decode. *out is malloc'd. */
int vp_bmp_canonicalize(const uint8_t *data, size_t len, const vp_bmp_header *h, uint8_t **out,
                        size_t *out_len, vp_error *err);
/* width x height indices, in the file's row order, from RLE8/RLE4 data at h->offset
 * (bmp_rle.c). */
int vp_bmp_rle_decode(const uint8_t *data, size_t len, const vp_bmp_header *h, uint8_t *out,
                      vp_error *err);

#endif
