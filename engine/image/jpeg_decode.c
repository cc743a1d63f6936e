/* JPEG decoding, driven here scan by scan: stb_image parses the markers and tables and
 * allocates the planes and coefficient arrays; jpeg_scan.c (and jpeg_arith.c for
 * arithmetic coding) entropy-decodes every scan
 * with libjpeg's rules for damaged data (stb_image's own decoders differ there); each
 * block goes through libjpeg-turbo's IDCT with its component's quantisation table as
 * latched at its first scan (jpeg_pixels.c), which then upsamples and converts the
 * colours as libjpeg-turbo does for Pillow. This uses stb_image's internals, whose version the Debian package
 * pins (a renamed one fails the build). */
#include <stdint.h>
#include <string.h>

#include "engine/image/formats.h"
#include "engine/image/image.h"
#include "engine/image/jpeg_pixels.h"
#include "engine/image/jpeg_scan.h"
#include "engine/image/jpeg_smooth.h"

#define STBI_ONLY_JPEG
#include "engine/image/stb_image_impl.h"

static vp_jpeg_huff huff_of(const stbi__huffman *h, const stbi__int16 *fast_ac)
{
    return (vp_jpeg_huff){.fast = h->fast, .size = h->size, .values = h->values,
                          .maxcode = h->maxcode, .delta = h->delta, .fast_ac = fast_ac};
}

/* The scan whose header stb_image just read, decoded by jpeg_scan.c from the data
 * stb_image's position has reached to data_end (the marker after it follows); arith: its
 * tables when the frame is arithmetic-coded. */
static int decode_scan(stbi__jpeg *j, const stbi_uc *data_end, int cut,
                       const vp_jpeg_arith_cond *arith, uint16_t (*latched)[64],
                       size_t *last_good_row, vp_error *err)
{
    const stbi_uc *marker = data_end;
    while (!cut && *marker == 0xff)
        marker++;
    vp_jpeg_scan scan = {.data = j->s->img_buffer, .data_end = data_end,
                         .end_marker = cut ? 0xd9 : *marker, .data_cut = cut,
                         .n_comp = j->scan_n, .mcus_wide = (size_t)j->img_mcu_x,
                         .mcus_high = (size_t)j->img_mcu_y,
                         .restart_interval = (unsigned)j->restart_interval,
                         .arithmetic = arith != NULL,
                         .progressive = j->progressive, .ss = j->spec_start, .se = j->spec_end,
                         .ah = j->succ_high, .al = j->succ_low};
    for (int k = 0; k < j->scan_n; k++) {
        int n = j->order[k], ha = j->img_comp[n].ha;
        scan.comp[k] = (vp_jpeg_scan_comp){
            .plane = j->img_comp[n].data,
            .stride = (size_t)j->img_comp[n].w2,
            .coef = j->img_comp[n].raw_coeff ? j->img_comp[n].coeff : NULL,
            .coef_wide = (size_t)j->img_comp[n].coeff_w,
            .h = j->img_comp[n].h,
            .v = j->img_comp[n].v,
            .blocks_wide = (size_t)(j->img_comp[n].x + 7) >> 3,
            .blocks_high = (size_t)(j->img_comp[n].y + 7) >> 3,
            .dc = huff_of(&j->huff_dc[j->img_comp[n].hd], NULL),
            .ac = huff_of(&j->huff_ac[ha], j->fast_ac[ha]),
            .dequant = latched[n]};
        if (arith) {
            scan.comp[k].dc_tbl = arith->dc_tbl[k];
            scan.comp[k].ac_tbl = arith->ac_tbl[k];
            scan.comp[k].dc_l = arith->dc_l[k];
            scan.comp[k].dc_u = arith->dc_u[k];
            scan.comp[k].ac_k = arith->ac_k[k];
        }
    }
    if (vp_jpeg_decode_scan(&scan, last_good_row, err))
        return -1;
    /* on to the marker after the scan */
    j->s->img_buffer = (stbi_uc *)(uintptr_t)data_end;
    j->marker = STBI__MARKER_none;
    return 0;
}

/* The next marker after the frame header, as libjpeg's reader finds it: stray bytes
 * before it skipped, and restart or TEM markers outside a scan ignored (stb_image's
 * reader refuses both). STBI__MARKER_none at the end of the data. */
