/* CRC-32 (ISO 3309 / ITU-T V.42: the polynomial of PNG chunks and zlib). */
#ifndef VP_CRC32_H
#define VP_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32 of n bytes. */
uint32_t vp_crc32(const uint8_t *p, size_t n);

#endif
