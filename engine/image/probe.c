/* Format detection from magic bytes, limits, and the header-only size probe that runs
 * before any pixel is decoded. */
#include <stdio.h>
#include <string.h>

#include "engine/image/formats.h"
#include "engine/image/image.h"

void vp_image_limits_default(vp_image_limits *lim)
{
    lim->max_encoded_bytes = VP_IMAGE_DEFAULT_MAX_BYTES;
    lim->max_pixels = VP_IMAGE_DEFAULT_MAX_PIXELS;
    lim->max_width = VP_IMAGE_DEFAULT_MAX_SIDE;
    lim->max_height = VP_IMAGE_DEFAULT_MAX_SIDE;
    lim->max_jpeg_scans = VP_IMAGE_DEFAULT_MAX_JPEG_SCANS;
}

int vp_image_limits_check(const vp_image_limits *lim, vp_error *err)
{
    if (!lim->max_encoded_bytes || !lim->max_pixels || !lim->max_width || !lim->max_height ||
        !lim->max_jpeg_scans)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "image_limits", "image limits must be positive");
    if (lim->max_width > VP_IMAGE_MAX_SIDE || lim->max_height > VP_IMAGE_MAX_SIDE)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "image_limits",
                       "image side limit %u is over the decoder's maximum of %u",
                       lim->max_width > lim->max_height ? lim->max_width : lim->max_height,
                       VP_IMAGE_MAX_SIDE);
    return 0;
}

/* Is data (len bytes) the signature sig, or a prefix of at least 2 bytes of it? */
static int starts_as(const uint8_t *data, size_t len, const char *sig, size_t sig_len)
{
    if (len >= sig_len)
        return !memcmp(data, sig, sig_len);
    return len >= 2 && !memcmp(data, sig, len);
}

vp_image_format vp_image_sniff(const uint8_t *data, size_t len)
{
    if (starts_as(data, len, "\x89PNG\r\n\x1a\n", 8))
        return VP_IMAGE_PNG;
    if (starts_as(data, len, "\xff\xd8\xff", 3))
        return VP_IMAGE_JPEG;
    if (starts_as(data, len, "GIF87a", 6) || starts_as(data, len, "GIF89a", 6))
        return VP_IMAGE_GIF;
    if (len >= 2 && data[0] == 'B' && data[1] == 'M')
        return VP_IMAGE_BMP;
    return VP_IMAGE_UNKNOWN;
}

const char *vp_image_format_name(vp_image_format f)
{
    switch (f) {
    case VP_IMAGE_PNG: return "PNG";
    case VP_IMAGE_JPEG: return "JPEG";
    case VP_IMAGE_GIF: return "GIF";
    case VP_IMAGE_BMP: return "BMP";
    case VP_IMAGE_UNKNOWN: break;
    }
    return "unknown";
}

/* A name for common formats we do not decode, for the error message; NULL if unknown. */
static const char *other_format_name(const uint8_t *d, size_t len)
{
    if (len >= 12 && !memcmp(d, "RIFF", 4) && !memcmp(d + 8, "WEBP", 4))
        return "WebP";
    if (len >= 4 && (!memcmp(d, "II*\0", 4) || !memcmp(d, "MM\0*", 4)))
        return "TIFF";
    if (len >= 12 && !memcmp(d + 4, "ftyp", 4)) {
        if (!memcmp(d + 8, "avif", 4) || !memcmp(d + 8, "avis", 4))
            return "AVIF";
        if (!memcmp(d + 8, "heic", 4) || !memcmp(d + 8, "heix", 4) || !memcmp(d + 8, "mif1", 4))
            return "HEIF";
        return "an ISO media file (MP4/MOV/HEIF family)";
    }
    if (len >= 12 && !memcmp(d, "\0\0\0\x0cjP  ", 8))
        return "JPEG 2000";
    if (len >= 4 && !memcmp(d, "\xff\x4f\xff\x51", 4))
        return "JPEG 2000 codestream";
    if (len >= 4 && !memcmp(d, "\0\0\1\0", 4))
        return "ICO";
    if (len >= 4 && !memcmp(d, "8BPS", 4))
        return "PSD";
    if (len >= 4 && !memcmp(d, "%PDF", 4))
        return "PDF";
    if (len >= 2 && d[0] == 'P' && d[1] >= '1' && d[1] <= '7')
        return "PNM";
    if (len >= 10 && !memcmp(d, "#?RADIANCE", 10))
        return "Radiance HDR";
    if (len >= 2 && !memcmp(d, "\xff\x0a", 2))
        return "JPEG XL";
    if (len >= 4 && !memcmp(d, "PK\3\4", 4))
        return "ZIP";
    if (len >= 1 && (d[0] == '<' || (len >= 4 && !memcmp(d, "\xef\xbb\xbf<", 4))))
        return "XML/SVG/HTML text";
    if (len >= 5 && !memcmp(d, "data:", 5))
        return "a data: URL (send its base64 payload decoded, or the whole URL in the JSON field)";
    return NULL;
}

