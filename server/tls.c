/* HTTPS: the certificate and key of --tls-cert and --tls-key, read with errors that name
 * the file and checked against each other here (GnuTLS), then handed to each handshake by
 * vp_tls_retrieve, libmicrohttpd's certificate callback. So a reload (SIGHUP) can swap in
 * new files while serving: the handshakes after it present the new pair.
 *
 * A session keeps pointers to the pair its handshake took, so a replaced pair is freed
 * only once no connection that may hold it is open. A connection pins the pair that is
 * current when it opens (vp_tls_pin, at the daemon's connection notice, before its
 * handshake); its handshake takes that pair or a newer one. So a replaced pair is unused
 * once it and every older one have no pins: the oldest are freed while that holds. A
 * connection kept open across many reloads holds the pairs since its own (a few KB
 * each) until it closes; a reload of an unchanged certificate replaces nothing.
 *
 * GnuTLS's callback has no context pointer: the pairs are this file's, one HTTPS server a
 * process. */
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/util/log.h"
#include "server/internal.h"
#include "server/pem.h"

#define CHAIN_MAX 16             /* certificates in --tls-cert */

typedef struct tls_pair {
    gnutls_pcert_st chain[CHAIN_MAX];
    unsigned n_chain;
    gnutls_privkey_t key;
    size_t pins;                 /* open connections that started while it was current */
    double not_after;            /* the first certificate's expiry (Unix time) */
    struct tls_pair *newer;      /* in the retired list */
} tls_pair;

static pthread_mutex_t pairs_mu = PTHREAD_MUTEX_INITIALIZER;
static tls_pair *current;               /* NULL: no HTTPS server in this process */
static tls_pair *retired, *retired_end; /* replaced pairs, oldest first */

static void pair_free(tls_pair *p)
{
    if (!p)
        return;
    for (unsigned i = 0; i < p->n_chain; i++)
        gnutls_pcert_deinit(&p->chain[i]);
    if (p->key)
        gnutls_privkey_deinit(p->key);
    free(p);
}

/* The files' certificate and key, checked by GnuTLS as it would at a handshake. */
static int parse_pair(const vp_config *cfg, char *cert, char *key, tls_pair *p, vp_error *err)
{
    const char *pw = cfg->tls_key_password;
    gnutls_datum_t cd = {(unsigned char *)cert, (unsigned)strlen(cert)};
    gnutls_datum_t kd = {(unsigned char *)key, (unsigned)strlen(key)};
    /* the credentials a static certificate would use: they check that the key is the
     * certificate's, and decrypt the key */
    gnutls_certificate_credentials_t probe;
    if (gnutls_certificate_allocate_credentials(&probe) < 0)
        return vp_fail(err, VP_ERR_NOMEM, "tls_cert", "out of memory for TLS credentials");
    int rc = gnutls_certificate_set_x509_key_mem2(probe, &cd, &kd, GNUTLS_X509_FMT_PEM, pw, 0);
    gnutls_certificate_free_credentials(probe);
    if (rc == GNUTLS_E_MEMORY_ERROR) /* not the files' fault */
        return vp_fail(err, VP_ERR_NOMEM, "tls_cert", "out of memory reading the TLS certificate "
                       "and key");
    if (rc == GNUTLS_E_CERTIFICATE_KEY_MISMATCH)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "tls_key",
                       "cannot serve HTTPS: the key %s is not the certificate %s's (their "
                       "public keys differ)", cfg->tls_key, cfg->tls_cert);
    if (rc < 0)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "tls_key",
                       "cannot serve HTTPS: GnuTLS cannot use the certificate %s with the key "
                       "%s: %s%s", cfg->tls_cert, cfg->tls_key, gnutls_strerror(rc),
                       pw ? " (is tls_key_password the key's?)" : "");
    p->n_chain = CHAIN_MAX;
    rc = gnutls_pcert_list_import_x509_raw(p->chain, &p->n_chain, &cd, GNUTLS_X509_FMT_PEM, 0);
    if (rc < 0) {
        p->n_chain = 0;
        if (rc == GNUTLS_E_MEMORY_ERROR)
            return vp_fail(err, VP_ERR_NOMEM, "tls_cert", "out of memory for the certificate");
        return vp_fail(err, VP_ERR_BAD_REQUEST, "tls_cert", "cannot serve HTTPS: %s: %s",
                       cfg->tls_cert, rc == GNUTLS_E_SHORT_MEMORY_BUFFER
                       ? "more than 16 certificates" : gnutls_strerror(rc));
    }
    if (gnutls_privkey_init(&p->key) < 0)
        return vp_fail(err, VP_ERR_NOMEM, "tls_key", "out of memory for the TLS key");
    rc = gnutls_privkey_import_x509_raw(p->key, &kd, GNUTLS_X509_FMT_PEM, pw, 0);
    if (rc == GNUTLS_E_MEMORY_ERROR)
        return vp_fail(err, VP_ERR_NOMEM, "tls_key", "out of memory for the TLS key");
    if (rc < 0)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "tls_key", "cannot serve HTTPS: the key %s: %s",
                       cfg->tls_key, gnutls_strerror(rc));
    gnutls_x509_crt_t crt;
    if (gnutls_x509_crt_init(&crt) < 0)
        return vp_fail(err, VP_ERR_NOMEM, "tls_cert", "out of memory for the certificate");
    /* the certificate read above: only memory can fail here (and the expiry logged and
     * exported must not silently read 0) */
    rc = gnutls_x509_crt_import(crt, &p->chain[0].cert, GNUTLS_X509_FMT_DER);
    if (rc >= 0)
        p->not_after = (double)gnutls_x509_crt_get_expiration_time(crt);
    gnutls_x509_crt_deinit(crt);
    if (rc < 0)
        return vp_fail(err, rc == GNUTLS_E_MEMORY_ERROR ? VP_ERR_NOMEM : VP_ERR_BAD_REQUEST,
                       "tls_cert", "cannot serve HTTPS: %s: %s", cfg->tls_cert,
                       gnutls_strerror(rc));
    return 0;
}

