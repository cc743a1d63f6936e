/* SIGHUP: the credentials read again while serving (vp_server_reload), so API keys and
 * certificates rotate without a restart or a dropped request; with credentials_check_s,
 * also when their files change (vp_server_check_credentials, from the signal thread every
 * credentials_check_s seconds), for hosts that replace the files but send no signal
 * (Kubernetes' mounted secrets). */
#include <string.h>
#include <sys/stat.h>

#include "engine/util/log.h"
#include "server/internal.h"

static void stamps(const vp_config *cfg, vp_file_stamp out[VP_CREDENTIAL_FILES]);

int vp_server_reload(vp_server *s, vp_error *err)
{
    const vp_config *cfg = s->cfg;
    pthread_mutex_lock(&s->reload_mu);
    /* before the files are read: a change while they are read is seen by the next check */
    stamps(cfg, s->cred_stamps);
    vp_api_keys *keys = NULL;
    vp_client_cas *cas = NULL;
    /* the keys and client CAs are read first but swapped in last: a certificate that fails
     * keeps them out */
    int rc = vp_api_keys_load(cfg->api_key, cfg->api_keys_file, &keys, err);
    if (!rc && vp_api_keys_cert_grants(keys) && !cfg->tls_client_ca)
        rc = vp_fail(err, VP_ERR_BAD_REQUEST, "api_keys_file", "%s grants clients known by "
                     "their certificate (cert:NAME lines), but tls_client_ca is not set: no "
                     "client is", cfg->api_keys_file);
    if (!rc && cfg->tls_client_ca)
        rc = vp_client_cas_load(cfg->tls_client_ca, &cas, err);
    if (!rc && s->tls)
        rc = vp_tls_reload(cfg, err);
    if (rc) {
        vp_api_keys_free(keys);
        vp_client_cas_free(cas);
        vp_metrics_event(&s->metrics, VP_EV_RELOAD_FAILED);
        pthread_mutex_unlock(&s->reload_mu);
        return -1;
    }
    pthread_rwlock_wrlock(&s->keys_lock);
    vp_api_keys *old = s->keys;
    vp_client_cas *old_cas = s->client_cas;
    s->keys = keys;
    s->client_cas = cas;
    pthread_rwlock_unlock(&s->keys_lock);
    vp_api_keys_free(old);
    vp_client_cas_free(old_cas);
    vp_metrics_event(&s->metrics, VP_EV_RELOAD_OK);
    size_t n = vp_api_keys_count(keys); /* under the lock: another reload frees this set */
    size_t n_grants = vp_api_keys_cert_grants(keys);
    size_t n_cas = vp_client_cas_count(cas), n_crls = vp_client_cas_crls(cas);
    pthread_mutex_unlock(&s->reload_mu);
    if (cfg->api_keys_file)
        VP_LOGI(NULL, "reloaded %s: %zu API key%s, %zu certificate client grant%s",
                cfg->api_keys_file, n, n == 1 ? "" : "s", n_grants, n_grants == 1 ? "" : "s");
    if (cfg->tls_client_ca)
        VP_LOGI(NULL, "reloaded %s: %zu client certificate authorit%s, %zu revocation list%s",
                cfg->tls_client_ca, n_cas, n_cas == 1 ? "y" : "ies", n_crls,
                n_crls == 1 ? "" : "s");
    if (!cfg->api_keys_file && !s->tls)
        VP_LOGI(NULL, "nothing to reload: neither api_keys_file nor tls_cert is set");
    return 0;
}

size_t vp_server_api_keys(vp_server *s)
{
    pthread_rwlock_rdlock(&s->keys_lock);
    size_t n = vp_api_keys_count(s->keys);
    pthread_rwlock_unlock(&s->keys_lock);
    return n;
}

/* What identifies a file's contents without reading it: its device, inode, size and
 * change time (a rename over it, as Kubernetes swaps a secret's files, gives a new inode;
 * a rewrite in place, a new size or time). Stat follows symbolic links. */
static void file_stamp(const char *path, vp_file_stamp *st)
{
    struct stat sb;
    memset(st, 0, sizeof *st);
    if (!path || stat(path, &sb))
        return; /* missing: all zero, so its return is a change */
    st->dev = (unsigned long long)sb.st_dev;
    st->ino = (unsigned long long)sb.st_ino;
    st->size = (long long)sb.st_size;
    st->mtime_ns = (long long)sb.st_mtim.tv_sec * 1000000000LL + sb.st_mtim.tv_nsec;
    st->ctime_ns = (long long)sb.st_ctim.tv_sec * 1000000000LL + sb.st_ctim.tv_nsec;
}

/* The stamps of the credential files (those that are set). */
static void stamps(const vp_config *cfg, vp_file_stamp out[VP_CREDENTIAL_FILES])
{
    file_stamp(cfg->api_keys_file, &out[0]);
    file_stamp(cfg->tls_cert, &out[1]);
    file_stamp(cfg->tls_key, &out[2]);
    file_stamp(cfg->tls_client_ca, &out[3]);
}

void vp_reload_watch_init(vp_server *s)
{
    stamps(s->cfg, s->cred_stamps);
}

int vp_server_check_credentials(vp_server *s, vp_error *err)
{
    const vp_config *cfg = s->cfg;
    if (cfg->credentials_check_s <= 0)
        return 0;
    vp_file_stamp st[VP_CREDENTIAL_FILES];
    stamps(cfg, st);
    pthread_mutex_lock(&s->reload_mu);
    bool same = !memcmp(st, s->cred_stamps, sizeof st);
    pthread_mutex_unlock(&s->reload_mu);
    if (same)
        return 0;
    VP_LOGI(NULL, "credential files changed: reading the API keys file, the TLS certificate and "
            "the client CAs again (credentials_check_s=%d)", cfg->credentials_check_s);
    /* the stamps are taken again inside: a refused reload is tried at the next change, not
     * at every check */
    return vp_server_reload(s, err) ? -1 : 1;
}
