/* PEM files of the TLS options (tls_cert, tls_key, tls_client_ca): read whole, checked to
 * hold the expected block, with errors that name the option and the file. */
#ifndef VP_PEM_H
#define VP_PEM_H

#include <stddef.h>

#include "engine/util/err.h"

#define VP_PEM_MAX_BYTES (1u << 20) /* a certificate chain or a CA bundle is a few KB */

/* path's text into *out (malloc'd, NUL-terminated); it must hold a PEM block whose label
 * ends with `label` ("CERTIFICATE", "PRIVATE KEY"). Refused naming option and path: a
 * missing file, one over VP_PEM_MAX_BYTES, one with a NUL byte or no such block. */
int vp_pem_read(const char *path, const char *option, const char *label, char **out,
                vp_error *err);
/* Wipes text (a key's) before freeing it; NULL is fine. */
void vp_pem_wipe_free(char *text);

#endif