/* A pair from the files of cfg, or NULL and err naming the file and the problem. */
static tls_pair *load_pair(const vp_config *cfg, vp_error *err)
{
    char *cert = NULL, *key = NULL;
    if (vp_pem_read(cfg->tls_cert, "tls_cert", "CERTIFICATE", &cert, err) ||
        vp_pem_read(cfg->tls_key, "tls_key", "PRIVATE KEY", &key, err)) {
        free(cert);
        return NULL;
    }
    tls_pair *p = NULL;
    /* PKCS#8 "ENCRYPTED PRIVATE KEY", or a traditional key with "Proc-Type: 4,ENCRYPTED" */
    bool encrypted = strstr(key, "ENCRYPTED") != NULL;
    if (encrypted && !cfg->tls_key_password) {
        vp_fail(err, VP_ERR_BAD_REQUEST, "tls_key_password",
                "option tls_key: %s is encrypted: give its password with tls_key_password "
                "(VPRM_TLS_KEY_PASSWORD or the config file keep it out of the process list)",
                cfg->tls_key);
        goto out;
    }
    if (!encrypted && cfg->tls_key_password)
        VP_LOGW(NULL, "tls_key_password is set but the key %s is not encrypted", cfg->tls_key);
    struct stat st;
    if (stat(cfg->tls_key, &st) == 0 && (st.st_mode & S_IROTH))
        VP_LOGW(NULL, "the TLS key %s is readable by every user of this machine (chmod 600 it)",
                cfg->tls_key);
    if (!(p = calloc(1, sizeof *p))) {
        vp_fail(err, VP_ERR_NOMEM, "tls_cert", "out of memory");
        goto out;
    }
    if (parse_pair(cfg, cert, key, p, err)) {
        pair_free(p);
        p = NULL;
    }
out:
    free(cert);
    vp_pem_wipe_free(key); /* the key's text does not outlive its use */
    return p;
}

static void log_pair(const vp_config *cfg, const tls_pair *p, const char *what)
{
    char when[32] = "unknown";
    time_t t = (time_t)p->not_after;
    struct tm tm;
    if (p->not_after > 0 && gmtime_r(&t, &tm))
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    double days = (p->not_after - (double)time(NULL)) / 86400.0;
    if (days < 0)
        VP_LOGW(NULL, "%s the certificate %s (%u in its chain): it EXPIRED at %s; clients "
                "will refuse it", what, cfg->tls_cert, p->n_chain, when);
    else if (days < 7)
        VP_LOGW(NULL, "%s the certificate %s (%u in its chain): it expires at %s, in %.1f "
                "days", what, cfg->tls_cert, p->n_chain, when, days);
    else
        VP_LOGI(NULL, "%s the certificate %s (%u in its chain), valid until %s", what,
                cfg->tls_cert, p->n_chain, when);
}

