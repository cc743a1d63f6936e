/* Certificates made with GnuTLS for the tests of client certificates (test_tls_clients,
 * test_alloc_failures): authorities, clients, their PEM files. */
#ifndef VP_TLS_TEST_UTIL_H
#define VP_TLS_TEST_UTIL_H

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tests/unit/check.h"

typedef struct cert {
    gnutls_x509_crt_t crt;
    gnutls_x509_privkey_t key;
    gnutls_datum_t der;
} cert;

enum { CA = 1, CLIENT = 2, SERVER_ONLY = 4, EXPIRED = 8 };

/* A certificate for cn, signed by issuer (NULL: self-signed), as kind says. */
static inline cert make(const char *cn, const cert *issuer, int kind, unsigned char serial)
{
    cert c;
    memset(&c, 0, sizeof c);
    CHECK(gnutls_x509_privkey_init(&c.key) == 0);
    CHECK(gnutls_x509_privkey_generate(c.key, GNUTLS_PK_ECDSA,
                                       GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0) == 0);
    CHECK(gnutls_x509_crt_init(&c.crt) == 0);
    gnutls_x509_crt_set_version(c.crt, 3);
    gnutls_x509_crt_set_serial(c.crt, &serial, 1);
    time_t now = time(NULL);
    gnutls_x509_crt_set_activation_time(c.crt, now - 10 * 86400);
    gnutls_x509_crt_set_expiration_time(c.crt, kind & EXPIRED ? now - 86400 : now + 30 * 86400);
    if (cn[0])
        gnutls_x509_crt_set_dn_by_oid(c.crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn, strlen(cn));
    else /* no common name: an organisation only */
        gnutls_x509_crt_set_dn_by_oid(c.crt, GNUTLS_OID_X520_ORGANIZATION_NAME, 0, "org", 3);
    gnutls_x509_crt_set_key(c.crt, c.key);
    if (kind & CA) {
        gnutls_x509_crt_set_basic_constraints(c.crt, 1, -1);
        gnutls_x509_crt_set_key_usage(c.crt, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN);
    } else {
        gnutls_x509_crt_set_basic_constraints(c.crt, 0, -1);
        gnutls_x509_crt_set_key_usage(c.crt, GNUTLS_KEY_DIGITAL_SIGNATURE);
        gnutls_x509_crt_set_key_purpose_oid(c.crt, kind & SERVER_ONLY ? GNUTLS_KP_TLS_WWW_SERVER
                                                                      : GNUTLS_KP_TLS_WWW_CLIENT,
                                            0);
    }
    CHECK(gnutls_x509_crt_sign2(c.crt, issuer ? issuer->crt : c.crt,
                                issuer ? issuer->key : c.key, GNUTLS_DIG_SHA256, 0) == 0);
    CHECK(gnutls_x509_crt_export2(c.crt, GNUTLS_X509_FMT_DER, &c.der) == 0);
    return c;
}

static inline void drop(cert *c)
{
    gnutls_free(c->der.data);
    gnutls_x509_crt_deinit(c->crt);
    gnutls_x509_privkey_deinit(c->key);
}

/* A revocation list of issuer listing the serials[0..n), PEM, issued at now + this_s and
 * due to be replaced at now + next_s. */
/* Writes certs (PEM) then text to dir/name; the path (static: the next call replaces it). */
static inline const char *pem_file_in(const char *dir, const char *name, const cert *const *certs,
                                      int n, const char *text)
{
    static char path[300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f)
        return path;
    for (int i = 0; i < n; i++) {
        gnutls_datum_t out;
        CHECK(gnutls_x509_crt_export2(certs[i]->crt, GNUTLS_X509_FMT_PEM, &out) == 0);
        fwrite(out.data, 1, out.size, f);
        gnutls_free(out.data);
    }
    fputs(text, f);
    fclose(f);
    return path;
}

#endif
