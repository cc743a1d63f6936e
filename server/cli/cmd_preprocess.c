/* vprm preprocess: decode one image, tile and normalise it exactly as the model card's
 * load_image does, and write the tiles as .npy files for inspection and oracle tests. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/image/image.h"
#include "engine/util/file.h"
#include "engine/util/npy.h"
#include "server/cli/commands.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: vprm preprocess --image FILE --out TILES.npy [options]\n"
            "\n"
            "Decodes FILE (PNG, JPEG, GIF first frame, BMP), converts it to RGB as Pillow's\n"
            "convert(\"RGB\") does, tiles it as InternVL's dynamic_preprocess (grid of 448x448\n"
            "tiles closest to the image's aspect ratio, Pillow BICUBIC resize, plus a thumbnail\n"
            "when the grid has more than one tile) and normalises each tile with the ImageNet\n"
            "mean/std in float32.\n"
            "\n"
            "  --image FILE       input image (required)\n"
            "  --out FILE         float32 .npy of shape [tiles, 3, S, S] (required)\n"
            "  --out-u8 FILE      also the 8-bit tiles, uint8 .npy of shape [tiles, S, S, 3]\n"
            "  --max-tiles N      most grid tiles (default 12; max %d)\n"
            "  --min-tiles N      fewest grid tiles (default 1)\n"
            "  --no-thumbnail     do not append the thumbnail tile\n"
            "  --image-size S     tile side (default 448)\n"
            "  --max-pixels N     refuse images over N pixels (default %llu)\n"
            "  --max-bytes N      refuse files over N bytes (default %zu)\n"
            "  --max-side N       refuse images wider or taller than N (default %u)\n"
            "  --threads N        resize threads (default 1)\n"
            "  --repeat N         then decode and tile N more times and print their medians\n"
            "                     (warm: the figures a running server sees)\n"
            "\n"
            "Prints one summary line on stderr (size, grid, tiles, milliseconds). Exit status:\n"
            "0 success, 1 the image was refused or could not be written, 2 usage error.\n",
            VP_TILING_MAX_NUM, (unsigned long long)VP_IMAGE_DEFAULT_MAX_PIXELS,
            VP_IMAGE_DEFAULT_MAX_BYTES, VP_IMAGE_DEFAULT_MAX_SIDE);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Parses a positive integer option value; -1 on anything else. */
static int parse_count(const char *opt, const char *s, unsigned long long max,
                       unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || errno || v == 0 || v > max || s[0] == '-') {
        fprintf(stderr, "vprm preprocess: %s expects an integer in 1..%llu, got '%s'\n", opt, max,
                s);
        return -1;
    }
    *out = v;
    return 0;
}

