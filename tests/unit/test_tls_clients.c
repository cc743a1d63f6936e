/* Client certificates (mutual TLS, server/tls_clients.c) without a daemon: the authorities
 * file (loading and its refusals) and the check of a client's chain: issued by a trusted
 * authority directly or through an intermediate, valid now and for client authentication,
 * its common name made safe for log lines and labels; refused with the reason otherwise
 * (no certificate, another authority, expired, a server-only purpose, too long a chain,
 * bytes that are not a certificate). The certificates are made here with GnuTLS. */
#include <gnutls/crypto.h>
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
#include "tests/unit/tls_test_util.h"

static char dir[] = "/tmp/vprm_test_tls_clients_XXXXXX";

static const char *pem_file(const char *name, const cert *const *certs, int n, const char *text)
{
    return pem_file_in(dir, name, certs, n, text);
}

static char *crl_pem_dated(const cert *issuer, const unsigned char *serials, int n, long this_s,
                           long next_s)
{
    gnutls_x509_crl_t crl;
    gnutls_datum_t out = {NULL, 0};
    CHECK(gnutls_x509_crl_init(&crl) == 0);
    time_t now = time(NULL);
    gnutls_x509_crl_set_version(crl, 2);
    gnutls_x509_crl_set_this_update(crl, now + this_s);
    gnutls_x509_crl_set_next_update(crl, now + next_s);
    for (int i = 0; i < n; i++)
        CHECK(gnutls_x509_crl_set_crt_serial(crl, &serials[i], 1, now + this_s - 30) == 0);
    CHECK(gnutls_x509_crl_sign2(crl, issuer->crt, issuer->key, GNUTLS_DIG_SHA256, 0) == 0);
    CHECK(gnutls_x509_crl_export2(crl, GNUTLS_X509_FMT_PEM, &out) == 0);
    gnutls_x509_crl_deinit(crl);
    char *text = calloc(1, out.size + 1);
    if (text)
        memcpy(text, out.data, out.size);
    gnutls_free(out.data);
    return text;
}

/* One issued a minute ago, due in a week. */
static char *crl_pem(const cert *issuer, const unsigned char *serials, int n)
{
    return crl_pem_dated(issuer, serials, n, -60, 7 * 86400);
}

/* What a client name with a hash ends with: '~' and n hex digits of data's SHA-256. */
static void hash_tail(const void *data, size_t len, size_t n, char *out)
{
    unsigned char d[32];
    gnutls_hash_fast(GNUTLS_DIG_SHA256, data, len, d);
    out[0] = '~';
    for (size_t i = 0; i < n; i++)
        sprintf(out + 1 + i, "%x", (d[i / 2] >> (i % 2 ? 0 : 4)) & 15);
}

