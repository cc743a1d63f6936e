/* Client certificates (mutual TLS, server/tls_clients.c) without a daemon: the authorities
 * file (loading and its refusals) and the check of a client's chain: issued by a trusted
 * authority directly or through an intermediate, valid now and for client authentication,
 * its common name made safe for log lines and labels; refused with the reason otherwise
 * (no certificate, another authority, expired, a server-only purpose, too long a chain,
 * bytes that are not a certificate). The certificates are made here with GnuTLS. */
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "server/tls_clients.h"
#include "tests/unit/check.h"

static char dir[] = "/tmp/vprm_test_tls_clients_XXXXXX";

typedef struct cert {
    gnutls_x509_crt_t crt;
    gnutls_x509_privkey_t key;
    gnutls_datum_t der;
} cert;

enum { CA = 1, CLIENT = 2, SERVER_ONLY = 4, EXPIRED = 8 };

/* A certificate for cn, signed by issuer (NULL: self-signed), as kind says. */
static cert make(const char *cn, const cert *issuer, int kind, unsigned char serial)
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
    gnutls_x509_crt_set_dn_by_oid(c.crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn, strlen(cn));
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

static void drop(cert *c)
{
    gnutls_free(c->der.data);
    gnutls_x509_crt_deinit(c->crt);
    gnutls_x509_privkey_deinit(c->key);
}

/* DIR/name holding the PEM of certs[0..n) (and text after them); its path. */
static const char *pem_file(const char *name, const cert *const *certs, int n, const char *text)
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

