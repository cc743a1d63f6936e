/* GIF: the first frame as Pillow 9.4 shows it (GifImagePlugin, frame 0). Pillow's frame 0 is a palette image of the logical screen size (grown to
 * hold the frame's rectangle): every pixel of the frame's rectangle is palette[index],
 * the transparent index included (convert("RGB") ignores transparency); the rest of the
 * screen is palette[transparent index] when the frame has one, else palette[0]. The
 * palette is the frame's local table (unless it is the grey ramp), else the global one,
 * padded with grey i,i,i. */
#include <stdlib.h>
#include <string.h>

#include "engine/image/formats.h"

static uint32_t le16(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

/* Skips data sub-blocks (length byte + bytes) up to the 0 terminator. */
static int skip_sub_blocks(const uint8_t *d, size_t len, size_t *pos)
{
    size_t p = *pos;
    for (;;) {
        if (p >= len)
            return -1;
        uint8_t n = d[p++];
        if (!n)
            break;
        if (len - p < n)
            return -1;
        p += n;
    }
    *pos = p;
    return 0;
}

/* Pillow's _is_palette_needed, negated: every entry i is i,i,i. */
static int is_grey_ramp(const uint8_t *pal, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (pal[3 * i] != i || pal[3 * i + 1] != i || pal[3 * i + 2] != i)
            return 0;
    return 1;
}

typedef struct gif_walk {
    uint32_t screen_w, screen_h;
    const uint8_t *global_pal;   /* [global_n][3] or NULL */
    uint32_t global_n;
    int transparent;
    uint32_t x, y, w, h;
    uint8_t frame_flags;         /* image descriptor flags (interlace bit used) */
    const uint8_t *local_pal;    /* [local_n][3] or NULL */
    uint32_t local_n;
    size_t data_start;           /* the LZW minimum code size byte */
} gif_walk;

/* Walks the header and extensions to the first image descriptor; with want_data also
 * through that image's data sub-blocks. */
static int walk(const uint8_t *d, size_t len, int want_data, gif_walk *g, vp_error *err)
{
    memset(g, 0, sizeof *g);
    g->transparent = -1;
    if (len < 13 || memcmp(d, "GIF", 3) || (memcmp(d + 3, "87a", 3) && memcmp(d + 3, "89a", 3)))
        return vp_fail(err, VP_ERR_UNDECODABLE, "image", "GIF header is truncated or wrong");
    g->screen_w = le16(d + 6);
    g->screen_h = le16(d + 8);
    uint8_t flags = d[10];
    size_t pos = 13;
    if (flags & 0x80) {
        g->global_n = 2u << (flags & 7);
        if (len - pos < (size_t)g->global_n * 3)
            return vp_fail(err, VP_ERR_UNDECODABLE, "image", "GIF truncated in its palette");
        g->global_pal = d + pos;
        pos += (size_t)g->global_n * 3;
    }
    for (;;) {
        if (pos >= len)
            return vp_fail(err, VP_ERR_UNDECODABLE, "image", "GIF truncated before its first image");
        uint8_t tag = d[pos++];
        if (tag == ';')
            return vp_fail(err, VP_ERR_UNDECODABLE, "image", "GIF has no image");
        if (tag == '!') {
            if (pos >= len)
                return vp_fail(err, VP_ERR_UNDECODABLE, "image", "GIF truncated in an extension");
            uint8_t label = d[pos++];
            if (label == 0xf9) {
                /* Graphic control: flags, delay (2), transparent index. Pillow reads the
                 * flags and the delay from the first sub-block (so it needs 3 bytes, 4
                 * with the transparency flag: shorter is refused, as an empty one), and a
                 * later one without the flag leaves an earlier index in place. */
                size_t n = pos < len ? d[pos] : 0;
                if (n < 3 || len - pos < 1 + n || ((d[pos + 1] & 1) && n < 4))
                    return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                                   "GIF graphic control extension is too short");
                if (d[pos + 1] & 1)
                    g->transparent = d[pos + 4];
            }
            if (skip_sub_blocks(d, len, &pos))
                return vp_fail(err, VP_ERR_UNDECODABLE, "image", "GIF truncated in an extension");
            continue;
        }
        if (tag != ',')
            continue; /* Pillow skips stray bytes between blocks */
        if (len - pos < 9)
            return vp_fail(err, VP_ERR_UNDECODABLE, "image", "GIF truncated in an image descriptor");
        g->x = le16(d + pos);
        g->y = le16(d + pos + 2);
        g->w = le16(d + pos + 4);
        g->h = le16(d + pos + 6);
        g->frame_flags = d[pos + 8];
        pos += 9;
        if (g->frame_flags & 0x80) {
            g->local_n = 2u << (g->frame_flags & 7);
            if (len - pos < (size_t)g->local_n * 3)
                return vp_fail(err, VP_ERR_UNDECODABLE, "image", "GIF truncated in a local palette");
            g->local_pal = d + pos;
            pos += (size_t)g->local_n * 3;
        }
        /* Pillow grows the image when the frame reaches past the logical screen. */
        if (g->x + g->w > g->screen_w)
            g->screen_w = g->x + g->w;
        if (g->y + g->h > g->screen_h)
            g->screen_h = g->y + g->h;
        if (!want_data)
            return 0;
        if (pos >= len)
            return vp_fail(err, VP_ERR_UNDECODABLE, "image", "GIF truncated before its image data");
        g->data_start = pos; /* its sub-blocks are the decoder's to read (gif_lzw.c) */
        return 0;
    }
}

