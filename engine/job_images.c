/* Decoding and tiling of a request's images into the job's 8-bit tiles. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "engine/image/image.h"
#include "engine/image_cache.h"
#include "engine/job.h"
#include "engine/util/digest.h"
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

/* Appends n decoded tiles (u8, taken: freed here) and their digests to the set; the
 * first image's buffer becomes the set's (no copy). */
static int append_decoded(vp_tile_set *set, uint8_t *u8, const uint8_t *digests, size_t n,
                          size_t tile_bytes, const char *param, vp_error *err)
{
    if (!set->tiles) {
        set->tiles = u8;
        set->digests = malloc(n * VP_DIGEST_BYTES + 1);
        if (!set->digests)
            return vp_fail(err, VP_ERR_NOMEM, param, "out of memory for %zu tiles", n);
    } else {
        int rc = vp_tile_set_reserve(set, n, tile_bytes);
        if (rc == 0)
            memcpy(set->tiles + set->n_tiles * tile_bytes, u8, n * tile_bytes);
        free(u8);
        if (rc)
            return vp_fail(err, VP_ERR_NOMEM, param, "out of memory for %zu tiles",
                           set->n_tiles + n);
    }
    memcpy(set->digests + set->n_tiles * VP_DIGEST_BYTES, digests, n * VP_DIGEST_BYTES);
    set->n_tiles += n;
    return 0;
}

/* Each of n tiles' SHA-256 into a new malloc'd array. */
static uint8_t *digest_tiles(const uint8_t *u8, size_t n, size_t tile_bytes, const char *param,
                             vp_error *err)
{
    uint8_t *d = malloc(n * VP_DIGEST_BYTES + 1);
    if (!d) {
        vp_fail(err, VP_ERR_NOMEM, param, "out of memory for %zu tiles", n);
        return NULL;
    }
    for (size_t t = 0; t < n; t++)
        if (vp_digest(u8 + t * tile_bytes, tile_bytes, d + t * VP_DIGEST_BYTES)) {
            free(d);
            vp_fail(err, VP_ERR_INTERNAL, param, "SHA-256 is unavailable (GnuTLS refused it)");
            return NULL;
        }
    return d;
}

static int prepare_images(const vp_engine *e, const vp_score_request *req, vp_job *j,
                          vp_tile_set *set, vp_error *err)
{
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
        /* a hit copies the tiles and their digests once, straight into the set */
        if (vp_image_cache_append(cache, src->data, src->len, tp.max_num, set, &cached_n) == 1) {
            j->tiles_per_image[i] = cached_n;
            continue;
        }
        if (vp_image_preprocess(src->data, src->len, &lim, &tp, &tiles, NULL, err)) {
            snprintf(err->param, sizeof err->param, "%s", param);
            return -1;
        }
        size_t n = (size_t)tiles.grid.n_tiles;
        uint8_t *digests = digest_tiles(tiles.u8, n, tile_bytes, param, err);
        if (!digests) {
            vp_image_tiles_free(&tiles);
            return -1;
        }
        vp_image_cache_put(cache, src->data, src->len, tp.max_num, tiles.u8, digests, (int)n,
                           tile_bytes);
        uint8_t *u8 = tiles.u8;
        tiles.u8 = NULL;
        vp_image_tiles_free(&tiles);
        int rc = append_decoded(set, u8, digests, n, tile_bytes, param, err);
        free(digests);
        if (rc)
            return -1;
        j->tiles_per_image[i] = (int)n;
    }
    j->tile_bytes = tile_bytes;
    return 0;
}

int vp_job_prepare_images(const vp_engine *e, const vp_score_request *req, vp_job *j,
                          vp_error *err)
{
    if (req->n_images == 0)
        return 0;
    vp_tile_set set = {0};
    int rc = prepare_images(e, req, j, &set, err);
    /* the job owns what was gathered, freed with it on failure too */
    j->tiles = set.tiles;
    j->tile_digests = set.digests;
    j->n_tiles = set.n_tiles;
    if (rc == 0)
        j->tiles_hash = vp_hash64(j->tile_digests, j->n_tiles * VP_DIGEST_BYTES);
    return rc;
}

bool vp_job_same_tiles(const vp_job *a, const vp_job *b)
{
    if (a->n_tiles != b->n_tiles)
        return false;
    if (!a->n_tiles || a->tiles == b->tiles)
        return true;
    if (a->tile_digests && b->tile_digests)
        return !memcmp(a->tile_digests, b->tile_digests, a->n_tiles * VP_DIGEST_BYTES);
    return a->tile_bytes == b->tile_bytes &&
           !memcmp(a->tiles, b->tiles, a->n_tiles * a->tile_bytes);
}

vp_prefix_images vp_job_prefix_images(const vp_engine *e, const vp_job *j)
{
    const vp_model_config *cfg = vp_engine_config(e);
    size_t S = (size_t)cfg->vision.image_size;
    bool digests = j->tile_digests != NULL;
    return (vp_prefix_images){.tiles = digests ? j->tile_digests : j->tiles,
                              .n_tiles = j->n_tiles,
                              .tile_bytes = digests ? VP_DIGEST_BYTES : 3 * S * S,
                              .tokens_per_tile = (size_t)cfg->num_image_token,
                              .img_context = vp_engine_prompt(e)->img_context};
}
