/* SIGHUP: the credentials read again while serving (vp_server_reload), so API keys and
 * certificates rotate without a restart or a dropped request. */
#include "engine/util/log.h"
#include "server/internal.h"

int vp_server_reload(vp_server *s, vp_error *err)
{
    const vp_config *cfg = s->cfg;
    pthread_mutex_lock(&s->reload_mu);
    vp_api_keys *keys = NULL;
    /* the keys are read first but swapped in last: a certificate that fails keeps them out */
    int rc = vp_api_keys_load(cfg->api_key, cfg->api_keys_file, &keys, err);
    if (!rc && s->tls)
        rc = vp_tls_reload(cfg, err);
    if (rc) {
        vp_api_keys_free(keys);
        vp_metrics_event(&s->metrics, VP_EV_RELOAD_FAILED);
        pthread_mutex_unlock(&s->reload_mu);
        return -1;
    }
    pthread_rwlock_wrlock(&s->keys_lock);
    vp_api_keys *old = s->keys;
    s->keys = keys;
    pthread_rwlock_unlock(&s->keys_lock);
    vp_api_keys_free(old);
    vp_metrics_event(&s->metrics, VP_EV_RELOAD_OK);
    pthread_mutex_unlock(&s->reload_mu);
    if (cfg->api_keys_file)
        VP_LOGI(NULL, "reloaded %s: %zu API key%s", cfg->api_keys_file, vp_api_keys_count(keys),
                vp_api_keys_count(keys) == 1 ? "" : "s");
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