static int next_marker(stbi__jpeg *j, const vp_jpeg_stream *st)
{
    for (;;) {
        int m = j->marker;
        j->marker = STBI__MARKER_none;
        if (m == STBI__MARKER_none) {
            size_t pos = (size_t)(j->s->img_buffer - st->data);
            m = vp_jpeg_next_marker(st->data, st->len, &pos);
            if (m < 0)
                return STBI__MARKER_none;
            j->s->img_buffer = (stbi_uc *)(uintptr_t)(st->data + pos);
        }
        if ((m >= 0xd0 && m <= 0xd7) || m == 0x01)
            continue;
        return m;
    }
}

/* Coefficient arrays for a sequential frame of several scans, laid out as stb_image lays
 * out a progressive frame's (and freed with them): libjpeg decodes such a frame into
 * zeroed coefficients, a component again in a later scan over its earlier values, and
 * transforms them once the input is all in. */
static int alloc_coefficients(stbi__jpeg *j)
{
    for (int n = 0; n < j->s->img_n; n++) {
        int w2 = j->img_comp[n].w2, h2 = j->img_comp[n].h2; /* whole MCUs */
        j->img_comp[n].coeff_w = w2 / 8;
        j->img_comp[n].coeff_h = h2 / 8;
        j->img_comp[n].raw_coeff = stbi__malloc_mad3(w2, h2, sizeof(short), 15);
        if (!j->img_comp[n].raw_coeff)
            return -1;
        j->img_comp[n].coeff = (short *)(((size_t)j->img_comp[n].raw_coeff + 15) & ~(size_t)15);
    }
    return 0;
}

/* The header, every scan and the markers between them, up to EOI. */
static int decode_scans(stbi__jpeg *j, const vp_jpeg_stream *st, vp_error *err)
{
    for (int c = 0; c < 4; c++) {
        j->img_comp[c].raw_data = NULL;
        j->img_comp[c].raw_coeff = NULL;
    }
    j->restart_interval = 0;
    if (!stbi__decode_jpeg_header(j, STBI__SCAN_load))
        return vp_stb_failed(VP_IMAGE_JPEG, stbi_failure_reason(), err);
    size_t scan = 0, last_good_row = 0;
    unsigned scanned = 0; /* bit c: component c was in a scan */
    uint16_t latched[4][64] = {{0}}; /* each component's quantisation table */
    vp_jpeg_bits bits[4];
    for (int c = 0; c < 4; c++)
        vp_jpeg_bits_init(&bits[c]);
    for (int m = next_marker(j, st); !stbi__EOI(m); m = next_marker(j, st)) {
        if (stbi__DNL(m)) { /* libjpeg skips it */
            stbi__skip(j->s, stbi__get16be(j->s) - 2);
            continue;
        }
        if (!stbi__SOS(m)) {
            if (!stbi__process_marker(j, m))
                return vp_stb_failed(VP_IMAGE_JPEG, stbi_failure_reason(), err);
            continue;
        }
        if (scan >= st->n_scans)
            return vp_fail(err, VP_ERR_INTERNAL, "image", "JPEG scan %zu was not found by the marker walk",
                           scan + 1);
        const stbi_uc *end = st->data + st->scan_end[scan];
        if (!stbi__process_scan_header(j))
            return vp_stb_failed(VP_IMAGE_JPEG, stbi_failure_reason(), err);
        /* a first scan without every component: libjpeg reads all the scans first */
        int several = !j->progressive && j->scan_n < j->s->img_n;
        if (scan == 0 && several && alloc_coefficients(j))
            return vp_stb_failed(VP_IMAGE_JPEG, stbi_failure_reason(), err);
        for (int k = 0; k < j->scan_n; k++) {
            int n = j->order[k];
            if (!(scanned >> n & 1)) /* libjpeg latches the table at its first scan */
                memcpy(latched[n], j->dequant[j->img_comp[n].tq], sizeof latched[n]);
            scanned |= 1u << n;
            if (j->progressive)
                vp_jpeg_bits_scan(&bits[n], (int)scan + 1, j->spec_start, j->spec_end,
                                  j->succ_low);
        }
        int cut = st->last_cut && scan + 1 == st->n_scans;
        if (decode_scan(j, end, cut, st->arith ? &st->arith[scan] : NULL, latched,
                        &last_good_row, err))
            return -1;
        scan++;
        if (!j->progressive && !j->img_comp[0].raw_coeff)
            break; /* every row is out: Pillow stops reading here (check_tail_marker) */
    }
    if (j->progressive || j->img_comp[0].raw_coeff) { /* every scan is in: transform */
        vp_jpeg_smooth_comp comps[4];
        for (int n = 0; n < j->s->img_n; n++)
            comps[n] = (vp_jpeg_smooth_comp){
                .coef = j->img_comp[n].raw_coeff ? j->img_comp[n].coeff : NULL,
                .coef_wide = (size_t)j->img_comp[n].coeff_w,
                .blocks_wide = (size_t)(j->img_comp[n].x + 7) >> 3,
                .blocks_high = (size_t)(j->img_comp[n].y + 7) >> 3,
                .v = j->img_comp[n].v,
                .quant = scanned >> n & 1 ? latched[n] : NULL,
                .bits = &bits[n],
                .plane = j->img_comp[n].data,
                .stride = (size_t)j->img_comp[n].w2};
        /* a progressive frame's missing coefficients estimated */
        int smooth = j->progressive && vp_jpeg_smoothing_applies(comps, j->s->img_n);
        for (int n = 0; n < j->s->img_n; n++) {
            const vp_jpeg_smooth_comp *c = &comps[n];
            if (smooth) {
                vp_jpeg_smooth_idct(c, (size_t)j->img_mcu_y, last_good_row, (int)scan);
                continue;
            }
            for (size_t by = 0; by < c->blocks_high; by++)
                for (size_t bx = 0; bx < c->blocks_wide; bx++)
                    vp_jpeg_idct_islow(c->plane + by * 8 * c->stride + bx * 8, (int)c->stride,
                                       c->coef + 64 * (by * c->coef_wide + bx), latched[n]);
        }
    }
    return 0;
}

