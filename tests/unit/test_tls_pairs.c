/* The TLS certificate pairs of server/tls.c without a daemon: loading (what a handshake
 * gets from vp_tls_retrieve), reloads (a new pair for new handshakes; an unchanged one
 * replacing nothing; a refused one changing nothing), and when replaced pairs are freed:
 * only once no connection that pinned them, or an older pair, is open. The certificates
 * are made here with GnuTLS (self-signed, ECDSA P-256). */
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/util/log.h"
#include "server/internal.h"
#include "tests/unit/check.h"

static char dir[] = "/tmp/vprm_test_tls_pairs_XXXXXX";

static void write_text(const char *name, const void *data, size_t len)
{
    char path[300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) {
        fwrite(data, 1, len, f);
        fclose(f);
        chmod(path, 0600);
    }
}

/* tag.crt and tag.key: a self-signed certificate for CN=tag and its key */
static void make_pair(const char *tag, unsigned char serial)
{
    gnutls_x509_privkey_t key;
    gnutls_x509_crt_t crt;
    gnutls_datum_t out;
    char name[64];
    CHECK(gnutls_x509_privkey_init(&key) == 0);
    CHECK(gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
                                       GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0) == 0);
    CHECK(gnutls_x509_crt_init(&crt) == 0);
    gnutls_x509_crt_set_version(crt, 3);
    gnutls_x509_crt_set_serial(crt, &serial, 1);
    gnutls_x509_crt_set_activation_time(crt, time(NULL) - 60);
    gnutls_x509_crt_set_expiration_time(crt, time(NULL) + 400 * 86400);
    gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, tag, strlen(tag));
    gnutls_x509_crt_set_key(crt, key);
    CHECK(gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0) == 0);
    CHECK(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &out) == 0);
    snprintf(name, sizeof name, "%s.crt", tag);
    write_text(name, out.data, out.size);
    gnutls_free(out.data);
    CHECK(gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN,
                                            &out) == 0);
    snprintf(name, sizeof name, "%s.key", tag);
    write_text(name, out.data, out.size);
    gnutls_free(out.data);
    gnutls_x509_crt_deinit(crt);
    gnutls_x509_privkey_deinit(key);
}

/* Makes cert.pem and key.pem copies of tag's pair (or of two different ones). */
static void use(const char *cert_tag, const char *key_tag)
{
    const char *tags[2] = {cert_tag, key_tag}, *ext[2] = {"crt", "key"}, *to[2] = {"cert.pem",
                                                                                   "key.pem"};
    for (int i = 0; i < 2; i++) {
        char from[300];
        snprintf(from, sizeof from, "%s/%s.%s", dir, tags[i], ext[i]);
        FILE *f = fopen(from, "rb");
        char buf[8192];
        size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
        if (f)
            fclose(f);
        CHECK(n > 0);
        write_text(to[i], buf, n);
    }
}

/* The common name of the certificate a handshake would get now ("" if none). */
static const char *served(void)
{
    static char cn[64];
    gnutls_pcert_st *chain = NULL;
    unsigned n = 0;
    gnutls_privkey_t key = NULL;
    cn[0] = 0;
    if (vp_tls_retrieve(NULL, NULL, 0, NULL, 0, &chain, &n, &key) || n == 0 || !key)
        return cn;
    gnutls_x509_crt_t crt;
    gnutls_x509_crt_init(&crt);
    size_t len = sizeof cn;
    if (gnutls_x509_crt_import(crt, &chain[0].cert, GNUTLS_X509_FMT_DER) == 0 &&
        gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &len) != 0)
        cn[0] = 0;
    gnutls_x509_crt_deinit(crt);
    return cn;
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    vp_log_set_level(VP_LOG_WARN); /* each load and reload logs a line */
    make_pair("pair-a", 1);
    make_pair("pair-b", 2);
    char cert[300], key[300];
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    vp_config cfg = {.tls_cert = cert, .tls_key = key};
    vp_error err = {0};

    CHECK(vp_tls_pairs_held() == 0 && !strcmp(served(), ""));
    use("pair-a", "pair-a");
    CHECK_MSG(vp_tls_load(&cfg, &err) == 0, "%s", err.message);
    CHECK(vp_tls_pairs_held() == 1 && !strcmp(served(), "pair-a"));
    double expiry = vp_tls_not_after();
    CHECK(expiry > time(NULL) + 399.0 * 86400 && expiry < time(NULL) + 401.0 * 86400);
    CHECK(vp_tls_load(&cfg, &err) == -1 && strstr(err.message, "one HTTPS server a process"));

    void *p1 = vp_tls_pin(); /* a connection opened with pair a */
    CHECK(vp_tls_reload(&cfg, &err) == 0); /* the same files: nothing replaced */
    CHECK(vp_tls_pairs_held() == 1 && !strcmp(served(), "pair-a"));

    use("pair-b", "pair-b");
    CHECK_MSG(vp_tls_reload(&cfg, &err) == 0, "%s", err.message);
    CHECK(!strcmp(served(), "pair-b"));
    CHECK(vp_tls_pairs_held() == 2); /* a stays: p1 may hold it */
    void *p2 = vp_tls_pin();         /* a connection opened with pair b */

    use("pair-a", "pair-a");
    CHECK(vp_tls_reload(&cfg, &err) == 0 && !strcmp(served(), "pair-a"));
    CHECK(vp_tls_pairs_held() == 3);
    vp_tls_unpin(p2); /* b is unpinned, but p1 (older) may have taken it at its handshake */
    CHECK(vp_tls_pairs_held() == 3);
    vp_tls_unpin(p1); /* now both replaced pairs go */
    CHECK(vp_tls_pairs_held() == 1 && !strcmp(served(), "pair-a"));

    /* refused reloads change nothing */
    use("pair-b", "pair-a");
    CHECK(vp_tls_reload(&cfg, &err) == -1 && strstr(err.message, "is not the certificate"));
    CHECK(!strcmp(err.param, "tls_key"));
    CHECK(vp_tls_pairs_held() == 1 && !strcmp(served(), "pair-a"));
    write_text("cert.pem", "not a certificate\n", 18);
    CHECK(vp_tls_reload(&cfg, &err) == -1 && strstr(err.message, "is not a PEM file"));
    CHECK(vp_tls_pairs_held() == 1 && !strcmp(served(), "pair-a"));
    unlink(cert);
    CHECK(vp_tls_reload(&cfg, &err) == -1 && strstr(err.message, "cert.pem"));
    CHECK(vp_tls_pairs_held() == 1 && !strcmp(served(), "pair-a"));

    /* a pin taken, many reloads, then released: everything but the current pair goes */
    void *p3 = vp_tls_pin(); /* on pair a */
    for (int i = 0; i < 10; i++) {
        use(i % 2 ? "pair-b" : "pair-a", i % 2 ? "pair-b" : "pair-a");
        CHECK(vp_tls_reload(&cfg, &err) == 0);
    }
    /* the first reload found a unchanged; the 9 others each replaced a pair */
    CHECK(vp_tls_pairs_held() == 10 && !strcmp(served(), "pair-b"));
    vp_tls_unpin(p3);
    CHECK(vp_tls_pairs_held() == 1);
    vp_tls_unpin(NULL); /* plain HTTP connections pin nothing */

    vp_tls_unload();
    CHECK(vp_tls_pairs_held() == 0 && !strcmp(served(), ""));
    const char *files[] = {"pair-a.crt", "pair-a.key", "pair-b.crt", "pair-b.key", "cert.pem",
                           "key.pem"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char path[300];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
    return check_summary("test_tls_pairs");
}