/* DIR/name holding the PEM of certs[0..n) (and text after them); its path. */
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
    cert look_alike = make("rl_trainer-1__grpo_", &root, CLIENT, 10);
    cert no_cn = make("", &root, CLIENT, 11);
    char exact_cn[60], longer_cn[61];
    memset(exact_cn, 'e', 59), exact_cn[59] = 0;
    memset(longer_cn, 'e', 60), longer_cn[60] = 0;
    cert exact = make(exact_cn, &root, CLIENT, 12);
    cert longer = make(longer_cn, &root, CLIENT, 13);
    cert revoked = make("revoked", &root, CLIENT, 14);

    vp_client_cas *cas = NULL;
    vp_error err = {0};
    const cert *roots[2] = {&root, &other_root};
    CHECK_MSG(vp_client_cas_load(pem_file("ca.pem", roots, 1, ""), &cas, &err) == 0, "%s",
              err.message);
    CHECK(vp_client_cas_count(cas) == 1);
    char name[VP_CLIENT_NAME_MAX + 1];

    const cert *ok1[1] = {&trainer};
    CHECK_MSG(verify(cas, ok1, 1, name, &err) == 0, "%s", err.message);
    /* safe for labels, and no two spellings share a name: the CN's hash after '~' */
    char want[80], tail[20];
    hash_tail("rl trainer-1 (grpo)", 19, 8, tail);
    snprintf(want, sizeof want, "rl_trainer-1__grpo_%s", tail);
    CHECK_MSG(!strcmp(name, want), "%s, want %s", name, want);
    const cert *ok4[1] = {&look_alike};
    CHECK(verify(cas, ok4, 1, name, &err) == 0 && !strcmp(name, "rl_trainer-1__grpo_"));
    const cert *ok5[1] = {&no_cn}; /* no common name: the certificate's hash */
    CHECK(verify(cas, ok5, 1, name, &err) == 0);
    hash_tail(no_cn.der.data, no_cn.der.size, 16, tail);
    CHECK_MSG(!strcmp(name, tail), "%s, want %s", name, tail);
    const cert *ok2[2] = {&via_inter, &inter}; /* through an intermediate the client sends */
    CHECK_MSG(verify(cas, ok2, 2, name, &err) == 0, "%s", err.message);
    CHECK(!strcmp(name, "bon-svc@team.example"));
    const cert *ok3[1] = {&longname}; /* 199 bytes: 50 kept, then the hash of all */
    CHECK(verify(cas, ok3, 1, name, &err) == 0 && strlen(name) == VP_CLIENT_NAME_MAX);
    hash_tail(long_cn, strlen(long_cn), 8, tail);
    CHECK(!strncmp(name, long_cn, 50) && !strcmp(name + 50, tail));
    const cert *ok6[1] = {&exact}; /* 59 plain bytes: itself */
    CHECK(verify(cas, ok6, 1, name, &err) == 0 && !strcmp(name, exact_cn));
    const cert *ok7[1] = {&longer}; /* 60 plain bytes: cut and hashed */
    CHECK(verify(cas, ok7, 1, name, &err) == 0 && name[50] == '~' && strlen(name) == 59);

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
    CHECK(verify(cas, anchor, 1, name, &err) == 0 && !strncmp(name, "Test_Root_CA~", 13));
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

    /* a revocation list in the file: the certificates it lists refused, others not */
    unsigned char gone[1] = {14};
    char *crl = crl_pem(&root, gone, 1);
    CHECK(crl != NULL);
    CHECK_MSG(vp_client_cas_load(pem_file("crl.pem", roots, 1, crl ? crl : ""), &cas, &err) == 0,
              "%s", err.message);
    CHECK(vp_client_cas_count(cas) == 1 && vp_client_cas_crls(cas) == 1);
    const cert *rv[1] = {&revoked};
    CHECK(verify(cas, rv, 1, name, &err) == -1);
    CHECK_MSG(strstr(err.message, "revoked"), "%s", err.message);
    CHECK(verify(cas, ok1, 1, name, &err) == 0);
    vp_client_cas_free(cas);
    free(crl);
    /* one signed by an authority the file does not hold: refused at load, naming it */
    crl = crl_pem(&other_root, gone, 1);
    CHECK(vp_client_cas_load(pem_file("crl_other.pem", roots, 1, crl ? crl : ""), &cas, &err) ==
          -1);
    CHECK_MSG(strstr(err.message, "revocation list 1") &&
                  strstr(err.message, "not signed by any authority of the file"),
              "%s", err.message);
    free(crl);
    /* past its next update (a month old, due yesterday), and dated an hour ahead of this
     * clock: each still loads and still revokes (refusing it would refuse every reload and
     * the next start); the earliest next update is reported */
    const long dates[2][2] = {{-30 * 86400L, -86400L}, {3600L, 8 * 86400L}};
    for (int d = 0; d < 2; d++) {
        crl = crl_pem_dated(&root, gone, 1, dates[d][0], dates[d][1]);
        CHECK_MSG(vp_client_cas_load(pem_file("crl_dated.pem", roots, 1, crl ? crl : ""), &cas,
                                     &err) == 0,
                  "%s", err.message);
        CHECK(vp_client_cas_crls(cas) == 1);
        double due = (double)time(NULL) + (double)dates[d][1];
        CHECK(vp_client_cas_crl_next_update(cas) > due - 5 && vp_client_cas_crl_next_update(cas) < due + 5);
        CHECK(verify(cas, rv, 1, name, &err) == -1 && strstr(err.message, "revoked"));
        CHECK(verify(cas, ok1, 1, name, &err) == 0);
        vp_client_cas_free(cas);
        free(crl);
    }

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
                   &server_only, &longname, &look_alike, &no_cn, &exact, &longer, &revoked};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        drop(all[i]);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return check_summary("test_tls_clients");
}
