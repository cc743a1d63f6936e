/* Request ids: "scr_" + a ULID (48-bit millisecond time + 80 random bits, Crockford
 * base32, 26 characters), so ids sort by arrival time and never repeat in practice. */
#ifndef VP_REQID_H
#define VP_REQID_H

#include <stdbool.h>
#include <stddef.h>

#define VP_REQID_LEN 30 /* "scr_" + 26, without the NUL */

/* buf must hold VP_REQID_LEN + 1 bytes. */
void vp_reqid_new(char *buf);

/* A client's own id for a request (X-Client-Request-Id or X-Request-Id), echoed in
 * x-client-request-id and logged next to ours, so an RL loop can find its requests in our
 * log. At most VP_CLIENT_REQID_MAX characters of letters, digits and ._:-/+=@ (safe in a
 * header and a log line); anything else is not taken. */
#define VP_CLIENT_REQID_MAX 64
bool vp_reqid_client_ok(const char *s);
/* The header value s, spaces and tabs around it dropped, into out when it is such an id. */
bool vp_reqid_client_take(const char *s, char out[VP_CLIENT_REQID_MAX + 1]);

#endif
