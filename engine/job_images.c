/* Decoding and tiling of a request's images into the job's 8-bit tiles. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "engine/image/image.h"
#include "engine/image_cache.h"
#include "engine/job.h"
#include "engine/util/hash64.h"

/* The limits and tiling parameters the engine applies to req's images. */
static void image_params(const vp_engine *e, const vp_score_request *req, vp_image_limits *lim,
                         vp_tiling_params *tp)
{
    const vp_model_config *cfg = vp_engine_config(e);
    const vp_engine_options *opt = vp_engine_opts(e);
    vp_image_limits_default(lim);
    if (opt->max_image_bytes)
        lim->max_encoded_bytes = opt->max_image_bytes;
    if (opt->max_image_pixels)
        lim->max_pixels = opt->max_image_pixels;
    if (opt->max_image_side)
        lim->max_width = lim->max_height = (uint32_t)opt->max_image_side;
    if (opt->max_jpeg_scans)
        lim->max_jpeg_scans = opt->max_jpeg_scans;
    vp_tiling_params_default(tp);
    tp->min_num = cfg->min_dynamic_patch;
    tp->max_num = req->max_tiles > 0 ? req->max_tiles : cfg->max_dynamic_patch;
    if (opt->max_tiles > 0 && tp->max_num > opt->max_tiles)
        tp->max_num = opt->max_tiles; /* the server's limit also bounds the model's default */
    /* a max under config.json's min_dynamic_patch lists no grid: one tile, as the model card */
    tp->image_size = cfg->vision.image_size;
    tp->use_thumbnail = cfg->use_thumbnail;
    tp->threads = opt->image_threads;
    if (tp->threads <= 0) { /* a large image's resize splits over a few cores */
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        tp->threads = cpus < 1 ? 1 : cpus > 4 ? 4 : (int)cpus;
    }
}

size_t vp_engine_count_tiles(const vp_engine *e, const vp_score_request *req)
{
    vp_image_limits lim;
    vp_tiling_params tp;
    image_params(e, req, &lim, &tp);
    size_t n = 0;
    for (size_t i = 0; i < req->n_images; i++) {
        const vp_image_src *src = &req->images[i];
        vp_image_info info;
        vp_tile_grid grid;
        vp_error ignored;
        if (src->kind == VP_IMAGE_BYTES &&
            !vp_image_probe(src->data, src->len, &lim, &info, &ignored) &&
            !vp_tiling_choose_grid(info.width, info.height, &tp, &grid, &ignored))
            n += (size_t)grid.n_tiles;
    }
    return n;
}

int vp_job_prepare_images(const vp_engine *e, const vp_score_request *req, vp_job *j,
                          vp_error *err)
{
    if (req->n_images == 0)
        return 0;
    const vp_model_config *cfg = vp_engine_config(e);
    vp_image_limits lim;
    vp_tiling_params tp;
    image_params(e, req, &lim, &tp);
    vp_image_cache *cache = vp_engine_image_cache(e);

    size_t S = (size_t)cfg->vision.image_size, tile_bytes = 3 * S * S;
    j->n_images = req->n_images;
    j->tiles_per_image = calloc(req->n_images, sizeof *j->tiles_per_image);
    if (!j->tiles_per_image)
        return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory");
    for (size_t i = 0; i < req->n_images; i++) {
        char param[32];
        if (req->n_images == 1)
            snprintf(param, sizeof param, "image");
        else
            snprintf(param, sizeof param, "images[%zu]", i);
        const vp_image_src *src = &req->images[i];
        if (src->kind != VP_IMAGE_BYTES)
            return vp_fail(err, VP_ERR_BAD_REQUEST, param, "image URL was not fetched");
        vp_image_tiles tiles = {0};
        int cached_n = 0;
        /* a hit copies the tiles once, straight into the job's buffer */
        int hit = vp_image_cache_append(cache, src->data, src->len, tp.max_num, &j->tiles,
                                        j->n_tiles * tile_bytes, &cached_n);
        if (hit == 1) {
            j->n_tiles += (size_t)cached_n;
            j->tiles_per_image[i] = cached_n;
            continue;
        }
        if (vp_image_preprocess(src->data, src->len, &lim, &tp, &tiles, NULL, err)) {
            snprintf(err->param, sizeof err->param, "%s", param);
            return -1;
        }
        vp_image_cache_put(cache, src->data, src->len, tp.max_num, tiles.u8, tiles.grid.n_tiles,
                           tile_bytes);
        size_t n = (size_t)tiles.grid.n_tiles;
        if (!j->tiles) { /* the first image's tiles become the job's (no copy) */
            j->tiles = tiles.u8;
            tiles.u8 = NULL;
        } else {
            uint8_t *grown = realloc(j->tiles, (j->n_tiles + n) * tile_bytes);
            if (!grown) {
                vp_image_tiles_free(&tiles);
                return vp_fail(err, VP_ERR_NOMEM, param, "out of memory for %zu tiles",
                               j->n_tiles + n);
            }
            j->tiles = grown;
            memcpy(j->tiles + j->n_tiles * tile_bytes, tiles.u8, n * tile_bytes);
        }
        j->n_tiles += n;
        vp_image_tiles_free(&tiles);
        j->tiles_per_image[i] = (int)n;
    }
    j->tile_bytes = tile_bytes;
    j->tiles_hash = vp_hash64(j->tiles, j->n_tiles * tile_bytes);
    return 0;
}
