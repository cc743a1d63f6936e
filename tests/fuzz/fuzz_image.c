/* Uploaded image bytes through what the server runs on them: vp_image_probe, then
 * vp_image_preprocess (decode, tiling, normalisation), under small limits so that one
 * input stays fast (at most 65536 pixels, tiles of 14..56 pixels, 1..4 grid tiles; the
 * input's length picks the tiling parameters, so mutations visit all of them).
 * Seeds: tests/fuzz/gen_image_seeds.py (tiny PNG/JPEG/GIF/BMP files of every kind), and
 * seed_jpeg_*: the smallest file of each kind tests/image/gen_jpeg.py writes (samplings,
 * Motion-JPEG without tables, colour-space markers, CMYK, YCCK), and arithmetic-coded
 * ones (sequential, progressive, restart intervals, several scans, DAC segments, other
 * statistics tables).
 * Promises:
 *  - a failure carries a message and one of the image kinds: 413 TOO_LARGE (whose
 *    message names the max_image_* limit), 415 UNSUPPORTED, 422 UNDECODABLE;
 *  - the probe and the pipeline agree: a probe failure is the pipeline's failure (same
 *    kind); after a successful probe the format is settled (no 415 later) and a decoded
 *    image has the probe's width and height;
 *  - a success respects every limit, and its grid, tile count, tile size and thumbnail
 *    are vp_tiling_choose_grid's for the probed size; the float tiles are the
 *    normalisation table applied to the 8-bit tiles in CHW order;
 *  - decoding is deterministic: two decodes over stacks filled with different bytes give
 *    the same pixels (a decoder reading uninitialised stack memory differs);
 *  - nothing leaks (every buffer freed; ASan's leak check). */
#include <string.h>

#include "engine/image/image.h"
#include "tests/fuzz/fuzz.h"

/* Fills the stack below the caller with `byte`, so that a later callee reading a local
 * it never wrote sees `byte` (noinline: the frame must sit where the callee's will). */
__attribute__((noinline)) static void fill_stack(int byte)
{
    volatile unsigned char buf[64 * 1024];
    memset((unsigned char *)buf, byte, sizeof buf);
    __asm__ volatile("" : : "r"(buf) : "memory");
}

static int image_kind(vp_err_kind k)
{
    return k == VP_ERR_TOO_LARGE || k == VP_ERR_UNSUPPORTED || k == VP_ERR_UNDECODABLE;
}

