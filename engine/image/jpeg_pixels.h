/* The pixel stages of JPEG decoding as libjpeg-turbo performs them for Pillow, so that a
 * JPEG's RGB equals Pillow's convert("RGB") bit for bit (internal to engine/image): the
 * entropy decoder (jpeg_scan.c) calls vp_jpeg_idct_islow for each block of a
 * sequential scan, jpeg_decode.c for each block of a progressive image; vp_jpeg_planes_to_rgb then upsamples the
 * chroma the way libjpeg's "fancy" upsampler does and converts colours with its
 * fixed-point tables.
 * (stb_image's own IDCT, upsampling and YCbCr conversion round differently, and its
 * 4:2:2 upsampler weights a padding column at the right edge.) */
#ifndef VP_IMAGE_JPEG_PIXELS_H
#define VP_IMAGE_JPEG_PIXELS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/util/err.h"

/* libjpeg-turbo's accurate integer IDCT (JDCT_ISLOW: 13-bit constants, 2 extra bits
 * between the passes) of one 8x8 block of quantised coefficients with its quantisation
 * table (both in natural order), written as 8 rows of 8 samples at out, out_stride bytes
 * apart: the bytes of its x86 SIMD code, which Pillow runs on x86-64. */
void vp_jpeg_idct_islow(uint8_t *out, int out_stride, const short coef[64],
                        const uint16_t quant[64]);
/* The two ways it computes, on dequantised coefficients (their low 16 bits, as the SIMD
 * code multiplies): 32-bit vector lanes for the blocks where those agree with the SIMD
 * code (every block of a real image; -1, nothing written, otherwise), and a scalar model
 * of the SIMD code's 16-bit arithmetic for any block; rows_zero: the quantised rows
 * 1..7 were all zero (the SIMD code's shortcut). */
int vp_jpeg_idct_islow_fast(uint8_t *out, int out_stride, const short coef[64]);
void vp_jpeg_idct_islow_model(uint8_t *out, int out_stride, const short coef[64], int rows_zero);

/* Colour space of the decoded components, chosen by libjpeg's rules (vp_jpeg_color_space). */
typedef enum vp_jpeg_color {
    VP_JPEG_GREY, /* 1 component */
    VP_JPEG_YCC,  /* YCbCr */
    VP_JPEG_RGB,  /* 3 components stored as R, G, B */
    VP_JPEG_CMYK, /* Adobe (inverted) CMYK */
    VP_JPEG_YCCK, /* Adobe YCCK: YCbCr for inverted C, M, Y, then K */
} vp_jpeg_color;

/* jfif: a JFIF APP0 segment came before the first scan; adobe_transform: the transform
 * byte of an Adobe APP14 segment before the first scan, -1 when none; ids: component ids. */
vp_jpeg_color vp_jpeg_color_space(int n_comp, int jfif, int adobe_transform, const int *ids);

/* One decoded component: width x height samples (the downsampled size,
 * ceil(image size * factor / largest factor)) at data, stride bytes per row. */
typedef struct vp_jpeg_plane {
    const uint8_t *data;
    size_t stride;
    uint32_t width, height;
    int h, v; /* sampling factors, 1..4 */
} vp_jpeg_plane;

/* width x height RGB (3 bytes a pixel) from n_comp planes (1, 3 or 4; every factor
 * dividing the largest, which vp_jpeg_check_complete checks)
 * as libjpeg-turbo 2.1 and Pillow 9.4's convert("RGB") give them. Returns 0, or
 * NOMEM (a row buffer per component). */
int vp_jpeg_planes_to_rgb(const vp_jpeg_plane *planes, int n_comp, vp_jpeg_color color,
                          uint32_t width, uint32_t height, uint8_t *rgb, vp_error *err);

#endif
