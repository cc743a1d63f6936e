/* Request ids: "scr_" + a ULID (48-bit millisecond time + 80 random bits, Crockford
 * base32, 26 characters), so ids sort by arrival time and never repeat in practice. */
#ifndef VP_REQID_H
#define VP_REQID_H

#include <stddef.h>

#define VP_REQID_LEN 30 /* "scr_" + 26, without the NUL */

/* buf must hold VP_REQID_LEN + 1 bytes. */
void vp_reqid_new(char *buf);

#endif
