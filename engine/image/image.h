/* Images: decode (PNG, JPEG, GIF first frame, BMP) to RGB the way Pillow's
 * Image.open(f).convert("RGB") does, Pillow's BICUBIC resize, InternVL dynamic tiling
 * and the torchvision ToTensor + Normalize of each tile (MODEL.md section 2).
 *
 *   vp_image_decode_rgb   bytes -> RGB pixels, limits checked from the header first
 *   vp_image_resize       Pillow Image.resize((w, h), BICUBIC), bit-exact
 *   vp_tiling_choose_grid the model card's find_closest_aspect_ratio
 *   vp_image_make_tiles   resize + row-major crop + thumbnail, 8-bit tiles
 *   vp_tiles_normalize    8-bit tiles -> float32 CHW, bit-equal to torchvision's float32
 *   vp_image_preprocess   all of the above in one call
 *
 * Errors: VP_ERR_UNSUPPORTED (unknown format), VP_ERR_UNDECODABLE (corrupt or
 * truncated data of a known format, zero-size images), VP_ERR_TOO_LARGE (a limit of
 * vp_image_limits; the message names the limit and the value). */
#ifndef VP_IMAGE_H
#define VP_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/util/err.h"

typedef enum {
    VP_IMAGE_UNKNOWN = 0,
    VP_IMAGE_PNG,
    VP_IMAGE_JPEG,
    VP_IMAGE_GIF,
    VP_IMAGE_BMP
} vp_image_format;

/* Largest width or height any configuration may allow (also stb_image's own cap). */
#define VP_IMAGE_MAX_SIDE (1u << 20)

/* Limits checked before any pixel is decoded (decompression bombs). */
typedef struct vp_image_limits {
    size_t max_encoded_bytes;   /* encoded image size */
    uint64_t max_pixels;        /* width * height from the header */
    uint32_t max_width;         /* <= VP_IMAGE_MAX_SIDE */
    uint32_t max_height;        /* <= VP_IMAGE_MAX_SIDE */
    size_t max_jpeg_scans;      /* scans of a JPEG: each is a pass over the image */
} vp_image_limits;

#define VP_IMAGE_DEFAULT_MAX_BYTES ((size_t)64 << 20)    /* 64 MiB */
#define VP_IMAGE_DEFAULT_MAX_PIXELS ((uint64_t)50000000) /* 50 megapixels */
#define VP_IMAGE_DEFAULT_MAX_JPEG_SCANS ((size_t)100) /* progressive files have ~10 */
#define VP_IMAGE_DEFAULT_MAX_SIDE 32768u

/* Fills the defaults above. */
void vp_image_limits_default(vp_image_limits *lim);
/* BAD_REQUEST when a limit is zero or a side limit exceeds VP_IMAGE_MAX_SIDE. */
int vp_image_limits_check(const vp_image_limits *lim, vp_error *err);

/* An 8-bit RGB image, rows top to bottom, no padding. */
typedef struct vp_rgb_image {
    uint32_t width, height;
    uint8_t *pixels;   /* [height][width][3] */
} vp_rgb_image;

void vp_rgb_image_free(vp_rgb_image *img);

/* What the header says, before decoding. */
typedef struct vp_image_info {
    vp_image_format format;
    uint32_t width, height;
} vp_image_info;

/* Format from the magic bytes; VP_IMAGE_UNKNOWN when none matches. */
vp_image_format vp_image_sniff(const uint8_t *data, size_t len);
const char *vp_image_format_name(vp_image_format f);

/* Format and size from the header, with every limit checked; decodes no pixels. */
int vp_image_probe(const uint8_t *data, size_t len, const vp_image_limits *lim,
                   vp_image_info *info, vp_error *err);

/* Decodes and converts to RGB as Pillow's convert("RGB"): alpha dropped (not
 * composited), grey replicated, palette expanded (indices past the palette read as
 * grey i,i,i like Pillow's default palette), 16-bit grey clamped to 255 (Pillow's
 * I -> RGB), other 16-bit channels take the high byte. EXIF orientation is ignored.
 * lim NULL means the defaults. On success out->pixels must be freed. */
int vp_image_decode_rgb(const uint8_t *data, size_t len, const vp_image_limits *lim,
                        vp_rgb_image *out, vp_error *err);

/* Pillow's Image.resize((out_w, out_h), Image.BICUBIC) of an RGB image, bit-exact:
 * separable a = -0.5 cubic with support scaled by the downscale factor, fixed-point
 * coefficients, horizontal pass then vertical pass, a pass skipped when that side is
 * unchanged. threads <= 1 runs on the caller's thread. */