int vp_gif_read_header(const uint8_t *data, size_t len, uint32_t *w, uint32_t *h, vp_error *err)
{
    gif_walk g;
    if (walk(data, len, 0, &g, err))
        return -1;
    *w = g.screen_w;
    *h = g.screen_h;
    return 0;
}

int vp_gif_first_frame(const uint8_t *data, size_t len, vp_gif_frame *frame, vp_error *err)
{
    gif_walk g;
    if (walk(data, len, 1, &g, err))
        return -1;
    if (g.screen_w > 0xffff || g.screen_h > 0xffff)
        return vp_fail(err, VP_ERR_UNDECODABLE, "image",
                       "GIF frame reaches past 65535 pixels (%ux%u)", g.screen_w, g.screen_h);
    if (g.x == 0 && g.w == 0) {
        /* Pillow's decoder takes a tile from x 0 to x 0 for the whole image: the data
         * fills the (grown) screen from its corner, whatever the frame's y and height. */
        g.y = 0;
        g.w = g.screen_w;
        g.h = g.screen_h;
    }
    if (!g.w || !g.h) /* Pillow: "tile cannot extend outside image" */
        return vp_fail(err, VP_ERR_UNDECODABLE, "image", "GIF frame of %ux%u pixels", g.w, g.h);
    frame->screen_w = g.screen_w;
    frame->screen_h = g.screen_h;
    frame->x = g.x;
    frame->y = g.y;
    frame->w = g.w;
    frame->h = g.h;
    frame->transparent = g.transparent;
    frame->interlace = (g.frame_flags & 0x40) != 0;
    frame->data_start = g.data_start;
    /* Pillow takes a local table that is the grey ramp (entry i = i,i,i) for "no
     * palette": the frame opens as L, and the image's palette, the global table, then
     * applies to its indices. */
    int local = g.local_pal && !is_grey_ramp(g.local_pal, g.local_n);
    const uint8_t *pal = local ? g.local_pal : g.global_pal;
    uint32_t pal_n = local ? g.local_n : g.global_n;
    for (uint32_t i = 0; i < 256; i++)
        for (int c = 0; c < 3; c++)
            frame->palette[i][c] = i < pal_n ? pal[i * 3 + c] : (uint8_t)i;
    return 0;
}
