/* Mutual TLS (tls_clients.h): the authorities as a GnuTLS trust list, and the check of a
 * client's chain against it. The handshake only proves the client holds its certificate's
 * key (GnuTLS checks its signature); whether that certificate is one we trust is decided
 * here, per request, so the answer can be a JSON 401 that says why (a handshake that
 * failed would tell the client nothing) and a reload applies to open connections. */
#include <gnutls/x509.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/pem.h"
#include "server/tls_clients.h"

struct vp_client_cas {
    gnutls_x509_trust_list_t list;
    size_t n;
};

void vp_client_cas_free(vp_client_cas *c)
{
    if (!c)
        return;
    if (c->list)
        gnutls_x509_trust_list_deinit(c->list, 1);
    free(c);
}

int vp_client_cas_load(const char *path, vp_client_cas **out, vp_error *err)
{
    *out = NULL;
    char *pem = NULL;
    if (vp_pem_read(path, "tls_client_ca", "CERTIFICATE", &pem, err))
        return -1;
    vp_client_cas *c = calloc(1, sizeof *c);
    if (!c || gnutls_x509_trust_list_init(&c->list, 0) < 0) {
        free(pem);
        free(c);
        return vp_fail(err, VP_ERR_NOMEM, "tls_client_ca", "out of memory for the client CAs");
    }
    gnutls_datum_t d = {(unsigned char *)pem, (unsigned)strlen(pem)};
    int n = gnutls_x509_trust_list_add_trust_mem(c->list, &d, NULL, GNUTLS_X509_FMT_PEM, 0, 0);
    free(pem);
    if (n <= 0) {
        vp_client_cas_free(c);
        return vp_fail(err, VP_ERR_BAD_REQUEST, "tls_client_ca",
                       "option tls_client_ca: %s holds no certificate GnuTLS can read%s%s", path,
                       n < 0 ? ": " : "", n < 0 ? gnutls_strerror(n) : "");
    }
    c->n = (size_t)n;
    *out = c;
    return 0;
}

size_t vp_client_cas_count(const vp_client_cas *c)
{
    return c ? c->n : 0;
}

/* The subject's common name of crt into name[cap], bytes other than [A-Za-z0-9.-_@] as
 * '_' (it reaches log lines and metric labels), at most VP_CLIENT_NAME_MAX bytes. */
static void common_name(gnutls_x509_crt_t crt, char *name, size_t cap)
{
    char cn[256];
    size_t len = sizeof cn;
    name[0] = 0;
    if (gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &len) < 0)
        return;
    size_t n = 0;
    for (size_t i = 0; i < len && cn[i] && n + 1 < cap && n < VP_CLIENT_NAME_MAX; i++) {
        char ch = cn[i];
        bool plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                     (ch >= '0' && ch <= '9') || strchr(".-_@", ch);
        name[n++] = plain ? ch : '_';
    }
    name[n] = 0;
}

int vp_client_cas_verify(const vp_client_cas *c, const gnutls_datum_t *chain, unsigned n,
                         char *name, size_t cap, vp_error *err)
{
    if (cap)
        name[0] = 0;
    if (!chain || n == 0)
        return vp_fail(err, VP_ERR_UNAUTHORIZED, "",
                       "no client certificate was presented: this server accepts only clients "
                       "with a certificate issued by its client certificate authorities "
                       "(mutual TLS)");
    if (n > VP_CLIENT_CHAIN_MAX)
        return vp_fail(err, VP_ERR_UNAUTHORIZED, "",
                       "the client's certificate chain holds %u certificates, over %d", n,
                       VP_CLIENT_CHAIN_MAX);
    gnutls_x509_crt_t crts[VP_CLIENT_CHAIN_MAX];
    unsigned made = 0;
    int rc = 0;
    for (; made < n; made++) {
        if (gnutls_x509_crt_init(&crts[made]) < 0) {
            rc = vp_fail(err, VP_ERR_NOMEM, "", "out of memory checking the client certificate");
            break;
        }
        int r = gnutls_x509_crt_import(crts[made], &chain[made], GNUTLS_X509_FMT_DER);
        if (r < 0) {
            made++;
            rc = vp_fail(err, VP_ERR_UNAUTHORIZED, "",
                         "certificate %u of the client's chain cannot be read: %s", made,
                         gnutls_strerror(r));
            break;
        }
    }
    if (rc == 0) {
        /* the client's certificate must allow client authentication (or name no purpose) */
        gnutls_typed_vdata_st purpose = {.type = GNUTLS_DT_KEY_PURPOSE_OID,
                                         .data = (unsigned char *)GNUTLS_KP_TLS_WWW_CLIENT};
        unsigned status = 0;
        int r = gnutls_x509_trust_list_verify_crt2(c->list, crts, n, &purpose, 1, 0, &status,
                                                   NULL);
        if (r < 0) {
            rc = vp_fail(err, VP_ERR_UNAUTHORIZED, "",
                         "the client certificate could not be checked: %s", gnutls_strerror(r));
        } else if (status) {
            gnutls_datum_t why = {NULL, 0};
            r = gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &why, 0);
            size_t len = r == 0 && why.data ? strlen((const char *)why.data) : 0;
            while (len && why.data[len - 1] == ' ') /* GnuTLS ends each sentence with one */
                why.data[--len] = 0;
            rc = vp_fail(err, VP_ERR_UNAUTHORIZED, "", "the client certificate was refused: %s",
                         len ? (const char *)why.data : "it does not verify against tls_client_ca");
            gnutls_free(why.data);
        } else if (cap) {
            common_name(crts[0], name, cap);
        }
    }
    for (unsigned i = 0; i < made; i++)
        gnutls_x509_crt_deinit(crts[i]);
    return rc;
}

int vp_client_cas_check(const vp_client_cas *c, gnutls_session_t session, char *name,
                        size_t cap, vp_error *err)
{
    unsigned n = 0;
    const gnutls_datum_t *chain = NULL;
    if (session && gnutls_certificate_type_get(session) == GNUTLS_CRT_X509)
        chain = gnutls_certificate_get_peers(session, &n);
    return vp_client_cas_verify(c, chain, chain ? n : 0, name, cap, err);
}