int vp_image_resize(const vp_rgb_image *src, uint32_t out_w, uint32_t out_h, int threads,
                    vp_rgb_image *dst, vp_error *err);

/* Where vp_image_resize_into writes: the output cut into tiles of tile_w x tile_h pixels,
 * tiles_across of them a row, each stored row-major (RGB) one after another from base, so
 * output pixel (x, y) is pixel (x % tile_w, y % tile_h) of tile (y / tile_h) *
 * tiles_across + x / tile_w. One tile of the whole size is a plain image. */
typedef struct vp_resize_layout {
    uint8_t *base;
    uint32_t tile_w, tile_h, tiles_across;
} vp_resize_layout;

/* vp_image_resize's pixels written straight into dst's tiles (no intermediate image);
 * out_w must be tile_w * tiles_across and out_h a multiple of tile_h. */
int vp_image_resize_into(const vp_rgb_image *src, uint32_t out_w, uint32_t out_h, int threads,
                         const vp_resize_layout *dst, vp_error *err);

/* Dynamic tiling parameters (the model card's dynamic_preprocess). */
typedef struct vp_tiling_params {
    int min_num;         /* fewest grid tiles, >= 1 */
    int max_num;         /* most grid tiles, <= VP_TILING_MAX_NUM (config max_dynamic_patch) */
    int image_size;      /* tile side, 448 */
    bool use_thumbnail;  /* append the whole image resized when the grid has > 1 tile */
    int threads;         /* resize threads; <= 1 runs on the caller's thread */
} vp_tiling_params;

#define VP_TILING_MAX_NUM 64
#define VP_TILING_MAX_IMAGE_SIZE 4096

/* min_num 1, max_num 12, image_size 448, use_thumbnail true, threads 1. */
void vp_tiling_params_default(vp_tiling_params *p);
int vp_tiling_params_check(const vp_tiling_params *p, vp_error *err);

typedef struct vp_tile_grid {
    int cols, rows;      /* i (columns) x j (rows) of the model card */
    int n_tiles;         /* cols * rows, plus 1 with the thumbnail */
    bool thumbnail;      /* the last tile is the thumbnail */
} vp_tile_grid;

/* find_closest_aspect_ratio over the candidates in the reference's order (see tiling.c). */
int vp_tiling_choose_grid(uint32_t width, uint32_t height, const vp_tiling_params *p,
                          vp_tile_grid *grid, vp_error *err);

/* The candidate grids in the reference's order: sorted(set(...), key=i*j) with equal
 * products in CPython's set iteration order. Writes up to cap (i, j) pairs to
 * cols[], rows[]; returns the count, or -1 on bad parameters. */
int vp_tiling_candidates(int min_num, int max_num, int *cols, int *rows, int cap);

/* 8-bit tiles of one image. */
typedef struct vp_image_tiles {
    uint32_t src_width, src_height;  /* the decoded image */
    vp_tile_grid grid;
    int tile_size;                   /* S */
    uint8_t *u8;                     /* [grid.n_tiles][S][S][3], row-major tiles then thumbnail */
} vp_image_tiles;

void vp_image_tiles_free(vp_image_tiles *t);

/* Resizes to (S*cols, S*rows), crops the tiles row-major, appends the thumbnail. */
int vp_image_make_tiles(const vp_rgb_image *img, const vp_tiling_params *p, vp_image_tiles *out,
                        vp_error *err);

/* ImageNet mean and std the model card normalises with. */
extern const float vp_image_mean[3]; /* 0.485, 0.456, 0.406 */
extern const float vp_image_std[3];  /* 0.229, 0.224, 0.225 */

/* ToTensor + Normalize in float32: out = ((x / 255) - mean[c]) / std[c], CHW.
 * u8 [n_tiles][S][S][3] -> out [n_tiles][3][S][S]. */
void vp_tiles_normalize(const uint8_t *u8, size_t n_tiles, int tile_size, float *out);
/* Its values: table[c][x] for channel c, byte x (what a backend normalising 8-bit tiles
 * itself uses, so that every path gives the same floats). */
void vp_tiles_norm_table(float table[3][256]);

/* Decode + tiles (+ normalisation): tiles receives the grid and the 8-bit tiles (free
 * with vp_image_tiles_free); when out_f32 is not NULL, *out_f32 receives a malloc'd
 * [grid.n_tiles][3][S][S] float array. */
int vp_image_preprocess(const uint8_t *data, size_t len, const vp_image_limits *lim,
                        const vp_tiling_params *p, vp_image_tiles *tiles, float **out_f32,
                        vp_error *err);

#endif
