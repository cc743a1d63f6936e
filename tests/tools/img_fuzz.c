/* img_fuzz: seeded mutation fuzzing of the image decoder, meant to run under
 * ASan/UBSan (tests/image/suite_oracle.sh runs the sanitizer build).
 *   img_fuzz SEED ITERATIONS FILE...
 * Each iteration takes one of the files, flips bits, overwrites or cuts it, and decodes
 * the result under small limits; every failure must be one of the image error kinds
 * (415, 422, 413) with a message. Prints the outcome counts; exits 1 on a wrong kind. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/image/image.h"
#include "engine/util/file.h"

static uint64_t rng_state;

static uint32_t next_u32(void)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(rng_state >> 33);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: img_fuzz SEED ITERATIONS FILE...\n");
        return 2;
    }
    rng_state = strtoull(argv[1], NULL, 10) * 2654435761u + 1;
    long iterations = strtol(argv[2], NULL, 10);
    int n_files = argc - 3;
    uint8_t **files = calloc((size_t)n_files, sizeof *files);
    size_t *lens = calloc((size_t)n_files, sizeof *lens);
    vp_error err = {0};
    for (int i = 0; i < n_files; i++)
        if (vp_read_file(argv[3 + i], 0, &files[i], &lens[i], &err)) {
            fprintf(stderr, "img_fuzz: %s\n", err.message);
            return 2;
        }
    vp_image_limits lim;
    vp_image_limits_default(&lim);
    lim.max_pixels = 4u << 20;
    long ok = 0, by_kind[VP_ERR_INTERNAL + 1] = {0}, wrong = 0;
    for (long it = 0; it < iterations; it++) {
        int f = (int)(next_u32() % (uint32_t)n_files);
        size_t len = lens[f];
        uint8_t *d = malloc(len + 1);
        memcpy(d, files[f], len);
        int mutations = 1 + (int)(next_u32() % 4);
        for (int m = 0; m < mutations && len; m++) {
            uint32_t kind = next_u32() % 4;
            /* Mostly past the magic bytes (a broken magic only tests the sniffer), with
             * headers weighted: 3/8 of the positions fall in bytes 8..199. */
            uint32_t where = next_u32() % 8;
            size_t pos = next_u32() % len;
            if (where && len > 8)
                pos = 8 + (where <= 3 ? next_u32() % (len < 200 ? len - 8 : 192)
                                      : next_u32() % (len - 8));
            if (kind == 0)
                d[pos] ^= (uint8_t)(1u << (next_u32() % 8));
            else if (kind == 1)
                d[pos] = (uint8_t)next_u32();
            else if (kind == 2)
                len = pos; /* cut */
            else
                d[pos] = (uint8_t[]){0x00, 0xff, 0x7f, 0x80}[next_u32() % 4];
        }
        vp_rgb_image img;
        if (vp_image_decode_rgb(d, len, &lim, &img, &err) == 0) {
            ok++;
            vp_rgb_image_free(&img);
        } else {
            by_kind[err.kind]++;
            if ((err.kind != VP_ERR_UNSUPPORTED && err.kind != VP_ERR_UNDECODABLE &&
                 err.kind != VP_ERR_TOO_LARGE) ||
                !err.message[0]) {
                wrong++;
                fprintf(stderr, "img_fuzz: iteration %ld (%s): kind %d: %s\n", it, argv[3 + f],
                        err.kind, err.message);
            }
        }
        free(d);
    }
    printf("img_fuzz: %ld mutated inputs: %ld decoded, %ld unsupported (415), %ld undecodable "
           "(422), %ld too large (413), %ld other\n",
           iterations, ok, by_kind[VP_ERR_UNSUPPORTED], by_kind[VP_ERR_UNDECODABLE],
           by_kind[VP_ERR_TOO_LARGE], wrong);
    for (int i = 0; i < n_files; i++)
        free(files[i]);
    free(files);
    free(lens);
    return wrong ? 1 : 0;
}
