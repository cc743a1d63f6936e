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
#define VP_CLIENT_NAME_MAX 59   /* bytes of a client's name ("cert:" + it fits a key name) */

typedef struct vp_client_cas vp_client_cas;

/* The authorities of the PEM file at path (1 to many certificates, and any revocation
 * lists they signed), or -1 and err naming the option, the file and the problem. */
int vp_client_cas_load(const char *path, vp_client_cas **out, vp_error *err);
void vp_client_cas_free(vp_client_cas *c);
size_t vp_client_cas_count(const vp_client_cas *c);
/* Revocation lists ("X509 CRL" blocks of the same file, each verified against its
 * authorities at load): a revoked client certificate is refused. One past its next update
 * or dated ahead of the clock still applies (a warning is logged at each load). */
size_t vp_client_cas_crls(const vp_client_cas *c);
/* The earliest next update of the revocation lists (seconds since the epoch; 0: none). */
double vp_client_cas_crl_next_update(const vp_client_cas *c);

/* Whether chain[0..n) (DER, the client's certificate first) verifies against c, now, for
 * client authentication: 0 and the client's name in name[cap] (cap > VP_CLIENT_NAME_MAX;
 * else no name): its subject's common name when that is of letters, digits and ".-_@" and
 * at most VP_CLIENT_NAME_MAX bytes; else those bytes (others as '_'), cut to 50, then '~'
 * and 8 hex digits of the name's SHA-256 (so two names never share one by spelling);
 * without a common name '~' and 16 hex digits of the certificate's SHA-256. Else -1 and
 * err (VP_ERR_UNAUTHORIZED) saying why. */
int vp_client_cas_verify(const vp_client_cas *c, const gnutls_datum_t *chain, unsigned n,
                         char *name, size_t cap, vp_error *err);
/* The same for the chain the client of session presented (none: -1). */
int vp_client_cas_check(const vp_client_cas *c, gnutls_session_t session, char *name,
                        size_t cap, vp_error *err);

#endif
