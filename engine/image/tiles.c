/* Tiles of one image (resize, crop, thumbnail), their normalisation, and the whole
 * preprocessing pipeline from encoded bytes to float32 tiles. */
#include <stdlib.h>
#include <string.h>

#include "engine/image/image.h"

const float vp_image_mean[3] = {0.485f, 0.456f, 0.406f};
const float vp_image_std[3] = {0.229f, 0.224f, 0.225f};

void vp_image_tiles_free(vp_image_tiles *t)
{
    free(t->u8);
    t->u8 = NULL;
}

int vp_image_make_tiles(const vp_rgb_image *img, const vp_tiling_params *p, vp_image_tiles *out,
                        vp_error *err)
{
    memset(out, 0, sizeof *out);
    vp_tile_grid g;
    if (vp_tiling_choose_grid(img->width, img->height, p, &g, err))
        return -1;
    const size_t S = (size_t)p->image_size;
    const size_t tile_bytes = S * S * 3;
    uint8_t *u8 = malloc(tile_bytes * (size_t)g.n_tiles);
    if (!u8)
        return vp_fail(err, VP_ERR_NOMEM, "image", "out of memory for %d tiles", g.n_tiles);
    /* The grid's resize lands in the tiles row-major (tile t is column t % cols, row
     * t / cols of the resized image), the thumbnail in the last tile. */
    vp_resize_layout grid = {.base = u8, .tile_w = (uint32_t)S, .tile_h = (uint32_t)S,
                             .tiles_across = (uint32_t)g.cols};
    vp_resize_layout thumb = {.base = u8 + (size_t)(g.n_tiles - 1) * tile_bytes,
                              .tile_w = (uint32_t)S, .tile_h = (uint32_t)S, .tiles_across = 1};
    if (vp_image_resize_into(img, (uint32_t)(S * g.cols), (uint32_t)(S * g.rows), p->threads,
                             &grid, err) ||
        (g.thumbnail &&
         vp_image_resize_into(img, (uint32_t)S, (uint32_t)S, p->threads, &thumb, err))) {
        free(u8);
        return -1;
    }
    out->src_width = img->width;
    out->src_height = img->height;
    out->grid = g;
    out->tile_size = p->image_size;
    out->u8 = u8;
    return 0;
}

/* torchvision: ToTensor gives x.float().div(255), Normalize then sub_(mean).div_(std),
 * each a correctly rounded float32 operation; a table per channel holds the 256 results. */
void vp_tiles_norm_table(float table[3][256])
{
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) {
            float x = (float)v / 255.0f;
            x = x - vp_image_mean[c];
            table[c][v] = x / vp_image_std[c];
        }
}

void vp_tiles_normalize(const uint8_t *u8, size_t n_tiles, int tile_size, float *out)
{
    float table[3][256];
    vp_tiles_norm_table(table);
    const size_t plane = (size_t)tile_size * tile_size;
    for (size_t t = 0; t < n_tiles; t++) {
        const uint8_t *src = u8 + t * plane * 3;
        float *dst = out + t * plane * 3;
        for (size_t i = 0; i < plane; i++) {
            dst[i] = table[0][src[3 * i]];
            dst[plane + i] = table[1][src[3 * i + 1]];
            dst[2 * plane + i] = table[2][src[3 * i + 2]];
        }
    }
}

int vp_image_preprocess(const uint8_t *data, size_t len, const vp_image_limits *lim,
                        const vp_tiling_params *p, vp_image_tiles *tiles, float **out_f32,
                        vp_error *err)
{
    memset(tiles, 0, sizeof *tiles);
    if (out_f32)
        *out_f32 = NULL;
    if (vp_tiling_params_check(p, err))
        return -1;
    vp_rgb_image img;
    if (vp_image_decode_rgb(data, len, lim, &img, err))
        return -1;
    int rc = vp_image_make_tiles(&img, p, tiles, err);
    vp_rgb_image_free(&img);
    if (rc)
        return -1;
    if (out_f32) {
        size_t n = (size_t)tiles->grid.n_tiles * 3 * (size_t)p->image_size * p->image_size;
        float *f = malloc(sizeof(float) * n);
        if (!f) {
            vp_image_tiles_free(tiles);
            return vp_fail(err, VP_ERR_NOMEM, "image", "out of memory for %d float tiles",
                           tiles->grid.n_tiles);
        }
        vp_tiles_normalize(tiles->u8, (size_t)tiles->grid.n_tiles, p->image_size, f);
        *out_f32 = f;
    }
    return 0;
}