int vp_tls_load(const vp_config *cfg, vp_error *err)
{
    pthread_mutex_lock(&pairs_mu);
    bool taken = current != NULL;
    pthread_mutex_unlock(&pairs_mu);
    if (taken)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "tls_cert",
                       "one HTTPS server a process: another already serves HTTPS here");
    tls_pair *p = load_pair(cfg, err);
    if (!p)
        return -1;
    log_pair(cfg, p, "serving");
    pthread_mutex_lock(&pairs_mu);
    current = p;
    pthread_mutex_unlock(&pairs_mu);
    return 0;
}

/* Frees the oldest replaced pairs while no connection pins them (pairs_mu held). */
static void collect_locked(void)
{
    while (retired && retired->pins == 0) {
        tls_pair *p = retired;
        retired = p->newer;
        if (!retired)
            retired_end = NULL;
        pair_free(p);
    }
}

/* Whether two pairs present the same chain (DER bytes). The key is then the same key
 * pair: each pair's key was checked against its first certificate. */
static bool same_chain(const tls_pair *a, const tls_pair *b)
{
    if (a->n_chain != b->n_chain)
        return false;
    for (unsigned i = 0; i < a->n_chain; i++)
        if (a->chain[i].cert.size != b->chain[i].cert.size ||
            memcmp(a->chain[i].cert.data, b->chain[i].cert.data, a->chain[i].cert.size))
            return false;
    return true;
}

int vp_tls_reload(const vp_config *cfg, vp_error *err)
{
    tls_pair *p = load_pair(cfg, err);
    if (!p)
        return -1;
    pthread_mutex_lock(&pairs_mu);
    bool same = current && same_chain(current, p);
    pthread_mutex_unlock(&pairs_mu);
    if (same) { /* a reload of unchanged files retires nothing: none piles up pinned */
        pair_free(p);
        VP_LOGI(NULL, "the certificate %s is unchanged", cfg->tls_cert);
        return 0;
    }
    log_pair(cfg, p, "reloaded");
    pthread_mutex_lock(&pairs_mu);
    tls_pair *old = current;
    current = p;
    if (old) {
        old->newer = NULL;
        if (retired_end)
            retired_end->newer = old;
        else
            retired = old;
        retired_end = old;
    }
    collect_locked();
    pthread_mutex_unlock(&pairs_mu);
    return 0;
}

void *vp_tls_pin(void)
{
    pthread_mutex_lock(&pairs_mu);
    tls_pair *p = current;
    if (p)
        p->pins++;
    pthread_mutex_unlock(&pairs_mu);
    return p;
}

void vp_tls_unpin(void *pin)
{
    tls_pair *p = pin;
    if (!p)
        return;
    pthread_mutex_lock(&pairs_mu);
    p->pins--;
    collect_locked();
    pthread_mutex_unlock(&pairs_mu);
}

double vp_tls_not_after(void)
{
    pthread_mutex_lock(&pairs_mu);
    double t = current ? current->not_after : 0;
    pthread_mutex_unlock(&pairs_mu);
    return t;
}

size_t vp_tls_pairs_held(void)
{
    pthread_mutex_lock(&pairs_mu);
    size_t n = current != NULL;
    for (tls_pair *p = retired; p; p = p->newer)
        n++;
    pthread_mutex_unlock(&pairs_mu);
    return n;
}

int vp_tls_retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int n_req,
                    const gnutls_pk_algorithm_t *pk_algos, int n_pk_algos,
                    gnutls_pcert_st **chain, unsigned int *n_chain, gnutls_privkey_t *key)
{
    pthread_mutex_lock(&pairs_mu);
    tls_pair *p = current; /* pinned by this connection, or newer than its pin */
    pthread_mutex_unlock(&pairs_mu);
    if (!p)
        return -1;
    *chain = p->chain;
    *n_chain = p->n_chain;
    *key = p->key;
    return 0;
}

void vp_tls_unload(void)
{
    pthread_mutex_lock(&pairs_mu);
    /* the daemon has stopped: no session is left (a pin lost to a failed allocation
     * included) */
    while (retired) {
        tls_pair *p = retired;
        retired = p->newer;
        pair_free(p);
    }
    retired_end = NULL;
    pair_free(current);
    current = NULL;
    pthread_mutex_unlock(&pairs_mu);
}
