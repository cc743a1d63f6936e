/* Mutual TLS: --tls-client-ca names the certificate authorities whose client certificates
 * the server accepts. Each request to a route that needs authentication must come on a
 * connection whose client presented a certificate chain they issued, valid now and for
 * client authentication; its subject's common name then names the client (in the log,
 * /metrics and /v1/models, as "cert:CN", when no API key names it). Checked per request, so
 * a reload that drops an authority refuses its clients' next requests on open
 * connections too. */
#ifndef VP_TLS_CLIENTS_H
#define VP_TLS_CLIENTS_H

#include <gnutls/gnutls.h>
#include <stddef.h>

#include "engine/util/err.h"

#define VP_CLIENT_CHAIN_MAX 16  /* certificates a client's chain may hold */
#define VP_CLIENT_NAME_MAX 59   /* bytes of the common name kept ("cert:" + it fits a key name) */

typedef struct vp_client_cas vp_client_cas;

/* The authorities of the PEM file at path (1 to many certificates), or -1 and err naming
 * the option, the file and the problem. */
int vp_client_cas_load(const char *path, vp_client_cas **out, vp_error *err);
void vp_client_cas_free(vp_client_cas *c);
size_t vp_client_cas_count(const vp_client_cas *c);

/* Whether chain[0..n) (DER, the client's certificate first) verifies against c, now, for
 * client authentication: 0 and its common name in name[cap] (bytes other than letters,
 * digits and ".-_@" as '_', at most VP_CLIENT_NAME_MAX; "" when it has none); else -1 and
 * err (VP_ERR_UNAUTHORIZED) saying why. */
int vp_client_cas_verify(const vp_client_cas *c, const gnutls_datum_t *chain, unsigned n,
                         char *name, size_t cap, vp_error *err);
/* The same for the chain the client of session presented (none: -1). */
int vp_client_cas_check(const vp_client_cas *c, gnutls_session_t session, char *name,
                        size_t cap, vp_error *err);

#endif