static void require_image_error(const vp_error *err, const char *what)
{
    FUZZ_REQUIRE_ERROR(*err);
    FUZZ_REQUIRE(image_kind(err->kind), "%s: error kind %d is not 413/415/422: %s", what,
                 (int)err->kind, err->message);
    FUZZ_REQUIRE(err->kind != VP_ERR_TOO_LARGE || strstr(err->message, "max_image_") ||
                     strstr(err->message, "max_jpeg_scans"),
                 "%s: 413 without the limit's name: %s", what, err->message);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vp_image_limits lim = {
        .max_encoded_bytes = 8000, /* under the 8192 of max_len: the byte limit is reached */
        .max_pixels = 256 * 256,
        .max_width = 1024,         /* thin images pass, wider ones meet the side limit */
        .max_height = 1024,
        .max_jpeg_scans = 24,      /* reached by inputs of many tiny scans */
    };
    vp_tiling_params p;
    vp_tiling_params_default(&p);
    p.min_num = 1;
    p.max_num = 1 + (int)(size % 4);
    p.image_size = 14 << ((size / 4) % 3);
    p.use_thumbnail = (size / 12) % 2 == 0;
    p.threads = 1;

    vp_image_info info;
    vp_error perr = {0};
    int probe_rc = vp_image_probe(data, size, &lim, &info, &perr);
    if (probe_rc)
        require_image_error(&perr, "probe");
    else
        FUZZ_REQUIRE(info.format != VP_IMAGE_UNKNOWN && info.width && info.height &&
                         info.width <= lim.max_width && info.height <= lim.max_height &&
                         (uint64_t)info.width * info.height <= lim.max_pixels &&
                         size <= lim.max_encoded_bytes,
                     "probe accepted %s %ux%u of %zu bytes", vp_image_format_name(info.format),
                     info.width, info.height, size);

    /* Decode twice over differently filled stacks: same outcome, same pixels. */
    vp_rgb_image a, b;
    vp_error aerr = {0}, berr = {0};
    fill_stack(0x00);
    int arc = vp_image_decode_rgb(data, size, &lim, &a, &aerr);
    fill_stack(0xff);
    int brc = vp_image_decode_rgb(data, size, &lim, &b, &berr);
    FUZZ_REQUIRE(arc == brc, "decode succeeded once and failed once: %s",
                 arc ? aerr.message : berr.message);
    if (arc) {
        require_image_error(&aerr, "decode");
        FUZZ_REQUIRE(aerr.kind == berr.kind && !strcmp(aerr.message, berr.message),
                     "two decodes fail differently: '%s' / '%s'", aerr.message, berr.message);
        FUZZ_REQUIRE(probe_rc == 0 || aerr.kind == perr.kind,
                     "probe failed with kind %d (%s), decode with kind %d (%s)", (int)perr.kind,
                     perr.message, (int)aerr.kind, aerr.message);
        FUZZ_REQUIRE(probe_rc || aerr.kind != VP_ERR_UNSUPPORTED,
                     "probe accepted the %s image, decode calls it unsupported: %s",
                     vp_image_format_name(info.format), aerr.message);
    } else {
        FUZZ_REQUIRE(probe_rc == 0, "decode accepted what the probe refused: %s", perr.message);
        FUZZ_REQUIRE(a.width == info.width && a.height == info.height && a.pixels,
                     "%s decodes to %ux%u, the probe says %ux%u", vp_image_format_name(info.format),
                     a.width, a.height, info.width, info.height);
        FUZZ_REQUIRE(b.width == a.width && b.height == a.height &&
                         !memcmp(a.pixels, b.pixels, (size_t)a.width * a.height * 3),
                     "two decodes of a %s %ux%u image differ (uninitialised memory read?)",
                     vp_image_format_name(info.format), a.width, a.height);
        vp_rgb_image_free(&a);
        vp_rgb_image_free(&b);
    }

    vp_image_tiles tiles;
    float *f32 = NULL;
    vp_error err = {0};
    if (vp_image_preprocess(data, size, &lim, &p, &tiles, &f32, &err)) {
        require_image_error(&err, "preprocess");
        FUZZ_REQUIRE(arc && err.kind == aerr.kind,
                     "preprocess failed (kind %d: %s) where decode gave kind %d", (int)err.kind,
                     err.message, arc ? (int)aerr.kind : 0);
        FUZZ_REQUIRE(tiles.u8 == NULL && f32 == NULL, "a failure left buffers behind");
        return 0;
    }
    FUZZ_REQUIRE(arc == 0, "preprocess accepted what decode refused: %s", aerr.message);
    FUZZ_REQUIRE(tiles.src_width == info.width && tiles.src_height == info.height,
                 "tiles of a %ux%u image, the probe says %ux%u", tiles.src_width,
                 tiles.src_height, info.width, info.height);

    vp_tile_grid g;
    vp_error gerr = {0};
    FUZZ_REQUIRE(vp_tiling_choose_grid(info.width, info.height, &p, &g, &gerr) == 0,
                 "no grid for %ux%u: %s", info.width, info.height, gerr.message);
    const vp_tile_grid *t = &tiles.grid;
    FUZZ_REQUIRE(t->cols == g.cols && t->rows == g.rows && t->n_tiles == g.n_tiles &&
                     t->thumbnail == g.thumbnail,
                 "%ux%u: grid %dx%d (%d tiles, thumbnail %d), choose_grid says %dx%d (%d, %d)",
                 info.width, info.height, t->cols, t->rows, t->n_tiles, (int)t->thumbnail, g.cols,
                 g.rows, g.n_tiles, (int)g.thumbnail);
    FUZZ_REQUIRE(t->cols >= 1 && t->rows >= 1 && t->cols * t->rows >= p.min_num &&
                     t->cols * t->rows <= p.max_num &&
                     t->n_tiles == t->cols * t->rows + (t->thumbnail ? 1 : 0) &&
                     t->thumbnail == (p.use_thumbnail && t->cols * t->rows > 1),
                 "grid %dx%d, %d tiles, thumbnail %d under max_num %d", t->cols, t->rows,
                 t->n_tiles, (int)t->thumbnail, p.max_num);
    /* Independently of the candidates' order: no grid is closer to the aspect ratio. */
    double aspect = (double)info.width / info.height;
    double best = __builtin_fabs(aspect - (double)t->cols / t->rows);
    for (int i = 1; i <= p.max_num; i++)
        for (int j = 1; i * j <= p.max_num; j++)
            FUZZ_REQUIRE(i * j < p.min_num || __builtin_fabs(aspect - (double)i / j) >= best,
                         "%ux%u: grid %dx%d is closer than the chosen %dx%d", info.width,
                         info.height, i, j, t->cols, t->rows);
    FUZZ_REQUIRE(tiles.tile_size == p.image_size && tiles.u8 && f32, "tile size %d (asked %d)",
                 tiles.tile_size, p.image_size);

    /* The float tiles are table[c][u8] in CHW order, tile after tile. */
    float table[3][256];
    vp_tiles_norm_table(table);
    const size_t S = (size_t)p.image_size, plane = S * S;
    for (size_t k = 0; k < (size_t)t->n_tiles; k++)
        for (size_t i = 0; i < plane; i++)
            for (size_t c = 0; c < 3; c++) {
                uint8_t v = tiles.u8[(k * plane + i) * 3 + c];
                float f = f32[(k * 3 + c) * plane + i];
                FUZZ_REQUIRE(!memcmp(&f, &table[c][v], sizeof f),
                             "tile %zu pixel %zu channel %zu: %g for byte %u", k, i, c,
                             (double)f, v);
            }
    vp_image_tiles_free(&tiles);
    free(f32);
    return 0;
}
