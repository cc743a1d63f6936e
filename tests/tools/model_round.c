/* model_round bf16|f16 < in.f32 > out.u16: converts little-endian float32 values from
 * stdin with vp_f32_to_bf16 / vp_f32_to_f16 and writes the 16-bit patterns (little
 * endian) to stdout, for comparison with torch's conversions. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "engine/model/tensor.h"

int main(int argc, char **argv)
{
    if (argc != 2 || (strcmp(argv[1], "bf16") && strcmp(argv[1], "f16"))) {
        fprintf(stderr, "usage: model_round bf16|f16 < float32 > uint16\n");
        return 2;
    }
    int bf = !strcmp(argv[1], "bf16");
    unsigned char in[4];
    while (fread(in, 1, 4, stdin) == 4) {
        uint32_t u = (uint32_t)in[0] | (uint32_t)in[1] << 8 | (uint32_t)in[2] << 16 |
                     (uint32_t)in[3] << 24;
        float f;
        memcpy(&f, &u, sizeof f);
        uint16_t h = bf ? vp_f32_to_bf16(f) : vp_f32_to_f16(f);
        unsigned char out[2] = {(unsigned char)(h & 0xff), (unsigned char)(h >> 8)};
        if (fwrite(out, 1, 2, stdout) != 2)
            return 1;
    }
    return ferror(stdin) ? 1 : 0;
}