static int unsupported(const uint8_t *d, size_t len, vp_error *err)
{
    const char *name = other_format_name(d, len);
    if (name)
        return vp_fail(err, VP_ERR_UNSUPPORTED, "image",
                       "unsupported image format: %s (PNG, JPEG, GIF and BMP are supported)", name);
    char hex[3 * 8] = "";
    size_t n = len < 8 ? len : 8, at = 0;
    for (size_t i = 0; i < n; i++) /* "xx", then " xx": 23 characters at most */
        at += (size_t)snprintf(hex + at, sizeof hex - at, "%s%02x", i ? " " : "", d[i]);
    return vp_fail(err, VP_ERR_UNSUPPORTED, "image",
                   "unrecognised image format (first bytes: %s); PNG, JPEG, GIF and BMP are "
                   "supported",
                   hex);
}

static int check_size(vp_image_format f, uint32_t w, uint32_t h, const vp_image_limits *lim,
                      vp_error *err)
{
    if (!w || !h)
        return vp_fail(err, VP_ERR_UNDECODABLE, "image", "%s image has zero size (%ux%u)",
                       vp_image_format_name(f), w, h);
    if (w > lim->max_width)
        return vp_fail(err, VP_ERR_TOO_LARGE, "image",
                       "image width %u is over the limit max_image_side=%u", w, lim->max_width);
    if (h > lim->max_height)
        return vp_fail(err, VP_ERR_TOO_LARGE, "image",
                       "image height %u is over the limit max_image_side=%u", h, lim->max_height);
    uint64_t pixels = (uint64_t)w * h;
    if (pixels > lim->max_pixels)
        return vp_fail(err, VP_ERR_TOO_LARGE, "image",
                       "image of %ux%u = %llu pixels is over the limit max_image_pixels=%llu", w, h,
                       (unsigned long long)pixels, (unsigned long long)lim->max_pixels);
    return 0;
}

int vp_image_probe(const uint8_t *data, size_t len, const vp_image_limits *lim,
                   vp_image_info *info, vp_error *err)
{
    vp_image_limits defaults;
    if (!lim) {
        vp_image_limits_default(&defaults);
        lim = &defaults;
    }
    memset(info, 0, sizeof *info);
    if (!len)
        return vp_fail(err, VP_ERR_UNDECODABLE, "image", "image is empty (0 bytes)");
    if (len > lim->max_encoded_bytes)
        return vp_fail(err, VP_ERR_TOO_LARGE, "image",
                       "image is %zu bytes, over the limit max_image_bytes=%zu", len,
                       lim->max_encoded_bytes);
    vp_image_format f = vp_image_sniff(data, len);
    uint32_t w = 0, h = 0;
    switch (f) {
    case VP_IMAGE_PNG: {
        vp_png_header ph;
        if (vp_png_read_header(data, len, &ph, err))
            return -1;
        w = ph.width;
        h = ph.height;
        break;
    }
    case VP_IMAGE_JPEG:
        if (vp_jpeg_read_header(data, len, &w, &h, err))
            return -1;
        break;
    case VP_IMAGE_GIF:
        /* The logical screen first: a bomb needs no frame data to be refused. */
        if (len >= 10) {
            uint32_t sw = (uint32_t)data[6] | (uint32_t)data[7] << 8;
            uint32_t sh = (uint32_t)data[8] | (uint32_t)data[9] << 8;
            if (sw && sh && check_size(f, sw, sh, lim, err))
                return -1;
        }
        if (vp_gif_read_header(data, len, &w, &h, err))
            return -1;
        break;
    case VP_IMAGE_BMP: {
        vp_bmp_header bh;
        if (vp_bmp_read_header(data, len, &bh, err))
            return -1;
        w = bh.width;
        h = bh.height;
        break;
    }
    case VP_IMAGE_UNKNOWN:
        return unsupported(data, len, err);
    }
    if (check_size(f, w, h, lim, err))
        return -1;
    info->format = f;
    info->width = w;
    info->height = h;
    return 0;
}
