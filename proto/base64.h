/* Base64 decoding (standard and URL-safe alphabets, optional padding, whitespace skipped). */
#ifndef VP_BASE64_H
#define VP_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Upper bound of the decoded size of len characters. */
size_t vp_base64_decoded_max(size_t len);
/* Decodes into out (room for vp_base64_decoded_max(len)); returns 0, or -1 with
 * *bad_offset set to the offending character's offset. */
int vp_base64_decode(const char *s, size_t len, uint8_t *out, size_t *out_len, size_t *bad_offset);
/* Encodes into a NUL-terminated heap string (standard alphabet, padded); NULL on OOM. */
char *vp_base64_encode(const uint8_t *data, size_t len);

#endif