static int fail(const vp_error *err)
{
    fprintf(stderr, "vprm preprocess: %s (%d %s)\n", err->message,
            vp_err_http_status(err->kind), vp_err_type(err->kind));
    return 1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Decodes and tiles n times after a first untimed run (the heap warmed as in a running
 * server, where a cold process pays page faults for every fresh buffer) and prints the
 * median decode and tiling times. */
static int warm_timings(const uint8_t *data, size_t len, const vp_image_limits *lim,
                        const vp_tiling_params *tp, size_t n)
{
    double *ms = malloc(sizeof(double) * 2 * n);
    if (!ms) {
        fprintf(stderr, "vprm preprocess: out of memory\n");
        return -1;
    }
    vp_error err = {0};
    for (size_t i = 0; i <= n; i++) {
        double t0 = now_ms();
        vp_rgb_image img;
        if (vp_image_decode_rgb(data, len, lim, &img, &err)) {
            free(ms);
            return fail(&err) ? -1 : 0;
        }
        double t1 = now_ms();
        vp_image_tiles tiles;
        int rc = vp_image_make_tiles(&img, tp, &tiles, &err);
        vp_rgb_image_free(&img);
        if (rc) {
            free(ms);
            return fail(&err) ? -1 : 0;
        }
        vp_image_tiles_free(&tiles);
        if (i) { /* the first run warms the heap */
            ms[i - 1] = t1 - t0;
            ms[n + i - 1] = now_ms() - t1;
        }
    }
    qsort(ms, n, sizeof *ms, cmp_double);
    qsort(ms + n, n, sizeof *ms, cmp_double);
    /* the middle value, or the mean of the two middle ones for an even count */
    double dec = n % 2 ? ms[n / 2] : (ms[n / 2 - 1] + ms[n / 2]) / 2;
    double til = n % 2 ? ms[n + n / 2] : (ms[n + n / 2 - 1] + ms[n + n / 2]) / 2;
    fprintf(stderr, "preprocess: warm, median of %zu: decode %.2f ms, tiles %.2f ms (%d threads)\n",
            n, dec, til, tp->threads);
    free(ms);
    return 0;
}

int cmd_preprocess(int argc, char **argv)
{
    const char *image = NULL, *out = NULL, *out_u8 = NULL;
    unsigned long long repeat = 0;
    vp_image_limits lim;
    vp_image_limits_default(&lim);
    vp_tiling_params tp;
    vp_tiling_params_default(&tp);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--no-thumbnail")) {
            tp.use_thumbnail = false;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "vprm preprocess: unknown option or missing value: %s\n", a);
            usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        unsigned long long n;
        if (!strcmp(a, "--image")) {
            image = v;
        } else if (!strcmp(a, "--out")) {
            out = v;
        } else if (!strcmp(a, "--out-u8")) {
            out_u8 = v;
        } else if (!strcmp(a, "--max-tiles")) {
            if (parse_count(a, v, VP_TILING_MAX_NUM, &n))
                return 2;
            tp.max_num = (int)n;
        } else if (!strcmp(a, "--min-tiles")) {
            if (parse_count(a, v, VP_TILING_MAX_NUM, &n))
                return 2;
            tp.min_num = (int)n;
        } else if (!strcmp(a, "--image-size")) {
            if (parse_count(a, v, VP_TILING_MAX_IMAGE_SIZE, &n))
                return 2;
            tp.image_size = (int)n;
        } else if (!strcmp(a, "--max-pixels")) {
            if (parse_count(a, v, ~0ULL, &n))
                return 2;
            lim.max_pixels = n;
        } else if (!strcmp(a, "--max-bytes")) {
            if (parse_count(a, v, SIZE_MAX, &n))
                return 2;
            lim.max_encoded_bytes = (size_t)n;
        } else if (!strcmp(a, "--max-side")) {
            if (parse_count(a, v, VP_IMAGE_MAX_SIDE, &n))
                return 2;
            lim.max_width = lim.max_height = (uint32_t)n;
        } else if (!strcmp(a, "--repeat")) {
            if (parse_count(a, v, 10000, &n))
                return 2;
            repeat = n;
        } else if (!strcmp(a, "--threads")) {
            if (parse_count(a, v, 64, &n))
                return 2;
            tp.threads = (int)n;
        } else {
            fprintf(stderr, "vprm preprocess: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!image || !out) {
        fprintf(stderr, "vprm preprocess: --image and --out are required\n");
        usage(stderr);
        return 2;
    }
    vp_error err = {0};
    if (vp_tiling_params_check(&tp, &err)) {
        fprintf(stderr, "vprm preprocess: %s\n", err.message);
        return 2;
    }

    uint8_t *data;
    size_t len;
    if (vp_read_file(image, lim.max_encoded_bytes, &data, &len, &err))
        return fail(&err);
    if (repeat && warm_timings(data, len, &lim, &tp, (size_t)repeat)) {
        free(data);
        return 1;
    }
    double t0 = now_ms();
    vp_rgb_image img;
    if (vp_image_decode_rgb(data, len, &lim, &img, &err)) {
        free(data);
        return fail(&err);
    }
    vp_image_format fmt = vp_image_sniff(data, len);
    free(data);
    double t1 = now_ms();
    vp_image_tiles tiles;
    int rc = vp_image_make_tiles(&img, &tp, &tiles, &err);
    vp_rgb_image_free(&img);
    if (rc)
        return fail(&err);
    double t2 = now_ms();
    const size_t S = (size_t)tp.image_size, nt = (size_t)tiles.grid.n_tiles;
    float *f = malloc(sizeof(float) * nt * 3 * S * S);
    if (!f) {
        vp_image_tiles_free(&tiles);
        fprintf(stderr, "vprm preprocess: out of memory for %zu float tiles\n", nt);
        return 1;
    }
    vp_tiles_normalize(tiles.u8, nt, tp.image_size, f);
    double t3 = now_ms();

    size_t shape_f[4] = {nt, 3, S, S}, shape_u8[4] = {nt, S, S, 3};
    rc = vp_npy_write(out, VP_NPY_F32, shape_f, 4, f, &err);
    if (!rc && out_u8)
        rc = vp_npy_write(out_u8, VP_NPY_U8, shape_u8, 4, tiles.u8, &err);
    fprintf(stderr,
            "preprocess: %s %ux%u %s, grid %dx%d%s = %d tiles, decode %.1f ms, tiles %.1f ms, "
            "normalise %.1f ms, total %.1f ms\n",
            image, tiles.src_width, tiles.src_height, vp_image_format_name(fmt), tiles.grid.cols,
            tiles.grid.rows, tiles.grid.thumbnail ? " + thumbnail" : "", tiles.grid.n_tiles,
            t1 - t0, t2 - t1, t3 - t2, t3 - t0);
    free(f);
    vp_image_tiles_free(&tiles);
    return rc ? fail(&err) : 0;
}
