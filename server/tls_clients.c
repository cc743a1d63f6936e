/* Mutual TLS (tls_clients.h): the authorities as a GnuTLS trust list, and the check of a
 * client's chain against it. The handshake only proves the client holds its certificate's
 * key (GnuTLS checks its signature); whether that certificate is one we trust is decided
 * here, per request, so the answer can be a JSON 401 that says why (a handshake that
 * failed would tell the client nothing) and a reload applies to open connections. */
#include <gnutls/crypto.h>
#include <gnutls/x509.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/util/log.h"
#include "server/pem.h"
#include "server/tls_clients.h"

struct vp_client_cas {
    gnutls_x509_trust_list_t list;
    size_t n, n_crls;
    double crl_next_update; /* the earliest of the lists' next updates (0: none) */
};

void vp_client_cas_free(vp_client_cas *c)
{
    if (!c)
        return;
    if (c->list)
        gnutls_x509_trust_list_deinit(c->list, 1);
    free(c);
}

/* A CRL's issuer for a message: its distinguished name, cut to fit. */
static void crl_issuer(gnutls_x509_crl_t crl, char *out, size_t cap)
{
    size_t n = cap;
    if (gnutls_x509_crl_get_issuer_dn(crl, out, &n) < 0)
        snprintf(out, cap, "(unreadable issuer)");
}

static void utc_text(time_t t, char *out, size_t cap)
{
    struct tm tm;
    if (t == (time_t)-1 || !gmtime_r(&t, &tm) || !strftime(out, cap, "%Y-%m-%d %H:%M:%S UTC", &tm))
        snprintf(out, cap, "(no date)");
}

/* The file's n_blocks revocation lists added to c's trust list. Each must be signed by one
 * of the file's authorities (else refused, naming the list: a typo cannot pass quietly).
 * Dates do not refuse one: a list past its next update still lists revoked certificates,
 * and refusing it would refuse every reload of the credentials, and the next start, until
 * a new one is published; one dated ahead of this clock is a clock difference. Both are
 * warned about at each load, and the earliest next update is in /metrics. */
static int add_crls(vp_client_cas *c, const gnutls_datum_t *pem, size_t n_blocks,
                    const char *path, vp_error *err)
{
    gnutls_x509_crl_t *crls = NULL;
    gnutls_x509_crt_t *cas = NULL;
    unsigned n_crls = 0, n_cas = 0;
    int rc = gnutls_x509_crl_list_import2(&crls, &n_crls, pem, GNUTLS_X509_FMT_PEM, 0);
    if (rc < 0 || n_crls != n_blocks) {
        for (unsigned i = 0; rc >= 0 && i < n_crls; i++)
            gnutls_x509_crl_deinit(crls[i]);
        gnutls_free(crls);
        return vp_fail(err, VP_ERR_BAD_REQUEST, "tls_client_ca",
                       "option tls_client_ca: %s holds %zu revocation list%s (X509 CRL) but %u "
                       "could be read%s%s", path, n_blocks, n_blocks == 1 ? "" : "s",
                       rc < 0 ? 0 : n_crls, rc < 0 ? ": " : "", rc < 0 ? gnutls_strerror(rc) : "");
    }
    int fail = 0;
    if (gnutls_x509_crt_list_import2(&cas, &n_cas, pem, GNUTLS_X509_FMT_PEM, 0) < 0) {
        cas = NULL;
        n_cas = 0;
    }
    time_t now = time(NULL);
    for (unsigned i = 0; i < n_crls && !fail; i++) {
        unsigned status = 0;
        char issuer[256], when[40];
        crl_issuer(crls[i], issuer, sizeof issuer);
        rc = gnutls_x509_crl_verify(crls[i], cas, n_cas, 0, &status);
        unsigned dates = GNUTLS_CERT_REVOCATION_DATA_SUPERSEDED |
                         GNUTLS_CERT_REVOCATION_DATA_ISSUED_IN_FUTURE | GNUTLS_CERT_INVALID;
        if (rc < 0 || (status & ~dates) ||
            ((status & GNUTLS_CERT_INVALID) && !(status & (dates & ~GNUTLS_CERT_INVALID)))) {
            fail = vp_fail(err, VP_ERR_BAD_REQUEST, "tls_client_ca",
                           "option tls_client_ca: %s: revocation list %u (issuer %s) is %s", path,
                           i + 1, issuer,
                           rc < 0 ? gnutls_strerror(rc)
                           : status & GNUTLS_CERT_SIGNER_NOT_FOUND
                               ? "not signed by any authority of the file"
                           : status & GNUTLS_CERT_SIGNER_NOT_CA
                               ? "signed by a certificate that is not an authority"
                               : "not verified by its authority's signature");
            break;
        }
        time_t next = gnutls_x509_crl_get_next_update(crls[i]);
        if (next != (time_t)-1 && (!c->crl_next_update || (double)next < c->crl_next_update))
            c->crl_next_update = (double)next;
        if (status & GNUTLS_CERT_REVOCATION_DATA_SUPERSEDED) {
            utc_text(next, when, sizeof when);
            VP_LOGW(NULL, "tls_client_ca %s: revocation list %u (issuer %s) was due to be "
                    "replaced on %s: its revocations still apply; publish a new one", path,
                    i + 1, issuer, when);
        }
        if (status & GNUTLS_CERT_REVOCATION_DATA_ISSUED_IN_FUTURE) {
            utc_text(gnutls_x509_crl_get_this_update(crls[i]), when, sizeof when);
            VP_LOGW(NULL, "tls_client_ca %s: revocation list %u (issuer %s) is dated %s, after "
                    "this machine's clock (%ld s ahead): its revocations apply; check the clocks",
                    path, i + 1, issuer, when,
                    (long)(gnutls_x509_crl_get_this_update(crls[i]) - now));
        }
    }
    for (unsigned i = 0; i < n_cas; i++)
        gnutls_x509_crt_deinit(cas[i]);
    gnutls_free(cas);
    if (fail) {
        for (unsigned i = 0; i < n_crls; i++)
            gnutls_x509_crl_deinit(crls[i]);
        gnutls_free(crls);
        return -1;
    }
    /* the trust list owns the lists from here; verified above (its own check would drop
     * one past its dates) */
    int k = gnutls_x509_trust_list_add_crls(c->list, crls, n_crls, 0, 0);
    gnutls_free(crls);
    if (k < 0 || (unsigned)k != n_crls)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "tls_client_ca",
                       "option tls_client_ca: %s: %d of its %u revocation lists could be added%s%s",
                       path, k < 0 ? 0 : k, n_crls, k < 0 ? ": " : "", k < 0 ? gnutls_strerror(k) : "");
    c->n_crls = n_crls;
    return 0;
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
    if (n <= 0) {
        free(pem);
        vp_client_cas_free(c);
        if (n == GNUTLS_E_MEMORY_ERROR)
            return vp_fail(err, VP_ERR_NOMEM, "tls_client_ca",
                           "out of memory reading the client certificate authorities");
        return vp_fail(err, VP_ERR_BAD_REQUEST, "tls_client_ca",
                       "option tls_client_ca: %s holds no certificate GnuTLS can read%s%s", path,
                       n < 0 ? ": " : "", n < 0 ? gnutls_strerror(n) : "");
    }
    c->n = (size_t)n;
    /* revocation lists ("X509 CRL" blocks) in the same file, each signed by one of its
     * authorities */
    size_t blocks = 0;
    for (const char *p = pem; (p = strstr(p, "-----BEGIN X509 CRL-----")); p++)
        blocks++;
    if (blocks && add_crls(c, &d, blocks, path, err)) {
        free(pem);
        vp_client_cas_free(c);
        return -1;
    }
    free(pem);
    *out = c;
    return 0;
}

