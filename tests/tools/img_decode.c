/* img_decode: decode one image with vprm's decoder and write the RGB pixels as a uint8
 * .npy [height, width, 3], for comparisons with Pillow at full resolution.
 *   img_decode IMAGE OUT.npy
 * On a refused image prints "error <http status> <message>" and exits 1. */
#include <stdio.h>
#include <stdlib.h>

#include "engine/image/image.h"
#include "engine/util/file.h"
#include "engine/util/npy.h"

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: img_decode IMAGE OUT.npy\n");
        return 2;
    }
    vp_error err = {0};
    uint8_t *data;
    size_t len;
    if (vp_read_file(argv[1], 0, &data, &len, &err)) {
        printf("error %d %s\n", vp_err_http_status(err.kind), err.message);
        return 1;
    }
    vp_rgb_image img;
    int rc = vp_image_decode_rgb(data, len, NULL, &img, &err);
    free(data);
    if (rc) {
        printf("error %d %s\n", vp_err_http_status(err.kind), err.message);
        return 1;
    }
    size_t shape[3] = {img.height, img.width, 3};
    rc = vp_npy_write(argv[2], VP_NPY_U8, shape, 3, img.pixels, &err);
    vp_rgb_image_free(&img);
    if (rc) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    return 0;
}
