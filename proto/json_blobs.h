/* JSON parsing with long plain strings kept out of jansson's lexer.
 *
 * A request carrying an image as base64 is mostly one string of megabytes, and jansson
 * reads strings a character at a time (about 85 MB/s: 28 ms for W1's 2.4 MB body). Here
 * a scanner finds string values of at least VP_JSON_BLOB_MIN bytes made only of printable
 * ASCII (what base64 and data URLs are; escapes allowed only where they stand for
 * printable ASCII: the \/ of PHP's encoder, the \u002B of .NET's), jansson parses the body with
 * each such value replaced by a short placeholder, and the values are put back into the
 * tree (a copy, not a re-lex). The result is the tree json_loadb gives, always:
 *  - only string values are replaced (never keys), and their bytes are what jansson would
 *    have produced (ASCII decodes to itself, those escapes to one ASCII byte each);
 *  - a placeholder is "\u0000vprm\u0000" + the value's index; a request may contain that
 *    text itself, so each must be found exactly once in the tree, else the body is parsed
 *    again the plain way;
 *  - a body jansson refuses is parsed again the plain way, so errors name the original
 *    line and column. */
#ifndef VP_JSON_BLOBS_H
#define VP_JSON_BLOBS_H

#include <jansson.h>
#include <stddef.h>

#define VP_JSON_BLOB_MIN 4096

/* json_loadb(body, len, flags, err) with the fast path above when flags include
 * JSON_ALLOW_NUL (the placeholders contain NUL) and JSON_REJECT_DUPLICATES (no value,
 * hence no placeholder, can be dropped) and not JSON_DISABLE_EOF_CHECK (whose caller
 * reads where the value ended); otherwise exactly json_loadb. On success err is filled
 * as json_loadb fills it. */
json_t *vp_json_loadb(const char *body, size_t len, size_t flags, json_error_t *err);

/* An upper bound of the number of values (strings, numbers, literals, arrays, objects,
 * object keys) in body, read without parsing it: 1 + the commas, colons and opening
 * brackets outside strings. jansson spends about 100 bytes on each parsed value, so a
 * body of tiny values costs far more memory than its size; callers refuse it first. */
size_t vp_json_value_bound(const char *body, size_t len);

#endif