size_t vp_client_cas_crls(const vp_client_cas *c)
{
    return c ? c->n_crls : 0;
}

double vp_client_cas_crl_next_update(const vp_client_cas *c)
{
    return c ? c->crl_next_update : 0;
}

size_t vp_client_cas_count(const vp_client_cas *c)
{
    return c ? c->n : 0;
}

/* n bytes of hex of the SHA-256 of data[0..len) into out (n + 1 bytes). */
static void digest_hex(const void *data, size_t len, char *out, size_t n)
{
    unsigned char d[32] = {0};
    gnutls_hash_fast(GNUTLS_DIG_SHA256, data, len, d);
    for (size_t i = 0; i < n && i / 2 < sizeof d; i++)
        out[i] = "0123456789abcdef"[(d[i / 2] >> (i % 2 ? 0 : 4)) & 15];
    out[n] = 0;
}

static bool name_byte(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr(".-_@", ch));
}

/* The client's name from crt (its DER der): its subject's common name when that is of
 * [A-Za-z0-9.-_@] and at most VP_CLIENT_NAME_MAX bytes; else its allowed bytes (others as
 * '_'), cut to 50, then '~' and 8 hex digits of the SHA-256 of the whole name, so two
 * common names never share a client name by their spelling; without a common name, '~'
 * and 16 hex digits of the SHA-256 of the certificate. It reaches log lines and metric
 * labels: no byte there needs escaping. */
static int client_name(gnutls_x509_crt_t crt, const gnutls_datum_t *der, char *name)
{
    size_t len = 0;
    char *cn = NULL;
    /* out of memory is not "no common name": the client would take another's name */
    int r = gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, NULL, &len);
    if (r == GNUTLS_E_SHORT_MEMORY_BUFFER) {
        if (!(cn = malloc(len + 1)))
            return -1;
        r = gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &len);
        if (r < 0) {
            free(cn);
            cn = NULL;
        }
    }
    if (r == GNUTLS_E_MEMORY_ERROR)
        return -1;
    if (!cn || !len) {
        name[0] = '~';
        digest_hex(der->data, der->size, name + 1, 16);
        free(cn);
        return 0;
    }
    bool plain = len <= VP_CLIENT_NAME_MAX;
    size_t n = 0;
    for (size_t i = 0; i < len && n < VP_CLIENT_NAME_MAX; i++) {
        plain = plain && name_byte(cn[i]);
        name[n++] = name_byte(cn[i]) ? cn[i] : '_';
    }
    if (!plain) {
        n = n < 50 ? n : 50;
        name[n++] = '~';
        digest_hex(cn, len, name + n, 8);
        n += 8;
    }
    name[n] = 0;
    free(cn);
    return 0;
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
            rc = r == GNUTLS_E_MEMORY_ERROR
                     ? vp_fail(err, VP_ERR_NOMEM, "", "out of memory checking the client certificate")
                     : vp_fail(err, VP_ERR_UNAUTHORIZED, "",
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
            rc = vp_fail(err, r == GNUTLS_E_MEMORY_ERROR ? VP_ERR_NOMEM : VP_ERR_UNAUTHORIZED, "",
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
        } else if (cap > VP_CLIENT_NAME_MAX && client_name(crts[0], &chain[0], name)) {
            name[0] = 0;
            rc = vp_fail(err, VP_ERR_NOMEM, "", "out of memory reading the client certificate's "
                         "name");
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
    if (session && gnutls_certificate_type_get2(session, GNUTLS_CTYPE_PEERS) == GNUTLS_CRT_X509)
        chain = gnutls_certificate_get_peers(session, &n);
    return vp_client_cas_verify(c, chain, chain ? n : 0, name, cap, err);
}