static int decode_stream(const vp_jpeg_stream *st, const vp_jpeg_markers *mk,
                         const vp_image_info *info, vp_rgb_image *out, vp_error *err)
{
    if (st->len > 0x7fffffff)
        return vp_fail(err, VP_ERR_TOO_LARGE, "image", "%zu bytes of JPEG data", st->len);
    vp_stb_alloc_begin(info->width, info->height, st->len);
    stbi__context s;
    stbi__start_mem(&s, st->data, (int)st->len);
    stbi__jpeg *j = stbi__malloc(sizeof *j);
    if (!j)
        return vp_stb_failed(VP_IMAGE_JPEG, "outofmem", err);
    j->s = &s;
    stbi__setup_jpeg(j);
    s.img_n = 0; /* stbi__cleanup_jpeg frees img_n components */
    int rc = -1;
    if (decode_scans(j, st, err))
        goto done;
    if (s.img_x != info->width || s.img_y != info->height) {
        rc = vp_fail(err, VP_ERR_UNDECODABLE, "image", "JPEG decodes to %ux%u but its header says %ux%u",
                     s.img_x, s.img_y, info->width, info->height);
        goto done;
    }
    int n = s.img_n, ids[4] = {0};
    vp_jpeg_plane planes[4];
    for (int c = 0; c < n; c++) {
        planes[c] = (vp_jpeg_plane){.data = j->img_comp[c].data,
                                    .stride = (size_t)j->img_comp[c].w2,
                                    .width = (uint32_t)j->img_comp[c].x,
                                    .height = (uint32_t)j->img_comp[c].y,
                                    .h = j->img_comp[c].h,
                                    .v = j->img_comp[c].v};
        ids[c] = j->img_comp[c].id;
    }
    size_t bytes = (size_t)info->width * info->height * 3;
    out->pixels = malloc(bytes);
    if (!out->pixels) {
        rc = vp_fail(err, VP_ERR_NOMEM, "image", "out of memory for a %ux%u image", info->width,
                     info->height);
        goto done;
    }
    vp_jpeg_color color = vp_jpeg_color_space(n, mk->jfif, mk->adobe_transform, ids);
    if (vp_jpeg_planes_to_rgb(planes, n, color, info->width, info->height, out->pixels, err)) {
        vp_rgb_image_free(out);
        goto done;
    }
    out->width = info->width;
    out->height = info->height;
    rc = 0;
done:
    stbi__cleanup_jpeg(j);
    free(j);
    return rc;
}

int vp_jpeg_decode_rgb(const uint8_t *data, size_t len, const vp_image_info *info,
                       size_t max_scans, vp_rgb_image *out, vp_error *err)
{
    vp_jpeg_markers mk;
    if (vp_jpeg_check_complete(data, len, max_scans, &mk, err))
        return -1;
    vp_jpeg_stream st;
    if (vp_jpeg_stream_for_stb(data, len, &mk, &st, err))
        return -1;
    int rc = decode_stream(&st, &mk, info, out, err);
    vp_jpeg_stream_free(&st);
    return rc;
}