/* vp_client_cas_verify of chain[0..n): 0 and the name, or -1 and the message in why. */
static int verify(const vp_client_cas *c, const cert *const *chain, unsigned n, char *name,
                  vp_error *why)
{
    gnutls_datum_t ders[20];
    for (unsigned i = 0; i < n; i++)
        ders[i] = chain[i]->der;
    return vp_client_cas_verify(c, n ? ders : NULL, n, name, VP_CLIENT_NAME_MAX + 1, why);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    cert root = make("Test Root CA", NULL, CA, 1);
    cert other_root = make("Other CA", NULL, CA, 2);
    cert inter = make("Test Intermediate", &root, CA, 3);
    cert trainer = make("rl trainer-1 (grpo)", &root, CLIENT, 4);
    cert via_inter = make("bon-svc@team.example", &inter, CLIENT, 5);
    cert stranger = make("stranger", &other_root, CLIENT, 6);
    cert expired = make("late", &root, CLIENT | EXPIRED, 7);
    cert server_only = make("web", &root, SERVER_ONLY, 8);
    char long_cn[200];
    memset(long_cn, 'x', sizeof long_cn - 1);
    long_cn[sizeof long_cn - 1] = 0;
    cert longname = make(long_cn, &root, CLIENT, 9);

    vp_client_cas *cas = NULL;
    vp_error err = {0};
    const cert *roots[2] = {&root, &other_root};
    CHECK_MSG(vp_client_cas_load(pem_file("ca.pem", roots, 1, ""), &cas, &err) == 0, "%s",
              err.message);
    CHECK(vp_client_cas_count(cas) == 1);
    char name[VP_CLIENT_NAME_MAX + 1];

    const cert *ok1[1] = {&trainer};
    CHECK_MSG(verify(cas, ok1, 1, name, &err) == 0, "%s", err.message);
    CHECK_MSG(!strcmp(name, "rl_trainer-1__grpo_"), "%s", name); /* safe for labels */
    const cert *ok2[2] = {&via_inter, &inter}; /* through an intermediate the client sends */
    CHECK_MSG(verify(cas, ok2, 2, name, &err) == 0, "%s", err.message);
    CHECK(!strcmp(name, "bon-svc@team.example"));
    const cert *ok3[1] = {&longname};
    CHECK(verify(cas, ok3, 1, name, &err) == 0 && strlen(name) == VP_CLIENT_NAME_MAX);

    /* refusals, each saying why */
    CHECK(verify(cas, NULL, 0, name, &err) == -1 && err.kind == VP_ERR_UNAUTHORIZED &&
          strstr(err.message, "no client certificate was presented") && name[0] == 0);
    const cert *bad1[1] = {&stranger};
    CHECK(verify(cas, bad1, 1, name, &err) == -1 && err.kind == VP_ERR_UNAUTHORIZED);
    CHECK_MSG(strstr(err.message, "refused") && strstr(err.message, "issuer is unknown"), "%s",
              err.message);
    CHECK(err.message[strlen(err.message) - 1] != ' ');
    const cert *bad2[1] = {&expired};
    CHECK(verify(cas, bad2, 1, name, &err) == -1);
    CHECK_MSG(strstr(err.message, "expired"), "%s", err.message);
    const cert *bad3[1] = {&server_only};
    CHECK(verify(cas, bad3, 1, name, &err) == -1);
    CHECK_MSG(strstr(err.message, "purpose"), "%s", err.message);
    const cert *bad4[1] = {&via_inter}; /* the intermediate not sent: no path to the root */
    CHECK(verify(cas, bad4, 1, name, &err) == -1);
    /* a trusted certificate itself verifies (no purpose named: any); presenting it takes
     * the authority's private key, which can issue any client certificate anyway */
    const cert *anchor[1] = {&root};
    CHECK(verify(cas, anchor, 1, name, &err) == 0 && !strcmp(name, "Test_Root_CA"));
    const cert *many[17];
    for (int i = 0; i < 17; i++)
        many[i] = &trainer;
    CHECK(verify(cas, many, 17, name, &err) == -1 && strstr(err.message, "17 certificates"));
    gnutls_datum_t junk = {(unsigned char *)"\x30\x03\x02\x01\x05", 5};
    CHECK(vp_client_cas_verify(cas, &junk, 1, name, sizeof name, &err) == -1);
    CHECK_MSG(strstr(err.message, "certificate 1 of the client's chain cannot be read"), "%s",
              err.message);
    CHECK(vp_client_cas_check(cas, NULL, name, sizeof name, &err) == -1 &&
          strstr(err.message, "no client certificate"));
    vp_client_cas_free(cas);

    /* both roots: the stranger is now one of ours */
    CHECK(vp_client_cas_load(pem_file("both.pem", roots, 2, "# comment after\n"), &cas, &err) ==
          0);
    CHECK(vp_client_cas_count(cas) == 2);
    CHECK(verify(cas, bad1, 1, name, &err) == 0 && !strcmp(name, "stranger"));
    CHECK(verify(cas, ok1, 1, name, &err) == 0);
    vp_client_cas_free(cas);

    /* the file's refusals name the option and the file */
    cas = (vp_client_cas *)1;
    CHECK(vp_client_cas_load("/nonexistent/ca.pem", &cas, &err) == -1 && cas == NULL);
    CHECK_MSG(strstr(err.message, "option tls_client_ca") && strstr(err.message, "ca.pem"), "%s",
              err.message);
    const char *p = pem_file("key.pem", NULL, 0, "-----BEGIN PRIVATE KEY-----\nAAAA\n"
                                                 "-----END PRIVATE KEY-----\n");
    CHECK(vp_client_cas_load(p, &cas, &err) == -1);
    CHECK_MSG(strstr(err.message, "not a PEM file") && strstr(err.message, "CERTIFICATE"), "%s",
              err.message);
    p = pem_file("empty_block.pem", NULL, 0, "-----BEGIN CERTIFICATE-----\n!!!!\n"
                                             "-----END CERTIFICATE-----\n");
    CHECK(vp_client_cas_load(p, &cas, &err) == -1);
    CHECK_MSG(strstr(err.message, "holds no certificate GnuTLS can read"), "%s", err.message);
    CHECK(vp_client_cas_count(NULL) == 0);

    cert *all[] = {&root, &other_root, &inter, &trainer, &via_inter, &stranger, &expired,
                   &server_only, &longname};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        drop(all[i]);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return check_summary("test_tls_clients");
}
