/* UTF-8 checks shared by the tokenizer and by names the API reports in JSON. */
#ifndef VP_UTF8_H
#define VP_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Checks UTF-8 the way sentencepiece decodes it (no overlongs, no surrogates, at most
 * U+10FFFF). Returns 1 if valid, else 0 with *bad the offset of the first bad byte. */
int vp_utf8_valid(const char *s, size_t len, size_t *bad);
/* Byte length of the UTF-8 character starting with lead byte b (1 for bytes < 0xC0). */
static inline size_t vp_utf8_char_len(uint8_t b)
{
    return b < 0xC0 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
}

#endif
